"""Runtime: torch-free import, manifest/sha256 checks, provider choice, masking, no-prediction, formatting,
and property-based robustness against arbitrary input arrays."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rfsense.data.preprocess import preprocess
from rfsense.data.quality import STATUSES, USABLE, QualityConfig
from rfsense.deploy import (
    Prediction,
    ProviderError,
    Runtime,
    format_predictions,
    manifest_path_for,
    softmax,
)
from rfsense.deploy import session as session_mod
from rfsense.errors import ConfigError, DataError, ModelFileError
from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES

REPO = Path(__file__).resolve().parents[2]


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _reference_probs(raw: dict[str, np.ndarray | None], present: np.ndarray, toy_logits) -> np.ndarray:
    """Expected probabilities: shared preprocessing of the raw streams, absent ones zero, toy graph in numpy."""
    n = len(present)
    feeds = {}
    for j, m in enumerate(MODALITIES):
        feeds[m] = np.zeros((n, *SHAPES[m]), dtype=np.float32)
        if raw.get(m) is not None and present[:, j].any():
            y = preprocess(m, raw[m])
            feeds[m][present[:, j]] = y[present[:, j]]
    return softmax(toy_logits(feeds, present))


# ------------------------------------------------------------------------------------ torch-free import


def test_runtime_imports_without_torch():
    # scipy >= 1.15 looks torch up in sys.modules and calls getattr on whatever it finds, so the usual
    # `sys.modules["torch"] = None` trick crashes scipy itself; an import hook that refuses torch is the
    # same proof without that side effect.
    proc = _run_python(
        """
        import importlib.abc, sys
        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is not allowed here: " + name)
                return None
        sys.meta_path.insert(0, NoTorch())
        import rfsense.deploy.runtime, rfsense.deploy
        from rfsense.deploy import Runtime, check_streams
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
        assert not loaded, loaded
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# ------------------------------------------------------------------------------------ manifest and sha


def test_manifest_path_for():
    assert manifest_path_for("export/rfsense.onnx") == Path("export/rfsense.json")
    assert manifest_path_for(Path("/a/b/model.v2.onnx")) == Path("/a/b/model.v2.json")


def test_loads_and_reports_cpu(toy_model):
    rt = Runtime(toy_model.path, providers="cpu", threads=1)
    assert rt.providers == ["CPUExecutionProvider"]
    assert rt.n_classes == N_CLASSES and rt.class_names == toy_model.manifest["class_names"]
    assert rt.session.get_session_options().intra_op_num_threads == 1
    assert rt.health == QualityConfig()


