"""Band-power features and the summary-fusion featurizer on synthetic signals."""

import numpy as np
import pytest

from medseq.features.registry import featurizer_from_state_dict
from medseq.features.signals.band_power import (
    BANDS_HZ,
    BandPowerSignalFeaturizer,
    band_power_features,
    feature_names,
)
from medseq.schema import Signal

FS = 173.61


def _sine(freq_hz: float, amplitude: float = 50.0, seed: int = 0) -> Signal:
    t = np.arange(4097) / FS
    noise = np.random.default_rng(seed).normal(0, 1.0, t.size)
    x = amplitude * np.sin(2 * np.pi * freq_hz * t) + noise
    return Signal(f"sine{freq_hz}", x[:, None], FS, ("EEG",), ("adu",))


@pytest.mark.parametrize(("freq", "band"), [(2.0, "delta"), (6.0, "theta"), (10.0, "alpha"),
                                            (20.0, "beta"), (38.0, "gamma")])  # fmt: skip
def test_a_sine_puts_its_power_in_its_band(freq, band):
    row = band_power_features([_sine(freq)])[0]
    names = feature_names()
    relative = {b: row[names.index(f"relative_power_{b}")] for b in BANDS_HZ}
    assert max(relative, key=relative.get) == band and relative[band] > 0.9
    assert abs(row[names.index("peak_frequency_hz")] - freq) < 0.5


def test_amplitude_moves_log_power_and_sd_by_log_of_the_gain():
    small, large = band_power_features([_sine(10.0, 10.0), _sine(10.0, 100.0)])
    names = feature_names()
    assert large[names.index("log_std")] - small[names.index("log_std")] == pytest.approx(
        np.log(10.0), abs=0.05
    )
    assert large[names.index("relative_power_alpha")] == pytest.approx(
        small[names.index("relative_power_alpha")], abs=0.02
    )


def test_fusion_featurizer_z_scores_on_fit_and_round_trips_through_its_state():
    train = [_sine(f, a, seed=k) for k, (f, a) in enumerate([(3, 40), (10, 60), (25, 30)])]
    featurizer = BandPowerSignalFeaturizer(target_fs_hz=FS, normalize="none").fit(train)
    out = featurizer.transform(train)
    assert out["values"].shape == (3, 4097, 1) and out["static"].shape == (3, len(feature_names()))
    np.testing.assert_allclose(out["static"].mean(axis=0), 0.0, atol=1e-4)
    again = featurizer_from_state_dict(featurizer.state_dict())
    assert (
        isinstance(again, BandPowerSignalFeaturizer) and again.n_summaries == featurizer.n_summaries
    )
    other = [_sine(7.0, 45.0, seed=9)]
    for key, value in featurizer.transform(other).items():
        np.testing.assert_array_equal(value, again.transform(other)[key])
