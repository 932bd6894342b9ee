"""Non-neural baselines on per-sample summary features (scikit-learn).

A recurrent model is only worth shipping if it beats these, so they run through the same
split, threshold selection and bootstrap as the neural models. The features are the
dataset spec's ``summaries`` (e.g. EEG band powers) or, when it has none, the ICU
per-variable summary statistics. Binary and multiclass tasks get classifiers (class
probabilities), regression tasks regressors.

Sequence-labelling tasks (multiclass labels per step, ``y`` of shape (N, T)) get a
per-step baseline instead: every labelled step of the dataset's own featurised ``values``
becomes one row, so the estimator sees exactly the inputs of the recurrent model but no
neighbouring step, which shows what the recurrence adds (:func:`fit_step_baseline`).
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medseq.datasets.registry import DatasetSpec, get_dataset
from medseq.experiment.config import ExperimentConfig
from medseq.experiment.data import Fold, LabelledSet
from medseq.features.icu.summary import summary_features

CLASSIFIED = ("binary", "multiclass")


def _estimator(kind: str, task_type: str, params: dict) -> Pipeline:
    if kind == "hist_gradient_boosting":
        cls = (
            HistGradientBoostingClassifier
            if task_type in CLASSIFIED
            else HistGradientBoostingRegressor
        )
        return make_pipeline(cls(random_state=0, **params))
    linear = (
        LogisticRegression(max_iter=2000, **params) if task_type in CLASSIFIED else Ridge(**params)
    )
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True), StandardScaler(), linear
    )


def _summaries(spec: DatasetSpec, split: LabelledSet) -> np.ndarray:
    if spec.summaries is not None:
        return np.asarray(spec.summaries(split.data, split.subject_ids), dtype=np.float64)
    matrix, _ = summary_features(split.data.events, split.data.static, split.subject_ids)
    return matrix


def _predictor(model: Pipeline, task_type: str):
    """Risk of class 1 (binary), class probabilities (multiclass) or values (regression)."""
    if task_type == "binary":
        return lambda x: model.predict_proba(x)[:, 1]
    if task_type == "multiclass":
        return model.predict_proba
    return model.predict


def fit_baseline(
    config: ExperimentConfig, folds: list[Fold], test: LabelledSet | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fit one estimator per fold on train summaries.

    Returns the validation labels, the (out-of-fold) validation predictions and the test
    predictions averaged over folds, exactly as the neural ensembles are scored.
    """
    if config.baseline is None:
        raise ValueError(f"{config.name}: fit_baseline needs a [baseline] section")
    spec = get_dataset(config.data.dataset)
    if config.task_type == "multiclass" and folds[0].train.y.ndim == 2:
        from medseq.experiment.step_baseline import fit_step_baseline

        return fit_step_baseline(config, folds, test)
    test_x = None if test is None else _summaries(spec, test)
    val_y, val_pred, test_pred = [], [], []
    for fold in folds:
        model = _estimator(config.baseline.kind, config.task_type, dict(config.baseline.params))
        fitting = fold.fitting()  # no early stopping here: the held-out part is fitted on
        model.fit(_summaries(spec, fitting), fitting.y)
        predict = _predictor(model, config.task_type)
        val_y.append(fold.val.y)
        val_pred.append(predict(_summaries(spec, fold.val)))
        if test_x is not None:
            test_pred.append(predict(test_x))
    test_mean = np.mean(test_pred, axis=0) if test_pred else None
    return np.concatenate(val_y), np.concatenate(val_pred), test_mean
