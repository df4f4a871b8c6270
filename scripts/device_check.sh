#!/usr/bin/env bash
# GPU checks and benchmark tables on a machine with a real GPU, from binaries
# built elsewhere (BIN, default .devbin: stripped copies of target/release's
# singularity-gpu, the integration test binary, the survey and allpairs
# benches). Prepare them with scripts/device_prepare.sh. Writes the tables to
# $OUT/bench.md, $OUT/formats.md and $OUT/allpairs.md. RUN_SURVEY=0 skips the exact-survey
# tables (measured before) to keep a short lease for the all-pairs ones;
# RUN_FORMATS=0, RUN_SERIES=0 and RUN_ALLPAIRS=0 skip those ($OUT/series.md).
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
# The test binaries find examples/ under the path they were built in
# (recorded by device_prepare.sh); link it to this copy when it is elsewhere.
BUILT_IN=$(cat "$BIN/built_in" 2>/dev/null || true)
if [ -n "$BUILT_IN" ] && [ ! -e "$BUILT_IN" ]; then
  mkdir -p "$(dirname "$BUILT_IN")" && ln -s "$PWD" "$BUILT_IN"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
lscpu | grep -E "^Model name|^CPU\(s\)"
echo "== GPU tests (CI=true: no adapter fails)"
if [ -x "$BIN/integration" ]; then
  CI=true "$BIN/integration" parity:: notebook:: gpu_pairs:: geometry:: hash_known:: step_diff:: 2>&1 |
    grep -E "^test |test result|panicked|skipping"
fi
echo "== CLI on the bundled example"
"$BIN/singularity-gpu" --file examples/notebook_128.safetensors --device gpu --json 2>&1 |
  grep -E '"(adapter|backend|n_unique|n_duplicate|kind)"'
if [ "${RUN_SURVEY:-1}" = 1 ]; then
echo "== benchmarks"
"$BIN/survey" --shapes "${SHAPES:-151936x896,151936x4096,128256x16384}" --reps "${REPS:-5}" \
  --no-numpy-above "${NUMPY_MAX:-0}" --data /tmp/bench-data ${BENCH_ARGS:-} 2>&1 | tee "$OUTDIR/bench.md"
fi
if [ "${RUN_FORMATS:-1}" = 1 ] && [ -x "$BIN/formats" ]; then
echo "== formats benchmark (load + survey per input format, CPU and GPU)"
"$BIN/formats" --reps "${REPS:-5}" --gpu --data /tmp/bench-data 2>&1 | tee "$OUTDIR/formats.md"
fi
if [ "${RUN_SERIES:-1}" = 1 ] && [ -x "$BIN/series" ]; then
echo "== series benchmark (10,001 x 3,699 x 64 bf16 trajectory, CPU and GPU)"
"$BIN/series" --reps "${REPS:-3}" --gpu --data /tmp/bench-data 2>&1 | tee "$OUTDIR/series.md"
fi
[ "${RUN_ALLPAIRS:-1}" = 1 ] || exit 0
echo "== all-pairs benchmark (bounded: ALLPAIRS_TIMEOUT seconds; rows also go to stderr as they finish)"
# Full shape, GPU and CPU rows, each row in its own process; full-size exact
# NN on a path is extrapolated from the 16384-row slice by (vectors ratio)^2
# when that estimate exceeds --budget. The tables also go to allpairs-tables.md.
timeout "${ALLPAIRS_TIMEOUT:-600}" "$BIN/allpairs" --rows 151936 --cols 2560 \
  --clouds "${ALLPAIRS_CLOUDS:-steep,flat,clustered}" --reps "${REPS:-3}" --slices 8192,16384 \
  --budget "${ALLPAIRS_BUDGET:-60}" --peer-budget "${ALLPAIRS_PEER_BUDGET:-30}" \
  --data /tmp/bench-data --out "$OUTDIR/allpairs-tables.md" ${ALLPAIRS_ARGS:-} 2>&1 |
  tee "$OUTDIR/allpairs.md"
