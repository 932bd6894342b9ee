"""Normalizer: quantile winsorisation, moments on training values, log choice, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseq.features.icu.normalizer import AUTO_LOG_SKEW, Normalizer, NotFittedError


def _data(rng):
    level = rng.normal(80.0, 10.0, 2000)
    level[:5] = 1000.0  # outliers that must not drive the std
    volume = rng.lognormal(4.0, 1.2, 1000)
    var = np.r_[np.zeros(2000, int), np.ones(1000, int)]
    return var, np.r_[level, volume]


def test_bounds_are_numpy_quantiles_and_moments_of_clipped_values():
    var, value = _data(np.random.default_rng(0))
    norm = Normalizer(clip_quantiles=(0.01, 0.99)).fit(var, value, ["level", "volume", "never"])
    for k in (0, 1):
        x = value[var == k]
        lo, hi = np.quantile(x, [0.01, 0.99])
        assert norm.lower_[k] == pytest.approx(lo) and norm.upper_[k] == pytest.approx(hi)
        clipped = np.clip(x, lo, hi)
        assert norm.mean_[k] == pytest.approx(clipped.mean())
        assert norm.std_[k] == pytest.approx(clipped.std())
    assert norm.std_[0] < 15  # the 1000s were winsorised away
    assert (norm.mean_[2], norm.std_[2], norm.n_observed_[2]) == (0.0, 1.0, 0)


def test_transform_centres_training_values_and_keeps_nan():
    var, value = _data(np.random.default_rng(1))
    norm = Normalizer().fit(var, value, ["level", "volume"])
    grid = np.full((len(value), 2), np.nan)
    grid[np.arange(len(value)), var] = value
    z = norm.transform(grid)
    assert np.isnan(z[var == 0, 1]).all()
    for k in (0, 1):
        assert z[var == k, k].mean() == pytest.approx(0.0, abs=1e-9)
        assert z[var == k, k].std() == pytest.approx(1.0)


def test_constant_variable_gets_unit_std():
    norm = Normalizer().fit(np.zeros(4, int), np.ones(4), ["MechVent"])
    assert norm.std_.tolist() == [1.0]
    assert norm.transform(np.array([[1.0]])).tolist() == [[0.0]]


def test_auto_log_picks_skewed_non_negative_variables():
    var, value = _data(np.random.default_rng(2))
    norm = Normalizer(log_variables="auto").fit(var, value, ["level", "volume"])
    assert norm.log_.tolist() == [False, True]
    x = np.log1p(np.clip(value[var == 1], norm.lower_[1], norm.upper_[1]))
    assert norm.mean_[1] == pytest.approx(x.mean())
    assert AUTO_LOG_SKEW > 0


def test_explicit_log_variables_are_checked():
    var, value = _data(np.random.default_rng(3))
    with pytest.raises(ValueError, match="not variables"):
        Normalizer(log_variables=["nope"]).fit(var, value, ["level", "volume"])
    with pytest.raises(ValueError, match="negative"):
        Normalizer(log_variables=["x"]).fit(np.zeros(2, int), np.array([-1.0, 2.0]), ["x"])


def test_clip_sigma_bounds_the_output():
    norm = Normalizer(clip_quantiles=None, clip_sigma=1.5).fit(
        np.zeros(3, int), np.array([0.0, 1.0, 2.0]), ["x"]
    )
    assert np.abs(norm.transform(np.array([[100.0], [-100.0]]))).max() == 1.5


def test_state_round_trip_through_json():
    var, value = _data(np.random.default_rng(4))
    norm = Normalizer(log_variables="auto").fit(var, value, ["level", "volume", "never"])
    state = json.loads(json.dumps(norm.state_dict(), allow_nan=False))
    back = Normalizer.from_state_dict(state)
    x = np.random.default_rng(5).normal(50, 50, (7, 3))
    np.testing.assert_array_equal(back.transform(x), norm.transform(x))
    assert back.state_dict() == state


def test_unfitted_and_bad_state():
    with pytest.raises(NotFittedError, match="fit"):
        Normalizer().transform(np.zeros((1, 1)))
    state = Normalizer().fit(np.zeros(2, int), np.array([1.0, 2.0]), ["x"]).state_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        Normalizer.from_state_dict({**state, "extra": 1})
    with pytest.raises(ValueError, match="version"):
        Normalizer.from_state_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="clip_quantiles"):
        Normalizer(clip_quantiles=(0.9, 0.1)).fit(np.zeros(1, int), np.ones(1), ["x"])
