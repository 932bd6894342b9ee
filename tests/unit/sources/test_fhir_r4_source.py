"""FHIR R4 reader on real Synthea Bundles, their NDJSON and archive forms, and bad input."""

from __future__ import annotations

import gzip
import json
import logging
import random
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseq.schema import DataError
from medseq.sources import fhir_r4, meds

LOINC = "http://loinc.org|"
WEIGHT = LOINC + "29463-7"


def _bundles(folder: Path) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def _hours(when: str, origin: pd.Timestamp) -> float:
    stamp = pd.Timestamp(when).tz_convert(None)
    return (stamp - origin) / pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def data(synthea_bundles):
    return fhir_r4.read(synthea_bundles)


def test_real_bundles_give_coded_events_with_systems_and_times(data, synthea_bundles):
    bundles = _bundles(synthea_bundles)
    assert data.report.n_subjects == len(bundles) == 4
    ev = data.events
    assert (ev.groupby("subject_id")["time"].apply(lambda t: t.is_monotonic_increasing)).all()
    # Every supported entry is accounted for, per type, and nothing else is.
    table = data.resources
    parts = ["n_used", "n_unsupported", "n_bad", "n_void", "n_unit_dropped"]
    assert (table[parts].sum(axis=1) == table["n_entries"]).all()
    n_claims = sum(e["resource"]["resourceType"] == "Claim" for _, b in bundles for e in b["entry"])
    assert table.loc["Claim", "n_unsupported"] == n_claims > 0
    assert data.report.counts["unsupported_resource:Claim"] == n_claims
    # One value recomputed from the raw JSON: the first body weight of the first patient.
    _, bundle = bundles[0]
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    sid = fhir_r4.subject_id_of(patient["id"])
    starts = [r["period"]["start"] for r in resources if r["resourceType"] == "Encounter"]
    origin = min(pd.Timestamp(s).tz_convert(None) for s in starts)
    assert data.origin[sid] == origin
    weights = [
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "29463-7"
    ]
    mine = ev[(ev["subject_id"] == sid) & (ev["code"] == WEIGHT)]
    assert len(mine) == len(weights) > 0
    expected = sorted(
        (_hours(w["effectiveDateTime"], origin), w["valueQuantity"]["value"]) for w in weights
    )
    np.testing.assert_allclose(
        mine[["time", "value"]].to_numpy(), np.array(expected), rtol=0, atol=1e-9
    )
    # Static facts: sex and age at hour 0 from birthDate.
    row = data.static.loc[sid]
    assert row["sex"] == patient["gender"] and row["patient_id"] == patient["id"]
    age = (origin - pd.Timestamp(patient["birthDate"])) / pd.Timedelta(days=365.25)
    assert row["age_years"] == pytest.approx(age)
    assert (ev.loc[ev["subject_id"] == sid, "code"] == "MEDS_BIRTH").sum() == 1
    # Age at a prediction time 1000 days after hour 0.
    later = fhir_r4.age_years_at(data, np.array([sid]), np.array([24_000.0]))
    assert later[0] == pytest.approx(age + 1000 / 365.25)


def test_components_are_separate_events_and_systems_are_kept(data):
    codes = set(data.events["code"])
    assert {LOINC + "8480-6", LOINC + "8462-4"} <= codes  # systolic, diastolic
    assert LOINC + "85354-9" not in codes  # the blood-pressure panel itself has no value
    systems = {c.split("|")[0] for c in codes if "|" in c}
    assert {"http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/cvx"} <= systems
    assert data.units.set_index("code").loc[WEIGHT, "unit"] == "kg"
    assert any(c.startswith(fhir_r4.ENCOUNTER_PREFIX) for c in codes)


