"""PhysioNet/CinC 2019 sepsis early warning as a :class:`~medseq.datasets.registry.DatasetSpec`.

Task ``sepsis_6h``: causal sequence labelling. At every ICU hour ``t`` of a stay the model
predicts ``SepsisLabel[t]`` (1 from 6 h before clinical onset, see SOURCE.md) from the hours
``<= t`` only: a unidirectional recurrence (``ConvRNN`` with ``mode="sequence"``,
``conv_channels = []``, ``bidirectional = false``) over :class:`~medseq.features.icu.hourly.
HourlyICUFeaturizer`'s per-hour vectors, trained with the per-step masked cross-entropy of
the runner's sequence mode (two classes per hour, ``y`` of shape ``(N, T)``, NaN after the
stay). A bidirectional model would read the stay's end, and septic records end at most 3 h
after onset: the length alone gives the label away.

Time axis: hour 0 is the stay's first row (``ICULOS`` of the first row, which is not always
1), as in the Challenge's scorer, which counts rows. The grid covers the first
:data:`HORIZON_HOURS` hours of every stay (the median stay is 38-39 h, 90 % are shorter
than ~ 60 h); the labels of later hours are not scored by the runner's metrics, so figures
from this spec are "first 72 h" figures, and a septic stay whose labels start later counts
as non-septic there. Whole-stay scoring is the streaming replay's job (issue 15, item 4).
An ``ICULOS`` event (hours since ICU admission) is added at every charted hour, so every
charted hour is inside the grid's ``lengths`` and the model knows the time since admission.

Protocols: ``internal`` (5-fold cross-validation by patient over A and B pooled, stratified
by septic status), ``external_a_to_b`` and ``external_b_to_a`` (train and validate on one
hospital system, test on every patient of the other), ``hold_out`` (a fifth of each system's
patients as a test part, the rest for training and validation: the federated runs' held-out
patients). Partition ``hospital``: the two systems as two federated sites; the hourly
featurizer is fitted across them from per-site counts and moments
(:class:`~medseq.features.icu.federated.HourlyFederatedFit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.features.icu.hourly import HourlyICUFeaturizer
from medseq.schema import DataError, check_known_keys
from medseq.serving.requests import LazyBody, LazyModule
from medseq.sources import physionet2019

HORIZON_HOURS = 72
CLASS_NAMES = ("no_sepsis", "sepsis")
N_FOLDS, VALIDATION_SHARE, SEED = 5, 0.2, 0
FEATURIZER_KEYS = (
    "n_steps", "impute", "variables", "static_columns", "clip_quantiles", "log_variables",
    "aggregate", "delta_scale",
)  # fmt: skip


def read(path: Path) -> physionet2019.PhysioNet2019Set:
    """The reader's tables, with the events on the grid's clock (hour 0 = first row) and an
    ``ICULOS`` event at every charted hour."""
    return on_grid_clock(physionet2019.read(path))


def on_grid_clock(data: physionet2019.PhysioNet2019Set) -> physionet2019.PhysioNet2019Set:
    """The reader's tables on the grid's clock (see :func:`read`); a REST body's rows take
    the same step (:mod:`medseq.datasets.physionet2019_serving`)."""
    hours = data.labels
    first = hours.groupby("subject_id")["iculos"].min()
    clock = pd.DataFrame(
        {
            "subject_id": hours["subject_id"].to_numpy(),
            "time": (hours["iculos"] - first.reindex(hours["subject_id"]).to_numpy()).to_numpy(
                np.float64
            ),
            "code": "ICULOS",
            "value": hours["iculos"].to_numpy(np.float64),
        }
    )
    events = data.events
    shifted = events.assign(time=events["time"] - first.reindex(events["subject_id"]).to_numpy())
    both = pd.concat([clock, shifted], ignore_index=True)
    order = np.lexsort((both["time"].to_numpy(), both["subject_id"].to_numpy()))
    events = both.iloc[order].reset_index(drop=True)
    return physionet2019.PhysioNet2019Set(events, data.static, data.labels, data.report)


def hourly_labels(data: physionet2019.PhysioNet2019Set, horizon: int = HORIZON_HOURS):
    """``(n_stays, horizon)`` labels by row (NaN after the stay), indexed by subject_id."""
    hours = data.labels
    ids, start = np.unique(hours["subject_id"].to_numpy(), return_index=True)
    row = np.arange(len(hours)) - np.repeat(start, np.diff(np.r_[start, len(hours)]))
    keep = row < horizon
    table = np.full((len(ids), horizon), np.nan, dtype=np.float32)
    stay = np.searchsorted(ids, hours["subject_id"].to_numpy()[keep])
    table[stay, row[keep]] = hours["sepsis_label"].to_numpy()[keep]
    return pd.DataFrame(table, index=pd.Index(ids, name="subject_id"))


def _labels(task: str, data: physionet2019.PhysioNet2019Set) -> pd.DataFrame:
    if task != "sepsis_6h":
        raise ValueError(f"unknown PhysioNet 2019 task {task!r}; supported: ['sepsis_6h']")
    return hourly_labels(data)


def _params(features: dict[str, Any]) -> dict[str, Any]:
    """The featurizer's arguments from ``[features]`` (the grid spans the labelled hours)."""
    check_known_keys("[features] (physionet2019)", features, FEATURIZER_KEYS)
    if features.get("n_steps", HORIZON_HOURS) != HORIZON_HOURS:
        raise ValueError(
            f"[features] n_steps = {features['n_steps']}: the sepsis_6h labels cover "
            f"the first {HORIZON_HOURS} hours (HORIZON_HOURS); leave n_steps out"
        )
    params = {"static_columns": list(physionet2019.DESCRIPTORS), **features}
    params["n_steps"] = HORIZON_HOURS
    return params


