"""The manifest beside every exported model: its format, writing, reading and validation, and sha256.

`X.onnx` has its manifest at `X.json`: the input and output contract, the class names, the preprocessing and
quality settings training used, and where the model came from (run, metrics, parity). stdlib only.

- rfsense-onnx/2 (written today): ``graphs`` lists every graph file with its own sha256, all checked before
  anything runs: ``fusion`` is `X.onnx` itself (inputs ``tokens_<modality>`` and ``present``, output
  ``logits``) and each modality has an encoder graph `X.<modality>.onnx` (input ``<modality>``, outputs
  ``tokens`` and ``ood``), so a runtime runs only the encoders of the sensors a batch has; each graph's
  optional ``gflop_per_sample`` (written since 2026-12-01) is its work per sample, by which the runtime sizes
  its thread pool. ``tokens`` gives the token shape, ``plausibility`` the statistics and thresholds of
  `rfsense.deploy.plausibility`.
- rfsense-onnx/1 (still read): one graph `X.onnx` (inputs ``mmwave``, ``wifi``, ``rfid``, ``present``; output
  ``logits``) and its ``sha256``; no plausibility section, no OOD score.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from rfsense._io import atomic_write_json
from rfsense.errors import ModelFileError
from rfsense.modalities import MODALITIES, SHAPES

__all__ = [
    "FORMAT",
    "FORMAT_V1",
    "GRAPHS",
    "READABLE_FORMATS",
    "graph_file",
    "input_specs",
    "token_specs",
    "manifest_path_for",
    "read_manifest",
    "sha256_bytes",
    "sha256_file",
    "write_manifest",
]

FORMAT = "rfsense-onnx/2"
FORMAT_V1 = "rfsense-onnx/1"
READABLE_FORMATS = (FORMAT, FORMAT_V1)
GRAPHS = ("fusion", *MODALITIES)  # the parts of an rfsense-onnx/2 export
# Keys the runtime needs; "model_file", "run", "metrics" and "parity" are informational.
_REQUIRED = {
    FORMAT_V1: ("format", "sha256", "inputs", "outputs", "modalities", "class_names", "preprocessing", "health"),
    FORMAT: ("format", "graphs", "inputs", "tokens", "outputs", "modalities", "class_names", "preprocessing", "health",
             "plausibility"),
}
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# Preprocessing keys older exports wrote that no longer exist (same meaning at these values).
_REMOVED_PREPROCESSING = {"max_repair_fraction": None, "wifi.resample_to": (None,)}


def manifest_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Manifest beside a model: ``dir/X.onnx`` -> ``dir/X.json``."""
    return Path(model_path).with_suffix(".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def graph_file(name: str, part: str) -> str:
    """File name of one graph of export `name`: "fusion" -> `name.onnx`, a modality m -> `name.m.onnx`."""
    return f"{name}.onnx" if part == "fusion" else f"{name}.{part}.onnx"


def token_specs(n_tokens: int, d: int) -> dict[str, Any]:
    """The encoders' token output (= the fusion graph's token inputs): float32 (batch, n_tokens, d)."""
    return {"shape": ["batch", n_tokens, d], "dtype": "float32"}


def input_specs() -> dict[str, dict[str, Any]]:
    """The graph's inputs as the manifest states them: every modality float32 (batch, *shape), present bool."""
    specs: dict[str, dict[str, Any]] = {m: {"shape": ["batch", *SHAPES[m]], "dtype": "float32"} for m in MODALITIES}
    specs["present"] = {"shape": ["batch", len(MODALITIES)], "dtype": "bool"}
    return specs


def _strip_removed(man: dict[str, Any], bad: Any) -> None:
    prep = man["preprocessing"]
    for dotted, allowed in _REMOVED_PREPROCESSING.items():
        *parents, key = dotted.split(".")
        node = prep
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node:
            value = node.pop(key)
            if allowed is not None and value not in allowed:
                raise bad(f"preprocessing.{dotted}={value!r} no longer exists; re-export the model from its run")


def validate_manifest(man: Any, where: str) -> dict[str, Any]:
    """Structural checks of a manifest dict (format, keys, modality order, input/output specs).

    Raises:
        ModelFileError: naming `where` and the key that is missing or malformed.
    """

    def bad(what: str) -> ModelFileError:
        return ModelFileError(f"manifest {where}: {what}")

    if not isinstance(man, dict):
        raise bad(f"expected a JSON object, got {type(man).__name__}")
    if man.get("format") not in READABLE_FORMATS:
        raise bad(f"format is {man.get('format')!r}; this runtime reads {', '.join(map(repr, READABLE_FORMATS))}")
    required = _REQUIRED[man["format"]]
    missing = [k for k in required if k not in man]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}; required: {', '.join(required)}")
    if man["format"] == FORMAT_V1:
        if not isinstance(man["sha256"], str) or not _SHA256.fullmatch(man["sha256"]):
            raise bad(f"sha256 must be 64 hex digits; got {man['sha256']!r}")
    else:
        _validate_graphs(man, bad)
    if man["modalities"] != list(MODALITIES):
        raise bad(f"modalities are {man['modalities']!r}; this runtime needs {list(MODALITIES)} in that order")
    for section in ("inputs", "outputs", "preprocessing", "health"):
        if not isinstance(man[section], dict):
            raise bad(f"{section} must be an object; got {type(man[section]).__name__}")
    for name, spec_want in input_specs().items():
        spec = man["inputs"].get(name)
        if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) or len(spec["shape"]) < 1:
            raise bad(f"inputs.{name} must be an object with a shape list; got {spec!r}")
        if spec.get("dtype") != spec_want["dtype"]:
            raise bad(f"inputs.{name}.dtype is {spec.get('dtype')!r}; expected {spec_want['dtype']!r}")
        if spec["shape"][1:] != spec_want["shape"][1:]:
            raise bad(f"inputs.{name}.shape is {spec['shape']}; expected {spec_want['shape']}")
    logits = man["outputs"].get("logits")
    if not isinstance(logits, dict) or not isinstance(logits.get("shape"), list) or len(logits["shape"]) != 2:
        raise bad(f"outputs.logits must be an object with shape ['batch', n_classes]; got {logits!r}")
    n_classes = logits["shape"][1]
    names = man["class_names"]
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names) or len(names) != n_classes:
        raise bad(f"class_names must be a list of {n_classes} strings (outputs.logits.shape[1])")
    _strip_removed(man, bad)
    return man


