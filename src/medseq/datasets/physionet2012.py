"""PhysioNet 2012 ICU stays as a :class:`~medseq.datasets.registry.DatasetSpec`.

The data object is the reader's :class:`~medseq.sources.physionet2012.PhysioNet2012Set`
(event table, static descriptors, outcomes); the featurizer is
:class:`~medseq.features.ICUFeaturizer`, whose ``[features]`` table is its keyword
arguments.

Serving (:mod:`medseq.datasets.physionet2012_serving`, imported on the first request):
``POST /v1/predict`` takes the event table as JSON or a FHIR R4 Bundle of LOINC-coded
Observations, and the streaming routes advance one stay an observation at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets import partitions
from medseq.datasets.registry import DatasetSpec
from medseq.features import ICUFeaturizer
from medseq.serving.requests import LazyBody, LazyModule
from medseq.sources import physionet2012
from medseq.tasks.physionet2012 import (
    LOS_CLASS_NAMES,
    OUTCOME_LABELS,
    length_of_stay_class_labels,
    length_of_stay_labels,
    mortality_labels,
    outcome_labels,
)

LABELLERS = {
    "mortality": mortality_labels,
    "length_of_stay": length_of_stay_labels,
    "length_of_stay_class": length_of_stay_class_labels,
    "outcomes": outcome_labels,
}
CLASS_NAMES = {"length_of_stay_class": LOS_CLASS_NAMES, "outcomes": OUTCOME_LABELS}
#: Site names of PhysioNet 2012's ICUType codes (the Challenge's own labels).
ICU_TYPE_NAMES: dict[int, str] = {
    1: "coronary_care",
    2: "cardiac_surgery",
    3: "medical",
    4: "surgical",
}


def _read(path: Path) -> physionet2012.PhysioNet2012Set:
    return physionet2012.read(path)


def _labels(task: str, data: physionet2012.PhysioNet2012Set) -> pd.Series:
    if task not in LABELLERS:
        raise ValueError(f"unknown task {task!r}; supported: {sorted(LABELLERS)}")
    return LABELLERS[task](data)


def _fit(features: dict[str, Any], data, ids: np.ndarray) -> ICUFeaturizer:
    return ICUFeaturizer(**features).fit(data.events, data.static, ids)


def _transform(featurizer: ICUFeaturizer, data, ids: np.ndarray) -> dict[str, np.ndarray]:
    return featurizer.transform(data.events, data.static, ids)


def _class_names(task: str, data) -> list[str]:
    return list(CLASS_NAMES.get(task, ()))


def _sizes(featurizer: ICUFeaturizer) -> dict[str, int]:
    return {"input_size": featurizer.n_features, "static_size": featurizer.n_static}


# -- what the report and the model card read (spec parts ``subgroups``, ``card_notes``) ------
MISSING = "not recorded"
AGE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0.0, 50.0, "<50"),
    (50.0, 65.0, "50-64"),
    (65.0, 80.0, "65-79"),
    (80.0, np.inf, "80+"),
)
SEXES = {0.0: "female", 1.0: "male"}
ICU_TYPES = {
    1.0: "Coronary Care",
    2.0: "Cardiac Surgery Recovery",
    3.0: "Medical",
    4.0: "Surgical",
}


def _ordered(labels: pd.Series, order: list[str]) -> pd.Series:
    """Categorical labels, so tables and plots list groups in a meaningful order."""
    return labels.astype(pd.CategoricalDtype([*order, MISSING], ordered=True))


def age_bands(age: pd.Series) -> pd.Series:
    """Age in years -> band label (``<50``, ``50-64``, ``65-79``, ``80+``, not recorded)."""
    out = pd.Series(MISSING, index=age.index, dtype=object)
    for lo, hi, label in AGE_BANDS:
        out[(age >= lo) & (age < hi)] = label
    return _ordered(out, [label for _, _, label in AGE_BANDS])


def physionet2012_subgroups(static: pd.DataFrame) -> dict[str, pd.Series]:
    """Age band, sex and ICU type of each stay, from the PhysioNet 2012 descriptors."""
    return {
        "age": age_bands(static["Age"]),
        "sex": _ordered(static["Gender"].map(SEXES).fillna(MISSING), list(SEXES.values())),
        "ICU type": _ordered(
            static["ICUType"].map(ICU_TYPES).fillna(MISSING), list(ICU_TYPES.values())
        ),
    }


def _subgroups(data, ids: np.ndarray) -> dict[str, pd.Series]:
    return physionet2012_subgroups(data.static.loc[np.asarray(ids, dtype=np.int64)])


INTENDED_USE: dict[str, dict[str, Any]] = {
    "mortality": {
        "task": "in-hospital mortality risk of an adult ICU stay from its first 48 hours",
        "primary_use": (
            "decision support and research: flag stays at high risk for review by the care "
            "team, and compare risk-adjusted outcomes between units"
        ),
        "users": "ICU clinicians, quality teams and researchers",
        "out_of_scope": [
            "automated decisions about treatment limitation or triage without clinician review",
            "children, or patients outside ICUs",
            "predictions before enough hours of data have been charted (risks from very short "
            "windows were not validated)",
        ],
    },
    "length_of_stay": {
        "task": "length of stay (days) of an adult ICU stay from its first 48 hours",
        "primary_use": "bed and staffing planning; research",
        "users": "ICU managers and researchers",
        "out_of_scope": ["decisions about an individual patient's discharge"],
    },
}
DATA_NOTE = (
    "PhysioNet/CinC Challenge 2012: adult stays in coronary care, cardiac surgery "
    "recovery, medical and surgical ICUs of one US hospital database; 37 time series "
    "and 5 descriptors over the first 48 h. Set C (the official external set) is not "
    "available to this project, so no truly external site was tested."
)


def _card_notes(task: str) -> dict[str, Any]:
    notes: dict[str, Any] = {"data": [DATA_NOTE]}
    if task in INTENDED_USE:
        notes["intended_use"] = INTENDED_USE[task]
    return notes


def _icu_type(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    """The four ICU types as four "hospitals" (case mix and mortality differ)."""
    values = data.static["ICUType"].reindex(labels.index)
    return partitions.by_column(values, ICU_TYPE_NAMES)


def _iid(data, labels, *, n_sites: int, alpha: float, seed: int) -> pd.Series:
    return partitions.iid(labels.index.to_numpy(), n_sites, seed)


def _federated_fit(features: dict[str, Any]) -> Any:
    from medseq.features.icu.federated import ICUFederatedFit

    return ICUFederatedFit(features, lambda data, ids: (data.events, data.static))


_SERVING = "medseq.datasets.physionet2012_serving"
EVENTS_EXAMPLE = {
    "patients": [
        {
            "patient_id": "stay-1",
            "static": {"Age": 54, "Gender": 0, "Height": 165.1, "ICUType": 4, "Weight": 70.2},
            "events": [
                {"time": 0.5, "code": "HR", "value": 88},
                {"time": 0.5, "code": "8310-5", "value": 98.6, "unit": "[degF]"},
                {"time": 1.25, "code": "Glucose", "value": 5.1, "unit": "mmol/L"},
            ],
        }
    ]
}
FHIR_EXAMPLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "stay-1", "gender": "female",
                      "birthDate": "1970-01-01"}},
        {"resource": {"resourceType": "Encounter", "status": "in-progress",
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "IMP"},
                      "subject": {"reference": "Patient/stay-1"},
                      "period": {"start": "2024-03-01T08:00:00+00:00"}}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                      "subject": {"reference": "Patient/stay-1"},
                      "effectiveDateTime": "2024-03-01T08:30:00+00:00",
                      "valueQuantity": {"value": 88, "system": "http://unitsofmeasure.org",
                                        "code": "/min"}}},
    ],
}  # fmt: skip

PHYSIONET2012 = DatasetSpec(
    name="physionet2012",
    tasks={
        "mortality": "binary",
        "length_of_stay": "regression",
        "length_of_stay_class": "multiclass",
        "outcomes": "multilabel",
    },
    read=_read,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    class_names=_class_names,
    subgroups=_subgroups,
    card_notes=_card_notes,
    partitions={"icu_type": _icu_type, "dirichlet": partitions.dirichlet, "iid": _iid},
    federated_fit=_federated_fit,
    request=LazyBody(f"{_SERVING}:parse_events", "icu", EVENTS_EXAMPLE),
    fhir=LazyBody(f"{_SERVING}:parse_fhir", "icu", FHIR_EXAMPLE),
    streaming=LazyModule(_SERVING),
)
