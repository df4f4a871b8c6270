#!/usr/bin/env python3
"""Peer timings for benches/allpairs.rs: nearest neighbours as researchers
compute them today, in float32.

Usage: bench_allpairs_peer.py PEER FILE ROWS COLS OFFSET LABELS QUERIES [MAX_QUERIES]

FILE holds the bf16 matrix's raw bits at byte OFFSET; LABELS is ROWS int32
values, the distinct vector of each row (rows of one label are bit-identical);
QUERIES is a text file with one query per line: `token dead exact_nn exact_distance`
(the exact answer in f64, from the benchmark). Each query's nearest neighbour
is searched among all rows of another label (so neither itself nor a row
identical to it) by
  numpy-mm:     ||x||^2 + ||y||^2 - 2 x.y in float32, numpy (BLAS), CPU
  numpy-direct: sum((x - y)^2) from direct differences in float32, numpy, CPU
  torch-mm:     the matmul form in float32 on a CUDA GPU (TF32 off, torch's default)
  torch-cdist:  torch.cdist(compute_mode='donot_use_mm_for_euclid_dist'), CUDA
With MAX_QUERIES, an evenly spaced subset of the queries (dead and trained
tokens in proportion). Prints one JSON line: prep seconds (bits to float32
on the device), compute seconds, the number of queries, and per kind of token
(dead, trained) how many distances are off by more than 1% relative and how
many nearest neighbours are another vector than the exact one.
Exits 3 when the peer is not installed (numpy, or torch with CUDA).
"""
import json
import sys
import time


def main():
    peer, path = sys.argv[1], sys.argv[2]
    n, d, offset = map(int, sys.argv[3:6])
    labels_path, queries_path = sys.argv[6], sys.argv[7]
    max_q = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    try:
        import numpy as np
    except ImportError:
        sys.exit(3)
    bits = np.fromfile(path, dtype=np.uint16, count=n * d, offset=offset).reshape(n, d)
    labels = np.fromfile(labels_path, dtype=np.int32, count=n)
    q = np.loadtxt(queries_path, ndmin=2)
    if max_q and max_q < len(q):
        q = q[np.linspace(0, len(q) - 1, max_q).round().astype(np.int64)]
    tokens = q[:, 0].astype(np.int64)
    dead = q[:, 1] != 0
    exact_nn = q[:, 2].astype(np.int64)
    exact = q[:, 3]
    if peer.startswith("numpy"):
        t = time.perf_counter()
        x = (bits.astype(np.uint32) << 16).view(np.float32)
        prep = time.perf_counter() - t
        t = time.perf_counter()
        if peer == "numpy-mm":
            dist, nn = numpy_mm(np, x, labels, tokens)
        elif peer == "numpy-direct":
            dist, nn = numpy_direct(np, x, labels, tokens)
        else:
            sys.exit(f"unknown peer {peer}")
        compute = time.perf_counter() - t
    elif peer.startswith("torch"):
        try:
            import torch
        except ImportError:
            sys.exit(3)
        if not torch.cuda.is_available():
            sys.exit(3)
        host = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16)
        lab = torch.from_numpy(labels).to("cuda")
        tok = torch.from_numpy(tokens).to("cuda")
        fn = {"torch-mm": torch_mm, "torch-cdist": torch_cdist}.get(peer)
        if fn is None:
            sys.exit(f"unknown peer {peer}")
        fn(torch, host[:1024].to("cuda").float(), lab[:1024], torch.arange(8, device="cuda"))  # warm-up
        torch.cuda.synchronize()
        t = time.perf_counter()
        x = host.to("cuda").float()
        torch.cuda.synchronize()
        prep = time.perf_counter() - t
        t = time.perf_counter()
        dist, nn = fn(torch, x, lab, tok)
        torch.cuda.synchronize()
        compute = time.perf_counter() - t
        dist, nn = dist.cpu().numpy(), nn.cpu().numpy()
    else:
        sys.exit(f"unknown peer {peer}")
    dist = dist.astype(np.float64)
    off = np.abs(dist - exact) > 0.01 * exact
    other = labels[nn] != labels[exact_nn]
    print(
        json.dumps(
            {
                "peer": peer,
                "prep_s": prep,
                "compute_s": compute,
                "queries": int(len(tokens)),
                "dead": int(dead.sum()),
                "dead_off": int((off & dead).sum()),
                "dead_other": int((other & dead).sum()),
                "trained": int((~dead).sum()),
                "trained_off": int((off & ~dead).sum()),
                "trained_other": int((other & ~dead).sum()),
            }
        )
    )


def numpy_mm(np, x, labels, tokens, block=256):
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.empty(len(tokens), np.float32)
    nn = np.empty(len(tokens), np.int64)
    for s in range(0, len(tokens), block):
        t = tokens[s : s + block]
        d2 = sq[t, None] + sq[None, :] - 2.0 * (x[t] @ x.T)
        d2[labels[None, :] == labels[t, None]] = np.inf
        nn[s : s + block] = j = d2.argmin(axis=1)
        dist[s : s + block] = np.sqrt(np.maximum(d2[np.arange(len(t)), j], 0))
    return dist, nn


def numpy_direct(np, x, labels, tokens, rows=8192):
    dist = np.empty(len(tokens), np.float32)
    nn = np.empty(len(tokens), np.int64)
    diff = np.empty((rows, x.shape[1]), np.float32)
    for i, t in enumerate(tokens):
        best, arg = np.inf, -1
        for s in range(0, len(x), rows):
            blk = x[s : s + rows]
            dv = diff[: len(blk)]
            np.subtract(blk, x[t], out=dv)
            d2 = np.einsum("ij,ij->i", dv, dv)
            d2[labels[s : s + rows] == labels[t]] = np.inf
            j = int(d2.argmin())
            if d2[j] < best:
                best, arg = d2[j], s + j
        dist[i], nn[i] = np.sqrt(best), arg
    return dist, nn


def torch_mm(torch, x, lab, tok, block=4096):
    sq = (x * x).sum(1)
    dist, nn = [], []
    for s in range(0, len(tok), block):
        t = tok[s : s + block]
        d2 = sq[t, None] + sq[None, :] - 2.0 * (x[t] @ x.T)
        d2.masked_fill_(lab[None, :] == lab[t, None], float("inf"))
        v, j = d2.min(dim=1)
        dist.append(v.clamp_min(0).sqrt())
        nn.append(j)
    return torch.cat(dist), torch.cat(nn)


def torch_cdist(torch, x, lab, tok, block=1024):
    dist, nn = [], []
    for s in range(0, len(tok), block):
        t = tok[s : s + block]
        d = torch.cdist(x[t], x, compute_mode="donot_use_mm_for_euclid_dist")
        d.masked_fill_(lab[None, :] == lab[t, None], float("inf"))
        v, j = d.min(dim=1)
        dist.append(v)
        nn.append(j)
    return torch.cat(dist), torch.cat(nn)


if __name__ == "__main__":
    main()
