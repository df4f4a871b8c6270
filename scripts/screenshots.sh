#!/usr/bin/env bash
# Regenerates the README's screenshots of the three HTML pages
# (docs/page-single.png, docs/page-series.png, docs/page-comparison.png):
# builds the binary, writes each page from the bundled example and the test
# fixtures, and photographs the top of each in the system's headless
# Chromium (the browser scripts/test.sh installs). Full-page screenshots of
# the same pages are written by the browser tests, under target/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

browser="${SINGULARITY_GPU_BROWSER:-}"
for name in chromium-headless-shell chromium chromium-browser google-chrome; do
  [ -n "$browser" ] && break
  browser="$(command -v "$name" || true)"
done
[ -n "$browser" ] || { echo "screenshots.sh: no Chromium found (see scripts/test.sh)" >&2; exit 1; }

cargo build --release --locked --quiet
sg=target/release/singularity-gpu
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$sg" --device cpu --file examples/notebook_128.safetensors --nearest --near-ulp 2 --indicators \
  --html "$work/single.html" >/dev/null
"$sg" --device cpu --series tests/fixtures/series/run --html "$work/series.html" >/dev/null
"$sg" --device cpu --file examples/notebook_128.safetensors --file tests/fixtures/gguf/q4_k.gguf \
  --file tests/fixtures/thimble9/checkpoint_step_00000.pt --html "$work/comparison.html" >/dev/null

for page in single series comparison; do
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$work/profile" --window-size=1100,1500 \
    --screenshot="docs/page-$page.png" "file://$work/$page.html" 2>/dev/null >/dev/null
  echo "docs/page-$page.png"
done
