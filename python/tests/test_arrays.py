"""How arrays are read (in place, or copied once), what is refused and how,
threads, Ctrl-C and panics."""

from __future__ import annotations

import _thread
import threading
import time

import numpy as np
import pytest

import singularity_gpu as sg
from conftest import need
from test_survey import STRUCTURED_GROUPS, as_lists, bf16_bits, groups_of, structured


def test_c_contiguous_arrays_are_read_in_place():
    ml_dtypes = need("ml_dtypes")
    m = structured()
    for a, as_ in [
        (m.astype(np.float32), None),
        (m.astype(np.float16), None),
        (m, None),
        (bf16_bits(m).view(ml_dtypes.bfloat16), None),
        (bf16_bits(m), "bf16"),
        (m.astype(np.float16).view(np.int16), "f16"),
    ]:
        s = sg.survey(a, as_=as_, device="cpu")
        assert s._source_address == a.ctypes.data, a.dtype
        assert as_lists(s.groups) == STRUCTURED_GROUPS


def test_other_arrays_are_copied_once_and_still_right():
    m = structured().astype(np.float32)
    t = np.ascontiguousarray(m.T)  # 16 rows of 300: its transpose is a strided view
    view = t.T
    assert not view.flags.c_contiguous
    s = sg.survey(view, device="cpu")
    assert s._source_address != view.ctypes.data
    assert as_lists(s.groups) == STRUCTURED_GROUPS
    every_other = np.repeat(m, 2, axis=0)[::2]  # rows strided by two
    s = sg.survey(every_other, device="cpu")
    assert as_lists(s.groups) == STRUCTURED_GROUPS
    big_endian = m.astype(">f4")
    s = sg.survey(big_endian, device="cpu")
    assert as_lists(s.groups) == STRUCTURED_GROUPS
    np.testing.assert_allclose(s.norms, np.sqrt((m.astype(np.float64) ** 2).sum(axis=1)), rtol=1e-12)


def test_misaligned_arrays_are_copied():
    m = structured().astype(np.float32)
    buf = np.zeros(m.nbytes + 1, dtype=np.uint8)
    a = np.ndarray(m.shape, dtype=np.float32, buffer=buf, offset=1)
    a[...] = m
    assert not a.flags.aligned
    s = sg.survey(a, device="cpu")
    assert as_lists(s.groups) == groups_of(m)


def test_the_numbers_of_a_sign_and_a_nan():
    """Bitwise by default (+0 != -0, NaN rows group by bits); numeric as torch.unique."""
    a = np.array([[0.0, 1.0], [-0.0, 1.0], [np.nan, 1.0], [np.nan, 1.0], [2.0, 3.0]], dtype=np.float32)
    assert as_lists(sg.survey(a, device="cpu").groups) == [[2, 3]]
    s = sg.survey(a, device="cpu", numeric_equality=True)
    assert as_lists(s.groups) == [[0, 1]]
    assert s.nan_rows == [2, 3]


@pytest.mark.parametrize(
    "array, as_, words",
    [
        (np.zeros((2, 3, 4), dtype=np.float32), None, ["2-D", "3-D", "(2, 3, 4)"]),
        (np.zeros(5, dtype=np.float32), None, ["2-D", "1-D"]),
        (np.zeros((4, 4), dtype=np.int32), None, ["int32", "float32", "bfloat16", "uint16"]),
        (np.zeros((4, 4), dtype=np.complex64), None, ["complex64", "float16"]),
        (np.zeros((4, 4), dtype=np.uint16), None, ["uint16", "as_='bf16'"]),
        (np.zeros((4, 4), dtype=np.float32), "bf16", ["as_", "float32"]),
        (np.zeros((4, 4), dtype=np.uint16), "f32", ["as_", "bf16", "f32"]),
    ],
)
def test_wrong_arrays_say_what_they_got_and_what_is_taken(array, as_, words):
    with pytest.raises(ValueError) as e:
        sg.survey(array, as_=as_, device="cpu")
    for w in words:
        assert w in str(e.value)


