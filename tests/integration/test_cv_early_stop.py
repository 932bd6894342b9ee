"""Cross-validation with a separate early-stopping part, on real data: the members never
see their fold's validation part before it is scored, and results.json carries the spread
of the out-of-fold metrics over folds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from medseq.bundle import load_bundle
from medseq.experiment import parse_config, run_experiment
from medseq.experiment.runner import _load_splits
from medseq.paths import dataset_dir
from medseq.tasks import histories
from medseq.training import Trainer
from small_runs import SMALL_RUN


def test_members_stop_on_the_inner_part_and_results_hold_each_fold(tmp_path, monkeypatch):
    raw = {
        **SMALL_RUN,
        "data": {"max_subjects": 400, "cv_folds": 2, "inner_val_fraction": 0.25, "test": ""},
        "train": {**SMALL_RUN["train"], "epochs": 2},
    }
    config = replace(parse_config(raw), output_dir=str(tmp_path))
    folds, _ = _load_splits(config)
    stopped_on = []
    real_fit = Trainer.fit

    def spy(self, model, train, val, **kwargs):  # the real fit, recording what it stopped on
        stopped_on.append((len(train["y"]), len(val["y"])))
        return real_fit(self, model, train, val, **kwargs)

    monkeypatch.setattr(Trainer, "fit", spy)
    result = run_experiment(config, progress=False)
    expected = [(len(f.train.subject_ids), len(f.early_stop.subject_ids)) for f in folds]
    assert stopped_on == expected
    for fold in folds:
        assert len(fold.early_stop.subject_ids) != len(fold.val.subject_ids)
        assert not np.intersect1d(fold.early_stop.subject_ids, fold.val.subject_ids).size
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["val_folds"]) == 2
    mean, sd = saved["val_fold_mean_sd"]["auroc"]
    fold_aurocs = [f["auroc"] for f in saved["val_folds"]]
    assert mean == np.mean(fold_aurocs) and sd >= 0
    assert saved["val_metrics"]["auroc"] == result.val_metrics["auroc"]
    assert 0.5 < saved["val_metrics"]["auroc"] < 1.0  # trained, scored on unseen stays
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.metrics["validation_fold_mean_sd"]["auroc"] == [mean, sd]
    provenance = bundle.provenance
    assert provenance["split"]["inner_val_fraction"] == 0.25
    assert provenance["n_subjects"]["early_stop"] == len(folds[0].early_stop.subject_ids)


def test_admissions_of_one_patient_stay_on_one_side_of_the_inner_split():
    raw = {
        "name": "retain-inner",
        "data": {"dataset": "mimic3", "train": str(dataset_dir("mimic3demo")), "test": "",
                 "task": "mortality", "protocol": "subject", "cv_folds": 2,
                 "inner_val_fraction": 0.3},
        "model": {"kind": "retain"},
    }  # fmt: skip
    folds, _ = _load_splits(parse_config(raw))
    for fold in folds:
        train = set(histories.subject_of(fold.train.subject_ids, "mortality"))
        stop = set(histories.subject_of(fold.early_stop.subject_ids, "mortality"))
        val = set(histories.subject_of(fold.val.subject_ids, "mortality"))
        assert stop and train and not (train & stop) and not (stop & val)
        assert pd.Index(fold.fitting().subject_ids).is_unique


def test_cli_overrides_reach_the_run_and_its_record(tmp_path):
    from typer.testing import CliRunner

    from medseq.cli import app

    config = tmp_path / "small.toml"
    config.write_text(
        'name = "small-cli"\n[data]\nmax_subjects = 1000\n'
        '[model]\ncell = "gru"\nhidden_size = 8\n[train]\nepochs = 6\nprogress = false\n'
        "[evaluate]\nn_boot = 20\n"
    )
    sets = ["data.max_subjects=300", "data.cv_folds=2", "data.inner_val_fraction=0.2",
            'data.test=""', "train.epochs=1"]  # fmt: skip
    args = ["train", str(config), "-o", str(tmp_path / "run")]
    cli = CliRunner().invoke(app, args + [x for s in sets for x in ("--set", s)])
    assert cli.exit_code == 0, cli.output
    assert "(2 folds: " in cli.output
    saved = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert saved["data"]["max_subjects"] == 300 and saved["data"]["inner_val_fraction"] == 0.2
    assert saved["train"]["epochs"] == 1
    assert "max_subjects = 1000" in config.read_text()  # the file itself is unchanged
    bad = CliRunner().invoke(app, ["train", str(config), "--set", "train.epochs"])
    assert bad.exit_code != 0 and "must look like section.key=value" in bad.output


def test_model_card_shows_the_fold_spread_and_how_folds_were_held_out(tmp_path):
    from medseq.report.model_card import _cross_validation, _cross_validation_md

    raw = {
        **SMALL_RUN,
        "data": {"max_subjects": 300, "cv_folds": 3, "inner_val_fraction": 0.2, "test": ""},
        "train": {**SMALL_RUN["train"], "epochs": 1},
    }
    result = run_experiment(replace(parse_config(raw), output_dir=str(tmp_path)), progress=False)
    cv = _cross_validation(load_bundle(result.bundle_dir))
    assert cv["folds"] == 3 and "20% of each fold's training subjects" in cv["early_stopping"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert cv["metrics"]["auroc"]["mean"] == saved["val_fold_mean_sd"]["auroc"][0]
    assert cv["metrics"]["auroc"]["pooled"] == saved["val_metrics"]["auroc"]
    text = "\n".join(_cross_validation_md(cv))
    assert "## Cross-validation (3 folds" in text and "| auroc |" in text and " ± " in text
    from medseq.report import ReportConfig, build_report

    page = tmp_path / "report.html"
    config = ReportConfig(n_boot=20, max_subjects=300, n_explain=20, ig_steps=4)
    build_report(result.bundle_dir, dataset_dir("physionet2012") / "set-b.tar.gz",
                 output=page, config=config)  # fmt: skip
    html = page.read_text()
    assert 'id="cv-table"' in html and "Cross-validation on the training data (3 folds)" in html
    mean, sd = saved["val_fold_mean_sd"]["auroc"]
    assert f"{mean:.3f} ± {sd:.3f}" in html
