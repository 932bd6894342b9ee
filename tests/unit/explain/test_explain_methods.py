"""Integrated gradients, occlusion, attention and deletion on real (untrained) models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from explain_toys import toy_bundle

from medseq.explain import (
    BundleOutput,
    attention_weights,
    deletion_check,
    global_importance,
    integrated_gradients,
    occlusion,
)
from medseq.explain.importance import static_groups

MODELS = [("attention", "rnn_classifier", 1), ("last", "grud", 1), ("mean", "rnn_classifier", 2)]


@pytest.mark.parametrize(("pooling", "kind", "n_members"), MODELS)
def test_integrated_gradients_completeness_and_padding(pooling, kind, n_members):
    bundle, features = toy_bundle(pooling, kind, n_members)
    attr = integrated_gradients(bundle, features, n_steps=64, batch_size=5)
    n, t, f = features["values"].shape
    assert attr.values.shape == (n, t, f)
    assert attr.static.shape == features["static"].shape
    # completeness: the attributions add up to f(x) - f(baseline), up to the delta
    gap = attr.output - attr.baseline_output
    np.testing.assert_allclose(attr.total() - gap, attr.convergence_delta, atol=1e-4)
    assert np.abs(attr.convergence_delta).max() < 5e-3  # untrained: gaps are small
    # padding steps cannot influence the output: exactly zero attribution
    padded = np.arange(t)[None, :] >= features["lengths"][:, None]
    assert padded.any()
    assert np.all(attr.values[padded] == 0.0)


def test_explained_output_is_the_logit_of_the_bundle_risk():
    bundle, features = toy_bundle("mean", n_members=2)
    attr = integrated_gradients(bundle, features, n_steps=8)
    risk = bundle.predict_arrays(features)
    np.testing.assert_allclose(attr.output, np.log(risk / (1 - risk)), atol=1e-4)


def test_static_can_be_left_out():
    bundle, features = toy_bundle("mean")
    attr = integrated_gradients(bundle, features, n_steps=16, include_static=False)
    assert attr.static is None and attr.static_names == []
    gap = attr.output - attr.baseline_output
    np.testing.assert_allclose(
        attr.values.sum(axis=(1, 2)) - gap, attr.convergence_delta, atol=1e-4
    )


def test_integrated_gradients_rejects_one_step():
    bundle, features = toy_bundle("mean")
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(bundle, features, n_steps=1)


def test_attention_weights_sum_to_one_over_valid_steps():
    bundle, features = toy_bundle("attention", n_members=1)
    weights = attention_weights(bundle, features)
    lengths = features["lengths"]
    assert weights.shape == features["values"].shape[:2]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    padded = np.arange(weights.shape[1])[None, :] >= lengths[:, None]
    assert np.all(weights[padded] == 0.0)


def test_attention_needs_an_attention_model():
    bundle, features = toy_bundle("mean")
    with pytest.raises(ValueError, match="pooling='attention'"):
        attention_weights(bundle, features)


def test_occlusion_credits_each_block_with_the_output_drop():
    bundle, features = toy_bundle("last", "grud")
    occ = occlusion(bundle, features, window_steps=4)
    assert occ.values.shape == features["values"].shape
    # block [0, 4) of variable 0 of stay 0, recomputed by hand
    forward = BundleOutput(bundle.members)
    x = {k: torch.as_tensor(v[:1]) for k, v in features.items()}
    occluded = x["values"].clone()
    occluded[0, :4, 0] = 0.0
    with torch.no_grad():
        base = forward(x["values"], x["static"], x["mask"], x["delta"], x["lengths"])
        drop = base - forward(occluded, x["static"], x["mask"], x["delta"], x["lengths"])
    np.testing.assert_allclose(occ.values[0, :4, 0], float(drop), atol=1e-5)
    assert np.isnan(occ.convergence_delta).all()


def test_deletion_check_shapes_and_validation():
    bundle, features = toy_bundle("mean")
    attr = integrated_gradients(bundle, features, n_steps=16)
    result = deletion_check(bundle, features, attr, k=3, n_random=2)
    assert result.top_change.shape == (12,) and result.random_change.shape == (12,)
    assert set(result.summary()) == {
        "k",
        "mean_change_top",
        "mean_change_random",
        "ratio",
        "win_rate",
    }
    with pytest.raises(ValueError, match="k must be"):
        deletion_check(bundle, features, attr, k=10_000)


def test_global_importance_groups_summary_and_descriptor_columns():
    bundle, features = toy_bundle("mean")
    names = bundle.featurizer.static_names_
    groups = dict(
        zip(names, static_groups(names, list(bundle.featurizer.feature_names_)), strict=True)
    )
    assert groups["HR_log_count"] == ("HR", "summary")
    assert groups["HR_mean"] == ("HR", "summary")
    assert groups["Age_missing"] == ("Age", "descriptor")
    assert groups["ICUType=2"] == ("ICUType", "descriptor")
    attr = integrated_gradients(bundle, features, n_steps=8)
    table = global_importance(attr)
    assert set(table["variable"]) == {"HR", "Lactate", "MAP", "Age", "ICUType"}
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["importance"].is_monotonic_decreasing
    expected = np.abs(attr.values[:, :, 0]).sum(axis=1).mean()
    hr = table.set_index("variable").loc["HR"]
    assert hr["from_trajectory"] == pytest.approx(expected, rel=1e-5)
