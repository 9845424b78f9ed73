"""Export a trained run to ONNX graphs plus one manifest, parity-checked against PyTorch.

    export_run("runs/quickstart", out="export/")    # export/rfsense.onnx + rfsense.{mmwave,wifi,rfid}.onnx + rfsense.json
    export_run(None, int8=True)                     # newest run; also rfsense-int8.onnx (+ its encoders and manifest)

The model is split at `RFSenseNet.encode` / `RFSenseNet.fuse` (rfsense-onnx/2, `rfsense.deploy.manifest`):

- one encoder graph per modality, `<name>.<modality>.onnx`: input ``<modality>`` (batch, *shape) float32,
  outputs ``tokens`` (batch, n_tokens, d) and ``ood`` (batch,), the Mahalanobis distance of the pooled
  embedding to the nearest class mean (`rfsense.deploy.plausibility`), fitted here on the training rows;
- one fusion graph, `<name>.onnx`: inputs ``tokens_mmwave``, ``tokens_wifi``, ``tokens_rfid`` and ``present``
  (batch, 3) bool, output ``logits``. It zeroes the tokens of absent modalities before `fuse`, so what an
  absent modality's tokens hold never matters (the mask invariance of the full model).

So a runtime runs only the encoders of the sensors a batch has. Parity: the graphs (ORT, CPU) against
`model(...)` on every modality subset at batch 1 and 7 and on a batch of mixed per-sample subsets.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import torch
from torch import Tensor, nn

from rfsense._io import clean_stale_temporaries, locked_temporary
from rfsense.config import to_data
from rfsense.data.classes import CLASS_NAMES
from rfsense.deploy.manifest import (
    FORMAT,
    GRAPHS,
    graph_file,
    input_specs,
    manifest_path_for,
    sha256_file,
    token_specs,
    write_manifest,
)
from rfsense.deploy.plausibility import (
    OodFit,
    PlausibilityConfig,
    channel_features,
    distribution_scores,
    fit_distribution,
    fit_ood,
    loo_scores,
    ood_scores,
    scores_of_features,
    threshold_of,
)
from rfsense.deploy.session import make_session
from rfsense.errors import ModelFileError
from rfsense.modalities import MODALITIES, SHAPES, SUBSETS, subset_mask
from rfsense.train.loop import _split_rows
from rfsense.train.rundir import find_newest_run, load_run_model, open_run_pack, resolve_run

__all__ = ["EncoderGraph", "FusionGraph", "export_model", "export_run", "export_single_graph", "parity_check"]

_logger = logging.getLogger(__name__)
RTOL, ATOL = 1e-4, 1e-5
# Opset 18 (the exporter's native one) stored as IR version 8: onnxruntime 1.14+ loads it, including 1.16.3,
# the newest release with manylinux2014 aarch64 wheels (older ARM edge boxes); opset 20 / IR 10 needs 1.17+.
OPSET, IR_VERSION = 18, 8
_CHUNK = 32  # rows per forward pass when fitting and scoring


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


# --------------------------------------------------------------------------------------- graphs


class EncoderGraph(nn.Module):
    """One modality's encoder plus its OOD score: x (B, *shape) -> tokens (B, n_tokens, d), ood (B,)."""

    def __init__(self, model: nn.Module, modality: str, ood: OodFit) -> None:
        super().__init__()
        self.encoder = model.encoders[modality]
        w = torch.as_tensor(ood.whiten, dtype=torch.float32)
        self.register_buffer("whiten", w)  # (d, d)
        self.register_buffer("centres", torch.as_tensor(ood.means @ ood.whiten, dtype=torch.float32))  # (K, d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens, z = self.encoder(x)  # (B, n, d), (B, d): what RFSenseNet.encode computes per modality
        u = z @ self.whiten  # whitened, so the Mahalanobis distance is Euclidean
        d2 = ((u[:, None, :] - self.centres[None]) ** 2).sum(dim=-1)  # (B, K)
        return tokens, torch.amin(d2, dim=1).sqrt()


