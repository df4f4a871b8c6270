"""Series: sg.series and sg.trajectory against --series and --trajectory,
and the recorder pushed the steps of a run against --series on its
checkpoints."""

from __future__ import annotations

import re

import numpy as np
import pytest

import singularity_gpu as sg
from conftest import REPO, need, read_safetensors, run_cli

RUN = REPO / "tests" / "fixtures" / "series" / "run"
# Keys naming where the steps came from or how long they took.
PROVENANCE = {"inputs", "kind", "format", "tensor", "timings_ms"}


def steps_of_run() -> list:
    """(step, dtype name, stored bits) of every checkpoint of the run, by step."""
    out = []
    for p in RUN.iterdir():
        step = int(re.findall(r"\d+", p.name)[-1])
        dtype, bits = read_safetensors(p)["model.embed_tokens.weight"]
        out.append((step, dtype, bits))
    return sorted(out, key=lambda s: s[0])


def without(d: dict, keys: set) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def test_series_is_the_command_line_s_document(cli, device):
    want = run_cli(cli, "--series", str(RUN), "--device", device)
    got = sg.series(RUN, device=device)
    assert without(got.to_dict(), {"timings_ms"}) == without(want, {"timings_ms"})
    # The per-step arrays are the document's lists.
    per = want["series"]["per_step"]
    assert got.steps.tolist() == want["series"]["steps"] == list(range(61))
    assert got.tokens_in_holes.tolist() == [p["tokens_in_holes"] for p in per]
    assert got.moved.tolist() == [-1] + [p["moved"] for p in per[1:]]
    assert got.evaporated_at.tolist() == [-1 if e is None else e for e in want["series"]["tokens"]["evaporated_at"]]
    assert got.shape == (61, 256, 8) and got.dtype == "BF16"
    assert "Series of 61 steps" in repr(got)


def test_series_of_listed_files_and_steps(cli):
    files = sorted(RUN.iterdir())
    want = run_cli(cli, "--series", *map(str, files), "--steps", "10:40:5", "--device", "cpu")
    got = sg.series(files, steps="10:40:5", device="cpu")
    assert without(got.to_dict(), {"timings_ms"}) == without(want, {"timings_ms"})
    assert got.steps.tolist() == [10, 15, 20, 25, 30, 35, 40]


def test_trajectory_is_the_command_line_s_document(cli):
    path = REPO / "tests" / "fixtures" / "series" / "run_W.safetensors"
    want = run_cli(cli, "--trajectory", str(path), "--key", "W", "--as", "bf16", "--device", "cpu")
    got = sg.trajectory(path, key="W", as_="bf16", device="cpu")
    assert without(got.to_dict(), {"timings_ms"}) == without(want, {"timings_ms"})


def test_the_recorder_gives_what_series_gives(cli, device):
    ml_dtypes = need("ml_dtypes")
    want = run_cli(cli, "--series", str(RUN), "--device", device)
    rec = sg.SeriesRecorder(device=device)
    for step, dtype, bits in steps_of_run():
        assert dtype == "BF16"
        rec.push(step, bits.view(ml_dtypes.bfloat16))
    assert len(rec) == 61
    got = rec.result().to_dict()
    assert without(got, PROVENANCE) == without(want, PROVENANCE)


def test_the_recorder_takes_uint16_with_as_and_refuses_what_does_not_fit():
    steps = steps_of_run()
    rec = sg.SeriesRecorder(device="cpu", as_="bf16")
    with pytest.raises(sg.SingularityError):
        rec.result()  # no step yet
    rec.push(0, steps[0][2])
    assert rec.result().steps.tolist() == [0]  # one step so far: nothing moved yet
    with pytest.raises(sg.SingularityError, match="steps must increase"):
        rec.push(0, steps[0][2])
    with pytest.raises(sg.SingularityError):
        rec.push(1, steps[1][2][:, :4].copy())  # another shape
    rec.push(1, steps[1][2])
    r = rec.result()
    assert r.stored_dtype == "U16" and r.dtype == "BF16"
    assert r.n_unique.tolist() == [len({row.tobytes() for row in s[2]}) for s in steps[:2]]
    with pytest.raises(ValueError, match="float32"):
        rec.push(2, np.zeros((256, 8), dtype=np.float32))  # another dtype
    with pytest.raises(ValueError, match="not a path"):
        rec.push(2, str(RUN / "step_2.safetensors"))