def _fit(features: dict[str, Any], data, ids: np.ndarray) -> HourlyICUFeaturizer:
    return HourlyICUFeaturizer(**_params(features)).fit(data.events, data.static, ids)


def _federated_fit(features: dict[str, Any]) -> Any:
    """The hourly featurizer fitted across sites from per-site counts and moments."""
    from medseq.features.icu.federated import HourlyFederatedFit

    return HourlyFederatedFit(_params(features), lambda data, ids: (data.events, data.static))


def _transform(featurizer: HourlyICUFeaturizer, data, ids: np.ndarray) -> dict[str, np.ndarray]:
    return featurizer.transform(data.events, data.static, ids)


def _sizes(featurizer: HourlyICUFeaturizer) -> dict[str, int]:
    return {"in_channels": featurizer.n_features, "n_outputs": len(CLASS_NAMES)}


def _septic(labels: pd.DataFrame) -> np.ndarray:
    return (np.nan_to_num(labels.to_numpy(), nan=0.0).max(axis=1) > 0).astype(np.int64)


def internal(spec: Any, data, labels: pd.DataFrame) -> SplitIds:
    """5 folds by patient over both systems, each fold's septic share the cohort's."""
    ids, septic = labels.index.to_numpy(), _septic(labels)
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=SEED).split(ids, septic)
    return SplitIds(folds=[(ids[tr], ids[va]) for tr, va in folds])


def _external(train_system: str, test_system: str):
    def protocol(spec: Any, data, labels: pd.DataFrame) -> SplitIds:
        system = data.static["hospital"].reindex(labels.index).astype(str).to_numpy()
        ids, septic = labels.index.to_numpy(), _septic(labels)
        own, other = system == train_system, system == test_system
        if not own.any() or not other.any():
            raise DataError(
                f"external_{train_system.lower()}_to_{test_system.lower()}: needs patients "
                f"of both systems, got {int(own.sum())} of {train_system} and "
                f"{int(other.sum())} of {test_system} (read the folder holding both sets)"
            )
        from sklearn.model_selection import train_test_split

        train, val = train_test_split(
            ids[own], test_size=VALIDATION_SHARE, stratify=septic[own], random_state=SEED
        )
        return SplitIds(folds=[(np.sort(train), np.sort(val))], test=ids[other])

    protocol.__doc__ = f"Train and validate on system {train_system}, test on {test_system}."
    return protocol


def hold_out(spec: Any, data, labels: pd.DataFrame) -> SplitIds:
    """A fifth of the patients as the test part, stratified by hospital system and septic
    status (so both systems and the septic share are represented); the rest split 80/20
    into training and validation the same way."""
    from sklearn.model_selection import train_test_split

    ids = labels.index.to_numpy()
    system = data.static["hospital"].reindex(labels.index).astype(str).to_numpy()
    strata = np.char.add(system.astype(str), _septic(labels).astype(str))
    rest, test = train_test_split(ids, test_size=0.2, stratify=strata, random_state=SEED)
    keep = np.isin(ids, rest)
    train, val = train_test_split(
        ids[keep], test_size=VALIDATION_SHARE, stratify=strata[keep], random_state=SEED
    )
    return SplitIds(folds=[(np.sort(train), np.sort(val))], test=np.sort(test))


def _patients(task: str, data, ids: np.ndarray) -> np.ndarray:
    """One sample per stay and one stay per patient id: the id is its own group."""
    return np.asarray(ids, dtype=np.int64)


