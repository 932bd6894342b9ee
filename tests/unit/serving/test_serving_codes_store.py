"""LOINC/UCUM table and the SQLite state store."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import observations, stays

from medseq.datasets.physionet2012_serving import code_table
from medseq.serving.codes import Mapped
from medseq.serving.engine import StreamingEngine
from medseq.serving.store import StateStore, decode_state, encode_state
from medseq.sources.physionet2012 import DESCRIPTORS, VARIABLES


def _loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit (Luhn on the part before the hyphen)."""
    number, check = code.split("-")
    total = 0
    for i, digit in enumerate(int(c) for c in reversed(number)):
        if i % 2 == 0:
            digit = sum(divmod(digit * 2, 10))
        total += digit
    return (10 - total % 10) % 10 == int(check)


def test_table_covers_every_variable_with_valid_loinc_codes():
    table = code_table()
    assert set(VARIABLES) | set(DESCRIPTORS) <= set(table.entries)
    assert all(_loinc_check_digit_ok(code) for code in table.by_loinc)
    assert table.variable_of("http://loinc.org", "8867-4") == "HR"
    assert table.variable_of("http://loinc.org", "8310-5") == "Temp"
    assert table.variable_of("urn:medseq:physionet2012", "MechVent") == "MechVent"
    assert table.variable_of("http://snomed.info/sct", "8867-4") is None


def test_units_are_converted_or_reported():
    table = code_table()
    temp = table.map("http://loinc.org", "8310-5", 98.6, "[degF]")
    assert isinstance(temp, Mapped) and temp.variable == "Temp"
    assert temp.value == pytest.approx(37.0)
    assert table.map(None, "Weight", 154.0, "lb").value == pytest.approx(69.853, abs=1e-3)
    assert table.map(None, "FiO2", 50.0, "%").value == pytest.approx(0.5)
    assert table.map(None, "HR", 80.0, "kg").startswith("unit_mismatch")
    assert table.map(None, "HR", 80.0, None, unit_required=True).startswith("missing_unit")
    assert table.map(None, "GCS", 7.0, None, unit_required=True).variable == "GCS"
    assert table.map(None, "Temp", 98.6, "Cel") == "implausible_value"
    assert table.map(None, "GCS", 7.5, None) == "implausible_value"
    assert table.map(None, "nope", 1.0, None) == "unknown_code"


def test_state_round_trips_and_survives_reopening(gru_bundle, setb, tmp_path):
    engine = StreamingEngine(gru_bundle)
    _, events, static = next(stays(setb, 300, 1))
    state = engine.new_state(static)
    obs = observations(events)
    engine.update(state, obs[:40])
    restored = decode_state(*encode_state(state))
    np.testing.assert_array_equal(restored.hidden, state.hidden)
    assert restored.features.static_raw == state.features.static_raw
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.save("p1", "v1", None, state, obs[:40])
    store.close()
    reopened = StateStore(path)
    loaded = reopened.load("p1")
    assert loaded.model_version == "v1" and len(reopened.observations("p1")) == 40
    uninterrupted = engine.update(state, obs[40:]).risk
    assert engine.update(loaded.state, obs[40:]).risk == uninterrupted
    assert reopened.delete("p1") and reopened.load("p1") is None
    assert reopened.observations("p1") == [] and not reopened.delete("p1")


def test_store_refuses_unknown_durability(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        StateStore(tmp_path / "x.sqlite", synchronous="OFF")
