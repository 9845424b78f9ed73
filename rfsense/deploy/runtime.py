"""Torch-free inference on an exported rfsense model: manifest + sha256 checks, health and plausibility
checks, ONNX, softmax.

Only numpy, scipy (through the shared preprocessing) and onnxruntime are imported here, so an edge box
needs no torch; ``tests/deploy/test_runtime.py`` proves it in a subprocess.

    from rfsense.deploy import Runtime, format_predictions
    rt = Runtime("export/rfsense.onnx")              # reads export/rfsense.json beside it
    preds = rt.predict({"wifi": wifi, "rfid": rfid})  # (B, 270, 1000), (B, 23, 148); mmwave absent
    print(format_predictions(preds, ids, "table"))

Per batch: health check on the raw streams (`check`: `rfsense.deploy.health`, the quality rule with its
physical checks) -> per modality with usable rows: the shared preprocessing with the manifest's settings
(`prepare`), the plausibility checks on the preprocessed stream (`screen`), its encoder graph on those rows
only (`encode`: tokens and the OOD score, checked against its threshold) -> the fusion graph under the
presence mask (`fuse`) -> softmax in float64. A stream that fails a check is masked with its reason; a sample
with no usable modality gets an explicit "no_prediction" and never reaches the model. The stress suite
calls the steps one by one (and caches the tokens of clean streams).

An rfsense-onnx/1 export (one graph, no OOD output, no plausibility statistics) still loads and predicts:
`logits` runs its graph; `encode` and `fuse` need an rfsense-onnx/2 export.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rfsense.config import from_data
from rfsense.data.preprocess import PreprocessConfig, compiled, preprocess
from rfsense.data.quality import QualityConfig
from rfsense.deploy.health import Verdict, check_stream, check_streams, read_inputs
from rfsense.deploy.health import batch_size as _count_samples
from rfsense.deploy.manifest import FORMAT_V1, GRAPHS, manifest_path_for, read_manifest, sha256_bytes
from rfsense.deploy.plausibility import Plausibility, check_distribution, read_plausibility
from rfsense.deploy.session import make_session
from rfsense.errors import ConfigError, ModelFileError
from rfsense.modalities import LETTERS, MODALITIES, SHAPES

__all__ = ["Prediction", "Runtime", "format_predictions", "softmax"]

_logger = logging.getLogger(__name__)

_ORT_DTYPES = {"float32": "tensor(float)", "bool": "tensor(bool)"}


def softmax(logits: npt.ArrayLike) -> np.ndarray:
    """Row-wise softmax in float64, stable (max subtracted): (B, C) -> (B, C). Rows with NaN/Inf come out NaN."""
    z = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(z).all(axis=-1, keepdims=True)
    z = np.where(finite, z, 0.0)
    z = z - z.max(axis=-1, keepdims=True)  # <= 0, so exp never overflows and the sum is >= 1
    e = np.exp(z)
    return np.where(finite, e / e.sum(axis=-1, keepdims=True), np.nan)


@dataclass
class Prediction:
    """Result for one sample.

    Attributes:
        top: up to top_k (class_index, class_name, probability), most probable first; empty when status is
            "no_prediction".
        modalities_used: modalities that reached the model, in MODALITIES order.
        verdicts: modality -> health Verdict (every modality, absent ones included; with its OOD score when
            the model computed one).
        status: "ok" or "no_prediction".
        reason: why there is no prediction, or what was repaired/masked ("" when all streams were clean).
    """

    top: list[tuple[int, str, float]]
    modalities_used: list[str]
    verdicts: dict[str, Verdict]
    status: Literal["ok", "no_prediction"]
    reason: str = ""
    # (n_classes,) float64 full distribution, None without prediction; not part of to_dict() or ==.
    probs: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (probabilities as floats, verdicts as dicts; the full `probs` vector is left out)."""
        return {
            "status": self.status,
            "top": [{"index": i, "name": n, "prob": p} for i, n, p in self.top],
            "modalities_used": list(self.modalities_used),
            "verdicts": {m: v.to_dict() for m, v in self.verdicts.items()},
            "reason": self.reason,
        }


