"""SleepEpochFeaturizer: undoing the 1e-10 floor, scaling on training nights, JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseq.features.registry import featurizer_from_state_dict
from medseq.features.signals.sleep_epochs import FLOOR, SleepEpochFeaturizer, recovered_base


def stored_from(log_power: np.ndarray, log_var: np.ndarray, mobility: np.ndarray) -> np.ndarray:
    """Columns as the third-party code stores them, from true log powers (n, 2, 5)."""
    n = len(log_var)
    out = np.zeros((n, 72))
    for ch, c in enumerate((0, 9)):
        logs = np.log(np.exp(log_power[:, ch]) + FLOOR)
        out[:, c : c + 5] = logs
        out[:, c + 5] = logs[:, 1] / logs[:, 2]
        out[:, c + 6] = logs[:, 2] / logs[:, 0]
        var = np.exp(log_var[:, ch])
        out[:, c + 7] = np.log(var + FLOOR)
        out[:, c + 8] = mobility[:, ch] * np.sqrt(var / (var + FLOOR))
    out[:, 18:] = np.random.default_rng(1).normal(size=(n, 54))
    return out


@pytest.fixture
def night():
    rng = np.random.default_rng(0)
    log_power = rng.uniform(np.log(1e-14), np.log(1e-9), size=(50, 2, 5))
    log_var = rng.uniform(np.log(1e-11), np.log(1e-9), size=(50, 2))
    mobility = rng.uniform(0.1, 1.0, size=(50, 2))
    return stored_from(log_power, log_var, mobility), log_power, log_var, mobility


def test_recovery_gives_back_the_true_log_powers_ratios_and_mobility(night):
    stored, log_power, log_var, mobility = night
    base = recovered_base(stored)
    for ch, c in enumerate((0, 9)):
        np.testing.assert_allclose(base[:, c : c + 5], log_power[:, ch], atol=1e-6)
        np.testing.assert_allclose(base[:, c + 5], log_power[:, ch, 1] - log_power[:, ch, 2],
                                   atol=1e-6)  # fmt: skip
        np.testing.assert_allclose(base[:, c + 7], log_var[:, ch], atol=1e-6)
        np.testing.assert_allclose(base[:, c + 8], mobility[:, ch], rtol=1e-6)
    # Stored as is, the small powers are crushed onto log(1e-10): their spread all but vanishes.
    assert stored[:, 3].std() < 0.2 * base[:, 3].std()


def test_scaling_uses_the_training_nights_and_the_state_round_trips(night):
    stored = night[0]
    featurizer = SleepEpochFeaturizer().fit([stored[:30], stored[30:40]])
    train = featurizer.transform(stored[:40])
    assert train.dtype == np.float32 and train.shape == (40, 18)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    again = featurizer_from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    np.testing.assert_array_equal(again.transform(stored), featurizer.transform(stored))
    wide = SleepEpochFeaturizer(context_columns=True, recover_power=False).fit([stored])
    assert wide.transform(stored).shape == (50, 72) and wide.n_features == 72
    described = wide.describe()
    assert described.output("values").dims == ("N", "T", "F")
    assert len(described.names("F")) == 72 == described.output("values").sizes["F"]


def test_bad_input_and_use_before_fit_are_clear_errors(night):
    with pytest.raises(ValueError, match="not fitted"):
        SleepEpochFeaturizer().transform(night[0])
    with pytest.raises(
        ValueError, match=r"expects \(n_epochs, 72\) stored features, got \(50, 18\)"
    ):
        SleepEpochFeaturizer().fit([night[0][:, :18]])
    with pytest.raises(TypeError, match="recover_power must be a bool"):
        SleepEpochFeaturizer(recover_power="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        SleepEpochFeaturizer.from_state_dict({"kind": "sleep_epochs", "window": 3})
