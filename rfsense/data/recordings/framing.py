"""Record framing checks shared by the binary capture readers (stdlib only).

Binary logs are runs of length-prefixed records. A capture stopped while the logger was writing ends in a
partial record; a corrupt length field sends the framing off into the payload. The readers walk the framing
in Python before csiread sees the bytes (csiread trusts every length it reads), and `truncated_tail` decides
which of the two a record that runs past the end of the file is.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rfsense.errors import DataError

__all__ = ["mapped_file", "truncated_tail"]


@contextmanager
def mapped_file(path: Path, what: str) -> Iterator[mmap.mmap]:
    """The file's bytes, memory-mapped read-only (pages are read on use and can be dropped again, so a long
    capture does not have to fit in memory next to what is made from it).

    Raises:
        DataError: the file is empty (the message names it and the format expected).
    """
    with open(path, "rb") as f:
        if not path.stat().st_size:
            raise DataError(f"{path}: empty file (0 bytes); expected a {what}")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def truncated_tail(path: Path, what: str, *, index: int, offset: int, declared: int, available: int,
                   largest: int, plausible: bool = True) -> str:
    """Judge record `index` at `offset`, which declares `declared` bytes where only `available` remain.

    It is a partial last record (the capture was cut while being written) when at least one record before it
    was complete, fewer bytes remain than the largest complete record, and what remains still starts like a
    record (`plausible`: the caller checks whatever header bytes are there): the caller drops it and keeps
    the returned flag. Otherwise a length field is corrupt (the framing ran into payload bytes), or nothing
    in the file is complete.

    Raises:
        DataError: naming the file, the record, its offset and the format expected.
    """
    if index == 0:
        raise DataError(f"{path}: truncated or not a {what}: record 0 declares {declared} bytes but the file "
                        f"has {available}")
    if available >= largest or not plausible:
        raise DataError(f"{path}: corrupt length field: record {index} at offset {offset} declares {declared} "
                        f"bytes, {available} remain (records so far are at most {largest}); not a valid {what}")
    return f"truncated: last record ({available} of {declared} bytes) dropped"
