"""``POST /v1/predict``'s answer for a per-step model: every named step, then the last."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseq.serving.predict import answer
from medseq.serving.requests import Parsed


def _bundle(threshold=None):
    return SimpleNamespace(task="multiclass", threshold=threshold, class_names=["no", "yes"])


def test_each_named_step_is_answered_and_the_item_is_its_last_step():
    scores = np.array([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [[0.7, 0.3], [0.0, 0.0], [0, 0]]])
    parsed = Parsed(None, np.arange(2), ["a", "b"], steps=[[5, 6, 7], [1]])
    out = answer(_bundle(threshold=0.35), "sepsis_6h", scores, parsed)
    first, second = out["predictions"]
    assert [s["step"] for s in first["steps"]] == [5, 6, 7] and len(second["steps"]) == 1
    assert [s["predicted"] for s in first["steps"]] == [["no"], ["yes"], ["yes"]]  # >= 0.35
    assert first["probabilities"] == [0.2, 0.8] and second["probabilities"] == [0.7, 0.3]
    assert out["threshold"] == 0.35 and out["class_names"] == ["no", "yes"]
    plain = answer(_bundle(), "t", scores, parsed)["predictions"][0]["steps"][1]
    assert plain["predicted"] == ["no"]  # argmax without a stored threshold


def test_a_per_step_model_needs_named_steps_and_enough_outputs():
    scores = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="name its steps"):
        answer(_bundle(), "t", scores, Parsed(None, np.arange(1), ["a"]))
    with pytest.raises(ValueError, match="3 steps to answer from 2"):
        answer(_bundle(), "t", scores, Parsed(None, np.arange(1), ["a"], steps=[[1, 2, 3]]))


def test_sepsis_fhir_table_codes_pass_loinc_check_digits_and_bin_into_hours():
    from medseq.datasets.physionet2019_fhir import code_table, hourly_rows
    from medseq.serving.engine import Observation
    from medseq.serving.inputs import History

    def check_digit_ok(code: str) -> bool:  # LOINC's mod 10 (Luhn on the number part)
        number, check = code.split("-")
        total = sum(sum(divmod(int(d) * 2, 10)) if i % 2 == 0 else int(d)
                    for i, d in enumerate(reversed(number)))  # fmt: skip
        return (10 - total % 10) % 10 == int(check)

    table = code_table()
    assert table.by_loinc and all(check_digit_ok(c) for c in table.by_loinc)
    assert table.variable_of("http://loinc.org", "2708-6") is None  # arterial SaO2: a lab
    history = History("p", static={"Age": 70.0, "Gender": 1.0})
    for origin, (code, time, value) in enumerate(
        [("HR", 0.2, 80.0), ("HR", 0.7, 90.0), ("Temp", 2.5, 38.0), ("HR", -0.5, 70.0)]
    ):
        history.observations.append(Observation(code, time, value))
        history.origins.append(origin)
    rows, [note] = hourly_rows(history)
    assert rows == [{"ICULOS": 1, "HR": 90.0, "Age": 70.0, "Gender": 1.0}, {"ICULOS": 2},
                    {"ICULOS": 3, "Temp": 38.0}]  # fmt: skip
    assert note == {"n_events_used": 2, "skipped": [
        {"index": 0, "code": "HR", "reason": "superseded_in_hour"},
        {"index": 3, "code": "HR", "reason": "before_admission"}]}  # fmt: skip
