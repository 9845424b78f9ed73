"""Logging set-up for the entry point and one progress wrapper shared by every long job.

On a terminal, progress is tqdm's in-place bar; in logs and CI (stderr not a terminal) it is a plain
`[i/N] rate ETA` line every few seconds. `-q` silences both.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress", "setup_logging"]

T = TypeVar("T")
_logger = logging.getLogger("rfsense.progress")


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root rfsense logger: -q -> WARNING, default INFO, -v -> DEBUG. INFO prints bare."""
    level = logging.INFO - 10 * verbosity
    handler = logging.StreamHandler(sys.stderr)

    class _Fmt(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            msg = record.getMessage()
            return msg if record.levelno == logging.INFO else f"{record.levelname.lower()}: {msg}"

    handler.setFormatter(_Fmt())
    root = logging.getLogger("rfsense")
    root.handlers[:] = [handler]
    root.setLevel(max(logging.DEBUG, min(logging.ERROR, level)))
    root.propagate = False


def progress(
    iterable: Iterable[T], total: int | None = None, header: str = "", every: float = 2.0
) -> Iterator[T]:
    """Yield from `iterable` with a progress bar on a terminal, else `[i/N] rate ETA` log lines at most every
    `every` seconds and at the end.

    Silent when the rfsense logger is above INFO (-q), so it never costs more than a clock read.
    """
    if total is None:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    if _logger.isEnabledFor(logging.INFO) and sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=header, leave=False, dynamic_ncols=True, file=sys.stderr)
        return
    start = last = time.monotonic()
    i = 0
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= every and _logger.isEnabledFor(logging.INFO):
            last = now
            _logger.info(_line(header, i, total, now - start))
    if i and _logger.isEnabledFor(logging.INFO) and time.monotonic() - start >= every:
        _logger.info(_line(header, i, total, time.monotonic() - start))


def _line(header: str, i: int, total: int | None, elapsed: float) -> str:
    rate = i / elapsed if elapsed > 0 else 0.0
    if total:
        eta = (total - i) / rate if rate > 0 else 0.0
        return f"{header} [{i}/{total}] {100 * i / total:5.1f}%  {rate:.1f}/s  eta {eta:.0f}s"
    return f"{header} [{i}] {rate:.1f}/s"
