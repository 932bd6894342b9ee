"""Replays of real streams through the service's drift monitor, with its default settings
(chosen on held-out PhysioNet 2012 set A: ``benchmarks/drift_replay.py``): set B, the same
population, raises no flag; one ICU type, or PhysioNet 2019 stays mapped to the 2012
variables, raise one naming the features."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseq.bundle import load_bundle
from medseq.drift import DriftSettings
from medseq.drift.replay import replay, rotation_profiles
from medseq.features.base import describe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

SETTINGS = DriftSettings()  # the service's defaults, not tuned here


@pytest.fixture(scope="module")
def bundle(trained_gru_bundle):
    return load_bundle(trained_gru_bundle)


def _stream(bundle, data, ids):
    arrays = dict(bundle.spec().transform(bundle.featurizer, data, np.asarray(ids)))
    return arrays, bundle.predict_arrays(arrays)


def _replay(bundle, data, ids):
    arrays, pred = _stream(bundle, data, ids)
    return replay(bundle.drift_profile, describe(bundle.featurizer), arrays, pred, SETTINGS)


def test_set_b_replay_raises_no_flag(bundle, set_b):
    ids = np.sort(set_b.static.index.to_numpy())[:1000]
    r = _replay(bundle, set_b, ids)
    assert len(r.flags) == 1000 // 20 and len(r.windows) == 1000 // SETTINGS.window
    assert r.last["window"]["evaluated"]  # the monitor did judge the stream
    assert r.flagged_requests == 0 and r.first_alarm is None and r.alarms == 0
    assert r.last["drifting_features"] == []


def test_one_icu_type_raises_a_flag_within_the_first_window_naming_features(bundle, set_b):
    ids = np.sort(set_b.static.index.to_numpy())
    cardiac = ids[set_b.static.loc[ids, "ICUType"].to_numpy() == 2][: SETTINGS.window]
    r = _replay(bundle, set_b, cardiac)
    assert r.first_alarm is not None and r.first_alarm <= SETTINGS.window
    drifting = list(r.windows[0]["drifting"])
    assert r.windows[0]["flag"] and "ICUType=2" in drifting
    assert [n for n in drifting if not n.startswith("ICUType")]  # not the unit alone


def test_physionet2019_stays_mapped_to_the_2012_variables_drift(bundle):
    from drift_replay import physionet2019_as_2012

    from medseq.paths import dataset_dir

    data = physionet2019_as_2012(dataset_dir("physionet2019") / "training_setA.tar.gz", 200)
    assert len(data.static) == 200 and data.events.code.isin(["HR", "NIMAP"]).any()
    assert data.static.Height.isna().all()  # not recorded in 2019: missing, not zero
    r = _replay(bundle, data, data.static.index.to_numpy())
    assert r.first_alarm is not None and r.first_alarm <= SETTINGS.window
    assert "GCS" in r.windows[0]["drifting"]  # never charted in 2019


def test_rotation_references_leave_their_fold_out(bundle, set_a, trained_gru_bundle):
    val = pd.read_csv(Path(trained_gru_bundle).parent / "val_predictions.csv")
    assert list(val.columns[:2]) == ["subject_id", "fold"] and val.y_pred.between(0, 1).all()
    ids = val.subject_id.to_numpy()
    arrays = dict(bundle.spec().transform(bundle.featurizer, set_a, ids))
    folds = np.arange(len(ids)) % 2  # two halves of the validation stays
    rotations = rotation_profiles(
        describe(bundle.featurizer), arrays, val.y_pred.to_numpy(), folds,
        profile_predictions=False,
    )  # fmt: skip
    assert sorted(rotations) == [0, 1]
    for k, (profile, held) in rotations.items():
        assert (folds[held] == k).all()
        assert profile["n_samples"] == int((folds != k).sum())
        assert "predictions" not in profile
    with pytest.raises(ValueError, match="fold labels"):
        rotation_profiles(describe(bundle.featurizer), arrays, val.y_pred.to_numpy(), folds[:3])