def _validate_graphs(man: dict[str, Any], bad: Any) -> None:
    """rfsense-onnx/2: every part named once, as a plain file name beside the manifest, with its sha256."""
    graphs = man["graphs"]
    if not isinstance(graphs, dict) or sorted(graphs) != sorted(GRAPHS):
        got = sorted(graphs) if isinstance(graphs, dict) else type(graphs).__name__
        raise bad(f"graphs must name exactly {', '.join(GRAPHS)}; got {got}")
    for part in GRAPHS:
        entry = graphs[part]
        file = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file, str) or not file.endswith(".onnx") or Path(file).name != file or file in (".onnx", ".."):
            raise bad(f"graphs.{part}.file must be a file name beside the manifest ending in .onnx; got {file!r}")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise bad(f"graphs.{part}.sha256 must be 64 hex digits; got {sha!r}")
        gflop = entry.get("gflop_per_sample", 0.0)  # optional (exports before it lack it)
        if isinstance(gflop, bool) or not isinstance(gflop, (int, float)) or not 0 <= gflop < float("inf"):
            raise bad(f"graphs.{part}.gflop_per_sample must be a non-negative number; got {gflop!r}")
    tokens = man["tokens"]
    shape = tokens.get("shape") if isinstance(tokens, dict) else None
    if (not isinstance(shape, list) or len(shape) != 3 or shape[0] != "batch" or tokens.get("dtype") != "float32"
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape[1:])):
        raise bad(f"tokens must be {{'shape': ['batch', n_tokens, d], 'dtype': 'float32'}}; got {tokens!r}")
    if not isinstance(man["plausibility"], dict):
        raise bad(f"plausibility must be an object; got {type(man['plausibility']).__name__}")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a manifest (unknown extra keys are kept and ignored).

    Raises:
        ModelFileError: missing file, invalid JSON (including absurdly deep nesting), another format, or a key
            missing or malformed; the message names the file and the key.
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
    except RecursionError:
        raise ModelFileError(f"manifest {path} is nested too deeply to be a manifest") from None
    return validate_manifest(man, str(path))


def write_manifest(path: str | os.PathLike[str], man: dict[str, Any]) -> None:
    """Validate, then write atomically (a manifest the runtime would refuse is never written)."""
    validate_manifest(json.loads(json.dumps(man)), str(path))
    atomic_write_json(path, man)
