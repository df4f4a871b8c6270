#!/usr/bin/env python3
"""Write the --indicators fixtures under tests/fixtures/indicators/, and the
indicators numpy computes for them in expected.json (never by running this
program).

model_f32.safetensors and model_bf16.safetensors each hold an untied model of
1000 tokens: `model.embed_tokens.weight` [1000, 32] and `lm_head.weight`
[1000, 32], as float32 and as bfloat16 (rounded to nearest even).
- In the input embedding, tokens 990..997 share one vector (a black hole: the
  survey's reference set); every other row is random.
- In the output head, rows have a common offset and one dominant direction
  (the first principal component); tokens 990..997 and twelve "hidden"
  under-trained tokens (HIDDEN) sit near one vector u0, each at its own
  distance, so they are the 2% of tokens nearest the reference mean once the
  component is removed; row 3 holds a NaN (null indicators, left out of the
  mean, the component and the ranking).

expected.json, per file: input_norm (of the embedding), cosine_distance,
cosine_distance_pc1_removed, l2_to_reference_mean (of the head; null for row
3), the threshold (numpy.percentile(main, 2)), the candidates (at or below
it, lowest first, ties by id), the reference ids, and the first principal
component (numpy.linalg.svd of the mean-centred finite rows). All in float64
from the stored values.

Needs numpy. Usage: python3 scripts/make_indicator_fixtures.py
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "indicators")
N, D = 1000, 32
REFERENCE = list(range(990, 998))
HIDDEN = [5, 77, 123, 200, 201, 400, 512, 650, 777, 800, 901, 989]


def bf16_round(a):
    """float32 array → bfloat16 bits (uint16), round to nearest even."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def bf16_value(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + b"".join(blobs)


def matrices():
    rng = np.random.default_rng(13)
    emb = rng.normal(0, 0.5, (N, D)).astype(np.float32)
    emb[REFERENCE] = emb[REFERENCE[0]]
    offset = rng.normal(0, 1.0, D)
    pc = rng.normal(0, 1.0, D)
    pc /= np.linalg.norm(pc)
    head = offset + rng.normal(0, 1.0, (N, D)) + rng.normal(0, 4.0, (N, 1)) * pc
    u0 = offset + rng.normal(0, 0.3, D)
    for i, t in enumerate(REFERENCE):
        head[t] = u0 + rng.normal(0, 0.002, D)
    for i, t in enumerate(HIDDEN):
        head[t] = u0 + rng.normal(0, 0.01 * (i + 1), D)
    head = head.astype(np.float32)
    head[3, 7] = np.nan
    return emb, head


def percentile(v, q):
    return float(np.percentile(v, q))


def indicators(emb, head):
    emb = emb.astype(np.float64)
    head = head.astype(np.float64)
    finite = np.isfinite(head).all(axis=1)
    x = head[finite]
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    v = vt[0]
    mbar = head[REFERENCE].mean(axis=0)

    def cos_dist(a, b):
        na = np.linalg.norm(a, axis=-1)
        nb = np.linalg.norm(b)
        return 1 - (a @ b) / (na * nb)

    plain = cos_dist(head, mbar)
    hr = head - np.outer(head @ v, v)
    mr = mbar - (mbar @ v) * v
    removed = cos_dist(hr, mr)
    l2 = np.linalg.norm(head - mbar, axis=1)
    main = removed[finite]
    threshold = percentile(main, 2)
    ids = np.nonzero(finite)[0]
    order = sorted((float(removed[i]), int(i)) for i in ids if removed[i] <= threshold)
    # The margin between the last candidate and the next token: the test
    # needs it well above float32 rounding to expect the same set.
    above = sorted(float(removed[i]) for i in ids if removed[i] > threshold)
    opt = lambda a: [None if not np.isfinite(t) else float(t) for t in a]
    return {
        "reference": REFERENCE,
        "hidden": HIDDEN,
        "input_norm": opt(np.linalg.norm(emb, axis=1)),
        "cosine_distance": opt(plain),
        "cosine_distance_pc1_removed": opt(removed),
        "l2_to_reference_mean": opt(l2),
        "threshold": threshold,
        "candidates": [i for _, i in order],
        "margin": above[0] - order[-1][0],
        "pc1": [float(t) for t in v],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    emb, head = matrices()
    expected = {}
    st = safetensors({"model.embed_tokens.weight": ("F32", emb), "lm_head.weight": ("F32", head)})
    open(os.path.join(OUT, "model_f32.safetensors"), "wb").write(st)
    expected["model_f32.safetensors"] = indicators(emb, head)
    eb, hb = bf16_round(emb), bf16_round(head)
    st = safetensors({"model.embed_tokens.weight": ("BF16", eb), "lm_head.weight": ("BF16", hb)})
    open(os.path.join(OUT, "model_bf16.safetensors"), "wb").write(st)
    expected["model_bf16.safetensors"] = indicators(bf16_value(eb), bf16_value(hb))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    for k, e in expected.items():
        print(k, "candidates", e["candidates"], "margin", e["margin"], "threshold", e["threshold"])


if __name__ == "__main__":
    main()
