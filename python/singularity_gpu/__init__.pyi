"""Type stubs of singularity_gpu: survey a token-embedding matrix for
groups of bit-identical rows (black holes), on the GPU or the CPU."""

import os
from typing import Any, Iterable, Literal, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

PathLike = Union[str, os.PathLike[str]]
Device = Literal["auto", "gpu", "cpu"]
As = Literal["bf16", "f16"]

__version__: str

class SingularityError(ValueError):
    """Bad input or options: the message is the command line's one-line error."""

def survey(
    x: Any,
    *,
    key: Optional[str] = None,
    as_: Optional[As] = None,
    device: Device = "auto",
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
) -> Survey:
    """Surveys one matrix (a path, a 2-D numpy array, a torch tensor or a
    ``__dlpack__`` object), as ``singularity-gpu --file``. C-contiguous
    host arrays are read in place; others are copied once."""

def series(
    paths_or_folder: Union[PathLike, Sequence[PathLike]],
    *,
    key: Optional[str] = None,
    as_: Optional[As] = None,
    steps: Optional[str] = None,
    tokenizer: Optional[PathLike] = None,
    unembedding: bool = False,
    device: Device = "auto",
) -> Series:
    """Surveys a checkpoint series, as ``singularity-gpu --series``."""

def trajectory(
    path: PathLike,
    *,
    key: Optional[str] = None,
    as_: Optional[As] = None,
    steps: Optional[str] = None,
    tokenizer: Optional[PathLike] = None,
    device: Device = "auto",
) -> Series:
    """Surveys a training trajectory (one 3-D tensor), as ``singularity-gpu --trajectory``."""

def compare(
    inputs: Iterable[Any],
    *,
    errors: Literal["return", "raise"] = "return",
    **options: Any,
) -> list[Union[Survey, Exception]]:
    """Surveys several inputs with the same options; a failed input's exception takes its place."""

def devices() -> list[dict[str, Any]]:
    """The adapters wgpu sees on this machine, as dicts."""

class Nearest:
    """``nearest=True``: every token's nearest distinct vector."""

    ids: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float64]
    with_neighbour: int
    quantiles: list[dict[str, float]]
    histogram: list[dict[str, float]]
    gap: Optional[dict[str, Any]]
    most_isolated: list[dict[str, Any]]
    least_isolated: list[dict[str, Any]]

class Near:
    """Near-singularity components (``near_l2``, ``near_rel``, ``near_ulp``)."""

    metric: str
    threshold: float
    pairs: int
    components: list[dict[str, Any]]

class Lattice:
    """Step distances between black holes."""

    linf_steps: npt.NDArray[np.uint64]
    l1_steps: npt.NDArray[np.uint64]
    components: list[npt.NDArray[np.int64]]

class Survey:
    """One matrix surveyed: the report's numbers as attributes, its per-token arrays as numpy."""

    # From the document (every key of --json is an attribute).
    schema: str
    file: str
    format: str
    tensor: str
    dtype: str
    stored_dtype: str
    shape: tuple[int, int]
    memory_bytes: int
    values_bytes: int
    device: dict[str, str]
    equality: str
    n_unique: int
    n_duplicate: int
    uniqueness: float
    duplicate_fraction: float
    dedup_ratio: float
    group_sizes: Optional[dict[str, Any]]
    pairwise_skipped: Optional[int]
    geometry: dict[str, Any]
    lattice_skipped: Optional[int]
    timings_ms: dict[str, float]
    nan_rows: list[int]
    @property
    def groups(self) -> list[npt.NDArray[np.int64]]:
        """The black holes: token ids, by size then smallest id."""
    @property
    def black_holes(self) -> int:
        """The number of groups of two or more identical rows."""
    @property
    def tokens_in_holes(self) -> int:
        """Tokens that share their vector with another token."""
    @property
    def norms(self) -> npt.NDArray[np.float64]:
        """Every row's L2 norm, in token order."""
    @property
    def nearest(self) -> Optional[Nearest]:
        """``nearest=True``: every token's nearest distinct vector."""
    @property
    def near(self) -> Optional[Near]:
        """A near flag: the near-singularity components."""
    @property
    def lattice(self) -> Optional[Lattice]:
        """Step distances between black holes (two or more)."""
    @property
    def tokens(self) -> Optional[dict[int, str]]:
        """Token id → string, with a tokenizer."""
    @property
    def indicators(self) -> Optional[dict[str, Any]]:
        """``indicators=True``: the document's indicators section."""
    @property
    def notices(self) -> list[str]:
        """Lines about how the survey ran."""
    @property
    def _source_address(self) -> Optional[int]:
        """The address of the first byte the engine read (arrays)."""
    def to_dict(self) -> dict[str, Any]:
        """The command line's ``--json`` document."""
    def to_json(self) -> str:
        """The report as the command line's ``--json`` prints it."""
    def text(self, max_tokens: int = 20) -> str:
        """The text report."""
    def html(self) -> str:
        """The ``--html`` page."""
    def save_html(self, path: PathLike) -> None:
        """Writes the ``--html`` page to ``path``."""
    def _repr_html_(self) -> str: ...
    def __getattr__(self, name: str) -> Any: ...

class Series:
    """A checkpoint series surveyed: the document's fields as attributes, per-step arrays as numpy."""

    schema: str
    inputs: list[str]
    kind: str
    format: str
    tensor: str
    dtype: str
    stored_dtype: str
    shape: tuple[int, int, int]
    device: dict[str, str]
    timings_ms: dict[str, float]
    steps: npt.NDArray[np.int64]
    n_unique: npt.NDArray[np.int64]
    black_holes: npt.NDArray[np.int64]
    largest: npt.NDArray[np.int64]
    tokens_in_holes: npt.NDArray[np.int64]
    moved: npt.NDArray[np.int64]
    max_linf_steps: npt.NDArray[np.float64]
    mean_l1_steps: npt.NDArray[np.float64]
    first_moved: npt.NDArray[np.int64]
    evaporated_at: npt.NDArray[np.int64]
    events: list[dict[str, Any]]
    frozen: list[npt.NDArray[np.int64]]
    @property
    def notices(self) -> list[str]:
        """Lines about how the series ran."""
    def to_dict(self) -> dict[str, Any]:
        """The command line's series ``--json`` document."""
    def to_json(self) -> str:
        """The series as the command line's ``--json`` prints it."""
    def text(self, max_tokens: int = 20) -> str:
        """The text report."""
    def html(self) -> str:
        """The ``--html`` page."""
    def save_html(self, path: PathLike) -> None:
        """Writes the ``--html`` page to ``path``."""
    def _repr_html_(self) -> str: ...
    def __getattr__(self, name: str) -> Any: ...

class SeriesRecorder:
    """Records a training run step by step, for what ``--series`` says of its checkpoints."""

    def __init__(
        self, device: Device = "auto", tokenizer: Optional[PathLike] = None, as_: Optional[As] = None
    ) -> None: ...
    def push(self, step: int, tensor: Any) -> None:
        """Compares the matrix at ``step`` with the step before."""
    def result(self) -> Series:
        """The series of the steps pushed so far."""
    def __len__(self) -> int: ...
