import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseq.evaluation import (
    BINARY_METRICS,
    REGRESSION_METRICS,
    binary_metrics,
    bootstrap_ci,
    bootstrap_distribution,
    format_table,
    metrics_with_ci,
    regression_metrics,
    resample_indices,
    resampled,
)
from medseq.evaluation.metrics import binary_metric_functions, regression_metric_functions


def _binary_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.clip(0.3 + 0.3 * y + rng.normal(0, 0.2, n), 0, 1)
    return y, np.round(p, 2)  # rounding makes ties, which AUROC/AUPRC must handle


def test_ci_contains_the_point_and_shrinks_with_n():
    widths = []
    for n in (100, 1600):
        y, p = _binary_data(n)
        point, lo, hi = bootstrap_ci(y, p, "auroc", n_boot=500)
        assert point == binary_metrics(y, p)["auroc"]
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16) = 1/4 in theory


def test_deterministic_with_random_state():
    y, p = _binary_data(200)
    assert bootstrap_ci(y, p, "auprc", random_state=1) == bootstrap_ci(
        y, p, "auprc", random_state=1
    )
    assert bootstrap_ci(y, p, "auprc", random_state=1) != bootstrap_ci(
        y, p, "auprc", random_state=2
    )


def test_stratified_resamples_keep_class_counts():
    y, _ = _binary_data(50)
    idx = resample_indices(y, n_boot=20, random_state=0, stratified=True)
    assert idx.shape == (20, 50)
    assert np.all(y[idx].sum(axis=1) == y.sum())


def test_unstratified_resamples_with_one_class_are_skipped_and_counted():
    y = np.array([0] * 9 + [1])
    p = np.linspace(0.05, 0.95, 10)
    dist = bootstrap_distribution(y, p, "auroc", n_boot=300, stratified=False)
    assert 0 < dist.n_skipped < 300  # (9/10)**10 ~ 35% of resamples hold no positive
    assert len(dist.values) == 300 - dist.n_skipped
    with pytest.warns(RuntimeWarning, match=r"auroc: \d+ of 300 bootstrap resamples"):
        bootstrap_ci(y, p, "auroc", n_boot=300, stratified=False)


def test_callable_metric_matches_the_named_one():
    y, p = _binary_data(120)

    def auroc(a, b):
        return binary_metrics(a, b)["auroc"]

    assert bootstrap_ci(y, p, auroc, n_boot=50) == pytest.approx(
        bootstrap_ci(y, p, "auroc", n_boot=50)
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from([0.3, 0.5, 0.7]))
def test_vectorised_binary_metrics_equal_scikit_learn_row_by_row(seed, threshold):
    y, p = _binary_data(40, seed)
    idx = resample_indices(y, n_boot=8, random_state=seed)
    rows = resampled.binary_row_metrics(threshold)
    for name, fn in binary_metric_functions(threshold).items():
        expected = [fn(y[i], p[i]) for i in idx]
        np.testing.assert_allclose(rows[name](y[idx], p[idx]), expected, rtol=1e-12, err_msg=name)


def test_vectorised_regression_metrics_equal_scikit_learn_row_by_row():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    p = y + rng.normal(scale=0.5, size=30)
    idx = resample_indices(y, n_boot=10, random_state=0)
    rows = resampled.regression_row_metrics()
    for name, fn in regression_metric_functions().items():
        expected = [fn(y[i], p[i]) for i in idx]
        np.testing.assert_allclose(rows[name](y[idx], p[idx]), expected, rtol=1e-12, err_msg=name)


def test_metrics_with_ci_binary_and_regression():
    y, p = _binary_data(300)
    table = metrics_with_ci(y, p, task="binary", threshold=0.45, n_boot=200)
    assert tuple(table) == BINARY_METRICS
    points = binary_metrics(y, p, threshold=0.45)
    for name, (point, lo, hi) in table.items():
        assert point == points[name] and lo <= hi
    assert table["auroc"] == bootstrap_ci(y, p, "auroc", n_boot=200, threshold=0.45)
    rng = np.random.default_rng(1)
    t = rng.normal(size=100)
    pred = t + rng.normal(size=100)
    reg = metrics_with_ci(t, pred, task="regression", threshold=None, n_boot=100)
    assert tuple(reg) == REGRESSION_METRICS
    for name, (point, lo, hi) in reg.items():
        assert point == regression_metrics(t, pred)[name] and lo <= point <= hi


def test_metrics_with_ci_errors():
    y, p = _binary_data(50)
    with pytest.raises(ValueError, match=r"unknown binary metrics \['mse'\]"):
        metrics_with_ci(y, p, metrics=["auroc", "mse"])
    with pytest.raises(ValueError, match="alpha must be in"):
        metrics_with_ci(y, p, alpha=1.5)
    with pytest.raises(ValueError, match="metric must be a callable or one of"):
        bootstrap_ci(y, p, "c-index")


def test_format_table_markdown_and_plain():
    table = {"auroc": (0.8512, 0.8203, 0.8794), "brier": [0.1, 0.09, 0.11]}
    text = format_table(table)
    assert text.splitlines()[0] == "| metric | value | 95% CI |"
    assert "| auroc | 0.851 | 0.820 – 0.879 |" in text
    plain = format_table({"mse": 1.23456}, style="plain", digits=2)
    assert plain.splitlines() == ["metric  value", "mse      1.23"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="style must be"):
            format_table(table, style="html")
