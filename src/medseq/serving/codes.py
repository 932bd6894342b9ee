"""Map clinical codes and units to model variables: LOINC + UCUM.

A table belongs to a dataset and is reached through its spec (the PhysioNet 2012 one ships
as ``medseq/datasets/loinc_physionet2012.json``; its ``about`` field says where the codes
come from). An observation is accepted when its code names a variable (a LOINC code of the
table, or the variable's own name in the table's local code system, e.g.
``urn:medseq:physionet2012``) and its unit is the variable's unit or one the table can
convert (``value * scale + offset``, e.g. ``[degF]`` to ``Cel``). Everything else is
reported back with a reason (``unknown_code``, ``unit_mismatch``, ``missing_unit``,
``implausible_value``), never dropped silently. Values outside the physiologic limits the
dataset's reader applies (``valid_ranges``, given by the spec) are refused in the same
way, so that a mislabelled unit (a temperature of 98.6 "Cel") does not reach the model.

A table's LOINC entries are either bare codes or objects giving the code's LOINC axes
(``component``, ``property``, ``system``, ``method``) and the ``reason`` it names the
variable (``unit_required``: a value of this code needs its unit, e.g. a moles code of a
mass variable). Codes that look right but mean something else (pulse-oximetry SpO2 for the
blood-gas SaO2) are listed under ``refused`` with the reason; a request using one is
refused as a whole (:class:`RefusedCode`, a 422 naming the code and the reason) rather than
skipped, because a client sending it believes it is sending the variable.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

logger = logging.getLogger(__name__)

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
#: Unit spellings seen in the wild -> UCUM code.
UNIT_ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]", "mm Hg": "mm[Hg]", "bpm": "/min", "beats/min": "/min",
    "breaths/min": "/min", "degC": "Cel", "°C": "Cel", "C": "Cel", "degF": "[degF]",
    "°F": "[degF]", "F": "[degF]", "ml": "mL", "lb": "[lb_av]", "lbs": "[lb_av]",
    "in": "[in_i]", "mEq/L": "meq/L", "IU/L": "[IU]/L", "K/uL": "10*3/uL",
    "10^3/uL": "10*3/uL", "10^9/L": "10*9/L", "years": "a", "yr": "a", "score": "{score}",
}  # fmt: skip
#: Units where a value without a unit is unambiguous.
DIMENSIONLESS = frozenset({"1", "{score}", "[pH]"})


class RefusedCode(ValueError):
    """A code the table refuses (it means something else than the variable it resembles)."""


@dataclass(frozen=True)
class Mapped:
    """An observation mapped to a model variable, its value in the variable's unit."""

    variable: str
    value: float
    static: bool


class CodeTable:
    """Code and unit lookup; see the module doc.

    Parameters
    ----------
    table : dict
        The parsed JSON table (``variables`` and ``static`` blocks, ``local_system``).
    valid_ranges : mapping of str to (float, float), optional
        Physiologic limits per variable, in its unit; values outside are refused.
    integers : iterable of str, default=()
        Variables whose values must be whole numbers (a score, a flag, a category).
    """

    def __init__(
        self,
        table: dict[str, Any],
        valid_ranges: Mapping[str, tuple[float, float]] | None = None,
        integers: Iterable[str] = (),
    ) -> None:
        self.valid_ranges = dict(valid_ranges or {})
        self.integers = frozenset(integers)
        self.local_system: str = table["local_system"]
        self.entries: dict[str, dict[str, Any]] = {}
        self.by_loinc: dict[str, str] = {}
        self.static_names: set[str] = set(table["static"])
        #: LOINC code -> its mapping object (axes, reason), for codes given as objects.
        self.mappings: dict[str, dict[str, Any]] = {}
        self.refused: dict[str, str] = {
            code: str(item["reason"]) for code, item in table.get("refused", {}).items()
        }
        for block in ("variables", "static"):
            for name, raw in table[block].items():
                codes = []
                for item in raw["loinc"]:
                    code = item if isinstance(item, str) else item["code"]
                    if not isinstance(item, str):
                        self.mappings[code] = item
                    codes.append(code)
                self.entries[name] = {**raw, "loinc": codes}
                for code in codes:
                    if code in self.by_loinc:
                        raise ValueError(f"code table: LOINC {code} maps to two variables")
                    if code in self.refused:
                        raise ValueError(f"code table: LOINC {code} is both mapped and refused")
                    self.by_loinc[code] = name

    @classmethod
    def from_package(
        cls,
        package: str,
        filename: str,
        valid_ranges: Mapping[str, tuple[float, float]] | None = None,
        integers: Iterable[str] = (),
    ) -> CodeTable:
        """The JSON table ``filename`` shipped in ``package`` (a dataset's own table)."""
        text = resources.files(package).joinpath(filename).read_text()
        return cls(json.loads(text), valid_ranges, integers)

    def variable_of(self, system: str | None, code: str) -> str | None:
        """The variable a code names, or None.

        ``system=None`` (the event-table form) accepts a variable name or a LOINC code.
        """
        if system in (None, LOINC_SYSTEM) and code in self.by_loinc:
            return self.by_loinc[code]
        if system in (None, self.local_system) and code in self.entries:
            return code
        return None

    def refusal(self, system: str | None, code: str) -> str | None:
        """The message refusing a code of the table's ``refused`` list, else None."""
        if system in (None, LOINC_SYSTEM) and code in self.refused:
            return f"LOINC {code} is refused: {self.refused[code]}"
        return None

    def map(
        self, system: str | None, code: str, value: float, unit: str | None, *,
        unit_required: bool = False,
    ) -> Mapped | str:  # fmt: skip
        """A :class:`Mapped` observation, or the reason it cannot be used.

        Raises
        ------
        RefusedCode
            ``code`` is on the table's ``refused`` list.
        """
        refused = self.refusal(system, code)
        if refused is not None:
            raise RefusedCode(refused)
        name = self.variable_of(system, code)
        if name is None:
            return "unknown_code"
        entry = self.entries[name]
        target = entry["unit"]
        if system in (None, LOINC_SYSTEM) and self.mappings.get(code, {}).get("unit_required"):
            unit_required = True
        if unit is None or unit == "":
            if unit_required and target not in DIMENSIONLESS:
                return f"missing_unit (expected {target})"
            scale, offset = 1.0, 0.0
        else:
            unit = UNIT_ALIASES.get(unit, unit)
            if unit == target:
                scale, offset = 1.0, 0.0
            elif unit in entry["convert"]:
                scale, offset = entry["convert"][unit]
            else:
                return f"unit_mismatch (got {unit}, expected {target})"
        converted = float(value) * scale + offset
        if not self._plausible(name, converted):
            return "implausible_value"
        return Mapped(name, converted, name in self.static_names)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Variable -> LOINC codes and unit, for the model card."""
        return {k: {"loinc": v["loinc"], "unit": v["unit"]} for k, v in self.entries.items()}

    def _plausible(self, name: str, value: float) -> bool:
        if not math.isfinite(value):
            return False
        low, high = self.valid_ranges.get(name, (-math.inf, math.inf))
        if not low <= value <= high:
            return False
        return name not in self.integers or value == round(value)
