"""Apply a saved bundle to a data file: its predictions, or its metrics on labelled data.

The bundle names its dataset; that dataset's spec reads the file and featurises it with
the bundle's fitted featurizer, so a file is read the same way it was during training.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.evaluation.scoring import metrics_with_cis, sample_groups
from medseq.experiment.data import resolve_data_path
from medseq.predictions import (
    ids_to_predict,
    output_lengths,
    prediction_frame,
    sample_keys,
    with_sample_keys,
)

logger = logging.getLogger(__name__)


def evaluate_bundle(bundle_dir: str | Path, data_path: str | Path, *, n_boot: int = 1000):
    """Metrics with CIs of a saved bundle on a labelled set, at the bundle's threshold.

    On the bundle's own training file under a split protocol, only the protocol's test
    part is scored (:mod:`medseq.experiment.evaluation_set`). Where several samples belong
    to one patient (the spec's ``groups``), the bootstrap resamples patients.
    """
    from medseq.bundle import load_bundle
    from medseq.experiment.evaluation_set import evaluation_set

    bundle = load_bundle(bundle_dir)
    chosen = evaluation_set(bundle, data_path)
    if chosen.note:
        logger.warning("%s", chosen.note)
    ids = chosen.labels.index.to_numpy()
    pred = bundle.predict_arrays(chosen.spec.transform(bundle.featurizer, chosen.data, ids))
    return metrics_with_cis(
        chosen.spec,
        bundle.dataset_task,
        bundle.task,
        chosen.labels.to_numpy(dtype=np.float32),
        pred,
        threshold=bundle.threshold,
        class_names=bundle.class_names,
        n_boot=n_boot,
        groups=sample_groups(chosen.spec, bundle.dataset_task, chosen.data, ids),
    )


def predict_file(bundle_dir: str | os.PathLike, data_path: str | os.PathLike) -> pd.DataFrame:
    """Predictions of a saved bundle for every subject in ``data_path``.

    Every subject the reader returns is predicted, labelled or not; datasets whose reader
    has no subject table are predicted for their labelled subjects.
    """
    from medseq.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    spec = bundle.spec()
    data = spec.read(resolve_data_path(data_path))
    ids = ids_to_predict(spec, data, bundle.dataset_task)
    features = spec.transform(bundle.featurizer, data, ids)
    pred = bundle.predict_arrays(features)
    lengths = output_lengths(features, pred)
    frame = prediction_frame(ids, pred, bundle.task, bundle.threshold, bundle.class_names, lengths)
    if lengths is None and np.ndim(pred) < 3:  # one row per sample: its patient and time
        frame = with_sample_keys(frame, sample_keys(spec, bundle.dataset_task, data, ids))
    return frame