def _as_ndjson(folder: Path, out: Path) -> Path:
    """Bulk Data layout: one file per resource type, references as ``Patient/<id>``."""
    out.mkdir()
    by_type: dict[str, list[str]] = {}
    for _, bundle in _bundles(folder):
        for entry in bundle["entry"]:
            res = entry["resource"]
            text = json.dumps(res).replace('"urn:uuid:', '"Patient/')
            by_type.setdefault(res["resourceType"], []).append(text)
    for kind, lines in by_type.items():
        text = "\n".join(lines) + "\n"
        if kind == "Observation":  # Bulk Data servers may gzip their files
            (out / f"{kind}.ndjson.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (out / f"{kind}.ndjson").write_text(text)
    return out


def test_folder_archive_and_ndjson_read_the_same(data, synthea_bundles, tmp_path):
    archive = tmp_path / "few.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(synthea_bundles, arcname="bundles")
    from_tar = fhir_r4.read(archive)
    pd.testing.assert_frame_equal(from_tar.events, data.events)
    from_ndjson = fhir_r4.read(_as_ndjson(synthea_bundles, tmp_path / "bulk"))
    pd.testing.assert_frame_equal(from_ndjson.events, data.events)
    pd.testing.assert_frame_equal(from_ndjson.static, data.static)


def test_entry_order_does_not_matter(data, synthea_bundles, tmp_path):
    random.seed(0)
    for path, bundle in _bundles(synthea_bundles):
        random.shuffle(bundle["entry"])
        (tmp_path / path.name).write_text(json.dumps(bundle))
    pd.testing.assert_frame_equal(fhir_r4.read(tmp_path).events, data.events)


def test_meds_round_trip_gives_the_same_events(data, tmp_path):
    root = data.to_meds(tmp_path / "meds", dataset_name="synthea_r4")
    events, origin, _ = meds.read_events(root, start_prefix=fhir_r4.ENCOUNTER_PREFIX)
    assert origin.reindex(data.origin.index).equals(data.origin.astype("datetime64[us]"))
    pd.testing.assert_frame_equal(
        events[["subject_id", "code"]], data.events[["subject_id", "code"]]
    )
    np.testing.assert_allclose(events["time"], data.events["time"], rtol=0, atol=1e-9)
    # MEDS stores numeric_value as float32.
    expected = data.events["value"].to_numpy(np.float32).astype(np.float64)
    np.testing.assert_array_equal(events["value"].to_numpy(), expected)


# ---- bad input -------------------------------------------------------------------------


def _small_bundle(synthea_bundles: Path, extra: list[dict]) -> dict:
    """The first patient with its Encounters and a few Observations, plus ``extra``."""
    _, bundle = _bundles(synthea_bundles)[0]
    keep = [e for e in bundle["entry"] if e["resource"]["resourceType"] in ("Patient", "Encounter")]
    obs = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] != "29463-7"  # not a body weight
    ][:3]
    return {"resourceType": "Bundle", "type": "collection", "entry": keep + obs + extra}


def _observation(
    patient_ref: str, code: str, unit: str | None, value: float, when: str | None
) -> dict:
    res: dict = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": patient_ref},
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org"},
    }
    if unit is not None:
        res["valueQuantity"]["code"] = unit
    if when is not None:
        res["effectiveDateTime"] = when
    return {"resource": res}


def _write(tmp_path: Path, bundle: dict, name: str = "one.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(bundle))
    return path


def _patient_ref(bundle: dict) -> str:
    return "urn:uuid:" + next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )


def test_malformed_json_names_the_file_and_the_entry(synthea_bundles, tmp_path, caplog):
    bundle = _small_bundle(synthea_bundles, [])
    text = json.dumps(bundle, indent=1)
    entry5 = text.index('"fullUrl"', 0)
    for _ in range(5):
        entry5 = text.index('"fullUrl"', entry5 + 1)
    broken = text[:entry5] + '"fullUrl" "no colon",' + text[entry5:]
    path = tmp_path / "broken.json"
    path.write_text(broken)
    with pytest.raises(DataError, match=r"broken\.json: malformed JSON in entry 5"):
        fhir_r4.read(path)
    (tmp_path / "good.json").write_text(text)
    with caplog.at_level(logging.WARNING):
        read = fhir_r4.read(tmp_path, on_bad_entry="warn")
    assert read.report.counts["malformed_json"] == 1 and read.report.n_subjects == 1
    assert "broken.json" in caplog.text


