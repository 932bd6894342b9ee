"""HL7 FHIR R4 exports -> the canonical event table, a static table and a unit table.

Reads transaction or collection **Bundles** (``*.json``: one Bundle, or one bare resource,
per file) and **Bulk Data NDJSON** (``*.ndjson``: one resource per line, one resource type
per file), given as a file, a folder (searched recursively) or a tar archive of either
(``.tar.xz`` / ``.tar.gz``). No FHIR model classes: ``msgspec`` decodes only the fields
used (:mod:`medseq.sources._fhir_files`; orjson or json when it is absent), small handlers
pick them from plain dicts, then times, references, units and ids are resolved for all
rows at once (``benchmarks/bench_read_fhir.py`` measures it against ``fhir.resources``).

Events (codes keep their system, ``http://loinc.org|8867-4``)

=================  =============================================  ==========================
resource           event(s)                                       time
=================  =============================================  ==========================
Observation        ``system|code`` with the value (valueQuantity  effectiveDateTime, else
                   in its code's unit, valueInteger, valueBoolean effectivePeriod.start,
                   1/0); ``system|code=system|code`` for a        effectiveInstant, issued
                   valueCodeableConcept; each ``component`` is
                   its own event (the panel then gives none)
Encounter          ``ENCOUNTER/<class>`` and each type's code;    period.start; period.end
                   ``ENCOUNTER_END/<class>``
Condition          ``system|code``                                onset[x], else recordedDate
MedicationRequest  medicationCodeableConcept                      authoredOn
Procedure          ``system|code``                                performed[x]
Immunization       vaccineCode                                    occurrenceDateTime
Patient            ``MEDS_BIRTH``, ``GENDER/<M|F|O|U>``; and      birthDate; deceasedDateTime
                   ``MEDS_DEATH``
=================  =============================================  ==========================

``time`` is hours since the subject's first Encounter start (:attr:`FhirSet.origin`, UTC),
as :func:`medseq.sources.meds.read_events` does with ``start_prefix="ENCOUNTER/"``, so an
export to MEDS reads back the same. A date without a time of day (``2019-05-01``) is
placed at the end of that day, the earliest time it is surely known (counted as
``date_only_time``). ``subject_id`` is a stable 63-bit hash of ``Patient.id``.

Nothing is dropped silently: :attr:`FhirSet.resources` counts, per resource type, the
entries read, used, not supported (``Claim``, ``DiagnosticReport``, ... or any unknown
type) and bad, and ``report.counts`` holds every reason (``unsupported_resource:<Type>``,
``bad_entry:<Type>:<reason>``, ``status:<Type>:<status>``, ``unit_mismatch:...``,
``unknown_subject:<Type>``, ...); :func:`read` logs one summary line.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport
from medseq.sources import _fhir_resources as res_rules
from medseq.sources import _fhir_tables as tables
from medseq.sources._fhir_files import Document, iter_documents
from medseq.sources._longcsv import check_policy
from medseq.sources._units import harmonise

__all__ = [
    "ENCOUNTER_END_PREFIX",
    "ENCOUNTER_PREFIX",
    "FhirSet",
    "age_years_at",
    "read",
    "subject_id_of",
]

logger = logging.getLogger(__name__)

ENCOUNTER_PREFIX = res_rules.ENCOUNTER_PREFIX
ENCOUNTER_END_PREFIX = res_rules.ENCOUNTER_END_PREFIX
WANTED = frozenset({*res_rules.HANDLERS, "Patient"})


@dataclass
class FhirSet:
    """A FHIR export, read.

    Attributes
    ----------
    events : DataFrame
        The canonical table ``subject_id, time, code, value``, sorted by subject, time, code.
    static : DataFrame
        Indexed by ``subject_id``: ``patient_id`` (the FHIR id), ``sex`` (FHIR gender),
        ``birth_date``, ``death_time`` (datetime64, UTC, NaT if none) and ``age_years``
        at the reference time given to :func:`read` (default: the subject's hour 0).
    units : DataFrame
        One row per numeric code: ``code, unit, n_values, n_converted, n_dropped``.
    origin : Series
        ``datetime64[us]`` (UTC) instant of hour 0 per ``subject_id``.
    resources : DataFrame
        Indexed by resource type: ``n_entries, n_used, n_unsupported, n_bad, n_void,
        n_unit_dropped`` (they add up to ``n_entries``).
    report : ReadReport
        Subjects, events and every count by reason.
    """

    events: pd.DataFrame
    static: pd.DataFrame
    units: pd.DataFrame
    origin: pd.Series
    resources: pd.DataFrame
    report: ReadReport

    def to_meds(
        self,
        path: str | os.PathLike[str],
        *,
        splits: Mapping[int, str] | None = None,
        dataset_name: str = "fhir_r4",
        subjects_per_shard: int | None = None,
    ) -> Path:
        """Write the events as a MEDS folder (:func:`medseq.sources.meds.write_events`).

        Read it back with ``meds.read_events(path, start_prefix=ENCOUNTER_PREFIX)``.
        """
        from medseq.sources import meds

        return meds.write_events(
            self.events,
            self.origin,
            Path(path),
            splits=splits,
            dataset_name=dataset_name,
            subjects_per_shard=subjects_per_shard,
        )


def age_years_at(data: FhirSet, subject_id: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Age in years (365.25 days) of each subject at ``time`` hours on its own clock.

    What a task needs at its prediction time: ``static.birth_date`` is absolute, ``time``
    is relative to :attr:`FhirSet.origin`. NaN where the birth date is unknown.

    Parameters
    ----------
    data : FhirSet
    subject_id : ndarray of int64, shape (n,)
    time : ndarray of float64, shape (n,)
        Hours since each subject's hour 0 (the events' clock).
    """
    subject_id = np.asarray(subject_id, dtype=np.int64)
    hour0 = data.origin.reindex(subject_id).to_numpy().astype("datetime64[us]")
    offset = np.rint(np.asarray(time, dtype=np.float64) * 3.6e9).astype("timedelta64[us]")
    birth = data.static["birth_date"].reindex(subject_id).to_numpy().astype("datetime64[us]")
    return ((hour0 + offset) - birth) / np.timedelta64(1, "D") / 365.25


def subject_id_of(patient_id: str) -> int:
    """The int64 ``subject_id`` of a FHIR ``Patient.id``: stable across files and runs.

    Examples
    --------
    >>> subject_id_of("e925b0f3-8006-43f6-aa31-94bd215e55e7") == subject_id_of(
    ...     "e925b0f3-8006-43f6-aa31-94bd215e55e7")
    True
    """
    digest = hashlib.blake2b(patient_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def read(
    path: str | os.PathLike[str],
    *,
    on_bad_entry: OnBad = "raise",
    on_unit_mismatch: OnBad = "warn",
    units: dict[str, str] | None = None,
    reference_time: str | pd.Timestamp | None = None,
) -> FhirSet:
    """Read FHIR R4 Bundles or Bulk Data NDJSON into events, static facts and units.

    Parameters
    ----------
    path : path-like
        A Bundle ``.json``, an ``.ndjson`` file, a folder of them, or a tar archive.
    on_bad_entry : {"raise", "warn", "skip"}, default="raise"
        Malformed JSON, or an entry that cannot be read (no code, no subject, no time, an
        unparseable time, a non-numeric quantity): raise a DataError naming the file and
        entry, or skip it and count it (``"warn"`` also logs it).
    on_unit_mismatch : {"raise", "warn", "skip"}, default="warn"
        A quantity whose unit does not convert to its code's unit (see
        :func:`medseq.sources._units.harmonise`).
    units : dict of code to UCUM unit, optional
        The unit each code must end in (e.g. :attr:`FhirSet.units` of the training data);
        by default each code's most frequent unit.
    reference_time : str or Timestamp, optional
        Instant at which ``static.age_years`` is taken; default each subject's hour 0.

    Raises
    ------
    DataError
        See ``on_bad_entry``; also when no Patient resource is found.
    FileNotFoundError
        If ``path`` does not exist.

    Notes
    -----
    ``docs/own_data.md`` shows the tables on the Synthea export; the tests read real
    Synthea Bundles (``tests/unit/sources/test_fhir_r4_source.py``).
    """
    check_policy(on_bad_entry)
    check_policy(on_unit_mismatch)
    path = Path(path)
    report = ReadReport(source=str(path))
    state = _Collector(report, on_bad_entry)
    # Parsing creates millions of short-lived containers and no reference cycles: the
    # cyclic garbage collector would rescan the growing row list over and over (it cost
    # about a quarter of the parse time), so it is paused while the files are walked.
    paused = gc.isenabled()
    gc.disable()
    try:
        documents = iter_documents(path, report, on_bad_entry, WANTED)
        for doc_index, doc in enumerate(documents):
            state.read_document(doc_index, doc)
    finally:
        if paused:
            gc.enable()
    patients = state.patient_frame()
    frame = tables.resolve(state, patients, report, on_bad_entry)
    frame = tables.drop_ends_before_starts(frame, report)
    tables.check_nonempty(frame, str(path))
    before_units = frame[["doc", "entry", "kind"]]
    values, keep, unit_table = harmonise(
        frame["code"].to_numpy(dtype=object),
        frame["value"].to_numpy(dtype=np.float64),
        frame["unit"].to_numpy(dtype=object),
        report,
        targets=units,
        on_mismatch=on_unit_mismatch,
        where=str(path),
    )
    frame = frame.assign(value=values)[keep]
    events, origin = tables.to_hours(frame, ENCOUNTER_PREFIX, str(path))
    static = tables.static_table(patients, origin, reference_time)
    report.n_subjects = int(events["subject_id"].nunique())
    report.n_events = len(events)
    resources = state.resource_table(before_units, frame)
    _log(report, resources)
    return FhirSet(events, static, unit_table, origin, resources, report)


class _Collector:
    """Walks documents: dispatches each entry to its handler, counts what it cannot use."""

    def __init__(self, report: ReadReport, on_bad_entry: OnBad) -> None:
        self.report = report
        self.on_bad = on_bad_entry
        self.rows = res_rules.Rows(report.add)
        self.names: list[str] = []
        self.patients: list[tuple] = []
        self.aliases: dict[str, str] = {}
        self.seen: Counter[str] = Counter()
        self.bad: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()

    def read_document(self, doc_index: int, doc: Document) -> None:
        self.names.append(doc.name)
        self.rows.doc = doc_index
        for entry, resource, full_url in doc.resources:
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            kind = kind if isinstance(kind, str) else "(none)"
            self.seen[kind] += 1
            self.rows.entry, self.rows.kind = entry, kind
            mark = len(self.rows.rows)
            try:
                self._dispatch(kind, resource, full_url)
            except res_rules.BadEntry as err:
                del self.rows.rows[mark:]
                self.flag(kind, err.reason, err.detail)
            except (AttributeError, TypeError, KeyError, ValueError) as err:
                del self.rows.rows[mark:]
                self.flag(kind, "malformed", f"unexpected structure ({type(err).__name__}: {err})")

    def _dispatch(self, kind: str, resource: object, full_url: str | None) -> None:
        if kind == "(none)":
            raise res_rules.BadEntry("no_resource", "entry without a resource or resourceType")
        resource = cast(dict, resource)  # kind is a string only for dicts
        handler = res_rules.HANDLERS.get(kind)
        if handler is not None:
            handler(resource, self.rows)
        elif kind == "Patient":
            self._patient(resource, full_url)
        else:
            self.unsupported[kind] += 1
            self.report.add(f"unsupported_resource:{kind}")

    def _patient(self, resource: dict, full_url: str | None) -> None:
        pid = resource.get("id")
        if not pid or not isinstance(pid, str):
            raise res_rules.BadEntry("no_id", "Patient without id")
        if full_url:
            self.aliases[tables.ref_key(full_url)] = pid
        deceased = resource.get("deceasedDateTime")
        self.patients.append(
            (
                pid,
                resource.get("gender"),
                resource.get("birthDate"),
                deceased,
                self.rows.doc,
                self.rows.entry,
            )
        )

    def flag(self, kind: str, reason: str, detail: str) -> None:
        """A bad entry: raise naming where, or count it (and log it under "warn")."""
        where = f"{self.names[self.rows.doc]}: entry {self.rows.entry} ({kind})"
        if self.on_bad == "raise":
            raise DataError(f"{where}: {detail}; fix the export or pass on_bad_entry='warn'")
        self.bad[kind] += 1
        self.report.add(f"bad_entry:{kind}:{reason}")
        if self.on_bad == "warn":
            logger.warning("%s: %s; entry skipped", where, detail)

    def patient_frame(self) -> pd.DataFrame:
        """One row per Patient (first wins on a repeated id), with its subject_id."""
        columns = ["patient_id", "gender", "birth", "deceased", "doc", "entry"]
        frame = pd.DataFrame.from_records(self.patients, columns=columns)
        if frame.empty:
            raise DataError(
                f"{self.report.source}: no Patient resource found; the static table and the "
                "subject ids come from Patients (a Bulk Data export has Patient.ndjson)"
            )
        repeated = frame.duplicated("patient_id")
        self.report.add("duplicate_patient", int(repeated.sum()))
        frame = frame[~repeated].reset_index(drop=True)
        frame["subject_id"] = np.array(
            [subject_id_of(p) for p in frame["patient_id"]], dtype=np.int64
        )
        if frame["subject_id"].duplicated().any():  # pragma: no cover - 2**-63 odds
            raise DataError(f"{self.report.source}: two Patient ids hash to one subject_id")
        return frame

    def resource_table(self, before_units: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
        """Per resource type: entries read, used, unsupported, bad, void, lost to units.

        ``n_entries = n_used + n_unsupported + n_bad + n_void + n_unit_dropped``: an entry
        is used when at least one of its events is in the table, unit-dropped when all its
        events were dropped by the unit check.
        """

        def entries(frame: pd.DataFrame) -> pd.Series:
            return frame.drop_duplicates(["doc", "entry"]).groupby("kind").size()

        used = entries(after)
        lost = entries(before_units).sub(used, fill_value=0)
        void: Counter[str] = Counter()
        for key, n in self.report.counts.items():
            if key.startswith("status:"):
                void[key.split(":")[1]] += n
        table = pd.DataFrame(
            {
                "n_entries": pd.Series(self.seen, dtype=np.int64),
                "n_used": used,
                "n_unsupported": pd.Series(self.unsupported, dtype=np.int64),
                "n_bad": pd.Series(self.bad, dtype=np.int64),
                "n_void": pd.Series(void, dtype=np.int64),
                "n_unit_dropped": lost,
            }
        )
        return table.fillna(0).astype(np.int64).sort_index().rename_axis("resource_type")


def _log(report: ReadReport, resources: pd.DataFrame) -> None:
    """One summary line; a warning naming what was not used, when something was not."""
    logger.info("%s", report.summary())
    left = resources[(resources["n_unsupported"] > 0) | (resources["n_bad"] > 0)]
    if len(left):
        parts = [
            f"{kind} {row.n_unsupported} unsupported, {row.n_bad} bad"
            for kind, row in left.iterrows()
        ]
        logger.warning("%s: entries not used: %s", report.source, "; ".join(parts))