def _masked(old: Verdict, status: str, reason: str, ood: float | None = None) -> Verdict:
    """A stream's verdict once a later check masks it: repair notes dropped (they no longer matter)."""
    keep = [r for r in old.reasons if ": repaired " not in r]
    return Verdict(old.modality, status, [*keep, reason], ood if ood is not None else old.ood)


class Runtime:
    """An exported model ready for inference, with its manifest and every graph's sha256 checked.

    Attributes:
        model_path, manifest_path: the entry file given (the fusion graph of an rfsense-onnx/2 export) and its
            manifest.
        manifest: the manifest dict; format: its format string.
        class_names: list of n_classes names (from the manifest).
        preprocessing: PreprocessConfig from the manifest (the one training used).
        health: QualityConfig from the manifest (the one packing used); may be replaced before predict().
        plausibility: `rfsense.deploy.plausibility.Plausibility` of an rfsense-onnx/2 export (None for /1); its
            ``config`` may be replaced (e.g. ``dataclasses.replace(rt.plausibility.config, ood=False)``).
        providers: what the onnxruntime sessions really run on, e.g. ["CPUExecutionProvider"].
        sessions: part -> onnxruntime InferenceSession: "fusion" and each modality (rfsense-onnx/2), or "model".
        session: the fusion session (rfsense-onnx/2) or the single graph's (rfsense-onnx/1).
        token_shape: (n_tokens, d) of the encoders' tokens (rfsense-onnx/2; None for /1).
        parallel: whether `predict` runs the streams of a batch concurrently (see __init__).
        graph_threads: part -> the intra-op threads its session got (None: onnxruntime's choice); graphs doing a
            small share of the model's work run on one (`_graph_threads`).
        kernels: "compiled" once the compiled preprocessing kernels are ready (numba installed: they compile in a
            background thread when the model loads, ~8 s on 2 cores), else "numpy"; results are the same either way
            (`rfsense.data.preprocess.compiled`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        providers: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int | None = None,
        parallel: bool = True,
        kernels: Literal["auto", "numpy"] = "auto",
    ) -> None:
        """Load and verify a model.

        Args:
            model_path: the .onnx file; its manifest is `manifest_path_for(model_path)`. For an rfsense-onnx/2
                export the encoder graphs the manifest names are read from the same folder.
            providers: "auto" (CUDA when a device is really usable, else CPU), "cpu", or "cuda" (fail if
                CUDA cannot be used).
            threads: onnxruntime intra-op threads per session; None lets onnxruntime choose (one per
                physical core).
            parallel: in `predict`, run the streams of a batch (preprocessing, checks, encoder) concurrently
                in a small thread pool (one thread per core at most, the stream with the costliest encoder
                first, then the others largest first: `_stream_order`), so one stream's preprocessing overlaps
                another's encoder; the result is the same either way.
            kernels: "auto" compiles the preprocessing kernels in a background thread where numba is installed and
                uses them once ready (`rfsense.data.preprocess.compiled`); "numpy" never does.

        Raises:
            ModelFileError: a model file or the manifest missing or malformed, or any graph's sha256 differs
                from the manifest's (all are checked before any session is built); a graph without the
                contract's inputs/outputs.
            ProviderError: providers="cuda" but CUDA is not usable here.
            ConfigError: bad `providers`, `threads` or `kernels` value.
        """
        if kernels not in ("auto", "numpy"):
            raise ConfigError(f"kernels must be 'auto' or 'numpy', got {kernels!r}")
        self.model_path = Path(model_path)
        self.manifest_path = manifest_path_for(self.model_path)
        if not self.model_path.is_file():
            raise ModelFileError(f"model file {self.model_path} not found")
        self.manifest = read_manifest(self.manifest_path)
        self.format: str = self.manifest["format"]
        split = self.format != FORMAT_V1

        # Hash the very bytes the sessions are built from, so no file can change in between; all before any run.
        named = self.manifest["graphs"]["fusion"]["file"] if split else self.manifest.get("model_file")
        files = {"model": (self.model_path, self.manifest.get("sha256", ""))}
        if split:
            files = {p: (self.model_path.parent / self.manifest["graphs"][p]["file"], self.manifest["graphs"][p]["sha256"])
                     for p in GRAPHS}
            files["fusion"] = (self.model_path, files["fusion"][1])
        blobs = {p: self._verified_bytes(path, sha) for p, (path, sha) in files.items()}
        if named is not None and named != self.model_path.name:
            _logger.warning(
                "manifest %s names model file %r but the model is %s (the sha256 matches, so it was renamed)",
                self.manifest_path, named, self.model_path.name,
            )

        self.class_names: list[str] = list(self.manifest["class_names"])
        try:
            self.preprocessing = from_data(PreprocessConfig, self.manifest["preprocessing"], "preprocessing")
            self.health = from_data(QualityConfig, self.manifest["health"], "health")
        except ConfigError as err:
            raise ModelFileError(f"manifest {self.manifest_path}: {err}") from None
        self.plausibility: Plausibility | None = (
            read_plausibility(self.manifest["plausibility"], str(self.manifest_path)) if split else None)
        self.input_shapes: dict[str, tuple[int, ...]] = {
            m: tuple(self.manifest["inputs"][m]["shape"][1:]) for m in MODALITIES
        }
        self.token_shape: tuple[int, int] | None = tuple(self.manifest["tokens"]["shape"][1:]) if split else None  # type: ignore[assignment]
        self._files = {p: path for p, (path, _) in files.items()}
        flops = _graph_gflop(self.manifest) if split else {}
        self.graph_threads = _graph_threads(flops, threads) if split else {"model": threads}
        self.sessions = {p: make_session(blob, providers=providers, threads=self.graph_threads[p], name=str(files[p][0]))
                         for p, blob in blobs.items()}
        self.session = self.sessions["fusion" if split else "model"]
        self.parallel = parallel
        self._pool: ThreadPoolExecutor | None = None
        self._workers = (threads or _cores()) if parallel else 1  # for the WiFi filters of one batch
        # Concurrent streams: one per core at most (more only make them take turns).
        self._lanes = min(len(MODALITIES), _cores()) if parallel else 1
        self._order = _stream_order(flops)
        # Compiled kernels (numba, where installed) build in the background; batches before then run numpy's.
        self._fast = kernels == "auto"
        if self._fast:
            compiled.start(self.preprocessing.wifi.hampel_window)
        self.providers: list[str] = list(self.session.get_providers())
        self._check_sessions()
        _logger.info("loaded %s (%s, %d graph(s)) on %s", self.model_path, self.format, len(self.sessions),
                     ", ".join(self.providers))

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:  # its idle threads would otherwise live until the interpreter exits
            pool.shutdown(wait=False)

    def _verified_bytes(self, path: Path, expected: str) -> bytes:
        if not path.is_file():
            raise ModelFileError(f"model file {path} not found; its manifest {self.manifest_path} lists it: "
                                 "keep every file of an export together")
        data = path.read_bytes()
        actual = sha256_bytes(data)
        if actual != expected.lower():
            raise ModelFileError(
                f"model file {path} has sha256 {actual}, but its manifest {self.manifest_path} says {expected}: "
                f"the model or the manifest was changed or corrupted; re-export them together"
            )
        return data

    # ---------------------------------------------------------------------------- contract checks

    def _check_io(self, part: str, want_inputs: dict[str, tuple[str, list[Any]]], want_outputs: dict[str, list[Any]]) -> None:
        """A session's inputs must be exactly `want_inputs` (name -> (dtype, shape after batch)) and its outputs
        must include `want_outputs` (name -> shape after batch)."""
        sess, path = self.sessions[part], self._files[part]
        got = {i.name: i for i in sess.get_inputs()}
        if sorted(got) != sorted(want_inputs):
            raise ModelFileError(f"model {path} ({part}) has inputs {sorted(got)}; expected {list(want_inputs)}")
        for name, (dtype, shape) in want_inputs.items():
            node = got[name]
            if node.type != _ORT_DTYPES[dtype]:
                raise ModelFileError(f"model {path} ({part}): input {name} is {node.type}; manifest says {dtype}")
            if list(node.shape[1:]) != list(shape):
                raise ModelFileError(f"model {path} ({part}): input {name} has shape {node.shape}; manifest says "
                                     f"['batch', {', '.join(map(str, shape))}]")
        outs = {o.name: o for o in sess.get_outputs()}
        for name, shape in want_outputs.items():
            if name not in outs:
                raise ModelFileError(f"model {path} ({part}) has outputs {sorted(outs)}; expected {name!r}")
            if list(outs[name].shape[1:]) != list(shape):
                what = (f"output logits has {outs[name].shape[-1] if outs[name].shape else None} classes but its "
                        f"manifest lists {len(self.class_names)} class names") if name == "logits" else (
                        f"output {name} has shape {outs[name].shape}; expected ['batch', {', '.join(map(str, shape))}]")
                raise ModelFileError(f"model {path} ({part}): {what}")

    def _check_sessions(self) -> None:
        """Every graph must have exactly the contract's inputs and its outputs, with matching shapes: a model
        whose logits width differs from the class list would fail on every call, or answer with wrong names."""
        spec = {m: ("float32", self.manifest["inputs"][m]["shape"][1:]) for m in MODALITIES}
        present = ("bool", self.manifest["inputs"]["present"]["shape"][1:])
        logits = {"logits": [len(self.class_names)]}
        if self.token_shape is None:
            self._check_io("model", {**spec, "present": present}, logits)
            return
        tokens = list(self.token_shape)
        for m in MODALITIES:
            self._check_io(m, {m: spec[m]}, {"tokens": tokens, "ood": []})
        self._check_io("fusion", {**{f"tokens_{m}": ("float32", tokens) for m in MODALITIES}, "present": present}, logits)

    @property
    def kernels(self) -> str:
        k = self.preprocessing.wifi.hampel_window
        return "compiled" if self._fast and compiled.ready() and (k == 0 or compiled.hampel_ready(k)) else "numpy"

    def wait_for_kernels(self) -> str:
        """Block until the compiled kernels are ready (no-op without numba); returns `kernels`."""
        if self._fast:
            compiled.warm_up(self.preprocessing.wifi.hampel_window)
        return self.kernels

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def _require_split(self, what: str) -> None:
        if self.token_shape is None:
            raise ModelFileError(f"{what} needs an rfsense-onnx/2 export (one graph per encoder); {self.model_path} is "
                                 f"{self.format}: re-export it with `rfsense export`")

    # ------------------------------------------------------------------------------ the steps

    def check(self, inputs: dict[str, npt.ArrayLike | None]) -> tuple[dict[str, np.ndarray], np.ndarray, list[dict[str, Verdict]]]:
        """Health checks on raw streams with the manifest's thresholds (`rfsense.deploy.health.check_streams`).

        Returns:
            (arrays, present, verdicts): arrays[m] float (B, *SHAPES[m]) repaired, unusable rows zero-filled (may
            be the caller's own array: read-only); present bool (B, 3); verdicts[i][m] a Verdict.

        Raises:
            DataError: an unknown modality key, or inputs that disagree on the batch size.
        """
        return check_streams(inputs, self.health)

    def prepare(self, modality: str, raw: npt.ArrayLike, workers: int | None = None) -> npt.NDArray[np.float32]:
        """The shared preprocessing with the manifest's settings, nothing else: (n, *SHAPES[m]) -> float32.

        Values the filters overflow come out non-finite (`screen` catches them). `workers`: threads for the WiFi
        filters (default: the runtime's); the result is the same.
        """
        with np.errstate(all="ignore"):  # overflow in filters of absurd values is caught by screen(), per row
            return preprocess(modality, raw, self.preprocessing, workers=workers or self._workers, fast=self._fast)

    def screen(self, modality: str, feeds: np.ndarray) -> list[Verdict | None]:
        """Checks of preprocessed rows (n, *input_shape): per row None (fine) or the Verdict that masks it.

        "failed" when preprocessing gave non-finite values (absurd input beyond float32), "implausible" when the
        distribution score is above its threshold (rfsense-onnx/2, `rfsense.deploy.plausibility`).
        """
        n = len(feeds)
        out: list[Verdict | None] = [None] * n
        finite = np.isfinite(feeds.reshape(n, -1)).all(axis=1)
        for i in np.flatnonzero(~finite):
            out[i] = Verdict(modality, "failed", [f"{modality}: preprocessing could not use this stream (values out of range?)"])
        stats = self.plausibility.distribution.get(modality) if self.plausibility else None
        if stats is not None and self.plausibility.config.distribution and finite.any():  # type: ignore[union-attr]
            rows = np.flatnonzero(finite)
            bad, why, _ = check_distribution(modality, feeds if rows.size == n else feeds[rows], *stats, fast=self._fast)
            for k in np.flatnonzero(bad):
                out[rows[k]] = Verdict(modality, "implausible", [why[k]])  # type: ignore[list-item]
        return out

    def encode(self, modality: str, feeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run one modality's encoder graph on preprocessed rows (n, *input_shapes[m]) (rfsense-onnx/2 only).

        Returns:
            tokens float32 (n, n_tokens, d) and the OOD score float32 (n,).

        Raises:
            ModelFileError: an rfsense-onnx/1 export (one graph: no encoders of its own).
        """
        self._require_split("encode")
        tokens, ood = self.sessions[modality].run(["tokens", "ood"], {modality: np.ascontiguousarray(feeds, dtype=np.float32)})
        return tokens, ood

    def fuse(self, tokens: dict[str, np.ndarray | None], present: np.ndarray) -> np.ndarray:
        """Run the fusion graph (rfsense-onnx/2 only).

        Args:
            tokens: modality -> float32 (B, n_tokens, d), or None / missing for a modality absent in every row.
                The tokens of a row whose modality is not present are ignored (zeroed inside the graph).
            present: bool (B, 3) in MODALITIES order.

        Returns:
            float32 logits (B, n_classes).
        """
        self._require_split("fuse")
        present = np.ascontiguousarray(present, dtype=bool)
        feeds: dict[str, np.ndarray] = {"present": present}
        for m in MODALITIES:
            t = tokens.get(m)
            feeds[f"tokens_{m}"] = (np.zeros((len(present), *self.token_shape), np.float32) if t is None  # type: ignore[misc]
                                    else np.ascontiguousarray(t, dtype=np.float32))
        return self.session.run(["logits"], feeds)[0]

    def logits(self, inputs: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        """Run the model on already preprocessed inputs (no checks, no preprocessing).

        Args: inputs[m] float32 (B, *input_shapes[m]) (zeros or anything where absent; a modality absent in
        every row may be missing), present bool (B, 3). Returns float32 (B, n_classes). With an rfsense-onnx/2
        export only the encoders of modalities present in some row run, on those rows only.
        """
        present = np.ascontiguousarray(present, dtype=bool)
        if self.token_shape is None:
            n = len(present)
            feeds = {m: (np.ascontiguousarray(inputs[m], dtype=np.float32) if inputs.get(m) is not None
                         else np.zeros((n, *self.input_shapes[m]), np.float32)) for m in MODALITIES}
            return self.session.run(["logits"], {**feeds, "present": present})[0]
        return self.fuse(self._tokens(inputs, present), present)

    def _tokens(self, inputs: dict[str, np.ndarray], present: np.ndarray) -> dict[str, np.ndarray | None]:
        """Tokens of each modality on the rows that have it (zeros elsewhere); None where no row has it."""
        out: dict[str, np.ndarray | None] = {}
        for j, m in enumerate(MODALITIES):
            rows = np.flatnonzero(present[:, j])
            if rows.size == 0:
                out[m] = None
            elif rows.size == len(present):
                out[m] = self.encode(m, inputs[m])[0]
            else:
                out[m] = np.zeros((len(present), *self.token_shape), np.float32)  # type: ignore[misc]
                out[m][rows] = self.encode(m, np.asarray(inputs[m])[rows])[0]
        return out

    # --------------------------------------------------------------------------------- predict

    def predict(
        self, inputs: dict[str, npt.ArrayLike | None], top_k: int = 5, batch_size: int = 16
    ) -> list[Prediction]:
        """Health-check, preprocess, plausibility-check and classify a batch of samples.

        Args:
            inputs: modality -> raw array (B, *SHAPES[m]) (mmwave also (B, 1, 17, 256, 128)), float16/32/64
                (integer arrays are implausible), or None / missing for an absent modality. A stream with the
                wrong shape or dtype does not raise: it fails its health check for every sample and the others
                still count.
            top_k: number of classes reported per sample (capped at n_classes).
            batch_size: samples per check/preprocess/ONNX chunk (bounds memory).

        Returns:
            One Prediction per sample, in input order. Probabilities are always finite.

        Raises:
            DataError: unknown modality key, or inputs that disagree on the batch size.
            ValueError: top_k or batch_size < 1.
        """
        if top_k < 1 or batch_size < 1:
            raise ValueError(f"top_k and batch_size must be >= 1; got top_k={top_k}, batch_size={batch_size}")
        n = _count_samples(inputs)
        preds: list[Prediction] = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            sub = {m: _rows(v, start, stop) for m, v in inputs.items()}
            preds.extend(self._predict_chunk(sub, stop - start, top_k))
        return preds

    def _modality(self, m: str, arr: np.ndarray | None, n: int, unreadable: str | None,
                  workers: int | None = None, beside: ThreadPoolExecutor | None = None) -> tuple[Any, ...]:
        """One modality of a chunk of n samples: its health check, then on the usable rows the preprocessing, the
        screen and (rfsense-onnx/2) the encoder on the rows the screen passed.

        `beside`: a pool with a core to spare; the screen then runs there while the encoder runs on every usable row
        (the encoder runs again on the rows that passed when the screen masks some, so the tokens are the same).

        Returns (usable bool (n,), verdicts (n,), feeds of the usable rows, screen flags per usable row, tokens, OOD
        scores); the last four are None / [] when nothing is usable."""
        values, usable, column = check_stream(m, arr, n, self.health, unreadable)
        if not usable.any():
            return usable, column, None, [], None, None
        feeds = self.prepare(m, values if usable.all() else values[usable], workers)
        del values  # the raw float copy (mmWave: 4.5 MB per sample in float64) is no longer needed
        if self.token_shape is None:
            return usable, column, feeds, self.screen(m, feeds), None, None
        encoded = None
        if beside is None:
            flags = self.screen(m, feeds)
        else:
            screened = beside.submit(self.screen, m, feeds)
            encoded = self.encode(m, feeds)
            flags = screened.result()
        ok = np.array([f is None for f in flags])
        if not ok.any():
            return usable, column, feeds, flags, None, None
        tokens, ood = encoded if encoded is not None and ok.all() else self.encode(m, feeds if ok.all() else feeds[ok])
        return usable, column, feeds, flags, tokens, ood

    def _run_modalities(self, inputs: dict[str, Any], n: int) -> dict[str, tuple[Any, ...]]:
        """`_modality` for every modality; the given streams concurrently when there are several (numpy, scipy,
        the compiled kernels and onnxruntime release the GIL, so one stream's checks and preprocessing overlap
        another's)."""
        given, unreadable = read_inputs(inputs)
        jobs = {m: (given.get(m), n, unreadable.get(m)) for m in MODALITIES}
        busy = [m for m in self._order if m in given]
        if len(busy) < 2 or self._lanes < 2:
            return {m: self._modality(m, *job) for m, job in jobs.items()}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._lanes, thread_name_prefix="rfsense-runtime")
        # The streams already share the cores: the WiFi filters run in their job's thread only. The first stream's
        # chain is the longest: its screen runs beside its encoder, in the pool once the other streams are done.
        futures = {m: self._pool.submit(self._modality, m, *jobs.pop(m), 1, self._pool if m == busy[0] else None)
                   for m in busy}
        out = {m: self._modality(m, *job) for m, job in jobs.items()}  # absent or unreadable: nothing to compute
        del given, jobs  # the pool's tasks hold the only references: each frees its input when done
        return {m: out[m] if m in out else futures[m].result() for m in MODALITIES}

    def _predict_chunk(self, inputs: dict[str, Any], n: int, top_k: int) -> list[Prediction]:
        results = self._run_modalities(inputs, n)
        present = np.zeros((n, len(MODALITIES)), dtype=bool)
        verdicts: list[dict[str, Verdict]] = [{} for _ in range(n)]
        for j, m in enumerate(MODALITIES):
            present[:, j] = results[m][0]
            for i, verdict in enumerate(results[m][1]):
                verdicts[i][m] = verdict
        split = self.token_shape is not None
        plaus = self.plausibility
        model_in: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
        for j, m in enumerate(MODALITIES):
            rows = np.flatnonzero(present[:, j])
            if rows.size == 0:
                continue
            feeds, flags, tokens, ood = results.pop(m)[2:]
            for k, flag in enumerate(flags):
                if flag is not None:
                    i = rows[k]
                    present[i, j] = False
                    verdicts[i][m] = _masked(verdicts[i][m], flag.status, flag.reasons[0])
            good = rows[[f is None for f in flags]]
            if not split:
                model_in[m] = np.zeros((n, *self.input_shapes[m]), np.float32)
                model_in[m][good] = feeds[[f is None for f in flags]]  # type: ignore[index]
                continue
            if tokens is None:
                continue
            threshold = plaus.ood_threshold.get(m) if plaus is not None and plaus.config.ood else None
            for k, i in enumerate(good):
                score = float(ood[k])  # type: ignore[index]
                verdicts[i][m].ood = score
                if threshold is not None and not score <= threshold:  # NaN counts as out of distribution
                    present[i, j] = False
                    verdicts[i][m] = _masked(
                        verdicts[i][m], "implausible",
                        f"{m}: out of distribution: score {score:.3g} above {threshold:.3g} (Mahalanobis distance of "
                        f"its embedding to the nearest class mean; threshold from held-out training rows)", score)
            model_in[m] = tokens if good.size == n else _scatter(tokens, good, n)

        run = np.flatnonzero(present.any(axis=1))  # samples with nothing usable never reach the model
        probs = np.full((n, self.n_classes), np.nan)
        if run.size:
            part = {m: (v if v is None or run.size == n else v[run]) for m, v in model_in.items()}
            if split:
                logits = self.fuse(part, present[run])
            else:
                logits = self.logits(part, present[run])  # type: ignore[arg-type]
            probs[run] = softmax(logits)
        return self._predictions(verdicts, present, probs, top_k)

    def _predictions(self, verdicts: list[dict[str, Verdict]], present: np.ndarray, probs: np.ndarray,
                     top_k: int) -> list[Prediction]:
        k = min(top_k, self.n_classes)
        out: list[Prediction] = []
        for i, v in enumerate(verdicts):
            used = [m for j, m in enumerate(MODALITIES) if present[i, j]]
            notes = [r for m in MODALITIES if v[m].status not in ("ok", "absent") for r in v[m].reasons]
            if not used:
                every = [r for m in MODALITIES for r in v[m].reasons]
                out.append(Prediction([], [], v, "no_prediction", "no usable modality: " + "; ".join(every)))
            elif not np.isfinite(probs[i]).all():
                reason = f"the model returned NaN/Inf logits for {'+'.join(LETTERS[m] for m in used)}"
                out.append(Prediction([], used, v, "no_prediction", "; ".join([reason, *notes])))
            else:
                order = np.argsort(-probs[i], kind="stable")[:k]
                top = [(int(c), self.class_names[c], float(probs[i, c])) for c in order]
                out.append(Prediction(top, used, v, "ok", "; ".join(notes), probs=probs[i].copy()))
        return out


# A graph doing less than this share of the largest graph's work per sample runs on one intra-op thread.
_SMALL_GRAPH = 0.5


def _graph_gflop(manifest: dict[str, Any]) -> dict[str, float]:
    """Each graph's GFLOP per sample from an rfsense-onnx/2 manifest (0 where an older export lacks the count)."""
    return {p: float(manifest["graphs"][p].get("gflop_per_sample", 0.0)) for p in GRAPHS}


def _graph_threads(flops: dict[str, float], threads: int | None) -> dict[str, int | None]:
    """Intra-op threads per graph of an rfsense-onnx/2 export: `threads` for the graphs doing most of the work, one
    for the small ones (by their GFLOP per sample, `_graph_gflop`). Spreading a small graph's small operators over
    threads costs more in wake-ups than it saves, and the runtime keeps the other cores busy with the other
    streams: measured on 2 cores at batch 1, the edge model's fusion graph takes 0.6-0.8 ms on one thread and
    0.8-1.0 ms on two, its mmWave and RFID encoders are no faster on two; at batch 32 the one-thread fusion graph
    costs ~2 % of a prediction more. Exports without the counts keep `threads` everywhere."""
    top = max(flops.values())
    if top <= 0:
        return dict.fromkeys(GRAPHS, threads)
    return {p: threads if flops[p] >= _SMALL_GRAPH * top else 1 for p in GRAPHS}


def _stream_order(flops: dict[str, float]) -> list[str]:
    """The order in which `predict` starts the streams: the one with the costliest encoder first (its chain, checks
    to encoder, is the longest), then the others by values per sample, largest first. Their checks and
    preprocessing grow with their size; the smallest stream's work, mostly Python, then overlaps the long encoder
    rather than the first stream's checks, where the two threads took turns at the GIL (measured at batch 1 on 2
    cores, both orders in one process, rows shuffled: predict 2-17 % faster by p50 in three runs than wifi, rfid,
    mmwave, the order by encoder work alone; within the noise in bench_runtime's alternating processes)."""
    size = {m: math.prod(SHAPES[m]) for m in MODALITIES}
    first = max(MODALITIES, key=lambda m: (flops.get(m, 0.0), size[m]))
    return [first, *sorted((m for m in MODALITIES if m != first), key=lambda m: -size[m])]


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, e.g. a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _scatter(rows_values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """(len(rows), ...) values placed at `rows` of an (n, ...) zero array."""
    out = np.zeros((n, *rows_values.shape[1:]), dtype=rows_values.dtype)
    out[rows] = rows_values
    return out


def _rows(value: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of an input; scalars and None pass through (they fail or are absent anyway)."""
    if value is None:
        return None
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    return arr[start:stop] if arr.ndim >= 1 else arr


def _health_cell(verdicts: dict[str, Verdict]) -> str:
    return " ".join(f"{LETTERS[m]}={verdicts[m].status}" for m in MODALITIES if m in verdicts)


def _used_cell(p: Prediction) -> str:
    return "+".join(LETTERS[m] for m in p.modalities_used) or "-"


def format_predictions(
    preds: list[Prediction], ids: list[str], fmt: Literal["table", "jsonl", "csv"] = "table"
) -> str:
    """Render predictions for the CLI.

    Args:
        preds: from `Runtime.predict`.
        ids: one label per prediction (e.g. the sample file stem).
        fmt: "table" (for people: id, top-1 and its probability, the rest of the top-k, modalities used,
            health per modality, then a note per sample with the health reasons), "jsonl" (one JSON object
            per line: {"id", **Prediction.to_dict()}) or "csv" (one row per sample, top-k as
            "name=prob;..." and one status column per modality).

    Returns:
        The text, lines joined by newlines, no trailing newline.

    Raises:
        ValueError: unknown fmt, or len(ids) != len(preds).
    """
    if len(ids) != len(preds):
        raise ValueError(f"got {len(preds)} predictions but {len(ids)} ids")
    if fmt == "jsonl":
        return "\n".join(json.dumps({"id": str(i), **p.to_dict()}) for i, p in zip(ids, preds, strict=True))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "status", "top1_index", "top1_name", "top1_prob", "top_k", "modalities_used",
                    *MODALITIES, "reason"])
        for i, p in zip(ids, preds, strict=True):
            t1 = p.top[0] if p.top else ("", "", "")
            w.writerow([
                i, p.status, t1[0], t1[1], f"{t1[2]:.6g}" if p.top else "",
                ";".join(f"{n}={q:.6g}" for _, n, q in p.top),
                "+".join(p.modalities_used),
                *(p.verdicts[m].status if m in p.verdicts else "" for m in MODALITIES),
                p.reason,
            ])
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; expected table, jsonl or csv")
    header = ["id", "prediction", "prob", "next", "used", "health"]
    rows = []
    for i, p in zip(ids, preds, strict=True):
        if p.top:
            name, prob = p.top[0][1], f"{p.top[0][2]:.3f}"
            rest = ", ".join(f"{n} {q:.2f}" for _, n, q in p.top[1:])
        else:
            name, prob, rest = "(no prediction)", "-", ""
        rows.append([str(i), name, prob, rest, _used_cell(p), _health_cell(p.verdicts)])
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(header)]
    fmt_row = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [fmt_row(header), fmt_row(["-" * w for w in widths]), *(fmt_row(r) for r in rows)]
    notes = [(str(i), p.reason) for i, p in zip(ids, preds, strict=True) if p.reason]
    if notes:
        lines += ["", "notes:", *(f"  {i}: {reason}" for i, reason in notes)]
    return "\n".join(lines)
