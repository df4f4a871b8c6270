"""sg.survey on arrays and paths, against the command line on the same
bytes and against groups and norms computed here with numpy."""

from __future__ import annotations

import numpy as np
import pytest

import singularity_gpu as sg
from conftest import REPO, need, run_cli, write_safetensors



def structured(n: int = 300, d: int = 16, seed: int = 1) -> np.ndarray:
    """A float64 matrix of multiples of 1/4 in [-2, 2) (exact in every
    dtype), with known black holes and rows one step of 1/4 apart."""
    rng = np.random.default_rng(seed)
    m = rng.integers(-8, 8, size=(n, d)) * 0.25
    m[10:20] = m[5]          # a hole of 11: 5, 10..19
    m[[40, 77, 250]] = m[33]  # a hole of 4: 33, 40, 77, 250
    m[[101, 102]] = m[100]    # a hole of 3
    m[120] = m[100]           # ... of 4: 100, 101, 102, 120
    m[61] = m[60]
    m[61, 0] += 0.25          # 61 one step of 1/4 from 60
    m[201] = m[200]           # a pair
    return m


# The holes of `structured`, sorted as the report sorts them: by size, then smallest id.
STRUCTURED_GROUPS = [list(range(5, 6)) + list(range(10, 20)), [33, 40, 77, 250], [100, 101, 102, 120], [200, 201]]


def bf16_bits(m: np.ndarray) -> np.ndarray:
    """bf16 bit patterns of values exact in bf16 (the top half of their f32 bits)."""
    return (m.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def groups_of(m: np.ndarray) -> list:
    """Groups of identical rows by their bytes, computed independently of the engines."""
    rows = [r.tobytes() for r in np.ascontiguousarray(m)]
    where: dict = {}
    for i, r in enumerate(rows):
        where.setdefault(r, []).append(i)
    groups = [g for g in where.values() if len(g) > 1]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def as_lists(groups) -> list:
    return [g.tolist() for g in groups]


def test_hand_built_groups_and_norms(device):
    m = structured()
    s = sg.survey(m.astype(np.float32), device=device)
    assert as_lists(s.groups) == STRUCTURED_GROUPS == groups_of(m)
    assert all(g.dtype == np.int64 for g in s.groups)
    assert s.black_holes == 4
    assert s.n_unique == 300 - (10 + 3 + 3 + 1)
    assert s.n_duplicate == 17
    assert s.shape == (300, 16) and s.dtype == "F32"
    want = np.sqrt((m**2).sum(axis=1))
    np.testing.assert_allclose(s.norms, want, rtol=1e-12 if device == "cpu" else 1e-6)
    assert s.device["kind"] == device


# (array as given to survey, as_, dtype name in the file for the command line, --as)
def cases(m: np.ndarray):
    ml_dtypes = need("ml_dtypes")
    bits = bf16_bits(m)
    f16 = m.astype(np.float16)
    return {
        "float32": (m.astype(np.float32), None, None, None),
        "float16": (f16, None, None, None),
        "float64": (m, None, None, None),
        "bfloat16": (bits.view(ml_dtypes.bfloat16), None, "BF16", None),
        "uint16-bf16": (bits, "bf16", "U16", "bf16"),
        "int16-f16": (f16.view(np.int16), "f16", "I16", "f16"),
    }


# Keys of the document that name where the matrix came from or how long it took.
PROVENANCE = {"file", "format", "tensor", "tensor_file", "role", "tied", "timings_ms"}


def comparable(doc: dict) -> dict:
    d = {k: v for k, v in doc.items() if k not in PROVENANCE}
    if "indicators" in d:
        d["indicators"] = {k: v for k, v in d["indicators"].items() if k != "matrix"}
    return d


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "bfloat16", "uint16-bf16", "int16-f16"])
@pytest.mark.parametrize(
    "flags",
    [
        {"nearest": True, "near_ulp": 2},
        {"near_l2": 0.3, "indicators": True},
        {"near_rel": 0.05, "numeric_equality": True},
    ],
    ids=["nearest-ulp", "l2-indicators", "rel-numeric"],
)
def test_same_document_as_the_command_line(tmp_path, cli, device, dtype, flags):
    m = structured()
    array, as_, st_dtype, cli_as = cases(m)[dtype]
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"embeddings": array.view(np.uint16) if st_dtype == "BF16" else array},
                      {"embeddings": st_dtype} if st_dtype else None)
    args = ["--file", str(path), "--device", device]
    args += ["--as", cli_as] if cli_as else []
    for k, v in flags.items():
        flag = "--" + k.replace("_", "-")
        args += [flag] if v is True else [flag, str(v)]
    want = run_cli(cli, *args)
    s = sg.survey(array, as_=as_, device=device, **flags)
    got = s.to_dict()
    assert comparable(got) == comparable(want)
    # The attributes are the document's, the arrays its lists.
    assert as_lists(s.groups) == [g["token_ids"] for g in want["groups"]] == groups_of(m)
    if "nearest" in want:
        ids = [-1 if i is None else i for i in want["nearest"]["ids"]]
        assert s.nearest.ids.tolist() == ids
        assert s.nearest.distances.tolist() == want["nearest"]["distances"]
    if "near" in want:
        comps = [c["token_ids"] for c in want["near"]["components"]]
        assert [c["token_ids"].tolist() for c in s.near.components] == comps
        if "near_l2" in flags:  # 0.3 joins the rows 1/4 apart
            assert any(60 in c and 61 in c for c in comps)
    if "indicators" in want:
        assert s.indicators["candidates"] == want["indicators"]["candidates"]
    lat = want["lattice"]
    assert s.lattice.linf_steps.tolist() == lat["linf_steps"]
    assert s.lattice.l1_steps.tolist() == lat["l1_steps"]
    want_norms = np.sqrt((m.astype(np.float64) ** 2).sum(axis=1))
    np.testing.assert_allclose(s.norms, want_norms, rtol=1e-12 if device == "cpu" else 1e-6)


