"""``POST /v1/predict`` for the per-step datasets, on real data: sepsis risk per ICU hour
(PhysioNet 2019, set A and B patients) and a sleep stage per 30-s epoch (Sleep-EDF).

The companion of ``test_serving_every_dataset.py`` (its helpers train each bundle small,
through the dataset's own spec). For each: the service answers every hour or epoch sent
with the probabilities ``bundle.predict`` gives offline for the same rows (1e-6), and
malformed bodies are a 4xx naming the field.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import test_serving_every_dataset as every

from data_slices import unpack_physionet2019
from medseq.bundle import load_bundle, save_bundle
from medseq.datasets import get_dataset
from medseq.paths import dataset_dir

AUTH, TOL, _refused, _tiny_bundle = every.AUTH, every.TOL, every._refused, every._tiny_bundle
client_of = every.client_of  # the fixture: a started service per bundle

SEPSIS_MODEL = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], "mode": "sequence",
                "hidden_size": 8, "bidirectional": False}  # fmt: skip


def _post(client, body: dict) -> dict:
    answer = client.post("/v1/predict", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _steps(out: dict) -> list[np.ndarray]:
    return [np.array([s["probabilities"] for s in p["steps"]]) for p in out["predictions"]]


def _refused_raw(client, text: str, loc: list) -> None:
    """A body sent as raw text (``NaN`` and ``Infinity`` are not JSON, but Python reads them)."""
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = client.post("/v1/predict", content=text, headers=headers)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc for e in detail), detail


# -- PhysioNet 2019: sepsis risk per ICU hour ---------------------------------------------


@pytest.fixture(scope="module")
def sepsis_root(tmp_path_factory):
    """The first 40 patients of each hospital system's archive, in the official layout."""
    return unpack_physionet2019(tmp_path_factory.mktemp("sepsis-rest"), 40, scan=40)


@pytest.fixture(scope="module")
def sepsis(sepsis_root, tmp_path_factory):
    """The data, and a one-epoch causal GRU bundle of 60 of its patients, saved with an
    alarm threshold of 0.3 (as one chosen on validation data for utility would be)."""
    data = get_dataset("physionet2019").read(sepsis_root)
    ids = data.static.index.to_numpy()
    train = np.r_[ids[:30], ids[40:70]]
    out = tmp_path_factory.mktemp("sepsis-bundle")
    _tiny_bundle(out / "raw", "physionet2019", "sepsis_6h", data, train, {}, SEPSIS_MODEL)
    bundle = load_bundle(out / "raw")
    bundle.threshold = 0.3
    save_bundle(bundle, out / "bundle")
    return data, out / "bundle"


def _stay(root, sid: int) -> dict:
    """A real patient's ``.psv`` rows as the REST body's hours (NaN cells left out)."""
    folder = root / f"training_set{'A' if sid < 100_000 else 'B'}"
    frame = pd.read_csv(folder / f"p{sid:06d}.psv", sep="|")
    hours = []
    for row in frame.drop(columns="SepsisLabel").to_dict("records"):
        hour = {k: float(v) for k, v in row.items() if v == v and k != "ICULOS"}
        hours.append({"ICULOS": int(row["ICULOS"]), **hour})
    return {"patient_id": f"p{sid:06d}", "hours": hours}


