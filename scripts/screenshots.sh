#!/usr/bin/env bash
# Regenerates the README's screenshots of the three HTML pages
# (docs/page-single.png, docs/page-series.png, docs/page-comparison.png):
# runs the browser tests (tests/integration/pages.rs), which write each page
# (a small model with holes, a component and a gap; the series fixture;
# four inputs, one failing) and a full-page screenshot of it under
# target/screenshots/, then photographs the top of each page in the
# system's headless Chromium (the browser scripts/test.sh installs).
set -euo pipefail
cd "$(dirname "$0")/.."

browser="${SINGULARITY_GPU_BROWSER:-}"
for name in chromium-headless-shell chromium chromium-browser google-chrome; do
  [ -n "$browser" ] && break
  browser="$(command -v "$name" || true)"
done
[ -n "$browser" ] || { echo "screenshots.sh: no Chromium found (see scripts/test.sh)" >&2; exit 1; }

# The browser tests write each page beside its full-page screenshot:
# target/screenshots/{single,series,comparison}.html.
cargo test --release --locked --quiet --test integration pages:: >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for page in single series comparison; do
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$work/profile" --window-size=1100,1500 \
    --screenshot="docs/page-$page.png" "file://$PWD/target/screenshots/$page.html" 2>/dev/null >/dev/null
  echo "docs/page-$page.png"
done
