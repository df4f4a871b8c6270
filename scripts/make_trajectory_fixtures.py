#!/usr/bin/env python3
"""Write the trajectory fixtures under tests/fixtures/trajectory/.

One deterministic array W[step, token, dim] of shape (9, 5, 3): values are
multiples of 1/8 below 16, so bf16, f16 and f32 hold them exactly, and the
same array is stored every way `--trajectory` reads:

  traj_bf16.safetensors   "W" as U16 (bf16 bit patterns), plus a 2-D "bias"
  traj_f32.safetensors    "W" as F32
  contiguous_u16.h5       "W" uint16 (bf16 bits), contiguous
  chunked_u16.h5          chunks (4, 3, 2): a chunk spans 4 steps and cuts
                          the token and dim axes; edge chunks are partial
  gzip_u16.h5             chunks (4, 3, 2), gzip level 4
  gzip_shuffle_u16.h5     chunks (4, 3, 2), shuffle + gzip
  auto_u16.h5             h5py's own chunk shape (chunks=True), gzip
  f16_gzip.h5             float16, chunks (2, 5, 3), shuffle + gzip
  f32_contiguous.h5       float32, contiguous
  latest_gzip_u16.h5      libver="latest" (superblock v3, v2 object headers,
                          fixed-array chunk index), chunks (4, 3, 2), gzip
  nested.h5               group "run": "run/W" float32 chunked (3, 5, 3),
                          "run/V" float32 (9, 5, 3) contiguous (W + 1), and a
                          2-D "run/bias" (no key: two 3-D datasets, an error)
  unwritten_u16.h5        "W" uint16 of shape (2**40, 1, 1), chunks (1024, 1,
                          1), no chunk written: a file of a few KB that
                          declares 10^12 steps of fill values (the hostile
                          tests extend it, sparse, so that its length
                          allows the shape)
  wide_u16.h5             "W" uint16 of shape (4, 2**20, 2**20), chunks (1,
                          64, 64), no chunk written: one step of 2 TiB
  expected_bf16.bin, expected_f16.bin, expected_f32.bin
                          the array's little-endian bytes (numpy tofile),
                          which the tests compare every step against

Rows repeat on purpose (token 3 equals token 1 at every even step; step 5
equals step 4), as a survey of a real run would find.

Needs numpy and h5py (pip install numpy h5py); the tests need neither.
Usage: python3 scripts/make_trajectory_fixtures.py
"""
import json
import struct
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "trajectory"


def the_array():
    steps, tokens, dim = 9, 5, 3
    i = np.arange(steps * tokens * dim).reshape(steps, tokens, dim)
    w = ((i * 37) % 101 - 50) / 8.0  # multiples of 1/8 in [-6.25, 6.25]
    w[::2, 3, :] = w[::2, 1, :]
    w[5] = w[4]
    return w.astype(np.float32)


def bf16_bits(w):
    bits = w.astype("<f4").view("<u4")
    assert (bits & 0xFFFF == 0).all(), "values must be exact in bf16"
    return (bits >> 16).astype("<u2")


def safetensors(tensors):
    """A safetensors file: {name: (dtype string, numpy array)}."""
    header, data, off = {}, b"", 0
    for name, (dtype, a) in tensors.items():
        raw = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def h5(name, data, libver=None, **kw):
    with h5py.File(OUT / name, "w", libver=libver or "earliest") as f:
        f.create_dataset("W", data=data, **kw)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    w = the_array()
    assert (w.astype(np.float16).astype(np.float32) == w).all()
    bits = bf16_bits(w)
    bits.tofile(OUT / "expected_bf16.bin")
    w.astype("<f2").tofile(OUT / "expected_f16.bin")
    w.astype("<f4").tofile(OUT / "expected_f32.bin")

    bias = np.arange(6, dtype="<f4").reshape(2, 3)
    (OUT / "traj_bf16.safetensors").write_bytes(safetensors({"W": ("U16", bits), "bias": ("F32", bias)}))
    (OUT / "traj_f32.safetensors").write_bytes(safetensors({"W": ("F32", w)}))

    h5("contiguous_u16.h5", bits)
    h5("chunked_u16.h5", bits, chunks=(4, 3, 2))
    h5("gzip_u16.h5", bits, chunks=(4, 3, 2), compression="gzip", compression_opts=4)
    h5("gzip_shuffle_u16.h5", bits, chunks=(4, 3, 2), compression="gzip", shuffle=True)
    h5("auto_u16.h5", bits, chunks=True, compression="gzip")
    h5("f16_gzip.h5", w.astype("<f2"), chunks=(2, 5, 3), compression="gzip", shuffle=True)
    h5("f32_contiguous.h5", w)
    h5("latest_gzip_u16.h5", bits, libver="latest", chunks=(4, 3, 2), compression="gzip")
    with h5py.File(OUT / "nested.h5", "w", libver="earliest") as f:
        g = f.create_group("run")
        g.create_dataset("W", data=w, chunks=(3, 5, 3))
        g.create_dataset("V", data=w + 1)
        g.create_dataset("bias", data=bias)
    with h5py.File(OUT / "unwritten_u16.h5", "w", libver="earliest") as f:
        f.create_dataset("W", shape=(2**40, 1, 1), dtype="<u2", chunks=(1024, 1, 1), maxshape=(None, 1, 1))
    with h5py.File(OUT / "wide_u16.h5", "w", libver="earliest") as f:
        f.create_dataset("W", shape=(4, 2**20, 2**20), dtype="<u2", chunks=(1, 64, 64))


if __name__ == "__main__":
    main()
