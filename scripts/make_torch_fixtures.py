#!/usr/bin/env python3
"""Write tests/fixtures/torch/*: PyTorch checkpoints made without torch.

torch is too big to install here, so this writes torch.save's zip format by
hand with the standard library: a pickle (protocol 2, as torch.save uses)
whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks)` calls, each storage a persistent id
`('storage', torch.FloatStorage, key, 'cpu', numel)`, and a ZIP_STORED
archive laid out as torch lays it: `archive/data.pkl`, `archive/byteorder`,
`archive/data/<key>` (each aligned to 64 bytes, as torch aligns them, through
a padding extra field), `archive/version`. The torch names are fake module
objects placed in sys.modules, so `pickle` writes exactly the GLOBALs torch
would; nothing of theirs is ever called.

Files (all deterministic, each well under 100 KB):
- notebook.pt: examples/notebook_128.safetensors's 128x64 F32 matrix as
  "embed_tokens.weight" of a state dict, beside a "lm_head.weight" (8x64).
- tied.pt: the same matrix as "model.embed_tokens.weight" and
  "lm_head.weight", one tensor saved once under both names (tied weights).
- strided.pt: a transposed view, a view at a storage offset, a BF16 tensor,
  a tensor nested in a list, and two tensors sharing one storage.
- bigendian.pt: byteorder "big", its F32 storage stored big-endian.
- evil_os_system.pt, evil_eval.pt, evil_popen.pt, evil_getattr_p4.pt: a
  state dict whose pickle also asks for os.system / builtins.eval /
  subprocess.Popen / builtins.getattr (protocol 4, STACK_GLOBAL); if run,
  each would create the file "sg_pwned_marker" in the working directory.
- legacy.pt: the start of a pre-1.6 torch.save file (pickled magic number).
- bare_pickle.pkl: a pickle that is not a torch file at all.
- compressed_storage.pt: a storage member DEFLATED (torch never does this).
- missing_storage.pt, short_storage.pt, bad_byteorder.pt, not_torch.zip,
  view_overrun.pt: archives that lie in one way each.

Usage: python3 scripts/make_torch_fixtures.py [OUT_DIR]
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/torch"
MARKER = "sg_pwned_marker"

# --- Fake torch: module objects whose names pickle writes as GLOBALs. -------

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2

# Storage classes and their struct codes / element sizes.
STORAGES = {"FloatStorage": "f", "BFloat16Storage": "H", "HalfStorage": "e"}
for _name in STORAGES:
    _cls = type(_name, (), {"__module__": "torch"})
    setattr(torch, _name, _cls)


class Storage:
    """One storage: its class name, its key in data/, its raw bytes."""

    def __init__(self, cls, key, raw, elem):
        self.cls, self.key, self.raw, self.elem = cls, key, raw, elem


class Tensor:
    """A view over a Storage, pickled as torch pickles a tensor."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        return (
            _rebuild_tensor_v2,
            (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
             collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            cls = getattr(torch, obj.cls)
            numel = len(obj.raw) // obj.elem
            return ("storage", cls, obj.key, "cpu", numel)
        return None


def f32_storage(key, values, big=False):
    fmt = (">" if big else "<") + "%df" % len(values)
    return Storage("FloatStorage", key, struct.pack(fmt, *values), 4)


def bf16_storage(key, values):
    """bf16 = the top 16 bits of f32 (the values chosen are exact in bf16)."""
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values]
    return Storage("BFloat16Storage", key, struct.pack("<%dH" % len(bits), *bits), 2)


def dumps(obj, protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol, fix_imports=False).dump(obj)
    return buf.getvalue()


