"""Torch-free inference on an exported rfsense model: manifest + sha256 check, health checks, ONNX, softmax.

Only numpy, scipy (through the shared preprocessing) and onnxruntime are imported here, so an edge box
needs no torch; ``tests/deploy/test_runtime.py`` proves it in a subprocess.

    from rfsense.deploy import Runtime, format_predictions
    rt = Runtime("export/rfsense.onnx")              # reads export/rfsense.json beside it
    preds = rt.predict({"wifi": wifi, "rfid": rfid})  # (B, 270, 1000), (B, 23, 148); mmwave absent
    print(format_predictions(preds, ids, "table"))

Per sample: health check (`rfsense.deploy.health`) -> shared preprocessing with the manifest's settings ->
ONNX in batches with the presence mask -> softmax in float64. A sample with no usable modality gets an
explicit "no_prediction" and never reaches the model.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from rfsense.config import from_data
from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.data.quality import QualityConfig
from rfsense.deploy.health import Verdict, check_streams
from rfsense.deploy.health import batch_size as _count_samples
from rfsense.deploy.manifest import manifest_path_for, read_manifest, sha256_bytes
from rfsense.deploy.session import make_session
from rfsense.errors import ConfigError, ModelFileError
from rfsense.modalities import LETTERS, MODALITIES

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
        verdicts: modality -> health Verdict (every modality, absent ones included).
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


class Runtime:
    """An exported model ready for inference, with its manifest checked.

    Attributes:
        model_path, manifest_path: the files.
        manifest: the manifest dict.
        class_names: list of n_classes names (from the manifest).
        preprocessing: PreprocessConfig from the manifest (the one training used).
        health: QualityConfig from the manifest (the one packing used); may be replaced before predict().
        providers: what the onnxruntime session really runs on, e.g. ["CPUExecutionProvider"].
        session: the onnxruntime InferenceSession.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        providers: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int | None = None,
    ) -> None:
        """Load and verify a model.

        Args:
            model_path: the .onnx file; its manifest is `manifest_path_for(model_path)`.
            providers: "auto" (CUDA when a device is really usable, else CPU), "cpu", or "cuda" (fail if
                CUDA cannot be used).
            threads: onnxruntime intra-op threads; None lets onnxruntime choose (one per physical core).

        Raises:
            ModelFileError: model or manifest missing, malformed, or the model's sha256 differs from the
                manifest's; the model does not have the contract's inputs/outputs.
            ProviderError: providers="cuda" but CUDA is not usable here.
            ConfigError: bad `providers` or `threads` value.
        """
        self.model_path = Path(model_path)
        self.manifest_path = manifest_path_for(self.model_path)
        if not self.model_path.is_file():
            raise ModelFileError(f"model file {self.model_path} not found")
        self.manifest = read_manifest(self.manifest_path)

        # Hash the very bytes the session is built from, so the file cannot change in between.
        model_bytes = self.model_path.read_bytes()
        actual, expected = sha256_bytes(model_bytes), self.manifest["sha256"].lower()
        if actual != expected:
            raise ModelFileError(
                f"model file {self.model_path} has sha256 {actual}, but its manifest {self.manifest_path} "
                f"says {expected}: the model or the manifest was changed or corrupted; re-export them together"
            )
        named = self.manifest.get("model_file")
        if named is not None and named != self.model_path.name:
            _logger.warning(
                "manifest %s names model_file %r but the model is %s (the sha256 matches, so it was renamed)",
                self.manifest_path, named, self.model_path.name,
            )

        self.class_names: list[str] = list(self.manifest["class_names"])
        try:
            self.preprocessing = from_data(PreprocessConfig, self.manifest["preprocessing"], "preprocessing")
            self.health = from_data(QualityConfig, self.manifest["health"], "health")
        except ConfigError as err:
            raise ModelFileError(f"manifest {self.manifest_path}: {err}") from None
        self.input_shapes: dict[str, tuple[int, ...]] = {
            m: tuple(self.manifest["inputs"][m]["shape"][1:]) for m in MODALITIES
        }
        self.session = make_session(model_bytes, providers=providers, threads=threads, name=str(self.model_path))
        self.providers: list[str] = list(self.session.get_providers())
        self._check_session()
        _logger.info("loaded %s (sha256 %s...) on %s", self.model_path, actual[:12], ", ".join(self.providers))

    def _check_session(self) -> None:
        """The graph must have exactly the contract's inputs and the logits output, with matching shapes."""
        got = {i.name: i for i in self.session.get_inputs()}
        want = [*MODALITIES, "present"]
        if sorted(got) != sorted(want):
            raise ModelFileError(f"model {self.model_path} has inputs {sorted(got)}; expected {want}")
        for name in want:
            spec = self.manifest["inputs"][name]
            node = got[name]
            if node.type != _ORT_DTYPES[spec["dtype"]]:
                raise ModelFileError(f"model {self.model_path}: input {name} is {node.type}; manifest says {spec['dtype']}")
            if [d for d in node.shape[1:]] != spec["shape"][1:]:
                raise ModelFileError(
                    f"model {self.model_path}: input {name} has shape {node.shape}; manifest says {spec['shape']}"
                )
        outs = {o.name: o for o in self.session.get_outputs()}
        if "logits" not in outs:
            raise ModelFileError(f"model {self.model_path} has outputs {sorted(outs)}; expected 'logits'")
        width = outs["logits"].shape[-1] if outs["logits"].shape else None
        if width != len(self.class_names):  # else every call would fail, or answer with the wrong names
            raise ModelFileError(f"model {self.model_path}: output logits has {width} classes but its manifest "
                                 f"lists {len(self.class_names)} class names")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def logits(self, inputs: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        """Run the graph on already preprocessed inputs (no health check, no preprocessing).

        For parity and stress tools. Args: inputs[m] float32 (B, *input_shapes[m]) for every modality
        (zeros where absent), present bool (B, 3). Returns float32 (B, n_classes).
        """
        feeds: dict[str, np.ndarray] = {m: np.ascontiguousarray(inputs[m], dtype=np.float32) for m in MODALITIES}
        feeds["present"] = np.ascontiguousarray(present, dtype=bool)
        return self.session.run(["logits"], feeds)[0]

    def _preprocess(self, modality: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shared preprocessing of the healthy rows: float64 (n, *SHAPES[m]) -> (float32 (n, *in), ok bool[n]).

        Rows whose output is not finite (absurd values that overflow float32 in the filters) are not ok, so
        nothing non-finite ever reaches the graph.
        """
        with np.errstate(all="ignore"):  # overflow in filters of absurd values is caught below, per row
            y = preprocess(modality, x, self.preprocessing)
        ok = np.isfinite(y.reshape(len(y), -1)).all(axis=1)
        y[~ok] = 0.0
        return y, ok

    def predict(
        self, inputs: dict[str, npt.ArrayLike | None], top_k: int = 5, batch_size: int = 16
    ) -> list[Prediction]:
        """Health-check, preprocess and classify a batch of samples.

        Args:
            inputs: modality -> raw array (B, *SHAPES[m]) (mmwave also (B, 1, 17, 256, 128)), any real dtype,
                or None / missing for an absent modality. A stream with the wrong shape or dtype does not
                raise: it fails its health check for every sample and the others still count.
            top_k: number of classes reported per sample (capped at n_classes).
            batch_size: samples per health-check/preprocess/ONNX chunk (bounds memory).

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

    def _predict_chunk(self, inputs: dict[str, Any], n: int, top_k: int) -> list[Prediction]:
        arrays, present, verdicts = check_streams(inputs, self.health)
        assert present.shape[0] == n, f"chunk of {n} samples came back as {present.shape[0]}"
        feeds: dict[str, np.ndarray] = {}
        for j, m in enumerate(MODALITIES):
            feeds[m] = np.zeros((n, *self.input_shapes[m]), dtype=np.float32)
            rows = np.flatnonzero(present[:, j])
            if rows.size == 0:
                continue
            x, ok = self._preprocess(m, arrays[m][rows])
            feeds[m][rows[ok]] = x[ok]
            for i in rows[~ok]:
                present[i, j] = False
                keep = [r for r in verdicts[i][m].reasons if ": repaired " not in r]
                why = f"{m}: preprocessing could not use this stream (values out of range?)"
                verdicts[i][m] = Verdict(m, "failed", [*keep, why])
            arrays[m] = None  # free the float64 copy early (mmWave is 4.5 MB per sample)

        run = np.flatnonzero(present.any(axis=1))  # samples with nothing usable never reach the model
        probs = np.full((n, self.n_classes), np.nan)
        if run.size:
            logits = self.logits({m: feeds[m][run] for m in MODALITIES}, present[run])
            probs[run] = softmax(logits)

        k = min(top_k, self.n_classes)
        out: list[Prediction] = []
        for i in range(n):
            v = verdicts[i]
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
