"""A dataset card: a look at an event table before any training (``medseq data inspect``).

A hospital's own export is rarely what its documentation says. Before a task is defined,
the card shows what the reader made of the files: subjects and events, codes by system,
the time span, how many events each subject has, which numeric codes are measured for
whom (missingness), the unit mismatches and entries the reader could not use (it drops
nothing silently; :class:`~medseq.schema.ReadReport`), and, given a task config, that task's
cohort table. :func:`inspect_events` computes it from the canonical event table of any
reader (FHIR R4, MEDS); :func:`card_text` prints it and :func:`card_html` writes a
self-contained page with plots through the report's machinery (``medseq[report]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medseq.tasks.spec import BIRTH_CODE, DEATH_CODE, GENDER_PREFIX, HOURS_PER_YEAR

#: Numeric codes shown in the missingness table and figure (the most frequent first).
TOP_NUMERIC = 25


def code_system(codes: pd.Series) -> pd.Series:
    """The system of each code: ``http://loinc.org`` of ``http://loinc.org|8867-4``,
    ``ENCOUNTER`` of ``ENCOUNTER/AMB``, the code itself when it has neither separator."""
    text = codes.astype(str)
    piped = text.str.contains("|", regex=False)
    system = text.where(~piped, text.str.split("|").str[0])
    slashed = ~piped & text.str.contains("/", regex=False)
    return system.where(~slashed, text.str.split("/").str[0])


@dataclass
class DataCard:
    """What :func:`inspect_events` found; every table is a plain DataFrame.

    Attributes
    ----------
    source : str
        The path read.
    summary : dict
        ``subjects``, ``events``, ``codes``, ``first_event``, ``last_event`` (ISO dates or
        ``""`` without a time origin), ``deaths``, ``sex`` (counts by ``GENDER/<x>``).
    systems : DataFrame
        Per code system: ``events``, ``codes``, ``subjects``, ``numeric_events``.
    per_subject : DataFrame
        Per subject: ``events``, ``record_years`` (first to last event).
    missingness : DataFrame
        Per numeric code (the :data:`TOP_NUMERIC` most frequent): ``events``,
        ``subjects_measured_pct``, ``value_missing_pct`` (events of the code without a value).
    read_counts : DataFrame
        The reader's counts (``reason``, ``count``): unit mismatches, unsupported resources,
        bad entries, ...
    unit_mismatches : DataFrame
        The ``unit_mismatch:`` counts alone: ``code``, ``units``, ``count``.
    cohort : DataFrame or None
        The task's cohort table (``medseq cohort``) when a config was given.
    task : dict
        ``name``, ``samples``, ``positive``, ``prevalence`` of that task (empty without).
    """

    source: str
    summary: dict[str, Any]
    systems: pd.DataFrame
    per_subject: pd.DataFrame
    missingness: pd.DataFrame
    read_counts: pd.DataFrame
    unit_mismatches: pd.DataFrame
    cohort: pd.DataFrame | None = None
    task: dict[str, Any] = field(default_factory=dict)


def _summary(events: pd.DataFrame, origin: pd.Series) -> dict[str, Any]:
    codes = events["code"].astype(str)
    sex = codes[codes.str.startswith(GENDER_PREFIX)].str.slice(len(GENDER_PREFIX))
    timed = events[~codes.isin([BIRTH_CODE])]
    first, last = "", ""
    hour0 = pd.to_datetime(origin, utc=True) if len(origin) else pd.Series(dtype="object")
    if len(timed) and len(hour0) and not hour0.isna().all():
        start = hour0.reindex(timed["subject_id"]).dt.tz_localize(None).to_numpy()
        at = start + pd.to_timedelta(timed["time"].to_numpy(), unit="h").to_numpy()
        at = pd.Series(at).dropna()
        if len(at):
            first, last = at.min().date().isoformat(), at.max().date().isoformat()
    return {
        "subjects": int(events["subject_id"].nunique()),
        "events": len(events),
        "codes": int(codes.nunique()),
        "first_event": first,
        "last_event": last,
        "deaths": int(events.loc[codes == DEATH_CODE, "subject_id"].nunique()),
        "sex": {str(k): int(v) for k, v in sex.value_counts().sort_index().items()},
    }


def _systems(events: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "system": code_system(events["code"]).to_numpy(),
            "code": events["code"].to_numpy(),
            "subject_id": events["subject_id"].to_numpy(),
            "numeric": events["value"].notna().to_numpy(),
        }
    )
    table = frame.groupby("system").agg(
        events=("code", "size"),
        codes=("code", "nunique"),
        subjects=("subject_id", "nunique"),
        numeric_events=("numeric", "sum"),
    )
    return table.sort_values("events", ascending=False).astype(np.int64)


def _per_subject(events: pd.DataFrame) -> pd.DataFrame:
    clinical = events[~events["code"].isin([BIRTH_CODE])]
    by = clinical.groupby("subject_id")["time"]
    table = pd.DataFrame({"events": by.size(), "record_years": (by.max() - by.min())})
    table["record_years"] = table["record_years"] / HOURS_PER_YEAR
    return table


def _missingness(events: pd.DataFrame) -> pd.DataFrame:
    numeric_codes = events.loc[events["value"].notna(), "code"].value_counts()
    chosen = numeric_codes.index[:TOP_NUMERIC]
    ev = events[events["code"].isin(chosen)]
    n_subjects = max(int(events["subject_id"].nunique()), 1)
    by = ev.groupby("code")
    table = pd.DataFrame(
        {
            "events": by.size(),
            "subjects_measured_pct": 100.0 * by["subject_id"].nunique() / n_subjects,
            "value_missing_pct": 100.0 * by["value"].apply(lambda v: v.isna().mean()),
        }
    )
    return table.reindex(chosen)


def _read_counts(report: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = dict(getattr(report, "counts", {}) or {})
    table = pd.DataFrame(sorted(counts.items()), columns=["reason", "count"])
    rows = []
    for reason, count in counts.items():
        if reason.startswith("unit_mismatch:"):
            code, _, units = reason[len("unit_mismatch:") :].rpartition(":")
            rows.append((code, units, int(count)))
    units = pd.DataFrame(rows, columns=["code", "units", "count"])
    return table, units.sort_values("count", ascending=False).reset_index(drop=True)


def inspect_events(
    events: pd.DataFrame, origin: pd.Series, report: Any = None, *, source: str = ""
) -> DataCard:
    """The card of a canonical event table (``subject_id, time, code, value``).

    ``origin`` is each subject's hour 0 (UTC instants; an empty Series when unknown) and
    ``report`` the reader's :class:`~medseq.schema.ReadReport` (its counts become the read
    and unit-mismatch tables).
    """
    missing = [c for c in ("subject_id", "time", "code", "value") if c not in events.columns]
    if missing:
        raise ValueError(f"{source or 'events'}: not an event table, missing columns {missing}")
    if events.empty:
        raise ValueError(f"{source or 'events'}: the event table is empty")
    read_counts, units = _read_counts(report)
    return DataCard(
        source=source,
        summary=_summary(events, origin),
        systems=_systems(events),
        per_subject=_per_subject(events),
        missingness=_missingness(events),
        read_counts=read_counts,
        unit_mismatches=units,
    )


def _markdown(frame: pd.DataFrame, index: bool = True, digits: int = 1) -> str:
    shown = frame.reset_index() if index else frame
    head = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    rows = []
    for row in shown.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def _distribution(values: pd.Series) -> str:
    q = values.quantile([0.0, 0.1, 0.5, 0.9, 1.0]).to_numpy()
    return f"min {q[0]:.1f}, p10 {q[1]:.1f}, median {q[2]:.1f}, p90 {q[3]:.1f}, max {q[4]:.1f}"


def card_text(card: DataCard) -> str:
    """The card as Markdown (what ``medseq data inspect`` prints)."""
    s = card.summary
    sex = ", ".join(f"{k} {v}" for k, v in s["sex"].items()) or "no GENDER/ codes"
    lines = [
        f"# Data card: {card.source}",
        "",
        f"subjects: {s['subjects']}, events: {s['events']}, distinct codes: {s['codes']}",
        f"time span: {s['first_event'] or '?'} to {s['last_event'] or '?'}; "
        f"deaths: {s['deaths']}; sex: {sex}",
        f"events per subject: {_distribution(card.per_subject['events'])}",
        f"record length (years): {_distribution(card.per_subject['record_years'])}",
        "",
        "## Codes by system",
        _markdown(card.systems),
        "",
        f"## Missingness of the {len(card.missingness)} most frequent numeric codes",
        _markdown(card.missingness) if len(card.missingness) else "(no numeric values)",
        "",
        "## Unit mismatches (values dropped by the reader)",
        _markdown(card.unit_mismatches, index=False) if len(card.unit_mismatches) else "none",
        "",
        "## Reader counts (nothing is dropped silently)",
        _markdown(card.read_counts, index=False) if len(card.read_counts) else "none",
    ]
    if card.cohort is not None:
        t = card.task
        lines += [
            "",
            f"## Cohort of task {t['name']!r}",
            _markdown(card.cohort, index=False),
            "",
            f"samples: {t['samples']} of {t['subjects']} subjects, positive: {t['positive']}, "
            f"prevalence: {t['prevalence']:.3f}",
        ]
    return "\n".join(lines)


def _figures(card: DataCard) -> dict[str, bytes]:
    from medseq.explain.plotting import figure_png, pyplot

    plt = pyplot()
    figs: dict[str, bytes] = {}
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
    axes[0].hist(card.per_subject["events"], bins=40, color="C0")
    axes[0].set_xlabel("events per subject")
    axes[0].set_ylabel("subjects")
    axes[0].set_title("Events per subject", loc="left")
    axes[1].hist(card.per_subject["record_years"], bins=40, color="C1")
    axes[1].set_xlabel("first to last event (years)")
    axes[1].set_ylabel("subjects")
    axes[1].set_title("Record length", loc="left")
    figs["per_subject"] = figure_png(fig)
    top = card.systems.head(15)
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(top) + 1.2))
    ax.barh(np.arange(len(top))[::-1], top["events"].to_numpy(), color="C0")
    ax.set_yticks(np.arange(len(top))[::-1], [str(s)[-45:] for s in top.index])
    ax.set_xscale("log")
    ax.set_xlabel("events (log scale)")
    ax.set_title("Events by code system", loc="left")
    figs["systems"] = figure_png(fig)
    if len(card.missingness):
        miss = card.missingness
        fig, ax = plt.subplots(figsize=(7.5, 0.26 * len(miss) + 1.2))
        ax.barh(np.arange(len(miss))[::-1], 100 - miss["subjects_measured_pct"], color="C3")
        ax.set_yticks(np.arange(len(miss))[::-1], [str(c)[-45:] for c in miss.index])
        ax.set_xlim(0, 100)
        ax.set_xlabel("subjects never measured (%)")
        ax.set_title("Missingness of numeric codes", loc="left")
        figs["missingness"] = figure_png(fig)
    return figs


def card_html(card: DataCard) -> str:
    """The card as one self-contained HTML page with plots (needs ``medseq[report]``)."""
    from medseq.report.html import render_html

    def rows(frame: pd.DataFrame, index: bool = True) -> dict[str, Any]:
        shown = frame.reset_index() if index else frame
        return {
            "columns": [str(c) for c in shown.columns],
            "rows": [
                [f"{v:.1f}" if isinstance(v, float) else str(v) for v in r]
                for r in shown.itertuples(index=False)
            ],
        }

    context = {
        "card": card,
        "summary": card.summary,
        "events_dist": _distribution(card.per_subject["events"]),
        "years_dist": _distribution(card.per_subject["record_years"]),
        "systems": rows(card.systems),
        "missingness": rows(card.missingness),
        "units": rows(card.unit_mismatches, index=False),
        "read_counts": rows(card.read_counts, index=False),
        "cohort": None if card.cohort is None else rows(card.cohort, index=False),
        "task": card.task,
    }
    return render_html(context, _figures(card), template="data_card.html.j2")


def with_cohort(card: DataCard, name: str, cohort: pd.DataFrame, samples: pd.DataFrame,
                labels: pd.Series) -> DataCard:  # fmt: skip
    """``card`` with a task's cohort table and sample counts."""
    card.cohort = cohort
    card.task = {
        "name": name,
        "samples": len(labels),
        "subjects": int(samples["subject_id"].nunique()),
        "positive": int(labels.sum()),
        "prevalence": float(labels.mean()),
    }
    return card
