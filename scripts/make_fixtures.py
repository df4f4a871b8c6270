#!/usr/bin/env python3
"""Write the format fixtures under tests/fixtures/ from the bundled example.

Every fixture holds the matrix of examples/notebook_128.safetensors (float32,
128x64, one black hole of 51 rows), so a test can check that each format gives
the same groups and norms as the safetensors original:

  npy/   example.npy (<f4, C order), example_be.npy (>f4), example_fortran.npy
         (<f4, Fortran order), example_bf16.npy (ml_dtypes bfloat16, saved as
         <V2), example.npz (np.savez: "embeddings" and "positions"),
         example_compressed.npz (np.savez_compressed), example_lazy.npz
         ("embeddings" stored, "junk" deflated with a stream broken past
         its header: only the chosen member may be inflated)
  hf/sharded/   a folder with model.safetensors.index.json and three shards:
         the embedding in shard 2, lm_head.weight (the example times 2, so
         not tied) in shard 3, and a 1-D norm plus a 2-D layer in shard 1;
         a byte-level BPE tokenizer.json covering ids 0..119 (rows 120..127
         are padding rows)
  hf/hub/models--sg-test--tiny/   a Hugging Face cache entry: refs/main and
         refs/v2 name two snapshots whose files are symlinks into blobs/
         (main: the f32 example with the tokenizer; v2: the example as BF16)

Needs numpy and ml_dtypes (pip install numpy ml_dtypes).
Usage: python3 scripts/make_fixtures.py
"""
import hashlib
import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"
TOKENS = 120


def read_example():
    b = (ROOT / "examples" / "notebook_128.safetensors").read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8 : 8 + n])["embeddings"]
    s, e = h["data_offsets"]
    return np.frombuffer(b[8 + n + s : 8 + n + e], dtype="<f4").reshape(h["shape"]).copy()


def safetensors(tensors, metadata=None):
    """A safetensors file: {name: (dtype string, numpy array)}."""
    header, data, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, a) in tensors.items():
        raw = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def bytes_to_unicode():
    """GPT-2's byte-to-unicode table (as in its encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tokenizer_json():
    """Byte-level BPE over single bytes 0..TOKENS-1; id 0 is an added special token."""
    table = bytes_to_unicode()
    vocab = {table[i]: i for i in range(TOKENS)}
    return json.dumps(
        {
            "version": "1.0",
            "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": True}],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": vocab, "merges": []},
        },
        ensure_ascii=False,
        indent=1,
    ).encode()


def npy_fixtures(x):
    d = OUT / "npy"
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "example.npy", x)
    np.save(d / "example_be.npy", x.astype(">f4"))
    np.save(d / "example_fortran.npy", np.asfortranarray(x))
    np.save(d / "example_bf16.npy", x.astype(ml_dtypes.bfloat16))
    pos = np.arange(16 * 64, dtype="<f4").reshape(16, 64)
    np.savez(d / "example.npz", embeddings=x, positions=pos)
    np.savez_compressed(d / "example_compressed.npz", embeddings=x, positions=pos)
    lazy_npz(d / "example_lazy.npz", x)


def lazy_npz(path, x):
    """An .npz whose member "junk" (deflated, 256x64 zeros) has its deflate
    stream broken past the header: reading "embeddings" must not inflate it."""
    def npy_bytes(a):
        b = io.BytesIO()
        np.save(b, a)
        return b.getvalue()

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("embeddings.npy", npy_bytes(x), compress_type=zipfile.ZIP_STORED)
        z.writestr("junk.npy", npy_bytes(np.zeros((256, 64), dtype="<f4")))
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("junk.npy")
    # The member's data starts after its local header (30 bytes + name + extra).
    n, m = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + n + m
    end = start + info.compress_size
    for i in range(end - 8, end):
        data[i] = 0xFF
    path.write_bytes(bytes(data))


def sharded(x):
    d = OUT / "hf" / "sharded"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shards = {
        "model-00001-of-00003.safetensors": {
            "model.norm.weight": ("F32", np.ones(64, dtype="<f4")),
            "model.layers.0.mlp.weight": ("F32", np.full((16, 64), 0.5, dtype="<f4")),
        },
        "model-00002-of-00003.safetensors": {"model.embed_tokens.weight": ("F32", x)},
        "model-00003-of-00003.safetensors": {"lm_head.weight": ("F32", x * 2)},
    }
    weight_map = {}
    for name, tensors in shards.items():
        (d / name).write_bytes(safetensors(tensors, {"format": "pt"}))
        weight_map.update({t: name for t in tensors})
    index = {"metadata": {"total_size": sum(a.nbytes for t in shards.values() for _, a in t.values())}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    (d / "tokenizer.json").write_bytes(tokenizer_json())


def hub(x):
    entry = OUT / "hf" / "hub" / "models--sg-test--tiny"
    if entry.exists():
        shutil.rmtree(entry)
    (entry / "blobs").mkdir(parents=True)
    (entry / "refs").mkdir()

    def blob(content):
        sha = hashlib.sha256(content).hexdigest()
        (entry / "blobs" / sha).write_bytes(content)
        return sha

    revisions = {
        "main": ("a" * 40, {"model.safetensors": safetensors({"model.embed_tokens.weight": ("F32", x)}), "tokenizer.json": tokenizer_json()}),
        "v2": ("b" * 40, {"model.safetensors": safetensors({"model.embed_tokens.weight": ("BF16", x.astype(ml_dtypes.bfloat16))})}),
    }
    for ref, (commit, files) in revisions.items():
        (entry / "refs" / ref).write_text(commit)
        snap = entry / "snapshots" / commit
        snap.mkdir(parents=True)
        for name, content in files.items():
            os.symlink(f"../../blobs/{blob(content)}", snap / name)


def main():
    x = read_example()
    npy_fixtures(x)
    sharded(x)
    hub(x)
    print(f"wrote fixtures under {OUT}")


if __name__ == "__main__":
    main()
