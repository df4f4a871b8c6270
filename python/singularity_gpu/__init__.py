"""Survey a language model's token-embedding matrix for singularities.

A *singularity* (a "black hole") is a group of tokens whose embedding vectors
are bit-for-bit identical. ``singularity_gpu`` runs the same engines as the
``singularity-gpu`` command line (WGSL kernels on a GPU through wgpu, or all
CPU cores) on what a notebook holds:

>>> import singularity_gpu as sg
>>> s = sg.survey("examples/notebook_128.safetensors", device="cpu")
>>> s.n_unique, s.black_holes, len(s.groups[0])
(78, 1, 51)

The input is a path (a checkpoint file in any format the command line reads,
a model folder, or ``ORG/NAME`` in the Hugging Face cache), a 2-D numpy array,
or a torch tensor (or any object with ``__dlpack__``). Every option of the
command line is a keyword with the same name and default. A checkpoint
series is surveyed by :func:`series` and :func:`trajectory`, or recorded
while training runs with :class:`SeriesRecorder`.

Arrays are read in place: a C-contiguous, aligned, little-endian array on
the host is handed to the engine by address, without a copy. Anything else
(a transposed or sliced view, a big-endian array) is copied once with
``numpy.ascontiguousarray`` first. A tensor on a GPU (CUDA, MPS) is copied
to the host once. Do not write to the array while a survey of it runs.

Every call releases the GIL while the engine works, so other Python threads
run meanwhile; Ctrl-C (KeyboardInterrupt) stops a long call within about a
second. Engines (a GPU device, its pipelines) are opened once per process and
device choice, and reused by every call.

Errors: bad input or options raise :class:`SingularityError` (a
``ValueError``) with the command line's one-line message; a device that fails
while running raises ``RuntimeError``.
"""

from __future__ import annotations

import html as _html
import json as _json
import os
import sys
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

# Headless: keep Vulkan drivers probing for a Wayland display from printing
# "XDG_RUNTIME_DIR is invalid" when a GPU is opened (as the command line does).
if not os.environ.get("XDG_RUNTIME_DIR") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ["WAYLAND_DISPLAY"] = "/nonexistent/singularity-gpu/wayland-0"

from . import _native  # noqa: E402
from ._native import SingularityError  # noqa: E402

__all__ = [
    "survey",
    "series",
    "trajectory",
    "compare",
    "devices",
    "Survey",
    "Series",
    "SeriesRecorder",
    "Nearest",
    "Near",
    "Lattice",
    "SingularityError",
]

__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]

# numpy dtypes read as they are, by the engine's name for them.
_FLOATS = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.float64): "F64",
}
# 16-bit integers hold bf16 or f16 bit patterns (as_="bf16" or "f16").
_INTEGERS = {np.dtype(np.uint16): "U16", np.dtype(np.int16): "I16"}
_AS = {"bf16": "BF16", "f16": "F16"}
_TAKES = (
    "float32, float16, float64, ml_dtypes.bfloat16, "
    "or uint16/int16 with as_='bf16' or as_='f16'"
)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _torch_to_numpy(t: Any) -> tuple[np.ndarray, Optional[str]]:
    """A torch tensor as a numpy array over the same host memory.

    The tensor is detached; one on a device (CUDA, MPS) is copied to the host
    once. bfloat16, which numpy lacks, is viewed as int16 bit patterns (no
    copy) and read as BF16. Returns the array and the dtype it is read as
    when that is not the array's own (BF16 for a bf16 tensor)."""
    import torch  # only reached for a torch tensor, so torch is installed

    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy(), "BF16"
    return t.numpy(), None


def _as_array(x: Any) -> tuple[np.ndarray, Optional[str], str]:
    """Any array-like input as (numpy array, dtype forced or None, label)."""
    if isinstance(x, np.ndarray):
        return x, None, "<numpy.ndarray>"
    module = type(x).__module__ or ""
    if module.startswith("torch") and hasattr(x, "detach"):
        a, forced = _torch_to_numpy(x)
        return a, forced, "<torch.Tensor>"
    if hasattr(x, "__dlpack__"):
        try:
            a = np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError) as e:
            raise ValueError(
                f"cannot read a {type(x).__name__} through __dlpack__ on the host ({e}); "
                "copy it to the host first"
            ) from e
        return a, None, f"<{type(x).__name__}>"
    raise ValueError(
        "survey takes a path (a file, a model folder, ORG/NAME), a 2-D numpy array, "
        f"a torch tensor or an object with __dlpack__; got {type(x).__module__}.{type(x).__qualname__}"
    )


