"""Explanations of models trained on real PhysioNet 2012 stays: faithful, convergent, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from medseq.bundle import load_bundle, save_bundle
from medseq.cli import app
from medseq.explain import deletion_check, global_importance, integrated_gradients


def _features(bundle, data, n: int, offset: int = 0):
    ids = np.sort(data.static.index.to_numpy())[offset : offset + n]
    return ids, bundle.featurizer.transform(data.events, data.static, ids)


def test_top_attributed_inputs_move_the_prediction_more_than_random(trained_gru_bundle, set_b):
    bundle = load_bundle(trained_gru_bundle)
    _, features = _features(bundle, set_b, 150)
    attr = integrated_gradients(bundle, features, n_steps=32)
    assert np.median(attr.relative_delta) < 0.01
    result = deletion_check(bundle, features, attr, k=10, n_random=5)
    summary = result.summary()
    assert summary["mean_change_top"] > 3 * summary["mean_change_random"], summary
    assert result.win_rate > 0.8, summary
    importance = global_importance(attr)
    assert len(importance) >= 37 and importance["share"].sum() == pytest.approx(1.0)


def test_integrated_gradients_on_a_trained_grud(trained_grud_bundle, set_b):
    bundle = load_bundle(trained_grud_bundle)
    _, features = _features(bundle, set_b, 40)
    attr = integrated_gradients(bundle, features, n_steps=64)
    assert np.median(attr.relative_delta) < 0.02
    result = deletion_check(bundle, features, attr, k=10, n_random=5)
    assert result.summary()["mean_change_top"] > result.summary()["mean_change_random"]


def test_explain_command_writes_heatmaps_and_json(trained_gru_bundle, physionet2012_dir, tmp_path):
    subject = 142675  # the first stay of set B
    out = tmp_path / "explain"
    args = ["explain", str(trained_gru_bundle), "--data", str(physionet2012_dir / "set-b.tar.gz")]
    result = CliRunner().invoke(app, [*args, "--subject", str(subject), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "convergence delta" in result.output
    summary = json.loads((out / f"subject-{subject}.json").read_text())
    assert abs(summary["relative_convergence_delta"]) < 0.05
    assert summary["attention"] is None  # mean pooling: no attention to show
    for name in ("integrated_gradients", "occlusion"):
        assert (out / f"subject-{subject}-{name}.png").read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(app, [*args, "--subject", "1", "-o", str(out)])
    assert bad.exit_code == 2 and "no subject_id 1" in bad.output


def _uncalibrated_copy(source, target):
    """`medseq train` stores a calibration; drop it to exercise fitting one in the report."""
    bundle = load_bundle(shutil.copytree(source, target))
    bundle.calibration = None
    save_bundle(bundle, target)
    return target


def test_report_command_fits_calibration_on_a_validation_set(
    trained_gru_bundle, physionet2012_dir, tmp_path
):
    bundle_dir = _uncalibrated_copy(trained_gru_bundle, tmp_path / "bundle")
    args = [
        "report",
        str(bundle_dir),
        "--data",
        str(physionet2012_dir / "set-b.tar.gz"),
        "--validation",
        str(physionet2012_dir / "set-a.tar.gz"),
        "--n-boot",
        "50",
        "--max-subjects",
        "400",
        "-o",
        str(tmp_path / "r.html"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Caution" in result.output  # set A is the training file: said, not hidden
    bundle = load_bundle(bundle_dir)
    assert bundle.calibration["method"] == "temperature"
    assert bundle.model_card["calibration"] == bundle.calibration
    assert (tmp_path / "r_figures" / "calibration.png").is_file()
    fresh = _uncalibrated_copy(trained_gru_bundle, tmp_path / "fresh")
    same = ["report", str(fresh), *args[2:4], "--validation", args[3], *args[6:]]
    refused = CliRunner().invoke(app, same)  # refused before any data is read
    assert refused.exit_code == 2 and "evaluation set itself" in refused.output


def test_table_and_figure_of_a_real_stay_share_one_ranking(trained_gru_bundle, set_b):
    """Issue 20: the printed table and the figure tell one story, summaries included."""
    from medseq.explain import explain_stay
    from medseq.explain.contributions import stay_contributions

    bundle = load_bundle(trained_gru_bundle)
    ids, features = _features(bundle, set_b, 1)
    expl = explain_stay(bundle, features, int(ids[0]), events=set_b.events, static=set_b.static)
    ig = expl.integrated_gradients
    ranking = stay_contributions(ig)
    # every input accounted for once: the rows add up to the whole attribution
    assert ranking["contribution"].sum() == pytest.approx(float(ig.total()[0]), abs=1e-4)
    grid = dict(zip(ig.feature_names, ig.values[0].sum(axis=0), strict=True))
    for row in ranking.itertuples():
        assert row.from_grid == pytest.approx(grid.get(row.variable, 0.0), abs=1e-6)
    size = ranking["contribution"].abs().to_numpy()
    assert (np.diff(size) <= 1e-12).all()  # ranked by the net contribution's size
    top = expl.top_variables
    assert list(top["variable"]) == list(ranking["variable"][: len(top)])  # the same order
    assert (top["from_summaries"].abs() > 0).any()  # summary fusion is shown, not hidden
    assert "time grid" in expl.summary() and "%" in expl.to_dict()["split"]
    assert expl.figures["integrated_gradients"][:4] == b"\x89PNG"
