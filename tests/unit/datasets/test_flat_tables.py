"""Dataset "flat_events": eICU demo tables mapped by a TOML file, a config task, hospital-held-out
splits, and `medseq train` end to end on real eICU stays."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from config_tasks import TRAIN_SMALL, small_config, write_config
from eicu_small_mapping import MAPPING, TASK
from medseq.cli import app
from medseq.datasets.flat_tables import read_mapping, subject_groups
from medseq.datasets.registry import get_dataset
from medseq.paths import dataset_dir
from medseq.tasks.spec import define_task


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("eicu_map") / "eicu.toml"
    path.write_text(MAPPING.format(root=dataset_dir("eicu_demo")))
    return path


@pytest.fixture(scope="module")
def eicu(mapping_file):
    return read_mapping(mapping_file)


def test_per_stay_facts_sit_at_hour_zero_and_outcomes_at_their_offset(eicu):
    events = eicu.events
    assert events["subject_id"].nunique() == 1959
    hospital = events[events["code"].str.startswith("HOSPITAL/")]
    assert len(hospital) == 1959 and (hospital["time"] == 0).all()
    expired = events[events["code"] == "HOSPITAL_DISCHARGE/Expired"]
    assert len(expired) == 152  # SOURCE.md: 152 died in hospital
    # a stay whose discharge offset is 366 minutes (first row of patient.csv.gz) at 6.1 h
    first = events[(events["subject_id"] == 141764) & events["code"].str.startswith("HOSPITAL_D")]
    assert first["time"].tolist() == [pytest.approx(366 / 60)]
    # empty discharge statuses are not silently lost: counted as bad code rows
    assert eicu.report.counts.get("bad_row:code", 0) > 0


def test_group_protocol_holds_out_whole_hospitals(eicu):
    spec = get_dataset("flat_events")
    define_task("flat_events", "eicu_mortality_test", TASK)
    labels = spec.labels("eicu_mortality_test", eicu)
    assert 1500 < len(labels) < 1959 and 50 < labels.sum() < 152
    config = SimpleNamespace(split_seed=0, cv_folds=3, val_fraction=0.2)
    split = spec.protocols["group"](config, eicu, labels)
    groups = subject_groups(eicu, labels.index.to_numpy())
    test_hospitals = set(groups.loc[split.test])
    seen = set()
    for train, val in split.folds:
        assert not set(groups.loc[train]) & set(groups.loc[val])
        assert not (set(groups.loc[train]) | set(groups.loc[val])) & test_hospitals
        seen |= set(val.tolist())
    # every non-test stay is validated once; test and the rest cover every sample
    assert len(seen) + len(split.test) == len(labels)
    assert labels.loc[split.test].sum() > 0


def test_group_protocol_without_groups_says_what_is_missing(eicu):
    eicu_no_group = type(eicu)(
        events=eicu.events, origin=eicu.origin, report=eicu.report, group_prefix=""
    )
    with pytest.raises(ValueError, match=r"\[groups\] code_prefix"):
        subject_groups(eicu_no_group, np.array([141764]))


def test_mapping_file_errors_are_named(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('rot = "x"\n[[events]]\npath = "a.csv"\n')
    with pytest.raises(ValueError, match="rot"):
        read_mapping(bad)
    empty = tmp_path / "e.toml"
    empty.write_text('root = "."\n')
    with pytest.raises(ValueError, match=r"no \[\[events\]\]"):
        read_mapping(empty)
    with pytest.raises(ValueError, match="mapping file"):
        read_mapping(tmp_path / "events.csv")


def test_train_runs_on_hospital_held_out_eicu_stays(mapping_file, tmp_path):
    features = {"code_prefixes": ["eicu.", "ICU_ADMISSION/"], "min_count": 5, "max_visits": 10}
    raw = small_config(
        "eicu-small", "flat_events", mapping_file, "eicu_mortality_small", TASK,
        features=features, model={"kind": "doctorai", "embedding_size": 8, "hidden_size": 8},
        protocol="group", train_options={**TRAIN_SMALL, "batch_size": 64},
    )  # fmt: skip
    config = write_config(tmp_path / "eicu.toml", raw)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    point, low, high = saved["test_metrics"]["auroc"]
    assert 0.0 <= low <= point <= high <= 1.0
    lines = (out / "test_predictions.csv").read_text().splitlines()
    assert lines[0].startswith("subject_id") and len(lines) > 100
