#!/usr/bin/env python3
"""Write the GGUF fixtures under tests/fixtures/gguf/ with the `gguf` package.

Two source matrices:
  * the bundled example, examples/notebook_128.safetensors (128 x 64, F32, one
    black hole of 51 identical rows), as token_embd.weight of the F32, F16,
    BF16, Q8_0 and Q4_0 files (64 columns = two blocks of 32);
  * a 40 x 512 matrix for the 256-value K-quants (two super-blocks per row)
    with duplicate rows built in: row 3 copied to rows 11, 25 and 39, row 8 to
    row 30, and rows 17 and 33 all zeros.
Each file also holds a smaller output.weight (its own duplicates built in).

Q8_0, Q4_0 and BF16 are quantized by gguf.quants.quantize. The package has no
quantizer for Q4_K and Q6_K, so this script packs those blocks itself (a simple
min/max quantizer, not llama.cpp's search; any valid blocks serve a reader's
test). Next to every quantized file, `<file>.<tensor>.f32` holds the values
gguf.quants.dequantize computes from the stored blocks (raw little-endian
f32, row-major): the reference the Rust dequantizer must match bit for bit.

manifest.json records, from gguf.GGUFReader reading each written file back,
every tensor's type, shape (rows, cols), byte offset and size in the file,
and the tokenizer metadata written, so the tests can check the reader
against what this independent writer/reader pair says.

Deterministic (numpy seed 7). Usage: python3 scripts/make_gguf_fixtures.py
"""
import json
import struct
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"

GPT2_TOKENS = ["!", "Ġhello", "Ġthe", "Ċ", "<|endoftext|>"]
GPT2_TYPES = [1, 1, 1, 1, 3]
LLAMA_TOKENS = ["<unk>", "<s>", "</s>", "<0x0A>", "▁the", "▁hello", "llama"]
LLAMA_TYPES = [2, 3, 3, 6, 1, 1, 1]


def read_safetensors(path):
    """The one F32 matrix of a safetensors file, read from its header."""
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    [(name, t)] = [(k, v) for k, v in header.items() if k != "__metadata__"]
    assert t["dtype"] == "F32", t
    start, end = t["data_offsets"]
    return np.frombuffer(b[8 + n + start : 8 + n + end], dtype="<f4").reshape(t["shape"])


def distinct_rows(m):
    return len({r.tobytes() for r in m})


# --- Q4_K and Q6_K blocks (layouts of ggml's block_q4_K and block_q6_K) ---


def f16(x):
    return np.float16(x)


def q4_k_block(x):
    """256 values -> 144 bytes: f16 d, f16 dmin, 12 bytes scales/mins, 128 bytes nibbles."""
    xs = x.reshape(8, 32).astype(np.float64)
    mins = -np.minimum(xs.min(axis=1), 0.0)  # value = d*sc*q - dmin*m, m >= 0
    scales = (xs.max(axis=1) + mins) / 15.0
    d, dmin = f16(scales.max() / 63.0), f16(mins.max() / 63.0)
    sc = np.clip(np.round(scales / float(d)), 0, 63) if d > 0 else np.zeros(8)
    mn = np.clip(np.round(mins / float(dmin)), 0, 63) if dmin > 0 else np.zeros(8)
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    q = np.zeros((8, 32), dtype=np.uint8)
    for j in range(8):
        step = np.float32(d) * np.float32(sc[j])
        if step > 0:
            off = np.float32(dmin) * np.float32(mn[j])
            q[j] = np.clip(np.round((xs[j] + off) / step), 0, 15)
    packed = np.zeros(12, dtype=np.uint8)
    for j in range(4):
        packed[j] = sc[j] | ((sc[j + 4] >> 4) << 6)
        packed[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6)
        packed[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4)
    qs = np.concatenate([q[2 * c] | (q[2 * c + 1] << 4) for c in range(4)])
    return d.tobytes() + dmin.tobytes() + packed.tobytes() + qs.astype(np.uint8).tobytes()


def q6_k_block(x):
    """256 values -> 210 bytes: 128 bytes ql, 64 bytes qh, 16 i8 scales, f16 d."""
    xs = x.reshape(16, 16).astype(np.float64)
    scales = np.abs(xs).max(axis=1) / 31.0
    d = f16(scales.max() / 127.0)
    sc = np.clip(np.round(scales / float(d)), -128, 127) if d > 0 else np.zeros(16)
    sc = sc.astype(np.int8)
    q = np.full((16, 16), 32, dtype=np.uint8)
    for j in range(16):
        step = np.float32(d) * np.float32(sc[j])
        if step != 0:
            q[j] = (np.clip(np.round(xs[j] / step), -32, 31) + 32).astype(np.uint8)
    q = q.reshape(256)
    ql = np.zeros(128, dtype=np.uint8)
    qh = np.zeros(64, dtype=np.uint8)
    for h in range(2):
        for l in range(32):
            a = [int(q[h * 128 + l + 32 * k]) for k in range(4)]
            ql[h * 64 + l] = (a[0] & 0xF) | ((a[2] & 0xF) << 4)
            ql[h * 64 + l + 32] = (a[1] & 0xF) | ((a[3] & 0xF) << 4)
            qh[h * 32 + l] = (a[0] >> 4) | ((a[1] >> 4) << 2) | ((a[2] >> 4) << 4) | ((a[3] >> 4) << 6)
    return ql.tobytes() + qh.tobytes() + sc.tobytes() + d.tobytes()


