"""Export a trained run to one ONNX file plus a manifest, parity-checked against PyTorch.

    export_run("runs/quickstart", out="export/")            # export/rfsense.onnx + export/rfsense.json
    export_run(None, int8=True)                             # newest run; also rfsense-int8.onnx

The only module under rfsense/deploy that imports torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from rfsense._io import clean_stale_temporaries, locked_temporary
from rfsense.config import to_data
from rfsense.data.classes import CLASS_NAMES
from rfsense.deploy.manifest import FORMAT, input_specs, manifest_path_for, sha256_file, write_manifest
from rfsense.deploy.session import make_session
from rfsense.errors import ModelFileError
from rfsense.modalities import MODALITIES, SHAPES, SUBSETS, subset_mask
from rfsense.train.batches import read_rows
from rfsense.train.rundir import find_newest_run, load_run_model, open_run_pack, resolve_run

__all__ = ["export_run", "parity_check"]

_logger = logging.getLogger(__name__)
RTOL, ATOL = 1e-4, 1e-5
# Opset 18 (the exporter's native one) stored as IR version 8: onnxruntime 1.14+ loads it, including 1.16.3,
# the newest release with manylinux2014 aarch64 wheels (older ARM edge boxes); opset 20 / IR 10 needs 1.17+.
OPSET, IR_VERSION = 18, 8


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and prints users cannot act on (shown under -v)."""
    if logging.getLogger("rfsense").isEnabledFor(logging.DEBUG):
        yield
        return
    noisy = [logging.getLogger(n) for n in ("torch", "onnxscript", "torch.onnx", "torch._export", "torch.export")]
    levels = [lg.level for lg in noisy]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in noisy:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, lv in zip(noisy, levels, strict=True):
                lg.setLevel(lv)


def _export_onnx(model: torch.nn.Module, path: Path) -> None:
    assert not model.training, "export needs model.eval()"
    batch = torch.export.Dim("batch", min=1, max=4096)
    args = model.example_inputs(batch=2)
    with _quiet_exporter():
        program = torch.onnx.export(
            model,
            args,
            input_names=[*MODALITIES, "present"],
            output_names=["logits"],
            dynamic_shapes={"mmwave": {0: batch}, "wifi": {0: batch}, "rfid": {0: batch}, "present": {0: batch}},
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
        )
        program.save(str(path))  # one file: external data only above the 2 GB protobuf limit
    proto = onnx.load(str(path))
    if proto.functions:  # local functions need IR 10; the optimised graph has none, and must keep it so
        raise ModelFileError(f"export produced {len(proto.functions)} local functions; the runtime needs a flat graph")
    proto.ir_version = IR_VERSION
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    if not isinstance(dims[0], str):
        raise ModelFileError(f"export produced a fixed batch dimension {dims}; expected a dynamic one")


def _parity_inputs(split: Any, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = rng.choice(len(split), size=batch, replace=len(split) < batch)
    return {m: t.numpy() for m, t in read_rows(split, rows).items()}


def parity_check(model: torch.nn.Module, onnx_path: Path, split: Any, batch_sizes: tuple[int, ...] = (1, 7),
                 seed: int = 0) -> dict[str, Any]:
    """Compare ONNX (ORT CPU) with PyTorch eval() on all 7 subsets at each batch size, on real test inputs."""
    sess = make_session(onnx_path)
    rng = np.random.default_rng(seed)
    rows, worst, all_top1 = [], 0.0, True
    for name, mods in SUBSETS:
        for b in batch_sizes:
            x = _parity_inputs(split, b, rng)
            present = np.broadcast_to(np.array(subset_mask(mods)), (b, 3)).copy()
            with torch.no_grad():
                ref = model(*(torch.from_numpy(x[m]) for m in MODALITIES), torch.from_numpy(present)).numpy()
            got = sess.run(["logits"], {**x, "present": present})[0]
            diff = float(np.max(np.abs(ref - got)))
            close = bool(np.allclose(got, ref, rtol=RTOL, atol=ATOL))
            top1 = bool((ref.argmax(1) == got.argmax(1)).all())
            worst, all_top1 = max(worst, diff), all_top1 and top1
            rows.append({"subset": name, "batch": b, "max_abs_diff": diff, "allclose": close, "top1_equal": top1})
    ok = all(r["allclose"] and r["top1_equal"] for r in rows)
    return {"ok": ok, "rtol": RTOL, "atol": ATOL, "max_abs_diff": worst, "top1_equal": all_top1, "cases": rows}


def _ort_accuracy(sess: ort.InferenceSession, split: Any, batch_size: int = 32) -> tuple[float, np.ndarray]:
    """Top-1 accuracy with every usable modality present, and the predictions (for agreement)."""
    rows = np.flatnonzero(split.usable.any(axis=1))
    preds = []
    for start in range(0, len(rows), batch_size):
        r = rows[start : start + batch_size]
        x = {m: t.numpy() for m, t in read_rows(split, r).items()}
        preds.append(sess.run(["logits"], {**x, "present": split.usable[r].copy()})[0].argmax(1))
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return float((pred == split.labels[rows]).mean()) if len(rows) else float("nan"), pred


def _latency_ms(sess: ort.InferenceSession, n: int = 50) -> dict[str, float]:
    x = {m: np.zeros((1, *SHAPES[m]), dtype=np.float32) for m in MODALITIES}
    x["present"] = np.ones((1, 3), dtype=bool)
    for _ in range(5):
        sess.run(["logits"], x)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        sess.run(["logits"], x)
        times.append(1000 * (time.perf_counter() - t0))
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}


