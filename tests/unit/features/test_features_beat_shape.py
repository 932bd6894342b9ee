"""BeatFeaturizer's optional QRS-shape and second-lead values (MIT-BIH V/S features)."""

import numpy as np
import pytest

from medseq.datasets import mitbih
from medseq.features.signals.beat_columns import SCALAR_FEATURES, scalar_feature_names
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.features.signals.beat_rhythm import LOCAL_RHYTHM_FEATURES, local_rhythm_values
from medseq.features.signals.beat_template import LOCAL_TEMPLATE_FEATURES, local_template_values
from medseq.features.signals.qrs_shape import QRS_SHAPE_FEATURES, qrs_shape_values
from medseq.schema import Signal

FS = 360.0
R = 90  # R peak at 0.25 s in a 0.7 s window


def _beat(width_s: float = 0.012, p_wave: float = 0.15, shift: int = 0, sign: float = 1.0):
    t = (np.arange(252) - R - shift) / FS
    qrs = sign * np.exp(-((t / width_s) ** 2))
    p = p_wave * np.exp(-(((t + 0.16) / 0.025) ** 2))
    return qrs + p


def _column(values: np.ndarray, name: str) -> np.ndarray:
    return values[:, QRS_SHAPE_FEATURES.index(name)]


def test_wide_beat_gets_larger_width_area_and_lower_correlation():
    windows = np.stack([_beat()] * 20 + [_beat(width_s=0.04)])
    values = qrs_shape_values(windows, FS, r_index=R)
    assert values.shape == (21, len(QRS_SHAPE_FEATURES))
    normal, wide = values[0], values[-1]
    for name in ("qrs_width_over_median", "qrs_area_over_median"):
        assert _column(values, name)[-1] > 1.5 * _column(values, name)[0]
    assert _column(values, "qrs_width_over_median")[0] == pytest.approx(1.0)
    dev = "qrs_deviation_rms_over_median_rms"
    assert wide[QRS_SHAPE_FEATURES.index(dev)] > 0.3 > normal[QRS_SHAPE_FEATURES.index(dev)]


def test_shifted_normal_beat_still_matches_but_an_inverted_one_does_not():
    windows = np.stack([_beat()] * 20 + [_beat(shift=10), _beat(sign=-1.0)])
    best = _column(qrs_shape_values(windows, FS, r_index=R), "qrs_best_shift_correlation")
    assert best[20] > 0.99  # 28 ms late: found within the +-50 ms search
    assert best[21] < 0.5


def test_beat_without_its_p_wave_has_a_lower_p_wave_correlation():
    rng = np.random.default_rng(0)
    windows = np.stack([_beat() for _ in range(20)] + [_beat(p_wave=0.0)])
    windows = windows + 0.005 * rng.standard_normal(windows.shape)
    p_corr = _column(qrs_shape_values(windows, FS, r_index=R), "p_wave_correlation_with_median")
    assert p_corr[0] > 0.9 and p_corr[-1] < 0.5


def _two_lead_ecg(seconds: float = 30.0, channels: int = 2) -> Signal:
    """Beats every 0.8 s; every 5th one wide and inverted on the second channel only."""
    n = round(seconds * FS)
    peaks = np.arange(round(0.5 * FS), n - round(0.5 * FS), round(0.8 * FS))
    t = np.arange(n)
    first = np.zeros(n)
    second = np.zeros(n)
    for i, p in enumerate(peaks):
        first += np.exp(-(((t - p) / (0.012 * FS)) ** 2))
        width, sign = (0.04, -1.0) if i % 5 == 4 else (0.012, 1.0)
        second += sign * np.exp(-(((t - p) / (width * FS)) ** 2))
    samples = np.stack([first, second][:channels], axis=1).astype(np.float32)
    names = ("MLII", "V1")[:channels]
    symbols = tuple("V" if i % 5 == 4 else "N" for i in range(len(peaks)))
    return Signal(
        "t", samples, FS, names, ("mV",) * channels, annotation_samples=peaks,
        annotation_symbols=symbols,
    )  # fmt: skip


