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
    request=LazyBody(f"{_SERVING}:parse_events", "icu", EVENTS_EXAMPLE),
    fhir=LazyBody(f"{_SERVING}:parse_fhir", "icu", FHIR_EXAMPLE),
    streaming=LazyModule(_SERVING),
)
