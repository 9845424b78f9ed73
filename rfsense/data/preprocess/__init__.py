"""Per-modality signal preprocessing shared by training (applied once by the packer) and the runtime.

numpy/scipy (numba where installed): the torch-free runtime imports it, and the packer runs it over all
42,900 XRF55 samples, so everything is vectorised over the leading batch axis. Settings: `config.py`; signal
kernels (Hampel, low-pass): `kernels.py`, with their compiled versions (same results) in `compiled.py`; the
per-modality pipelines and `preprocess`: `pipeline.py`. Which samples are
usable is decided before, by `rfsense.data.quality`; normalisation statistics: `rfsense.data.normstats`.

Throughput: `python benchmarks/bench_preprocess.py`.
"""

from __future__ import annotations

from rfsense.data.preprocess.config import MmwavePrep, PreprocessConfig, RfidPrep, WifiPrep
from rfsense.data.preprocess.kernels import hampel
from rfsense.data.preprocess.pipeline import preprocess

__all__ = ["MmwavePrep", "PreprocessConfig", "RfidPrep", "WifiPrep", "hampel", "preprocess"]
