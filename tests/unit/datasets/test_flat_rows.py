"""A request's rows of flat tables become, event for event, what the file reader makes of the
same rows: real eICU demo tables through one mapping with a per-stay fact (``at_hour``), a
wide table (``values``), and a table with units, whose conversion uses the units training
chose (a stay's own rows alone would pick their own most frequent unit)."""

from __future__ import annotations

import pandas as pd
import pytest

from medseq.datasets.flat_tables_serving import read_rows, table_name
from medseq.datasets.registry import get_dataset
from medseq.paths import dataset_dir
from medseq.serving.requests import RequestContext, RequestError

MAPPING = """
root = "{root}"
on_bad_row = "warn"
on_unit_mismatch = "warn"

[[events]]
path = "patient.csv.gz"
subject = "patientunitstayid"
time_unit = "minutes"
at_hour = 0
code = "unittype"
code_prefix = "ICU_ADMISSION/"

[[events]]
path = "vitalAperiodic.csv.gz"
subject = "patientunitstayid"
time = "observationoffset"
time_unit = "minutes"
values = {{ noninvasivesystolic = "nbp_sys", noninvasivemean = "nbp_mean" }}

[[events]]
path = "admissionDrug.csv.gz"
subject = "patientunitstayid"
time = "drugoffset"
time_unit = "minutes"
code = "drugname"
value = "drugdosage"
unit = "drugunit"
code_prefix = "drug|"
"""
FILES = ("patient.csv.gz", "vitalAperiodic.csv.gz", "admissionDrug.csv.gz")


@pytest.fixture(scope="module")
def read(tmp_path_factory):
    root = dataset_dir("eicu_demo")
    path = tmp_path_factory.mktemp("flat_rows") / "mapping.toml"
    path.write_text(MAPPING.format(root=root))
    data = get_dataset("flat_events").read(path)
    tables = {table_name(f): pd.read_csv(root / f, dtype=str, keep_default_na=False) for f in FILES}
    return data, tables


def _rows(tables: dict[str, pd.DataFrame], stay: str) -> dict[str, list[dict]]:
    return {n: t[t["patientunitstayid"] == stay].to_dict("records") for n, t in tables.items()}


def test_a_stays_rows_give_the_file_readers_events(read):
    data, tables = read
    state = data.request_state
    assert "root" not in state["mapping"] and state["units"]  # units chosen in training
    context = RequestContext(None, request_state=state)
    drugs = tables["admissionDrug"]
    stays = drugs.loc[drugs["drugunit"] != "", "patientunitstayid"].unique()[:6]
    for stay in stays:
        got, _ = read_rows({"tables": _rows(tables, str(stay))}, context)
        expected = data.events[data.events["subject_id"] == int(stay)]
        pd.testing.assert_frame_equal(
            got.events.reset_index(drop=True), expected.reset_index(drop=True)
        )


def test_a_bad_row_under_raise_is_named_by_table_row_and_column(read):
    data, tables = read
    state = {**data.request_state}
    state["mapping"] = {**state["mapping"], "on_bad_row": "raise"}
    context = RequestContext(None, request_state=state)
    stay = str(tables["vitalAperiodic"]["patientunitstayid"].iloc[0])
    rows = _rows(tables, stay)
    vitals = rows["vitalAperiodic"]
    rows["vitalAperiodic"] = [*vitals, dict(vitals[0], noninvasivemean="high")]
    with pytest.raises(RequestError) as err:
        read_rows({"tables": rows}, context)
    assert err.value.errors[0]["loc"] == [
        "body", "tables", "vitalAperiodic", len(vitals), "noninvasivemean"
    ]  # fmt: skip
    with pytest.raises(RequestError, match="stores no table mapping"):
        read_rows({"tables": rows}, RequestContext(None))
