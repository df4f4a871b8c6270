#!/usr/bin/env python3
"""Train a tiny byte-level model from a singularity and write the run as a
checkpoint series: real bf16 dynamics for tests/integration/series.rs and the README demo.

What the run shows
------------------
A bigram next-byte model (vocabulary 256, dimension DIM): an input embedding
E [256, DIM] and a separate output head U [256, DIM], logits = E[x] @ U^T,
softmax cross-entropy against the next byte of TEXT (read cyclically, so every
byte of the text is at an input position). Every row of E starts as the same
bf16 vector: at step 0 the whole vocabulary is one black hole. The weights
live in bf16: after each AdamW update (moments and bias correction in
float32, as torch.optim.AdamW does for one parameter tensor) every weight is
rounded to bf16 (round to nearest, ties to even, on the float32 bits).

- Each step trains on the next BATCH positions of the text, so the bytes
  enter training at different steps (steps 1..13, one pass over the text):
  a byte gets its first gradient at the first step whose window holds it.
- A byte "evaporates" when its row first differs from the hole's (the row of
  the bytes that never occur). Most bytes evaporate at their first gradient
  step. Adam's bias correction counts the global step, so a byte whose first
  gradient comes at step t takes a first step of only r(t)*LR per element
  (r = m_hat/sqrt(v_hat) = 1, 0.74, 0.64, 0.55 at t = 1, 2, 3, 5; about 0.5
  from t = 8 on), which can round back onto the hole's lattice point: in this
  run 'b' (first gradient at step 5) and 'f' (step 6) evaporate at step 7.
  The script asserts that at least one byte is late like this.
- Bytes whose first windows hold the same next bytes get the same gradient
  (all rows, hence all logits, are equal at that point), so some evaporate
  together onto one new point: small new black holes of text bytes form.
- The 256 - len(set(TEXT)) bytes that never occur get no gradient; Adam's
  update for them is exactly 0, and only decoupled weight decay
  (w *= 1 - LR*WD) touches them. The initial vector has DIM - 1 elements of
  magnitude 1.0..1.1, where LR*WD*|w| is below half a bf16 step (2^-8 in
  [1, 2)), and one of magnitude 1.80..1.87, where it is above: weight decay
  moves the whole hole, as one, at steps 1..6, until that element has shrunk
  to where the decay rounds away; then the hole is frozen. The dead bytes
  never evaporate (asserted: dead_moved_steps is non-empty).

Files written under tests/fixtures/series/ (deterministic, about 0.8 MB):
- run/step_<N>.safetensors for N = 0 (the initialization), 1, ..., STEPS,
  with unpadded numbers on purpose (step_2 must sort before step_10): the
  tensors "model.embed_tokens.weight" (E) and "lm_head.weight" (U), BF16.
- run.h5: dataset "W" [STEPS + 1, 256, DIM] uint16 (E's bf16 bit patterns
  per step), chunked (4 steps a chunk) and gzip-compressed, as h5py users
  write trajectories.
- run_W.safetensors: the same trajectory as one U16 tensor "W".
- text.txt: the training text.
- expected.json: what a survey of the series must report, computed here in
  numpy from the uint16 bit patterns (and the evaporation steps cross-checked
  against the trainer's own in-memory state), never by running the tool:
  steps, text_tokens, dead_tokens, evaporated_at and first_moved per token,
  dead_moved_steps, first_gradient (the first step each byte got a gradient),
  per_step {step, n_unique, black_holes, largest, tokens_in_holes, moved,
  max_linf_steps, mean_l1_steps}, evaporated_events, events (every event
  of the series: evaporated, split, merged, formed, in the JSON shape of
  singularity-gpu-series/2); and the same for the selections `--steps ::3`
  ("every_3") and `--steps 10:20` ("range_10_20").

Regenerate (numpy and h5py; the tests themselves need no Python):
    python3 scripts/train_series.py [OUT_DIR]
"""
import json
import os
import struct
import sys

import h5py
import numpy as np

# ---------------------------------------------------------------------------
# The run's settings
# ---------------------------------------------------------------------------

TEXT = (
    b"Every token starts on one point. "
    b"The bytes of this text drift away, one by one; "
    b"the rest stay frozen together."
)
VOCAB = 256
DIM = 8
STEPS = 60  # updates; 61 saved states with step 0
BATCH = 8  # consecutive text positions per step (cyclic windows)
LR = 0.0028
WEIGHT_DECAY = 0.0022 / LR  # LR * WD = 0.0022: moves elements of magnitude > ~1.78
BETAS = (0.9, 0.999)  # as in tests/fixtures/thimble9/metadata.json
EPS = 1e-8
SEED = 6
MAG_SMALL = (1.0, 1.1)  # magnitudes of most elements of the initial vector
MAG_DRIFT = (1.8, 1.87)  # N_DRIFT elements where weight decay moves the hole
N_DRIFT = 1
EMBED_KEY = "model.embed_tokens.weight"
HEAD_KEY = "lm_head.weight"


