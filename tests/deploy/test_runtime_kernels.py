"""The runtime answers the same with the compiled preprocessing kernels (numba) as with numpy's."""

from __future__ import annotations

import numpy as np
import pytest

from rfsense.data.preprocess import compiled
from rfsense.deploy import Runtime
from rfsense.errors import ConfigError


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed (pip install 'rfsense[fast]')")
def test_runtime_answers_the_same_with_and_without_compiled_kernels(toy_model, streams):
    fast = Runtime(toy_model.path, providers="cpu", threads=1)
    assert fast.wait_for_kernels() == "compiled"
    plain = Runtime(toy_model.path, providers="cpu", threads=1, kernels="numpy")
    assert plain.kernels == "numpy"
    raw = streams(3)
    raw["wifi"][1, :, 100] += 500.0  # spikes for the Hampel filter
    raw["wifi"][2, 3] = 10.0  # a flat channel
    for a, b in zip(fast.predict(raw), plain.predict(raw), strict=True):
        assert (a.status, a.modalities_used, a.reason) == (b.status, b.modalities_used, b.reason)
        assert [v.status for v in a.verdicts.values()] == [v.status for v in b.verdicts.values()]
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5, atol=1e-7)


def test_kernels_option_is_checked(toy_model):
    with pytest.raises(ConfigError, match="kernels must be"):
        Runtime(toy_model.path, providers="cpu", kernels="fast")
    assert Runtime(toy_model.path, providers="cpu", kernels="numpy").wait_for_kernels() == "numpy"
