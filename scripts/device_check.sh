#!/usr/bin/env bash
# GPU checks and benchmark tables on a machine with a real GPU, from binaries
# built elsewhere (BIN, default .devbin: stripped copies of target/release's
# singularity-gpu, the parity and notebook test binaries, and the survey bench).
# Prepare them with scripts/device_prepare.sh. Writes the tables to $OUT/bench.md.
set -u
BIN=${BIN:-.devbin}
OUTDIR=${OUT:-/tmp/sg-out}
mkdir -p "$OUTDIR"
# Vulkan loader, where the machine has only the NVIDIA driver (device README).
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
# The test binaries find examples/ under the path they were built in.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
lscpu | grep -E "^Model name|^CPU\(s\)"
echo "== parity and notebook tests on the GPU (CI=true: no adapter fails)"
CI=true "$BIN/parity" 2>&1 | grep -E "^test |test result|panicked|skipping"
CI=true "$BIN/notebook" 2>&1 | grep -E "^test |test result|panicked|skipping"
echo "== CLI on the bundled example"
"$BIN/singularity-gpu" --file examples/notebook_128.safetensors --device gpu --json 2>&1 |
  grep -E '"(adapter|backend|n_unique|n_duplicate|kind)"'
echo "== benchmarks"
"$BIN/survey" --shapes "${SHAPES:-151936x896,151936x4096,128256x16384}" --reps "${REPS:-5}" \
  --no-numpy-above "${NUMPY_MAX:-0}" --data /tmp/bench-data ${BENCH_ARGS:-} 2>&1 | tee "$OUTDIR/bench.md"