def test_malformed_ndjson_line_is_named(tmp_path):
    path = tmp_path / "Observation.ndjson"
    path.write_text('{"resourceType": "Observation"}\n{"resourceType": \n')
    with pytest.raises(DataError, match=r"Observation\.ndjson:2: malformed JSON"):
        fhir_r4.read(path)


def test_unknown_types_and_bad_entries_are_counted_or_raised(synthea_bundles, tmp_path):
    bundle = _small_bundle(synthea_bundles, [])
    ref = _patient_ref(bundle)
    no_code = _observation(ref, "29463-7", "kg", 70.0, "2015-01-01T10:00:00+00:00")
    del no_code["resource"]["code"]
    bundle["entry"] += [
        {"resource": {"resourceType": "FooBar", "id": "x"}},
        no_code,
        {"request": {}},
    ]
    index = len(bundle["entry"]) - 2
    path = _write(tmp_path, bundle)
    with pytest.raises(
        DataError, match=rf"one\.json: entry {index} \(Observation\): code has no coding"
    ):
        fhir_r4.read(path)
    read = fhir_r4.read(path, on_bad_entry="skip")
    assert read.resources.loc["FooBar", "n_unsupported"] == 1
    assert read.report.counts["unsupported_resource:FooBar"] == 1
    assert read.report.counts["bad_entry:Observation:no_code"] == 1
    assert read.report.counts["bad_entry:(none):no_resource"] == 1


def test_units_convert_or_are_dropped_and_counted(synthea_bundles, tmp_path):
    bundle = _small_bundle(synthea_bundles, [])
    ref = _patient_ref(bundle)
    when = "2015-01-01T10:00:00+00:00"
    bundle["entry"] += [
        _observation(ref, "29463-7", "kg", 70.0, when),
        _observation(ref, "29463-7", "kg", 80.0, when),
        _observation(ref, "29463-7", "[lb_av]", 100.0, when),
        _observation(ref, "29463-7", "mmol/L", 5.0, when),
    ]
    path = _write(tmp_path, bundle)
    read = fhir_r4.read(path, on_unit_mismatch="skip")
    weights = read.events.loc[read.events["code"] == WEIGHT, "value"]
    np.testing.assert_allclose(sorted(weights), [45.359237, 70.0, 80.0])
    assert read.report.counts["unit_converted:[lb_av]->kg"] == 1
    assert read.report.counts[f"unit_mismatch:{WEIGHT}:mmol/L!=kg"] == 1
    with pytest.raises(DataError, match=r"29463-7' is in 'kg' but 1 value\(s\) have unit 'mmol/L'"):
        fhir_r4.read(path, on_unit_mismatch="raise")
    # The training data's unit table can force the target unit.
    pounds = fhir_r4.read(path, on_unit_mismatch="skip", units={WEIGHT: "[lb_av]"})
    got = pounds.events.loc[pounds.events["code"] == WEIGHT, "value"]
    np.testing.assert_allclose(sorted(got), [100.0, 70 / 0.45359237, 80 / 0.45359237])


def test_missing_bad_and_date_only_times(synthea_bundles, tmp_path):
    bundle = _small_bundle(synthea_bundles, [])
    ref = _patient_ref(bundle)
    bundle["entry"].append(_observation(ref, "29463-7", "kg", 70.0, None))
    path = _write(tmp_path, bundle)
    with pytest.raises(DataError, match=r"\(Observation\): no time: none of effectiveDateTime"):
        fhir_r4.read(path)
    bundle["entry"][-1] = _observation(ref, "29463-7", "kg", 70.0, "2015-13-45T99:00:00Z")
    path = _write(tmp_path, bundle)
    with pytest.raises(DataError, match=r"one\.json: entry \d+ \(Observation\): time is not"):
        fhir_r4.read(path)
    assert (
        fhir_r4.read(path, on_bad_entry="skip").report.counts["bad_entry:Observation:bad_time"] == 1
    )
    bundle["entry"][-1] = _observation(ref, "29463-7", "kg", 71.5, "2015-03-01")
    read = fhir_r4.read(_write(tmp_path, bundle))
    assert read.report.counts["date_only_time"] == 1
    sid = next(iter(read.origin.index))
    row = read.events[(read.events["code"] == WEIGHT) & (read.events["value"] == 71.5)]
    expected = (pd.Timestamp("2015-03-02") - read.origin[sid]) / pd.Timedelta(hours=1)
    assert row["time"].iloc[0] == pytest.approx(expected)  # the end of that day


