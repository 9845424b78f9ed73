"""`Runtime.predict` after the speed work against the pipeline as it was before it: the former quality rule
(float64 time-last copies), scipy's sosfiltfilt, np.partition for the mmWave clip, one stream after another.

On physically plausible streams with the plausibility checks off (the former runtime had none), statuses,
reasons and probabilities must agree within float tolerance, whatever faults the streams carry.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import signal

from rfsense.data.preprocess import PreprocessConfig, hampel, preprocess
from rfsense.data.preprocess.kernels import butter_lowpass
from rfsense.deploy import Runtime, softmax
from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES
from tests.data.quality_reference import assess_reference
from tests.deploy.conftest import toy_logits


def _former_preprocess(m: str, x: np.ndarray) -> np.ndarray:
    cfg = PreprocessConfig()
    if m == "wifi":
        w = cfg.wifi
        y = hampel(x.astype(np.float64), w.hampel_window, w.hampel_sigmas)  # held to a loop in test_preprocess
        return signal.sosfiltfilt(butter_lowpass(w.order, w.lowpass_hz, w.fs), y, axis=-1).astype(np.float32)
    if m == "mmwave":
        out = np.empty(x.shape, np.float32)
        kth = int(round(cfg.mmwave.clip_percentile / 100 * (out[0].size - 1)))
        for b in range(len(x)):
            y = out[b]
            y[...] = x[b]
            a = np.log1p(np.abs(y))
            np.copysign(a, y, out=y)
            np.minimum(y, np.partition(y.ravel(), kth)[kth], out=y)
        return out
    return preprocess(m, x.astype(np.float64), cfg)


def _former_predict(raw: dict[str, np.ndarray], n: int) -> tuple[list[dict[str, str]], np.ndarray]:
    present = np.zeros((n, 3), bool)
    feeds, statuses = {}, [{} for _ in range(n)]
    for j, m in enumerate(MODALITIES):
        a = assess_reference(m, raw[m])
        present[:, j] = a.usable
        for i in range(n):
            statuses[i][m] = (str(a.status[i]), a.reasons[i])
        feeds[m] = np.zeros((n, *SHAPES[m]), np.float32)
        if a.usable.any():
            feeds[m][a.usable] = _former_preprocess(m, a.values[a.usable])
    return statuses, softmax(toy_logits(feeds, present))


@pytest.mark.parametrize("parallel", [True, False])
def test_predict_equals_the_former_pipeline(toy_model, streams, parallel):
    rt = Runtime(toy_model.path, providers="cpu", threads=2, parallel=parallel)
    rt.plausibility.config = dataclasses.replace(rt.plausibility.config, distribution=False, ood=False)
    raw = streams(6, seed=11)
    raw["wifi"][1, 5, 200:230] = np.nan  # repaired
    raw["wifi"][2, 90:] = 0.0  # one receiver: degraded
    raw["rfid"][3] = 2.0  # flat: failed
    raw["mmwave"][4, 3] = np.nan  # one frame: repaired
    raw["mmwave"][5] = 0.0  # dead: failed
    raw["rfid"][5, :, ::3] = np.nan  # too many missing reads: failed
    raw["wifi"][0, 7, 500] = 60.0  # a spike the Hampel filter removes
    statuses, probs = _former_predict(raw, 6)
    preds = rt.predict(raw, top_k=N_CLASSES, batch_size=4)
    for i, p in enumerate(preds):
        assert {m: (v.status, v.reasons) for m, v in p.verdicts.items()} == statuses[i]
        if p.status == "ok":
            np.testing.assert_allclose(p.probs, probs[i], rtol=1e-5, atol=1e-7)
        else:
            assert not any(s == "ok" for s, _ in statuses[i].values())
    assert {p.verdicts["wifi"].status for p in preds} >= {"ok", "repaired", "degraded"}