def test_sepsis_hours_match_offline_per_hour(sepsis, sepsis_root, client_of):
    data, bundle_dir = sepsis
    client = client_of(bundle_dir)
    ids = data.static.index.to_numpy()
    chosen = np.r_[ids[35:38], ids[75:78]]  # unseen patients of A and of B
    stays = [_stay(sepsis_root, int(i)) for i in chosen]
    for stay in stays:
        stay["hours"] = stay["hours"][:72]
    out = _post(client, {"patients": stays})
    assert out["class_names"] == ["no_sepsis", "sepsis"] and out["threshold"] == 0.3
    offline = load_bundle(bundle_dir).predict(data, chosen)  # (N, 72, 2)
    assert offline.shape == (len(chosen), 72, 2)
    from medseq.experiment.inference import predict_file

    table = predict_file(bundle_dir, sepsis_root)  # what `medseq predict` writes: per hour
    assert list(table.columns[:2]) == ["subject_id", "step"]
    for k, (stay, got) in enumerate(zip(stays, _steps(out), strict=True)):
        n = len(stay["hours"])
        assert got.shape == (n, 2)
        np.testing.assert_allclose(got, offline[k, :n], atol=TOL, rtol=0)
        rows = table[table.subject_id == chosen[k]]
        np.testing.assert_array_equal(rows.step, np.arange(n))  # every charted hour, no more
        np.testing.assert_allclose(got, rows[["p_no_sepsis", "p_sepsis"]], atol=TOL, rtol=0)
        answer = out["predictions"][k]
        assert [s["predicted"][0] for s in answer["steps"]] == rows.prediction.tolist()
        assert [s["step"] for s in answer["steps"]] == [h["ICULOS"] for h in stay["hours"]]
        alarms = [s["predicted"] == ["sepsis"] for s in answer["steps"]]
        assert alarms == list(got[:, 1] >= 0.3)
        assert answer["probabilities"] == answer["steps"][-1]["probabilities"]
        assert answer["n_events_used"] == sum(len(h) - 1 for h in stay["hours"]) - sum(
            k in ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime") for h in stay["hours"]
            for k in h
        )
    # An implausible value is left out and listed, as the reader leaves it out of a file.
    odd = json.loads(json.dumps(stays[0]))
    odd["hours"][0]["FiO2"] = 40.0  # a percentage where the Challenge stores a fraction
    again = _post(client, {"patients": [odd]})["predictions"][0]
    np.testing.assert_allclose(_steps({"predictions": [again]})[0], _steps(out)[0], atol=TOL)
    assert {"index": 0, "code": "FiO2", "reason": "implausible_value"} in again["skipped"]


def test_sepsis_bad_bodies_name_the_field(sepsis, client_of):
    client = client_of(sepsis[1])
    at = ["body", "patients", 0, "hours"]

    def body(*hours: dict) -> dict:
        return {"patients": [{"patient_id": "p", "hours": list(hours)}]}

    _refused(client, body({"ICULOS": 1, "HeartRate": 80.0}), [*at, 0, "HeartRate"])
    _refused(client, body({"ICULOS": 1, "SepsisLabel": 0}), [*at, 0, "SepsisLabel"])
    _refused(client, body({"ICULOS": 1, "HR": "80"}), [*at, 0, "HR"])
    _refused(client, body({"ICULOS": 2}, {"ICULOS": 1}), [*at, 1, "ICULOS"])
    _refused(client, body({"ICULOS": 1}, {"ICULOS": 1}), [*at, 1, "ICULOS"])
    _refused(client, body({"ICULOS": 1}, {"ICULOS": 3}), [*at, 1, "ICULOS"])
    _refused(client, body({"HR": 80.0}), [*at, 0, "ICULOS"])
    _refused(client, body({"ICULOS": 1.5}), [*at, 0, "ICULOS"])
    detail = _refused(client, body(*({"ICULOS": h} for h in range(1, 74))), at)
    assert "72" in detail[0]["msg"]
    _refused(client, body(), at)
    _refused_raw(client, '{"patients": [{"patient_id": "p", "hours": [{"ICULOS": 1, '
                 '"HR": NaN}]}]}', [*at, 0, "HR"])  # fmt: skip
    _refused_raw(client, '{"patients": [{"patient_id": "p", "hours": [{"ICULOS": 1, '
                 '"Temp": Infinity}]}]}', [*at, 0, "Temp"])  # fmt: skip
    twice = {"patients": [{"patient_id": "p", "hours": [{"ICULOS": 1}]}] * 2}
    _refused(client, twice, ["body", "patients"])
    fhir = {"resourceType": "Bundle", "type": "collection", "entry": []}
    _refused(client, fhir, ["body", "entry"])
    # The documented example is a valid body; the model card shows it.
    from medseq.datasets.physionet2019 import HOURS_EXAMPLE

    example = _post(client, HOURS_EXAMPLE)["predictions"][0]
    assert [s["step"] for s in example["steps"]] == [1, 2, 3]
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["request"]["request"] == {"modality": "icu_hours", "example": HOURS_EXAMPLE}


VITALS = {"HR": ("8867-4", "/min"), "O2Sat": ("59408-5", "%"), "Temp": ("8310-5", "Cel"),
          "SBP": ("8480-6", "mm[Hg]"), "MAP": ("8478-0", "mm[Hg]"), "DBP": ("8462-4", "mm[Hg]"),
          "Resp": ("9279-1", "/min"), "EtCO2": ("19889-5", "mm[Hg]")}  # fmt: skip


