"""Flat event files through a TOML column mapping: PhysioNet 2012 read back equal; clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_slices import unpack_physionet2012
from medseq.paths import dataset_dir
from medseq.schema import DataError
from medseq.sources import flat_events, meds, physionet2012
from medseq.sources.flat_events import FlatMapping

UNITS = {"HR": "/min", "Temp": "Cel", "Weight": "kg", "Glucose": "mg/dL"}


@pytest.fixture(scope="module")
def pn2012(tmp_path_factory):
    """The first 300 stays of PhysioNet 2012 set A, read by the dedicated reader."""
    root = dataset_dir("physionet2012")
    folder = unpack_physionet2012(tmp_path_factory.mktemp("pn2012"), 300)
    return physionet2012.read(folder, outcomes=root / "Outcomes-a.txt")


def _export(events: pd.DataFrame, path, *, fahrenheit: bool = False) -> None:
    """The dedicated reader's events as the flat CSV a user would bring."""
    flat = pd.DataFrame(
        {
            "RecordID": events["subject_id"],
            "Hours": events["time"],
            "Parameter": events["code"],
            "Value": events["value"],
            "Unit": events["code"].map(UNITS).fillna(""),
        }
    )
    if fahrenheit:  # every third temperature in °F (Celsius stays the most frequent)
        temp = np.flatnonzero(flat["Parameter"].to_numpy() == "Temp")[::3]
        flat.loc[temp, "Value"] = flat.loc[temp, "Value"] * 9 / 5 + 32
        flat.loc[temp, "Unit"] = "[degF]"
    flat.to_csv(path, index=False)


MAPPING = """
[data.events]
subject = "RecordID"
time = "Hours"
time_unit = "hours"
code = "Parameter"
value = "Value"
unit = "Unit"
"""


def test_physionet2012_flat_export_reads_back_equal(pn2012, tmp_path):
    _export(pn2012.events, tmp_path / "events.csv")
    (tmp_path / "data.toml").write_text(MAPPING)
    mapping = FlatMapping.from_toml(tmp_path / "data.toml")
    back = flat_events.read(tmp_path / "events.csv", mapping)
    pd.testing.assert_frame_equal(back.events, pn2012.events, check_exact=True)
    assert back.report.n_subjects == 300 and back.origin is None
    assert back.units.set_index("code").loc["Temp", "unit"] == "Cel"