def test_options_add_columns_after_the_default_ones():
    signal = _two_lead_ecg()
    base = BeatFeaturizer(lead="MLII", morphology="none")
    full = BeatFeaturizer(lead="MLII", morphology="none", qrs_shape=True, second_lead=True)
    names = scalar_feature_names(qrs_shape=True, second_lead=True)
    assert base.n_features == len(SCALAR_FEATURES) == 11
    assert full.n_features == len(names) == 11 + 6 + 3 + 6
    assert BeatFeaturizer(qrs_shape=True).n_features == 2 * 35 + 17
    m0, _ = base.raw_features(signal)
    m1, _ = full.raw_features(signal)
    np.testing.assert_array_equal(m1[:, :11], m0)  # the default columns are unchanged
    # The second lead sees the wide inverted beats that the first lead does not.
    labels = np.array([s == "V" for s in signal.annotation_symbols])
    lead1 = m1[:, names.index("qrs_correlation_with_median")]
    lead2 = m1[:, names.index("lead2_qrs_correlation_with_median")]
    assert lead1[labels].min() > 0.99
    assert lead2[labels].max() < 0.0 < lead2[~labels].min()
    width2 = m1[:, names.index("lead2_qrs_width_over_median")]
    assert width2[labels].min() > 1.5 * width2[~labels].max()


def test_second_lead_of_a_single_channel_record_is_zero():
    signal = _two_lead_ecg(channels=1)
    featurizer = BeatFeaturizer(lead="MLII", morphology="none", second_lead=True)
    matrix, _ = featurizer.raw_features(signal)
    assert matrix.shape[1] == 14 and np.all(matrix[:, 11:] == 0.0)


def test_new_options_are_checked():
    with pytest.raises(ValueError, match="qrs_shape must be true or false"):
        BeatFeaturizer(qrs_shape="yes")
    with pytest.raises(ValueError, match="second_lead must be true or false"):
        BeatFeaturizer(second_lead=1)
    with pytest.raises(ValueError, match="qrs_shape needs before_s and after_s"):
        BeatFeaturizer(qrs_shape=True, before_s=0.1)
    state = BeatFeaturizer(qrs_shape=True, second_lead=True).state_dict()
    again = BeatFeaturizer.from_state_dict(state)
    assert again.qrs_shape and again.second_lead


def test_mitbih_features_table_accepts_the_new_keys_and_names_unknown_ones():
    data = mitbih.MitbihData(signals={"100": _two_lead_ecg()}, beats=None, report=None)
    with pytest.raises(ValueError, match="qrs_width"):
        mitbih.fit_featurizer({"qrs_width": True}, data, np.array([0]))
    assert {"qrs_shape", "second_lead"} <= set(mitbih.FEATURIZER_KEYS)


def test_record_relative_values_put_the_usual_beat_at_zero_in_clean_and_noisy_records():
    rng = np.random.default_rng(1)
    names = scalar_feature_names(qrs_shape=True, second_lead=True, record_relative=True)
    featurizer = BeatFeaturizer(
        lead="MLII", morphology="none", qrs_shape=True, second_lead=True, record_relative=True
    )
    assert featurizer.n_features == len(names) == 26 + 10
    signal = _two_lead_ecg()
    noisy = Signal(
        "noisy",
        signal.samples + 0.15 * rng.standard_normal(signal.samples.shape).astype(np.float32),
        FS, signal.channel_names, signal.units, annotation_samples=signal.annotation_samples,
        annotation_symbols=signal.annotation_symbols,
    )  # fmt: skip
    labels = np.array([s == "V" for s in signal.annotation_symbols])
    column = names.index("lead2_deviation_rms_over_median_rms_vs_record")
    raw = names.index("lead2_deviation_rms_over_median_rms")
    for record in (signal, noisy):
        matrix, _ = featurizer.raw_features(record)
        usual, unusual = matrix[~labels, column], matrix[labels, column]
        assert abs(np.median(usual)) < 0.7  # beats next to a V one deviate a little
        assert unusual.min() > np.percentile(usual, 75) + 1.0
    # noise raises every beat's raw deviation, not the record-relative one of usual beats
    clean_raw = featurizer.raw_features(signal)[0][~labels, raw]
    noisy_raw = featurizer.raw_features(noisy)[0][~labels, raw]
    assert np.median(noisy_raw) > 2 * np.median(clean_raw)
    with pytest.raises(ValueError, match="record_relative must be true or false"):
        BeatFeaturizer(record_relative="no")


