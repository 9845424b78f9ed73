"""Validate XRF55 files and trees with messages that name the file, the array and what was expected.

Headers are read from the .npy header alone (`--quick` stops there). The value scan reads each file
through a read-only memory map, counts NaN/Inf, and applies the quality rule packing and the runtime
use (`rfsense.data.quality`): a file that rule fails is reported as `unusable` with its reasons, and
the report counts every status per modality. One file is in memory at a time.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rfsense.data.layout import Problem, SplitSpec, discover, split_samples
from rfsense.data.quality import ASSESSED, QualityConfig, assess
from rfsense.errors import DataError
from rfsense.modalities import FOLDERS, MODALITIES, SHAPES, Modality, canonical_shape, expected_shape
from rfsense.progress import progress

__all__ = [
    "CheckReport",
    "NpyHeader",
    "check_modality",
    "check_tree",
    "load_modality",
    "load_npy",
    "load_npz",
    "read_npy_header",
]


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int


def read_npy_header(path: str | os.PathLike[str]) -> NpyHeader:
    """Parse a .npy header without reading the array; raise DataError if the file is missing, empty, not .npy
    or shorter than its header promises (so no reader ever allocates for a shape the bytes cannot fill)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:  # e.g. a dangling symlink
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if size == 0:
        raise DataError(f"{path}: zero-byte file")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a valid .npy file ({err})") from None
    need = offset + math.prod(shape) * dtype.itemsize  # Python ints: a huge promised shape cannot wrap around
    if dtype.hasobject:
        raise DataError(f"{path}: holds Python objects (dtype {dtype}); expected a real float array")
    if size < need:
        raise DataError(f"{path}: truncated: {size} bytes, header promises {need} ({shape} {dtype})")
    return NpyHeader(tuple(shape), dtype, fortran, offset)


def _check_dtype(dtype: np.dtype, modality: Modality, source: str) -> None:
    if dtype.kind != "f":
        raise DataError(f"{modality} array in {source} has dtype {dtype}; expected a real float dtype (float16/32/64)")


def check_modality(arr: np.ndarray, modality: Modality, source: str = "<array>") -> np.ndarray:
    """Check one sample's array and return it in canonical shape (mmWave's leading 1 dropped).

    Raises:
        DataError: wrong shape or a non-float dtype; the message names the source and the expected shape.
    """
    arr = np.asarray(arr)
    _check_dtype(arr.dtype, modality, source)
    if canonical_shape(modality, arr.shape) is None:
        raise DataError(f"{modality} array in {source} has shape {arr.shape}; expected {expected_shape(modality)}")
    return arr.reshape(SHAPES[modality])


def load_npy(path: str | os.PathLike[str], mmap: bool = False) -> np.ndarray:
    """Load any .npy safely: the header is checked against the file size first, objects are refused.

    Raises:
        DataError: missing, empty, malformed, truncated, or object file (the message names it).
    """
    read_npy_header(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from None


# A bundle holds one sample per modality; the largest (mmWave as float64) is 4.5 MB.
_MAX_MEMBER_BYTES = 64 << 20


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an .npz safely: each member's header is checked against its stored size (and a sane
    bound) before anything is allocated, objects are refused.

    Raises:
        DataError: not a zip of .npy members, a truncated or oversized member, or objects (the message names it).
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                    need = math.prod(shape) * dtype.itemsize
                if dtype.hasobject or need > _MAX_MEMBER_BYTES or need > info.file_size:
                    raise DataError(f"{path}: array {name!r} promises {shape} {dtype} ({need} bytes) but stores "
                                    f"{info.file_size}; expected one sample of real numbers per modality")
                with zf.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise DataError(f"{path}: not a readable .npz bundle ({err})") from None
    return out


def load_modality(path: str | os.PathLike[str], modality: Modality, mmap: bool = False) -> np.ndarray:
    """Load one modality file, validated, in canonical shape (values not scanned)."""
    header = read_npy_header(path)
    _check_dtype(header.dtype, modality, str(path))
    if canonical_shape(modality, header.shape) is None:
        raise DataError(f"{modality} array in {path} has shape {header.shape}; expected {expected_shape(modality)}")
    return load_npy(path, mmap).reshape(SHAPES[modality])


def _count_nonfinite(path: Path, chunk: int = 1 << 22) -> int:
    flat = np.load(path, mmap_mode="r", allow_pickle=False).reshape(-1)
    return int(sum(np.count_nonzero(~np.isfinite(flat[i : i + chunk])) for i in range(0, flat.size, chunk)))


