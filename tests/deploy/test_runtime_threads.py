"""How the runtime spreads a batch over the cores: intra-op threads per graph (by the manifest's GFLOP per
sample) and concurrent streams; none of it changes an answer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rfsense.deploy import Runtime
from rfsense.deploy.manifest import GRAPHS, read_manifest
from rfsense.deploy.runtime import _graph_gflop, _graph_threads, _stream_order
from rfsense.errors import ModelFileError

# the edge model's graphs (rfsense export on the quick start): the WiFi encoder does most of the work
EDGE = {"fusion": 0.0287, "mmwave": 0.0054, "wifi": 0.1009, "rfid": 0.0066}


def _manifest(flops: dict[str, float] | None) -> dict:
    return {"graphs": {p: {"file": f"m.{p}.onnx", **({"gflop_per_sample": flops[p]} if flops else {})} for p in GRAPHS}}


@pytest.mark.parametrize("threads", [2, 4, None])
def test_small_graphs_run_on_one_thread(threads):
    got = _graph_threads(_graph_gflop(_manifest(EDGE)), threads)
    assert got == {"fusion": 1, "mmwave": 1, "wifi": threads, "rfid": 1}


def test_graphs_of_similar_cost_keep_the_threads_asked_for():
    assert _graph_threads(_graph_gflop(_manifest({"fusion": 0.01, "mmwave": 0.2, "wifi": 0.15, "rfid": 0.02})), 2) == \
        {"fusion": 1, "mmwave": 2, "wifi": 2, "rfid": 1}


def test_streams_start_costliest_encoder_first_then_largest_first():
    assert _stream_order(EDGE) == ["wifi", "mmwave", "rfid"]  # rfid's encoder does more than mmwave's, but is tiny
    assert _stream_order({"fusion": 0.1, "mmwave": 0.2, "wifi": 0.1, "rfid": 0.3}) == ["rfid", "mmwave", "wifi"]
    assert _stream_order({}) == ["mmwave", "wifi", "rfid"]  # an export without counts: by size alone


def test_an_export_without_counts_keeps_the_threads_asked_for():
    assert _graph_threads(_graph_gflop(_manifest(None)), 3) == dict.fromkeys(GRAPHS, 3)


def test_runtime_sessions_get_the_chosen_threads_and_answer_the_same(toy_model, streams):
    man = json.loads(toy_model.manifest_path.read_text())
    for p, v in EDGE.items():
        man["graphs"][p]["gflop_per_sample"] = v
    toy_model.manifest_path.write_text(json.dumps(man))
    counted = Runtime(toy_model.path, providers="cpu", threads=2)
    assert counted.graph_threads == {"fusion": 1, "mmwave": 1, "wifi": 2, "rfid": 1}
    assert counted._order == ["wifi", "mmwave", "rfid"]  # the costliest encoder first, then the largest stream
    man["graphs"] = {p: {k: v for k, v in g.items() if k != "gflop_per_sample"} for p, g in man["graphs"].items()}
    toy_model.manifest_path.write_text(json.dumps(man))
    plain = Runtime(toy_model.path, providers="cpu", threads=2, parallel=False)
    assert plain.graph_threads == dict.fromkeys(GRAPHS, 2)
    raw = streams(4)
    for a, b in zip(counted.predict(raw), plain.predict(raw), strict=True):
        assert (a.status, a.modalities_used, a.reason) == (b.status, b.modalities_used, b.reason)
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [-1.0, "fast", True, float("inf")])
def test_a_malformed_count_is_refused_with_its_key(toy_model, bad):
    man = json.loads(toy_model.manifest_path.read_text())
    man["graphs"]["wifi"]["gflop_per_sample"] = bad
    toy_model.manifest_path.write_text(json.dumps(man).replace("Infinity", "1e999"))
    with pytest.raises(ModelFileError, match=r"graphs\.wifi\.gflop_per_sample must be a non-negative number"):
        read_manifest(toy_model.manifest_path)


@pytest.mark.parametrize("masked", [[], [1], [0, 2], [0, 1, 2]])
def test_the_first_streams_screen_beside_its_encoder_changes_no_answer(toy_model, streams, masked):
    """In parallel the first stream's screen runs beside its encoder, which then sees every row (and runs again on
    the rows the screen passed when it masks some): the same answers, bit for bit, as one stream after another."""
    together = Runtime(toy_model.path, providers="cpu", threads=2)
    apart = Runtime(toy_model.path, providers="cpu", threads=2, parallel=False)
    first = together._order[0]
    raw = streams(3, seed=11)
    raw[first] = np.array(raw[first], dtype=np.float64)
    raw[first][masked] *= 1000.0  # the wrong scale: the distribution check masks these rows
    for a, b in zip(together.predict(raw), apart.predict(raw), strict=True):
        assert (a.status, a.modalities_used, a.reason) == (b.status, b.modalities_used, b.reason)
        assert {m: (v.status, v.reasons, v.ood) for m, v in a.verdicts.items()} == \
            {m: (v.status, v.reasons, v.ood) for m, v in b.verdicts.items()}
        assert (a.probs is None and b.probs is None) or np.array_equal(a.probs, b.probs)
    got = together.predict(raw)
    assert [first in p.modalities_used for p in got] == [i not in masked for i in range(3)]
    assert all(f"{first}: distribution score " in got[i].verdicts[first].reasons[-1] for i in masked)
