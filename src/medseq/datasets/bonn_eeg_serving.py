"""Bonn EEG segments over REST: the request body of the ``bonn_eeg`` spec.

Imported on the first request (pydantic), never when a dataset is read for training. The
body is the arrays form of the ECG bodies (:mod:`medseq.datasets.ecg_serving`), one
single-channel segment per record::

    {"records": [{"record_id": "seg-1", "fs_hz": 173.61, "samples": [...]}]}

``samples`` are in the amplifier units the model was trained on (the Bonn files' integers);
the bundle's featurizer band-passes and resamples them to its own rate, as in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.ecg_serving import RecordsRequest, _signal
from medseq.serving.requests import Parsed, RequestContext, RequestError, item_ids, validate


def parse(body: Any, context: RequestContext) -> Parsed:
    """Arrays body -> :class:`~medseq.datasets.bonn_eeg.BonnData` (ids 0..N-1, unlabelled)."""
    from medseq.datasets.bonn_eeg import BonnData

    request = validate(RecordsRequest, body)
    names = [r.record_id for r in request.records]
    item_ids(names, ("body", "records"))
    signals = {k: _signal(r, k) for k, r in enumerate(request.records)}
    for k, signal in signals.items():
        if signal.samples.shape[1] != 1:
            raise RequestError.at(
                ("body", "records", k, "samples"),
                f"a Bonn EEG model reads one channel, got {signal.samples.shape[1]}",
            )
    sets = pd.Series([], dtype=object, index=pd.Index([], dtype=np.int64, name="subject_id"))
    return Parsed(BonnData(signals, sets), np.arange(len(signals), dtype=np.int64), names)
