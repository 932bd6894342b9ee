"""Drift monitoring and conformal sets over REST, on a bundle trained on PhysioNet 2012 set A
and served stays of set B (which it never saw)."""

from __future__ import annotations

import json
import shutil
import tarfile

import pandas as pd
import pytest
from serving_helpers import AUTH, TOKEN, event_rows, stays

from medseq.bundle import load_bundle, save_bundle
from medseq.drift import DriftSettings
from medseq.serving.api import create_app
from medseq.serving.settings import ServeSettings

WINDOW = DriftSettings(window=100, min_samples=50, check_every=1)


def _client(test_client_cls, bundle_dir, tmp_path):
    db = tmp_path / "state.sqlite"
    settings = ServeSettings(tokens=(TOKEN,), state_db=str(db), drift=WINDOW)
    return test_client_cls(create_app(bundle_dir, settings))


def _body(patients) -> dict:
    rows = [
        {"patient_id": f"p{sid}", "static": static, "events": event_rows(events)}
        for sid, events, static in patients
    ]
    return {"patients": rows}


def _serve(client, data, ids, per_request: int = 25) -> None:
    position = {sid: k for k, sid in enumerate(data.static.index.to_numpy())}
    for start in range(0, len(ids), per_request):
        chunk = [next(stays(data, position[s], 1)) for s in ids[start : start + per_request]]
        answer = client.post("/v1/predict", json=_body(chunk), headers=AUTH)
        assert answer.status_code == 200, answer.text


def test_the_bundle_stores_a_profile_of_its_training_inputs_and_no_rows(gru_bundle):
    profile = gru_bundle.drift_profile
    n = gru_bundle.provenance["n_subjects"]
    assert profile["n_samples"] == n["train"] + n["val"]
    assert profile["n_predictions"] == n["val"]  # out-of-fold predictions only
    names = [f["name"] for f in profile["features"]]
    assert {"HR", "GCS", "Urine", "Age", "ICUType=2", "Gender"} <= set(names)
    assert all(sum(f["counts"]) == profile["n_samples"] for f in profile["features"])
    hr = names.index("HR")
    assert profile["features"][hr]["missing"] < 0.05  # charted in nearly every stay
    assert len(json.dumps(profile)) < 120_000  # bins and counts: no row is kept


def test_set_b_does_not_drift_and_one_icu_type_does(
    trained_gru_bundle, setb, test_client_cls, tmp_path
):
    ids = setb.static.index.to_numpy()
    with _client(test_client_cls, trained_gru_bundle, tmp_path) as client:
        _serve(client, setb, ids[:150])
        same = client.get("/v1/drift", headers=AUTH).json()
    assert same["enabled"] and same["window"]["n_samples"] == 100 and same["window"]["evaluated"]
    assert same["drift"] is False and same["drifting_features"] == []
    assert not same["prediction_drift"]
    cardiac = ids[setb.static.loc[ids, "ICUType"].to_numpy() == 2][:60]  # cardiac surgery
    with _client(test_client_cls, trained_gru_bundle, tmp_path) as client:
        _serve(client, setb, cardiac, per_request=20)
        moved = client.get("/v1/drift", headers=AUTH).json()
        metrics = client.get("/metrics", headers=AUTH).text
    assert moved["drift"] is True and moved["alarms"] == 1
    drifting = moved["drifting_features"]
    assert "ICUType=2" in drifting
    assert [f for f in drifting if not f.startswith("ICUType")]  # not only the unit itself
    assert "medseq_drift_flag 1" in metrics and "medseq_drift_enabled 1" in metrics
    assert 'medseq_drift_psi{feature="ICUType=2"}' in metrics


def test_a_bundle_without_profile_serves_with_drift_disabled(
    trained_gru_bundle, setb, test_client_cls, tmp_path
):
    old = load_bundle(trained_gru_bundle)  # as saved before bundles carried a profile
    old.drift_profile = None
    save_bundle(old, tmp_path / "old")
    with _client(test_client_cls, tmp_path / "old", tmp_path) as client:
        answer = client.post("/v1/predict", json=_body(stays(setb, 0, 2)), headers=AUTH)
        drift = client.get("/v1/drift", headers=AUTH).json()
        metrics = client.get("/metrics", headers=AUTH).text
    assert answer.status_code == 200
    assert drift["enabled"] is False and drift["drift"] is False
    assert "no drift profile" in drift["reason"] and "retrain" in drift["reason"]
    assert "medseq_drift_enabled 0" in metrics and "medseq_drift_flag" not in metrics


