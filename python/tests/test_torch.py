"""torch tensors: read in place on the host (bf16 bit for bit), detached,
copied once when strided. Skipped without torch."""

from __future__ import annotations

import numpy as np
import pytest

import singularity_gpu as sg
from test_survey import STRUCTURED_GROUPS, as_lists, bf16_bits, structured

torch = pytest.importorskip("torch")


def test_a_bf16_parameter_is_read_in_place_bit_for_bit():
    m = structured()
    w = torch.nn.Parameter(torch.from_numpy(m.astype(np.float32)).to(torch.bfloat16))
    assert w.requires_grad
    s = sg.survey(w, device="cpu")
    assert s._source_address == w.data_ptr()
    assert s.dtype == "BF16" and s.stored_dtype == "BF16"
    assert as_lists(s.groups) == STRUCTURED_GROUPS
    bits = w.detach().view(torch.int16).numpy().view(np.uint16)
    assert (bits == bf16_bits(m)).all()
    ref = sg.survey(bf16_bits(m), as_="bf16", device="cpu").to_dict()
    assert s.to_dict()["geometry"] == ref["geometry"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_float_tensors(dtype):
    m = structured()
    t = torch.from_numpy(m).to(getattr(torch, dtype))
    s = sg.survey(t, device="cpu")
    assert s._source_address == t.data_ptr()
    assert as_lists(s.groups) == STRUCTURED_GROUPS


def test_a_transposed_tensor_is_copied_once():
    m = structured().astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(m.T)).T
    assert not t.is_contiguous()
    s = sg.survey(t, device="cpu")
    assert s._source_address != t.data_ptr()
    assert as_lists(s.groups) == STRUCTURED_GROUPS


def test_a_device_tensor_is_copied_to_the_host():
    if torch.cuda.is_available():
        dev = "cuda"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        dev = "mps"
    else:
        pytest.skip("no CUDA or MPS device for torch")
    m = structured()
    t = torch.from_numpy(m.astype(np.float32)).to(torch.bfloat16).to(dev)
    assert as_lists(sg.survey(t, device="cpu").groups) == STRUCTURED_GROUPS


def test_the_recorder_takes_bf16_parameters():
    m = structured()
    w = torch.nn.Parameter(torch.from_numpy(m.astype(np.float32)).to(torch.bfloat16))
    rec = sg.SeriesRecorder(device="cpu")
    rec.push(0, w)
    with torch.no_grad():
        w[5] += 1.0  # token 5 leaves its hole
    rec.push(1, w)
    r = rec.result()
    assert r.moved.tolist() == [-1, 1]
    assert r.evaporated_at[5] == 1
