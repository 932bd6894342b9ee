"""UCUM units of numeric events: one unit per code, common conversions, mismatches counted.

The event table holds one number per event and no unit, so each numeric code must mean
one unit. :func:`harmonise` picks that unit per code (the caller's, else the code's most
frequent one), converts the values written in another unit of the same kind, and drops
(counted, under a policy) the ones that cannot be converted.

Why a small table and not a UCUM library
    ``ucumvert`` (a maintained UCUM grammar over ``pint``) was tried on the Synthea units.
    It parses UCUM correctly, but (1) UCUM makes every ``{annotation}`` equal to 1, so it
    converts ``mL/min/{1.73_m2}`` (eGFR normalised to body surface) to ``mL/min`` with a
    factor of 1: two different clinical quantities silently merged, exactly the error
    this check exists to catch; (2) it rejects the common non-UCUM spellings exports
    carry (``IU/L``, ``K/uL``); (3) it adds five packages (pint, lark, flexcache,
    flexparser, platformdirs) and 1.1 s of import to the core reader. Clinical data uses
    a few dozen units; the table below covers the common ones and is easy to extend.

What converts
    Units of one kind (:data:`KINDS`: mass, length, volume, mass and substance
    concentration, cell counts per volume, enzyme activity, pressure, temperature, time)
    convert by ``base = scale * value + offset`` (the offset only for °F and K). Units
    outside the table convert to nothing but themselves; mass <-> substance (mg/dL <->
    mmol/L) needs a molar mass and is refused. Spellings in :data:`ALIASES` are read as
    their UCUM code first (``IU/L`` -> ``[IU]/L``; ``[IU]`` and ``U`` are one enzyme unit,
    1 µmol/min, by the IFCC convention labs follow).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from medseq.schema import DataError, OnBad, ReadReport

logger = logging.getLogger(__name__)

ALIASES: dict[str, str] = {
    "IU/L": "[IU]/L",
    "IU/mL": "[IU]/mL",
    "mIU/L": "m[IU]/L",
    "K/uL": "10*3/uL",
    "M/uL": "10*6/uL",
    "x10^3/uL": "10*3/uL",
    "x10^9/L": "10*9/L",
    "mmHg": "mm[Hg]",
    "degC": "Cel",
    "°C": "Cel",
    "degF": "[degF]",
    "°F": "[degF]",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "in": "[in_i]",
    "µL": "uL",
    "μL": "uL",
    "µg": "ug",
    "μg": "ug",
    "l": "L",
    "dl": "dL",
    "ml": "mL",
    "ul": "uL",
    "ng/dl": "ng/dL",
    "mg/dl": "mg/dL",
    "g/dl": "g/dL",
    "mmol/l": "mmol/L",
    "hr": "h",
}

_MASS = {"pg": 1e-12, "ng": 1e-9, "ug": 1e-6, "mg": 1e-3, "g": 1.0, "kg": 1e3}
_VOLUME = {"fL": 1e-15, "uL": 1e-6, "mL": 1e-3, "dL": 1e-1, "L": 1.0}
_SUBSTANCE = {"pmol": 1e-12, "nmol": 1e-9, "umol": 1e-6, "mmol": 1e-3, "mol": 1.0}


def _build_kinds() -> dict[str, tuple[str, float, float]]:
    """unit -> (kind, scale, offset) with ``base = scale * value + offset``."""
    kinds: dict[str, tuple[str, float, float]] = {}
    for unit, scale in {**_MASS, "[lb_av]": 453.59237, "[oz_av]": 28.349523125}.items():
        kinds[unit] = ("mass", scale, 0.0)
    for unit, scale in {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "[in_i]": 0.0254}.items():
        kinds[unit] = ("length", scale, 0.0)
    kinds["[ft_i]"] = ("length", 0.3048, 0.0)
    for unit, scale in _VOLUME.items():
        kinds[unit] = ("volume", scale, 0.0)
    for vol, v in _VOLUME.items():
        if vol == "fL":
            continue
        for mass, m in _MASS.items():
            kinds[f"{mass}/{vol}"] = ("mass/volume", m / v, 0.0)
        for sub, s in _SUBSTANCE.items():
            kinds[f"{sub}/{vol}"] = ("substance/volume", s / v, 0.0)
        for enz, e in {"U": 1.0, "[IU]": 1.0, "kU": 1e3, "mU": 1e-3, "m[IU]": 1e-3}.items():
            kinds[f"{enz}/{vol}"] = ("enzyme/volume", e / v, 0.0)
    cells = {"10*3/uL": 1e9, "10*6/uL": 1e12, "10*9/L": 1e9, "10*12/L": 1e12, "/uL": 1e6}
    for unit, scale in {**cells, "/L": 1.0, "/mm3": 1e6}.items():
        kinds[unit] = ("count/volume", scale, 0.0)
    for unit, scale in {"mm[Hg]": 133.322387415, "kPa": 1e3, "Pa": 1.0}.items():
        kinds[unit] = ("pressure", scale, 0.0)
    kinds["cm[H2O]"] = ("pressure", 98.0665, 0.0)
    kinds["Cel"] = ("temperature", 1.0, 0.0)
    kinds["[degF]"] = ("temperature", 5.0 / 9.0, -32.0 * 5.0 / 9.0)
    kinds["K"] = ("temperature", 1.0, -273.15)
    for unit, scale in {"s": 1 / 3600, "min": 1 / 60, "h": 1.0, "d": 24.0, "wk": 168.0}.items():
        kinds[unit] = ("time", scale, 0.0)
    return kinds


#: unit -> (kind, scale to the kind's base unit, offset)
KINDS: dict[str, tuple[str, float, float]] = _build_kinds()


def normalise(unit: str | None) -> str:
    """A unit string as its UCUM code (:data:`ALIASES`); ``""`` for no unit."""
    if unit is None or (isinstance(unit, float) and np.isnan(unit)):
        return ""
    text = str(unit).strip()
    return ALIASES.get(text, text)


def conversion(source: str, target: str) -> tuple[float, float] | None:
    """``(scale, offset)`` with ``target_value = scale * value + offset``, or None.

    Examples
    --------
    >>> conversion("[lb_av]", "kg")
    (0.45359237, 0.0)
    >>> conversion("mg/dL", "mmol/L") is None  # needs a molar mass
    True
    """
    if source == target:
        return (1.0, 0.0)
    a, b = KINDS.get(source), KINDS.get(target)
    if a is None or b is None or a[0] != b[0]:
        return None
    # base = a1 * v + a2 ; target = (base - b2) / b1
    return (a[1] / b[1], (a[2] - b[2]) / b[1])


def harmonise(
    codes: np.ndarray,
    values: np.ndarray,
    units: np.ndarray,
    report: ReadReport,
    *,
    targets: dict[str, str] | None = None,
    on_mismatch: OnBad = "warn",
    where: str = "events",
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Give every numeric code one unit: convert what converts, drop (counted) the rest.

    Parameters
    ----------
    codes, values, units : ndarray of shape (n_events,)
        Object, float64 and object arrays; a row with a NaN value carries no quantity and
        is left alone whatever its unit.
    report : ReadReport
        Receives ``unit_converted:<from>-><to>``, ``unit_mismatch:<code>:<from>!=<to>``
        and ``unit_missing:<code>`` counts.
    targets : dict of code to unit, optional
        The unit each code must end in (e.g. the table fitted on training data); codes not
        in it take their most frequent unit (ties: the first in sorted order).
    on_mismatch : {"raise", "warn", "skip"}, default="warn"
        A value whose unit does not convert to its code's unit (or that has no unit when
        the code has one): raise naming the code and both units, or drop it and count it
        (``"warn"`` also logs one line per code and unit).

    Returns
    -------
    values : ndarray of float64
        Converted values.
    keep : ndarray of bool
        False for dropped rows.
    unit_table : DataFrame
        One row per numeric code: ``code, unit, n_values, n_converted, n_dropped``.
    """
    values = np.asarray(values, dtype=np.float64).copy()
    keep = np.ones(len(values), dtype=bool)
    numeric = ~np.isnan(values)
    raw = pd.Series(np.asarray(units, dtype=object)[numeric], dtype=object)
    unit_ids, unit_uniques = pd.factorize(raw, use_na_sentinel=False)
    spelled = np.array([normalise(u) for u in unit_uniques], dtype=object)
    frame = pd.DataFrame(
        {"code": np.asarray(codes, dtype=object)[numeric], "unit": spelled[unit_ids]}
    )
    groups = frame.groupby(["code", "unit"], sort=False)
    group_of_row = groups.ngroup().to_numpy()
    pairs = groups.size().rename("n").reset_index()
    ranked = pairs.sort_values(["code", "n", "unit"], ascending=[True, False, True])
    chosen = ranked.drop_duplicates("code").set_index("code")["unit"].to_dict()
    chosen.update({c: normalise(u) for c, u in (targets or {}).items() if c in chosen})
    scale = np.full(len(pairs), np.nan)
    offset = np.full(len(pairs), np.nan)
    rows = []
    for g, (code, unit, n) in enumerate(pairs.itertuples(index=False)):
        target = chosen[code]
        rule = None if (unit == "" and target != "") else conversion(unit, target)
        if rule is None:
            _mismatch(report, code, unit, target, int(n), on_mismatch, where)
        else:
            scale[g], offset[g] = rule
            if unit != target:
                report.add(f"unit_converted:{unit}->{target}", int(n))
        rows.append((code, target, unit, int(n), rule))
    index = np.flatnonzero(numeric)
    values[index] = values[index] * scale[group_of_row] + offset[group_of_row]
    keep[index] = ~np.isnan(scale[group_of_row])
    return values, keep, _unit_table(rows)


