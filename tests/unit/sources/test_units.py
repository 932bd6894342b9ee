"""Unit conversions of numeric events: the common clinical ones, and the ones refused."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.schema import ReadReport
from medseq.sources._units import conversion, harmonise, normalise


@pytest.mark.parametrize(
    ("source", "target", "value", "expected"),
    [
        ("[lb_av]", "kg", 100.0, 45.359237),
        ("[degF]", "Cel", 98.6, 37.0),
        ("K", "Cel", 310.15, 37.0),
        ("[in_i]", "cm", 70.0, 177.8),
        ("g/dL", "g/L", 1.5, 15.0),
        ("mg/dL", "mg/L", 2.0, 20.0),
        ("10*3/uL", "10*9/L", 7.2, 7.2),
        ("kPa", "mm[Hg]", 13.332238741, 100.0),
        ("[IU]/L", "U/L", 40.0, 40.0),
        ("umol/L", "mmol/L", 88.4, 0.0884),
    ],
)
def test_common_conversions(source, target, value, expected):
    scale, offset = conversion(source, target)
    assert scale * value + offset == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("mg/dL", "mmol/L"),  # needs a molar mass
        ("mL/min", "mL/min/{1.73_m2}"),  # eGFR per body surface is another quantity
        ("kg", "cm"),
        ("{score}", "%"),
    ],
)
def test_refused_conversions(source, target):
    assert conversion(source, target) is None


def test_spellings_become_ucum():
    assert normalise("IU/L") == "[IU]/L" and normalise(" mmHg ") == "mm[Hg]"
    assert normalise(None) == "" and normalise(float("nan")) == ""


def test_harmonise_picks_the_most_frequent_unit_per_code():
    codes = np.array(["w", "w", "w", "t", "t", "dx"], dtype=object)
    values = np.array([70.0, 80.0, 100.0, 98.6, 37.0, np.nan])
    units = np.array(["kg", "kg", "[lb_av]", "[degF]", "Cel", None], dtype=object)
    report = ReadReport("test")
    out, keep, table = harmonise(codes, values, units, report, on_mismatch="skip")
    assert keep.all()
    np.testing.assert_allclose(out[:5], [70.0, 80.0, 45.359237, 37.0, 37.0])
    assert np.isnan(out[5])
    # A tie (t: one °F, one Cel) goes to the first unit in sorted order.
    assert table.set_index("code")["unit"].to_dict() == {"t": "Cel", "w": "kg"}
    assert report.counts == {"unit_converted:[lb_av]->kg": 1, "unit_converted:[degF]->Cel": 1}