def _observation(pid: str, hours: float, loinc: str, value: float, unit: str) -> dict:
    when = pd.Timestamp("2024-03-01T08:00:00+00:00") + pd.Timedelta(hours=hours)
    return {"resource": {
        "resourceType": "Observation", "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": when.isoformat(),
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": unit}}}


def _vitals_fhir(rows: list[dict], pid: str, age: int, gender: int) -> dict:
    """Rows' vital signs as Observations at mid-hour, the descriptors as a Patient."""
    entries = [
        {"resource": {"resourceType": "Patient", "id": pid, "birthDate": f"{2023 - age}-06-01",
                      "gender": ["female", "male"][gender]}},
        {"resource": {"resourceType": "Encounter", "status": "in-progress",
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                "code": "IMP"}, "subject": {"reference": f"Patient/{pid}"},
                      "period": {"start": "2024-03-01T08:00:00+00:00"}}},
    ]  # fmt: skip
    for k, row in enumerate(rows):
        for name, (loinc, unit) in VITALS.items():
            if name in row:
                entries.append(_observation(pid, k + 0.5, loinc, row[name], unit))
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_sepsis_fhir_vitals_answer_as_the_rows_they_bin_to(sepsis, sepsis_root, client_of):
    """A real patient's vital signs as FHIR Observations get the answer of the hourly rows
    they bin to; an earlier value in the same hour and a laboratory code are listed."""
    data, bundle_dir = sepsis
    client = client_of(bundle_dir)
    sid = int(data.static.index[76])
    hours = _stay(sepsis_root, sid)["hours"][:30]
    vitals = [{k: v for k, v in h.items() if k in VITALS} for h in hours]
    while not vitals[-1]:
        vitals.pop()
    age, gender = int(hours[0]["Age"]), int(hours[0]["Gender"])
    rows = [{"ICULOS": k + 1, **v} for k, v in enumerate(vitals)]
    rows[0].update(Age=float(age), Gender=gender)
    bundle = _vitals_fhir(vitals, "p1", age, gender)
    first = next(k for k, v in enumerate(vitals) if "HR" in v)
    bundle["entry"].append(_observation("p1", first + 0.1, "8867-4", 50.0, "/min"))  # earlier
    bundle["entry"].append(_observation("p1", 2.5, "2524-7", 2.0, "mmol/L"))  # lactate: lab
    by_fhir = _post(client, bundle)["predictions"][0]
    by_rows = _post(client, {"patients": [{"patient_id": "p1", "hours": rows}]})
    np.testing.assert_allclose(_steps({"predictions": [by_fhir]})[0], _steps(by_rows)[0],
                               atol=TOL, rtol=0)  # fmt: skip
    assert [s["step"] for s in by_fhir["steps"]] == list(range(1, len(rows) + 1))
    assert by_fhir["n_events_used"] == sum(len(v) for v in vitals)
    reasons = {(s["index"], s["reason"]) for s in by_fhir["skipped"]}
    n = len(bundle["entry"])
    assert reasons == {(n - 2, "superseded_in_hour"), (n - 1, "unknown_code")}
    bad = _vitals_fhir(vitals[first : first + 1], "p1", age, gender)
    bad["entry"][2]["resource"]["valueQuantity"]["value"] = "x"
    _refused(client, bad, ["body", "entry", 2, "resource", "valueQuantity", "value"])
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["request"]["fhir"]["modality"] == "icu_vitals_fhir"


# -- Sleep-EDF: a sleep stage per 30-s epoch ----------------------------------------------


@pytest.fixture(scope="module")
def sleep(tmp_path_factory):
    """The real nights, and a one-epoch bidirectional GRU bundle of subjects 0-2's nights
    that reads all 72 features (the published config's context_columns)."""
    spec = get_dataset("sleepedf")
    data = spec.read(dataset_dir("sleepedf_features"))
    train = np.array([i for i in sorted(data.nights) if i < 4030])
    model = {**SEPSIS_MODEL, "bidirectional": True}
    features = {"recover_power": True, "context_columns": True}
    out = tmp_path_factory.mktemp("sleep-bundle")
    return data, _tiny_bundle(out, "sleepedf", "sleep_stage", data, train, features, model)


def _night(data, night_id: int, names: tuple[str, ...]) -> dict:
    """A night's window of stored features as the REST body's epochs, by name."""
    rows = data.nights[night_id].features[data.rows[night_id]]
    epochs = [dict(zip(names, map(float, r), strict=True)) for r in rows]
    return {"night_id": f"SC{night_id}", "epochs": epochs}


def test_sleep_night_matches_offline_per_epoch(sleep, client_of):
    from medseq.datasets.sleepedf_serving import NAMES

    data, bundle_dir = sleep
    client = client_of(bundle_dir)
    chosen = [4091, 4092]  # subject 9, unseen
    out = _post(client, {"nights": [_night(data, i, NAMES) for i in chosen]})
    assert out["task"] == "multiclass" and out["class_names"] == ["W", "N1", "N2", "N3", "REM"]
    offline = load_bundle(bundle_dir).predict(data, np.array(chosen))
    for k, (night_id, got) in enumerate(zip(chosen, _steps(out), strict=True)):
        n = len(data.rows[night_id])
        assert got.shape == (n, 5) and n > 500
        np.testing.assert_allclose(got, offline[k, :n], atol=TOL, rtol=0)
        stages = [s["predicted"][0] for s in out["predictions"][k]["steps"]]
        assert stages == [out["class_names"][j] for j in offline[k, :n].argmax(axis=1)]


def test_sleep_bad_bodies_name_the_field(sleep, client_of):
    from medseq.datasets.sleepedf_serving import NAMES

    client = client_of(sleep[1])
    epoch = dict.fromkeys(NAMES, -20.0)
    at = ["body", "nights", 0, "epochs"]

    def body(*epochs: dict) -> dict:
        return {"nights": [{"night_id": "n1", "epochs": list(epochs)}]}

    _refused(client, body(epoch, {**epoch, "Fpz-Cz_sigma": 1.0}), [*at, 1, "Fpz-Cz_sigma"])
    short = {k: v for k, v in epoch.items() if k != "Pz-Oz_mobility"}
    detail = _refused(client, body(epoch, short), [*at, 1])
    assert "Pz-Oz_mobility" in detail[0]["msg"]
    _refused(client, body({**epoch, "Fpz-Cz_delta": "x"}), [*at, 0, "Fpz-Cz_delta"])
    _refused(client, body({**epoch, "Fpz-Cz_delta": None}), [*at, 0, "Fpz-Cz_delta"])
    _refused(client, body(*[{}] * (2 * 60 * 24 + 1)), at)
    _refused(client, body(), at)
    text = json.dumps(body(epoch)).replace("-20.0", "NaN", 1)
    _refused_raw(client, text, [*at, 0, NAMES[0]])
    # The documented example holds the 18 base features: this bundle also reads the 54
    # context ones, so it asks for them; the model card shows the example.
    from medseq.datasets.sleepedf import NIGHT_EXAMPLE

    detail = _refused(client, NIGHT_EXAMPLE, [*at, 0])
    assert "54 features missing" in detail[0]["msg"]
    card = client.get("/v1/model", headers=AUTH).json()
    assert card["request"]["request"]["modality"] == "eeg_epochs"


def test_sleep_example_fits_a_bundle_of_the_base_features_only(sleep):
    """A featurizer without context_columns reads the documented example's 18 features
    and refuses the 54 context ones, naming the first."""
    from medseq.datasets.sleepedf import NIGHT_EXAMPLE
    from medseq.datasets.sleepedf_serving import NAMES, parse
    from medseq.serving.requests import RequestContext, RequestError

    data = sleep[0]
    spec = get_dataset("sleepedf")
    featurizer = spec.fit_featurizer({"context_columns": False}, data, np.array([4001, 4002]))
    parsed = parse(NIGHT_EXAMPLE, RequestContext(featurizer))
    arrays = spec.transform(featurizer, parsed.data, parsed.ids)
    assert arrays["values"].shape == (1, 1, 18) and np.isfinite(arrays["values"]).all()
    assert parsed.steps == [[0]]
    full = {"nights": [_night(data, 4001, NAMES)]}
    with pytest.raises(RequestError, match="18 base features only") as err:
        parse(full, RequestContext(featurizer))
    assert err.value.errors[0]["loc"] == ["body", "nights", 0, "epochs", 0, NAMES[18]]


def test_sepsis_report_of_a_per_hour_bundle(sepsis, sepsis_root, tmp_path):
    """``medseq report`` on the per-hour bundle (the physionet2019 report cell had no test):
    the HTML names the dataset and task the bundle records."""
    import shutil

    from typer.testing import CliRunner

    from medseq.cli import app

    _, bundle_dir = sepsis
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)  # the report stores its model card in the bundle
    out = tmp_path / "report.html"
    args = ["report", str(target), "--data", str(sepsis_root), "--n-boot", "20", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    html = " ".join(out.read_text().split())
    assert "dataset physionet2019" in html and "sepsis_6h" in html
