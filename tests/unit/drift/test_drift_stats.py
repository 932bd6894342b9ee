"""Drift statistics written without scipy, checked against scipy, and the window's counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseq.drift import DriftSettings, DriftWindow, build_profile, profile_refusal
from medseq.drift.profile import ProfileUnsupported
from medseq.drift.stats import chi2_homogeneity, chi2_sf, psi
from medseq.features.base import ArraySpec, FeaturizerDescription


@pytest.mark.parametrize("df", [1, 2, 3, 7, 10, 30, 120])
def test_chi2_sf_matches_scipy(df):
    from scipy.stats import chi2

    for x in [0.01, 0.5, df / 2, df, df + 3, 2 * df + 10, 5 * df + 40]:
        assert chi2_sf(x, df) == pytest.approx(chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_chi2_homogeneity_matches_scipy_contingency():
    from scipy.stats import chi2_contingency

    window, reference = np.array([30, 25, 20, 15, 10]), np.array([400, 300, 150, 100, 50])
    stat, df, p = chi2_homogeneity(window, reference)
    expected = chi2_contingency(np.vstack([window, reference]), correction=False)
    assert (stat, df) == (pytest.approx(expected.statistic), expected.dof)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_sparse_bins_are_merged_before_the_test():
    # 12 window counts over 10 bins: expected counts < 5, so bins merge (df shrinks)
    reference = np.full(10, 100)
    _, df, _ = chi2_homogeneity(np.array([2, 1, 1, 2, 1, 1, 1, 1, 1, 1]), reference)
    assert df == 1


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    ref = np.array([[100, 100, 100, 100]])
    assert psi(ref * 3, ref)[0] == pytest.approx(0.0)
    small, large = (
        psi(np.array([[110, 100, 100, 90]]), ref),
        psi(np.array([[300, 50, 30, 20]]), ref),
    )
    assert 0 < small[0] < 0.01 < 0.25 < large[0]


def _grid_description(n_features: int = 3) -> FeaturizerDescription:
    grid = ("N", "T", "F")
    return FeaturizerDescription(
        kind="grid_test", modality="icu_events", inputs="events",
        outputs=(
            ArraySpec("values", "float32", grid, {"F": n_features}),
            ArraySpec("mask", "float32", grid, {"F": n_features}),
            ArraySpec("lengths", "int64", ("N",)),
            ArraySpec("static", "float32", ("N", "S"), {"S": 1}),
        ),
        feature_names={"F": [f"v{j}" for j in range(n_features)], "S": ["age"]},
        step="1 h bin", step_size=1.0, horizon=4.0, time_unit="h",
    )  # fmt: skip


def _arrays(rng, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    values = rng.normal(shift, 1.0, size=(n, 4, 3)).astype(np.float32)
    mask = (rng.random((n, 4, 3)) < 0.7).astype(np.float32)
    return {
        "values": values, "mask": mask, "delta": np.zeros_like(values),
        "lengths": rng.integers(1, 5, size=n), "static": rng.normal(size=(n, 1)).astype(np.float32),
    }  # fmt: skip


def test_profile_counts_missing_and_bins_every_training_sample():
    rng = np.random.default_rng(0)
    arrays = _arrays(rng, 2000)
    profile = build_profile(_grid_description(), arrays, rng.random(500))
    assert [f["name"] for f in profile["features"]] == ["v0", "v1", "v2", "age"]
    for feature in profile["features"]:
        assert sum(feature["counts"]) == 2000 and len(feature["edges"]) == 9
    # a sample is missing a feature when no step before its length is observed
    observed = (arrays["mask"] > 0) & (np.arange(4)[None, :] < arrays["lengths"][:, None])[
        ..., None
    ]
    missing = 1 - observed.any(axis=1).mean(axis=0)
    assert [f["missing"] for f in profile["features"][:3]] == pytest.approx(missing, abs=1e-6)
    assert profile["predictions"][0]["name"] == "risk" and profile["n_predictions"] == 500


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(10, 60))
def test_window_counts_equal_a_recount_of_the_last_samples(sizes, window):
    rng = np.random.default_rng(1)
    description = _grid_description()
    profile = build_profile(description, _arrays(rng, 500), rng.random(500))
    monitor = DriftWindow(profile, description, DriftSettings(window=window, min_samples=10))
    seen_bins = []
    for n in sizes:
        arrays, pred = _arrays(rng, n), rng.random(n)
        monitor.observe(arrays, pred)
        seen_bins.append(monitor.inputs.bins(_summary(monitor, arrays)))
    last = np.concatenate(seen_bins)[-window:]
    recount = np.stack([np.bincount(last[:, j], minlength=11) for j in range(4)])
    np.testing.assert_array_equal(monitor.inputs.counts, recount)
    assert monitor.n_samples == min(sum(sizes), window)


def _summary(monitor, arrays):
    from medseq.drift.profile import summarise

    return summarise(monitor.parts, arrays)["x"]


def test_a_shifted_stream_drifts_and_the_same_one_does_not():
    rng = np.random.default_rng(2)
    description = _grid_description()
    profile = build_profile(description, _arrays(rng, 3000), rng.random(3000))
    same = DriftWindow(profile, description, DriftSettings(window=300, min_samples=100))
    moved = DriftWindow(profile, description, DriftSettings(window=300, min_samples=100))
    for _ in range(15):
        same.observe(_arrays(rng, 20), rng.random(20))
        moved.observe(_arrays(rng, 20, shift=1.0), rng.random(20) ** 2)
    assert not same.flag and same.report()["drifting_features"] == []
    report = moved.report()
    assert moved.flag and set(report["drifting_features"]) == {"v0", "v1", "v2"}
    assert report["prediction_drift"] and moved.alarms == 1


def test_a_featurizer_without_named_features_is_refused_in_a_sentence():
    tokens = FeaturizerDescription(
        kind="smiles", modality="molecule", inputs="SMILES strings",
        outputs=(ArraySpec("tokens", "int64", ("N", "T")), ArraySpec("lengths", "int64", ("N",))),
        feature_names={"V": ["C", "O"]}, step="token",
    )  # fmt: skip
    reason = profile_refusal(tokens)
    assert "'smiles'" in reason and "no array of named features" in reason
    with pytest.raises(ProfileUnsupported, match="no array of named features"):
        build_profile(tokens, {"tokens": np.zeros((3, 4), np.int64)})
    assert profile_refusal(_grid_description()) is None


def test_per_step_outputs_are_left_out_and_the_inputs_still_watched():
    rng = np.random.default_rng(3)
    description = _grid_description()
    per_step = rng.random((400, 4, 2))  # (N, T, K): no single prediction per sample
    profile = build_profile(description, _arrays(rng, 400), per_step, task="multilabel")
    assert "predictions" not in profile
    assert {"array": "predictions", "reason": "per-step outputs"} in profile["not_profiled"]
    monitor = DriftWindow(profile, description, DriftSettings(window=50, min_samples=20))
    for _ in range(4):
        monitor.observe(_arrays(rng, 20, shift=2.0), rng.random((20, 4, 2)))
    report = monitor.report()
    assert report["predictions"] == [] and report["drift"] and not report["prediction_drift"]
