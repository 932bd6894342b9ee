"""The ``signal_streaming`` part of a dataset spec: how the service streams its signals.

A dataset whose bundles classify beats of a waveform (MIT-BIH) can be served as live
signal streams (``/v1/streams/...``, :mod:`medseq.serving.signal_routes`). The service
never names the dataset; it asks the spec for this part, which says which sampling rates
and which lead the bundle was trained on and builds the streaming detector of a bundle
(:class:`medseq.monitoring.detector.StreamDetector`, numpy only). A spec without the
part has the streams refused with a sentence naming the dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SignalStreaming:
    """What serving a dataset's bundle on live signal streams needs.

    Attributes
    ----------
    fs_hz : tuple of float
        Sampling rates the bundle accepts (those of its training recordings: the beat
        windows and RR features were fitted at these rates).
    lead : str
        The lead a stream must carry (the bundle's ``[features] lead``, else this).
    units : str
        Physical unit of the samples.
    model_fs_hz : float, optional
        The one rate the bundle's recordings were brought to in training (MIT-BIH + SVDB:
        128 Hz). A stream at another rate of ``fs_hz`` is resampled to it on the way in by
        the training resampler (:class:`~medseq.monitoring.resampled.ResampledDetector`);
        None: each stream runs at its own rate.
    lead_names : tuple of str
        Other names a stream may give the bundle's lead (MLII for the primary lead
        ``ECG1`` of MIT-BIH + SVDB).
    """

    fs_hz: tuple[float, ...]
    lead: str
    units: str = "mV"
    model_fs_hz: float | None = None
    lead_names: tuple[str, ...] = ()

    def lead_of(self, featurizer_state: dict[str, Any]) -> str:
        """The lead the bundle's featurizer was fitted on (this part's default)."""
        lead = featurizer_state.get("lead")
        return lead if isinstance(lead, str) and lead else self.lead

    def detector_factory(self, bundle_dir: str | Path) -> tuple[Callable[[float], Any], Any]:
        """(``make(fs_hz) -> StreamDetector``, the beat classifier) for a bundle.

        The bundle is read once; each stream's detector gets a shallow copy of the
        classifier (shared weights, its own beat context), so a new stream costs no
        file read and its checkpoint leaves the weights out.
        """
        from medseq.monitoring.beat_model import BeatClassifier
        from medseq.monitoring.detector import StreamDetector

        classifier = BeatClassifier.from_bundle(bundle_dir)

        def make(fs_hz: float) -> Any:
            own = copy.copy(classifier)
            own.reset()
            if self.model_fs_hz is None or fs_hz == self.model_fs_hz:
                return StreamDetector(own, fs_hz)
            from medseq.monitoring.resampled import ResampledDetector

            return ResampledDetector(StreamDetector(own, self.model_fs_hz), fs_hz)

        return make, classifier