def _prepare(a: np.ndarray, forced: Optional[str], as_: Optional[str]) -> tuple[np.ndarray, str, str]:
    """Checks a numpy array and gives (array to read, dtype read as, dtype stored).

    The array returned is C-contiguous, aligned and little-endian: the input
    itself when it already is (read in place), else one copy."""
    if a.ndim != 2:
        raise ValueError(
            f"survey takes a 2-D array (tokens x dimensions); got a {a.ndim}-D array of shape {a.shape}"
        )
    dt = a.dtype
    base = np.dtype(dt.newbyteorder("="))  # the dtype whatever its byte order
    if as_ is not None and as_ not in _AS:
        raise SingularityError(f"as_: expected \"bf16\" or \"f16\", got {as_!r}")
    if forced is not None:  # a bf16 torch tensor viewed as int16
        if as_ is not None and _AS[as_] != forced:
            raise SingularityError(f"as_={as_!r} does not go with a bfloat16 tensor")
        read, stored = forced, forced
    elif dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes.bfloat16
        if as_ not in (None, "bf16"):
            raise SingularityError(f"as_={as_!r} does not go with a bfloat16 array")
        a = a.view(np.uint16)
        read, stored = "BF16", "BF16"
    elif base in _FLOATS:
        if as_ is not None:
            raise SingularityError(
                f"as_ reads 16-bit integers (uint16, int16) as bf16 or f16; this array is {dt.name}"
            )
        read = stored = _FLOATS[base]
    elif base in _INTEGERS:
        if as_ is None:
            raise ValueError(
                f"a {dt.name} array holds bit patterns: say how to read them with as_='bf16' or as_='f16'"
            )
        read, stored = _AS[as_], _INTEGERS[base]
    else:
        raise ValueError(f"survey takes an array of {_TAKES}; got dtype {dt}")
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    if not (a.flags.c_contiguous and a.flags.aligned):
        a = np.ascontiguousarray(a)
    return a, read, stored


def _device_name(device: str) -> str:
    if device not in ("auto", "gpu", "cpu"):
        raise SingularityError(f"device: expected \"auto\", \"gpu\" or \"cpu\", got {device!r}")
    return device


def _path(p: PathLike) -> str:
    return os.fspath(p)


def _opt_path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def survey(
    x: Any,
    *,
    key: Optional[str] = None,
    as_: Optional[str] = None,
    device: str = "auto",
    nearest: bool = False,
    near_l2: Optional[float] = None,
    near_rel: Optional[float] = None,
    near_ulp: Optional[int] = None,
    indicators: bool = False,
    reference_tokens: Optional[str] = None,
    tokenizer: Optional[PathLike] = None,
    revision: Optional[str] = None,
    unembedding: bool = False,
    numeric_equality: bool = False,
) -> "Survey":
    """Surveys one matrix for groups of identical rows, as ``singularity-gpu --file``.

    ``x`` is what to survey:

    - a path (``str`` or ``os.PathLike``): a checkpoint in any format the
      command line reads (safetensors, PyTorch zip, GGUF, .npy, .npz), a model
      folder, or ``ORG/NAME`` in the Hugging Face cache;
    - a 2-D numpy array of float32, float16, float64 or ``ml_dtypes.bfloat16``,
      or of uint16/int16 bit patterns with ``as_="bf16"`` or ``as_="f16"``;
    - a torch tensor (CPU, CUDA or MPS; bf16 read bit for bit) or any object
      with ``__dlpack__`` that numpy can read on the host.

    A C-contiguous, aligned array on the host is read in place, without a
    copy; any other array (a transposed or sliced view, a big-endian one) is
    copied once with ``numpy.ascontiguousarray``; a device tensor is copied
    to the host once.

    The keywords are the command line's flags, with the same defaults:
    ``key`` (``--key``, the tensor in a file), ``as_`` (``--as``),
    ``device`` (``"auto"``: a hardware GPU if there is one, else the CPU;
    ``"gpu"``: any GPU adapter, software ones included; ``"cpu"``),
    ``nearest``, ``near_l2``, ``near_rel``, ``near_ulp`` (at most one),
    ``indicators`` and ``reference_tokens``, ``tokenizer`` (a
    ``tokenizer.json`` or ``vocab.txt``; for a path, by default the one
    beside the model), ``revision`` (of a hub cache entry), ``unembedding``
    (the output head; paths only) and ``numeric_equality``.

    Raises :class:`SingularityError` (a ``ValueError``) for bad input or
    options, ``ValueError`` for an array of the wrong dtype or shape, and
    ``RuntimeError`` when the device fails.
    """
    kw = dict(
        key=key,
        as_=as_,
        device=_device_name(device),
        nearest=nearest,
        near_l2=near_l2,
        near_rel=near_rel,
        near_ulp=near_ulp,
        indicators=indicators,
        reference_tokens=reference_tokens,
        tokenizer=_opt_path(tokenizer),
        unembedding=unembedding,
        numeric_equality=numeric_equality,
    )
    if _is_path(x):
        return Survey(_native.survey_path(_path(x), revision=revision, **kw))
    for name, value in (("key", key), ("revision", revision)):
        if value is not None:
            raise SingularityError(f"{name} goes with a path, not an array")
    if unembedding:
        raise SingularityError("unembedding goes with a path, not an array")
    a, forced, label = _as_array(x)
    a, read, stored = _prepare(a, forced, as_)
    del kw["key"], kw["as_"], kw["unembedding"]
    return Survey(_native.survey_array(a, read, stored, label, **kw))