# ---------------------------------------------------------------------------
# bf16
# ---------------------------------------------------------------------------


def bf16_bits(x):
    """float32 array -> uint16 bf16 bits, round to nearest, ties to even."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    assert np.all(np.isfinite(x)), "non-finite weight"
    b = x.view(np.uint32).astype(np.uint64)
    rounded = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_value(bits):
    """uint16 bf16 bits -> float32 values (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_bf16(x):
    """Rounds float32 values to the nearest bf16 value (as float32)."""
    return bf16_value(bf16_bits(x))


def ordered(bits):
    """bf16 bits -> position on the ordered lattice (int64): the number of
    steps from +0, negative below zero (-0 and +0 both at 0)."""
    b = bits.astype(np.int64)
    mag = b & 0x7FFF
    return np.where(b & 0x8000, -mag, mag)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def train():
    """Runs the training; returns (bits per step [STEPS+1, 256, DIM] uint16,
    head bits per step, first-gradient step per byte, the trainer's own
    evaporation step per byte, losses)."""
    rng = np.random.default_rng(SEED)

    # One random bf16 vector for every row: magnitudes in [0.5, 2), random
    # signs, so every element sits where a bf16 step is 2^-9..2^-7.
    mags = np.concatenate([
        rng.uniform(*MAG_SMALL, size=DIM - N_DRIFT),
        rng.uniform(*MAG_DRIFT, size=N_DRIFT),
    ])
    mags = rng.permutation(mags)
    signs = rng.choice([-1.0, 1.0], size=DIM)
    e0 = to_bf16((mags * signs).astype(np.float32))
    E = np.tile(e0, (VOCAB, 1)).astype(np.float32)
    U = to_bf16(rng.normal(0.0, 0.5, size=(VOCAB, DIM)).astype(np.float32))

    state = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in (("E", E), ("U", U))}
    data = np.frombuffer(TEXT, dtype=np.uint8).astype(np.int64)
    n = len(data)

    all_bits = [bf16_bits(E)]
    head_bits = [bf16_bits(U)]
    first_grad = {}
    losses = []
    for t in range(1, STEPS + 1):
        # The t-th window of BATCH consecutive positions (cyclic).
        pos = (np.arange(BATCH) + (t - 1) * BATCH) % n
        x = data[pos]
        y = data[(pos + 1) % n]
        for tok in x:
            first_grad.setdefault(int(tok), t)

        # Forward and backward of the mean cross-entropy.
        h = E[x]  # [B, DIM]
        logits = h @ U.T  # [B, VOCAB]
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        losses.append(float(-np.log(p[np.arange(BATCH), y]).mean()))
        d = p.copy()
        d[np.arange(BATCH), y] -= 1.0
        d /= BATCH
        gE = np.zeros_like(E)
        np.add.at(gE, x, d @ U)
        gU = d.T @ h

        # AdamW (torch.optim.AdamW's order: decay, then the Adam step), in
        # float32, then every weight back to bf16.
        for name, param, grad in (("E", E, gE), ("U", U, gU)):
            m, v = state[name]
            grad = grad.astype(np.float32)
            m *= BETAS[0]
            m += (1 - BETAS[0]) * grad
            v *= BETAS[1]
            v += (1 - BETAS[1]) * grad * grad
            m_hat = m / np.float32(1 - BETAS[0] ** t)
            v_hat = v / np.float32(1 - BETAS[1] ** t)
            new = param * np.float32(1 - LR * WEIGHT_DECAY)
            new -= np.float32(LR) * m_hat / (np.sqrt(v_hat) + np.float32(EPS))
            param[...] = to_bf16(new)
        all_bits.append(bf16_bits(E))
        head_bits.append(bf16_bits(U))

    return np.stack(all_bits), np.stack(head_bits), first_grad, losses


def trainer_evaporation(W, text_tokens, dead_tokens):
    """The trainer's view: the first step at which a text byte's row differs
    from the row of the dead bytes (all dead rows are identical: checked)."""
    out = {}
    for s in range(W.shape[0]):
        hole = W[s, dead_tokens[0]]
        assert np.all(W[s, dead_tokens] == hole), f"dead rows differ at step {s}"
        for tok in text_tokens:
            if tok not in out and not np.array_equal(W[s, tok], hole):
                out[tok] = s
    return out


# ---------------------------------------------------------------------------
# What a survey must report, from the bit patterns alone
# ---------------------------------------------------------------------------