@dataclass
class CheckReport:
    root: str
    layout: str
    n_samples: int
    splits: dict[str, int]
    coverage: dict[str, dict[str, int]]  # split -> modality -> files present
    problems: list[Problem] = field(default_factory=list)
    status_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # modality -> quality status -> files

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "layout": self.layout,
            "ok": self.ok,
            "n_samples": self.n_samples,
            "splits": self.splits,
            "coverage": self.coverage,
            "status_counts": self.status_counts,
            "problem_counts": dict(Counter(p.kind for p in self.problems)),
            "problems": [{"kind": p.kind, "path": p.path, "message": p.message} for p in self.problems],
        }

    def format(self, max_problems: int = 50) -> str:
        lines = [f"XRF55 tree {self.root} (layout: {self.layout}), {self.n_samples} samples", ""]
        head = f"{'split':<8}{'samples':>9}" + "".join(f"{FOLDERS[m]:>9}" for m in MODALITIES)
        lines += [head, "-" * len(head)]
        for split, n in self.splits.items():
            cov = self.coverage[split]
            lines.append(f"{split:<8}{n:>9}" + "".join(f"{cov[m]:>9}" for m in MODALITIES))
        if self.status_counts:
            lines.append("")
            lines.append("quality (the checks packing and the runtime apply): " + "; ".join(
                f"{FOLDERS[m]} " + ", ".join(f"{s} {n}" for s, n in c.items() if n)
                for m, c in self.status_counts.items()))
        lines.append("")
        if self.ok:
            lines.append("no problems found")
        else:
            counts = Counter(p.kind for p in self.problems)
            lines.append(f"{len(self.problems)} problems: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            lines += [f"  {p}" for p in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... {len(self.problems) - max_problems} more (use --json for all)")
        return "\n".join(lines)


def _check_file(path: Path, modality: Modality, scan_values: bool, quality: QualityConfig) -> tuple[list[Problem], str | None]:
    """Problems of one file and its quality status (None when the values were not read)."""
    try:
        header = read_npy_header(path)
    except DataError as err:
        kind = "zero_byte" if "zero-byte" in str(err) else "truncated" if "truncated" in str(err) else "bad_file"
        return [Problem(kind, str(path), str(err).split(": ", 1)[-1])], None
    if header.dtype.kind != "f":
        return [Problem("bad_dtype", str(path), f"dtype {header.dtype}; expected a real float dtype")], None
    if canonical_shape(modality, header.shape) is None:
        return [Problem("bad_shape", str(path), f"{modality} shape {header.shape}; expected {expected_shape(modality)}")], None
    if not scan_values:
        return [], None
    problems = []
    bad = _count_nonfinite(path)
    if bad:
        total = int(np.prod(header.shape))
        problems.append(Problem("nonfinite", str(path), f"{bad} of {total} values are NaN/Inf ({100 * bad / total:.2f}%)"))
    checked = assess(modality, load_modality(path, modality, mmap=True)[None], quality)
    status = str(checked.status[0])
    if not checked.usable[0]:
        problems.append(Problem("unusable", str(path), "; ".join(checked.reasons[0])))
    return problems, status


def check_tree(
    root: str | os.PathLike[str], spec: SplitSpec = SplitSpec(), scan_values: bool = True,
    quality: QualityConfig | None = None,
) -> CheckReport:
    """Discover and check every file under `root`: names, partners, duplicates, headers, shapes, dtypes,
    NaN/Inf, and the quality rule (what packing would train on)."""
    found = discover(root)
    splits = split_samples(found.samples, spec)
    problems = list(found.problems)
    coverage: dict[str, dict[str, int]] = {}
    for split, samples in splits.items():
        coverage[split] = {m: sum(m in s.files for s in samples) for m in MODALITIES}
    jobs: list[tuple[Path, Modality]] = [(p, m) for s in found.samples for m, p in s.files.items()]
    counts = {m: dict.fromkeys(ASSESSED, 0) for m in MODALITIES} if scan_values else {}
    for path, modality in progress(jobs, header="checking files"):
        found_problems, status = _check_file(path, modality, scan_values, quality or QualityConfig())
        problems.extend(found_problems)
        if status is not None:
            counts[modality][status] += 1
    return CheckReport(
        root=str(found.root),
        layout=found.layout,
        n_samples=len(found.samples),
        splits={k: len(v) for k, v in splits.items()},
        coverage=coverage,
        problems=problems,
        status_counts=counts,
    )

