"""Shared helpers: the command-line binary to compare with, safetensors files
written and read with numpy alone, and the two engines."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI") == "true"


def missing(why: str) -> None:
    """Skips a test that cannot run here, or fails it under CI=true."""
    if CI:
        pytest.fail(why)
    pytest.skip(why)


def need(module: str):
    """Imports a test requirement (python/requirements-test.txt): skips
    without it, or fails under CI=true."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"{module} is not installed (pip install -r python/requirements-test.txt)")


@pytest.fixture(scope="session")
def cli() -> Path:
    """The release binary that `cargo test --release` (scripts/test.sh) built."""
    exe = REPO / "target" / "release" / "singularity-gpu"
    if not exe.exists():
        missing(f"{exe} not built (cargo build --release)")
    return exe


def run_cli(cli: Path, *args: str) -> dict:
    """The binary's --json document."""
    out = subprocess.run([str(cli), *args, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


_ST_DTYPES = {"float32": "F32", "float16": "F16", "float64": "F64", "uint16": "U16", "int16": "I16"}


def write_safetensors(path: Path, tensors: dict, dtypes: dict | None = None) -> None:
    """Writes numpy arrays as a safetensors file (dtype names from `dtypes`
    where given, e.g. "BF16" for uint16 bit patterns)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        dt = (dtypes or {}).get(name) or _ST_DTYPES[a.dtype.name]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path: Path) -> dict:
    """Every tensor of a safetensors file as (dtype name, numpy array of
    the stored bits: uint16 for BF16/F16)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        np_dtype = {"F32": "<f4", "F64": "<f8", "BF16": "<u2", "F16": "<u2", "U16": "<u2", "I16": "<i2"}[t["dtype"]]
        a = np.frombuffer(raw[8 + n + lo : 8 + n + hi], dtype=np_dtype).reshape(t["shape"])
        out[name] = (t["dtype"], a)
    return out


@pytest.fixture(params=["cpu", "gpu"])
def device(request) -> str:
    """Both engines: the CPU path, and a GPU adapter (lavapipe where there is no hardware one)."""
    import singularity_gpu as sg

    if request.param == "gpu":
        try:
            sg.survey(np.ones((2, 2), dtype=np.float32), device="gpu")
        except sg.SingularityError as e:
            missing(f"no GPU adapter: {e}")
    return request.param