@pytest.mark.parametrize("part", ["fusion", *MODALITIES])
def test_sha256_mismatch_of_any_graph_is_refused_before_anything_runs(toy_model, part, monkeypatch):
    path = toy_model.path.parent / toy_model.manifest["graphs"][part]["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # flip one bit of the last byte
    path.write_bytes(bytes(data))
    built = []
    monkeypatch.setattr("rfsense.deploy.runtime.make_session", lambda *a, **k: built.append(a))
    with pytest.raises(ModelFileError) as info:
        Runtime(toy_model.path, providers="cpu")
    msg = str(info.value)
    import hashlib

    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    assert toy_model.manifest["graphs"][part]["sha256"] in msg
    assert str(path) in msg and "re-export" in msg
    assert built == [], "no session may be built before every graph is verified"


def test_missing_encoder_graph_is_refused(toy_model):
    (toy_model.path.parent / toy_model.manifest["graphs"]["wifi"]["file"]).unlink()
    with pytest.raises(ModelFileError, match=r"toy\.wifi\.onnx not found; its manifest .* lists it"):
        Runtime(toy_model.path, providers="cpu")


def test_v1_export_still_loads_and_predicts(toy_model_v1, streams, toy_reference):
    """An rfsense-onnx/1 export (one graph, no OOD output, no plausibility statistics) keeps working."""
    rt = Runtime(toy_model_v1.path, providers="cpu", threads=1)
    assert rt.format == "rfsense-onnx/1" and rt.plausibility is None and list(rt.sessions) == ["model"]
    raw = streams(3)
    raw["rfid"][1] = 4.0  # flat: masked
    preds = rt.predict(raw, top_k=N_CLASSES)
    present = np.array([[True, True, True], [True, True, False], [True, True, True]])
    expected = _reference_probs(raw, present, toy_reference)
    for i, p in enumerate(preds):
        np.testing.assert_allclose(p.probs, expected[i], rtol=1e-5, atol=1e-7)
        assert all(v.ood is None for v in p.verdicts.values())
    with pytest.raises(ModelFileError, match="needs an rfsense-onnx/2 export"):
        rt.encode("wifi", np.zeros((1, *SHAPES["wifi"]), np.float32))
    data = bytearray(toy_model_v1.path.read_bytes())
    data[-1] ^= 0x01
    toy_model_v1.path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        Runtime(toy_model_v1.path, providers="cpu")


def test_missing_manifest(toy_model):
    toy_model.manifest_path.unlink()
    with pytest.raises(ModelFileError, match=r"manifest .*toy\.json not found"):
        Runtime(toy_model.path, providers="cpu")


def test_missing_model(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        Runtime(tmp_path / "nope.onnx")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: "{not json", "not valid JSON"),
        (lambda m: json.dumps([1, 2]), "expected a JSON object"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "class_names"}), r"missing key\(s\) class_names"),
        (lambda m: json.dumps({**m, "format": "rfsense-onnx/0"}), "format is 'rfsense-onnx/0'"),
        (lambda m: json.dumps({**m, "modalities": ["wifi", "mmwave", "rfid"]}), "in that order"),
        (lambda m: json.dumps({**m, "class_names": m["class_names"][:54]}), "list of 55 strings"),
        (lambda m: json.dumps({**m, "health": {"flat_sd": 1}}), "unknown key 'health.flat_sd'"),
        (lambda m: json.dumps({**m, "preprocessing": {"wifi": {"lowpas_hz": 1}}}), "unknown key 'preprocessing.wifi.lowpas_hz'"),
        (lambda m: json.dumps({**m, "graphs": {**m["graphs"], "wifi": {**m["graphs"]["wifi"], "sha256": "abc"}}}),
         "graphs.wifi.sha256 must be 64 hex digits"),
        (lambda m: json.dumps({**m, "graphs": {**m["graphs"], "rfid": {**m["graphs"]["rfid"], "file": "../x.onnx"}}}),
         "graphs.rfid.file must be a file name beside the manifest"),
        (lambda m: json.dumps({k: v for k, v in m.items() if k != "graphs"}), r"missing key\(s\) graphs"),
        (lambda m: json.dumps({**m, "plausibility": {**m["plausibility"], "ood": {"wifi": {"threshold": -1}}}}),
         r"plausibility.ood.wifi.threshold must be a positive number"),
        (lambda m: json.dumps({**m, "plausibility": {**m["plausibility"], "config": {"ood_quantil": 0.9}}}),
         "unknown key 'plausibility.config.ood_quantil'"),
        (lambda m: json.dumps({**m, "inputs": {**m["inputs"], "wifi": {"shape": ["batch", 270, 999], "dtype": "float32"}}}),
         r"inputs.wifi.shape is \['batch', 270, 999\]; expected \['batch', 270, 1000\]"),
    ],
)
def test_malformed_manifest_is_refused(toy_model, edit, match):
    toy_model.manifest_path.write_text(edit(toy_model.manifest))
    with pytest.raises(ModelFileError, match=match):
        Runtime(toy_model.path, providers="cpu")


def test_bad_arguments(toy_model):
    with pytest.raises(ConfigError, match="auto, cpu, cuda"):
        Runtime(toy_model.path, providers="gpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threads"):
        Runtime(toy_model.path, threads=0)


# ------------------------------------------------------------------------------------------ providers


