"""The reviewed LOINC/UCUM table of PhysioNet 2012: every mapping has its LOINC axes and a
reason, each code's property fits the variable's unit, and codes that mean something else
(pulse-oximetry SpO2 is not the blood-gas SaO2) are refused with a 422 naming code and
reason, in both body forms and on both routes."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from serving_helpers import AUTH, TOKEN

from medseq.datasets.physionet2012_serving import TABLE_FILE, TABLE_PACKAGE, code_table
from medseq.serving.api import create_app
from medseq.serving.codes import CodeTable, Mapped, RefusedCode
from medseq.serving.settings import ServeSettings

#: UCUM units that can express each LOINC property (the dimension the code measures).
PROPERTY_UNITS = {
    "CCnc": {"U/L", "[IU]/L"},
    "MCnc": {"g/dL", "g/L", "mg/dL", "ug/L", "ng/mL", "ng/L"},
    "SCnc": {"mmol/L", "meq/L", "umol/L"},
    "VFr": {"%", "1", "L/L"},
    "MFr": {"%", "1"},
    "NRat": {"/min", "{beats}/min", "{breaths}/min"},
    "Pres": {"mm[Hg]", "kPa"},
    "PPres": {"mm[Hg]", "kPa"},
    "Temp": {"Cel", "[degF]"},
    "Vol": {"mL", "L"},
    "NCnc": {"10*3/uL", "10*9/L"},
    "Mass": {"kg", "g", "[lb_av]"},
    "Len": {"cm", "m", "[in_i]"},
    "Time": {"a"},
    "Score": {"{score}", "1"},
    "LsCnc": {"[pH]", "1"},
    "VRat": {"L/min"},
}
AXES = ("code", "display", "component", "property", "system", "method", "reason")


@pytest.fixture(scope="module")
def raw():
    return json.loads(resources.files(TABLE_PACKAGE).joinpath(TABLE_FILE).read_text())


def _mappings(raw):
    for block in ("variables", "static"):
        for name, entry in raw[block].items():
            for mapping in entry["loinc"]:
                yield name, entry, mapping


def test_every_mapping_states_its_loinc_axes_and_a_reason(raw):
    mappings = list(_mappings(raw))
    assert len(mappings) >= 50
    for name, _, mapping in mappings:
        assert set(AXES) <= set(mapping), (name, mapping.get("code"))
        assert len(mapping["reason"]) > 20, (name, mapping["code"])
    local = [n for b in ("variables", "static") for n, e in raw[b].items() if not e["loinc"]]
    assert set(local) == {"MechVent", "Gender", "ICUType", "SaO2"}
    assert all(len(raw[b][n]["reason"]) > 20 for b in ("variables", "static")
               for n in local if n in raw[b])  # fmt: skip
    assert all(len(item["reason"]) > 20 and item["variable"] for item in raw["refused"].values())


def test_each_code_measures_what_the_variables_unit_can_hold(raw):
    for name, entry, mapping in _mappings(raw):
        allowed = PROPERTY_UNITS[mapping["property"]]
        if mapping.get("unit_required"):  # the value comes with a unit of its own property
            assert allowed & set(entry["convert"]), (name, mapping["code"])
        else:
            assert entry["unit"] in allowed, (name, mapping["code"], mapping["property"])


def test_blood_gas_variables_map_only_arterial_codes(raw):
    for name in ("PaO2", "PaCO2", "pH"):
        systems = {m["system"] for m in raw["variables"][name]["loinc"]}
        assert systems == {"BldA"}, name
    pressures = {"SysABP": "Invasive", "DiasABP": "Invasive", "MAP": "Invasive"}
    for name, method in pressures.items():
        assert {m["method"] for m in raw["variables"][name]["loinc"]} == {method}
    for name in ("NISysABP", "NIDiasABP", "NIMAP"):
        assert {m["method"] for m in raw["variables"][name]["loinc"]} <= {"Noninvasive", ""}


def test_pulse_oximetry_and_other_lookalikes_are_refused_not_mapped():
    table = code_table()
    for code in ("2708-6", "59408-5", "59417-6", "2028-9", "3151-8"):
        assert code in table.refused and table.variable_of("http://loinc.org", code) is None
        with pytest.raises(RefusedCode, match=code):
            table.map("http://loinc.org", code, 97.0, "%")
    assert "pulse" in table.refused["59408-5"].lower()
    sao2 = table.map("urn:medseq:physionet2012", "SaO2", 0.97, "1")
    assert isinstance(sao2, Mapped) and sao2.value == pytest.approx(97.0)


def test_a_moles_code_of_a_mass_variable_needs_its_unit():
    table = code_table()
    assert table.map(None, "2601-3", 0.9, None).startswith("missing_unit")
    assert table.map(None, "2601-3", 0.9, "mmol/L").value == pytest.approx(2.18745)
    assert table.map(None, "19123-9", 2.1, None).value == pytest.approx(2.1)


def test_a_table_may_not_both_map_and_refuse_a_code():
    bad = {"local_system": "urn:x", "variables": {"HR": {"loinc": ["8867-4"], "unit": "/min",
           "convert": {}}}, "static": {}, "refused": {"8867-4": {"reason": "no"}}}  # fmt: skip
    with pytest.raises(ValueError, match="both mapped and refused"):
        CodeTable(bad)


@pytest.fixture(scope="module")
def client(trained_gru_bundle, test_client_cls, tmp_path_factory):
    db = tmp_path_factory.mktemp("terms") / "state.sqlite"
    app = create_app(trained_gru_bundle, ServeSettings(tokens=(TOKEN,), state_db=str(db)))
    with test_client_cls(app) as c:
        yield c


def _spo2_bundle(codes: list[str]) -> dict:
    """A US Core pulse-oximetry Observation (2708-6 and 59408-5, as the profile codes it)."""
    coding = [{"system": "http://loinc.org", "code": c} for c in codes]
    obs = {
        "resourceType": "Observation", "status": "final", "code": {"coding": coding},
        "subject": {"reference": "Patient/t1"}, "effectiveDateTime": "2024-03-01T08:00:00+00:00",
        "valueQuantity": {"value": 97, "system": "http://unitsofmeasure.org", "code": "%"},
    }  # fmt: skip
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": obs}]}


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/patients/t1/observations",
         {"observations": [{"time": 1.0, "code": "HR", "value": 80.0},
                           {"time": 1.0, "code": "2708-6", "value": 97.0}]},
         ["body", "observations", 1, "code"]),
        ("/v1/predict",
         {"patients": [{"patient_id": "t1", "events": [{"time": 1.0, "code": "59408-5",
                                                         "value": 97.0, "unit": "%"}]}]},
         ["body", "patients", 0, "events", 0, "code"]),
        ("/v1/patients/t1/observations", _spo2_bundle(["2708-6", "59408-5"]),
         ["body", "entry", 0, "resource", "code", "coding", 0, "code"]),
        ("/v1/predict", _spo2_bundle(["59408-5"]),
         ["body", "entry", 0, "resource", "code", "coding", 0, "code"]),
    ],
)  # fmt: skip
def test_posting_a_refused_code_is_422_naming_code_and_reason(client, path, body, loc):
    answer = client.post(path, json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"][0]
    assert error["loc"] == loc and error["type"] == "refused_code"
    code = "2708-6" if "2708-6" in json.dumps(body) else "59408-5"
    assert code in error["msg"] and "SaO2" in error["msg"]
    assert client.get("/v1/patients/t1", headers=AUTH).status_code == 404  # nothing applied


def test_the_model_card_lists_refused_codes(client):
    card = client.get("/v1/model", headers=AUTH).json()
    assert "59408-5" in card["refused_codes"] and card["codes"]["SaO2"]["loinc"] == []
