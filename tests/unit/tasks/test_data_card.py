"""`medseq data inspect`: the dataset card of real Synthea FHIR R4 patients, checked
against the event table it describes, printed and written as HTML with plots."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from medseq.cli import app
from medseq.tasks.data_card import code_system, inspect_events

TASK = """
name = "inspect-acute"
[data]
dataset = "fhir_r4"
train = "{path}"
test = ""
task = "inspect_acute_3y"
protocol = "subject"
[task.prediction_time]
date = "2016-01-01T00:00:00Z"
[task.label]
codes = ["ENCOUNTER/EMER", "ENCOUNTER/IMP"]
within_hours = 26298
[model]
kind = "doctorai"
"""


def test_the_card_counts_what_the_event_table_holds(synthea):
    ev = synthea.events
    card = inspect_events(ev, synthea.origin, synthea.report, source="synthea")
    assert card.summary["subjects"] == ev["subject_id"].nunique()
    assert card.summary["events"] == len(ev) == card.systems["events"].sum()
    assert card.summary["codes"] == ev["code"].nunique() == card.systems["codes"].sum()
    assert (
        card.systems.loc["http://loinc.org", "numeric_events"]
        == (ev["code"].str.startswith("http://loinc.org|") & ev["value"].notna()).sum()
    )
    assert card.summary["first_event"] < card.summary["last_event"]
    assert sum(card.summary["sex"].values()) == card.summary["subjects"]
    # missingness of one numeric code, by hand
    code = "http://loinc.org|4548-4"  # HbA1c: measured for some subjects only
    measured = ev.loc[ev["code"] == code, "subject_id"].nunique() / ev["subject_id"].nunique()
    got = card.missingness.loc[code, "subjects_measured_pct"]
    assert got == pytest.approx(100 * measured) and 0 < got < 100
    # the reader's unit mismatches, as counted by the reader
    expected = {k: v for k, v in synthea.report.counts.items() if k.startswith("unit_mismatch:")}
    assert expected and card.unit_mismatches["count"].sum() == sum(expected.values())
    assert card.per_subject["events"].sum() == (ev["code"] != "MEDS_BIRTH").sum()


def test_code_systems_split_at_the_pipe_or_the_slash():
    codes = pd.Series(["http://loinc.org|8867-4", "ENCOUNTER/AMB", "MEDS_BIRTH"])
    assert code_system(codes).tolist() == ["http://loinc.org", "ENCOUNTER", "MEDS_BIRTH"]


def test_inspect_prints_the_card_with_the_cohort_and_writes_html(synthea_folder, tmp_path):
    config = tmp_path / "task.toml"
    config.write_text(TASK.format(path=synthea_folder))
    html = tmp_path / "card" / "card.html"
    result = CliRunner().invoke(
        app, ["data", "inspect", str(synthea_folder), "--config", str(config), "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "## Codes by system" in out and "| http://loinc.org |" in out
    assert "## Cohort of task 'inspect_acute_3y'" in out
    assert "| died_before_prediction_time |" in out
    n = int(re.search(r"samples: (\d+) of", out).group(1))
    page = html.read_text()
    assert f'data-samples="{n}"' in page
    assert page.count("data:image/png;base64,") == 3
    assert 'data-table="unit_mismatches"' in page and "33914-3" in page
    subjects = int(re.search(r'data-subjects="(\d+)"', page).group(1))
    assert subjects == len(list(synthea_folder.glob("*.json")))


def test_inspect_refuses_what_it_cannot_read(tmp_path, synthea_folder):
    runner = CliRunner()
    wrong = runner.invoke(app, ["data", "inspect", str(synthea_folder), "--dataset", "mimic3"])
    assert wrong.exit_code != 0 and "reads event datasets" in wrong.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["data", "inspect", str(empty)])
    assert nothing.exit_code != 0 and "Traceback" not in nothing.output
    assert str(empty) in nothing.output or "empty" in nothing.output


def test_a_card_of_an_empty_table_is_refused():
    frame = pd.DataFrame({"subject_id": [], "time": [], "code": [], "value": []})
    with pytest.raises(ValueError, match="the event table is empty"):
        inspect_events(frame, pd.Series(dtype="datetime64[us, UTC]"))