def _dtype_label(read: str, stored: str) -> str:
    return read if read == stored else f"{read} (from {stored})"


class Nearest:
    """``nearest=True``: every token's nearest distinct vector.

    Attributes: ``ids`` (int64, one per token: the nearest vector's smallest
    token id, −1 for a token with none), ``distances`` (float64, the L2
    distance to it, NaN for none), ``with_neighbour``, ``quantiles``,
    ``histogram``, ``gap``, ``most_isolated``, ``least_isolated`` (as in the
    JSON document's ``nearest`` section)."""

    ids: np.ndarray
    distances: np.ndarray
    with_neighbour: int
    quantiles: list
    histogram: list
    gap: Optional[dict]
    most_isolated: list
    least_isolated: list

    def __init__(self, ids: np.ndarray, distances: np.ndarray, section: dict) -> None:
        self.ids = ids
        self.distances = distances
        for k in ("with_neighbour", "quantiles", "histogram", "gap", "most_isolated", "least_isolated"):
            setattr(self, k, section.get(k))

    def __repr__(self) -> str:
        return f"<Nearest: {self.with_neighbour} of {len(self.ids)} tokens with a neighbour>"


class Near:
    """A near flag (``near_l2``, ``near_rel``, ``near_ulp``): near-singularity components.

    Attributes: ``metric`` (``"l2"`` or ``"ulp"``), ``threshold``, ``pairs``,
    and ``components``: a list of dicts as in the JSON document, each with
    ``token_ids`` as an int64 numpy array."""

    metric: str
    threshold: float
    pairs: int
    components: list

    def __init__(self, section: dict) -> None:
        self.metric = section["metric"]
        self.threshold = section["threshold"]
        self.pairs = section["pairs"]
        self.components = []
        for c in section["components"]:
            c = dict(c)
            c["token_ids"] = np.asarray(c["token_ids"], dtype=np.int64)
            self.components.append(c)

    def __repr__(self) -> str:
        return f"<Near {self.metric} <= {self.threshold}: {len(self.components)} components>"


class Lattice:
    """The step distances between black holes (two or more of them).

    Attributes: ``linf_steps`` and ``l1_steps`` (k × k uint64 arrays, holes
    in the order of ``Survey.groups``; L1 saturates at 2**64 − 1) and
    ``components`` (int64 arrays of indices into the groups)."""

    linf_steps: np.ndarray
    l1_steps: np.ndarray
    components: list

    def __init__(self, section: dict) -> None:
        self.linf_steps = np.asarray(section["linf_steps"], dtype=np.uint64)
        self.l1_steps = np.asarray(section["l1_steps"], dtype=np.uint64)
        self.components = [np.asarray(c, dtype=np.int64) for c in section["components"]]

    def __repr__(self) -> str:
        return f"<Lattice of {len(self.linf_steps)} black holes, {len(self.components)} components>"


def _iframe(page: str) -> str:
    """The page inline in a notebook: its styles, script and
    Content-Security-Policy stay inside the frame."""
    return (
        '<iframe style="width:100%;height:900px;border:1px solid #ddd" '
        'sandbox="allow-scripts" srcdoc="' + _html.escape(page, quote=True) + '"></iframe>'
    )


