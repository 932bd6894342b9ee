"""ICU time series from flat tables, on the hourly grid: ``dataset = "flat_icu"``.

For an export that already holds one ICU stay per subject, a numeric time series on a
relative clock (hours since admission), a row of static facts per stay and a label per
stay: what PhysioNet 2012 is, in any hospital's CSV. ``[data] train`` (and ``test``) name a
*mapping file*::

    root = "/path/to/export"
    [[events]]                       # medseq.sources.flat_events.FlatMapping, relative times
    path = "events.csv"
    subject = "RecordID"
    time = "Hours"
    time_unit = "hours"
    code = "Parameter"
    value = "Value"

    [static]                         # one row per subject; columns become static inputs
    path = "static.csv"
    subject = "RecordID"
    columns = ["Age", "Gender", "Height", "ICUType", "Weight"]

    [label]                          # one 0/1 column per subject: task "label"
    path = "outcomes.csv"
    subject = "RecordID"
    column = "In-hospital_death"

    [groups]                         # optional: the site of each stay, a [static] table
    column = "HospitalID"            # column (need not be an input): partition "group"

The features are the ICU path's :class:`~medseq.features.icu.featurizer.ICUFeaturizer`
(time grid, mask, time since last, normalisation fitted on training subjects); the
``[features]`` table holds its keyword arguments, and ``static_columns`` defaults to the
mapping's ``[static] columns``. Subjects without a label, or whose label is not 0/1, are
an error naming them (never silently dropped).

Later stages: stays stream one observation at a time through the ICU grid's incremental
featurizer (:mod:`medseq.datasets.flat_icu_stream`), and ``medseq federate`` splits the
stays into sites by the ``[groups]`` column (``partition = "group"``: whole sites, as
``flat_events``' hospitals), or without one by ``"iid"`` shares or ``"dirichlet"`` label
skew; the featurizer is fitted across sites from per-site counts and moments
(:class:`~medseq.features.icu.federated.ICUFederatedFit`), never rows.

The bundle keeps the mapping (without ``root``), so ``POST /v1/predict`` takes a stay's
rows of the event tables and its row of the static table, read through the same mapping
onto the same grid (:mod:`medseq.datasets.flat_icu_serving`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets import partitions
from medseq.datasets.flat_icu_serving import EXAMPLE as ICU_EXAMPLE
from medseq.datasets.registry import DatasetSpec
from medseq.features.icu.featurizer import ICUFeaturizer
from medseq.features.icu.federated import ICUFederatedFit
from medseq.schema import DataError, ReadReport, check_known_keys
from medseq.serving.requests import LazyBody, LazyModule
from medseq.sources import flat_events

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = (
    "root", "on_bad_row", "on_unit_mismatch", "units", "events", "static", "label", "groups",
)  # fmt: skip


@dataclass
class FlatICUSet:
    """Events (hours since admission), static facts and labels of one mapping file."""

    events: pd.DataFrame
    static: pd.DataFrame
    labels: pd.Series
    report: ReadReport
    #: the ``[groups]`` column (the site of each stay) indexed by subject; None without one
    groups: pd.Series | None = None
    #: the mapping and units a REST request's rows are read with (kept in the bundle)
    request_state: dict[str, Any] = field(default_factory=dict)


def _table(root: Path, where: str, spec: dict[str, Any], keys: tuple[str, ...]) -> pd.DataFrame:
    check_known_keys(where, spec, keys)
    for key in ("path", "subject"):
        if key not in spec:
            raise ValueError(f"{where} needs {key!r}")
    file = Path(spec["path"])
    file = file if file.is_absolute() else root / file
    frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    if spec["subject"] not in frame.columns:
        raise DataError(f"{file}: no column {spec['subject']!r}; it has {list(frame.columns)}")
    if frame[spec["subject"]].duplicated().any():
        raise DataError(f"{file}: several rows per {spec['subject']!r}; one row per subject")
    return frame.set_index(frame[spec["subject"]].astype(np.int64).rename("subject_id"))


def read_mapping(
    path: str | os.PathLike[str], units: Mapping[str, str] | None = None
) -> FlatICUSet:
    """Read the events, static table and labels a mapping file names (module doc)."""
    from medseq.experiment.data import resolve_data_path

    path = Path(path)
    if path.suffix.lower() != ".toml":
        raise ValueError(f"{path}: dataset 'flat_icu' reads a mapping file (.toml)")
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    check_known_keys(f"{path}", raw, TOP_KEYS)
    for section in ("events", "static", "label"):
        if not raw.get(section):
            raise ValueError(
                f"{path}: no [{section}] section; flat_icu needs events, static, label"
            )
    root = resolve_data_path(raw["root"]) if raw.get("root") else path.parent
    mappings = flat_events.FlatMapping.list_from_toml(path, "events")
    if any(m.time_unit is None for m in mappings):
        raise ValueError(f"{path}: flat_icu needs relative times (time_unit) in every [[events]]")
    read = flat_events.read_tables(
        mappings,
        root=root,
        on_bad_row=raw.get("on_bad_row", "raise"),
        on_unit_mismatch=raw.get("on_unit_mismatch", "warn"),
        units={**(raw.get("units") or {}), **(units or {})} or None,
    )
    static_spec = raw["static"]
    static = _table(root, f"{path} [static]", static_spec, ("path", "subject", "columns"))
    columns = list(static_spec.get("columns", []))
    missing = [c for c in columns if c not in static.columns]
    if missing:
        raise DataError(f"{path} [static]: columns {missing} not in {static_spec['path']}")
    frame = static
    static = static[columns].apply(pd.to_numeric, errors="coerce").astype(np.float64)
    label_spec = raw["label"]
    table = _table(root, f"{path} [label]", label_spec, ("path", "subject", "column"))
    column = label_spec.get("column")
    if column not in table.columns:
        raise DataError(f"{path} [label]: column {column!r} not in {label_spec['path']}")
    labels = pd.to_numeric(table[column], errors="coerce")
    bad = labels.index[~labels.isin([0, 1])]
    if len(bad):
        raise DataError(f"{path} [label]: {column!r} is not 0/1 for subjects {bad[:5].tolist()}")
    subjects = np.unique(read.events["subject_id"].to_numpy())
    unlabelled = np.setdiff1d(subjects, labels.index.to_numpy())
    if unlabelled.size:
        raise DataError(f"{path}: subjects {unlabelled[:5].tolist()} have events but no label")
    return FlatICUSet(
        events=read.events,
        static=static.reindex(labels.index),
        labels=labels.astype(np.int64).rename("label"),
        report=read.report,
        groups=_groups(path, raw, static_spec, frame, labels.index),
        request_state=flat_events.mapping_state(raw, read),
    )


def _groups(
    path: Path,
    raw: dict[str, Any],
    static_spec: dict[str, Any],
    frame: pd.DataFrame,
    subjects: pd.Index,
) -> pd.Series | None:
    """The ``[groups] column`` of the static table: the site of each of ``subjects``
    (NaN where the table has none); None without a ``[groups]`` table."""
    spec = raw.get("groups")
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ValueError(f'{path}: groups must be a table ([groups] column = "..."), got {spec!r}')
    check_known_keys(f"{path} [groups]", spec, ("column",))
    column = spec.get("column")
    if not column or column not in frame.columns:
        raise DataError(
            f"{path} [groups]: column {column!r} is not in {static_spec['path']}; it names the "
            f"static table's column holding each stay's site, one of {list(frame.columns)}"
        )
    return frame[column].rename("group").reindex(subjects)


def _labels(task: str, data: FlatICUSet) -> pd.Series:
    if task != "label":
        raise ValueError(
            f"dataset 'flat_icu' has one task, 'label' (the [label] column); got {task!r}"
        )
    labels = data.labels.copy()
    labels.attrs["excluded"] = {}
    return labels


def _fit(features: dict[str, Any], data: FlatICUSet, ids: np.ndarray) -> ICUFeaturizer:
    options = {"static_columns": list(data.static.columns), **features}
    return ICUFeaturizer(**options).fit(data.events, data.static, ids)


def _transform(
    featurizer: ICUFeaturizer, data: FlatICUSet, ids: np.ndarray
) -> dict[str, np.ndarray]:
    return featurizer.transform(data.events, data.static, ids)


def _request_state(data: FlatICUSet) -> dict[str, Any]:
    return data.request_state


def _read_as_trained(path: Path, state: Mapping[str, Any]) -> FlatICUSet:
    """New tables for a trained bundle, in the units training chose (``state``): the grid's
    values and normalisation are in those units."""
    return read_mapping(path, units=dict(state.get("units") or {}))


def _sizes(featurizer: ICUFeaturizer) -> dict[str, int]:
    return {"input_size": featurizer.n_features, "static_size": featurizer.n_static}


def _group(
    data: FlatICUSet, labels: pd.Series, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """Whole sites of the ``[groups]`` column (largest first, each to the smallest site so
    far: :func:`medseq.datasets.partitions.by_group`, as ``flat_events``' hospitals);
    ``alpha`` is not used. Stays without a group are left out (and counted)."""
    if data.groups is None:
        raise ValueError(
            "flat_icu partition 'group' needs a [groups] column in the mapping file (the "
            "static table's column naming each stay's site); without one use 'iid' or "
            "'dirichlet'"
        )
    groups = data.groups.reindex(labels.index).dropna()
    return partitions.by_group(groups, n_sites, seed)


def _iid(
    data: FlatICUSet, labels: pd.Series, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    return partitions.iid(labels.index.to_numpy(), n_sites, seed)


class _FlatFederatedFit(ICUFederatedFit):
    """:class:`~medseq.features.icu.federated.ICUFederatedFit` whose ``static_columns``
    default to the mapping's ``[static] columns``, as :func:`_fit`'s do: each site reads
    them from its data; the server merges the sites' states and never needs them."""

    def site_statistics(
        self, stage: str, payload: Any, data: FlatICUSet, ids: np.ndarray
    ) -> dict[str, Any]:
        features = {"static_columns": list(data.static.columns), **self.features}
        return ICUFederatedFit(features, self.tables).site_statistics(stage, payload, data, ids)


def _federated_fit(features: dict[str, Any]) -> ICUFederatedFit:
    return _FlatFederatedFit(features, lambda data, ids: (data.events, data.static))


FLAT_ICU = DatasetSpec(
    name="flat_icu",
    tasks={"label": "binary"},
    read=read_mapping,
    labels=_labels,
    fit_featurizer=_fit,
    transform=_transform,
    model_sizes=_sizes,
    partitions={"group": _group, "iid": _iid, "dirichlet": partitions.dirichlet},
    federated_fit=_federated_fit,
    streaming=LazyModule("medseq.datasets.flat_icu_stream"),
    request=LazyBody("medseq.datasets.flat_icu_serving:parse", "flat_rows", ICU_EXAMPLE),
    request_state=_request_state,
    read_as_trained=_read_as_trained,
    unsupported={
        "fhir": "flat_icu has no FHIR code table",
    },
)
