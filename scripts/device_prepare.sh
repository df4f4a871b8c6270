#!/usr/bin/env bash
# Builds what scripts/device_check.sh runs on an x86-64 GPU machine that
# has no Rust toolchain: stripped release binaries in .devbin (the CLI, the
# integration test binary, the survey, allpairs, formats and series benches), and the Vulkan
# loader packages in .gl (both ignored by git; carry them with the run).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devbin .gl
cargo build --release
cp target/release/singularity-gpu .devbin/
# The test binaries find examples/ and tests/fixtures/ under the folder they
# were built in (CARGO_MANIFEST_DIR); device_check.sh links that path.
pwd > .devbin/built_in
cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        exe = json.loads(line).get("executable") or ""
    except ValueError:
        continue
    name = exe.rsplit("/", 1)[-1].split("-")[0]
    if name == "integration":
        print(name, exe)' | while read -r name exe; do cp "$exe" ".devbin/$name"; done
cargo bench --bench survey --bench allpairs --bench formats --bench series --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        exe = json.loads(line).get("executable") or ""
    except ValueError:
        continue
    name = exe.rsplit("/", 1)[-1].split("-")[0]
    if name in ("survey", "allpairs", "formats", "series"):
        print(name, exe)' | while read -r name exe; do cp "$exe" ".devbin/$name"; done
strip .devbin/*
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
mkdir -p /tmp/amd64/partial
apt-get $o update -qq
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
ls -la .devbin .gl
