"""`rfsense infer`: recorded sensor data in, predictions with health verdicts out (no torch)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from rfsense.data.recordings.formats import CaptureOptions
from rfsense.deploy.inputs import InferSample, iter_inputs
from rfsense.deploy.runtime import Prediction, Runtime
from rfsense.modalities import MODALITIES
from rfsense.progress import progress

__all__ = ["infer_paths"]


def _chunks(samples: Iterator[InferSample], size: int) -> Iterator[list[InferSample]]:
    chunk: list[InferSample] = []
    for s in samples:
        chunk.append(s)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stack(chunk: list[InferSample]) -> dict[str, np.ndarray | None] | None:
    """Stack a chunk per modality when every sample agrees on presence and shape, else None."""
    out: dict[str, np.ndarray | None] = {}
    for m in MODALITIES:
        arrs = [s.arrays.get(m) for s in chunk]
        if all(a is None for a in arrs):
            out[m] = None
        elif any(a is None for a in arrs) or len({np.shape(a) for a in arrs}) != 1:
            return None
        else:
            out[m] = np.stack(arrs)
    return out


def infer_paths(
    runtime: Runtime, paths: list[str | os.PathLike[str]], *, top_k: int = 3, batch_size: int = 16,
    options: CaptureOptions | None = None, input_format: str | None = None,
) -> tuple[list[str], list[Prediction]]:
    """Predict every sample found in `paths`; input notes (unreadable files, padded captures) join each reason."""
    ids: list[str] = []
    preds: list[Prediction] = []
    for chunk in progress(_chunks(iter_inputs(paths, options=options, input_format=input_format), batch_size), header="inferring"):
        stacked = _stack(chunk)
        if stacked is not None:
            got = runtime.predict(stacked, top_k=top_k, batch_size=batch_size)
        else:  # mixed presence or shapes: one sample at a time, so one odd file cannot fail the rest
            got = [runtime.predict({m: (None if a is None else a[None]) for m, a in s.arrays.items()}, top_k)[0]
                   for s in chunk]
        for s, p in zip(chunk, got, strict=True):
            if s.notes:
                p.reason = "; ".join([*s.notes, p.reason] if p.reason else s.notes)
            ids.append(s.id)
            preds.append(p)
    return ids, preds
