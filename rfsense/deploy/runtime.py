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
import ctypes.util
import glob
import hashlib
import io
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from rfsense.data.preprocess import PreprocessConfig, output_shape, preprocess
from rfsense.deploy.health import HealthConfig, Verdict, check_streams
from rfsense.deploy.health import batch_size as _count_samples
from rfsense.errors import ConfigError, ModelFileError, RFSenseError
from rfsense.modalities import LETTERS, MODALITIES

__all__ = [
    "MANIFEST_FORMAT",
    "Prediction",
    "ProviderError",
    "Runtime",
    "cuda_device_usable",
    "format_predictions",
    "manifest_path_for",
    "read_manifest",
    "softmax",
]

_logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "rfsense-onnx/1"
# Keys the runtime needs; "model_file", "run", "metrics" and "parity" are informational here.
_REQUIRED_KEYS = ("format", "sha256", "inputs", "outputs", "modalities", "class_names", "preprocessing", "health")
_ORT_DTYPES = {"float32": "tensor(float)", "bool": "tensor(bool)"}
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
# onnxruntime's default logger severity (0 verbose .. 4 fatal); restored after a quiet CUDA attempt.
_ORT_DEFAULT_SEVERITY = 2


class ProviderError(RFSenseError):
    """The requested execution provider (e.g. CUDA) cannot be used on this machine."""


