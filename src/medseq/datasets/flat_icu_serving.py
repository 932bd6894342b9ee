"""``flat_icu`` over REST: a stay's rows of the flat tables, onto the ICU grid of the bundle.

Imported on the first request (the ``request`` part of :mod:`medseq.datasets.flat_icu`).
The body has the form of :mod:`medseq.datasets.flat_tables_serving`: ``tables`` maps each
table the mapping reads, by file name without extensions, to its rows with the CSV's
column names. The event tables are read through the bundle's ``[[events]]`` mappings, the
static table (``[static]``) gives one row per stay, its ``columns`` read as numbers as the
training reader reads them (a cell that is not a number is missing); the label table is
not needed. The events and static facts then go through the bundle's fitted
:class:`~medseq.features.icu.featurizer.ICUFeaturizer`, the transform ``medseq predict``
calls on the same tables, so the answer is the batch prediction of that stay.

Each stay named in the rows (static or events) is answered; a stay without a static row
is predicted with its static inputs missing, as training reads it, and says so
(``static_missing``). Event codes the grid has no variable for are counted and listed
(``unknown_codes``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medseq.serving.requests import MAX_ITEMS, Parsed, RequestContext, RequestError


def _static(frame: pd.DataFrame | None, spec: dict[str, Any], name: str) -> pd.DataFrame:
    """The static table's rows as the training reader reads them: numbers per stay."""
    columns = list(spec.get("columns", []))
    subject = str(spec["subject"])
    if frame is None or frame.empty:
        return pd.DataFrame(columns=columns, dtype=np.float64)
    ids = pd.to_numeric(frame[subject].replace("", np.nan), errors="coerce")
    bad = ids.isna() | (ids != np.floor(ids))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RequestError.at(("body", "tables", name, row, subject), "must be an integer id")
    index = pd.Index(ids.astype(np.int64).to_numpy(), name="subject_id")
    if index.duplicated().any():
        raise RequestError.at(
            ("body", "tables", name), f"several rows for one {subject!r}; one row per stay"
        )
    static = frame[columns].set_axis(index).apply(pd.to_numeric, errors="coerce")
    return static.astype(np.float64)


def parse(body: Any, context: RequestContext) -> Parsed:
    """A ``flat_icu`` request: each stay's rows -> its grid inputs, in the bundle's mapping."""
    from medseq.datasets.event_tasks_serving import MAX_UNKNOWN_LISTED, known_codes
    from medseq.datasets.flat_icu import FlatICUSet
    from medseq.datasets.flat_tables_serving import read_rows, stored_state, table_name

    extra = sorted(set(body) - {"tables"}) if isinstance(body, dict) else []
    if extra:
        raise RequestError.at(("body", extra[0]), "unknown field; the body has tables")
    spec = dict(stored_state(context)["mapping"]["static"])
    name = table_name(str(spec["path"]))
    wanted = {name: {str(spec["subject"]), *map(str, spec.get("columns", []))}}
    read, tables = read_rows(body, context, extra=wanted)
    static = _static(tables.frames.get(name), spec, name)
    ids = np.union1d(read.events["subject_id"].to_numpy(), static.index.to_numpy())
    if len(ids) > MAX_ITEMS:
        raise RequestError.at(
            ("body", "tables"), f"rows of {len(ids)} stays; at most {MAX_ITEMS} a request"
        )
    events = read.events
    data = FlatICUSet(
        events=events, static=static.reindex(ids), labels=pd.Series(dtype=np.int64),
        report=read.report,
    )  # fmt: skip
    notes = []
    for sid in ids:
        codes = events.loc[events["subject_id"] == sid, "code"]
        unknown = codes[~known_codes(context.featurizer, codes)]
        note: dict[str, Any] = {
            "n_events_used": int(len(codes) - len(unknown)),
            "unknown_codes": {
                "n_events": len(unknown),
                "codes": unknown.value_counts().index[:MAX_UNKNOWN_LISTED].tolist(),
            },
        }
        if sid not in static.index:
            note["static_missing"] = True
        if tables.dropped:
            note["dropped_rows"] = dict(tables.dropped)
        notes.append(note)
    return Parsed(data, ids, [str(int(s)) for s in ids], notes)


#: The example body of the OpenAPI page: one stay of a PhysioNet-2012-like export.
EXAMPLE: dict[str, Any] = {
    "tables": {
        "events": [
            {"RecordID": "132539", "Hours": "0.6", "Parameter": "HR", "Value": "73"},
            {"RecordID": "132539", "Hours": "0.6", "Parameter": "Temp", "Value": "35.1"},
        ],
        "static": [{"RecordID": "132539", "Age": "54", "Gender": "0", "Height": "",
                    "ICUType": "4", "Weight": ""}],
    }
}  # fmt: skip