def test_auto_on_this_cpu_machine_is_quiet_and_cpu(toy_model):
    proc = _run_python(
        f"""
        from rfsense.deploy import Runtime
        rt = Runtime({str(toy_model.path)!r}, providers="auto")
        print(rt.providers)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['CPUExecutionProvider']"
    assert proc.stderr == "", "onnxruntime must not print CUDA load errors"


@pytest.mark.cpu_only
def test_cuda_on_this_cpu_machine_is_a_clear_error(toy_model, capfd):
    usable, why = session_mod.cuda_device_usable()
    if usable:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(ProviderError, match="CUDA was requested but cannot be used on this machine") as info:
        Runtime(toy_model.path, providers="cuda")
    assert why in str(info.value) and "'cpu'" in str(info.value)
    assert capfd.readouterr().err == ""


@pytest.mark.cpu_only
def test_cuda_that_falls_back_is_detected_without_spam(toy_model, monkeypatch, capfd, caplog):
    # Pretend the probe found a GPU: onnxruntime-gpu then really tries CUDA on this CPU-only box and
    # falls back; the runtime must notice from session.get_providers() and keep stderr clean.
    monkeypatch.setattr(session_mod, "cuda_device_usable", lambda: (True, ""))
    if "CUDAExecutionProvider" not in session_mod.ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider to try")
    with caplog.at_level(logging.WARNING, logger="rfsense.deploy.session"):
        rt = Runtime(toy_model.path, providers="auto")
    if "CUDAExecutionProvider" in rt.providers:
        pytest.skip("CUDA really works here")
    assert rt.providers == ["CPUExecutionProvider"]
    assert "fell back" in caplog.text
    with pytest.raises(ProviderError, match="fell back"):
        Runtime(toy_model.path, providers="cuda")
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------------- predictions


def test_clean_prediction_matches_reference(shared_runtime, streams, toy_reference):
    raw = streams(3)
    preds = shared_runtime.predict(raw, top_k=N_CLASSES)
    expected = _reference_probs(raw, np.ones((3, 3), bool), toy_reference)
    for i, p in enumerate(preds):
        assert p.status == "ok" and p.reason == "" and p.modalities_used == list(MODALITIES)
        got = np.zeros(N_CLASSES)
        for c, name, prob in p.top:
            got[c] = prob
            assert name == shared_runtime.class_names[c]
        np.testing.assert_allclose(got, expected[i], rtol=1e-5, atol=1e-7)
        assert [t[2] for t in p.top] == sorted((t[2] for t in p.top), reverse=True)


def test_failed_modality_is_masked(shared_runtime, streams, toy_reference):
    raw = streams(2)
    raw["rfid"][0] = 4.0  # flat: fails its health check in sample 0 only
    raw["wifi"] = raw["wifi"].astype(np.float32)
    preds = shared_runtime.predict(raw, top_k=N_CLASSES)
    present = np.array([[True, True, False], [True, True, True]])
    expected = _reference_probs(raw, present, toy_reference)
    wrong = _reference_probs(raw, np.ones((2, 3), bool), toy_reference)  # what no masking would give
    assert preds[0].modalities_used == ["mmwave", "wifi"]
    assert preds[0].verdicts["rfid"].status == "failed"
    assert "rfid: flat line on 23/23 tags" in preds[0].reason
    for i, p in enumerate(preds):
        np.testing.assert_allclose(p.probs, expected[i], rtol=1e-5, atol=1e-7)
    assert not np.allclose(preds[0].probs, wrong[0], atol=1e-3), "the test must be able to see the mask"
    # The presence flag of rfid adds 3 to class 30's logit; masked, that boost is gone.
    assert preds[0].probs[30] < wrong[0][30] / 5


def _spy_logits(rt: Runtime, monkeypatch) -> list[int]:
    """Batch sizes of the fusion graph's calls (the last step of every prediction)."""
    calls: list[int] = []
    real = rt.fuse

    def spy(tokens, present):
        calls.append(len(present))
        assert np.asarray(present).any(axis=1).all(), "a sample without modality reached the model"
        return real(tokens, present)

    monkeypatch.setattr(rt, "fuse", spy)
    return calls


def test_all_absent_is_no_prediction_without_calling_the_model(shared_runtime, monkeypatch):
    calls = _spy_logits(shared_runtime, monkeypatch)
    for inputs in ({}, {"mmwave": None, "wifi": None, "rfid": None}):
        (p,) = shared_runtime.predict(inputs)
        assert p.status == "no_prediction" and p.top == [] and p.modalities_used == [] and p.probs is None
        assert p.reason.startswith("no usable modality: mmwave: absent")
    assert calls == []


def test_all_failed_is_no_prediction(shared_runtime, streams, monkeypatch):
    calls = _spy_logits(shared_runtime, monkeypatch)
    raw = streams(3)
    raw["mmwave"][:] = np.nan
    raw["wifi"][:] = 0.0
    raw["rfid"][0] = 1.0
    raw["rfid"][2] = 1.0
    preds = shared_runtime.predict(raw)
    assert [p.status for p in preds] == ["no_prediction", "ok", "no_prediction"]
    assert "mmwave: 100% of values are NaN/Inf" in preds[0].reason
    assert "wifi: all values are zero" in preds[0].reason
    assert preds[1].modalities_used == ["rfid"]
    assert calls == [1], "only the sample with a usable stream goes to the model"


def test_batches_give_the_same_answer(shared_runtime, streams):
    raw = streams(5, seed=4)
    raw["wifi"][3, :, 10:20] = np.nan
    a = shared_runtime.predict(raw, top_k=3, batch_size=2)
    b = shared_runtime.predict(raw, top_k=3, batch_size=16)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    assert a[3].verdicts["wifi"].status == "repaired" and "repaired" in a[3].reason


def test_mmwave_file_layout_and_dtypes(shared_runtime, streams):
    raw = streams(2)
    a = shared_runtime.predict({"mmwave": raw["mmwave"][:, None], "rfid": raw["rfid"].astype(np.float16)})
    assert all(p.status == "ok" and p.modalities_used == ["mmwave", "rfid"] for p in a)


def test_wrong_shape_is_a_verdict_not_an_exception(shared_runtime, streams):
    raw = streams(2)
    raw["wifi"] = raw["wifi"][:, :90]  # one receiver only
    preds = shared_runtime.predict(raw)
    assert all(p.status == "ok" and p.modalities_used == ["mmwave", "rfid"] for p in preds)
    assert "wifi: array has shape (2, 90, 1000); expected (batch, 270, 1000)" in preds[0].reason


def test_batch_size_disagreement_raises(shared_runtime, streams):
    raw = streams(2)
    with pytest.raises(DataError, match="disagree on the batch size"):
        shared_runtime.predict({"wifi": raw["wifi"], "rfid": raw["rfid"][:1]})
    with pytest.raises(ValueError, match="top_k"):
        shared_runtime.predict(raw, top_k=0)


def test_top_k_is_capped(shared_runtime, streams):
    (p,) = shared_runtime.predict({"rfid": streams(1)["rfid"]}, top_k=500)
    assert len(p.top) == N_CLASSES
    assert abs(sum(t[2] for t in p.top) - 1.0) < 1e-9


def test_softmax_is_stable():
    p = softmax(np.array([[1e30, 0.0, -1e30], [np.nan, 0.0, 1.0], [np.inf, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    assert np.isnan(p[1]).all() and np.isnan(p[2]).all()
    np.testing.assert_allclose(p[3], [1 / 3] * 3)


# --------------------------------------------------------------------------------------- formatting


def test_format_predictions(shared_runtime, streams):
    raw = streams(2)
    raw["wifi"][1] = 0.0
    preds = shared_runtime.predict({**raw, "mmwave": None}, top_k=3)
    preds += shared_runtime.predict({})
    ids = ["03_12_15", "03_12_16", "empty"]

    table = format_predictions(preds, ids, "table")
    lines = table.splitlines()
    assert lines[0].split() == ["id", "prediction", "prob", "next", "used", "health"]
    assert "(no prediction)" in table and "R=absent W=failed RF=ok" in table
    assert "03_12_16: wifi: all values are zero" in table

    rows = [json.loads(line) for line in format_predictions(preds, ids, "jsonl").splitlines()]
    assert [r["id"] for r in rows] == ids and rows[2]["status"] == "no_prediction"
    assert rows[0]["top"][0]["name"] == preds[0].top[0][1] and len(rows[0]["top"]) == 3

    table_rows = list(csv.DictReader(io.StringIO(format_predictions(preds, ids, "csv"))))
    assert [r["id"] for r in table_rows] == ids
    assert table_rows[1]["wifi"] == "failed" and table_rows[1]["modalities_used"] == "rfid"
    assert table_rows[2]["top1_name"] == "" and table_rows[2]["status"] == "no_prediction"
    assert float(table_rows[0]["top1_prob"]) == pytest.approx(preds[0].top[0][2], rel=1e-5)

    with pytest.raises(ValueError, match="ids"):
        format_predictions(preds, ids[:2], "table")
    with pytest.raises(ValueError, match="unknown format"):
        format_predictions(preds, ids, "xml")  # type: ignore[arg-type]


def test_prediction_to_dict_is_json(shared_runtime, streams):
    (p,) = shared_runtime.predict({"wifi": streams(1)["wifi"]})
    d = json.loads(json.dumps(p.to_dict()))
    assert set(d) == {"status", "top", "modalities_used", "verdicts", "reason"}
    assert d["verdicts"]["mmwave"] == {"modality": "mmwave", "status": "absent", "reasons": ["mmwave: absent (no stream given)"],
                                       "ood": None}
    assert d["verdicts"]["wifi"]["ood"] == pytest.approx(p.verdicts["wifi"].ood) and d["verdicts"]["wifi"]["ood"] >= 0
    assert isinstance(p, Prediction)


# ---------------------------------------------------------------------------------- property-based


_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int16, np.uint8, bool]
_FAULTS = ["clean", "nan_few", "nan_many", "nan_burst", "inf", "huge", "tiny", "zeros", "constant", "saturated"]


@st.composite
def _stream(draw, modality: str, b: int):
    """None, a wrong-shaped array, or a (possibly faulty) correctly shaped array of any dtype."""
    kind = draw(st.sampled_from(["none", "wrong", "ok", "ok", "ok"]))
    if kind == "none":
        return None
    dtype = draw(st.sampled_from(_DTYPES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "wrong":
        shape = draw(st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple))
        shape = (b, *shape) if draw(st.booleans()) and shape != SHAPES[modality] else shape
        return (rng.normal(size=shape) * 10).astype(dtype)
    shape = (b, *SHAPES[modality])
    if modality == "mmwave" and draw(st.booleans()):
        shape = (b, 1, *SHAPES[modality])
    x = rng.normal(5.0, 2.0, size=shape)
    fault = draw(st.sampled_from(_FAULTS))
    frac = draw(st.floats(0.0, 1.0))
    with np.errstate(all="ignore"):
        if fault == "nan_few":
            x[rng.random(shape) < 0.05 * frac] = np.nan
        elif fault == "nan_many":
            x[rng.random(shape) < frac] = np.nan
        elif fault == "nan_burst":
            x[..., : max(1, int(frac * shape[-1]))] = np.nan
        elif fault == "inf":
            x[rng.random(shape) < 0.1 * frac] = rng.choice([np.inf, -np.inf])
        elif fault == "huge":
            x *= 10.0 ** draw(st.integers(5, 307))
        elif fault == "tiny":
            x *= 1e-300
        elif fault == "zeros":
            x[:] = 0.0
        elif fault == "constant":
            x[:] = draw(st.floats(-1e6, 1e6))
        elif fault == "saturated":
            x = np.minimum(x, np.quantile(x, 1 - frac))
        x = x.astype(dtype)  # float16 turns huge values into inf, ints wrap: all fair game
    return x


def _well_shaped(m: str, v) -> bool:
    return v is not None and (v.shape[1:] == SHAPES[m] or v.shape[1:] == (1, *SHAPES[m]))


@st.composite
def _inputs(draw):
    b = draw(st.integers(1, 2))
    return {m: draw(_stream(m, b)) for m in MODALITIES}, b


# RFSENSE_HYPOTHESIS_EXAMPLES=500 for a longer hunt; 40 keeps the default run to a few seconds.
@settings(max_examples=int(os.environ.get("RFSENSE_HYPOTHESIS_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_inputs())
def test_predict_never_crashes_and_never_returns_non_finite(shared_runtime, data):
    inputs, b = data
    try:
        preds = shared_runtime.predict(inputs, top_k=5, batch_size=2)
    except DataError as err:
        # Only when the inputs cannot agree on how many samples there are.
        assert "batch size" in str(err)
        event("DataError")
        return
    if any(_well_shaped(m, v) for m, v in inputs.items()):
        assert len(preds) == b
    for p in preds:
        event(p.status)
        for m, v in p.verdicts.items():
            event(f"{m} {v.status}")
        assert set(p.verdicts) == set(MODALITIES)
        assert p.status in ("ok", "no_prediction")
        usable = [m for m in MODALITIES if p.verdicts[m].status in USABLE]
        assert p.modalities_used == usable
        for m, v in p.verdicts.items():
            assert v.status in STATUSES
            if v.status in ("implausible", "failed", "absent"):
                assert v.reasons and all(r.startswith(f"{m}:") for r in v.reasons)
        if p.status == "ok":
            assert p.top and p.modalities_used
            probs = np.array([t[2] for t in p.top])
            assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
            assert np.isfinite(p.probs).all() and abs(p.probs.sum() - 1.0) < 1e-9
        else:
            assert p.top == [] and p.reason
        json.dumps(p.to_dict(), allow_nan=False)  # always serialisable, and no NaN sneaks into the JSON
