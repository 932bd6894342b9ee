"""`medseq explain` says which bundles it explains instead of failing deep inside."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medseq.cli import app


def _manifest(path, kind: str, dataset: str, task: str) -> None:
    manifest = {"model_config": {"kind": kind}, "provenance": {"dataset": dataset, "task": task}}
    (path / "medseq.json").write_text(json.dumps(manifest))


def test_explain_refuses_a_dataset_whose_spec_rules_it_out(tmp_path, monkeypatch):
    from dataclasses import replace

    from medseq.datasets import get_dataset

    sentence = "a SMILES token model has no explanation method in this test"
    ruled_out = replace(get_dataset("tox21"), unsupported={"explain": sentence})
    monkeypatch.setattr("medseq.capabilities.get_dataset", lambda name: ruled_out)
    _manifest(tmp_path, "smiles_rnn", "tox21", "toxicity")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", "tox21/tox21.csv.gz", "--subject", "1"]
    )
    assert result.exit_code == 2
    assert "not available for dataset 'tox21'" in result.output
    assert sentence in " ".join(result.output.split())


def test_step_and_target_are_refused_where_they_mean_nothing(tmp_path):
    _manifest(tmp_path, "rnn_classifier", "physionet2012", "mortality")
    args = ["explain", str(tmp_path), "--data", "x", "--subject", "1"]
    result = CliRunner().invoke(app, [*args, "--step", "3"])
    assert (
        result.exit_code == 2 and "--step applies to models with a class per step" in result.output
    )
    result = CliRunner().invoke(app, [*args, "--target", "died"])
    assert (
        result.exit_code == 2 and "--target applies to token and feature-sequence" in result.output
    )


def test_explain_refuses_a_model_kind_it_has_no_explanation_for(tmp_path):
    _manifest(tmp_path, "doctorai", "mimic3", "next_visit")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", "mimic3demo", "--subject", "1"]
    )
    assert result.exit_code == 2
    assert "covers ICU-grid, RETAIN, slice-" in result.output
    assert "'doctorai'" in result.output
