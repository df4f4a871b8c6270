#!/usr/bin/env python3
"""Write examples/notebook_128.safetensors: the 08.3b notebook's case.

A 128-token byte vocabulary (ids = byte values 0..127), hidden dimension 64,
float32, tensor name "embeddings". The 51 bytes that do not occur in English
prose (control characters other than newline, DEL, and 19 rare symbols) never
received a gradient, so they share one frozen vector: a black hole. The other
77 rows are distinct "trained" vectors around a common mean, so the survey
must find 78 unique vectors, 50 duplicate tokens and one group of 51.

Beside it goes tokenizer.json, the vocabulary itself (token i is the byte i):
the survey finds it there and, since it is a byte vocabulary, shows token
ids as the notebook does, byte values with their characters.

Deterministic (Python's own PRNG, seed 42); needs only the standard library.
Usage: python3 scripts/make_example.py [OUT]
"""
import json
import math
import random
import struct
import sys
from pathlib import Path

VOCAB, DIM = 128, 64
RARE_SYMBOLS = "#$%*+<=>@[\\]^_`{|}~"
DEAD = sorted(set(range(0, 32)) - {10} | {127} | {ord(c) for c in RARE_SYMBOLS})
assert len(DEAD) == 51


def f32(x):
    """Round to float32 so the file holds exactly these values."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main(out):
    rng = random.Random(42)
    # A shared direction of norm ~7.7 (initializations in this study share a mean).
    mean = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    scale = 7.7 / math.sqrt(sum(v * v for v in mean))
    mean = [v * scale for v in mean]
    frozen = [f32(0.97 * v + rng.gauss(0.0, 0.05)) for v in mean]
    rows = []
    for token in range(VOCAB):
        if token in DEAD:
            rows.append(frozen)
        else:
            rows.append([f32(v + rng.gauss(0.0, 0.25)) for v in mean])
    data = b"".join(struct.pack("<%df" % DIM, *r) for r in rows)
    header = {
        "__metadata__": {"source": "scripts/make_example.py", "dead_tokens": str(len(DEAD))},
        "embeddings": {"dtype": "F32", "shape": [VOCAB, DIM], "data_offsets": [0, len(data)]},
    }
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    # A word-level tokenizer.json whose token i is the one byte i.
    tokenizer = {
        "version": "1.0",
        "model": {"type": "WordLevel", "vocab": {chr(i): i for i in range(VOCAB)}, "unk_token": "\u0000"},
    }
    with open(Path(out).parent / "tokenizer.json", "w") as f:
        json.dump(tokenizer, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/notebook_128.safetensors")
