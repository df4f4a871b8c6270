#!/usr/bin/env python3
"""Peer timings for benches/survey.rs: what researchers run today.

Usage: bench_peer.py numpy|torch FILE ROWS COLS OFFSET REPS
Reads the bf16 matrix's raw bits (uint16) at byte OFFSET of FILE and prints
one line: `<peer> <median seconds> <unique rows>`.
  numpy: numpy.unique(axis=0) on the uint16 bits (exact, bitwise), CPU.
  torch: torch.unique(dim=0) on the bf16 tensor on a CUDA GPU, timed from the
         host tensor (host-to-device copy included), as the notebook runs it.
Exits 3 when the peer is not installed (numpy, or torch with CUDA).
"""
import statistics
import sys
import time


def main():
    peer, path, n, d, offset, reps = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
    try:
        import numpy as np
    except ImportError:
        sys.exit(3)
    bits = np.fromfile(path, dtype=np.uint16, count=n * d, offset=offset).reshape(n, d)
    times, uniq = [], None
    if peer == "numpy":
        for _ in range(reps):
            t = time.perf_counter()
            u, inv, counts = np.unique(bits, axis=0, return_inverse=True, return_counts=True)
            times.append(time.perf_counter() - t)
            uniq = len(u)
    elif peer == "torch":
        try:
            import torch
        except ImportError:
            sys.exit(3)
        if not torch.cuda.is_available():
            sys.exit(3)
        host = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
        for i in range(reps + 1):  # first run warms up CUDA and the allocator
            torch.cuda.synchronize()
            t = time.perf_counter()
            x = host.to("cuda")
            u, inv, counts = torch.unique(x, dim=0, return_inverse=True, return_counts=True)
            torch.cuda.synchronize()
            if i > 0:
                times.append(time.perf_counter() - t)
            uniq = u.shape[0]
            del x, u, inv, counts
    else:
        sys.exit(f"unknown peer {peer}")
    print(peer, statistics.median(times), uniq)


if __name__ == "__main__":
    main()
