"""Flat CSV or parquet tables mapped to events by a TOML file: ``dataset = "flat_events"``.

The experiment's ``[data] train`` names a *mapping file* (TOML) instead of a data file, so
one mapping serves every task on the same export and the export itself stays untouched::

    root = "eicu_demo"               # folder of the tables (absolute, cwd or data root)
    on_bad_row = "warn"              # unparseable rows are dropped and counted, or "raise"
    on_unit_mismatch = "warn"

    [groups]                         # optional: the code naming each subject's site
    code_prefix = "HOSPITAL/"        # e.g. "HOSPITAL/73": protocol "group" keeps sites apart

    [[events]]                       # one table per entry: medseq.sources.flat_events.FlatMapping
    path = "vitalAperiodic.csv.gz"
    ...

Tasks, features, the baseline and the "subject" protocol are those of every config-task
event dataset (:mod:`medseq.datasets.event_tasks`). The bundle keeps the mapping (without
``root``) and the unit chosen per code, so ``POST /v1/predict`` reads a patient's rows of
the same tables through the same mapping (:mod:`medseq.datasets.flat_tables_serving`).

The ``"group"`` protocol holds out whole sites: about a fifth of the groups (by
``[data] split_seed``) are the test part and the rest is cut into ``cv_folds``
group-disjoint folds, each stratified on the label as far as whole groups allow, so a
model is always scored on hospitals it never saw.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medseq.datasets.event_tasks import (
    TEST_FRACTION,
    UNSUPPORTED,
    EventTaskData,
    event_task_spec,
)
from medseq.datasets.event_tasks_federated import federated_fit
from medseq.datasets.flat_tables_serving import EXAMPLE as TABLES_EXAMPLE
from medseq.datasets.registry import SplitIds
from medseq.schema import check_known_keys
from medseq.serving.requests import LazyBody
from medseq.sources import flat_events

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOP_KEYS = ("root", "on_bad_row", "on_unit_mismatch", "units", "groups", "events")


@dataclass
class FlatTaskData(EventTaskData):
    """Event data read through a mapping file; ``group_prefix`` names the site code and
    ``request_state`` is what the REST parser needs to read rows the same way
    (:func:`medseq.sources.flat_events.mapping_state`)."""

    group_prefix: str = ""


def read_mapping(
    path: str | os.PathLike[str], units: Mapping[str, str] | None = None
) -> FlatTaskData:
    """Read every table a mapping file lists into one event table.

    ``units`` (code -> unit) overrides the file's ``units`` and the most frequent unit per
    code: a trained bundle's units, so new tables are read as the training tables were.

    Raises
    ------
    ValueError
        The file is not a mapping TOML (unknown top-level keys are named), or lists no table.
    DataError
        A table or column is missing, or a bad row under ``on_bad_row = "raise"``.
    """
    from medseq.experiment.data import resolve_data_path

    path = Path(path)
    if path.suffix.lower() != ".toml":
        raise ValueError(
            f"{path}: dataset 'flat_events' reads a mapping file (.toml) listing the tables "
            "([[events]]); point [data] train at it"
        )
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    check_known_keys(f"{path}", raw, TOP_KEYS)
    if not raw.get("events"):
        raise ValueError(f"{path}: no [[events]] tables; map at least one table to events")
    groups = raw.get("groups", {})
    check_known_keys(f"{path} [groups]", groups, ("code_prefix",))
    root = resolve_data_path(raw["root"]) if raw.get("root") else path.parent
    mappings = flat_events.FlatMapping.list_from_toml(path, "events")
    read = flat_events.read_tables(
        mappings,
        root=root,
        on_bad_row=raw.get("on_bad_row", "raise"),
        on_unit_mismatch=raw.get("on_unit_mismatch", "warn"),
        units={**(raw.get("units") or {}), **(units or {})} or None,
    )
    origin = read.origin if read.origin is not None else pd.Series(dtype="datetime64[us]")
    return FlatTaskData(
        events=read.events,
        origin=origin,
        report=read.report,
        group_prefix=str(groups.get("code_prefix", "")),
        request_state=flat_events.mapping_state(raw, read),
    )


def subject_groups(data: EventTaskData, ids: np.ndarray) -> pd.Series:
    """The site of each subject: the suffix of its first code with the group prefix."""
    prefix = getattr(data, "group_prefix", "")
    if not prefix:
        raise ValueError(
            "protocol 'group' needs the mapping file's [groups] code_prefix (the code that "
            "names each subject's site, e.g. 'HOSPITAL/')"
        )
    events = data.events
    coded = events[events["code"].astype(str).str.startswith(prefix)]
    group = coded.groupby("subject_id")["code"].first().str.slice(len(prefix))
    group = group.reindex(np.asarray(ids, dtype=np.int64))
    if group.isna().any():
        missing = group.index[group.isna()][:5].tolist()
        raise ValueError(
            f"protocol 'group': subjects {missing} have no {prefix!r} code; every subject "
            "needs a site"
        )
    return group


def _group_split(data_config: Any, data: EventTaskData, labels: pd.Series) -> SplitIds:
    """Whole groups (sites) on one side: a test part of groups, then group-disjoint folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    ids = labels.index.to_numpy(dtype=np.int64)
    y = labels.to_numpy()
    groups = subject_groups(data, ids).to_numpy()
    seed = int(data_config.split_seed)
    n_groups = len(np.unique(groups))
    n_test = max(2, round(1 / TEST_FRACTION))
    folds_wanted = max(2, int(data_config.cv_folds))
    if n_groups < n_test + folds_wanted:
        raise ValueError(
            f"protocol 'group': {n_groups} groups, too few for a test part and "
            f"{folds_wanted} group-disjoint folds"
        )
    outer = StratifiedGroupKFold(n_splits=n_test, shuffle=True, random_state=seed)
    rest_i, test_i = next(outer.split(ids, y, groups))
    rest, y_rest, g_rest = ids[rest_i], y[rest_i], groups[rest_i]
    inner = StratifiedGroupKFold(n_splits=folds_wanted, shuffle=True, random_state=seed)
    folds = [(np.sort(rest[a]), np.sort(rest[b])) for a, b in inner.split(rest, y_rest, g_rest)]
    return SplitIds(folds=folds, test=np.sort(ids[test_i]))