def storages_of(obj, out):
    """Every Storage reachable through dicts, lists and tensors, by key."""
    if isinstance(obj, Tensor):
        out[obj.storage.key] = obj.storage
    elif isinstance(obj, dict):
        for v in obj.values():
            storages_of(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            storages_of(v, out)
    return out


def add(zf, name, data, compress=zipfile.ZIP_STORED, align=64):
    """A member whose data starts on an `align`-byte boundary, as torch writes."""
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = compress
    base = zf.fp.tell() + 30 + len(name.encode()) + 4
    pad = (-base) % align
    zi.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB", torch's padding id
    zf.writestr(zi, data)


def write_pt(path, obj, *, pkl=None, byteorder=b"little", skip=(), compress_keys=(),
             truncate_keys=()):
    """A torch.save-style archive of `obj` (or of the raw pickle `pkl`)."""
    if pkl is None:
        pkl = dumps(obj)
    with zipfile.ZipFile(path, "w") as zf:
        add(zf, "archive/data.pkl", pkl)
        if byteorder is not None:
            add(zf, "archive/byteorder", byteorder)
        for key, s in sorted(storages_of(obj, {}).items()):
            if key in skip:
                continue
            raw = s.raw[: len(s.raw) // 2] if key in truncate_keys else s.raw
            comp = zipfile.ZIP_DEFLATED if key in compress_keys else zipfile.ZIP_STORED
            add(zf, "archive/data/" + key, raw, compress=comp)
        add(zf, "archive/version", b"3\n")
    assert path.stat().st_size < 100_000, path


def read_safetensors(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    meta = header["embeddings"]
    assert meta["dtype"] == "F32", meta
    rows, cols = meta["shape"]
    start, end = meta["data_offsets"]
    values = struct.unpack("<%df" % (rows * cols), b[8 + n + start : 8 + n + end])
    return rows, cols, values


class Payload:
    """An object whose unpickling would call `func(*args)`."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def fake_global(module, name):
    """A function that pickles as GLOBAL `module name` (never called): the
    real os.system pickles as posix.system, so a stand-in takes its place in
    this process (pickle checks that the name leads back to the object)."""

    def f(*args):
        raise RuntimeError("never called")

    f.__module__, f.__qualname__, f.__name__ = module, name, name
    setattr(sys.modules[module], name, f)
    return f


def main():
    OUT.mkdir(parents=True, exist_ok=True)

    # (a) The bundled example as a state dict.
    rows, cols, values = read_safetensors(ROOT / "examples/notebook_128.safetensors")
    assert (rows, cols) == (128, 64)
    embed = Tensor(f32_storage("0", values), 0, (rows, cols), (cols, 1))
    head_vals = [((i * 7 + j * 3) % 11 - 5) / 8 for i in range(8) for j in range(64)]
    head = Tensor(f32_storage("1", head_vals), 0, (8, 64), (64, 1))
    sd = collections.OrderedDict([("embed_tokens.weight", embed), ("lm_head.weight", head)])
    write_pt(OUT / "notebook.pt", sd)
    # Tied weights saved once: both names on storage "0", the same view.
    tied = collections.OrderedDict([("model.embed_tokens.weight", embed), ("lm_head.weight", embed)])
    write_pt(OUT / "tied.pt", tied)

    # (b) Views. m[i][j] = 100 i + j, a 16x8 matrix stored row-major.
    m = [100.0 * i + j for i in range(16) for j in range(8)]
    base = f32_storage("0", m)
    shared = f32_storage("2", [float(k) for k in range(64)])
    strided = collections.OrderedDict(
        [
            # m transposed: 8x16, element (r, c) = m[c][r] = 100 c + r.
            ("transposed.weight", Tensor(base, 0, (8, 16), (1, 8))),
            # Rows 3..7 of m: offset 24 elements, 5x8, contiguous.
            ("offset.weight", Tensor(base, 24, (5, 8), (8, 1))),
            # bf16 values 0.5 * k, 4x6.
            ("bf16.weight", Tensor(bf16_storage("1", [0.5 * k for k in range(24)]), 0, (4, 6), (6, 1))),
            # Nested: {"model": {"layers": [tensor]}} -> "model.layers.0".
            ("model", {"layers": [Tensor(shared, 8, (2, 4), (4, 1))]}),
            # Two views of one storage (tied weights).
            ("tied_a", Tensor(shared, 0, (8, 8), (8, 1))),
            ("tied_b", Tensor(shared, 0, (8, 8), (8, 1))),
        ]
    )
    write_pt(OUT / "strided.pt", strided)

    # Big-endian: the same 16x8 m, stored big-endian.
    big = collections.OrderedDict([("embed_tokens.weight", Tensor(f32_storage("0", m, big=True), 0, (16, 8), (8, 1)))])
    write_pt(OUT / "bigendian.pt", big, byteorder=b"big")

    # (c) Hostile pickles: a small state dict plus a payload that would
    # create MARKER in the working directory if it were ever run.
    small = Tensor(f32_storage("0", [float(k) for k in range(32)]), 0, (8, 4), (4, 1))
    payloads = {
        "evil_os_system.pt": (Payload(fake_global("os", "system"), ("touch " + MARKER,)), 2),
        "evil_eval.pt": (Payload(eval, ("open(%r, 'w')" % MARKER,)), 2),
        "evil_popen.pt": (Payload(subprocess.Popen, (["touch", MARKER],)), 2),
        "evil_getattr_p4.pt": (Payload(getattr, ("os", "system")), 4),
    }
    for name, (payload, protocol) in payloads.items():
        obj = collections.OrderedDict([("embed_tokens.weight", small), ("hook", payload)])
        data = dumps(obj, protocol)
        write_pt(OUT / name, obj, pkl=data)

    # (d) Legacy (pre-1.6) torch.save: the magic number, the protocol
    # version, then sys_info, each pickled in turn (the file goes on with the
    # object and the raw storages, not needed to recognise it).
    magic = 0x1950A86A20F9469CFC6C
    legacy = pickle.dumps(magic, protocol=2) + pickle.dumps(1001, protocol=2)
    legacy += pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    (OUT / "legacy.pt").write_bytes(legacy)
    (OUT / "bare_pickle.pkl").write_bytes(pickle.dumps({"a": [1, 2, 3]}, protocol=2))

    # (e) Archives that lie.
    write_pt(OUT / "compressed_storage.pt", sd, compress_keys={"0"})
    write_pt(OUT / "missing_storage.pt", sd, skip={"1"})
    write_pt(OUT / "short_storage.pt", sd, truncate_keys={"0"})
    write_pt(OUT / "bad_byteorder.pt", sd, byteorder=b"middle")
    overrun = collections.OrderedDict([("embed_tokens.weight", Tensor(f32_storage("0", m), 8, (16, 8), (8, 1)))])
    write_pt(OUT / "view_overrun.pt", overrun)
    with zipfile.ZipFile(OUT / "not_torch.zip", "w") as zf:
        add(zf, "hello.txt", b"not a checkpoint\n")
        add(zf, "weights/embeddings.npy", b"\x93NUMPY")

    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:7d}  {p.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
