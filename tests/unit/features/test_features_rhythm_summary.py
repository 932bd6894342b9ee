"""Rhythm summaries: irregular rhythms score as irregular, short records are handled, the
featurizer round-trips, CinC 2017 hands them to ConvRNN as ``static`` and bundles keep them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from medseq.bundle import Bundle, load_bundle, save_bundle
from medseq.datasets import cinc2017
from medseq.features import registry
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.features.signals.rhythm_summary import (
    BEAT_MORPHOLOGY_FEATURES,
    SUMMARY_FEATURES,
    RhythmBeatFeaturizer,
    median_beat_summaries,
    recording_summaries,
    rr_summaries,
)
from medseq.models import build_model, model_config_from_dict
from medseq.schema import Signal

FS = 300.0


def _ecg(
    record_id: str,
    rr_s: np.ndarray,
    fs: float = FS,
    p_wave: bool = True,
    qrs_s: float = 0.012,
    t_wave: float = 0.0,
) -> Signal:
    """Gaussian QRS spikes (width ``qrs_s``) at the given RR intervals, a small P wave
    0.18 s before and a T wave of amplitude ``t_wave`` 0.30 s after each."""
    peaks = np.round((0.6 + np.concatenate([[0.0], np.cumsum(rr_s)])) * fs).astype(np.int64)
    n = int(peaks[-1] + 0.6 * fs)
    t = np.arange(n) / fs
    x = np.zeros(n)
    for p in peaks / fs:
        x += np.exp(-(((t - p) / qrs_s) ** 2))
        x += t_wave * np.exp(-(((t - p - 0.30) / 0.04) ** 2))
        if p_wave:
            x += 0.15 * np.exp(-(((t - p + 0.18) / 0.025) ** 2))
    x += 0.01 * np.random.default_rng(len(rr_s)).standard_normal(n)
    return Signal(
        record_id,
        x[:, None].astype(np.float32),
        fs,
        ("ECG",),
        ("mV",),
        annotation_samples=peaks,
        annotation_symbols=("N",) * len(peaks),
    )


def _regular(n: int = 40, seed: int = 0) -> np.ndarray:
    return 0.8 + 0.005 * np.random.default_rng(seed).standard_normal(n)


def _irregular(n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.4, 1.1, n)


def _at(values: np.ndarray, name: str) -> float:
    return float(values[SUMMARY_FEATURES.index(name)])


def test_irregular_rr_scores_higher_than_regular():
    regular, irregular = rr_summaries(_regular()), rr_summaries(_irregular())
    for name in ("cv_rr", "rmssd_over_mean", "pnn50", "rr_histogram_entropy", "irregularity"):
        assert irregular[name] > regular[name] + 0.1, name
    assert regular["pnn50"] == 0.0 and regular["implausible_rr_share"] == 0.0
    # one premature beat followed by a compensatory pause
    ectopic = _regular()
    ectopic[20], ectopic[21] = 0.5, 1.1
    out = rr_summaries(ectopic)
    assert out["premature_share"] == pytest.approx(1 / 40)
    assert out["prolonged_share"] == pytest.approx(1 / 40)
    assert out["min_rr_over_median"] == pytest.approx(0.5 / np.median(ectopic))


def test_p_wave_evidence_and_shape_values():
    with_p = recording_summaries(_ecg("p", _regular()), _ecg("p", _regular()).annotation_samples)
    no_p_signal = _ecg("q", _regular(), p_wave=False)
    without_p = recording_summaries(no_p_signal, no_p_signal.annotation_samples)
    assert _at(with_p, "p_energy_over_qrs") > 3 * _at(without_p, "p_energy_over_qrs")
    assert _at(with_p, "p_consistency") > 0.5
    assert _at(with_p, "corr_mean") > 0.9 and _at(with_p, "unlike_median_share") == 0.0
    assert _at(with_p, "few_beats") == 0.0 and np.isfinite(with_p).all()


def _morph(signal: Signal) -> dict[str, float]:
    values = median_beat_summaries(signal, signal.annotation_samples)
    return dict(zip(BEAT_MORPHOLOGY_FEATURES, values, strict=True))


def test_median_beat_intervals_and_amplitudes():
    narrow = _morph(_ecg("n", _regular(), t_wave=0.3))
    wide = _morph(_ecg("w", _regular(), qrs_s=0.035, t_wave=0.3))
    inverted = _morph(_ecg("i", _regular(), p_wave=False, t_wave=-0.3))
    assert wide["qrs_width_s"] > 1.5 * narrow["qrs_width_s"]
    assert narrow["t_delay_s"] == pytest.approx(0.30, abs=0.02)
    assert narrow["t_delay_over_sqrt_rr"] == pytest.approx(0.30 / np.sqrt(0.8), abs=0.03)
    assert narrow["t_over_qrs"] > 0.1 and inverted["t_over_qrs"] < -0.1
    assert narrow["p_delay_s"] == pytest.approx(0.18, abs=0.02) and narrow["p_over_qrs"] > 0.05
    assert abs(inverted["p_over_qrs"]) < narrow["p_over_qrs"] / 2
    assert narrow["qrs_polarity"] > 0.5  # an upright R
    assert narrow["wide_beat_share"] == 0.0 and np.isfinite(list(narrow.values())).all()
    # fewer than two whole beats: all NaN (the training mean after z-scoring)
    short = _ecg("s", np.array([0.8]))
    assert np.isnan(median_beat_summaries(short, short.annotation_samples[:1])).all()


def test_too_few_beats_gives_nan_rhythm_values_and_a_flag():
    signal = _ecg("short", np.array([0.8, 0.8]))
    out = recording_summaries(signal, signal.annotation_samples[:2])
    assert out.shape == (len(SUMMARY_FEATURES),)
    assert _at(out, "few_beats") == 1.0 and np.isnan(_at(out, "rmssd_over_mean"))
    assert np.isfinite(_at(out, "duration_s")) and np.isfinite(_at(out, "kurtosis"))
    flat = Signal("flat", np.zeros((3000, 1), np.float32), FS, ("ECG",), ("mV",))
    out = recording_summaries(flat, np.zeros(0, np.int64))
    assert _at(out, "few_beats") == 1.0 and _at(out, "beats_per_second") == 0.0
    assert all(np.isnan(v) for v in rr_summaries(np.array([0.8])).values())


def _signals() -> list[Signal]:
    out = [_ecg(f"r{i}", _regular(30, i)) for i in range(4)]
    out += [_ecg(f"i{i}", _irregular(30, i), p_wave=False) for i in range(4)]
    out.append(_ecg("short", np.array([0.8, 0.8])))
    return out


def test_featurizer_z_scores_fills_nan_and_round_trips():
    signals = _signals()
    featurizer = RhythmBeatFeaturizer(segment_fs_hz=40.0).fit_summaries(signals[:-1])
    featurizer.fit([featurizer.raw_features(s)[0] for s in signals])
    static = featurizer.summaries(signals)
    assert static.shape == (len(signals), featurizer.n_summaries) and static.dtype == np.float32
    assert np.isfinite(static).all() and np.abs(static).max() <= 6.0
    assert np.abs(static[:-1].mean(axis=0)).max() < 1e-4  # z-scored on the fitted records
    assert static[-1, SUMMARY_FEATURES.index("rmssd_over_mean")] == 0.0  # NaN -> mean
    irregular = SUMMARY_FEATURES.index("irregularity")
    assert static[4:8, irregular].min() > static[:4, irregular].max()
    state = json.loads(json.dumps(featurizer.state_dict()))
    assert state["kind"] == "beats_rhythm"
    again = registry.featurizer_from_state_dict(state)
    assert isinstance(again, RhythmBeatFeaturizer) and again.segment_fs_hz == 40.0
    np.testing.assert_array_equal(again.summaries(signals), static)
    np.testing.assert_array_equal(again.features(signals[0])[0], featurizer.features(signals[0])[0])
    # the beat-feature cache key is the plain beat featurizer's (one cache for both)
    plain = BeatFeaturizer(segment_fs_hz=40.0)
    assert again._options_key() == plain._options_key()
    with pytest.raises(RuntimeError, match="before fit_summaries"):
        RhythmBeatFeaturizer().summaries(signals)


def test_beat_morphology_appends_to_the_summaries_and_shares_the_beat_cache():
    signals = _signals()
    base = RhythmBeatFeaturizer(segment_fs_hz=40.0).fit_summaries(signals)
    both = RhythmBeatFeaturizer(segment_fs_hz=40.0, beat_morphology=True, _cache=base._cache)
    both.fit_summaries(signals)
    assert both.summary_names == (*SUMMARY_FEATURES, *BEAT_MORPHOLOGY_FEATURES)
    assert base.n_summaries == len(SUMMARY_FEATURES)  # the default keeps older bundles' size
    assert both._options_key() == base._options_key()
    raw = both.raw_summaries(signals[0])
    np.testing.assert_array_equal(raw[: len(SUMMARY_FEATURES)], base.raw_summaries(signals[0]))
    assert both.summaries(signals).shape == (len(signals), both.n_summaries)
    again = registry.featurizer_from_state_dict(json.loads(json.dumps(both.state_dict())))
    assert again.beat_morphology and again.n_summaries == both.n_summaries


def _cinc_data(signals: list[Signal]) -> cinc2017.CincData:
    ids = list(range(1, len(signals) + 1))
    by_id = dict(zip(ids, signals, strict=True))
    labels = pd.Series([0, 0, 0, 0, 1, 1, 1, 1, 3], index=pd.Index(ids, name="subject_id"))
    return cinc2017.CincData(signals=by_id, labels=labels)


def test_cinc_static_input_trains_the_model_and_survives_a_bundle(tmp_path):
    data = _cinc_data(_signals())
    ids = np.array(sorted(data.signals))
    featurizer = cinc2017.fit_featurizer({"kind": "beats", "rhythm_summary": True}, data, ids)
    assert isinstance(featurizer, RhythmBeatFeaturizer)
    arrays = cinc2017.transform(featurizer, data, ids)
    assert arrays["static"].shape == (len(ids), len(SUMMARY_FEATURES))
    sizes = cinc2017._sizes(featurizer)
    assert sizes["static_size"] == len(SUMMARY_FEATURES)
    config = model_config_from_dict(
        {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "hidden_size": 8, **sizes}
    )
    torch.manual_seed(0)
    model = build_model(config).eval()
    bundle = Bundle(
        model_config=config,
        featurizer=featurizer,
        members=[model],
        task="multiclass",
        provenance={"dataset": "cinc2017", "task": "rhythm"},
    )
    before = bundle.predict_arrays(arrays)
    again = load_bundle(save_bundle(bundle, tmp_path / "bundle"))
    after = again.predict_arrays(cinc2017.transform(again.featurizer, data, ids))
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    # the static input matters: other summaries, other predictions
    shuffled = {**arrays, "static": arrays["static"][::-1].copy()}
    assert not np.allclose(bundle.predict_arrays(shuffled), before)
    plain = cinc2017.fit_featurizer({"kind": "beats"}, data, ids)
    assert type(plain) is BeatFeaturizer and "static" not in cinc2017.transform(plain, data, ids)
    with pytest.raises(ValueError, match="rhythm_summary must be true or false"):
        cinc2017.fit_featurizer({"kind": "beats", "rhythm_summary": 1}, data, ids)
    with pytest.raises(ValueError, match="beat_morphology = true needs rhythm_summary"):
        cinc2017.fit_featurizer({"kind": "beats", "beat_morphology": True}, data, ids)
    both = {"kind": "beats", "rhythm_summary": True, "beat_morphology": True, "qrs_shape": True}
    rich = cinc2017.fit_featurizer(both, data, ids)
    assert rich.beat_morphology and rich.qrs_shape
    assert cinc2017._sizes(rich)["static_size"] == len(SUMMARY_FEATURES) + 11
    with pytest.raises(ValueError, match="unknown"):
        cinc2017.fit_featurizer({"kind": "signal", "rhythm_summary": True}, data, ids)