def _drop_initializer_value_info(path: Path) -> None:
    """Remove value_info entries that shadow initializers.

    The quantizer turns Gemm(transB=1) into MatMul by transposing the weight initializer but leaves
    such an entry at the old shape, and its own shape inference then rejects the graph.
    """
    model = onnx.load(str(path))
    weights = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.value_info if vi.name not in weights]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    onnx.save(model, str(path))


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = int8.with_name(int8.stem + ".pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        _drop_initializer_value_info(pre)
        # MatMul/Gemm only: dynamic int8 Conv is slower than fp32 on x86 (reference notes §1.6).
        quantize_dynamic(str(pre), str(int8), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    finally:
        pre.unlink(missing_ok=True)


def export_run(
    run_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "export",
    int8: bool = False,
    name: str = "rfsense",
    runs_root: str | os.PathLike[str] = "runs",
) -> dict[str, Any]:
    """Export a run's best checkpoint to OUT/<name>.onnx + OUT/<name>.json; returns the manifest.

    Raises:
        ModelFileError: no run, or the exported graph disagrees with PyTorch beyond rtol 1e-4 / atol 1e-5.
    """
    run_dir = resolve_run(Path(run_dir) if run_dir else find_newest_run(runs_root))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in clean_stale_temporaries(out, f"{name}.onnx"):
        _logger.info("removed %s, left by an interrupted export", stale)
    model, cfg = load_run_model(run_dir, "best")
    pack = open_run_pack(cfg)
    test = pack.split("test")
    final = out / f"{name}.onnx"
    _logger.info("exporting %s -> %s", run_dir, final)
    with locked_temporary(final) as tmp:
        _export_onnx(model, tmp)
        parity = parity_check(model, tmp, test)
        if not parity["ok"]:
            bad = next(r for r in parity["cases"] if not (r["allclose"] and r["top1_equal"]))
            raise ModelFileError(
                f"ONNX parity failed on {bad['subset']} at batch {bad['batch']}: max |dlogit| {bad['max_abs_diff']:.2e} "
                f"(rtol {RTOL}, atol {ATOL}), top-1 equal {bad['top1_equal']}; nothing was written"
            )
        os.replace(tmp, final)
    results_path = run_dir / "results.json"
    metrics = json.loads(results_path.read_text()) if results_path.is_file() else {}
    manifest = {
        "format": FORMAT,
        "model_file": final.name,
        "sha256": sha256_file(final),
        "inputs": input_specs(),
        "outputs": {"logits": {"shape": ["batch", len(CLASS_NAMES)], "dtype": "float32"}},
        "modalities": list(MODALITIES),
        "class_names": list(CLASS_NAMES),
        "preprocessing": to_data(cfg.data.preprocessing),
        "health": to_data(cfg.data.quality),
        # each modality's raw-domain std over the training split: the stress suite's gaussian noise scale s(m)
        "raw_std": pack.raw_std,
        "run": {"path": str(run_dir), "name": cfg.name, "model": to_data(model.config)},
        "metrics": {k: metrics.get(k) for k in ("subsets", "n", "geometry") if k in metrics},
        "parity": parity,
        "size_bytes": final.stat().st_size,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    }
    write_manifest(manifest_path_for(final), manifest)
    if int8:
        manifest["int8"] = _export_int8(final, manifest, test, name)
        write_manifest(manifest_path_for(final), manifest)
    return manifest


def _export_int8(fp32: Path, manifest: dict[str, Any], test: Any, name: str) -> dict[str, Any]:
    """Dynamic int8 (MatMul/Gemm) beside fp32: accuracy, top-1 agreement, size, latency for both."""
    q = fp32.with_name(f"{name}-int8.onnx")
    with locked_temporary(q) as tmp:
        _quantize(fp32, tmp)
        os.replace(tmp, q)
    s32, s8 = make_session(fp32), make_session(q)
    acc32, p32 = _ort_accuracy(s32, test)
    acc8, p8 = _ort_accuracy(s8, test)
    report = {
        "file": q.name,
        "fp32": {"accuracy": acc32, "size_bytes": fp32.stat().st_size, "latency_ms_b1": _latency_ms(s32)},
        "int8": {"accuracy": acc8, "size_bytes": q.stat().st_size, "latency_ms_b1": _latency_ms(s8)},
        "top1_agreement": float((p32 == p8).mean()) if len(p32) else float("nan"),
        "n_test": int(len(p32)),
    }
    # fp32 parity does not carry over: int8 is judged by accuracy and agreement (reference notes §1.4).
    qman = dict(manifest, model_file=q.name, sha256=sha256_file(q), size_bytes=q.stat().st_size,
                quantization=to_data(report), parity={"ok": None, "note": "int8: see quantization.top1_agreement and accuracy"})
    qman.pop("int8", None)
    write_manifest(manifest_path_for(q), qman)
    return to_data(report)
