"""Every registered featurizer kind, fitted on real data through its dataset spec, implements
the featurizer protocol, and its ``describe()`` matches what ``transform`` actually returns
(names, dtypes, ranks, the sizes the fit fixes), before and after a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseq.datasets import get_dataset
from medseq.features.base import Featurizer, FeaturizerDescription, time_grid_gap
from medseq.features.registry import FEATURIZERS, featurizer_from_state_dict
from medseq.paths import dataset_dir

# kind -> (dataset, task, path under the data root, [features] table, how many ids)
CASES = {
    "ICUFeaturizer": ("physionet2012", "mortality", "physionet2012/set-a.tar.gz", {}, 60),
    "hourly_icu": ("physionet2019", "sepsis_6h", "physionet2019/training_setB.tar.gz", {}, 60),
    "signal": ("cinc2017", "rhythm", "physionet2017", {"kind": "signal"}, 6),
    "beats": ("mitbih", "beat", "mitdb_full", {"context_beats": 3}, 40),
    "beats_rhythm": (
        "cinc2017",
        "rhythm",
        "physionet2017",
        {"kind": "beats", "rhythm_summary": True},
        6,
    ),
    "smiles": ("tox21", "toxicity", "tox21", {"n_enumerations": 2}, 40),
    "volume": ("adrenalmnist3d", "adrenal", "adrenalmnist3d", {}, 20),
    "VisitFeaturizer": ("mimic3", "next_visit", "mimic3demo", {"level": "three_digit"}, 30),
    "signal_band_power": (
        "bonn_eeg",
        "five_set",
        "bonn_eeg",
        {"target_fs_hz": 173.61, "band_power_summaries": True},
        20,
    ),
    "sleep_epochs": ("sleepedf", "sleep_stage", "sleepedf_features", {}, 4),
}


def _read(dataset: str, path: str):
    from medseq.datasets import cinc2017, mitbih

    root = dataset_dir(path.split("/")[0]).parent
    if dataset == "cinc2017":  # 6 of 6,999 recordings
        return cinc2017.read(root / path, max_records=6)
    if dataset == "mitbih":  # record 100 only
        return mitbih.read_records(root / path, ("100",))
    if dataset == "tox21":
        pytest.importorskip("rdkit")
    return get_dataset(dataset).read(root / path)


def test_every_registered_kind_has_a_case():
    assert sorted(CASES) == sorted(FEATURIZERS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_featurizer_protocol_and_description_match_transform(kind):
    dataset, task, path, features, n = CASES[kind]
    spec = get_dataset(dataset)
    data = _read(dataset, path)
    ids = spec.labels(task, data).index.to_numpy()[:n]
    featurizer = spec.fit_featurizer(features, data, ids[: max(2, n // 2)])
    assert featurizer.kind == kind
    assert isinstance(featurizer, Featurizer)
    description = featurizer.describe()
    assert isinstance(description, FeaturizerDescription)
    arrays = spec.transform(featurizer, data, ids)
    description.check(arrays)  # names, dtypes, ranks and fixed sizes
    # only the ICU grid supports the stages built on named variables over hours
    assert (time_grid_gap(description) is None) == (kind == "ICUFeaturizer")
    if kind in ("ICUFeaturizer", "hourly_icu"):
        assert description.hours() == ((1.0, 48.0) if kind == "ICUFeaturizer" else (1.0, 72.0))
    else:
        with pytest.raises(ValueError, match="no hourly clock"):
            description.hours()
    assert all(len(a) == len(ids) for a in arrays.values())
    for name, values in description.feature_names.items():
        axes = [s for s in description.outputs if name in s.dims and name in s.sizes]
        assert all(s.sizes[name] == len(values) for s in axes), (name, axes)
    # the description is JSON and survives the bundle's round trip of the state
    state = json.loads(json.dumps(featurizer.state_dict()))
    reloaded = featurizer_from_state_dict(state)
    text = json.dumps(description.to_dict())
    assert FeaturizerDescription.from_dict(json.loads(text)) == description
    assert reloaded.describe() == description
    again = spec.transform(reloaded, data, ids)
    for name in description.output_names:
        np.testing.assert_array_equal(again[name], arrays[name])


def test_description_refuses_a_wrong_array():
    spec = get_dataset("adrenalmnist3d")
    data = _read("adrenalmnist3d", "adrenalmnist3d")
    ids = spec.labels("adrenal", data).index.to_numpy()[:4]
    featurizer = spec.fit_featurizer({}, data, ids)
    arrays = spec.transform(featurizer, data, ids)
    with pytest.raises(ValueError, match="dtype float64, described as float32"):
        featurizer.describe().check({"slices": arrays["slices"].astype(np.float64)})
    with pytest.raises(ValueError, match="dim H is 14, described as 28"):
        featurizer.describe().check({"slices": arrays["slices"][:, :, :14]})
