"""PhysioNet 2012: variable names, physiologic limits, and the outcomes file format.

Kept apart from :mod:`medseq.sources.physionet2012` so that the reader stays short and
these dataset facts can be read (and reviewed by a clinician) in one place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.schema import DataError, ReadReport

logger = logging.getLogger(__name__)

#: The 37 time-varying variables, in the order of SOURCE.md and the Challenge page.
VARIABLES: tuple[str, ...] = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP",
    "MechVent", "Mg", "NIDiasABP", "NIMAP", "NISysABP", "Na", "PaCO2", "PaO2",
    "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT",
    "Urine", "WBC", "pH", "Weight",
)  # fmt: skip
#: The general descriptors recorded once at 00:00 (``Weight`` is also time-varying).
DESCRIPTORS: tuple[str, ...] = ("Age", "Gender", "Height", "ICUType", "Weight")

#: Physiologic limits ``(lowest, highest)`` in the Challenge's units, both inclusive.
#: A value outside is impossible in a living patient (or a unit/entry error such as a pH
#: of 735 or a temperature of -17.8 °C, i.e. 0 °F) and is dropped as missing. These are
#: deliberately wide: they are *not* outlier trimming. They start from the "outlier"
#: bounds of Harutyunyan et al., Multitask learning and benchmarking with clinical time
#: series data, Sci Data 6:96 (2019) (mimic3-benchmarks resources/variable_ranges.csv),
#: widened where recorded survivals exceed them (liver enzymes above 10,000 IU/L in
#: ischaemic hepatitis; platelets above 2,000) and tightened only where a value is
#: impossible by definition (a weight, height, PaO2 or PaCO2 of 0; FiO2 below room air).
VALID_RANGES: dict[str, tuple[float, float]] = {
    "ALP": (0.0, 10_000.0),  # IU/L
    "ALT": (0.0, 50_000.0),  # IU/L
    "AST": (0.0, 50_000.0),  # IU/L
    "Albumin": (0.0, 10.0),  # g/dL
    "BUN": (0.0, 500.0),  # mg/dL
    "Bilirubin": (0.0, 100.0),  # mg/dL
    "Cholesterol": (0.0, 2_000.0),  # mg/dL
    "Creatinine": (0.0, 70.0),  # mg/dL
    "DiasABP": (0.0, 400.0),  # mmHg; 0 kept (arrest, line zeroing), negative impossible
    "FiO2": (0.2, 1.0),  # fraction of inspired O2: room air (0.21, rounded) to pure O2
    "GCS": (3.0, 15.0),  # integer score, by definition
    "Glucose": (0.0, 3_000.0),  # mg/dL
    "HCO3": (0.0, 70.0),  # mmol/L
    "HCT": (0.0, 100.0),  # %, by definition
    "HR": (0.0, 400.0),  # bpm; 0 kept (asystole)
    "K": (0.0, 15.0),  # mEq/L; no survival reported above ~14
    "Lactate": (0.0, 40.0),  # mmol/L
    "MAP": (0.0, 400.0),  # mmHg
    "MechVent": (0.0, 1.0),  # indicator
    "Mg": (0.0, 25.0),  # as recorded (mg/dL-like values)
    "NIDiasABP": (0.0, 400.0),  # mmHg
    "NIMAP": (0.0, 400.0),  # mmHg
    "NISysABP": (0.0, 400.0),  # mmHg
    "Na": (50.0, 250.0),  # mEq/L
    "PaCO2": (1.0, 400.0),  # mmHg; arterial blood always holds CO2
    "PaO2": (1.0, 800.0),  # mmHg; at 1 atm on 100 % O2 the alveolar PO2 is ~670
    "Platelets": (0.0, 5_000.0),  # 10^3/uL
    "RespRate": (0.0, 300.0),  # breaths/min; 0 kept (apnoea on the ventilator)
    "SaO2": (0.0, 100.0),  # %, by definition
    "SysABP": (0.0, 400.0),  # mmHg
    "Temp": (10.0, 50.0),  # °C; survived extremes are 13.7 and 46.5
    "TroponinI": (0.0, 1_000.0),  # ug/L
    "TroponinT": (0.0, 1_000.0),  # ug/L
    "Urine": (0.0, 10_000.0),  # mL per charting; 10 L exceeds any diuresis between charts
    "WBC": (0.0, 1_000.0),  # 10^3/uL
    "pH": (5.5, 8.5),
    "Weight": (1.0, 700.0),  # kg; 0 or negative impossible
    "Age": (0.0, 130.0),  # years (the Challenge caps at 90)
    "Gender": (0.0, 1.0),  # 0 female, 1 male
    "Height": (50.0, 280.0),  # cm; the shortest and tallest adults recorded
    "ICUType": (1.0, 4.0),  # 1 coronary, 2 cardiac surgery, 3 medical, 4 surgical
}
#: Names whose values are integers by definition (a GCS of 7.5 is impossible).
INTEGER_VALUED = frozenset({"GCS", "MechVent", "Gender", "ICUType"})
#: Variables that are amounts, not levels: same-minute rows are added, not averaged.
DUPLICATES_SUMMED: tuple[str, ...] = ("Urine",)

OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"
#: File column -> ``outcomes`` column. ``-1`` is "missing" in all but In-hospital_death.
OUTCOME_COLUMNS: dict[str, str] = {
    "SAPS-I": "saps_i",
    "SOFA": "sofa",
    "Length_of_stay": "length_of_stay",
    "Survival": "survival",
    "In-hospital_death": "in_hospital_death",
}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def bounds(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per name: lowest and highest plausible value, and whether it must be an integer."""
    lows = np.array([VALID_RANGES[n][0] for n in names], dtype=np.float64)
    highs = np.array([VALID_RANGES[n][1] for n in names], dtype=np.float64)
    integer = np.array([n in INTEGER_VALUED for n in names], dtype=bool)
    return lows, highs, integer


