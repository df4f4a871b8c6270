#!/usr/bin/env bash
# Keeps a small sample of a fuzzing run's corpus under tests/fuzz/TARGET/ for
# tests/integration/fuzz_replay.rs: the N smallest inputs (they reach the error paths
# with the fewest bytes) and any crash artifacts, minimised first.
# Usage: scripts/keep_fuzz_inputs.sh TARGET [N]
set -eu
cd "$(dirname "$0")/.."
target=$1 n=${2:-24}
dest=tests/fuzz/$target
mkdir -p "$dest"
ls -S -r "fuzz/corpus/$target" | head -n "$n" | while read -r f; do
  cp "fuzz/corpus/$target/$f" "$dest/corpus-${f:0:12}"
done
for a in fuzz/artifacts/"$target"/*; do
  [ -f "$a" ] || continue
  cargo +nightly fuzz tmin -O "$target" "$a" >/dev/null 2>&1 || true
  cp "$a" "$dest/crash-$(basename "$a" | tail -c 13)"
done
ls "$dest" | wc -l
