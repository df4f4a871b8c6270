#!/usr/bin/env bash
# Runs one cargo-fuzz target for SECONDS (default 600), seeded with the
# committed fixtures of its format, and prints libFuzzer's last status line.
# By hand, not in CI: needs the nightly toolchain and cargo-fuzz
# (cargo install cargo-fuzz). Crashes land in fuzz/artifacts/TARGET/; keep
# each one, minimised (cargo fuzz tmin), under tests/fuzz/TARGET/, where
# tests/integration/fuzz_replay.rs replays it on every test run.
# Usage: scripts/fuzz.sh TARGET [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1 secs=${2:-600}
corpus=fuzz/corpus/$target
mkdir -p "$corpus"
seed() { for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$corpus/" || true; done; }
# Each torch checkpoint's data.pkl, out of its zip, into folder $1.
pickles() {
  python3 -c '
import sys, zipfile, os
for path in sys.argv[2:]:
    try:
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if n.endswith("data.pkl"):
                    with open(os.path.join(sys.argv[1], os.path.basename(path) + ".pkl"), "wb") as f:
                        f.write(z.read(n))
    except Exception:
        pass
' "$1" tests/fixtures/torch/*.pt tests/fixtures/thimble9/*.pt
}
case $target in
  safetensors_header) seed examples/*.safetensors tests/fixtures/hf/sharded/*.safetensors ;;
  gguf) seed tests/fixtures/gguf/*.gguf ;;
  npy) seed tests/fixtures/npy/*.npy ;;
  zip) seed tests/fixtures/npy/*.npz tests/fixtures/torch/*.pt tests/fixtures/torch/*.zip ;;
  hdf5) seed tests/fixtures/trajectory/*.h5 ;;
  pickle) seed tests/fixtures/torch/*.pkl; pickles "$corpus" ;;
esac
[ -d "tests/fuzz/$target" ] && seed tests/fuzz/"$target"/*
cargo +nightly fuzz run -O "$target" "$corpus" -- \
  -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=131072 -print_final_stats=1 2>&1 |
  tee "fuzz/$target.log" | grep -E '^#[0-9]+.*(DONE|pulse)|^stat::|ERROR|panicked' | tail -12
