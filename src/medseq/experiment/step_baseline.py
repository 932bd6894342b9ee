"""A per-step baseline for sequence-labelling tasks: one row per labelled step, no context.

A recurrence over a sequence earns its keep only if it labels steps better than a model
that sees each step alone. This fits a scikit-learn classifier on the rows of the dataset's
own featurised ``values`` (the recurrent model's exact inputs, from a featurizer fitted on
the fold's training samples), one row per labelled step, and predicts every valid step,
so the runner scores it over the same folds, steps and metrics as the recurrent model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medseq.datasets.registry import DatasetSpec, get_dataset
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import Fold, LabelledSet

logger = logging.getLogger(__name__)


def step_classifier(kind: str, params: dict[str, Any]) -> Any:
    """The ``[baseline] kind`` as a multiclass classifier with ``predict_proba``."""
    if kind == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=0, **params)
    imputer = SimpleImputer(strategy="median", add_indicator=True)  # history features: NaN
    return make_pipeline(imputer, StandardScaler(), LogisticRegression(max_iter=2000, **params))


def _inputs(
    spec: DatasetSpec, featurizer: Any, split: LabelledSet, baseline: Any = None
) -> dict[str, np.ndarray]:
    """The per-step rows: the transform's ``values``, or their history features."""
    arrays = spec.transform(featurizer, split.data, split.subject_ids)
    if "values" not in arrays or "lengths" not in arrays:
        raise ValueError(
            f"dataset {spec.name!r}: a per-step baseline needs 'values' (N, T, F) and "
            f"'lengths' from its transform, got {sorted(arrays)}"
        )
    if baseline is None or baseline.features == "inputs":
        return arrays
    from medseq.features.icu.history_features import history_features

    channels = featurizer.describe().feature_names.get("C")
    if not channels:
        raise ValueError(
            f"dataset {spec.name!r}: [baseline] features = 'history' needs the featurizer "
            "to name its channels (describe().feature_names['C'])"
        )
    table = history_features(
        arrays["values"], arrays["lengths"], channels, baseline.history_window_hours
    )
    return {"values": table, "lengths": arrays["lengths"]}


def _rows(arrays: dict[str, np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = min(arrays["values"].shape[1], y.shape[1])
    values, y = arrays["values"][:, :steps], y[:, :steps]
    labelled = ~np.isnan(y)
    return values[labelled], y[labelled].astype(np.int64)


def _predict_steps(model: Any, arrays: dict[str, np.ndarray], n_classes: int) -> np.ndarray:
    """Probabilities ``(N, T, n_classes)`` at every valid step, NaN beyond ``lengths``."""
    values, lengths = arrays["values"], arrays["lengths"]
    out = np.full((*values.shape[:2], n_classes), np.nan, dtype=np.float64)
    valid = np.arange(values.shape[1])[None, :] < lengths[:, None]
    prob = np.zeros((int(valid.sum()), n_classes))
    prob[:, model.classes_] = model.predict_proba(values[valid])
    out[valid] = prob
    return out


def fit_step_baseline(
    config: ExperimentConfig, folds: list[Fold], test: LabelledSet | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One classifier per fold on the labelled steps of its training samples.

    Returns the validation labels ``(N, T)``, the out-of-fold probabilities ``(N, T, K)``
    and the test probabilities averaged over the folds' classifiers (None without a test
    set), as :func:`medseq.experiment.baselines.fit_baseline` does for one-label tasks.
    """
    if config.baseline is None:
        raise ValueError(f"{config.name}: a per-step baseline needs a [baseline] section")
    spec = get_dataset(config.data.dataset)
    names = spec.class_names(config.data.task, folds[0].train.data) if spec.class_names else None
    n_classes = len(names) if names else int(np.nanmax(folds[0].train.y)) + 1
    val_y, val_pred, test_pred = [], [], []
    for k, fold in enumerate(folds):
        fitting = fold.fitting()  # no early stopping here: the held-out part is fitted on
        featurizer = spec.fit_featurizer(dict(config.features), fitting.data, fitting.subject_ids)
        x, y = _rows(_inputs(spec, featurizer, fitting, config.baseline), fitting.y)
        model = step_classifier(config.baseline.kind, dict(config.baseline.params)).fit(x, y)
        logger.info("fold %d: %s fitted on %d steps", k, config.baseline.kind, len(y))
        val_y.append(fold.val.y)
        val_inputs = _inputs(spec, featurizer, fold.val, config.baseline)
        val_pred.append(_predict_steps(model, val_inputs, n_classes))
        if test is not None:
            test_inputs = _inputs(spec, featurizer, test, config.baseline)
            test_pred.append(_predict_steps(model, test_inputs, n_classes))
    test_mean = np.mean(test_pred, axis=0) if test_pred else None
    return np.concatenate(val_y), np.concatenate(val_pred), test_mean
