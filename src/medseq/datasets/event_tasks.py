"""Event datasets with tasks written in the config: ``dataset = "fhir_r4"`` or ``"meds_events"``.

Any export that reads into the canonical event table (FHIR R4 Bundles or NDJSON through
:mod:`medseq.sources.fhir_r4`, a MEDS folder through :func:`medseq.sources.meds.read_events`)
gets its tasks from the experiment file's ``[task]`` table (:mod:`medseq.tasks.spec`) instead
of a Python task module. A sample is a (subject, prediction time); with one per subject its
``sample_id`` is the ``subject_id``. The ``"subject"`` split protocol (test part, then
validation or folds) splits *subjects*, stratified on whether a subject has a positive
sample, so every patient, with all their prediction times, stays on one side.

Inputs, built from the events of each sample's observation window strictly before its
prediction time (:mod:`medseq.tasks.inputs`), are chosen by ``[features] kind``: the visit
sequences of :class:`~medseq.features.histories.visits.VisitFeaturizer` (``"visits"``, the
default; Doctor AI, RETAIN; ``code_prefixes`` defaults to every code system seen in
training, ``level`` groups ICD-9 codes), or a time grid over the numeric codes
(``"grid"``: the ICU path's featurizer, mask, Δt and normalisation fitted on the training
samples; the recurrent classifiers and GRU-D). The other keys are the featurizer's. The
``[baseline]`` reads the counts of each input code in the window (logistic regression on
counts).

``fhir_r4`` bundles answer ``POST /v1/predict`` with a FHIR R4 Bundle of a patient's
resources, predicted at the Bundle's ``timestamp`` or the task's own prediction time
(:mod:`medseq.datasets.event_tasks_serving`); ``meds_events`` bundles with the patient's
MEDS rows as JSON, in the dataset's own codes (:mod:`medseq.datasets.meds_serving`).
``medseq federate`` splits whole subjects over simulated sites (partitions ``iid`` and
``dirichlet``; neither export has a site column) and fits the visit vocabulary from
per-site code counts (:mod:`medseq.datasets.event_tasks_federated`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from medseq.datasets.event_tasks_federated import SUBJECT_PARTITIONS, federated_fit
from medseq.datasets.meds_serving import EXAMPLE as MEDS_EXAMPLE
from medseq.datasets.registry import DatasetSpec, SplitIds
from medseq.features.histories.visits import VisitFeaturizer
from medseq.schema import ReadReport
from medseq.serving.requests import LazyBody
from medseq.sources.history import HistorySet
from medseq.tasks import inputs as task_inputs
from medseq.tasks.cohort import build_task
from medseq.tasks.spec import CONFIG_TASKS

TEST_FRACTION = 0.2


@dataclass
class EventTaskData:
    """A read event table and, once labelled, the task's samples and model inputs.

    ``history`` holds only the events of each sample's observation window, before its
    prediction time: the featurizers and the baseline never see anything else.
    ``request_state`` is what the REST parser needs to read a request as this data was
    read (plain JSON, kept in the bundle: the FHIR reader's unit per code, a flat export's
    mapping).
    """

    events: pd.DataFrame
    origin: pd.Series
    report: ReadReport
    task: str | None = None
    samples: pd.DataFrame | None = None
    cohort: pd.DataFrame | None = None
    history: HistorySet | None = None
    count_columns: list[str] = field(default_factory=list)
    request_state: dict[str, Any] = field(default_factory=dict)
    #: ``history`` is keyed by sample id, not subject id (:mod:`medseq.tasks.inputs`)
    history_by_sample: ClassVar[bool] = True

    def labelled(self) -> tuple[pd.DataFrame, HistorySet]:
        """The samples and input history; an error if no task labelled this data yet."""
        if self.samples is None or self.history is None:
            raise ValueError("event data has no task yet: call the spec's labels(task, data)")
        return self.samples, self.history


def _read_fhir(path: Path) -> EventTaskData:
    from medseq.sources import fhir_r4

    data = fhir_r4.read(path)
    # The unit chosen per numeric code: a request is converted to these, not to its own
    # most frequent unit (one patient's eGFR in mL/min would otherwise be kept where
    # training dropped it as not per 1.73 m2, and the visits would differ).
    units = dict(zip(data.units["code"].astype(str), data.units["unit"].astype(str), strict=True))
    return EventTaskData(
        events=data.events, origin=data.origin, report=data.report, request_state={"units": units}
    )


def _read_fhir_as_trained(path: Path, state: Mapping[str, Any]) -> EventTaskData:
    """New FHIR files for a trained bundle, in the units training chose (``state``)."""
    from medseq.sources import fhir_r4

    units = dict(state.get("units") or {})
    data = fhir_r4.read(path, units=units or None)
    return EventTaskData(
        events=data.events, origin=data.origin, report=data.report, request_state=dict(state)
    )


def _request_state(data: EventTaskData) -> dict[str, Any]:
    return data.request_state


def _read_meds(path: Path) -> EventTaskData:
    from medseq.sources import meds

    events, origin, report = meds.read_events(path)
    return EventTaskData(events=events, origin=origin, report=report)


def _labels(task: str, data: EventTaskData) -> pd.Series:
    spec = CONFIG_TASKS.definition(task)
    built = build_task(data.events, data.origin, spec)
    inputs = task_inputs.input_events(data.events, built.samples)
    data.task, data.samples, data.cohort = task, built.samples, built.cohort
    data.history = task_inputs.as_history(inputs, built.samples, spec.observation.visit_hours)
    # Column names only (a code seen in no training sample is a zero column there and
    # gets no weight); the values are counted per sample, inside its window.
    data.count_columns = sorted(inputs["code"].unique().tolist())
    return built.labels


def _systems(codes: pd.Series) -> tuple[str, ...]:
    """Code systems: ``http://loinc.org|`` for ``http://loinc.org|8867-4``, ``ENCOUNTER/``
    for ``ENCOUNTER/AMB``, the code itself when it has neither separator."""
    text = codes.astype(str)
    piped = text.str.contains("|", regex=False)
    prefix = text.where(~piped, text.str.split("|").str[0] + "|")
    slashed = ~piped & text.str.contains("/", regex=False)
    prefix = prefix.where(~slashed, text.str.split("/").str[0] + "/")
    return tuple(sorted(prefix.unique()))


FEATURE_KINDS = ("visits", "grid")
#: Static columns of the time-grid path: age at the prediction time, and sex as 0/1.
GRID_STATIC = ("age_years", "sex_female")


def _grid_inputs(
    data: EventTaskData, ids: np.ndarray, window_hours: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The numeric input events of samples ``ids`` on a clock that starts ``window_hours``
    before each prediction time (hour 0 of the grid), and their static table; both keyed
    by sample id (what :class:`~medseq.features.icu.featurizer.ICUFeaturizer` reads)."""
    samples, history = data.labelled()
    chosen = samples.loc[ids]
    ev = history.events[history.events["subject_id"].isin(ids) & history.events["value"].notna()]
    origin = chosen["cutoff"] - window_hours  # indexed by sample id
    shifted = ev.assign(time=ev["time"].to_numpy() - origin.reindex(ev["subject_id"]).to_numpy())
    sex = chosen["sex"].astype(str)
    static = pd.DataFrame(
        {
            "age_years": chosen["age_years"].to_numpy(dtype=np.float64),
            "sex_female": np.where(sex == "F", 1.0, np.where(sex == "M", 0.0, np.nan)),
        },
        index=pd.Index(ids, name="subject_id"),
    )
    return shifted[["subject_id", "time", "code", "value"]], static