def test_local_template_follows_a_change_of_the_usual_morphology():
    # 60 beats: the first 30 narrow, the last 30 wide (a conduction change), beat 45 inverted
    windows = np.stack([_beat() for _ in range(30)] + [_beat(width_s=0.03) for _ in range(30)])[
        :, ::7
    ]  # about 51 Hz
    windows[45] *= -1.0
    local = local_template_values(windows, 10, r_index=13, qrs_half=5)
    assert local.shape == (60, len(LOCAL_TEMPLATE_FEATURES))
    corr, dev = local[:, 0], local[:, 2]
    usual = np.r_[0:25, 35:45, 46:60]  # away from the change and from the odd beat
    assert corr[usual].min() > 0.99 and dev[usual].max() < 0.05
    assert corr[45] < 0.0 and dev[45] > 1.0
    names = scalar_feature_names(second_lead=True, local_template=10)
    featurizer = BeatFeaturizer(morphology="none", second_lead=True, local_template=10)
    assert featurizer.n_features == len(names) == 11 + 3 + 6
    with pytest.raises(ValueError, match="local_template must be an int >= 0"):
        BeatFeaturizer(local_template=-1)
    with pytest.raises(ValueError, match="local_template must be an int >= 0"):
        BeatFeaturizer(local_template=True)


def test_local_rhythm_tells_an_ectopic_beat_in_sinus_rhythm_from_fibrillation():
    # sinus rhythm at 300 samples with one premature beat (200) and its pause (400)
    sinus = np.concatenate([[0], np.cumsum([300] * 15 + [200, 400] + [300] * 15)])
    rng = np.random.default_rng(0)
    fibrillation = np.concatenate([[0], np.cumsum(rng.uniform(150, 450, 32))])
    ectopic = local_rhythm_values(sinus, 10)
    irregular = local_rhythm_values(fibrillation, 10)
    assert ectopic.shape == (33, len(LOCAL_RHYTHM_FEATURES))
    pre, post, spread, share = (ectopic[:, k] for k in range(4))
    assert pre[16] == pytest.approx(2 / 3) and post[16] == pytest.approx(4 / 3)
    assert pre[17] == pytest.approx(4 / 3)  # the beat after the compensatory pause
    assert np.all(pre[:16] == 1.0)  # the median ignores the one early beat
    assert spread.max() == 0.0 and share.max() < 0.2  # one event in a regular rhythm
    assert np.median(irregular[:, 2]) > 0.2 and np.median(irregular[:, 3]) > 0.6
    assert local_rhythm_values(np.array([0, 300]), 10).shape == (2, 4)


def test_local_rhythm_option_appends_its_columns():
    signal = _two_lead_ecg()
    base = BeatFeaturizer(lead="MLII", morphology="none")
    local = BeatFeaturizer(lead="MLII", morphology="none", local_rhythm=5)
    names = scalar_feature_names(local_rhythm=5)
    assert local.n_features == len(names) == 11 + 4
    assert names[-4:] == list(LOCAL_RHYTHM_FEATURES)
    m0, _ = base.raw_features(signal)
    m1, _ = local.raw_features(signal)
    np.testing.assert_array_equal(m1[:, :11], m0)
    np.testing.assert_allclose(m1[:, 11:13], 1.0)  # a regular 0.8 s rhythm
    assert "local_rhythm" in mitbih.FEATURIZER_KEYS
    with pytest.raises(ValueError, match="local_rhythm must be an int >= 0"):
        BeatFeaturizer(local_rhythm=2.5)