def test_a_path_is_surveyed_as_the_command_line_does(cli, device):
    path = REPO / "examples" / "notebook_128.safetensors"
    want = run_cli(cli, "--file", str(path), "--device", device, "--nearest")
    s = sg.survey(str(path), device=device, nearest=True)
    drop = lambda d: {k: v for k, v in d.items() if k != "timings_ms"}  # noqa: E731
    assert drop(s.to_dict()) == drop(want)
    assert s.file == str(path) and s.tensor == "embeddings"
    # The bundled example: one hole of 51 tokens, 78 distinct vectors (README).
    assert s.n_unique == 78 and [len(g) for g in s.groups] == [51]
    assert s.tokens is not None and all(isinstance(k, int) for k in s.tokens)


def test_a_pathlib_path_and_the_json_text(tmp_path):
    path = REPO / "examples" / "notebook_128.safetensors"
    s = sg.survey(path, device="cpu")
    assert s.to_json().startswith("{\n") and s.to_json().endswith("}\n")
    import json

    assert json.loads(s.to_json()) == s.to_dict()
    out = tmp_path / "page.html"
    s.save_html(out)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page == s.html()
    inline = s._repr_html_()
    assert inline.startswith("<iframe") and "srcdoc=" in inline and "<script" not in inline
    assert "Survey" in repr(s) and "78 unique" in repr(s)


def test_the_same_matrix_from_the_file_and_from_memory():
    """The example's bytes, surveyed from the file and as an array, give the same document."""
    from conftest import read_safetensors

    path = REPO / "examples" / "notebook_128.safetensors"
    (dt, a), = read_safetensors(path).values()
    a_file = sg.survey(path, device="cpu", nearest=True, tokenizer=None).to_dict()
    a_mem = sg.survey(a, device="cpu", nearest=True).to_dict()
    for k in ("groups", "n_unique", "geometry", "lattice", "nearest"):
        assert a_mem[k] == a_file[k]


def test_compare_returns_a_survey_or_the_error_per_input(tmp_path):
    path = REPO / "examples" / "notebook_128.safetensors"
    m = structured().astype(np.float32)
    out = sg.compare([path, m, tmp_path / "missing.safetensors"], device="cpu")
    assert [type(x) for x in out] == [sg.Survey, sg.Survey, sg.SingularityError]
    assert out[0].n_unique == 78 and as_lists(out[1].groups) == STRUCTURED_GROUPS
    assert "no such file or folder" in str(out[2])
    with pytest.raises(sg.SingularityError, match="no such file"):
        sg.compare([path, tmp_path / "missing.safetensors"], errors="raise", device="cpu")


def test_an_array_with_a_tokenizer_names_its_tokens(cli):
    """The example's matrix from memory with its tokenizer: the same strings
    as the command line gives for the file (which finds the tokenizer beside it)."""
    from conftest import read_safetensors

    path = REPO / "examples" / "notebook_128.safetensors"
    (_, a), = read_safetensors(path).values()
    s = sg.survey(a, tokenizer=REPO / "examples" / "tokenizer.json", device="cpu")
    want = run_cli(cli, "--file", str(path), "--device", "cpu")
    assert s.to_dict()["tokens"] == want["tokens"]
    assert s.tokens == {int(k): v for k, v in want["tokens"].items()}


def test_devices_lists_adapters():
    for d in sg.devices():
        assert set(d) == {"kind", "adapter", "backend"} and d["kind"] == "gpu"
