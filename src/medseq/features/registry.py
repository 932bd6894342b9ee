"""Fitted featurizers back from their JSON state, whatever modality they serve.

A bundle stores ``featurizer.state_dict()``, which names the featurizer's ``kind``; this
table turns the kind back into a class, imported only when needed. A new featurizer is
one line here plus a class with a ``kind`` class attribute, ``state_dict()`` (plain
JSON, including ``"kind"``) and a ``from_state_dict(state)`` classmethod.
"""

from __future__ import annotations

from typing import Any

from medseq._imports import load_object

#: kind -> "module:Class"
FEATURIZERS: dict[str, str] = {
    "ICUFeaturizer": "medseq.features.icu.featurizer:ICUFeaturizer",
    "hourly_icu": "medseq.features.icu.hourly:HourlyICUFeaturizer",
    "smiles": "medseq.features.molecules.smiles:SmilesFeaturizer",
    "volume": "medseq.features.images.volumes:VolumeFeaturizer",
    "signal": "medseq.features.signals.signal_featurizer:SignalFeaturizer",
    "signal_band_power": "medseq.features.signals.band_power:BandPowerSignalFeaturizer",
    "beats": "medseq.features.signals.beat_featurizer:BeatFeaturizer",
    "beats_rhythm": "medseq.features.signals.rhythm_summary:RhythmBeatFeaturizer",
    "VisitFeaturizer": "medseq.features.histories.visits:VisitFeaturizer",
    "sleep_epochs": "medseq.features.signals.sleep_epochs:SleepEpochFeaturizer",
}


def featurizer_from_state_dict(state: dict[str, Any]) -> Any:
    """Rebuild a fitted featurizer from ``state``, dispatched on ``state["kind"]``."""
    if not isinstance(state, dict):
        raise TypeError(f"a featurizer state must be a dict, got {type(state).__name__}")
    kind = state.get("kind")
    if kind not in FEATURIZERS:
        raise ValueError(
            f"unknown featurizer kind {kind!r} in the state; known kinds: {sorted(FEATURIZERS)}"
        )
    return load_object(FEATURIZERS[kind]).from_state_dict(state)
