"""Beat features on real MIT-BIH and CinC 2017 records, with the option set of every beat
config in ``configs/``: the featurizer's columns are exactly what the pure signal functions
give, its state round-trips to identical features, and known values of the records hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseq.datasets import cinc2017, mitbih
from medseq.experiment.config import tomllib
from medseq.features.signals.beat_columns import record_relative_values, scalar_feature_names
from medseq.features.signals.beat_featurizer import MORPHOLOGIES, BeatFeaturizer
from medseq.features.signals.beat_rhythm import (
    LOCAL_RHYTHM_FEATURES,
    RR_RHYTHM_FEATURES,
    local_rhythm_values,
    rr_rhythm_values,
)
from medseq.features.signals.beat_template import (
    LOCAL_TEMPLATE_FEATURES,
    TEMPLATE_FEATURES,
    local_template_values,
    template_summaries,
)
from medseq.features.signals.beat_windows import LeadWindows, lead_windows
from medseq.features.signals.beats import beat_annotations
from medseq.features.signals.qrs_shape import QRS_SHAPE_FEATURES, qrs_shape_values
from medseq.paths import dataset_dir
from medseq.schema import Signal

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: Columns per beat, as each config's comment states.
MIT_CONFIGS = {"mitbih-beats": 11, "mitbih-beats-shape": 36}
CINC_CONFIGS = {
    "cinc2017-beatgru": 81,
    "cinc2017-beatgru-rhythm": 81,
    "cinc2017-beatgru-rhythm-qrs": 87,
}
#: Every optional block at once, the local ones included (no config uses them yet).
EVERY_BLOCK = {
    "lead": "MLII",
    "qrs_shape": True,
    "second_lead": True,
    "record_relative": True,
    "local_template": 3,
    "local_rhythm": 4,
}


def _features(config: str) -> dict:
    return tomllib.loads((CONFIGS / f"{config}.toml").read_text())["features"]


def _mit_featurizer(config: str) -> BeatFeaturizer:
    if config == "every-block":
        return BeatFeaturizer(peaks="annotations", **EVERY_BLOCK)
    return BeatFeaturizer(peaks="annotations", **_features(config))


@pytest.fixture(scope="module")
def mit():
    # 114 stores V5 before MLII, so lead="MLII" is channel 1 and the second lead channel 0.
    return mitbih.read_records(dataset_dir("mitdb_full"), ("100", "114"))


@pytest.fixture(scope="module")
def cinc():
    return cinc2017.read(dataset_dir("physionet2017"), max_records=3)


def _named(names, values: np.ndarray) -> dict:
    """Columns of ``values`` ``(N, C)`` by the ``C`` ``names``."""
    return dict(zip(names, values.T, strict=True))


def _lead_values(f: BeatFeaturizer, w: LeadWindows, fs: float, prefix: str) -> dict:
    spec = f.window_spec
    at = {"r_index": spec.r_index, "qrs_half": spec.qrs_half}
    out = _named(TEMPLATE_FEATURES, template_summaries(w.small, w.deviation, **at))
    if f.qrs_shape:
        qrs = qrs_shape_values(w.full, fs, r_index=round(f.before_s * fs))
        out.update(_named(QRS_SHAPE_FEATURES, qrs))
    if f.local_template:
        local = local_template_values(w.small, f.local_template, **at)
        out.update(_named(LOCAL_TEMPLATE_FEATURES, local))
    return {prefix + name: column for name, column in out.items()}


def _expected_columns(f: BeatFeaturizer, signal: Signal, peaks: np.ndarray) -> dict:
    """Every scalar column of ``f`` on ``signal``, computed by the pure functions alone."""
    fs, channels = signal.fs_hz, list(signal.channel_names)
    first = channels.index(f.lead) if f.lead in channels else 0
    w1, kept = lead_windows(signal.samples[:, first : first + 1], fs, peaks, f.window_spec)
    rr = rr_rhythm_values(peaks, fs, local_beats=f.local_beats, local_ratios=f.local_ratios)
    out = _named(RR_RHYTHM_FEATURES, rr[kept])
    out.update(_lead_values(f, w1, fs, ""))
    if f.second_lead and signal.n_channels > 1:
        second = next(k for k in range(signal.n_channels) if k != first)
        w2, _ = lead_windows(signal.samples[:, second : second + 1], fs, peaks, f.window_spec)
        out.update(_lead_values(f, w2, fs, "lead2_"))
    base = scalar_feature_names(qrs_shape=f.qrs_shape, second_lead=f.second_lead)
    table = np.stack([out.get(n, np.zeros(len(kept))) for n in base], axis=1)
    if f.record_relative:
        relative = record_relative_values(table, base)
        names = [n for n in f.scalar_names if n.endswith("_vs_record")]
        out.update(_named(names, relative))
    if f.local_rhythm:
        local = local_rhythm_values(peaks, f.local_rhythm)[kept]
        out.update(_named(LOCAL_RHYTHM_FEATURES, local))
    windows = {"both": [w1.small, w1.deviation], "deviation": [w1.deviation], "none": []}
    return {"windows": windows[f.morphology], **out}


def _check_columns(f: BeatFeaturizer, signal: Signal) -> np.ndarray:
    matrix, peaks = f.raw_features(signal)
    expected = _expected_columns(f, signal, peaks)
    width = f.segment_length
    for k, window in enumerate(expected["windows"]):
        np.testing.assert_array_equal(matrix[:, k * width : (k + 1) * width], window)
    offset = MORPHOLOGIES[f.morphology] * width
    for j, name in enumerate(f.scalar_names):
        if name.startswith("lead2_") and signal.n_channels == 1:
            column = np.zeros(len(matrix), np.float32)  # a single lead has no second one
        else:
            column = np.asarray(expected[name], dtype=np.float32)
        np.testing.assert_array_equal(matrix[:, offset + j], column, err_msg=name)
    return matrix


def test_record_100_beats_are_its_annotated_beats(mit):
    signal = mit.signals["100"]
    matrix, peaks = _mit_featurizer("mitbih-beats").raw_features(signal)
    assert signal.channel_names == ("MLII", "V5") and signal.fs_hz == 360.0
    assert len(peaks) == len(matrix) == 2273
    assert peaks[:4].tolist() == [77, 370, 662, 946] and peaks[-1] == 649991
    labels = mit.beats.loc[mit.beats["record"] == "100", "label"]
    assert np.bincount(labels, minlength=4).tolist() == [2239, 33, 1, 0]  # N, S, V, F


@pytest.mark.parametrize("config", [*MIT_CONFIGS, "every-block"])
def test_mitbih_columns_are_the_pure_functions_values(mit, config):
    featurizer = _mit_featurizer(config)
    matrix = _check_columns(featurizer, mit.signals["114"])
    n_beats = len(beat_annotations(mit.signals["114"])[0])
    assert matrix.shape == (n_beats, featurizer.n_features) and n_beats == 1879
    if config in MIT_CONFIGS:
        assert featurizer.n_features == MIT_CONFIGS[config]


@pytest.mark.parametrize("config", MIT_CONFIGS)
def test_mitbih_state_round_trip_gives_identical_features(mit, config):
    featurizer = _mit_featurizer(config)
    featurizer.fit([featurizer.raw_features(mit.signals["100"])[0]])
    again = BeatFeaturizer.from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    assert again == featurizer
    first, peaks = featurizer.features(mit.signals["114"])
    second, peaks_again = again.features(mit.signals["114"])
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(peaks, peaks_again)
    assert np.abs(first).max() <= 10.0 and len(featurizer.mean) == featurizer.n_features


@pytest.mark.parametrize("config", CINC_CONFIGS)
def test_cinc2017_columns_and_state_round_trip(cinc, config):
    ids = np.array(sorted(cinc.signals))
    featurizer = cinc2017.fit_featurizer(_features(config), cinc, ids)
    assert featurizer.n_features == CINC_CONFIGS[config]
    signal = cinc.signals[1]
    matrix = _check_columns(featurizer, signal)
    _, peaks = featurizer.raw_features(signal)
    assert signal.record_id == "A00001" and len(matrix) == len(peaks) == 39
    assert peaks[:4].tolist() == [127, 342, 560, 797]
    again = type(featurizer).from_state_dict(json.loads(json.dumps(featurizer.state_dict())))
    before = cinc2017.transform(featurizer, cinc, ids)
    after = cinc2017.transform(again, cinc, ids)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
