"""The runtime on an rfsense-onnx/2 export (toy): absent encoders cost nothing, the steps of the public API
compose to `predict`, the fusion ignores absent tokens, and the plausibility checks mask with a reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rfsense.deploy import Runtime, softmax
from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES
from tests.deploy.conftest import OOD_THRESHOLD, TOKENS, toy_ood


class _Spy:
    """Wraps an onnxruntime session and records the batch size of every run."""

    def __init__(self, session) -> None:
        self.session, self.calls = session, []

    def run(self, names, feeds):
        self.calls.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.fixture
def rt(toy_model) -> Runtime:
    return Runtime(toy_model.path, providers="cpu", threads=1)


def _spy_all(rt: Runtime) -> dict[str, _Spy]:
    spies = {p: _Spy(s) for p, s in rt.sessions.items()}
    rt.sessions.update(spies)
    rt.session = spies["fusion"]
    return spies


def _without(rt: Runtime, **switches) -> None:
    rt.plausibility.config = dataclasses.replace(rt.plausibility.config, **switches)


def test_absent_encoders_are_not_run(rt, streams):
    spies = _spy_all(rt)
    raw = streams(3)
    rt.predict({"wifi": raw["wifi"]})
    assert spies["wifi"].calls == [3] and spies["fusion"].calls == [3]
    assert spies["mmwave"].calls == [] and spies["rfid"].calls == []
    # Mixed presence: each encoder sees only the rows that have its modality.
    raw["mmwave"][[0, 2]] = 0.0  # dead: failed in two of three samples
    raw["rfid"][:] = 4.0  # flat everywhere
    spies = _spy_all(rt)
    preds = rt.predict(raw)
    assert spies["mmwave"].calls == [1] and spies["wifi"].calls == [3] and spies["rfid"].calls == []
    assert [p.modalities_used for p in preds] == [["wifi"], ["mmwave", "wifi"], ["wifi"]]
    spies = _spy_all(rt)
    feeds = {m: np.zeros((2, *SHAPES[m]), np.float32) for m in MODALITIES}
    rt.logits(feeds, np.array([[False, True, False], [False, True, True]]))
    assert spies["mmwave"].calls == [] and spies["wifi"].calls == [2] and spies["rfid"].calls == [1]


def test_the_steps_compose_to_predict(rt, streams):
    """check -> prepare -> screen -> encode -> fuse, the stress suite's path, gives predict's probabilities."""
    raw = streams(3, seed=2)
    raw["rfid"][1] = 4.0
    arrays, present, verdicts = rt.check(raw)
    tokens = {}
    for j, m in enumerate(MODALITIES):
        rows = np.flatnonzero(present[:, j])
        feeds = rt.prepare(m, arrays[m][rows])
        assert feeds.dtype == np.float32 and rt.screen(m, feeds) == [None] * len(rows)
        tok, ood = rt.encode(m, feeds)
        assert tok.shape == (len(rows), *TOKENS) and ood.shape == (len(rows),)
        np.testing.assert_allclose(ood, toy_ood(m, feeds), rtol=1e-5, atol=1e-4)
        tokens[m] = np.zeros((3, *TOKENS), np.float32)
        tokens[m][rows] = tok
    probs = softmax(rt.fuse(tokens, present))
    preds = rt.predict(raw, top_k=N_CLASSES)
    for i, p in enumerate(preds):
        np.testing.assert_allclose(p.probs, probs[i], rtol=1e-6, atol=1e-9)
        assert p.modalities_used == [m for j, m in enumerate(MODALITIES) if present[i, j]]


def test_mixed_presence_batch_equals_one_sample_at_a_time(rt, streams):
    raw = streams(4, seed=3)
    raw["mmwave"][0] = 0.0
    raw["wifi"][1] = np.nan
    raw["rfid"][2] = 1.0
    together = rt.predict(raw, top_k=N_CLASSES)
    for i in range(4):
        (alone,) = rt.predict({m: v[i : i + 1] for m, v in raw.items()}, top_k=N_CLASSES)
        assert alone.modalities_used == together[i].modalities_used
        np.testing.assert_allclose(alone.probs, together[i].probs, rtol=1e-6, atol=1e-9)
        assert {m: v.ood for m, v in alone.verdicts.items()} == pytest.approx(
            {m: v.ood for m, v in together[i].verdicts.items()})


def test_fusion_ignores_what_absent_tokens_hold(rt):
    rng = np.random.default_rng(0)
    present = np.array([[True, False, True], [False, True, False], [True, True, True]])
    tokens = {m: rng.normal(size=(3, *TOKENS)).astype(np.float32) for m in MODALITIES}
    clean = {m: np.where(present[:, j, None, None], t, 0.0).astype(np.float32) for j, (m, t) in enumerate(tokens.items())}
    garbage = {m: np.where(present[:, j, None, None], t, np.nan).astype(np.float32) for j, (m, t) in enumerate(tokens.items())}
    np.testing.assert_array_equal(rt.fuse(clean, present), rt.fuse(garbage, present))
    no_wifi = present & np.array([True, False, True])  # absent in every row: None stands for its tokens
    np.testing.assert_array_equal(rt.fuse({**garbage, "wifi": None}, no_wifi), rt.fuse(garbage, no_wifi))


def test_ood_score_is_reported_and_an_outlier_is_masked(rt, streams, toy_reference):
    _without(rt, distribution=False)  # isolate the OOD check
    raw = streams(2)
    raw["wifi"][1] += 8.0  # level 18: plausible amplitudes, but 8 from the toy's centre (threshold 5)
    preds = rt.predict(raw, top_k=N_CLASSES)
    feeds = {m: rt.prepare(m, raw[m]) for m in MODALITIES}
    want = toy_ood("wifi", feeds["wifi"])
    # (the toy's mean over 270,000 values runs in float32 inside the graph)
    assert preds[0].verdicts["wifi"].status == "ok" and preds[0].verdicts["wifi"].ood == pytest.approx(want[0], abs=1e-4)
    v = preds[1].verdicts["wifi"]
    assert v.status == "implausible" and v.ood == pytest.approx(want[1], abs=1e-4) and want[1] > OOD_THRESHOLD["wifi"]
    want[1] = v.ood
    assert v.reasons == [f"wifi: out of distribution: score {want[1]:.3g} above {OOD_THRESHOLD['wifi']:.3g} (Mahalanobis "
                         "distance of its embedding to the nearest class mean; threshold from held-out training rows)"]
    assert preds[1].modalities_used == ["mmwave", "rfid"] and "out of distribution" in preds[1].reason
    present = np.array([[True, True, True], [True, False, True]])
    expected = softmax(toy_reference(feeds, present))
    for i in range(2):
        np.testing.assert_allclose(preds[i].probs, expected[i], rtol=1e-5, atol=1e-7)
    _without(rt, ood=False)
    assert rt.predict(raw)[1].verdicts["wifi"].status == "ok"


def test_ood_score_does_not_depend_on_other_streams_or_rows(rt, streams):
    """Mask invariance of the score: a stream's score is its own, whatever else is in the sample or the batch."""
    raw = streams(3, seed=5)
    alone = rt.predict({"rfid": raw["rfid"][:1]})[0].verdicts["rfid"].ood
    with_others = rt.predict(raw)[0].verdicts["rfid"].ood
    other = streams(3, seed=6)
    other["rfid"][0] = raw["rfid"][0]
    other["mmwave"][0] = np.nan  # another modality failing changes nothing either
    in_other_batch = rt.predict(other)[0].verdicts["rfid"].ood
    assert alone == with_others == in_other_batch and alone is not None


@pytest.mark.parametrize("modality, scale", [("wifi", 1000.0), ("wifi", 1e-3), ("mmwave", 1000.0), ("rfid", 1e-3)])
def test_wrong_scale_fails_the_distribution_check(rt, streams, modality, scale):
    _without(rt, ood=False)
    raw = streams(1)
    raw[modality] = raw[modality] * scale
    (p,) = rt.predict(raw)
    v = p.verdicts[modality]
    assert v.status == "implausible" and modality not in p.modalities_used
    assert f"{modality}: distribution score " in v.reasons[-1]
    _without(rt, distribution=False)
    assert rt.predict(raw)[0].verdicts[modality].status == "ok"


def test_clean_streams_pass_every_check(rt, streams):
    for seed in range(5):
        preds = rt.predict(streams(4, seed=20 + seed))
        assert all(p.reason == "" and p.modalities_used == list(MODALITIES) for p in preds)
        assert all(v.ood is not None and v.ood < OOD_THRESHOLD[m] for p in preds for m, v in p.verdicts.items())