def hospital_partition(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """The two hospital systems as two federated sites (``A``, ``B``); ``n_sites``,
    ``alpha`` and ``seed`` do not apply (the data fixes the sites)."""
    from medseq.datasets import partitions

    system = data.static["hospital"].astype(str).reindex(labels.index)
    return partitions.by_column(system, {"A": "A", "B": "B"})


def _scored_hours(y_true: np.ndarray, y_prob: np.ndarray):
    """The labelled hours of every stay, flat, with each stay's count of them."""
    y = np.asarray(y_true, dtype=np.float64)
    risk = np.asarray(y_prob, dtype=np.float64)[..., 1]
    steps = min(y.shape[1], risk.shape[1])
    y, risk = y[:, :steps], risk[:, :steps]
    scored = ~np.isnan(y)
    lengths = scored.sum(axis=1)
    keep = lengths > 0
    if not keep.any() or not (np.diff(scored[keep].astype(np.int8), axis=1) <= 0).all():
        raise ValueError("sepsis_6h metrics: labels must be a prefix of hours per stay")
    return y[scored], risk[scored], lengths[keep]


def metrics(
    task: str, y_true: np.ndarray, y_prob: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Utility and the early-warning figures over the scored hours, alarming at
    ``threshold`` (chosen on validation data by :func:`alarm_threshold`); without one, at
    0.5, and the names say so (``utility@0.5``)."""
    from medseq.evaluation.early_warning import early_warning_metrics

    labels, risks, lengths = _scored_hours(y_true, y_prob)
    at = 0.5 if threshold is None else float(threshold)
    figures = early_warning_metrics(labels, risks, lengths, threshold=at)
    ranking = {"auroc": "hourly_auroc", "auprc": "hourly_auprc"}  # no threshold involved
    suffix = "@0.5" if threshold is None else ""
    return {ranking.get(k, f"{k}{suffix}"): v for k, v in figures.items()}


def alarm_threshold(task: str, y_val: np.ndarray, prob_val: np.ndarray) -> float:
    """The utility-maximising alarm threshold on validation predictions (exact, over every
    distinct risk). When alarming on nothing is best, 1.0: no hour can exceed it with a
    probability below one, and the bundle keeps a finite threshold."""
    from medseq.evaluation.utility import best_utility_threshold

    labels, risks, lengths = _scored_hours(y_val, prob_val)
    threshold = best_utility_threshold(labels, risks, lengths)[0]
    return float(min(threshold, 1.0))


#: A stay's first three ICU hours, as the Challenge's rows (variables by name, units of
#: SOURCE.md; missing: not measured that hour).
HOURS_EXAMPLE = {"patients": [{"patient_id": "stay-1", "hours": [
    {"ICULOS": 1, "HR": 97.0, "O2Sat": 95.0, "Temp": 36.9, "SBP": 121.0, "MAP": 80.0,
     "Resp": 19.0, "Age": 68.5, "Gender": 1, "Unit1": 0, "Unit2": 1, "HospAdmTime": -0.03},
    {"ICULOS": 2, "HR": 102.0, "O2Sat": 94.0, "Resp": 22.0, "Lactate": 2.1, "WBC": 13.4,
     "Creatinine": 1.3, "Platelets": 180.0},
    {"ICULOS": 3, "HR": 108.0, "Temp": 38.4, "MAP": 64.0, "FiO2": 0.4, "pH": 7.31},
]}]}  # fmt: skip

#: The FHIR form: vital-sign Observations binned into the Challenge's hours (hour 0 =
#: Encounter.period.start; an observation at 0.5 h is ICULOS 1).
FHIR_EXAMPLE = {"resourceType": "Bundle", "type": "collection", "entry": [
    {"resource": {"resourceType": "Patient", "id": "stay-1", "gender": "male",
                  "birthDate": "1956-05-01"}},
    {"resource": {"resourceType": "Encounter", "status": "in-progress",
                  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "IMP"},
                  "subject": {"reference": "Patient/stay-1"},
                  "period": {"start": "2024-03-01T08:00:00+00:00"}}},
    {"resource": {"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                  "subject": {"reference": "Patient/stay-1"},
                  "effectiveDateTime": "2024-03-01T08:30:00+00:00",
                  "valueQuantity": {"value": 97, "system": "http://unitsofmeasure.org",
                                    "code": "/min"}}},
    {"resource": {"resourceType": "Observation", "status": "final",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                  "subject": {"reference": "Patient/stay-1"},
                  "effectiveDateTime": "2024-03-01T09:40:00+00:00",
                  "valueQuantity": {"value": 38.4, "system": "http://unitsofmeasure.org",
                                    "code": "Cel"}}},
]}  # fmt: skip

PHYSIONET2019 = DatasetSpec(
    name="physionet2019",
    tasks={"sepsis_6h": "multiclass"},
    read=read,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    class_names=lambda task, data: list(CLASS_NAMES),
    protocols={
        "internal": internal,
        "external_a_to_b": _external("A", "B"),
        "external_b_to_a": _external("B", "A"),
        "hold_out": hold_out,
    },
    metrics=metrics,
    alarm_threshold=alarm_threshold,
    groups=_patients,
    partitions={"hospital": hospital_partition},
    federated_fit=_federated_fit,
    streaming=LazyModule("medseq.datasets.physionet2019_stream"),
    request=LazyBody("medseq.datasets.physionet2019_serving:parse", "icu_hours", HOURS_EXAMPLE),
    fhir=LazyBody("medseq.datasets.physionet2019_fhir:parse", "icu_vitals_fhir", FHIR_EXAMPLE),
)
