"""Atomic file writes: write beside the target, then rename, so a crash never leaves half a file."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_text", "clean_stale_temporaries", "locked_temporary"]


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to a uniquely named temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Strict JSON (NaN/Inf are a bug here: callers map them to null first)."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


@contextmanager
def locked_temporary(final: str | os.PathLike[str]) -> Iterator[Path]:
    """A uniquely named temporary beside `final`, locked while this process writes it.

    The caller renames it onto `final` when complete; whatever is left is removed on the way out.
    `clean_stale_temporaries` removes temporaries of killed runs: those no live process holds a lock on.
    """
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
        os.close(fd)


def clean_stale_temporaries(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Delete `.<name>.*.tmp` files in `folder` that no live process holds a lock on; returns them."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: leave it alone
        except BlockingIOError:
            os.close(fd)
            continue
        tmp.unlink(missing_ok=True)
        os.close(fd)
        removed.append(tmp)
    return removed