def test_errors_are_the_command_line_s_one_line_messages(tmp_path):
    with pytest.raises(sg.SingularityError, match="no such file or folder"):
        sg.survey(tmp_path / "missing.safetensors", device="cpu")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(sg.SingularityError) as e:
        sg.survey(junk, device="cpu")
    assert "not a file format singularity-gpu reads" in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)
    a = np.ones((3, 2), dtype=np.float32)
    with pytest.raises(sg.SingularityError, match="exclude each other"):
        sg.survey(a, near_l2=0.1, near_ulp=2, device="cpu")
    with pytest.raises(sg.SingularityError, match="finite number >= 0"):
        sg.survey(a, near_l2=-1.0, device="cpu")
    with pytest.raises(sg.SingularityError, match="device"):
        sg.survey(a, device="tpu")
    with pytest.raises(sg.SingularityError, match="zero rows|0 rows|empty"):
        sg.survey(np.zeros((0, 4), dtype=np.float32), device="cpu")
    with pytest.raises(sg.SingularityError, match="key goes with a path"):
        sg.survey(a, key="embeddings", device="cpu")
    with pytest.raises(ValueError, match="got builtins.list"):
        sg.survey([[1.0, 2.0]], device="cpu")


def test_a_panic_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="internal error"):
        sg._native._test_panic(panic=True)


def test_the_gil_is_released_while_the_engine_works():
    """Another Python thread runs while a call waits on its work."""
    done = threading.Event()
    t = threading.Thread(target=lambda: (sg._native._test_panic(seconds=0.5), done.set()))
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1
        time.sleep(0.001)
    t.join()
    assert spins > 50  # with the GIL held by the call this loop could not run at all


def test_two_threads_survey_at_once(device):
    rng = np.random.default_rng(3)
    a = rng.integers(-4, 4, size=(6000, 32)).astype(np.float32)
    b = rng.integers(-4, 4, size=(5000, 24)).astype(np.float32) * 0.5
    a[100:200] = a[7]
    b[[1, 2, 3]] = b[9]
    results = {}

    def work(name, m):
        results[name] = sg.survey(m, device=device, nearest=True)

    threads = [threading.Thread(target=work, args=(n, m)) for n, m in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert as_lists(results["a"].groups) == groups_of(a)
    assert as_lists(results["b"].groups) == groups_of(b)
    one = sg.survey(a, device=device, nearest=True)
    assert results["a"].nearest.ids.tolist() == one.nearest.ids.tolist()


def _interrupt_after(seconds: float) -> threading.Timer:
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_ctrl_c_stops_a_waiting_call():
    start = time.monotonic()
    _interrupt_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        sg._native._test_panic(seconds=60)
    assert time.monotonic() - start < 5  # the work stopped: it would have run a minute


def test_ctrl_c_stops_a_long_survey():
    """All nearest neighbours of 100,000 random rows take tens of seconds on
    the CPU path (20,000 take about 1.5 s on two cores, and it grows as the
    square); an interrupt half a second in stops the survey within a second.
    (On the GPU path the call returns as soon, but the work already queued
    runs to its end on the device; on a software GPU that is minutes of the
    CPU, so this test takes the CPU path. The Rust test
    library::an_interrupt_during_a_gpu_sweep_gives_control_back covers the GPU.)"""
    device = "cpu"
    a = np.random.default_rng(5).standard_normal((100_000, 64), dtype=np.float32)
    sg.survey(a[:2], device=device)  # the engine is open before the clock starts
    timer = _interrupt_after(0.5)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sg.survey(a, nearest=True, device=device)
    stopped = time.monotonic() - start
    timer.join()
    assert stopped < 0.5 + 1.0
    # The engine is still usable afterwards.
    assert as_lists(sg.survey(structured().astype(np.float32), device=device).groups) == STRUCTURED_GROUPS