@pytest.fixture(scope="module")
def small_set_b(physionet2012_dir, tmp_path_factory):
    """The first 40 stays of set B as a set folder (with its outcomes file) for the CLI."""
    root = tmp_path_factory.mktemp("setb40")
    with tarfile.open(physionet2012_dir / "set-b.tar.gz") as archive:
        members = [m for m in archive.getmembers() if m.name.endswith(".txt")]
        archive.extractall(root, members=sorted(members, key=lambda m: m.name)[:40])
    shutil.copy(physionet2012_dir / "Outcomes-b.txt", root / "Outcomes-b.txt")
    return root / "set-b"


@pytest.mark.parametrize("mondrian", [False, True])
def test_rest_sets_equal_the_cli_sets(
    trained_gru_bundle, small_set_b, test_client_cls, tmp_path, mondrian
):
    from typer.testing import CliRunner

    from medseq.cli import app
    from medseq.sources import physionet2012

    out = tmp_path / "pred.csv"
    args = ["predict", str(trained_gru_bundle), "--data", str(small_set_b), "-o", str(out)]
    args += ["--coverage", "0.9"] + (["--mondrian"] if mondrian else [])
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    frame = pd.read_csv(out, dtype={"set": str}, keep_default_na=False).set_index("subject_id")
    data = physionet2012.read(small_set_b)
    query = "?coverage=0.9" + ("&mondrian=true" if mondrian else "")
    with _client(test_client_cls, trained_gru_bundle, tmp_path) as client:
        answer = client.post(f"/v1/predict{query}", json=_body(stays(data, 0, 40)), headers=AUTH)
    assert answer.status_code == 200, answer.text
    got = {int(p["id"][1:]): p for p in answer.json()["predictions"]}
    assert sorted(got) == sorted(frame.index)
    for sid, row in frame.iterrows():
        item = got[sid]
        assert item["probabilities"][0] == pytest.approx(row["risk"], abs=1e-6)
        assert "|".join(item["conformal"]["set"]) == row["set"]
        assert item["conformal"]["set_size"] == row["set_size"]
        assert item["conformal"]["abstain"] == bool(row["abstain"])
    sizes = {len(p["conformal"]["set"]) for p in got.values()}
    assert sizes & {1, 2}  # real sets, not all empty


def test_a_bad_coverage_is_refused_naming_the_parameter(
    trained_gru_bundle, setb, test_client_cls, tmp_path
):
    with _client(test_client_cls, trained_gru_bundle, tmp_path) as client:
        for query in ("?coverage=1.5", "?coverage=abc", "?mondrian=true"):
            answer = client.post(f"/v1/predict{query}", json=_body(stays(setb, 0, 1)), headers=AUTH)
            assert answer.status_code == 422
            assert answer.json()["detail"][0]["loc"] == ["query", "coverage"]
        plain = client.post("/v1/predict", json=_body(stays(setb, 0, 1)), headers=AUTH).json()
    assert (
        "conformal" not in plain["predictions"][0] or plain["predictions"][0]["conformal"] is None
    )


def test_rest_intervals_equal_the_cli_intervals(
    trained_los_bundle, small_set_b, test_client_cls, tmp_path
):
    from typer.testing import CliRunner

    from medseq.cli import app
    from medseq.sources import physionet2012

    out = tmp_path / "los.csv"
    args = ["predict", str(trained_los_bundle), "--data", str(small_set_b), "-o", str(out)]
    cli = CliRunner().invoke(app, [*args, "--coverage", "0.8"])
    assert cli.exit_code == 0, cli.output
    frame = pd.read_csv(out).set_index("subject_id")
    data = physionet2012.read(small_set_b)
    with _client(test_client_cls, trained_los_bundle, tmp_path) as client:
        body = _body(stays(data, 0, 40))
        answer = client.post("/v1/predict?coverage=0.8", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    got = {int(p["id"][1:]): p for p in answer.json()["predictions"]}
    widths = set()
    for sid, row in frame.iterrows():
        lower, upper = got[sid]["conformal"]["interval"]
        assert got[sid]["value"] == pytest.approx(row["prediction"], abs=1e-5)
        assert (lower, upper) == (
            pytest.approx(row["lower"], abs=1e-5),
            pytest.approx(row["upper"], abs=1e-5),
        )
        widths.add(round(upper - lower, 6))
    assert len(widths) == 1 and widths.pop() > 0  # split conformal: one width, y_hat ± q