def _fit(features: dict[str, Any], data: EventTaskData, ids: np.ndarray) -> Any:
    """The ``[features]`` table's featurizer, fitted on the training samples ``ids``.

    ``kind = "visits"`` (the default): multi-hot visit sequences of the coded events
    (:class:`VisitFeaturizer`; Doctor AI, RETAIN). ``kind = "grid"``: a time grid over the
    numeric codes of the observation window, ``n_steps`` bins of ``step_hours`` ending at
    the prediction time, with mask, time since last observation and normalisation fitted
    on the training samples (:class:`~medseq.features.icu.featurizer.ICUFeaturizer`, the
    ICU path; GRU-D and the recurrent classifiers); ``variables`` picks the codes (default:
    every code with a value in the training samples).
    """
    samples, history = data.labelled()
    options = dict(features)
    kind = options.pop("kind", "visits")
    if kind not in FEATURE_KINDS:
        raise ValueError(f"[features] kind must be one of {FEATURE_KINDS}, got {kind!r}")
    if "task" in options:
        raise ValueError("[features]: 'task' comes from [data] task; remove it")
    ids = np.asarray(ids, dtype=np.int64)
    if kind == "grid":
        from medseq.features.icu.featurizer import ICUFeaturizer

        if "static_columns" in options:
            raise ValueError(f"[features] static_columns of a grid are fixed: {GRID_STATIC}")
        featurizer = ICUFeaturizer(static_columns=GRID_STATIC, **options)
        window = float(featurizer.n_steps) * float(featurizer.step_hours)
        events, static = _grid_inputs(data, ids, window)
        if events.empty:
            raise ValueError("[features] kind = 'grid': the training samples have no numeric value")
        return featurizer.fit(events, static, ids)
    chosen = task_inputs.as_sample_keyed(samples.loc[ids])
    if "code_prefixes" in options:
        options["code_prefixes"] = tuple(options["code_prefixes"])
    else:
        train_codes = history.events.loc[history.events["subject_id"].isin(chosen.index), "code"]
        options["code_prefixes"] = _systems(train_codes)
    return VisitFeaturizer(str(data.task), **options).fit(history, chosen)