def test_an_encounter_ending_before_it_starts_keeps_only_its_start(synthea_bundles, tmp_path):
    bundle = _small_bundle(synthea_bundles, [])
    ref = _patient_ref(bundle)
    period = {"start": "2016-05-01T10:00:00+00:00", "end": "2016-05-01T09:00:00+00:00"}
    odd = {
        "resourceType": "Encounter",
        "status": "finished",
        "subject": {"reference": ref},
        "class": {"code": "ODD"},
        "period": period,
    }
    bundle["entry"].append({"resource": odd})
    read = fhir_r4.read(_write(tmp_path, bundle))
    assert read.report.counts["encounter_end_before_start"] == 1
    codes = set(read.events["code"])
    assert "ENCOUNTER/ODD" in codes and "ENCOUNTER_END/ODD" not in codes
    assert read.resources.loc["Encounter", "n_used"] == read.resources.loc["Encounter", "n_entries"]


def test_no_patient_is_an_error(tmp_path):
    path = tmp_path / "Observation.ndjson"
    path.write_text(
        json.dumps(_observation("Patient/1", "29463-7", "kg", 1.0, "2015-01-01")["resource"])
    )
    with pytest.raises(DataError, match="no Patient resource found"):
        fhir_r4.read(path)


def test_typed_and_generic_decoders_agree(synthea_bundles, tmp_path, monkeypatch):
    from medseq.sources import _fhir_files

    bundle = _small_bundle(synthea_bundles, [])
    ref = _patient_ref(bundle)
    when = "2016-05-01T08:00:00+00:00"
    shapes = [
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": ref},
            "code": {"coding": [{"system": "http://loinc.org", "code": "X-1"}]},
            "effectiveInstant": when,
            "valueBoolean": True,
        },
        {
            "resourceType": "Observation",
            "status": "entered-in-error",
            "subject": {"reference": ref},
            "code": {"coding": [{"code": "X-2"}]},
            "effectiveDateTime": when,
            "valueInteger": 3,
        },
        {
            "resourceType": "Condition",
            "subject": {"reference": ref},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "onsetPeriod": {"start": when},
        },
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "subject": {"reference": ref},
            "authoredOn": when,
            "medicationReference": {"reference": "Medication/1"},
        },
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": {"reference": ref},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
            "performedDateTime": when,
            "type": "not-a-field-of-procedure",
        },
    ]
    bundle["entry"] += [{"resource": r} for r in shapes]
    folder = tmp_path / "mixed"
    folder.mkdir()
    _write(folder, bundle)
    for path, real in _bundles(synthea_bundles)[:2]:
        _write(folder, real, path.name)
    typed = fhir_r4.read(folder, on_bad_entry="skip")
    assert _fhir_files.USE_TYPED_DECODER  # msgspec is installed in the test environment
    monkeypatch.setattr(_fhir_files, "USE_TYPED_DECODER", False)
    generic = fhir_r4.read(folder, on_bad_entry="skip")
    pd.testing.assert_frame_equal(typed.events, generic.events)
    pd.testing.assert_frame_equal(typed.static, generic.static)
    pd.testing.assert_frame_equal(typed.resources, generic.resources)
    assert typed.report.counts == generic.report.counts
    assert "http://loinc.org|X-1" in set(typed.events["code"])
    assert typed.report.counts["status:Observation:entered-in-error"] == 1
    assert typed.report.counts["bad_entry:MedicationRequest:medication_reference"] == 1
    assert typed.report.counts["time_from:Condition.onsetPeriod.start"] == 1
