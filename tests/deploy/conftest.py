"""Fixtures for the deploy tests: tiny but real ONNX models that obey the export contract, and streams.

The toy model (built with onnx.helper, no torch), as an rfsense-onnx/2 export (one encoder graph per modality
plus a fusion graph) or as an rfsense-onnx/1 export (one graph):

    f_m    = mean of input m over its non-batch axes               # (B,) per modality
    tokens = f_m * ones(2, 3)                                       # encoder m: (B, 2, 3); ood = |f_m - c_m|
    p      = float(present)                                         # (B, 3)
    h      = concat(f * p, p)                                       # fusion: f_m = mean of tokens_m; (B, 6)
    logits = h @ W + b                                              # (B, 55)

The second half of W reads the presence flags directly, so the output shows whether the runtime passed
present=False for a masked modality even though masked inputs are zeros. `toy_logits` is the numpy
reference of the same computation, `toy_ood` of the OOD score. The v2 manifest carries distribution
statistics fitted on `make_streams` samples and OOD thresholds that healthy streams pass.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rfsense.config import to_data
from rfsense.data.classes import CLASS_NAMES
from rfsense.data.preprocess import PreprocessConfig, preprocess
from rfsense.data.quality import QualityConfig
from rfsense.deploy.manifest import FORMAT, FORMAT_V1, graph_file, input_specs, token_specs, write_manifest
from rfsense.deploy.plausibility import (
    PlausibilityConfig,
    channel_features,
    distribution_scores,
    fit_distribution,
    threshold_of,
)
from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES

# Deterministic weights: smooth, distinct patterns per row; presence rows push classes 10, 20, 30 up so
# each modality's flag moves the top classes visibly.
_W = np.stack(
    [np.sin(np.arange(N_CLASSES) * (j + 1) * 0.37) for j in range(3)]
    + [0.5 * np.cos(np.arange(N_CLASSES) * (j + 2) * 0.23) for j in range(3)]
).astype(np.float32)
for _j in range(3):
    _W[3 + _j, 10 * (_j + 1)] += 3.0
_B = (0.01 * np.arange(N_CLASSES)).astype(np.float32)
TOKENS = (2, 3)  # the toy's (n_tokens, d)
# OOD: |mean of the preprocessed stream - centre|; healthy `make_streams` give about 0.6, 10 and 0.
OOD_CENTRE = {"mmwave": 0.6, "wifi": 10.0, "rfid": 0.0}
OOD_THRESHOLD = {"mmwave": 1.0, "wifi": 5.0, "rfid": 1.0}
_OPSET = [helper.make_opsetid("", 18)]


def toy_logits(feeds: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
    """numpy reference of the toy graph: feeds[m] (B, *SHAPES[m]), present bool (B, 3) -> float64 (B, 55)."""
    p = np.asarray(present, dtype=np.float64)
    f = np.stack([np.asarray(feeds[m], dtype=np.float64).reshape(len(p), -1).mean(axis=1) for m in MODALITIES], 1)
    return np.concatenate([f * p, p], axis=1) @ _W.astype(np.float64) + _B


def toy_ood(modality: str, feeds: np.ndarray) -> np.ndarray:
    """numpy reference of the toy encoders' OOD score: (n, *SHAPES[m]) -> float64 (n,)."""
    return np.abs(np.asarray(feeds, np.float64).reshape(len(feeds), -1).mean(axis=1) - OOD_CENTRE[modality])


def _model(nodes, inputs, outputs, inits, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=_OPSET, producer_name="rfsense-tests")
    model.ir_version = 8  # what rfsense export writes (onnxruntime 1.16 reads it)
    onnx.checker.check_model(model, full_check=True)
    return model