def group_partition(
    data: EventTaskData, labels: pd.Series, *, n_sites: int, alpha: float, seed: int
) -> pd.Series:
    """Federated sites of whole groups (the mapping's ``[groups]`` code: hospitals for eICU).

    The rule: groups are taken largest first (by samples; ties in the order of a
    ``seed``-ed shuffle) and each goes to the site with the fewest samples so far
    (:func:`medseq.datasets.partitions.by_group`), so ``n_sites`` sites of similar size
    each hold different hospitals and no hospital is split. ``alpha`` is not used. Under
    protocol ``"group"`` the held-out hospitals are the test part, never at a site.
    """
    from medseq.datasets import partitions

    samples, _ = data.labelled()
    ids = labels.index.to_numpy(dtype=np.int64)
    subjects = samples.loc[ids, "subject_id"].to_numpy(dtype=np.int64)
    groups = pd.Series(subject_groups(data, subjects).to_numpy(), index=ids)
    return partitions.by_group(groups, n_sites, seed)


def _request_state(data: FlatTaskData) -> dict[str, Any]:
    return data.request_state


def _read_as_trained(path: Path, state: Mapping[str, Any]) -> FlatTaskData:
    """New tables for a trained bundle, in the units training chose (``state``)."""
    return read_mapping(path, units=dict(state.get("units") or {}))


_SPEC = event_task_spec(
    "flat_events",
    read_mapping,
    request=LazyBody("medseq.datasets.flat_tables_serving:parse", "flat_rows", TABLES_EXAMPLE),
    unsupported={"streaming": UNSUPPORTED["streaming"]},
)
FLAT_EVENTS = replace(
    _SPEC,
    protocols={**_SPEC.protocols, "group": _group_split},
    partitions={"group": group_partition},
    federated_fit=federated_fit,
    request_state=_request_state,
    read_as_trained=_read_as_trained,
)