class _Rendered:
    """What a survey and a series share: their renderings, from the Rust
    report the command line renders (``self._native``)."""

    _native: Any

    def to_dict(self) -> dict:
        """The result as the command line's ``--json`` document (a new dict each call)."""
        return _json.loads(self._native.json())

    def to_json(self) -> str:
        """The result as the command line's ``--json`` prints it."""
        return self._native.pretty_json()

    def text(self, max_tokens: int = 20) -> str:
        """The text report, as the command line prints it."""
        return self._native.text(max_tokens)

    def html(self) -> str:
        """The result as one self-contained HTML page (the command line's ``--html``)."""
        return self._native.html()

    def save_html(self, path: PathLike) -> None:
        """Writes :meth:`html` to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.html())

    def _repr_html_(self) -> str:
        return _iframe(self.html())


class Survey(_Rendered):
    """The result of :func:`survey`: one matrix surveyed.

    The numbers of the report are attributes (``n_unique``, ``n_duplicate``,
    ``uniqueness``, ``duplicate_fraction``, ``dedup_ratio``, ``black_holes``,
    ``shape``, ``dtype``, ``stored_dtype``, ``tensor``, ``file``, ``format``,
    ``device``, ``equality``, ``group_sizes``, ``geometry``, ...: every key of
    the JSON document), with the per-token arrays as numpy arrays:
    ``groups`` (a list of int64 arrays of token ids, sorted as in the report:
    by size, then smallest id), ``norms`` (every row's L2 norm, float64),
    ``nearest`` (:class:`Nearest`), ``near`` (:class:`Near`), ``lattice``
    (:class:`Lattice`), ``tokens`` (id → string), ``indicators`` (the JSON
    section, a dict). ``to_dict()`` is the command line's ``--json``
    document; ``html()`` its ``--html`` page."""

    __slots__ = ("_native", "_doc", "_groups", "_norms", "_nearest")

    def __init__(self, native: Any) -> None:
        self._native = native
        self._doc: Optional[dict] = None
        self._groups: Optional[list] = None
        self._norms: Optional[np.ndarray] = None
        self._nearest: Any = False

    # The document, parsed once for the attributes read from it.
    def _d(self) -> dict:
        if self._doc is None:
            self._doc = _json.loads(self._native.json())
        return self._doc

    @property
    def groups(self) -> list:
        """The black holes: int64 arrays of token ids, by size then smallest id."""
        if self._groups is None:
            self._groups = self._native.groups()
        return self._groups

    @property
    def black_holes(self) -> int:
        """The number of groups of two or more identical rows."""
        return len(self.groups)

    @property
    def tokens_in_holes(self) -> int:
        """Tokens that share their vector with another token."""
        return int(sum(len(g) for g in self.groups))

    @property
    def norms(self) -> np.ndarray:
        """Every row's L2 norm, in token order (NaN for a row holding NaN)."""
        if self._norms is None:
            self._norms = self._native.norms()
        return self._norms

    @property
    def nearest(self) -> Optional[Nearest]:
        """``nearest=True``: :class:`Nearest`; else ``None``."""
        if self._nearest is False:
            arrays = self._native.nearest()
            self._nearest = None if arrays is None else Nearest(*arrays, self._d()["nearest"])
        return self._nearest

    @property
    def near(self) -> Optional[Near]:
        """A near flag: :class:`Near`; else ``None``."""
        section = self._d().get("near")
        return None if section is None else Near(section)

    @property
    def lattice(self) -> Optional[Lattice]:
        """:class:`Lattice` with two or more black holes; else ``None``."""
        section = self._d().get("lattice")
        return None if section is None else Lattice(section)

    @property
    def tokens(self) -> Optional[dict]:
        """Token id → string for every id the report names, with a tokenizer; else ``None``."""
        t = self._d().get("tokens")
        return None if t is None else {int(k): v for k, v in t.items()}

    @property
    def indicators(self) -> Optional[dict]:
        """``indicators=True``: the JSON document's ``indicators`` section; else ``None``."""
        return self._d().get("indicators")

    @property
    def notices(self) -> list:
        """Lines about how the survey ran (a fallback to the CPU, ...), in neither rendering."""
        return list(self._native.notices)

    @property
    def _source_address(self) -> Optional[int]:
        """The address of the first byte the engine read, for an array (a test hook)."""
        return self._native.source_address

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        d = self._d()
        if name in d:
            v = d[name]
            return tuple(v) if name == "shape" else v
        raise AttributeError(f"'Survey' object has no attribute {name!r}")

    def __dir__(self) -> Iterable[str]:
        return sorted(set(object.__dir__(self)) | set(self._d().keys()))

    def __repr__(self) -> str:
        d = self._d()
        rows, cols = d["shape"]
        holes = self.black_holes
        largest = len(self.groups[0]) if holes else 0
        return (
            f"<Survey {d['file']} {d['tensor']!r} {rows}x{cols} {d['dtype']} on {d['device']['kind']}: "
            f"{d['n_unique']} unique, {holes} black hole{'s' if holes != 1 else ''}"
            + (f" (largest {largest})" if holes else "")
            + ">"
        )

    def __str__(self) -> str:
        return self.text()


def _steps_arg(steps: Optional[str]) -> Optional[str]:
    if steps is None or isinstance(steps, str):
        return steps
    raise SingularityError(f"steps: expected 'START:END[:EVERY]' (a string), got {type(steps).__name__}")


def _ints(values: Sequence[Optional[int]]) -> np.ndarray:
    return np.array([-1 if v is None else v for v in values], dtype=np.int64)


def _floats(values: Sequence[Optional[float]]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


class Series(_Rendered):
    """The result of :func:`series`, :func:`trajectory` or :meth:`SeriesRecorder.result`.

    Every key of the command line's series JSON document is an attribute
    (``schema``, ``inputs``, ``kind``, ``format``, ``tensor``, ``dtype``,
    ``stored_dtype``, ``shape``, ``device``, ``timings_ms``, ``tokens``, ...),
    and the series itself is spread out as numpy arrays, one entry per step
    surveyed: ``steps``, ``n_unique``, ``black_holes``, ``largest``,
    ``tokens_in_holes`` (int64), ``moved`` (int64, −1 at the first step),
    ``max_linf_steps`` and ``mean_l1_steps`` (float64, NaN where undefined);
    and per token: ``first_moved`` and ``evaporated_at`` (int64, −1 for
    never). ``events`` is the list of events (dicts as in the document) and
    ``frozen`` the groups still frozen together at the last step (int64
    arrays). ``to_dict()`` is the command line's series document."""

    def __init__(self, native: Any) -> None:
        self._native = native
        d = _json.loads(native.json())
        self._doc = d
        s = d["series"]
        per = s["per_step"]
        self.steps = np.array(s["steps"], dtype=np.int64)
        self.n_unique = np.array([p["n_unique"] for p in per], dtype=np.int64)
        self.black_holes = np.array([p["black_holes"] for p in per], dtype=np.int64)
        self.largest = np.array([p["largest"] for p in per], dtype=np.int64)
        self.tokens_in_holes = np.array([p["tokens_in_holes"] for p in per], dtype=np.int64)
        self.moved = _ints([p["moved"] for p in per])
        disp = [p["displacement"] or {} for p in per]
        self.max_linf_steps = _floats([x.get("max_linf_steps") for x in disp])
        self.mean_l1_steps = _floats([x.get("mean_l1_steps") for x in disp])
        self.first_moved = _ints(s["tokens"]["first_moved"])
        self.evaporated_at = _ints(s["tokens"]["evaporated_at"])
        self.events = s["events"]
        self.frozen = [np.asarray(f, dtype=np.int64) for f in s["frozen"]]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        d = self.__dict__.get("_doc", {})
        if name in d:
            v = d[name]
            if name == "tokens" and v is not None:
                return {int(k): t for k, t in v.items()}
            return tuple(v) if name == "shape" else v
        raise AttributeError(f"'Series' object has no attribute {name!r}")

    @property
    def notices(self) -> list:
        """Lines about how the series ran, in neither rendering."""
        return list(self._native.notices)

    def __repr__(self) -> str:
        d = self._doc
        return (
            f"<Series of {len(self.steps)} steps ({self.steps[0]}..{self.steps[-1]}) "
            f"{d['tensor']!r} {d['shape'][1]}x{d['shape'][2]} {d['dtype']}: "
            f"{int(self.black_holes[-1])} black holes, {int(self.tokens_in_holes[-1])} tokens in them at the last step, "
            f"{len(self.events)} events>"
        )

    def __str__(self) -> str:
        return self.text()


def series(
    paths_or_folder: Union[PathLike, Sequence[PathLike]],
    *,
    key: Optional[str] = None,
    as_: Optional[str] = None,
    steps: Optional[str] = None,
    tokenizer: Optional[PathLike] = None,
    unembedding: bool = False,
    device: str = "auto",
) -> Series:
    """Surveys a checkpoint series, as ``singularity-gpu --series``.

    ``paths_or_folder`` is a folder (every checkpoint in it whose name holds
    a step number) or a list of checkpoint files, ordered by the last number
    in each name. ``steps`` is ``"START:END[:EVERY]"`` (both ends inclusive,
    each part optional: ``"::10"``, ``"100:500"``); the other keywords are
    the command line's flags."""
    paths = [_path(paths_or_folder)] if _is_path(paths_or_folder) else [_path(p) for p in paths_or_folder]
    return Series(
        _native.survey_series(
            paths,
            key=key,
            as_=as_,
            steps=_steps_arg(steps),
            tokenizer=_opt_path(tokenizer),
            unembedding=unembedding,
            device=_device_name(device),
        )
    )


def trajectory(
    path: PathLike,
    *,
    key: Optional[str] = None,
    as_: Optional[str] = None,
    steps: Optional[str] = None,
    tokenizer: Optional[PathLike] = None,
    device: str = "auto",
) -> Series:
    """Surveys a training trajectory, as ``singularity-gpu --trajectory``: one
    3-D tensor ``[steps, tokens, dim]`` (chosen with ``key``) in a safetensors
    or HDF5 file."""
    return Series(
        _native.survey_series(
            [_path(path)],
            trajectory=True,
            key=key,
            as_=as_,
            steps=_steps_arg(steps),
            tokenizer=_opt_path(tokenizer),
            device=_device_name(device),
        )
    )


class SeriesRecorder:
    """Records a training run step by step, for what ``--series`` says of its checkpoints.

    >>> rec = sg.SeriesRecorder(device="cpu")
    >>> for step in range(steps):
    ...     train_one_step()
    ...     rec.push(step, model.get_input_embeddings().weight)
    >>> rec.result().events

    ``push`` takes what :func:`survey` takes for arrays (a numpy array, a
    torch tensor, a ``__dlpack__`` object; ``as_`` for uint16/int16), read in
    place where it can be, like :func:`survey`. The first push fixes the
    shape and dtype; a step must be larger than the one before. The engine
    keeps what it needs of the step before, so a push costs one pass over
    the matrix. ``tokenizer`` names the token strings of the result."""

    def __init__(self, device: str = "auto", tokenizer: Optional[PathLike] = None, as_: Optional[str] = None) -> None:
        self._native = _native.Recorder(device=_device_name(device), tokenizer=_opt_path(tokenizer))
        self._as = as_

    def push(self, step: int, tensor: Any) -> None:
        """Compares ``tensor`` (the matrix at training step ``step``) with the step before."""
        if _is_path(tensor):
            raise ValueError("push takes the matrix itself (an array or a tensor), not a path")
        a, forced, _label = _as_array(tensor)
        a, read, stored = _prepare(a, forced, self._as)
        self._native.push(int(step), a, read, stored)

    def result(self) -> Series:
        """The series of the steps pushed so far, as :func:`series` gives it for their checkpoints."""
        return Series(self._native.result())

    def __len__(self) -> int:
        return int(self._native.steps)

    def __repr__(self) -> str:
        return f"<SeriesRecorder: {len(self)} steps>"


def compare(
    inputs: Iterable[Any],
    *,
    errors: str = "return",
    **options: Any,
) -> list:
    """Surveys several inputs with the same options (those of :func:`survey`),
    as ``singularity-gpu --file A --file B ...``, on one engine.

    Returns one entry per input, in order: a :class:`Survey`, or, for an input
    that failed, the exception (a :class:`SingularityError` or
    ``RuntimeError``) in its place, as the command line reports a failed
    input in its row and goes on. With ``errors="raise"`` the first failure
    is raised instead. Interrupting (Ctrl-C) always raises."""
    if errors not in ("return", "raise"):
        raise SingularityError(f"errors: expected \"return\" or \"raise\", got {errors!r}")
    out: list = []
    for x in inputs:
        try:
            out.append(survey(x, **options))
        except (ValueError, RuntimeError) as e:
            if errors == "raise":
                raise
            out.append(e)
    return out


def devices() -> list:
    """The adapters wgpu sees on this machine (name, backend, whether software), as dicts."""
    return _json.loads(_native.devices())