def k_quantize(m, block):
    rows = [b"".join(block(r[i : i + 256]) for i in range(0, m.shape[1], 256)) for r in m]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(m.shape[0], -1)


def encode(m, qtype):
    """The stored array GGUFWriter takes for `m` as `qtype`, and its raw_dtype."""
    if qtype == T.F32:
        return m.astype(np.float32), None
    if qtype == T.F16:
        return m.astype(np.float16), None
    if qtype == T.Q4_K:
        return k_quantize(m, q4_k_block), T.Q4_K
    if qtype == T.Q6_K:
        return k_quantize(m, q6_k_block), T.Q6_K
    return quantize(m, qtype), qtype


def write(name, tensors, tokenizer=None, alignment=None, endian=gguf.GGUFEndian.LITTLE):
    """Writes OUT/name with `tensors` ([(tensor name, f32 matrix, qtype)]),
    and returns its manifest entry (read back with GGUFReader)."""
    path = OUT / name
    w = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_string("general.name", "singularity-gpu fixture")
    if tokenizer is not None:
        model, tokens, types = tokenizer
        w.add_tokenizer_model(model)
        w.add_token_list(tokens)
        if types is not None:
            w.add_token_types(types)
    expected = {}
    for tname, m, qtype in tensors:
        stored, raw = encode(m, qtype)
        if endian == gguf.GGUFEndian.BIG:
            w.add_tensor(tname, stored.byteswap(), raw_dtype=raw, tensor_endianess=endian)
        else:
            w.add_tensor(tname, stored, raw_dtype=raw)
        if raw is not None and qtype != T.BF16:
            values = dequantize(stored, qtype).astype("<f4")
            assert values.shape == m.shape, (values.shape, m.shape)
            # The quantizer must be sane: errors well below the values' range.
            err = np.abs(values - m).max()
            assert err < 0.2 * (np.abs(m).max() + 1e-9), (name, tname, err)
            out = f"{name}.{tname.split('.')[0]}.f32"
            (OUT / out).write_bytes(values.tobytes())
            expected[tname] = out
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    entry = {"alignment": alignment or 32, "tensors": {}}
    if endian == gguf.GGUFEndian.BIG:
        entry["big_endian"] = True
        return entry
    r = gguf.GGUFReader(str(path))
    for t in r.tensors:
        cols, rows = (int(x) for x in t.shape)  # GGUF dims are innermost first
        entry["tensors"][t.name] = {
            "type": t.tensor_type.name,
            "shape": [rows, cols],
            "offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes),
            "expected_f32": expected.get(t.name),
        }
    if tokenizer is not None:
        model, tokens, types = tokenizer
        entry["tokenizer"] = {"model": model, "tokens": tokens, "token_types": types}
    assert path.stat().st_size < 100_000, (name, path.stat().st_size)
    return entry


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    notebook = read_safetensors(ROOT / "examples" / "notebook_128.safetensors")
    assert notebook.shape == (128, 64) and notebook.shape[1] % 32 == 0
    head = (rng.standard_normal((96, 64)) * 0.5).astype(np.float32)
    head[50] = head[7]
    head[80] = head[7]

    kmat = (rng.standard_normal((40, 512)) * 0.8 + 0.1).astype(np.float32)
    for r in (11, 25, 39):
        kmat[r] = kmat[3]
    kmat[30] = kmat[8]
    kmat[17] = 0.0
    kmat[33] = 0.0
    khead = (rng.standard_normal((24, 256)) * 0.3).astype(np.float32)
    khead[20] = khead[2]

    # Rounding must not merge or split rows: F16/BF16 files keep the groups.
    for m in (notebook, head):
        n = distinct_rows(m)
        assert distinct_rows(m.astype(np.float16)) == n
        assert distinct_rows(quantize(m, T.BF16)) == n

    gpt2 = ("gpt2", GPT2_TOKENS, GPT2_TYPES)
    gpt2_untyped = ("gpt2", GPT2_TOKENS, None)
    llama = ("llama", LLAMA_TOKENS, LLAMA_TYPES)
    manifest = {}
    for name, qtype, tok, align in [
        ("f32.gguf", T.F32, gpt2_untyped, None),
        ("f16.gguf", T.F16, gpt2, 64),
        ("bf16.gguf", T.BF16, llama, None),
        ("q8_0.gguf", T.Q8_0, gpt2, None),
        ("q4_0.gguf", T.Q4_0, llama, 128),
    ]:
        manifest[name] = write(
            name,
            [("token_embd.weight", notebook, qtype), ("output.weight", head, qtype)],
            tok,
            align,
        )
    for name, qtype, tok in [("q4_k.gguf", T.Q4_K, llama), ("q6_k.gguf", T.Q6_K, gpt2)]:
        manifest[name] = write(
            name, [("token_embd.weight", kmat, qtype), ("output.weight", khead, qtype)], tok
        )
    manifest["big_endian.gguf"] = write(
        "big_endian.gguf",
        [("token_embd.weight", notebook[:4, :32].copy(), T.F32)],
        endian=gguf.GGUFEndian.BIG,
    )
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
