"""``SignalFeaturizer``: raw waveforms to padded ``values``/``lengths`` for a ``ConvRNN``.

Every recording goes through the same fixed chain (:mod:`medseq.features.signals.signal`):
polyphase resampling to one rate, a zero-phase Butterworth band-pass, per-record robust
standardisation, then right-padding to the longest recording (or ``max_seconds``). Nothing
is estimated from the training set (the normalisation is per record, so a test recording
is scaled on its own statistics); the state still records the options and the channel
count, so a bundle re-applies exactly the chain its model was trained behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from medseq.features.base import ArraySpec, FeaturizerDescription
from medseq.features.signals import signal as sig
from medseq.schema import DataError, Signal, check_known_keys

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("robust", "standard", "none")


@dataclass
class SignalFeaturizer:
    """Resample, band-pass and normalise each recording; pad them into one array.

    Parameters
    ----------
    target_fs_hz : float, default=150.0
        Common sampling rate. 150 Hz keeps the ECG content below the 40 Hz band edge and
        halves the work of a 300 Hz CinC 2017 recording.
    low_hz, high_hz : float, default=0.5, 40.0
        Band-pass edges (baseline wander below, mains and muscle noise above).
    filter_order : int, default=4
    normalize : {"robust", "standard", "none"}, default="robust"
        Per-record standardisation (:func:`~medseq.features.signals.signal.normalize_per_record`).
    max_seconds : float or None, default=None
        Pad or cut every recording to this duration; ``None`` pads to the longest one.
    channels : list of int or None, default=None
        Channel indices kept; all by default.
    """

    kind: ClassVar[str] = "signal"

    target_fs_hz: float = 150.0
    low_hz: float = 0.5
    high_hz: float = 40.0
    filter_order: int = 4
    normalize: str = "robust"
    max_seconds: float | None = None
    channels: list[int] | None = None
    n_channels: int | None = None

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"SignalFeaturizer.normalize must be one of {NORMALIZATIONS}, "
                f"got {self.normalize!r}"
            )
        if not 0 < self.low_hz < self.high_hz < self.target_fs_hz / 2:
            raise ValueError(
                "SignalFeaturizer needs 0 < low_hz < high_hz < target_fs_hz / 2, got "
                f"low_hz={self.low_hz}, high_hz={self.high_hz}, target_fs_hz={self.target_fs_hz}"
            )
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"SignalFeaturizer.max_seconds must be > 0, got {self.max_seconds}")

    @property
    def max_samples(self) -> int | None:
        """``max_seconds`` at the target rate, or None."""
        if self.max_seconds is None:
            return None
        return round(self.max_seconds * self.target_fs_hz)

    def preprocess(self, signal: Signal) -> np.ndarray:
        """``(n_samples, n_channels)`` float32 of one recording after the whole chain."""
        samples = signal.samples
        if self.channels is not None:
            if max(self.channels) >= samples.shape[1]:
                raise DataError(
                    f"{signal.record_id}: has {samples.shape[1]} channels, "
                    f"SignalFeaturizer.channels asks for {self.channels}"
                )
            samples = samples[:, self.channels]
        x = sig.resample(samples, signal.fs_hz, self.target_fs_hz)
        x = sig.bandpass_filter(
            x, self.target_fs_hz, low_hz=self.low_hz, high_hz=self.high_hz, order=self.filter_order
        )
        if self.normalize != "none":
            x = sig.normalize_per_record(x, robust=self.normalize == "robust")
        return x

    def fit(self, signals: Sequence[Signal]) -> SignalFeaturizer:
        """Record the channel count (the model's ``in_channels``) of the training signals."""
        if not signals:
            raise ValueError("SignalFeaturizer.fit needs at least one recording")
        counts = {
            s.samples.shape[1] if self.channels is None else len(self.channels) for s in signals
        }
        if len(counts) != 1:
            raise DataError(f"recordings disagree on the channel count: {sorted(counts)}")
        self.n_channels = counts.pop()
        return self

    def transform(self, signals: Sequence[Signal]) -> dict[str, np.ndarray]:
        """``values`` ``(N, T, C)`` zero-padded and ``lengths`` ``(N,)`` in samples."""
        if self.n_channels is None:
            raise RuntimeError("SignalFeaturizer.transform called before fit")
        values, lengths = sig.pad_batch(
            [self.preprocess(s) for s in signals], max_samples=self.max_samples
        )
        if values.shape[2] != self.n_channels:
            raise DataError(
                f"recordings have {values.shape[2]} channels, the featurizer was fitted on "
                f"{self.n_channels}"
            )
        return {"values": values, "lengths": lengths}

    def describe(self) -> FeaturizerDescription:
        """``values`` (N, T, C) at ``target_fs_hz`` and ``lengths`` (N,) in samples."""
        if self.n_channels is None:
            raise RuntimeError("SignalFeaturizer.describe called before fit")
        sizes = {"C": int(self.n_channels)}
        if self.max_samples is not None:
            sizes["T"] = self.max_samples
        return FeaturizerDescription(
            kind=self.kind,
            modality="signal",
            inputs="recordings (samples x channels at their own rate)",
            outputs=(
                ArraySpec("values", "float32", ("N", "T", "C"), sizes, "filtered, normalised"),
                ArraySpec("lengths", "int64", ("N",), {}, "samples before the padding"),
            ),
            step=f"sample at {self.target_fs_hz:g} Hz",
            step_size=1.0 / self.target_fs_hz,
            horizon=self.max_seconds,
            time_unit="s",
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: the options, the channel count and ``kind``."""
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SignalFeaturizer:
        """Inverse of :meth:`state_dict`; unknown keys are an error naming them."""
        state = dict(state)
        kind = state.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"not a {cls.kind!r} featurizer state: kind={kind!r}")
        check_known_keys("SignalFeaturizer state", state, list(cls.__dataclass_fields__))
        return cls(**state)