def _transform(featurizer: Any, data: EventTaskData, ids: np.ndarray):
    samples, history = data.labelled()
    ids = np.asarray(ids, dtype=np.int64)
    unknown = ids[~np.isin(ids, samples.index.to_numpy())]
    if unknown.size:
        raise ValueError(f"{data.task}: no sample with id {unknown[:5].tolist()}")
    if not isinstance(featurizer, VisitFeaturizer):  # the time grid
        window = float(featurizer.n_steps) * float(featurizer.step_hours)
        events, static = _grid_inputs(data, ids, window)
        return featurizer.transform(events, static, ids)
    if data.task != featurizer.task:
        raise ValueError(
            f"the featurizer encodes {featurizer.task!r} samples, the data is labelled for "
            f"{data.task!r}"
        )
    return featurizer.transform(history, task_inputs.as_sample_keyed(samples.loc[ids]))


def _sizes(featurizer: Any) -> dict[str, int]:
    if isinstance(featurizer, VisitFeaturizer):
        return {"vocab_size": featurizer.n_codes}
    return {"input_size": featurizer.n_features, "static_size": featurizer.n_static}


def _summaries(data: EventTaskData, ids: np.ndarray) -> np.ndarray:
    _, history = data.labelled()
    return task_inputs.code_counts(history.events, np.asarray(ids), data.count_columns)


def _subject_split(data_config: Any, data: EventTaskData, labels: pd.Series) -> SplitIds:
    """Test part, then validation part(s), of *subjects* (stratified on whether a subject
    has a positive sample), given back as the sample ids of those subjects."""
    from medseq.tasks.splits import stratified_kfold, stratified_split

    samples, _ = data.labelled()
    subject_of = samples.loc[labels.index, "subject_id"]
    per_subject = labels.groupby(subject_of.to_numpy()).max()  # sorted subject ids
    ids = per_subject.index.to_numpy(dtype=np.int64)
    y = per_subject.to_numpy()
    seed = int(data_config.split_seed)
    rest, test = stratified_split(ids, y, val_fraction=TEST_FRACTION, random_state=seed)
    y_rest = per_subject.loc[rest].to_numpy()
    if data_config.cv_folds >= 2:
        folds = stratified_kfold(rest, y_rest, n_splits=data_config.cv_folds, random_state=seed)
    else:
        folds = [
            stratified_split(rest, y_rest, val_fraction=data_config.val_fraction, random_state=seed)
        ]

    def sample_ids(subjects: np.ndarray) -> np.ndarray:
        return np.sort(labels.index.to_numpy(dtype=np.int64)[subject_of.isin(subjects)])

    return SplitIds(folds=[(sample_ids(a), sample_ids(b)) for a, b in folds], test=sample_ids(test))


def _subgroups(data: EventTaskData, ids: np.ndarray) -> dict[str, pd.Series]:
    samples, _ = data.labelled()
    chosen = samples.loc[np.asarray(ids, dtype=np.int64)]
    age = chosen["age_years"].to_numpy(dtype=np.float64)
    bands = np.select([age < 40, age < 65, age >= 65], ["<40", "40-64", ">=65"], "unknown")
    return {
        "sex": pd.Series(chosen["sex"].replace("", "unknown").to_numpy(), index=chosen.index),
        "age": pd.Series(bands, index=chosen.index),
    }


