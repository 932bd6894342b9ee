"""Sleep-EDF sleep staging over REST: the request body of the ``sleepedf`` spec.

Imported on the first request (pydantic), never when the dataset is read for training. The
body holds one or more nights, each a list of 30-s epochs in time order, each epoch its
feature vector by name::

    {"nights": [{"night_id": "n1", "epochs": [{"Fpz-Cz_delta": -22.39, ...}, ...]}]}

The features are those of the dataset's files, which a client computes from its own
recording of the Fpz-Cz and Pz-Oz EEG channels (100 Hz, volts) with the definitions of
``shared/data/sleepedf_features/SOURCE.md`` ("How they were computed"; ``docs/serving.md``
repeats them): per channel, ``log(mean Welch PSD in band + 1e-10)`` for delta, theta, alpha,
beta and gamma, the two ratios of those logs, ``log(var + 1e-10)`` and the Hjorth mobility
(:func:`medseq.features.signals.sleep_epochs.feature_names` gives the 72 names). Every epoch
needs the 18 base features; a bundle trained with ``context_columns`` also needs the 54
context features (``diff_*``, ``mean3_*``, ``sd3_*``), which a bundle without them refuses.
Send full float64 precision: the stored log powers hide powers below the ``1e-10`` floor,
which the featurizer recovers.

Send the epochs the model was trained on: from about 30 min before the first sleep epoch
to 30 min after the last (the dataset's window), without movement or unscored epochs
(joined, as in training). Each epoch is answered (``step`` = its position in the night);
the bidirectional model labels an epoch from the whole night sent, so a night is staged
when it is over, not as it is recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from medseq.features.signals.sleep_epochs import N_BASE, N_STORED, feature_names
from medseq.serving.requests import (
    ITEM_ID_PATTERN,
    MAX_ITEMS,
    Parsed,
    RequestContext,
    RequestError,
    item_ids,
    validate,
)
from medseq.serving.schemas import Number, Strict

#: Epochs per night: a whole day of 30-s epochs.
MAX_EPOCHS = 2 * 60 * 24
NAMES = tuple(feature_names(True))
COLUMN = {name: k for k, name in enumerate(NAMES)}

FeatureName = Annotated[str, Field(max_length=64)]


class NightIn(Strict):
    """One night: its epochs in time order, each its features by name."""

    night_id: str = Field(pattern=ITEM_ID_PATTERN)
    epochs: list[dict[FeatureName, Number]] = Field(min_length=1, max_length=MAX_EPOCHS)


class NightsRequest(Strict):
    """``POST /v1/predict`` for a sleep-staging bundle."""

    nights: list[NightIn] = Field(min_length=1, max_length=MAX_ITEMS)


def _matrix(night: NightIn, read: int, loc: tuple) -> np.ndarray:
    """The stored-feature rows ``(n, 72)`` of one night; NaN in the columns the bundle
    does not read. Unknown, unread and missing names are errors naming the epoch."""
    required = set(NAMES[:read])
    matrix = np.full((len(night.epochs), N_STORED), np.nan)
    for e, epoch in enumerate(night.epochs):
        for name in epoch:
            if name not in COLUMN:
                raise RequestError.at((*loc, e, name), "unknown feature; the names are "
                                      "listed in docs/serving.md (Sleep-EDF)")  # fmt: skip
            if COLUMN[name] >= read:
                raise RequestError.at(
                    (*loc, e, name),
                    f"this bundle reads the {N_BASE} base features only (trained without "
                    "context_columns); leave out the diff_, mean3_ and sd3_ features",
                )
        missing = required.difference(epoch)
        if missing:
            shown = sorted(missing, key=COLUMN.__getitem__)
            raise RequestError.at(
                (*loc, e), f"{len(missing)} features missing: {shown[:5]}; each epoch needs "
                f"the {read} features this bundle reads",
            )  # fmt: skip
        matrix[e, [COLUMN[n] for n in epoch]] = list(epoch.values())
    return matrix


def parse(body: Any, context: RequestContext) -> Parsed:
    """Nights -> :class:`~medseq.datasets.sleepedf.SleepEdfData` (ids 0..N-1, one step per
    epoch)."""
    from medseq.datasets.sleepedf import unlabelled_nights

    request = validate(NightsRequest, body)
    names = [n.night_id for n in request.nights]
    item_ids(names, ("body", "nights"))
    read = int(context.featurizer.n_features)
    matrices = [_matrix(n, read, ("body", "nights", k, "epochs"))
                for k, n in enumerate(request.nights)]  # fmt: skip
    steps = [list(range(len(m))) for m in matrices]
    data = unlabelled_nights(matrices)
    return Parsed(data, np.arange(len(matrices), dtype=np.int64), names, steps=steps)
