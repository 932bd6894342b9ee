"""`medseq federate` beyond PhysioNet 2012: two-site runs on CinC 2017 and Tox21.

Each run is tiny (two sites, a few dozen samples each, two rounds, a small model) and goes
through the CLI as a user would; the bundle it writes is then scored by `medseq evaluate`.
These show that the pieces fit for every dataset whose spec names a partition, not how
well the model does.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseq.cli import app

pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")

runner = CliRunner()


def _cinc_folder(dest: Path, first: int, count: int) -> Path:
    """``count`` recordings of the first CinC part, from the ``first``-th on, with labels."""
    from medseq.paths import dataset_dir

    root = dataset_dir("physionet2017")
    dest.mkdir(parents=True)
    shutil.copy(root / "REFERENCE-v3.csv", dest / "REFERENCE-v3.csv")
    wanted = {f"A{n:05d}" for n in range(first + 1, first + count + 1)}
    with tarfile.open(root / "training2017-A00.tar.xz", "r:xz") as tar:
        for member in tar:
            stem = Path(member.name).stem
            if stem in wanted:
                (dest / Path(member.name).name).write_bytes(tar.extractfile(member).read())
            elif stem > max(wanted):
                break
    return dest


def _tox21_file(dest: Path, rows: int) -> Path:
    """The first ``rows`` molecules of Tox21 as their own file (reads, scaffolds and
    evaluation then take seconds, not minutes)."""
    import pandas as pd

    from medseq.paths import dataset_dir

    frame = pd.read_csv(dataset_dir("tox21") / "tox21.csv.gz", nrows=rows)
    frame.to_csv(dest, index=False, compression="gzip")
    return dest


def _run(config: Path, data: Path) -> tuple[dict, str]:
    result = runner.invoke(app, ["federate", str(config)])
    assert result.exit_code == 0, result.output
    saved = json.loads((config.parent / "run" / "results.json").read_text())
    bundle = saved["bundle_dir"]
    scored = runner.invoke(app, ["evaluate", bundle, "--data", str(data), "--n-boot", "20"])
    assert scored.exit_code == 0, scored.output
    return saved, scored.output


@pytest.mark.slow
def test_cinc2017_two_dirichlet_sites_train_and_the_bundle_evaluates(tmp_path):
    train = _cinc_folder(tmp_path / "train", 0, 40)
    test = _cinc_folder(tmp_path / "test", 100, 16)
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""
name = "cinc-tiny"
output_dir = "{tmp_path / "run"}"
[data]
dataset = "cinc2017"
task = "rhythm"
train = "{train}"
test = "{test}"
[features]
kind = "beats"
rhythm_summary = true
[model]
kind = "conv_rnn"
conv_channels = []
conv_strides = []
hidden_size = 8
static_hidden_size = 8
[train]
lr = 3e-3
batch_size = 16
num_threads = 1
[federated]
partition = "dirichlet"
n_sites = 2
dirichlet_alpha = 1.0
rounds = 2
min_fit_clients = 2
"""
    )
    saved, scored = _run(config, test)
    assert sorted(saved["sites"]) == ["site_0", "site_1"]
    assert [r["round"] for r in saved["history"]] == [1, 2]
    assert all(r["n_results"] == 2 and r["n_failures"] == 0 for r in saved["history"])
    assert saved["test_auroc"] is not None and 0.0 <= saved["test_auroc"] <= 1.0
    assert "challenge_f1" in scored  # the dataset's own metric, from its spec


@pytest.mark.slow
def test_tox21_two_scaffold_sites_train_and_the_bundle_evaluates(tmp_path):
    data = _tox21_file(tmp_path / "tox21.csv.gz", 500)
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""
name = "tox21-tiny"
output_dir = "{tmp_path / "run"}"
[data]
dataset = "tox21"
task = "toxicity"
train = "{data}"
[features]
max_length = 120
[model]
kind = "smiles_rnn"
embedding_size = 16
hidden_size = 16
[train]
lr = 3e-3
batch_size = 32
num_threads = 1
[federated]
partition = "scaffold"
n_sites = 2
rounds = 2
max_subjects_per_site = 150
min_fit_clients = 2
"""
    )
    saved, scored = _run(config, data)
    assert sorted(saved["sites"]) == ["site_0", "site_1"]
    assert all(r["n_results"] == 2 for r in saved["history"])
    assert 0.0 <= saved["best_val_auroc"] <= 1.0
    manifest = json.loads((Path(saved["bundle_dir"]) / "medseq.json").read_text())
    assert manifest["provenance"]["dataset"] == "tox21"
    assert manifest["provenance"]["federated"]["partition"] == "scaffold"
    assert len(manifest["class_names"]) == 12
    assert "auroc" in scored


def test_a_dataset_without_partitions_is_refused_by_medseq_federate(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(
        '[data]\ndataset = "bonn_eeg"\ntask = "seizure"\ntrain = "bonn_eeg"\n'
        '[federated]\npartition = "dirichlet"\n'
    )
    result = runner.invoke(app, ["federate", str(config)])
    assert result.exit_code == 2
    assert (
        "medseq federate is not available for dataset 'bonn_eeg': the segments carry no "
        "hospital, subject or recording labels to split into sites"
        in " ".join(result.output.split())
    )