def _head_nodes(feats: list[str]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes from per-modality (B, 1) features and `present` to `logits`."""
    nodes = [
        helper.make_node("Concat", feats, ["f"], axis=1),  # (B, 3)
        helper.make_node("Cast", ["present"], ["p"], to=TensorProto.FLOAT),  # (B, 3)
        helper.make_node("Mul", ["f", "p"], ["fp"]),
        helper.make_node("Concat", ["fp", "p"], ["h"], axis=1),  # (B, 6)
        helper.make_node("MatMul", ["h", "W"], ["hw"]),
        helper.make_node("Add", ["hw", "b"], ["logits"]),  # (B, 55)
    ]
    return nodes, [numpy_helper.from_array(_W, "W"), numpy_helper.from_array(_B, "b")]


def _present_and_logits() -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    return (helper.make_tensor_value_info("present", TensorProto.BOOL, ["batch", 3]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES]))


def build_toy_onnx() -> onnx.ModelProto:
    """The v1 toy: one graph with the contract's names, dtypes and a dynamic 'batch' axis."""
    inputs = [helper.make_tensor_value_info(m, TensorProto.FLOAT, ["batch", *SHAPES[m]]) for m in MODALITIES]
    present, logits = _present_and_logits()
    nodes, inits = [], [numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1")]
    for m in MODALITIES:
        inits.append(numpy_helper.from_array(np.arange(1, len(SHAPES[m]) + 1, dtype=np.int64), f"axes_{m}"))
        nodes.append(helper.make_node("ReduceMean", [m, f"axes_{m}"], [f"mean_{m}"], keepdims=0))  # (B,)
        nodes.append(helper.make_node("Unsqueeze", [f"mean_{m}", "ax1"], [f"f_{m}"]))  # (B, 1)
    head, head_inits = _head_nodes([f"f_{m}" for m in MODALITIES])
    return _model(nodes + head, [*inputs, present], [logits], inits + head_inits, "rfsense_toy")


def build_toy_encoder(modality: str) -> onnx.ModelProto:
    """The v2 toy encoder of one modality: x -> tokens (B, 2, 3) = mean(x) * ones, ood = |mean(x) - c|."""
    x = helper.make_tensor_value_info(modality, TensorProto.FLOAT, ["batch", *SHAPES[modality]])
    outputs = [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", *TOKENS]),
               helper.make_tensor_value_info("ood", TensorProto.FLOAT, ["batch"])]
    inits = [
        numpy_helper.from_array(np.arange(1, len(SHAPES[modality]) + 1, dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape3"),
        numpy_helper.from_array(np.ones((1, *TOKENS), np.float32), "ones"),
        numpy_helper.from_array(np.array(OOD_CENTRE[modality], np.float32), "centre"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [modality, "axes"], ["mean"], keepdims=0),  # (B,)
        helper.make_node("Reshape", ["mean", "shape3"], ["mean3"]),  # (B, 1, 1)
        helper.make_node("Mul", ["mean3", "ones"], ["tokens"]),  # (B, 2, 3)
        helper.make_node("Sub", ["mean", "centre"], ["dev"]),
        helper.make_node("Abs", ["dev"], ["ood"]),  # (B,)
    ]
    return _model(nodes, [x], outputs, inits, f"rfsense_toy_{modality}")


def build_toy_fusion() -> onnx.ModelProto:
    """The v2 toy fusion: tokens_m (B, 2, 3), zeroed where m is absent (as the exported fusion does), -> f_m =
    their mean (B, 1) -> the v1 toy's head."""
    inputs = [helper.make_tensor_value_info(f"tokens_{m}", TensorProto.FLOAT, ["batch", *TOKENS]) for m in MODALITIES]
    present, logits = _present_and_logits()
    inits = [
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes12"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"),
        numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape3"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    nodes = []
    for j, m in enumerate(MODALITIES):
        inits.append(numpy_helper.from_array(np.array(j, dtype=np.int64), f"j_{m}"))
        nodes += [
            helper.make_node("Gather", ["present", f"j_{m}"], [f"p_{m}"], axis=1),  # (B,)
            helper.make_node("Reshape", [f"p_{m}", "shape3"], [f"p3_{m}"]),  # (B, 1, 1)
            helper.make_node("Where", [f"p3_{m}", f"tokens_{m}", "zero"], [f"kept_{m}"]),
            helper.make_node("ReduceMean", [f"kept_{m}", "axes12"], [f"f_{m}"], keepdims=0),  # (B,)
            helper.make_node("Unsqueeze", [f"f_{m}", "ax1"], [f"g_{m}"]),  # (B, 1)
        ]
    head, head_inits = _head_nodes([f"g_{m}" for m in MODALITIES])
    return _model(nodes + head, [*inputs, present], [logits], inits + head_inits, "rfsense_toy_fusion")


@functools.lru_cache(maxsize=1)
def toy_distribution() -> dict[str, Any]:
    """Distribution statistics of preprocessed `make_streams` samples and thresholds from 24 others (what export
    fits on a pack's training rows and sets on its validation slice)."""
    fit, held_out = make_streams(12, seed=100), make_streams(24, seed=200)
    out = {}
    for m in MODALITIES:
        center, scale = fit_distribution(channel_features(preprocess(m, fit[m])))
        scores = distribution_scores(preprocess(m, held_out[m]), center, scale)
        out[m] = {"center": to_data(center), "scale": to_data(scale), "fit_rows": 12,
                  "threshold": threshold_of(scores, PlausibilityConfig()), "rows": 24, "split": "validation"}
    return out


@dataclass
class ToyModel:
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def _common(health: QualityConfig | None) -> dict[str, Any]:
    return {
        "inputs": input_specs(),
        "modalities": list(MODALITIES),
        "class_names": list(CLASS_NAMES),
        "preprocessing": to_data(PreprocessConfig()),
        "health": to_data(health or QualityConfig()),
        "run": {"name": "toy", "preset": "none"},
        "metrics": {},
        "parity": {},
    }


def write_toy_model(folder: Path, name: str = "toy", health: QualityConfig | None = None,
                    plausibility: PlausibilityConfig | None = None) -> ToyModel:
    """Write the rfsense-onnx/2 toy: `<name>.onnx` (fusion), `<name>.<m>.onnx` and `<name>.json` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    protos = {"fusion": build_toy_fusion(), **{m: build_toy_encoder(m) for m in MODALITIES}}
    graphs = {}
    for part, proto in protos.items():
        data = proto.SerializeToString()
        (folder / graph_file(name, part)).write_bytes(data)
        graphs[part] = {"file": graph_file(name, part), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "format": FORMAT,
        "model_file": graph_file(name, "fusion"),
        "graphs": graphs,
        "tokens": token_specs(*TOKENS),
        "outputs": {"logits": {"shape": ["batch", N_CLASSES], "dtype": "float32"},
                    "ood": {"shape": ["batch"], "dtype": "float32"}},
        "plausibility": {
            "config": to_data(plausibility or PlausibilityConfig()),
            "distribution": toy_distribution(),
            "ood": {m: {"threshold": t, "rows": 12, "split": "validation"} for m, t in OOD_THRESHOLD.items()},
        },
        **_common(health),
    }
    mpath = folder / f"{name}.json"
    write_manifest(mpath, manifest)
    return ToyModel(folder / graph_file(name, "fusion"), mpath, manifest)


def write_toy_model_v1(folder: Path, name: str = "toy1", health: QualityConfig | None = None) -> ToyModel:
    """Write the rfsense-onnx/1 toy: one graph `<name>.onnx` and its manifest `<name>.json` (correct sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    data = build_toy_onnx().SerializeToString()
    path.write_bytes(data)
    manifest = {
        "format": FORMAT_V1,
        "model_file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "outputs": {"logits": {"shape": ["batch", N_CLASSES], "dtype": "float32"}},
        **_common(health),
    }
    mpath = folder / f"{name}.json"
    write_manifest(mpath, manifest)
    return ToyModel(path, mpath, manifest)


@pytest.fixture
def toy_model(tmp_path: Path) -> ToyModel:
    """A fresh toy model per test (tests may corrupt it)."""
    return write_toy_model(tmp_path / "export")


# The toy's plausibility statistics come from `make_streams`, not from the captures the reader tests feed it:
# those tests switch the checks off (they test reading and wiring; plausibility has its own tests).
UNCHECKED = PlausibilityConfig(distribution=False, ood=False)


@pytest.fixture
def toy_model_unchecked(tmp_path: Path) -> ToyModel:
    """A fresh toy model whose plausibility checks are off (for reader and wiring tests on real captures)."""
    return write_toy_model(tmp_path / "export", plausibility=UNCHECKED)


@pytest.fixture
def toy_model_v1(tmp_path: Path) -> ToyModel:
    """A fresh rfsense-onnx/1 toy model per test."""
    return write_toy_model_v1(tmp_path / "export1")


@pytest.fixture(scope="module")
def shared_runtime(tmp_path_factory: pytest.TempPathFactory):
    """One CPU Runtime per module for read-only tests (hypothesis needs non-function-scoped fixtures)."""
    from rfsense.deploy.runtime import Runtime

    model = write_toy_model(tmp_path_factory.mktemp("export"))
    return Runtime(model.path, providers="cpu", threads=1)


def make_streams(b: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Healthy raw streams: mmwave (B, 17, 256, 128) positive heatmap, wifi (B, 270, 1000) amplitude around
    10 with noise, rfid (B, 23, 148) wrapped phase random walk (no exact repeats)."""
    rng = np.random.default_rng(seed)
    mmwave = np.abs(rng.normal(1.0, 0.5, size=(b, *SHAPES["mmwave"]))).astype(np.float32)
    t = np.arange(1000) / 200.0
    wifi = 10.0 + np.sin(2 * np.pi * 1.5 * t) + 0.3 * rng.normal(size=(b, *SHAPES["wifi"]))
    rfid = np.mod(np.cumsum(rng.normal(0, 0.1, size=(b, *SHAPES["rfid"])), axis=-1) + 3.0, 2 * np.pi)
    return {"mmwave": mmwave, "wifi": wifi, "rfid": rfid}


@pytest.fixture
def streams() -> Callable[..., dict[str, np.ndarray]]:
    return make_streams


@pytest.fixture
def toy_reference() -> Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]:
    """The numpy reference of the toy graph (`toy_logits`)."""
    return toy_logits
