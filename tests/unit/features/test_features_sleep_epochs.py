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


@pytest.fixture(scope="module")
def real_nights():
    """Two real nights of two subjects (SC4001, SC4021), windowed around sleep."""
    from medseq.datasets import sleepedf
    from medseq.paths import dataset_dir
    from medseq.sources.sleepedf_features import read_folder

    nights, _ = read_folder(dataset_dir("sleepedf_features"))
    by_id = {n.night_id: n for n in nights}
    return [by_id[i].features[sleepedf.sleep_window(by_id[i])] for i in (4001, 4021)]


def test_per_night_scaling_takes_out_each_nights_level_and_spread(real_nights):
    plain = SleepEpochFeaturizer(context_columns=True)
    per_night = SleepEpochFeaturizer(context_columns=True, per_night=True)
    # Without it the two subjects' nights sit at different levels (amplitude, contact) ...
    means = [plain.raw(m).mean(axis=0) for m in real_nights]
    assert np.abs(means[0] - means[1]).max() > 0.5
    # ... with it every column of every night has mean 0 and sd 1 before the global z-score.
    for stored in real_nights:
        raw = per_night.raw(stored)
        np.testing.assert_allclose(raw.mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(raw.std(axis=0), 1.0, atol=1e-9)
    # A gain change of the whole night (a constant added to its stored log powers) is gone.
    shifted = real_nights[0].copy()
    shifted[:, :5] += 2.0
    unfloored = SleepEpochFeaturizer(recover_power=False, per_night=True)
    np.testing.assert_allclose(unfloored.raw(shifted), unfloored.raw(real_nights[0]), atol=1e-9)
    fitted = per_night.fit(real_nights)
    again = featurizer_from_state_dict(json.loads(json.dumps(fitted.state_dict())))
    assert again.per_night
    np.testing.assert_array_equal(again.transform(real_nights[1]), fitted.transform(real_nights[1]))
    with pytest.raises(ValueError, match=r"per_night=True\) needs a night of >= 2 epochs"):
        fitted.transform(real_nights[0][:1])
