"""The tree baseline of sepsis early warning on real PhysioNet 2019 patients (sets A and B):
hand-made causal history features per hour, and the runner fitting it on the GRU's folds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import test_serving_per_step_datasets as per_step

from medseq.bundle import load_bundle
from medseq.datasets import get_dataset
from medseq.datasets.physionet2019 import HORIZON_HOURS
from medseq.experiment import run_experiment
from medseq.experiment.config import parse_config
from medseq.features.icu.history_features import history_feature_names, history_features
from medseq.sources.physionet2019 import PhysioNet2019Set

sepsis_root = per_step.sepsis_root  # the first 40 patients of each archive, unpacked


@pytest.fixture(scope="module")
def fitted(sepsis_root):
    spec = get_dataset("physionet2019")
    data = spec.read(sepsis_root)
    ids = data.static.index.to_numpy()
    featurizer = spec.fit_featurizer({}, data, ids[::2])
    channels = featurizer.describe().feature_names["C"]
    return spec, data, ids, featurizer, channels


def _table(spec, featurizer, channels, data, ids) -> np.ndarray:
    arrays = spec.transform(featurizer, data, ids)
    return history_features(arrays["values"], arrays["lengths"], channels)


def _until(data: PhysioNet2019Set, hour: int) -> PhysioNet2019Set:
    """The stays as they were at ``hour`` (grid clock): later events removed."""
    events = data.events[data.events["time"] <= hour].reset_index(drop=True)
    return PhysioNet2019Set(events, data.static, data.labels, data.report)


def test_features_at_hour_t_ignore_later_hours(fitted):
    spec, data, ids, featurizer, channels = fitted
    full = _table(spec, featurizer, channels, data, ids)
    names = history_feature_names(channels)
    assert full.shape == (len(ids), HORIZON_HOURS, len(names))
    for hour in (0, 5, 11, 30):
        cut = _table(spec, featurizer, channels, _until(data, hour), ids)
        np.testing.assert_array_equal(cut[:, : hour + 1], full[:, : hour + 1])
        # and the removed hours are really gone (the check could fail)
        assert np.isnan(cut[:, hour + 1 :]).all()


def test_features_equal_a_hand_count_on_a_raw_file(fitted, sepsis_root):
    spec, data, ids, featurizer, channels = fitted
    sid = int(ids[3])
    names = history_feature_names(channels)
    table = _table(spec, featurizer, channels, data, np.array([sid]))[0]
    raw = pd.read_csv(sepsis_root / "training_setA" / f"p{sid:06d}.psv", sep="|")
    n = min(len(raw), HORIZON_HOURS)
    for variable in ("HR", "Temp", "Lactate"):
        seen = raw[variable].notna().to_numpy()[:n]
        count = table[:n, names.index(f"count:{variable}")]
        np.testing.assert_array_equal(count, np.cumsum(seen))
        since = table[:n, names.index(f"hours_since:{variable}")]
        for t in range(n):
            past = np.flatnonzero(seen[: t + 1])
            assert (np.isnan(since[t]) and not len(past)) or since[t] == t - past[-1]
    # the last value of HR follows the raw file's forward fill (normalised: compare the order)
    last_hr = table[:n, names.index("last:HR")]
    filled = raw["HR"].ffill().to_numpy()[:n]
    ok = ~np.isnan(filled)
    assert np.array_equal(np.isnan(last_hr), ~ok)
    assert np.array_equal(
        np.argsort(last_hr[ok], kind="stable"), np.argsort(filled[ok], kind="stable")
    )


def test_one_run_scores_gru_and_trees_on_the_same_folds(sepsis_root, tmp_path):
    config = parse_config(
        {
            "name": "tiny-sepsis-both",
            "data": {
                "dataset": "physionet2019",
                "train": str(sepsis_root),
                "test": "",
                "task": "sepsis_6h",
                "protocol": "internal",
            },
            "model": dict(per_step.SEPSIS_MODEL),
            "train": {"epochs": 1, "batch_size": 32, "progress": False, "num_threads": 1},
            "baseline": {
                "kind": "hist_gradient_boosting",
                "features": "history",
                "params": {"max_iter": 20},
            },
            "evaluate": {"n_boot": 20},
            "output_dir": str(tmp_path / "run"),
        }
    )
    result = run_experiment(config, progress=False)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    side = saved["baseline"]
    assert side["kind"] == "hist_gradient_boosting" and side["features"] == "history"
    assert set(side["val_metrics"]) == set(result.val_metrics)  # the same figures
    assert len(side["val_folds"]) == len(result.extra["val_folds"]) == 5
    for figures in (side["val_metrics"], result.val_metrics):
        assert 0.0 <= figures["hourly_auroc"] <= 1.0
    assert side["val_metrics"] != result.val_metrics
    assert result.bundle_dir is not None  # the GRU's bundle is still saved
    # the alarm threshold is the utility-best one on the validation predictions, stored in
    # the bundle, and the validation utility is taken at it (the best there is)
    assert 0.0 <= result.threshold <= 1.0 and saved["threshold"] == result.threshold
    assert load_bundle(result.bundle_dir).threshold == pytest.approx(result.threshold)
    assert "utility@0.5" not in result.val_metrics
    assert all("utility" in fold for fold in result.extra["val_folds"])
