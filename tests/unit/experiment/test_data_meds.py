"""`medseq data meds`: every event reader writes MEDS with no Python (issue 18: MEDS as the
hub). Real Synthea FHIR R4 Bundles and real eICU demo tables (through a mapping file, on a
relative clock) are written as MEDS by the command and read back equal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eicu_small_mapping import MAPPING
from medseq.cli import app
from medseq.datasets.flat_tables import read_mapping
from medseq.paths import dataset_dir
from medseq.sources import fhir_r4, meds


def _same_events(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal up to MEDS's float32 values and microsecond times."""
    pd.testing.assert_frame_equal(got[["subject_id", "code"]], want[["subject_id", "code"]])
    np.testing.assert_allclose(got["time"], want["time"], rtol=0, atol=1e-9)
    expected = want["value"].to_numpy(np.float32).astype(np.float64)
    np.testing.assert_array_equal(got["value"].to_numpy(), expected)


def test_fhir_bundles_become_meds_through_the_command(synthea, synthea_folder, tmp_path):
    out = tmp_path / "meds"
    result = CliRunner().invoke(
        app, ["data", "meds", str(synthea_folder), str(out), "--subjects-per-shard", "30"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((out / "data").glob("*.parquet"))) == 3  # 80 patients, 30 a shard
    events, origin, _ = meds.read_events(out, start_prefix=fhir_r4.ENCOUNTER_PREFIX)
    assert origin.reindex(synthea.origin.index).equals(synthea.origin.astype("datetime64[us]"))
    _same_events(events, synthea.events)


def test_flat_tables_on_a_relative_clock_need_hour0_then_read_back(tmp_path):
    mapping = tmp_path / "eicu.toml"
    mapping.write_text(MAPPING.format(root=dataset_dir("eicu_demo")))
    runner = CliRunner()
    refused = runner.invoke(app, ["data", "meds", str(mapping), str(tmp_path / "no")])
    assert refused.exit_code != 0 and "--hour0" in refused.output
    assert "Traceback" not in refused.output and not (tmp_path / "no").exists()
    bad = runner.invoke(app, ["data", "meds", str(mapping), str(tmp_path / "no"), "--hour0", "x"])
    assert bad.exit_code != 0 and "--hour0 'x'" in bad.output

    out = tmp_path / "meds"
    result = runner.invoke(app, ["data", "meds", str(mapping), str(out), "--hour0", "2000-01-01"])
    assert result.exit_code == 0, result.output
    events, origin, _ = meds.read_events(out, start_prefix="HOSPITAL/")  # placed at hour 0
    want = read_mapping(mapping).events
    assert len(want) > 100_000 and want["time"].min() < 0  # pre-ICU entries stay before
    assert (origin == np.datetime64("2000-01-01", "us")).all()
    _same_events(events, want)


@pytest.mark.parametrize("dataset", ["mimic3", "physionet2012"])
def test_a_dataset_with_its_own_reader_is_refused_by_name(synthea_folder, tmp_path, dataset):
    result = CliRunner().invoke(
        app, ["data", "meds", str(synthea_folder), str(tmp_path / "m"), "--dataset", dataset]
    )
    assert result.exit_code != 0 and "reads event datasets" in result.output
    assert "flat_events" in result.output and "Traceback" not in result.output


def test_labels_of_a_relative_clock_line_up_with_its_meds_export(tmp_path):
    """`medseq cohort --labels-out --hour0` and `medseq data meds --hour0` on eICU tables:
    another MEDS tool given both finds the same samples (read back here as a MEDS label
    file over the MEDS export)."""
    import tomli_w

    from config_tasks import small_config
    from eicu_small_mapping import TASK

    mapping = tmp_path / "eicu.toml"
    mapping.write_text(MAPPING.format(root=dataset_dir("eicu_demo")))
    raw = small_config(
        "eicu-labels", "flat_events", mapping, "eicu_labels_hour0", TASK,
        features={}, model={"kind": "doctorai"},
    )  # fmt: skip
    config = tmp_path / "task.toml"
    config.write_text(tomli_w.dumps(raw))
    runner = CliRunner()
    labels = tmp_path / "labels.parquet"
    refused = runner.invoke(app, ["cohort", str(config), "--labels-out", str(labels)])
    assert refused.exit_code != 0 and "--hour0" in refused.output
    written = runner.invoke(
        app, ["cohort", str(config), "--labels-out", str(labels), "--hour0", "2000-01-01"]
    )
    assert written.exit_code == 0, written.output
    frame = pd.read_parquet(labels)
    assert (frame["prediction_time"] == pd.Timestamp("2000-01-02")).all()  # ICU start + 24 h
    n, n_pos = len(frame), int(frame["boolean_value"].sum())
    assert f"samples: {n} of" in written.output and f"positive: {n_pos}," in written.output

    root = tmp_path / "meds"
    exported = runner.invoke(
        app, ["data", "meds", str(mapping), str(root), "--hour0", "2000-01-01"]
    )
    assert exported.exit_code == 0, exported.output
    again = {
        "name": "eicu-meds-labels",
        "data": {"dataset": "meds_events", "train": str(root), "test": "", "task": "eicu_ml"},
        "task": {"meds_labels": {"path": str(labels), "value": "boolean_value"}},
        "model": {"kind": "doctorai"},
    }
    config2 = tmp_path / "meds_task.toml"
    config2.write_text(tomli_w.dumps(again))
    read_back = runner.invoke(app, ["cohort", str(config2)])
    assert read_back.exit_code == 0, read_back.output
    assert f"samples: {n} of {n} subjects, positive: {n_pos}," in read_back.output
