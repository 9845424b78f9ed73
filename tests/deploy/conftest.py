"""Fixtures for the deploy tests: a tiny but real ONNX model that obeys the export contract, and streams.

The toy model (built with onnx.helper, no torch):

    f_m    = mean of input m over its non-batch axes               # (B,) per modality
    p      = float(present)                                         # (B, 3)
    h      = concat(f * p, p)                                       # (B, 6)
    logits = h @ W + b                                              # (B, 55)

The second half of W reads the presence flags directly, so the output shows whether the runtime passed
present=False for a masked modality even though masked inputs are zeros. `toy_logits` is the numpy
reference of the same computation.
"""

from __future__ import annotations

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
from rfsense.data.preprocess import PreprocessConfig
from rfsense.data.quality import QualityConfig
from rfsense.deploy.manifest import FORMAT, input_specs, write_manifest
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


def toy_logits(feeds: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
    """numpy reference of the toy graph: feeds[m] (B, *SHAPES[m]), present bool (B, 3) -> float64 (B, 55)."""
    p = np.asarray(present, dtype=np.float64)
    f = np.stack([np.asarray(feeds[m], dtype=np.float64).reshape(len(p), -1).mean(axis=1) for m in MODALITIES], 1)
    return np.concatenate([f * p, p], axis=1) @ _W.astype(np.float64) + _B


def build_toy_onnx() -> onnx.ModelProto:
    """The toy graph with the contract's names, dtypes and a dynamic 'batch' axis."""
    inputs = [helper.make_tensor_value_info(m, TensorProto.FLOAT, ["batch", *SHAPES[m]]) for m in MODALITIES]
    inputs.append(helper.make_tensor_value_info("present", TensorProto.BOOL, ["batch", 3]))
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES])
    nodes, inits = [], [
        numpy_helper.from_array(_W, "W"),
        numpy_helper.from_array(_B, "b"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"),
    ]
    feats = []
    for m in MODALITIES:
        axes = np.arange(1, len(SHAPES[m]) + 1, dtype=np.int64)
        inits.append(numpy_helper.from_array(axes, f"axes_{m}"))
        nodes.append(helper.make_node("ReduceMean", [m, f"axes_{m}"], [f"mean_{m}"], keepdims=0))  # (B,)
        nodes.append(helper.make_node("Unsqueeze", [f"mean_{m}", "ax1"], [f"f_{m}"]))  # (B, 1)
        feats.append(f"f_{m}")
    nodes += [
        helper.make_node("Concat", feats, ["f"], axis=1),  # (B, 3)
        helper.make_node("Cast", ["present"], ["p"], to=TensorProto.FLOAT),  # (B, 3)
        helper.make_node("Mul", ["f", "p"], ["fp"]),
        helper.make_node("Concat", ["fp", "p"], ["h"], axis=1),  # (B, 6)
        helper.make_node("MatMul", ["h", "W"], ["hw"]),
        helper.make_node("Add", ["hw", "b"], ["logits"]),  # (B, 55)
    ]
    graph = helper.make_graph(nodes, "rfsense_toy", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="rfsense-tests")
    model.ir_version = 10  # onnx 1.23 defaults to a newer IR than some onnxruntime builds read
    onnx.checker.check_model(model, full_check=True)
    return model


@dataclass
class ToyModel:
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


def write_toy_model(folder: Path, name: str = "toy", health: QualityConfig | None = None) -> ToyModel:
    """Write `<name>.onnx` and its manifest `<name>.json` (correct sha256) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    data = build_toy_onnx().SerializeToString()
    path.write_bytes(data)
    manifest = {
        "format": FORMAT,
        "model_file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "inputs": input_specs(),
        "outputs": {"logits": {"shape": ["batch", N_CLASSES], "dtype": "float32"}},
        "modalities": list(MODALITIES),
        "class_names": list(CLASS_NAMES),
        "preprocessing": to_data(PreprocessConfig()),
        "health": to_data(health or QualityConfig()),
        "run": {"name": "toy", "preset": "none"},
        "metrics": {},
        "parity": {},
    }
    mpath = folder / f"{name}.json"
    write_manifest(mpath, manifest)
    return ToyModel(path, mpath, manifest)


@pytest.fixture
def toy_model(tmp_path: Path) -> ToyModel:
    """A fresh toy model per test (tests may corrupt it)."""
    return write_toy_model(tmp_path / "export")


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
