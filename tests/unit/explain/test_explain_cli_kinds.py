"""`medseq explain` says which bundles it explains instead of failing deep inside."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medseq.cli import app


def _manifest(path, kind: str, dataset: str, task: str) -> None:
    manifest = {"model_config": {"kind": kind}, "provenance": {"dataset": dataset, "task": task}}
    (path / "medseq.json").write_text(json.dumps(manifest))


def test_explain_refuses_a_dataset_whose_spec_rules_it_out(tmp_path):
    _manifest(tmp_path, "smiles_rnn", "tox21", "toxicity")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", "tox21/tox21.csv.gz", "--subject", "1"]
    )
    assert result.exit_code == 2
    assert "not available for dataset 'tox21'" in result.output
    assert "SMILES token model has no explanation method" in " ".join(result.output.split())


def test_explain_refuses_a_model_kind_it_has_no_explanation_for(tmp_path):
    _manifest(tmp_path, "doctorai", "mimic3", "next_visit")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", "mimic3demo", "--subject", "1"]
    )
    assert result.exit_code == 2
    assert "covers ICU-grid, RETAIN, slice-" in result.output
    assert "'doctorai'" in result.output
