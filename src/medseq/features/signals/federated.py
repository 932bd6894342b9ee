"""Fit the ECG featurizers across sites from per-site moments (no recording leaves a site).

* :class:`BeatFederatedFit`: a :class:`~medseq.features.signals.beat_featurizer.
  BeatFeaturizer` z-scores every beat-feature column with the mean and SD over the training
  beats, and a :class:`~medseq.features.signals.rhythm_summary.RhythmBeatFeaturizer` also
  z-scores each record-level summary over the training recordings (finite values only).
  Both are moments: each site sends, per column, the count, mean and sum of squared
  deviations of its own beats and recordings (:func:`~medseq.features.federated.
  column_moments`), and the server pools them exactly (Chan's parallel update), so the
  result equals the featurizer fitted on the union of the sites' training recordings up to
  float rounding. One stage, ``moments``.
* :class:`SignalFederatedFit`: a :class:`~medseq.features.signals.signal_featurizer.
  SignalFeaturizer` learns only the channel count; each site sends its own, and sites
  that disagree are an error.

What leaks: per-column beat counts, means and spreads of a site (and its number of
recordings), nothing per patient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medseq.features.federated import (
    FederatedFit,
    column_moments,
    merge_moments,
    require_replies,
)
from medseq.features.signals.beat_featurizer import BeatFeaturizer
from medseq.features.signals.rhythm_summary import RhythmBeatFeaturizer
from medseq.features.signals.signal_featurizer import SignalFeaturizer
from medseq.schema import Signal

#: ``(data, ids) -> recordings``: a site's training recordings, in ``ids`` order.
Recordings = Callable[[Any, np.ndarray], list[Signal]]


class BeatFederatedFit(FederatedFit):
    """Beat-feature (and rhythm-summary) z-scoring from per-site moments.

    Parameters
    ----------
    make : callable ``() -> BeatFeaturizer``
        The unfitted featurizer of the ``[features]`` table (a ``RhythmBeatFeaturizer``
        when it has rhythm summaries).
    recordings : callable ``(data, ids) -> list of Signal``
    """

    stages = ("moments",)

    def __init__(self, make: Callable[[], BeatFeaturizer], recordings: Recordings) -> None:
        self.make = make
        self.recordings = recordings
        self._featurizer: BeatFeaturizer | None = None

    def _site_featurizer(self) -> BeatFeaturizer:
        # one unfitted featurizer per process keeps its detected-peak and feature caches
        if self._featurizer is None:
            self._featurizer = self.make()
        return self._featurizer

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        featurizer = self._site_featurizer()
        signals = self.recordings(data, np.asarray(ids, dtype=np.int64))
        matrices = [featurizer.raw_features(s)[0] for s in signals]
        beats = [m for m in matrices if len(m)]
        table = np.concatenate(beats) if beats else np.zeros((0, featurizer.n_features))
        out: dict[str, Any] = {"beats": column_moments(table), "n_recordings": len(signals)}
        if isinstance(featurizer, RhythmBeatFeaturizer):
            summaries = np.stack([featurizer.raw_summaries(s) for s in signals])
            out["summaries"] = column_moments(summaries)
        return out

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        require_replies(stage, replies)
        featurizer = self.make()
        n, mean, var = merge_moments([r["beats"] for r in replies])
        if n.size == 0 or n.max() < 2:
            raise ValueError(
                f"federated beat statistics: the sites hold {int(n.max(initial=0))} training "
                "beats between them; at least two are needed"
            )
        std = np.sqrt(var)
        featurizer.mean = mean.astype(float).tolist()
        featurizer.std = np.where(std > 1e-6, std, 1.0).astype(float).tolist()
        if isinstance(featurizer, RhythmBeatFeaturizer):
            if sum(int(r["n_recordings"]) for r in replies) < 2:
                raise ValueError("federated rhythm summaries need at least two recordings")
            n_s, mean_s, var_s = merge_moments([r["summaries"] for r in replies])
            std_s = np.sqrt(var_s)
            featurizer.summary_mean = np.where(n_s > 0, mean_s, 0.0).astype(float).tolist()
            keep = (n_s > 0) & (std_s > 1e-9)
            featurizer.summary_std = np.where(keep, std_s, 1.0).astype(float).tolist()
        return featurizer.state_dict()


class SignalFederatedFit(FederatedFit):
    """The channel count of a :class:`SignalFeaturizer`, the only thing it learns.

    Parameters
    ----------
    make : callable ``() -> SignalFeaturizer``
        The unfitted featurizer of the ``[features]`` table.
    recordings : callable ``(data, ids) -> list of Signal``
    """

    stages = ("channels",)

    def __init__(self, make: Callable[[], SignalFeaturizer], recordings: Recordings) -> None:
        self.make = make
        self.recordings = recordings

    def site_statistics(
        self, stage: str, payload: Any, data: Any, ids: np.ndarray
    ) -> dict[str, Any]:
        self.check_stage(stage)
        signals = self.recordings(data, np.asarray(ids, dtype=np.int64))
        return {"n_channels": self.make().fit(signals).n_channels}

    def merge(self, stage: str, payload: Any, replies: Sequence[dict[str, Any]]) -> Any:
        self.check_stage(stage)
        require_replies(stage, replies)
        counts = sorted({int(r["n_channels"]) for r in replies})
        if len(counts) != 1:
            raise ValueError(f"federated signal statistics: sites disagree on channels {counts}")
        featurizer = self.make()
        featurizer.n_channels = counts[0]
        return featurizer.state_dict()