def per_step_numbers(rows, prev):
    """The per-step numbers of one step (rows: [256, DIM] uint16), comparing
    with `prev` (the previous selected step's rows, or None)."""
    uniq, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    holes = counts[counts >= 2]
    out = {
        "n_unique": int(len(uniq)),
        "black_holes": int(len(holes)),
        "largest": int(counts.max()),
        "tokens_in_holes": int(holes.sum()),
    }
    if prev is None:
        out.update(moved=None, max_linf_steps=None, mean_l1_steps=None)
        return out
    changed = np.any(rows != prev, axis=1)
    out["moved"] = int(changed.sum())
    if not changed.any():
        out.update(max_linf_steps=0, mean_l1_steps=None)
        return out
    diff = np.abs(ordered(rows[changed]) - ordered(prev[changed]))
    out["max_linf_steps"] = int(diff.max())
    out["mean_l1_steps"] = float(diff.sum(axis=1).mean())
    return out


def core_evaporation(W, steps):
    """evaporated_at by the issue's definition, over the selected steps: a
    token in a group at the first step leaves at the first step where it is
    no longer in its group's core (the largest subset of the previous core
    still sharing one vector; ties: the subset holding the smallest id)."""
    evaporated = [None] * W.shape[1]
    first = W[0]
    _, inverse = np.unique(first, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    cores = []
    for g in np.unique(inverse):
        members = np.flatnonzero(inverse == g)
        if len(members) >= 2:
            cores.append(members)
    for i in range(1, W.shape[0]):
        new_cores = []
        for core in cores:
            _, inv, counts = np.unique(W[i, core], axis=0, return_inverse=True, return_counts=True)
            inv = inv.reshape(-1)
            best = max(range(len(counts)), key=lambda g: (counts[g], -core[inv == g].min()))
            kept = core[inv == best]
            for tok in core[inv != best]:
                evaporated[int(tok)] = steps[i]
            new_cores.append(kept)
        cores = new_cores
    return evaporated


def first_moved(W, steps):
    out = [None] * W.shape[1]
    for i in range(1, W.shape[0]):
        for tok in np.flatnonzero(np.any(W[i] != W[i - 1], axis=1)):
            if out[int(tok)] is None:
                out[int(tok)] = steps[i]
    return out


def labels(rows):
    """Per token, the index of its distinct row (bitwise)."""
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    return inverse.reshape(-1)


def by_label(tokens, lab):
    """`tokens` (ascending) grouped by their label: largest group first, then
    by smallest id, each ascending."""
    groups = [tokens[lab[tokens] == g] for g in np.unique(lab[tokens])]
    groups = [[int(t) for t in g] for g in groups]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def hole_events(W, steps, evaporated):
    """The events of a series, from the bit patterns: each step regrouped
    from scratch. Between two selected steps: `evaporated` (the tokens whose
    evaporated_at is the step); for each hole now, its tokens by their row at
    the previous step: no group of two or more is `formed`, two or more is
    `merged`; for each hole at the previous step, its tokens by their row
    now: anything but exactly one group of two or more is `split`. A split or
    merged hole is named by its size and smallest id, its largest group
    likewise, and the other groups are listed; a formed hole lists its
    tokens. Within a step: evaporated, split, merged, formed, each by
    smallest id."""
    order = {"evaporated": 0, "split": 1, "merged": 2, "formed": 3}
    out = []
    for i in range(1, W.shape[0]):
        step = steps[i]
        now, prev = labels(W[i]), labels(W[i - 1])
        found = []
        gone = [t for t, s in enumerate(evaporated) if s == step]
        if gone:
            found.append({"step": step, "kind": "evaporated", "token_ids": gone})
        for mine, other, kind in ((now, prev, "merged"), (prev, now, "split")):
            for g in np.unique(mine):
                hole = np.flatnonzero(mine == g)
                if len(hole) < 2:
                    continue
                groups = by_label(hole, other)
                big = sum(len(x) >= 2 for x in groups)
                if kind == "merged" and big == 0:
                    found.append({
                        "step": step, "kind": "formed", "size": len(hole),
                        "representative": int(hole[0]), "token_ids": [int(t) for t in hole],
                    })
                elif (kind == "merged" and big >= 2) or (kind == "split" and big != 1):
                    found.append({
                        "step": step, "kind": kind, "size": len(hole),
                        "representative": int(hole[0]),
                        "largest_piece": {"size": len(groups[0]), "representative": groups[0][0]},
                        "pieces": groups[1:],
                    })
        found.sort(key=lambda e: (order[e["kind"]], e.get("representative", -1)))
        out.extend(found)
    return out


def survey(W, steps):
    """Everything a series report holds that the tests compare."""
    per_step = []
    for i, s in enumerate(steps):
        row = {"step": s}
        row.update(per_step_numbers(W[i], W[i - 1] if i else None))
        per_step.append(row)
    evaporated = core_evaporation(W, steps)
    events = {}
    for tok, s in enumerate(evaporated):
        if s is not None:
            events.setdefault(s, []).append(tok)
    return {
        "steps": steps,
        "per_step": per_step,
        "evaporated_at": evaporated,
        "first_moved": first_moved(W, steps),
        "evaporated_events": [{"step": s, "token_ids": ids} for s, ids in sorted(events.items())],
        "events": hole_events(W, steps, evaporated),
    }


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype string, numpy array), written in order."""
    header = {}
    offset = 0
    blobs = []
    for name, dtype, arr in tensors:
        blob = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for blob in blobs:
            f.write(blob)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "series")
    run_dir = os.path.join(out, "run")
    os.makedirs(run_dir, exist_ok=True)
    for name in os.listdir(run_dir):
        if name.startswith("step_"):
            os.remove(os.path.join(run_dir, name))

    W, H, first_grad, losses = train()
    steps = list(range(STEPS + 1))
    text_tokens = sorted(set(TEXT))
    dead_tokens = [t for t in range(VOCAB) if t not in set(TEXT)]
    assert sorted(first_grad) == text_tokens, "every text byte is an input"

    # Cross-check the two definitions of evaporation on the full series.
    mine = trainer_evaporation(W, text_tokens, dead_tokens)
    full = survey(W, steps)
    want = [mine.get(t) for t in range(VOCAB)]
    assert full["evaporated_at"] == want, (full["evaporated_at"], want)
    assert all(mine.get(t) is not None for t in text_tokens), "a text byte never evaporated"

    dead_moved = [s for s in steps[1:] if np.any(W[s, dead_tokens[0]] != W[s - 1, dead_tokens[0]])]
    assert dead_moved, "weight decay never moved the hole: raise LR * WEIGHT_DECAY"
    late = [t for t in text_tokens if mine[t] > first_grad[t]]
    assert late, "every byte evaporated at its first gradient step"
    entry_steps = sorted(set(mine.values()))
    assert len(entry_steps) >= 4, "evaporation should spread over several steps"

    # Per-step files, unpadded step numbers.
    for s in steps:
        write_safetensors(
            os.path.join(run_dir, f"step_{s}.safetensors"),
            [(EMBED_KEY, "BF16", W[s]), (HEAD_KEY, "BF16", H[s])],
        )
    # The trajectory, as h5py users write it, and as one safetensors tensor.
    h5_path = os.path.join(out, "run.h5")
    with h5py.File(h5_path, "w", track_order=False) as f:
        f.create_dataset(
            "W", data=W, dtype="uint16", chunks=(4, VOCAB, DIM),
            compression="gzip", compression_opts=4, track_times=False,
        )
    write_safetensors(os.path.join(out, "run_W.safetensors"), [("W", "U16", W)])
    with open(os.path.join(out, "text.txt"), "wb") as f:
        f.write(TEXT)

    # Selections the tests pass to --steps: the numbers of a subset compare
    # each step with the previous *selected* one, and evaporation follows the
    # groups of the first selected step (at step 10 there are small holes of
    # text bytes too, which may split within the range).
    selections = {
        "every_3": ("::3", steps[::3]),
        "range_10_20": ("10:20", steps[10:21]),
    }
    expected = {
        "about": "written by scripts/train_series.py from the bf16 bit patterns; do not edit",
        "text": TEXT.decode(),
        "settings": {
            "vocab": VOCAB, "dim": DIM, "steps": STEPS, "batch": BATCH, "lr": LR,
            "weight_decay": WEIGHT_DECAY, "betas": list(BETAS), "eps": EPS, "seed": SEED,
        },
        "shape": list(W.shape),
        "steps": steps,
        "text_tokens": text_tokens,
        "dead_tokens": dead_tokens,
        "first_gradient": [first_grad.get(t) for t in range(VOCAB)],
        "evaporated_at": full["evaporated_at"],
        "first_moved": full["first_moved"],
        "dead_moved_steps": dead_moved,
        "evaporated_events": full["evaporated_events"],
        "events": full["events"],
        "per_step": full["per_step"],
        **{
            key: {"steps_option": opt, **survey(W[idx], idx)}
            for key, (opt, idx) in selections.items()
        },
        "losses": [round(x, 4) for x in losses],
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    # A summary for whoever runs it.
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"{len(text_tokens)} text bytes, {len(dead_tokens)} dead")
    for s, ids in ((e["step"], e["token_ids"]) for e in full["evaporated_events"]):
        print(f"step {s:2}: evaporated {bytes(ids)!r}")
    print("late (first gradient -> evaporation):",
          ", ".join(f"{bytes([t])!r} {first_grad[t]}->{mine[t]}" for t in late))
    print("hole moved at steps", dead_moved)


if __name__ == "__main__":
    main()
