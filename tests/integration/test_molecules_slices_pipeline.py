"""Tox21 and AdrenalMNIST3D end to end through ``run_experiment``, on small real subsets.

Each run reads the real file, splits by the dataset's protocol, fits the featurizer on the
training ids, trains a tiny model (with the dataset's augmentation), tests once and saves a
bundle; the reloaded bundle must predict exactly what the trained ensemble predicted.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medseq.experiment import parse_config, run_experiment


def _run(raw: dict, out: Path):
    from dataclasses import replace

    config = replace(parse_config(raw), output_dir=str(out))
    return run_experiment(config, progress=False)


def _reload_predicts_the_same(result, out: Path, spec_name: str, ids: np.ndarray, y_cols):
    from medseq.bundle import load_bundle
    from medseq.datasets.registry import get_dataset
    from medseq.experiment.data import read_set

    bundle = load_bundle(result.bundle_dir)
    spec = get_dataset(spec_name)
    data = read_set(spec_name, bundle.provenance["files"]["train"]["path"])
    pred = bundle.predict_arrays(spec.transform(bundle.featurizer, data, ids))
    saved = pd.read_csv(out / "test_predictions.csv")
    np.testing.assert_allclose(
        pred.reshape(len(ids), -1), saved[y_cols].to_numpy(), rtol=1e-6, atol=1e-7
    )
    return bundle


def test_tox21_random_split_through_the_runner(tmp_path):
    pytest.importorskip("rdkit")
    raw = {
        "name": "tox21-tiny",
        "data": {
            "dataset": "tox21",
            "train": "tox21",
            "test": "",
            "task": "toxicity",
            "protocol": "random",
            "max_subjects": 600,
        },
        "features": {"enumerate": True},
        "model": {"kind": "smiles_rnn", "embedding_size": 8, "hidden_size": 8, "attention_size": 8},
        "train": {
            "epochs": 2,
            "batch_size": 64,
            "lr": 3e-3,
            "monitor": "auroc",
            "num_threads": 1,
            "progress": False,
        },
        "evaluate": {"n_boot": 20},
    }
    result = _run(raw, tmp_path)
    assert result.task == "multilabel"
    assert 0.3 < result.test_metrics["mean_auroc"][0] < 1.0
    per_task = [k for k in result.test_metrics if k.startswith("auroc_")]
    assert len(per_task) == 12
    saved = pd.read_csv(tmp_path / "test_predictions.csv")
    assert len(saved) == 60  # 10 % of 600
    bundle = _reload_predicts_the_same(
        result,
        tmp_path,
        "tox21",
        saved["subject_id"].to_numpy(),
        [c for c in saved.columns if c.startswith("p_")],
    )
    assert bundle.featurizer.kind == "smiles" and bundle.class_names[0] == "NR-AR"


def test_adrenal_official_split_through_the_runner(tmp_path):
    from medseq.paths import dataset_dir
    from medseq.sources import medmnist3d

    # A real subset in the official layout: 160 train, 40 val, 60 test volumes.
    data = medmnist3d.read(dataset_dir("adrenalmnist3d"))
    arrays = {}
    for part, n in zip(medmnist3d.SPLITS, (160, 40, 60), strict=True):
        ids = data.ids(part)[:n]
        arrays[f"{part}_images"] = data.images[ids]
        arrays[f"{part}_labels"] = data.labels[ids].to_numpy()[:, None].astype(np.uint8)
    path = tmp_path / "adrenal_small.npz"
    np.savez(path, **arrays)
    raw = {
        "name": "adrenal-tiny",
        "data": {
            "dataset": "adrenalmnist3d",
            "train": str(path),
            "test": "",
            "task": "adrenal",
            "protocol": "official",
        },
        "features": {"augment": True, "max_shift": 1},
        "model": {
            "kind": "slice_rnn",
            "channels": [4, 8],
            "slice_embedding_size": 16,
            "hidden_size": 8,
        },
        "train": {
            "epochs": 2,
            "batch_size": 32,
            "lr": 3e-3,
            "monitor": "auroc",
            "num_threads": 1,
            "progress": False,
        },
        "evaluate": {"n_boot": 20},
    }
    out = tmp_path / "run"
    result = _run(raw, out)
    assert result.task == "binary" and 0.0 <= result.test_metrics["auroc"][0] <= 1.0
    saved = pd.read_csv(out / "test_predictions.csv")
    assert saved["subject_id"].tolist() == list(range(200, 260))
    bundle = _reload_predicts_the_same(
        result, out, "adrenalmnist3d", saved["subject_id"].to_numpy(), ["y_pred"]
    )
    assert bundle.model_config.kind == "slice_rnn"

    # `medseq explain` on a slice bundle: attention and occlusion per slice, figure and JSON.
    from typer.testing import CliRunner

    from medseq.cli import app

    cli = CliRunner().invoke(
        app,
        [
            "explain",
            result.bundle_dir,
            "--data",
            str(path),
            "--subject",
            "205",
            "-o",
            str(tmp_path / "why"),
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert "sample 205: risk" in cli.output
    summary = json.loads((tmp_path / "why" / "sample-205.json").read_text())
    assert len(summary["attention"]) == 28 and abs(sum(summary["attention"]) - 1) < 1e-5
    assert np.isfinite(summary["occlusion_logit_drop"]).all()
    empty = [d for d, f in enumerate(summary["foreground_share"]) if f == 0]
    assert empty and all(abs(summary["occlusion_logit_drop"][d]) < 1e-5 for d in empty)
    assert (tmp_path / "why" / "sample-205-slices.png").read_bytes()[:4] == b"\x89PNG"
