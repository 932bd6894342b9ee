"""The dataset registry: what ``[data] dataset = "..."`` means to the experiment runner.

Each modality (ICU grids, ECG recordings, visit histories, SMILES strings, image volumes)
plugs into one runner by describing itself as a :class:`DatasetSpec`: how to read a path,
which tasks and labels it defines, how to fit and apply its featurizer, which model-config
sizes the data fixes, and optionally named split protocols, extra metrics and a training
augmentation. The runner never needs to know which modality it is running.

Specs are listed as import paths and loaded on first use, so reading ICU data never
imports RDKit or wfdb.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from medseq._imports import load_object

TASK_TYPES = ("binary", "multiclass", "multilabel", "regression")

#: dataset name -> "module:SPEC"
DATASETS: dict[str, str] = {
    "physionet2012": "medseq.datasets.physionet2012:PHYSIONET2012",
    "physionet2019": "medseq.datasets.physionet2019:PHYSIONET2019",
    "tox21": "medseq.datasets.tox21:TOX21",
    "cinc2017": "medseq.datasets.cinc2017:CINC2017",
    "mitbih": "medseq.datasets.mitbih:MITBIH",
    "adrenalmnist3d": "medseq.datasets.adrenalmnist3d:ADRENALMNIST3D",
    "mimic3": "medseq.datasets.mimic3:MIMIC3",
    "meds": "medseq.datasets.meds:MEDS",
    "bonn_eeg": "medseq.datasets.bonn_eeg:BONN_EEG",
    "sleepedf": "medseq.datasets.sleepedf:SLEEPEDF",
    "fhir_r4": "medseq.datasets.event_tasks:FHIR_R4",
    "meds_events": "medseq.datasets.event_tasks:MEDS_EVENTS",
    "mitbih_svdb": "medseq.datasets.mitbih_svdb:MITBIH_SVDB",
    "flat_events": "medseq.datasets.flat_tables:FLAT_EVENTS",
    "flat_icu": "medseq.datasets.flat_icu:FLAT_ICU",
}

#: The capability-matrix stage (:data:`medseq.capabilities.STAGES`) that a spec part serves:
#: a refusal for the missing part carries the spec's sentence for that stage, so that
#: ``/v1/streams`` of a molecule bundle says why a molecule is not streamed, as the matrix's
#: streaming cell does, and not only which part its spec lacks.
STAGE_OF_PART: dict[str, str] = {
    "signal_streaming": "streaming",
    "partitions": "federated",
    "federated_fit": "federated",
}


@dataclass(frozen=True)
class SplitIds:
    """Subject ids of a split protocol: ``(train, val)`` per fold, and the test ids.

    ``early_stop``, when set, holds one id array per fold, taken out of that fold's
    ``train``: the members early-stop on it, so the fold's ``val`` part is never seen
    before its out-of-fold prediction (:func:`medseq.experiment.data.hold_out_early_stop`).
    """

    folds: list[tuple[np.ndarray, np.ndarray]]
    test: np.ndarray | None = None
    early_stop: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.folds:
            raise ValueError("a split protocol must give at least one (train, val) fold")
        if self.early_stop is not None and len(self.early_stop) != len(self.folds):
            raise ValueError(
                f"{len(self.early_stop)} early-stopping parts for {len(self.folds)} folds"
            )
        for k, (train, val) in enumerate(self.folds):
            parts = {"train": train, "val": val}
            if self.early_stop is not None:
                parts["early_stop"] = self.early_stop[k]
            if self.test is not None:
                parts["test"] = self.test
            names = list(parts)
            for i, first in enumerate(names):
                for second in names[i + 1 :]:
                    shared = np.intersect1d(parts[first], parts[second])
                    if shared.size:
                        raise ValueError(
                            f"fold {k}: {shared.size} subjects in both {first} and {second} "
                            f"(e.g. {shared[:3].tolist()})"
                        )


Labels: TypeAlias = pd.Series | pd.DataFrame
Protocol = Callable[[Any, Any, Labels], SplitIds]


class StageUnsupported(ValueError):
    """A later stage (serving, export, federated, report, explain) that a dataset's spec
    does not support; the message names the dataset, the missing part and why."""


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset reaches the runner. See the module docstring.

    Attributes
    ----------
    name : str
        The ``[data] dataset`` value.
    tasks : mapping of str to str
        Task name -> one of :data:`TASK_TYPES`.
    read : callable ``(path) -> data``
        Reads a resolved path (file or folder) into any object the other hooks understand.
    labels : callable ``(task, data) -> Series | DataFrame``
        Labels indexed by int64 subject/sample id: 0/1 (binary), class index (multiclass),
        a 0/1/NaN frame (multilabel), floats (regression). Unlabelled ids are left out.
    fit_featurizer : callable ``(features, data, ids) -> featurizer``
        ``features`` is the ``[features]`` table; fitting sees the training ids only.
    transform : callable ``(featurizer, data, ids) -> dict of arrays``
        Model inputs for ``ids``, in order, without ``y``.
    model_sizes : callable ``(featurizer) -> dict``
        Model-config fields the data fixes (``input_size``, ``vocab_size``, ...).
    class_names : callable ``(task, data) -> list of str``, optional
        Class names (multiclass) or label columns (multilabel).
    protocols : mapping of str to callable ``(spec, data, labels) -> SplitIds``
        Named split protocols (``[data] protocol``), each taking folds and test from the
        one ``[data] train`` path.
    metrics : callable ``(task, y_true, y_prob) -> dict``, optional
        Extra metrics of this dataset's task (e.g. the challenge F1, MedMNIST's accuracy at
        0.5), on validation and test, for every task type.
    alarm_threshold : callable ``(task, y_val, prob_val) -> float``, optional
        For a task whose own ``metrics`` judge alarms rather than a ranking (the sepsis
        utility), the rule that picks the alarm threshold from validation predictions. The
        runner stores it as the bundle's threshold, and ``metrics`` is then called with
        ``threshold=`` on validation and test alike, so a test figure never sees a
        threshold chosen on test labels.
    augment : callable ``(features, featurizer) -> augment or None``, optional
        Builds the training-batch augmentation from the ``[features]`` table and the
        featurizer fitted on the training ids (e.g. SMILES enumeration decodes token ids
        with its vocabulary).
    groups : callable ``(task, data, ids) -> array``, optional
        The patient (or record) behind each sample id, for datasets with several samples
        per patient (admissions, beats): a split the runner draws itself keeps each group
        on one side. None: every id is its own patient.
    sample_keys : callable ``(task, data, ids) -> DataFrame``, optional
        For tasks whose sample is a (patient, prediction time): the ``subject_id`` (the
        patient) and prediction time columns of each sample id, which the prediction files
        show instead of the sample id (a number that means nothing outside the run). None:
        the sample id is the subject id.
    summaries : callable ``(data, ids) -> array of shape (N, F)``, optional
        The feature matrix a ``[baseline]`` estimator reads for ``ids`` (e.g. EEG band
        powers). None: the ICU per-variable summaries
        (:func:`medseq.features.icu.summary.summary_features`).

    What later stages need (all optional; a stage that needs a missing part calls
    :meth:`require`, which refuses at once with a sentence naming the dataset and the part):

    subgroups : callable ``(data, ids) -> dict of str to Series``, optional
        The report's subgroup columns for ``ids`` (e.g. age band, ICU type), each a Series
        of group names indexed like ``ids``.
    card_notes : callable ``(task) -> dict``, optional
        Dataset-specific parts of the model card: ``"data"``, a list of paragraphs (cohort,
        label definition, caveats; listed under the card's limitations) and optionally
        ``"intended_use"`` (``task``, ``primary_use``, ``users``, ``out_of_scope``).
    request : object, optional
        The JSON body of ``POST /v1/predict`` for this dataset (see
        :mod:`medseq.serving.requests`): parses a request into the ``data`` object that
        ``transform`` takes, documents the body with an example, and names the bad field.
    request_state : callable ``(data) -> dict``, optional
        What the ``request`` parser needs of the *training data* besides the fitted
        featurizer, as plain JSON: e.g. the table mapping a flat export was read with, so
        a request's rows go through the same mapping. Training stores it in the bundle
        (``provenance["request_state"]``) and the service hands it to the parser
        (:attr:`medseq.serving.requests.RequestContext.request_state`).
    read_as_trained : callable ``(path, state) -> data``, optional
        ``read`` for new data given the bundle's ``request_state``: a later stage reading
        a file for a trained bundle (``medseq predict / evaluate / report / explain``) reads
        it as the training data was read, e.g. in the units training chose per code rather
        than the new file's own most frequent ones. :meth:`medseq.bundle.Bundle.spec` puts
        it in place of ``read``.
    fhir : object, optional
        How a FHIR R4 Bundle of one subject becomes this dataset's ``data`` object (the code
        table for Observations, ``valueSampledData`` for waveforms, Conditions for visits).
    partitions : mapping of str to callable ``(data, labels, *, n_sites, alpha, seed) -> Series``
        Named ways to split this dataset into federated sites (``[federated] partition``):
        a column such as the ICU type, whole record groups, Dirichlet label skew. Each
        returns the site name of every sample it places, indexed by sample id (absent:
        left out, counted); categorical Series give the site order. ``labels`` are the
        task's labels; ``n_sites``, ``alpha`` (Dirichlet concentration) and ``seed`` come
        from ``[federated]``. Helpers: :mod:`medseq.datasets.partitions`.
    federated_fit : callable ``(features) -> FederatedFit``, optional
        How the featurizer of the ``[features]`` table is fitted across sites from per-site
        counts and moments, never rows (:class:`medseq.features.federated.FederatedFit`);
        ``medseq federate`` needs it with ``partitions``.
    streaming : object, optional
        How to advance one subject an observation at a time (the incremental form of the
        featurizer), for the streaming service.
    signal_streaming : SignalStreaming, optional
        For waveform bundles served as live signal streams (``/v1/streams``): accepted
        sampling rates, the lead, and the bundle's streaming detector
        (:class:`medseq.datasets.signal_streaming.SignalStreaming`).
    step_times : callable ``(featurizer, data, ids) -> list of ndarray``, optional
        For inputs whose steps are events without a clock in the featurizer (beats): the
        time in seconds, in the recording, of each step of each sample's ``values``, so that
        ``medseq explain`` can show its top steps against time (by step index without it).
    unsupported : mapping of str to str
        Stage -> the sentence saying why that stage makes no sense for this dataset (e.g.
        ``{"streaming": "a molecule is one string, not a sequence that arrives over time"}``);
        :meth:`require` and ``medseq capabilities`` show it.
    """

    name: str
    tasks: Mapping[str, str]
    read: Callable[[Any], Any]
    labels: Callable[[str, Any], Labels]
    fit_featurizer: Callable[[dict[str, Any], Any, np.ndarray], Any]
    transform: Callable[[Any, Any, np.ndarray], dict[str, np.ndarray]]
    model_sizes: Callable[[Any], dict[str, Any]]
    class_names: Callable[[str, Any], list[str]] | None = None
    protocols: Mapping[str, Protocol] = field(default_factory=dict)
    metrics: Callable[..., dict[str, float]] | None = None
    alarm_threshold: Callable[[str, np.ndarray, np.ndarray], float] | None = None
    augment: Callable[[dict[str, Any], Any], Any] | None = None
    groups: Callable[[str, Any, np.ndarray], np.ndarray] | None = None
    sample_keys: Callable[[str, Any, np.ndarray], pd.DataFrame] | None = None
    summaries: Callable[[Any, np.ndarray], np.ndarray] | None = None
    subgroups: Callable[[Any, np.ndarray], dict[str, pd.Series]] | None = None
    card_notes: Callable[[str], dict[str, Any]] | None = None
    request: Any = None
    request_state: Callable[[Any], dict[str, Any]] | None = None
    read_as_trained: Callable[[Any, Mapping[str, Any]], Any] | None = None
    fhir: Any = None
    partitions: Mapping[str, Callable[..., pd.Series]] = field(default_factory=dict)
    federated_fit: Callable[[dict[str, Any]], Any] | None = None
    streaming: Any = None
    signal_streaming: Any = None
    step_times: Callable[[Any, Any, np.ndarray], list[np.ndarray]] | None = None
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {t: k for t, k in self.tasks.items() if k not in TASK_TYPES}
        if bad:
            raise ValueError(f"dataset {self.name!r}: task types must be in {TASK_TYPES}: {bad}")

    def task_type(self, task: str) -> str:
        """The type of ``task``; an unknown task is an error listing this dataset's tasks."""
        if task not in self.tasks:
            raise ValueError(
                f"dataset {self.name!r} has no task {task!r}; its tasks: {sorted(self.tasks)}"
            )
        return self.tasks[task]

    def require(self, part: str, stage: str) -> Any:
        """The spec's ``part`` that ``stage`` needs; a clear refusal when the spec lacks it.

        >>> get_dataset("tox21").require("signal_streaming", "signal streaming (/v1/streams)")
        Traceback (most recent call last):
        ...
        medseq.datasets.registry.StageUnsupported: signal streaming (/v1/streams) is not
        available for dataset 'tox21': its spec has no 'signal_streaming': a molecule is one
        SMILES string...
        """
        value = getattr(self, part, None)
        if value:
            return value
        keys = (stage, part, STAGE_OF_PART.get(part, part))
        why = next((self.unsupported[k] for k in keys if k in self.unsupported), None)
        reason = f": {why}" if why else ""
        raise StageUnsupported(
            f"{stage} is not available for dataset {self.name!r}: its spec has no {part!r}{reason}"
        )

    def protocol(self, name: str) -> Protocol:
        """The split protocol ``name``; unknown names list the dataset's protocols."""
        if name not in self.protocols:
            raise ValueError(
                f"dataset {self.name!r} has no split protocol {name!r}; "
                f"its protocols: {sorted(self.protocols) or 'none'}"
            )
        return self.protocols[name]


def get_dataset(name: str) -> DatasetSpec:
    """The registered :class:`DatasetSpec` called ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; registered datasets: {sorted(DATASETS)}")
    spec = load_object(DATASETS[name])
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"{DATASETS[name]} is a {type(spec).__name__}, not a DatasetSpec")
    return spec