def _sample_keys(task: str, data: EventTaskData, ids: np.ndarray) -> pd.DataFrame:
    """The patient and prediction time of each sample: ``subject_id``,
    ``prediction_time_hours`` (on the subject's clock) and, where the reader gives each
    subject's clock an origin, ``prediction_time`` (UTC, ISO 8601)."""
    samples, _ = data.labelled()
    chosen = samples.loc[np.asarray(ids, dtype=np.int64)]
    out = pd.DataFrame(
        {
            "subject_id": chosen["subject_id"].to_numpy(),
            "prediction_time_hours": chosen["cutoff"].to_numpy(dtype=np.float64),
        }
    )
    origin = data.origin
    if isinstance(origin, pd.Series) and pd.api.types.is_datetime64_any_dtype(origin):
        start = pd.to_datetime(origin.reindex(out["subject_id"]).to_numpy(), utc=True)
        when = start + pd.to_timedelta(out["prediction_time_hours"].to_numpy(), unit="h")
        out.insert(1, "prediction_time", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def _card_notes(task: str) -> dict[str, Any]:
    import json

    spec = CONFIG_TASKS.definition(task)
    return {
        "data": [
            f"Task {task!r} is defined in the experiment file: "
            f"{json.dumps(spec.to_dict(), sort_keys=True)}.",
            "Inputs are the events of each subject's observation window strictly before the "
            "prediction time; censored subjects are handled as [task.label] censored says.",
        ]
    }


def _groups(task: str, data: EventTaskData, ids: np.ndarray) -> np.ndarray:
    """The subject of each sample (several prediction times of a subject are one group)."""
    samples, _ = data.labelled()
    return samples.loc[np.asarray(ids, dtype=np.int64), "subject_id"].to_numpy()


#: The example body of the OpenAPI page: a Patient and two encounters, predicted as of the
#: Bundle's timestamp.
FHIR_EXAMPLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "collection",
    "timestamp": "2019-01-01T00:00:00Z",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                      "birthDate": "1960-04-02"}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished",
                      "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"},
                      "period": {"start": "2017-03-01T09:00:00Z",
                                 "end": "2017-03-01T09:30:00Z"}}},
        {"resource": {"resourceType": "Condition", "id": "c1",
                      "subject": {"reference": "Patient/p1"},
                      "code": {"coding": [{"system": "http://snomed.info/sct",
                                           "code": "44054006"}]},
                      "onsetDateTime": "2017-03-01T09:10:00Z"}},
    ],
}  # fmt: skip

UNSUPPORTED = {
    "streaming": "a config task predicts once per sample at its prediction time",
    "request": (
        "a config task's request is the patient's record: POST it as a FHIR R4 Bundle "
        "(the fhir part)"
    ),
}
MEDS_UNSUPPORTED = {
    "streaming": UNSUPPORTED["streaming"],
    "fhir": (
        "the codes of a MEDS dataset are its own, not those the FHIR reader writes, so a "
        "FHIR Bundle cannot be matched to this model's vocabulary"
    ),
}
FHIR_BODY = LazyBody("medseq.datasets.event_tasks_serving:parse_fhir", "events", FHIR_EXAMPLE)


def event_task_spec(
    name: str,
    read: Callable[[Path], EventTaskData],
    *,
    fhir: LazyBody | None = None,
    request: LazyBody | None = None,
    unsupported: dict[str, str] | None = None,
    request_state: Callable[[Any], dict[str, Any]] | None = None,
    read_as_trained: Callable[[Path, Mapping[str, Any]], Any] | None = None,
) -> DatasetSpec:
    """The spec of an event dataset called ``name`` whose reader is ``read``; ``fhir``:
    the part that answers a FHIR Bundle (only for data whose codes are FHIR's);
    ``request``: the part that answers the dataset's own JSON rows. Federated runs get
    simulated sites of whole subjects (:mod:`medseq.datasets.event_tasks_federated`: the
    exports name no site); a dataset with a site column replaces ``partitions``."""
    return DatasetSpec(
        name=name,
        tasks=CONFIG_TASKS,
        read=read,
        labels=_labels,
        fit_featurizer=_fit,
        transform=_transform,
        model_sizes=_sizes,
        protocols={"subject": _subject_split},
        summaries=_summaries,
        subgroups=_subgroups,
        card_notes=_card_notes,
        groups=_groups,
        sample_keys=_sample_keys,
        partitions=SUBJECT_PARTITIONS,
        federated_fit=federated_fit,
        fhir=fhir,
        request=request,
        request_state=request_state,
        read_as_trained=read_as_trained,
        unsupported=UNSUPPORTED if unsupported is None else unsupported,
    )


FHIR_R4 = event_task_spec(
    "fhir_r4",
    _read_fhir,
    fhir=FHIR_BODY,
    request_state=_request_state,
    read_as_trained=_read_fhir_as_trained,
)
MEDS_BODY = LazyBody("medseq.datasets.meds_serving:parse", "meds_rows", MEDS_EXAMPLE)
MEDS_EVENTS = event_task_spec(
    "meds_events", _read_meds, request=MEDS_BODY, unsupported=MEDS_UNSUPPORTED
)
