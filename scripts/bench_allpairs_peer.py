#!/usr/bin/env python3
"""numpy peer for benches/allpairs.rs: the all-pairs work in the matmul form
||x||^2 + ||y||^2 - 2 x.y, in float32 with BLAS, as researchers compute it.

Usage: bench_allpairs_peer.py FILE OFFSET DTYPE ROWS COLS LABELS BUDGET TASK... [--exact PATH]

FILE holds the matrix (DTYPE: BF16, F16 or F32, little-endian, row-major) at
byte OFFSET; LABELS is ROWS int32 values, the distinct vector of each row
(rows of one label are bit-identical). Each TASK goes over all rows as
queries, in blocks of 256 against all rows:
  nn        each query's nearest row of another label (argmin of the form)
  pairs:R   the pairs of rows of different labels within distance R (i < j)
A task whose first block, times the number of blocks, would take more than
BUDGET seconds runs evenly spaced blocks only (as many as fit in BUDGET, at
least 2) and extrapolates: compute = norms + mean block time x blocks.
With --exact, PATH holds ROWS float64 exact nearest-neighbour distances (NaN
where none): an `nn` task counts the measured queries whose distance is off
by more than 1% relative.

Prints one JSON line per task: prep seconds (bits to float32), compute
seconds (measured, or estimated when extrapolated), the blocks measured and
in all, and the pairs (all blocks only) or the distances off.
Exits 3 when numpy is not installed.
"""
import json
import sys
import time

BLOCK = 256


def main():
    argv = sys.argv[1:]
    exact_path = None
    if "--exact" in argv:
        i = argv.index("--exact")
        exact_path = argv[i + 1]
        del argv[i : i + 2]
    path, offset, dtype = argv[0], int(argv[1]), argv[2]
    n, d = int(argv[3]), int(argv[4])
    labels_path, budget = argv[5], float(argv[6])
    tasks = argv[7:]
    try:
        import numpy as np
    except ImportError:
        sys.exit(3)
    labels = np.fromfile(labels_path, dtype=np.int32, count=n)
    exact = np.fromfile(exact_path, dtype=np.float64, count=n) if exact_path else None
    t = time.perf_counter()
    if dtype == "BF16":
        bits = np.fromfile(path, dtype=np.uint16, count=n * d, offset=offset)
        x = (bits.astype(np.uint32) << 16).view(np.float32).reshape(n, d)
        del bits
    elif dtype == "F16":
        x = np.fromfile(path, dtype=np.float16, count=n * d, offset=offset).astype(np.float32).reshape(n, d)
    elif dtype == "F32":
        x = np.fromfile(path, dtype=np.float32, count=n * d, offset=offset).reshape(n, d)
    else:
        sys.exit(f"unknown dtype {dtype}")
    prep = time.perf_counter() - t
    for task in tasks:
        out = run_task(np, x, labels, task, budget, exact)
        out["prep_s"] = prep
        print(json.dumps(out), flush=True)


def run_task(np, x, labels, task, budget, exact):
    n = len(x)
    blocks = (n + BLOCK - 1) // BLOCK
    r2 = None
    if task.startswith("pairs:"):
        r2 = np.float32(float(task.split(":", 1)[1]) ** 2)
    elif task != "nn":
        sys.exit(f"unknown task {task}")
    t = time.perf_counter()
    sq = np.einsum("ij,ij->i", x, x)
    # Rows sharing a label with another row (bit-identical ones): each
    # query's own row is masked directly, these through their label.
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    shared = {}
    for r in np.flatnonzero(counts[inverse] > 1):
        shared.setdefault(int(labels[r]), []).append(int(r))
    norms_s = time.perf_counter() - t
    off = checked = pairs = 0

    def block(b):
        nonlocal off, checked, pairs
        s = b * BLOCK
        q = np.arange(s, min(s + BLOCK, n))
        d2 = sq[q, None] + sq[None, :] - 2.0 * (x[q] @ x.T)
        if r2 is None:
            d2[np.arange(len(q)), q] = np.inf
            for i, r in enumerate(q):
                same = shared.get(int(labels[r]))
                if same is not None:
                    d2[i, same] = np.inf
            j = d2.argmin(axis=1)
            dist = np.sqrt(np.maximum(d2[np.arange(len(j)), j], 0)).astype(np.float64)
            if exact is not None:
                e = exact[q]
                ok = ~np.isnan(e)
                off += int((np.abs(dist - e)[ok] > 0.01 * e[ok]).sum())
                checked += int(ok.sum())
        else:
            i, j = np.nonzero(d2 <= r2)
            i = q[i]
            keep = (j > i) & (labels[i] != labels[j])
            pairs += int(keep.sum())

    times = []
    t = time.perf_counter()
    block(0)
    times.append(time.perf_counter() - t)
    if times[0] * blocks <= budget:
        chosen = range(1, blocks)
    else:
        m = min(blocks, max(2, int(budget / max(times[0], 1e-9))))
        chosen = sorted(set(np.linspace(0, blocks - 1, m).round().astype(int).tolist()) - {0})
    for b in chosen:
        t = time.perf_counter()
        block(b)
        times.append(time.perf_counter() - t)
    measured = len(times)
    extrapolated = measured < blocks
    compute = norms_s + (sum(times) / measured * blocks if extrapolated else sum(times))
    out = {
        "task": task,
        "compute_s": compute,
        "measured_blocks": measured,
        "blocks": blocks,
        "extrapolated": extrapolated,
    }
    if r2 is None and exact is not None:
        out["off"] = off
        out["checked"] = checked
    elif not extrapolated:
        out["pairs"] = pairs
    return out


if __name__ == "__main__":
    main()