def in_range(
    values: np.ndarray, lows: np.ndarray, highs: np.ndarray, integer: np.ndarray
) -> np.ndarray:
    """Elementwise plausibility; ``lows``/``highs``/``integer`` broadcast against values."""
    with np.errstate(invalid="ignore"):
        ok = (values >= lows) & (values <= highs)
        return ok & (~integer | (values == np.round(values)))


def plausible(name: str, values: np.ndarray) -> np.ndarray:
    """Whether each value of variable or descriptor ``name`` is physiologically possible."""
    lows, highs, integer = bounds([name])
    return in_range(values, lows[0], highs[0], integer[0])


def read_outcomes(
    path: Path, record_ids: np.ndarray, record_names: Sequence[str], report: ReadReport
) -> pd.DataFrame:
    """Read ``Outcomes-x.txt`` strictly, one row per record, indexed like ``record_ids``.

    A plain loop over lines (4000 of them): every field must be a number, every line
    must have 6 fields, so that nothing is shifted or guessed.

    Raises
    ------
    DataError
        Bad header, wrong field count, non-numeric cell, repeated or fractional RecordID,
        In-hospital_death not 0/1, or a record of the set with no row here.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = lines[0] if lines else ""
    if header != OUTCOMES_HEADER:
        raise DataError(f"{path}:1: bad header: expected {OUTCOMES_HEADER!r}, got {header!r}")
    columns = OUTCOMES_HEADER.split(",")
    table = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            report.add("outcomes_blank_line")
            continue
        fields = line.split(",")
        if len(fields) != len(columns):
            raise DataError(
                f"{path}:{number}: expected {len(columns)} comma-separated fields, "
                f"got {len(fields)}: {line[:80]!r}"
            )
        for column, text in zip(columns, fields, strict=True):
            if not _NUMBER.fullmatch(text):
                raise DataError(
                    f"{path}:{number}: column {column}: expected a number, got {text!r}"
                )
        table.append((number, *map(float, fields)))
    array = np.array(table, dtype=np.float64).reshape(-1, len(columns) + 1)
    numbers = dict(zip(columns, array[:, 1:].T, strict=True))
    return _outcome_frame(
        path, array[:, 0].astype(np.int64), numbers, record_ids, record_names, report
    )


def _outcome_frame(
    path: Path,
    line: np.ndarray,
    numbers: dict[str, np.ndarray],
    record_ids: np.ndarray,
    record_names: Sequence[str],
    report: ReadReport,
) -> pd.DataFrame:
    ids = numbers["RecordID"]
    fractional = ids != np.round(ids)
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise DataError(f"{path}:{line[row]}: RecordID: expected an integer, got {ids[row]:g}")
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise DataError(f"{path}:{line[row]}: RecordID {ids[row]:g} appears twice")
    death = numbers["In-hospital_death"]
    not_binary = ~np.isin(death, (0.0, 1.0))
    if not_binary.any():
        row = int(np.flatnonzero(not_binary)[0])
        raise DataError(
            f"{path}:{line[row]}: In-hospital_death: expected 0 or 1, got {death[row]:g}"
        )
    present = np.isin(record_ids, ids)
    if not present.all():
        first = int(np.flatnonzero(~present)[0])
        raise DataError(
            f"{path}: no outcome row for {int((~present).sum())} record(s), e.g. RecordID "
            f"{record_ids[first]} ({record_names[first]}); expected one row per record "
            "file: is this the outcomes file of this set?"
        )
    report.add("outcome_without_record", int((~np.isin(ids, record_ids)).sum()))
    frame = pd.DataFrame(
        {new: numbers[old] for old, new in OUTCOME_COLUMNS.items()},
        index=pd.Index(ids.astype(np.int64), name="subject_id"),
    ).reindex(pd.Index(record_ids, name="subject_id"))
    for new in OUTCOME_COLUMNS.values():
        if new == "in_hospital_death":
            continue
        missing = frame[new].to_numpy() == -1.0
        report.add(f"outcome_missing:{new}", int(missing.sum()))
        frame.loc[missing, new] = np.nan
    frame["in_hospital_death"] = frame["in_hospital_death"].astype(np.int64)
    return frame


def merge_duplicates(
    subject: np.ndarray, time: np.ndarray, code: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fold rows with the same (subject, time, variable) into the first: mean, or sum.

    Repeats are found by a stable sort on (subject, time, code), so that within a group
    the first row is the earliest in the file, and merged with ``np.bincount`` over the
    (few) repeated rows only; no hash table over all rows.
    """
    order = np.lexsort((code, time, subject))
    s, t, c = subject[order], time[order], code[order]
    same_as_previous = (s[1:] == s[:-1]) & (t[1:] == t[:-1]) & (c[1:] == c[:-1])
    keep = np.ones(len(value), dtype=bool)
    if not same_as_previous.any():
        return keep, value
    later = np.concatenate(([False], same_as_previous))
    in_group = later | np.concatenate((same_as_previous, [False]))
    members = order[in_group]  # every row of every repeated group, group by group
    group = np.cumsum(~later[in_group]) - 1
    total = np.bincount(group, weights=value[members])
    mean = total / np.bincount(group)
    summed = np.isin(code[members], [VARIABLES.index(v) for v in DUPLICATES_SUMMED])
    value = value.copy()
    value[members] = np.where(summed, total[group], mean[group])
    keep[order[later]] = False
    return keep, value