class FusionGraph(nn.Module):
    """`RFSenseNet.fuse` on per-modality tokens: (tokens_mmwave, tokens_wifi, tokens_rfid, present) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens_mmwave: Tensor, tokens_wifi: Tensor, tokens_rfid: Tensor, present: Tensor) -> Tensor:
        present = present.to(torch.bool)
        kept = [torch.where(present[:, i, None, None], t, torch.zeros_like(t))  # where: 0 * NaN would be NaN
                for i, t in enumerate((tokens_mmwave, tokens_wifi, tokens_rfid))]
        return self.model.fuse(torch.stack(kept, dim=1), present)


def _to_onnx(module: nn.Module, args: tuple[Tensor, ...], path: Path, input_names: list[str],
             output_names: list[str]) -> None:
    """Export with a dynamic batch axis on every input, as one flat file."""
    assert not module.training, "export needs eval()"
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet_exporter():
        program = torch.onnx.export(
            module, args, input_names=input_names, output_names=output_names,
            dynamic_shapes=tuple({0: batch} for _ in args), dynamo=True, opset_version=OPSET, verbose=False,
        )
        program.save(str(path))  # one file: external data only above the 2 GB protobuf limit
    proto = onnx.load(str(path))
    if proto.functions:  # local functions need IR 10; the optimised graph has none, and must keep it so
        raise ModelFileError(f"export produced {len(proto.functions)} local functions; the runtime needs a flat graph")


def _finish(proto: onnx.ModelProto, path: Path) -> None:
    """Store as IR 8 (onnxruntime 1.16 reads it), check, and insist on a dynamic batch axis."""
    proto.ir_version = IR_VERSION
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    for inp in onnx.load(str(path)).graph.input:
        if not inp.type.tensor_type.shape.dim[0].dim_param:
            raise ModelFileError(f"export produced a fixed batch dimension for input {inp.name}; expected a dynamic one")


def _rename(proto: onnx.ModelProto, names: dict[str, str]) -> onnx.ModelProto:
    for node in proto.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in (*proto.graph.input, *proto.graph.output):
        value.name = names.get(value.name, value.name)
    return proto


class _Whole(nn.Module):
    """Every part in one module, so one (slow) exporter run gives all graphs: they are cut out of it by name."""

    def __init__(self, model: nn.Module, fits: dict[str, OodFit]) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(EncoderGraph(model, m, fits[m]) for m in MODALITIES)
        self.fusion = FusionGraph(model)

    def forward(self, mmwave: Tensor, wifi: Tensor, rfid: Tensor, present: Tensor) -> tuple[Tensor, ...]:
        outs = [enc(x) for enc, x in zip(self.encoders, (mmwave, wifi, rfid), strict=True)]
        return (*(t for pair in outs for t in pair), self.fusion(*(t for t, _ in outs), present))


def _export_graphs(model: nn.Module, fits: dict[str, OodFit], paths: dict[str, Path]) -> None:
    """Export the encoder graphs and the fusion graph to `paths` (part -> file)."""
    whole = paths["fusion"].with_name(paths["fusion"].name + ".whole")
    try:
        outputs = [f"{k}_{m}" for m in MODALITIES for k in ("tokens", "ood")] + ["logits"]
        _to_onnx(_Whole(model, fits).eval(), model.example_inputs(batch=2), whole, [*MODALITIES, "present"], outputs)
        cut = onnx.utils.Extractor(onnx.load(str(whole)))
        for m in MODALITIES:
            part = cut.extract_model([m], [f"tokens_{m}", f"ood_{m}"])
            _finish(_rename(part, {f"tokens_{m}": "tokens", f"ood_{m}": "ood"}), paths[m])
        _finish(cut.extract_model([f"tokens_{m}" for m in MODALITIES] + ["present"], ["logits"]), paths["fusion"])
    finally:
        whole.unlink(missing_ok=True)


def _graph_entry(f: Path) -> dict[str, Any]:
    """A graph file's entry in the manifest's ``graphs``: its name, sha256 and size."""
    return {"file": f.name, "sha256": sha256_file(f), "size_bytes": f.stat().st_size}


def graph_gflop(model: nn.Module) -> dict[str, float]:
    """GFLOP per sample of each graph of an export (part -> GFLOP; torch's flop counter at batch 1, forward only):
    each encoder on its own input, the fusion graph as the whole model less its encoders. The runtime sizes each
    graph's thread pool by it (`rfsense.deploy.runtime`); users read what each sensor costs."""
    from torch.utils.flop_counter import FlopCounterMode

    xs = model.example_inputs(batch=1)
    out: dict[str, float] = {}
    # grad mode stays on: the counter's module tracker needs it (forward only, nothing is kept)
    for m, x in zip(MODALITIES, xs[:3], strict=True):
        with FlopCounterMode(display=False) as fc:
            model.encoders[m](x)
        out[m] = fc.get_total_flops() / 1e9
    with FlopCounterMode(display=False) as fc:
        model(*xs)
    out["fusion"] = max(fc.get_total_flops() / 1e9 - sum(out.values()), 0.0)
    return {p: round(out[p], 6) for p in GRAPHS}


def export_single_graph(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """The whole model as one graph (mmwave, wifi, rfid, present -> logits), the rfsense-onnx/1 layout.

    Not written by `export_run`; the runtime benchmark times it as its reference.
    """
    path = Path(path)
    _to_onnx(model, model.example_inputs(batch=2), path, [*MODALITIES, "present"], ["logits"])
    _finish(onnx.load(str(path)), path)


# --------------------------------------------------------------------------------------- parity


class _Graphs:
    """ORT sessions of the exported parts, run the way the runtime runs them (absent encoders skipped)."""

    def __init__(self, paths: dict[str, Path], n_tokens: int, d: int) -> None:
        self.sessions = {p: make_session(paths[p]) for p in GRAPHS}
        self.n, self.d = n_tokens, d

    def encode(self, m: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens, ood = self.sessions[m].run(["tokens", "ood"], {m: np.ascontiguousarray(x, dtype=np.float32)})
        return tokens, ood

    def logits(self, x: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        feeds = {"present": present}
        for j, m in enumerate(MODALITIES):
            tokens = np.zeros((len(present), self.n, self.d), dtype=np.float32)
            rows = np.flatnonzero(present[:, j])
            if rows.size:
                tokens[rows] = self.encode(m, x[m][rows])[0]
            feeds[f"tokens_{m}"] = tokens
        return self.sessions["fusion"].run(["logits"], feeds)[0]


def _rows_of(split: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    order = np.argsort(rows, kind="stable")
    out = {}
    for m in MODALITIES:
        data = np.asarray(split.arrays[m][rows[order]], dtype=np.float32)  # sorted reads of the memory map
        out[m] = np.empty_like(data)
        out[m][order] = data
    return out


def _compare(ref: np.ndarray, got: np.ndarray) -> tuple[float, bool, bool]:
    diff = float(np.max(np.abs(ref - got)))
    return diff, bool(np.allclose(got, ref, rtol=RTOL, atol=ATOL)), bool((ref.argmax(1) == got.argmax(1)).all())


def parity_check(model: nn.Module, paths: dict[str, Path], split: Any, fits: dict[str, OodFit] | None = None,
                 batch_sizes: tuple[int, ...] = (1, 7), seed: int = 0) -> dict[str, Any]:
    """Compare the graphs (ORT CPU, run as the runtime runs them) with PyTorch eval() on real test inputs.

    Cases: all 7 subsets at each batch size, plus one batch of 7 whose samples each have their own random
    subset (mixed presence). With `fits`, each encoder's ``ood`` output is also compared with the numpy
    reference on the model's own embeddings (float32 graph against float64 numpy: rtol 1e-4 of the largest).
    """
    graphs = _Graphs(paths, model.config.n_tokens, model.config.d)
    rng = np.random.default_rng(seed)
    big = max(batch_sizes)
    mixed = rng.random((7, 3)) < 0.5
    mixed[~mixed.any(axis=1), rng.integers(0, 3)] = True
    cases = [(name, np.broadcast_to(np.array(subset_mask(mods)), (big, 3)).copy(), batch_sizes) for name, mods in SUBSETS]
    cases.append(("mixed", mixed, (7,)))
    rows, worst = [], 0.0
    for name, present, sizes in cases:
        x = _rows_of(split, rng.choice(len(split), size=len(present), replace=len(split) < len(present)))
        with torch.no_grad():  # a sample's logits do not depend on its batch (GroupNorm): one reference per case
            ref = model(*(torch.from_numpy(x[m]) for m in MODALITIES), torch.from_numpy(present)).numpy()
        for b in sizes:
            diff, close, top1 = _compare(ref[:b], graphs.logits({m: v[:b] for m, v in x.items()}, present[:b]))
            worst = max(worst, diff)
            rows.append({"subset": name, "batch": b, "max_abs_diff": diff, "allclose": close, "top1_equal": top1})
    report: dict[str, Any] = {
        "ok": all(r["allclose"] and r["top1_equal"] for r in rows), "rtol": RTOL, "atol": ATOL, "max_abs_diff": worst,
        "top1_equal": all(r["top1_equal"] for r in rows), "cases": rows,
    }
    if fits:
        x = _rows_of(split, rng.choice(len(split), size=7, replace=len(split) < 7))
        rel = {}
        for m in MODALITIES:
            with torch.no_grad():
                z = model.encoders[m](torch.from_numpy(x[m]))[1].double().numpy()
            ref_ood, got_ood = ood_scores(z, fits[m]), graphs.encode(m, x[m])[1]
            rel[m] = float(np.max(np.abs(ref_ood - got_ood)) / max(np.max(np.abs(ref_ood)), 1e-12))
        report["ood_max_rel_diff"] = rel
        report["ok"] = report["ok"] and all(v <= RTOL for v in rel.values())
    return report


# --------------------------------------------------------------------------------- plausibility


def _subset(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))


@dataclass
class _Fitted:
    """One modality's plausibility fit on its training rows, before thresholds."""

    ood: OodFit
    loo: np.ndarray  # leave-one-out OOD scores of the training rows
    center: np.ndarray | None = None  # distribution statistics (C, 3), None with too few rows
    scale: np.ndarray | None = None
    train_scores: np.ndarray | None = None  # distribution scores of the training rows
    rows: int = 0


def _read(split: Any, m: str, rows: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), _CHUNK):
        yield np.asarray(split.arrays[m][rows[start : start + _CHUNK]], dtype=np.float32)


def _fit_plausibility(model: nn.Module, split: Any, rows: np.ndarray, cfg: PlausibilityConfig) -> dict[str, _Fitted]:
    """Per modality, on its usable training `rows`: the OOD fit and its leave-one-out scores, and (with at least
    cfg.min_rows rows) the distribution statistics and the rows' own distribution scores."""
    out: dict[str, _Fitted] = {}
    for j, m in enumerate(MODALITIES):
        use = _subset(rows[split.usable[rows, j]], cfg.max_rows, seed=j)
        if len(use) < 2:  # a data set without this sensor: an inert score, never checked (no threshold)
            d = model.config.d
            out[m] = _Fitted(OodFit(np.zeros((1, d)), np.eye(d), 0.0, 0), np.zeros(0))
            continue
        zs, feats = [], []
        for x in _read(split, m, use):
            feats.append(channel_features(x))
            with torch.no_grad():
                zs.append(model.encoders[m](torch.from_numpy(x))[1].double().numpy())
        z = np.concatenate(zs)
        fit = fit_ood(z, split.labels[use])
        out[m] = _Fitted(fit, loo_scores(z, split.labels[use], fit), rows=len(use))
        if len(use) >= cfg.min_rows:
            features = np.concatenate(feats)
            out[m].center, out[m].scale = fit_distribution(features)
            out[m].train_scores = scores_of_features(features, out[m].center, out[m].scale)
    return out


def _threshold_entry(scores: np.ndarray, source: str, cfg: PlausibilityConfig) -> dict[str, Any]:
    return {"threshold": threshold_of(scores, cfg), "rows": int(len(scores)), "split": source,
            "score_median": float(np.median(scores)), "score_max": float(scores.max())}


def _no_threshold(rows: int, cfg: PlausibilityConfig) -> dict[str, Any]:
    return {"threshold": None, "rows": rows,
            "note": f"no threshold: fewer than {cfg.min_rows} held-out or training rows; the check is off"}


def _set_thresholds(paths: dict[str, Path], split: Any, rows: np.ndarray, fitted: dict[str, _Fitted],
                    cfg: PlausibilityConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each modality's OOD and distribution thresholds. OOD: from the scores the exported encoder itself gives on
    the held-out `rows`, else leave-one-out scores of the training rows, else none. Distribution: from the
    training rows and the held-out ones.

    Returns the manifest's ``plausibility.ood`` and ``plausibility.distribution`` sections.
    """
    ood: dict[str, Any] = {}
    dist: dict[str, Any] = {}
    for j, m in enumerate(MODALITIES):
        f = fitted[m]
        if f.ood.n_rows == 0:
            continue
        use = _subset(rows[split.usable[rows, j]], cfg.max_rows, seed=10 + j)
        held_out = len(use) >= cfg.min_rows
        info = {"fit_rows": f.ood.n_rows, "classes": int(len(f.ood.means)), "shrinkage": f.ood.shrinkage}
        if held_out:
            sess = make_session(paths[m])
            scores = np.concatenate([sess.run(["ood"], {m: x})[0] for x in _read(split, m, use)])
            ood[m] = {**info, **_threshold_entry(scores, "validation", cfg)}
        elif len(f.loo[np.isfinite(f.loo)]) >= cfg.min_rows:
            ood[m] = {**info, **_threshold_entry(f.loo[np.isfinite(f.loo)], "train (leave-one-out)", cfg)}
        else:
            ood[m] = {**info, **_no_threshold(len(use), cfg)}
        if f.center is None:
            dist[m] = {"fit_rows": f.rows, **_no_threshold(len(use), cfg)}
            continue
        stats = {"center": to_data(f.center), "scale": to_data(f.scale), "fit_rows": f.rows}
        # The training rows count too: median and MAD hardly depend on any one row, so their scores are as good
        # as held-out ones, and more rows estimate a high quantile better.
        scores, source = f.train_scores, "train"
        if held_out:
            val = np.concatenate([distribution_scores(x, f.center, f.scale) for x in _read(split, m, use)])
            scores, source = np.concatenate([scores, val]), "train + validation"  # type: ignore[list-item]
        dist[m] = {**stats, **_threshold_entry(scores, source, cfg)}  # type: ignore[arg-type]
    return ood, dist


# --------------------------------------------------------------------------------------- export


def export_model(model: nn.Module, out: str | os.PathLike[str], name: str, train: Any, test: Any,
                 train_rows: np.ndarray, val_rows: np.ndarray, plausibility: PlausibilityConfig | None = None
                 ) -> dict[str, Any]:
    """Write the graphs of `model` into OUT as export `name` and return the manifest's model part.

    `train` and `test` are packed splits (`rfsense.data.pack.PackedSplit`); the OOD fit and the distribution
    statistics use `train_rows`, the thresholds `val_rows` (leave-one-out scores of the training rows when
    there are too few, none when both are too few: see `PlausibilityConfig.min_rows`; the manifest says
    which). Nothing is written when parity fails.

    Raises:
        ModelFileError: the graphs disagree with PyTorch beyond rtol 1e-4 / atol 1e-5 (nothing was written).
    """
    cfg = plausibility or PlausibilityConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    finals = {p: out / graph_file(name, p) for p in GRAPHS}
    for final in finals.values():
        for stale in clean_stale_temporaries(out, final.name):
            _logger.info("removed %s, left by an interrupted export", stale)
    fitted = _fit_plausibility(model, train, train_rows, cfg)
    fits = {m: f.ood for m, f in fitted.items()}
    if len(val_rows) < cfg.min_rows:
        _logger.warning("%d validation rows (fewer than %d): the plausibility thresholds come from the training rows "
                        "where there are enough", len(val_rows), cfg.min_rows)
    _logger.info("exporting %s", ", ".join(str(p) for p in finals.values()))
    with contextlib.ExitStack() as stack:
        tmp = {p: stack.enter_context(locked_temporary(final)) for p, final in finals.items()}
        _export_graphs(model, fits, tmp)
        parity = parity_check(model, tmp, test, fits)
        if not parity["ok"]:
            bad = next((r for r in parity["cases"] if not (r["allclose"] and r["top1_equal"])), None)
            what = (f"{bad['subset']} at batch {bad['batch']}: max |dlogit| {bad['max_abs_diff']:.2e} (rtol {RTOL}, "
                    f"atol {ATOL}), top-1 equal {bad['top1_equal']}" if bad else
                    f"the OOD score: max relative difference {parity.get('ood_max_rel_diff')}")
            raise ModelFileError(f"ONNX parity failed on {what}; nothing was written")
        ood, distribution = _set_thresholds(tmp, train, val_rows, fitted, cfg)
        for p in GRAPHS:
            os.chmod(tmp[p], 0o644)  # temporaries are made 0600; these are ordinary shareable files
            os.replace(tmp[p], finals[p])
    n_classes = model.config.n_classes
    flops = graph_gflop(model)
    return {
        "format": FORMAT,
        "graphs": {p: {**_graph_entry(f), "gflop_per_sample": flops[p]} for p, f in finals.items()},
        "inputs": input_specs(),
        "tokens": token_specs(model.config.n_tokens, model.config.d),
        "outputs": {"logits": {"shape": ["batch", n_classes], "dtype": "float32"},
                    "ood": {"shape": ["batch"], "dtype": "float32", "graphs": list(MODALITIES)}},
        "modalities": list(MODALITIES),
        "class_names": list(CLASS_NAMES),
        "plausibility": {"config": to_data(cfg), "distribution": distribution, "ood": ood},
        "parity": parity,
        "size_bytes": sum(f.stat().st_size for f in finals.values()),
    }


def export_run(
    run_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "export",
    int8: bool = False,
    name: str = "rfsense",
    runs_root: str | os.PathLike[str] = "runs",
    plausibility: PlausibilityConfig | None = None,
) -> dict[str, Any]:
    """Export a run's best checkpoint to OUT/<name>.onnx, its encoders and OUT/<name>.json; returns the manifest.

    The OOD fit and the distribution statistics come from the run's training rows, the thresholds from its
    validation slice (the rows `fit` held out: same seed, same fraction).

    Raises:
        ModelFileError: no run, or the exported graphs disagree with PyTorch beyond rtol 1e-4 / atol 1e-5.
    """
    run_dir = resolve_run(Path(run_dir) if run_dir else find_newest_run(runs_root))
    model, cfg = load_run_model(run_dir, "best")
    pack = open_run_pack(cfg)
    train, test = pack.split("train"), pack.split("test")
    train_rows, val_rows = _split_rows(train.usable.any(axis=1), len(train), cfg.train.val_fraction, cfg.train.seed)
    _logger.info("exporting %s -> %s", run_dir, Path(out) / f"{name}.onnx")
    manifest = export_model(model, out, name, train, test, train_rows, val_rows, plausibility)
    results_path = run_dir / "results.json"
    metrics = json.loads(results_path.read_text()) if results_path.is_file() else {}
    manifest.update({
        "model_file": graph_file(name, "fusion"),
        "preprocessing": to_data(cfg.data.preprocessing),
        "health": to_data(cfg.data.quality),
        # each modality's raw-domain std over the training split: the stress suite's gaussian noise scale s(m)
        "raw_std": pack.raw_std,
        "run": {"path": str(run_dir), "name": cfg.name, "model": to_data(model.config)},
        "metrics": {k: metrics.get(k) for k in ("subsets", "n", "geometry") if k in metrics},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    })
    path = manifest_path_for(Path(out) / graph_file(name, "fusion"))
    write_manifest(path, manifest)
    if int8:
        manifest["int8"] = _export_int8(Path(out), manifest, test, name)
        write_manifest(path, manifest)
    return manifest


# ----------------------------------------------------------------------------------------- int8


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


def _ood_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes only the ``ood`` output needs: kept in fp32, since its threshold was set in fp32."""
    producer = {o: n for n in model.graph.node for o in n.output}

    def ancestors(output: str) -> set[str]:
        seen: set[str] = set()
        stack = [output]
        while stack:
            node = producer.get(stack.pop())
            if node is not None and node.name not in seen:
                seen.add(node.name)
                stack.extend(node.input)
        return seen

    outputs = [o.name for o in model.graph.output]
    if "ood" not in outputs:
        return []
    return sorted(ancestors("ood") - set().union(*(ancestors(o) for o in outputs if o != "ood")))


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = int8.with_name(int8.stem + ".pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        _drop_initializer_value_info(pre)
        # MatMul/Gemm only: dynamic int8 Conv is slower than fp32 on x86 (reference notes §1.6).
        quantize_dynamic(str(pre), str(int8), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8,
                         nodes_to_exclude=_ood_nodes(onnx.load(str(pre))))
    finally:
        pre.unlink(missing_ok=True)


def _ort_accuracy(graphs: _Graphs, split: Any, batch_size: int = 32) -> tuple[float, np.ndarray]:
    """Top-1 accuracy with every usable modality present, and the predictions (for agreement)."""
    rows = np.flatnonzero(split.usable.any(axis=1))
    preds = [graphs.logits(_rows_of(split, r), split.usable[r].copy()).argmax(1)
             for r in (rows[s : s + batch_size] for s in range(0, len(rows), batch_size))]
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return float((pred == split.labels[rows]).mean()) if len(rows) else float("nan"), pred


def _latency_ms(graphs: _Graphs, n: int = 50) -> dict[str, float]:
    x = {m: np.zeros((1, *SHAPES[m]), dtype=np.float32) for m in MODALITIES}
    present = np.ones((1, 3), dtype=bool)
    for _ in range(5):
        graphs.logits(x, present)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        graphs.logits(x, present)
        times.append(1000 * (time.perf_counter() - t0))
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}


def _export_int8(out: Path, manifest: dict[str, Any], test: Any, name: str) -> dict[str, Any]:
    """Dynamic int8 (MatMul/Gemm; the OOD score stays fp32) beside fp32: accuracy, top-1 agreement, size, latency."""
    qname = f"{name}-int8"
    fp32 = {p: out / manifest["graphs"][p]["file"] for p in GRAPHS}
    q = {p: out / graph_file(qname, p) for p in GRAPHS}
    with contextlib.ExitStack() as stack:
        tmp = {p: stack.enter_context(locked_temporary(q[p])) for p in GRAPHS}
        for p in GRAPHS:
            _quantize(fp32[p], tmp[p])
        for p in GRAPHS:
            os.chmod(tmp[p], 0o644)
            os.replace(tmp[p], q[p])
    _, n_tokens, d = manifest["tokens"]["shape"]
    g32, g8 = _Graphs(fp32, n_tokens, d), _Graphs(q, n_tokens, d)
    acc32, p32 = _ort_accuracy(g32, test)
    acc8, p8 = _ort_accuracy(g8, test)
    size = lambda files: sum(f.stat().st_size for f in files.values())  # noqa: E731
    report = {
        "file": q["fusion"].name,
        "fp32": {"accuracy": acc32, "size_bytes": size(fp32), "latency_ms_b1": _latency_ms(g32)},
        "int8": {"accuracy": acc8, "size_bytes": size(q), "latency_ms_b1": _latency_ms(g8)},
        "top1_agreement": float((p32 == p8).mean()) if len(p32) else float("nan"),
        "n_test": int(len(p32)),
    }
    # fp32 parity does not carry over: int8 is judged by accuracy and agreement (reference notes §1.4).
    qman = dict(manifest, model_file=q["fusion"].name, size_bytes=size(q), quantization=to_data(report),
                graphs={p: {**manifest["graphs"][p], **_graph_entry(f)} for p, f in q.items()},
                parity={"ok": None, "note": "int8: see quantization.top1_agreement and accuracy"})
    qman.pop("int8", None)
    write_manifest(manifest_path_for(q["fusion"]), qman)
    return to_data(report)