def test_units_written_in_fahrenheit_convert_back(pn2012, tmp_path):
    _export(pn2012.events, tmp_path / "events.csv", fahrenheit=True)
    mapping = FlatMapping(
        subject="RecordID",
        time="Hours",
        time_unit="hours",
        code="Parameter",
        value="Value",
        unit="Unit",
    )
    back = flat_events.read(tmp_path / "events.csv", mapping)
    n_temp = int((pn2012.events["code"] == "Temp").sum())
    assert back.report.counts["unit_converted:[degF]->Cel"] == (n_temp + 2) // 3
    np.testing.assert_allclose(back.events["value"], pn2012.events["value"], rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(
        back.events.drop(columns="value"), pn2012.events.drop(columns="value")
    )


def test_parquet_and_prefix(pn2012, tmp_path):
    few = pn2012.events[pn2012.events["subject_id"].isin(pn2012.events["subject_id"].unique()[:5])]
    few.to_parquet(tmp_path / "events.parquet")
    mapping = FlatMapping(value="value", time_unit="hours", code_prefix="physionet2012|")
    back = flat_events.read(tmp_path / "events.parquet", mapping)
    assert (back.events["code"] == "physionet2012|" + few["code"].to_numpy()).all()
    np.testing.assert_array_equal(back.events["time"], few["time"])


def test_missing_column_and_unknown_key_are_named(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("id,when,what\n1,2020-01-01T00:00:00Z,x\n")
    with pytest.raises(
        DataError,
        match=r"column 'subject_id' \(mapping key 'subject'\) not found; "
        r"the file has \['id', 'when', 'what'\]",
    ):
        flat_events.read(path, FlatMapping())
    with pytest.raises(ValueError, match=r"unknown keys \['subjcet'\]"):
        FlatMapping.from_dict({"subjcet": "id"})
    with pytest.raises(ValueError, match="time_unit must be one of"):
        FlatMapping(time_unit="fortnights")


def test_date_times_anchor_and_bad_time_line(tmp_path):
    path = tmp_path / "events.csv"
    rows = [
        "subject_id,time,code,value,unit",
        "7,2020-01-01T10:00:00+02:00,LAB|k,4.1,mmol/L",
        "7,2020-01-01T09:00:00Z,ADMIT,,",
        "8,2020-02-03T00:30:00Z,LAB|k,3.9,mmol/L",
        "8,2020-02-03 12:00,LAB|k,4.4,mmol/L",
    ]
    path.write_text("\n".join(rows) + "\n")
    mapping = FlatMapping(value="value", unit="unit", anchor_prefix="ADMIT")
    data = flat_events.read(path, mapping)
    ev = data.events
    # Subject 7: 10:00+02:00 is 08:00 UTC, one hour before the admission anchor.
    assert ev[ev["subject_id"] == 7]["time"].tolist() == [-1.0, 0.0]
    assert data.origin[7] == pd.Timestamp("2020-01-01 09:00")
    assert ev[ev["subject_id"] == 8]["time"].tolist() == [0.0, 11.5]
    events, origin, _ = meds.read_events(data.to_meds(tmp_path / "meds"), start_prefix="ADMIT")
    pd.testing.assert_frame_equal(events, ev)
    assert origin.equals(data.origin)
    path.write_text("\n".join([*rows[:3], "8,yesterday,LAB|k,3.9,mmol/L", *rows[4:]]) + "\n")
    with pytest.raises(DataError, match=r"events\.csv:4: time does not parse \(1 such rows\)"):
        flat_events.read(path, mapping)
    skipped = flat_events.read(path, mapping, on_bad_row="skip")
    assert skipped.report.counts == {"bad_row:time": 1} and len(skipped.events) == 3


def test_bad_value_names_its_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("subject_id,time,code,value\n1,0.5,HR,80\n1,1.0,HR,eighty\n")
    with pytest.raises(DataError, match=r"events\.csv:3: value does not parse"):
        flat_events.read(path, FlatMapping(value="value", time_unit="hours"))


EICU = """
[[data.events]]
path = "vitalAperiodic.csv.gz"
subject = "patientunitstayid"
time = "observationoffset"
time_unit = "minutes"
code_prefix = "eicu|"
[data.events.values]  # a wide table: one column per code
noninvasivesystolic = "nbp_sys"
noninvasivediastolic = "nbp_dia"
noninvasivemean = "nbp_mean"

[[data.events]]
path = "diagnosis.csv.gz"
subject = "patientunitstayid"
time = "diagnosisoffset"
time_unit = "minutes"
code = "diagnosisstring"
code_prefix = "eicu_dx|"

[[data.events]]
path = "infusionDrug.csv.gz"
subject = "patientunitstayid"
time = "infusionoffset"
time_unit = "minutes"
code = "drugname"
value = "drugrate"
code_prefix = "eicu_infusion|"
"""


def test_eicu_tables_long_and_wide_in_one_toml(tmp_path):
    root = dataset_dir("eicu_demo")
    (tmp_path / "eicu.toml").write_text(EICU)
    mappings = FlatMapping.list_from_toml(tmp_path / "eicu.toml")
    assert [m.values is not None for m in mappings] == [True, False, False]
    infusion = pd.read_csv(root / "infusionDrug.csv.gz", dtype=str, keep_default_na=False)
    first_error = int(np.flatnonzero(infusion["drugrate"].to_numpy() == "ERROR")[0])
    with pytest.raises(
        DataError, match=rf"infusionDrug\.csv\.gz:{first_error + 2}: value does not"
    ):
        flat_events.read_tables(mappings[2:], root=root)
    data = flat_events.read_tables(mappings, root=root, on_bad_row="skip")
    assert data.report.counts == {"bad_row:value": 18}
    vitals = pd.read_csv(root / "vitalAperiodic.csv.gz")
    columns = ["noninvasivesystolic", "noninvasivediastolic", "noninvasivemean"]
    n_vitals = int(vitals[columns].notna().sum().sum())
    n_dx = len(pd.read_csv(root / "diagnosis.csv.gz"))
    assert data.report.n_events == n_vitals + n_dx + len(infusion) - 18
    ev = data.events
    first = vitals.dropna(subset=["noninvasivesystolic"]).iloc[0]
    match = ev[(ev["subject_id"] == first["patientunitstayid"]) & (ev["code"] == "eicu|nbp_sys")]
    row = match[np.isclose(match["time"], first["observationoffset"] / 60)]
    assert row["value"].tolist() == [first["noninvasivesystolic"]]
    assert ev["code"].str.startswith("eicu_dx|").sum() == n_dx
    with pytest.raises(
        ValueError, match=r"wide mapping \(values\) names its codes; remove \['code'\]"
    ):
        FlatMapping.from_dict({"values": {"a": "A"}, "code": "x"})


def test_at_hour_needs_a_relative_clock_and_skips_the_time_column(tmp_path):
    with pytest.raises(ValueError, match="set time_unit"):
        FlatMapping(subject="id", code="sex", at_hour=0)
    path = tmp_path / "stays.csv"
    path.write_text("id,sex\n1,F\n2,M\n3,\n")
    mapping = FlatMapping(
        subject="id", code="sex", code_prefix="GENDER/", at_hour=0, time_unit="minutes"
    )
    read = flat_events.read(path, mapping, on_bad_row="skip")
    assert read.events["code"].tolist() == ["GENDER/F", "GENDER/M"]
    assert read.events["time"].tolist() == [0.0, 0.0]
    assert read.report.counts["bad_row:code"] == 1


def test_relative_times_write_meds_with_a_given_hour0(tmp_path):
    path = tmp_path / "stays.csv"
    path.write_text("id,offset,item,val\n1,0,HR,80\n1,90,HR,85\n2,-30,NBP,120\n")
    mapping = FlatMapping(
        subject="id", time="offset", time_unit="minutes", code="item", value="val"
    )
    read = flat_events.read(path, mapping)
    with pytest.raises(ValueError, match="pass hour0"):
        read.to_meds(tmp_path / "no")
    root = read.to_meds(tmp_path / "meds", hour0="2000-01-01")
    events, origin, _ = meds.read_events(root, start_prefix="HR")
    back = events.set_index(["subject_id", "code"])["value"]
    assert back.loc[(1, "HR")].tolist() == [80.0, 85.0]
    one = events[events["subject_id"] == 1]["time"].tolist()
    assert one == [0.0, 1.5]  # 90 minutes apart, hour 0 kept
    assert origin.loc[1] == pd.Timestamp("2000-01-01")


def test_new_tables_are_read_in_the_units_a_bundle_was_trained_on(pn2012, tmp_path):
    """An export whose every temperature is in °F picks °F as its own unit; read for a
    bundle trained in Celsius (its stored units), the values come back in Celsius."""
    from medseq.datasets.flat_tables import FLAT_EVENTS, read_mapping

    _export(pn2012.events, tmp_path / "events.csv")
    flat = pd.read_csv(tmp_path / "events.csv")
    temp = flat["Parameter"] == "Temp"
    flat.loc[temp, "Value"] = flat.loc[temp, "Value"] * 9 / 5 + 32
    flat.loc[temp, "Unit"] = "[degF]"
    flat.to_csv(tmp_path / "events.csv", index=False)
    body = MAPPING.replace("[data.events]", '[[events]]\npath = "events.csv"')
    (tmp_path / "map.toml").write_text(body)
    own = read_mapping(tmp_path / "map.toml")
    assert own.request_state["units"]["Temp"] == "[degF]"
    assert FLAT_EVENTS.read_as_trained is not None
    trained = FLAT_EVENTS.read_as_trained(tmp_path / "map.toml", {"units": {"Temp": "Cel"}})
    want = pn2012.events
    np.testing.assert_allclose(trained.events["value"], want["value"], rtol=0, atol=1e-9)
    is_temp = (own.events["code"] == "Temp").to_numpy()
    assert is_temp.sum() > 100  # read as its own, the file stays in °F
    expected = want["value"].to_numpy()[is_temp] * 9 / 5 + 32
    np.testing.assert_allclose(own.events["value"].to_numpy()[is_temp], expected, atol=1e-9)