def _mismatch(
    report: ReadReport, code: str, unit: str, target: str, n: int, policy: OnBad, where: str
) -> None:
    reason = f"unit_missing:{code}" if unit == "" else f"unit_mismatch:{code}:{unit}!={target}"
    if policy == "raise":
        got = "no unit" if unit == "" else f"unit {unit!r}"
        raise DataError(
            f"{where}: code {code!r} is in {target!r} but {n} value(s) have {got}, which does "
            "not convert; pass on_unit_mismatch='warn' to drop and count them, or give this "
            "code's unit in `units`"
        )
    report.add(reason, n)
    if policy == "warn":
        logger.warning("%s: dropped %d value(s): %s", where, n, reason)


def _unit_table(rows: list) -> pd.DataFrame:
    columns = ["code", "unit", "n_values", "n_converted", "n_dropped"]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c in ("code", "unit") else np.int64) for c in columns}
        )
    frame = pd.DataFrame(rows, columns=["code", "unit", "source", "n", "rule"])
    frame["converted"] = np.where(
        frame["rule"].notna() & (frame["source"] != frame["unit"]), frame["n"], 0
    )
    frame["dropped"] = np.where(frame["rule"].isna(), frame["n"], 0)
    out = frame.groupby(["code", "unit"], sort=True).agg(
        n_values=("n", "sum"), n_converted=("converted", "sum"), n_dropped=("dropped", "sum")
    )
    return out.reset_index().astype({c: np.int64 for c in columns[2:]})
