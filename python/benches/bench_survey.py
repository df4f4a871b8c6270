"""Python against Rust on the same bytes (the rows of BENCHMARKS.md, "From Python").

1. survey: `sg.survey(a)` on a C-contiguous 151,936 x 896 bf16 array (the
   shape of Qwen's embedding) against the library's `survey_matrix` on the
   same bytes, timed inside the native module with no Python in the loop.
2. push: `SeriesRecorder.push` per step against the command line's cost per
   step of `--series` on the same steps saved as checkpoints (its
   `timings_ms.total` over the steps, so process start is not counted).

Run from the repository root after `cargo build --release` and installing
the package:  target/pyenv/bin/python python/benches/bench_survey.py
Prints a Markdown table; ratios are Python over Rust (1.00 is no overhead).
"""

from __future__ import annotations

import argparse
import json
import platform
import os
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

import singularity_gpu as sg

REPO = Path(__file__).resolve().parents[2]


def matrix(rows: int, cols: int, seed: int) -> np.ndarray:
    """bf16 bit patterns (uint16) of N(0, 0.02) values, with a hole of 1,000 rows."""
    rng = np.random.default_rng(seed)
    f = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).view(np.uint32)
    bits = (f >> 16).astype(np.uint16)
    bits[rows - 1000 :] = bits[rows - 1001]
    return bits


def median_s(f, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_bf16(path: Path, bits: np.ndarray) -> None:
    raw = bits.tobytes()
    h = json.dumps({"embeddings": {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, len(raw)]}}).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        f.write(raw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=151_936)
    p.add_argument("--cols", type=int, default=896)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()

    bits = matrix(args.rows, args.cols, 0)
    a = bits.view(np.uint16)
    sg.survey(a[:1000], as_="bf16", device=args.device)  # opens the engine once
    # Alternated, so that what else runs on the machine weighs on both alike.
    py_t, rust_t = [], []
    for _ in range(args.reps):
        py_t.append(median_s(lambda: sg.survey(a, as_="bf16", device=args.device), 1))
        rust_t += sg._native._time_library(a, "BF16", 1, args.device)
    py, rust = statistics.median(py_t), statistics.median(rust_t)
    py_min, rust_min = min(py_t), min(rust_t)
    # The overhead itself: each Python call minus the library call right after it.
    extra = statistics.median(p - r for p, r in zip(py_t, rust_t))

    # Steps: each moves 1 % of the rows by one bf16 step.
    rng = np.random.default_rng(1)
    steps = [bits]
    for _ in range(args.steps - 1):
        nxt = steps[-1].copy()
        rows = rng.choice(args.rows, size=args.rows // 100, replace=False)
        nxt[rows] += 1
        steps.append(nxt)
    rec = sg.SeriesRecorder(device=args.device, as_="bf16")
    push = []
    for i, s in enumerate(steps):
        t = time.perf_counter()
        rec.push(i, s)
        push.append(time.perf_counter() - t)
    rec.result()
    cli = REPO / "target" / "release" / "singularity-gpu"
    with tempfile.TemporaryDirectory(dir=REPO / "target") as d:
        for i, s in enumerate(steps):
            write_bf16(Path(d) / f"step_{i}.safetensors", s)
        runs = []
        for _ in range(3):
            out = subprocess.run([str(cli), "--series", d, "--json", "--device", args.device],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout)["timings_ms"]["total"] / 1000 / len(steps))
        cli_step = statistics.median(runs)
    py_step = statistics.median(push)

    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} logical CPUs, {cpu}, Python {platform.python_version()}, device={args.device}")
    print(f"| what | Python | Rust | Python / Rust |")
    print(f"|---|---:|---:|---:|")
    print(f"| survey {args.rows:,} x {args.cols} bf16, median of {args.reps} | {py*1000:.1f} ms | {rust*1000:.1f} ms (library) | {py/rust:.3f} |")
    print(f"| survey {args.rows:,} x {args.cols} bf16, best of {args.reps} | {py_min*1000:.1f} ms | {rust_min*1000:.1f} ms (library) | {py_min/rust_min:.3f} |")
    print(f"| Python's extra per survey, median of the {args.reps} paired differences | {extra*1000:.2f} ms | | {extra/rust*100:.1f} % of the library's median |")
    print(f"| push one step, median of {len(steps)} | {py_step*1000:.1f} ms | {cli_step*1000:.1f} ms (`--series` per step) | {py_step/cli_step:.3f} |")


if __name__ == "__main__":
    main()