def manifest_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Manifest beside a model: ``dir/X.onnx`` -> ``dir/X.json``."""
    return Path(model_path).with_suffix(".json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and structurally validate a manifest (format, keys, modality order, input/output specs).

    Returns:
        The manifest as a dict (unknown extra keys are kept and ignored).

    Raises:
        ModelFileError: missing file, invalid JSON, another format, or a key missing or malformed; the
            message names the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            f"manifest {path} not found; every model needs its manifest beside it with the same name "
            f"(X.onnx -> X.json), as written by `rfsense export`"
        )
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"manifest {path} is not valid JSON: {err}") from None

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"manifest {path}: {what}")

    if not isinstance(man, dict):
        raise bad(f"expected a JSON object, got {type(man).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in man]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}; required: {', '.join(_REQUIRED_KEYS)}")
    if man["format"] != MANIFEST_FORMAT:
        raise bad(f"format is {man['format']!r}; this runtime reads {MANIFEST_FORMAT!r}")
    if not isinstance(man["sha256"], str) or not re.fullmatch(r"[0-9a-fA-F]{64}", man["sha256"]):
        raise bad(f"sha256 must be 64 hex digits; got {man['sha256']!r}")
    if man["modalities"] != list(MODALITIES):
        raise bad(f"modalities are {man['modalities']!r}; this runtime needs {list(MODALITIES)} in that order")
    for section in ("inputs", "outputs", "preprocessing", "health"):
        if not isinstance(man[section], dict):
            raise bad(f"{section} must be an object; got {type(man[section]).__name__}")
    for name, dtype in [*((m, "float32") for m in MODALITIES), ("present", "bool")]:
        spec = man["inputs"].get(name)
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) or len(spec["shape"]) < 1:
            raise bad(f"inputs.{name} must be an object with a shape list; got {spec!r}")
        if spec.get("dtype") != dtype:
            raise bad(f"inputs.{name}.dtype is {spec.get('dtype')!r}; expected {dtype!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in spec["shape"][1:]):
            raise bad(f"inputs.{name}.shape {spec['shape']} must be [batch, ints...]")
    if man["inputs"]["present"]["shape"][1:] != [len(MODALITIES)]:
        raise bad(f"inputs.present.shape is {man['inputs']['present']['shape']}; expected ['batch', 3]")
    logits = man["outputs"].get("logits")
    if not isinstance(logits, dict) or not isinstance(logits.get("shape"), list) or len(logits["shape"]) != 2:
        raise bad(f"outputs.logits must be an object with shape ['batch', n_classes]; got {logits!r}")
    n_classes = logits["shape"][1]
    names = man["class_names"]
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names) or len(names) != n_classes:
        raise bad(f"class_names must be a list of {n_classes} strings (outputs.logits.shape[1])")
    return man


def cuda_device_usable() -> tuple[bool, str]:
    """Whether asking onnxruntime for CUDA can work here, without asking it (which logs errors when it can't).

    onnxruntime-gpu lists CUDAExecutionProvider on any machine (it describes the build, not the hardware),
    so also look for the CUDA driver library and, on Linux, an NVIDIA device node (or WSL's /dev/dxg).
    The session may still fall back to CPU (e.g. cuDNN missing); `Runtime` checks what it really got.

    Returns:
        (usable, reason it is not; "" when usable).
    """
    if _CUDA not in ort.get_available_providers():
        return False, (
            f"this onnxruntime build ({ort.__version__}) has no {_CUDA}; install onnxruntime-gpu instead of onnxruntime"
        )
    libs = ("cuda", "nvcuda") if sys.platform == "win32" else ("cuda",)
    if not any(ctypes.util.find_library(name) for name in libs):
        return False, "no CUDA driver library (libcuda) found; is an NVIDIA driver installed?"
    if sys.platform.startswith("linux") and not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")):
        return False, "no NVIDIA GPU device node (/dev/nvidia0 ...) found"
    return True, ""


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
        health: HealthConfig from the manifest; may be replaced with another HealthConfig before predict().
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
        if providers not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"providers must be one of auto, cpu, cuda; got {providers!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None; got {threads!r}")
        self.model_path = Path(model_path)
        self.manifest_path = manifest_path_for(self.model_path)
        if not self.model_path.is_file():
            raise ModelFileError(f"model file {self.model_path} not found")
        self.manifest = read_manifest(self.manifest_path)

        # Hash the very bytes the session is built from, so the file cannot change in between.
        model_bytes = self.model_path.read_bytes()
        actual, expected = _sha256(model_bytes), self.manifest["sha256"].lower()
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
            self.preprocessing = PreprocessConfig.from_dict(self.manifest["preprocessing"], prefix="preprocessing")
            self.health = HealthConfig.from_dict(self.manifest["health"])
        except (ConfigError, TypeError, ValueError) as err:
            raise ModelFileError(f"manifest {self.manifest_path}: {err}") from None
        self.input_shapes: dict[str, tuple[int, ...]] = {
            m: tuple(self.manifest["inputs"][m]["shape"][1:]) for m in MODALITIES
        }
        for m in MODALITIES:
            want = tuple(output_shape(m, self.preprocessing))
            if want != self.input_shapes[m]:
                raise ModelFileError(
                    f"manifest {self.manifest_path}: preprocessing gives {m} {want} per sample but "
                    f"inputs.{m}.shape is {self.input_shapes[m]}"
                )

        self.session = self._make_session(model_bytes, providers, threads)
        self.providers: list[str] = list(self.session.get_providers())
        self._check_session()
        _logger.info("loaded %s (sha256 %s...) on %s", self.model_path, actual[:12], ", ".join(self.providers))

    def _make_session(self, model_bytes: bytes, providers: str, threads: int | None) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only from this session; we report the outcome ourselves
        if threads is not None:
            opts.intra_op_num_threads = threads  # an explicit count also disables ORT's thread pinning
        want_cuda = False
        if providers in ("auto", "cuda"):
            usable, why = cuda_device_usable()
            if providers == "cuda" and not usable:
                raise ProviderError(f"CUDA was requested but cannot be used on this machine: {why}. Use providers 'cpu' or 'auto'")
            want_cuda = usable
            if providers == "auto" and not usable:
                _logger.debug("not asking for CUDA: %s", why)
        try:
            if not want_cuda:
                return ort.InferenceSession(model_bytes, opts, providers=[_CPU])
            # A failed CUDA provider load logs errors through the default logger and then silently falls
            # back to CPU; silence it for this one attempt and check what the session really got.
            ort.set_default_logger_severity(4)
            try:
                session = ort.InferenceSession(model_bytes, opts, providers=[_CUDA, _CPU])
            finally:
                ort.set_default_logger_severity(_ORT_DEFAULT_SEVERITY)
        except Exception as err:  # onnxruntime raises its own exception types for an invalid model
            hint = ""
            if Path(f"{self.model_path}.data").exists():
                hint = " (it has an external-data file beside it; the runtime needs a single-file model)"
            raise ModelFileError(f"onnxruntime could not load {self.model_path}{hint}: {err}") from None
        if _CUDA not in session.get_providers():
            msg = (
                f"CUDA looked usable but onnxruntime fell back to {session.get_providers()} (are the CUDA and cuDNN "
                f"libraries onnxruntime {ort.__version__} needs installed? `pip install onnxruntime-gpu[cuda,cudnn]`)"
            )
            if providers == "cuda":
                raise ProviderError(msg)
            _logger.warning("%s", msg)
        return session

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
        outs = [o.name for o in self.session.get_outputs()]
        if "logits" not in outs:
            raise ModelFileError(f"model {self.model_path} has outputs {outs}; expected 'logits'")

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

        `preprocess` already zero-fills and flags rows it cannot use (e.g. float32 overflow of huge
        values); the finiteness check here is a second line so nothing non-finite ever reaches the graph.
        """
        with np.errstate(all="ignore"):  # overflow in filters of absurd values is caught below, per row
            y, usable = preprocess(modality, x, self.preprocessing)
        y = np.asarray(y, dtype=np.float32)
        ok = np.asarray(usable, dtype=bool) & np.isfinite(y.reshape(len(y), -1)).all(axis=1)
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
            notes = [r for m in MODALITIES if v[m].status in ("repaired", "failed") for r in v[m].reasons]
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
