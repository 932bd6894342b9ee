"""`medseq explain` says which bundles it explains instead of failing deep inside."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medseq.cli import app


def test_explain_refuses_a_model_kind_it_has_no_explanation_for(tmp_path):
    (tmp_path / "medseq.json").write_text(json.dumps({"model_config": {"kind": "smiles_rnn"}}))
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", "tox21/tox21.csv.gz", "--subject", "1"]
    )
    assert result.exit_code == 2
    assert "covers ICU-grid, RETAIN and slice-stack bundles" in result.output
    assert "'smiles_rnn'" in result.output
