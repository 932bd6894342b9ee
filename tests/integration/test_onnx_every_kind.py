"""ONNX export of every model kind on real data, and ``medseq predict --runtime onnx``.

One contract over all model kinds: a tiny bundle (few units, untrained: parity is about
the graph, not accuracy) is built on a real slice of its dataset, featurised through the
dataset spec (``read``, ``fit_featurizer``, ``transform``), exported, and ONNX Runtime must
give torch's ``Bundle.predict_arrays`` to 1e-5: on the whole slice, and on the shortest and
the longest sample alone (their own padded length, so a dynamic time axis is exercised).
Then, per dataset, the CLI round trip: ``medseq export`` + ``medseq predict --runtime onnx``
against ``medseq predict``, and the import cost of export and the service. Last,
``medseq report`` on the same bundles for the dataset kinds without a report test elsewhere.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medseq.bundle import Bundle, BundleError, save_bundle
from medseq.cli import app
from medseq.datasets.registry import get_dataset
from medseq.models import build_model, model_config_from_dict
from medseq.paths import dataset_dir
from medseq.serving.onnx import OnnxPredictor, export_onnx

TOL = 1e-5
N_ICU, N_CINC, N_TOX = 60, 12, 120
MIT_RECORDS = ("100", "101")

# --- real slices, written in each dataset's own layout so `--data` reads them -----------


def _icu_file(root: Path) -> Path:
    source = dataset_dir("physionet2012")
    target = root / "set-b.tar.gz"
    with tarfile.open(source / "set-b.tar.gz") as tar, tarfile.open(target, "w:gz") as out:
        kept = 0
        for member in tar:
            if member.isfile() and member.name.endswith(".txt"):
                out.addfile(member, tar.extractfile(member))
                kept += 1
                if kept == N_ICU:
                    break
    outcomes = (source / "Outcomes-b.txt").read_text().splitlines()
    ids = {line.split(",")[0] for line in outcomes[1:]}
    with tarfile.open(target) as tar:
        present = {Path(m.name).stem for m in tar if m.isfile()}
    rows = [outcomes[0]] + [r for r in outcomes[1:] if r.split(",")[0] in present & ids]
    (root / "Outcomes-b.txt").write_text("\n".join(rows) + "\n")
    return target


def _cinc_folder(root: Path) -> Path:
    source = dataset_dir("physionet2017")
    folder = root / "cinc"
    folder.mkdir()
    names: set[str] = set()
    with tarfile.open(source / "training2017-A00.tar.xz") as tar:
        for member in tar:
            stem = Path(member.name).stem
            if not member.isfile():
                continue
            if stem not in names and len(names) == N_CINC:
                break
            names.add(stem)
            (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    shutil.copy(source / "REFERENCE-v3.csv", folder / "REFERENCE-v3.csv")
    return folder


def _mit_folder(root: Path) -> Path:
    source, folder = dataset_dir("mitdb_full"), root / "mit"
    folder.mkdir()
    for record in MIT_RECORDS:
        for suffix in (".hea", ".atr", ".dat.xz"):
            os.symlink(source / f"{record}{suffix}", folder / f"{record}{suffix}")
    (folder / "RECORDS").write_text("\n".join(MIT_RECORDS) + "\n")
    return folder


def _tox_file(root: Path) -> Path:
    with gzip.open(dataset_dir("tox21") / "tox21.csv.gz", "rt") as f:
        frame = pd.read_csv(f, dtype=str, keep_default_na=False, nrows=N_TOX)
    target = root / "tox21_small.csv"
    frame.to_csv(target, index=False)
    return target


def _adrenal_file(root: Path) -> Path:
    from medseq.sources import medmnist3d

    data = medmnist3d.read(dataset_dir("adrenalmnist3d"))
    arrays = {}
    for part, n in zip(medmnist3d.SPLITS, (20, 10, 20), strict=True):
        ids = data.ids(part)[:n]
        arrays[f"{part}_images"] = data.images[ids]
        arrays[f"{part}_labels"] = data.labels[ids].to_numpy()[:, None].astype(np.uint8)
    target = root / "adrenal_small.npz"
    np.savez(target, **arrays)
    return target


FILES = {
    "physionet2012": _icu_file,
    "cinc2017": _cinc_folder,
    "mitbih": _mit_folder,
    "tox21": _tox_file,
    "adrenalmnist3d": _adrenal_file,
    "mimic3": lambda root: dataset_dir("mimic3demo"),
}
TASKS = {
    "physionet2012": "mortality",
    "cinc2017": "rhythm",
    "mitbih": "beat",
    "tox21": "toxicity",
    "adrenalmnist3d": "adrenal",
}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """dataset -> (path, data) of its real slice, read once by the dataset's own reader."""
    root = tmp_path_factory.mktemp("onnx-data")
    cache: dict[str, tuple[Path, object]] = {}

    def get(name: str):
        if name not in cache:
            path = FILES[name](root)
            cache[name] = (path, get_dataset(name).read(path))
        return cache[name]

    return get


# --- one tiny bundle per model kind --------------------------------------------------------

ICU = ("physionet2012", "mortality", {})
CINC_SIGNAL = ("cinc2017", "rhythm", {"kind": "signal", "max_seconds": 61.0})
CINC_BEATS = ("cinc2017", "rhythm", {"kind": "beats", "rhythm_summary": True})
MIT = ("mitbih", "beat", {"context_beats": 8})
TOX = ("tox21", "toxicity", {})
HISTORIES = {"level": "three_digit"}
TINY = {"hidden_size": 4}
BEATS = {"kind": "conv_rnn", "conv_channels": [], "conv_strides": [], **TINY}
CONV = {"kind": "conv_rnn", "conv_channels": [4, 4], "conv_strides": [3, 4], "kernel_size": 5}
CONV = {**CONV, **TINY}
SMILES = {"kind": "smiles_rnn", "embedding_size": 4, "attention_size": 4, **TINY}
SLICES = {"kind": "slice_rnn", "channels": [2, 4], "slice_embedding_size": 4, **TINY}
RETAIN = {"kind": "retain", "embedding_size": 4, "alpha_hidden_size": 4, "beta_hidden_size": 4}
DOCTORAI = {"kind": "doctorai", "embedding_size": 4, **TINY}

#: case -> (dataset, task, features, model, n_members); GRU-D has one member because its
#: export unrolls the recurrence over the 48 hours (about 10 s per member).
CASES = {
    "rnn": (*ICU, {**TINY, "cell": "rnn"}, 2),
    "rnn-bidirectional": (*ICU, {**TINY, "cell": "rnn", "bidirectional": True}, 2),
    "lstm-attention": (*ICU, {**TINY, "cell": "lstm", "pooling": "attention"}, 2),
    "lstm-bidirectional": (*ICU, {**TINY, "cell": "lstm", "bidirectional": True}, 2),
    "gru-2-layers-mean": (*ICU, {**TINY, "num_layers": 2, "pooling": "mean"}, 2),
    "gru-bidirectional-last": (*ICU, {**TINY, "bidirectional": True, "pooling": "last"}, 2),
    "grud": (*ICU, {**TINY, "kind": "grud"}, 1),
    "conv_rnn-recording-signal": (*CINC_SIGNAL, CONV, 2),
    "conv_rnn-sequence-signal": (*CINC_SIGNAL, {**CONV, "mode": "sequence"}, 2),
    "conv_rnn-recording-beats-static": (
        *CINC_BEATS,
        {**BEATS, "bidirectional": True, "attention_size": 4, "static_hidden_size": 4},
        2,
    ),
    "conv_rnn-recording-mitbih": (*MIT, {**BEATS, "pooling": "last"}, 2),
    "conv_rnn-sequence-mitbih": (*MIT, {**BEATS, "mode": "sequence", "bidirectional": True}, 2),
    "smiles_rnn": (*TOX, SMILES, 2),
    "smiles_rnn-enumerated": ("tox21", "toxicity", {"n_enumerations": 2}, SMILES, 2),
    "slice_rnn": ("adrenalmnist3d", "adrenal", {}, SLICES, 2),
    "retain": ("mimic3", "mortality", HISTORIES, RETAIN, 2),
    "doctorai": ("mimic3", "next_visit", HISTORIES, DOCTORAI, 2),
}


@pytest.fixture(scope="module")
def bundles(real, tmp_path_factory):
    """case -> (bundle directory, Bundle, features of the whole slice, ids)."""
    root = tmp_path_factory.mktemp("onnx-bundles")
    cache: dict[str, tuple] = {}

    def get(case: str):
        if case not in cache:
            cache[case] = _build(case, root / case, *real(CASES[case][0]))
        return cache[case]

    return get


def _build(case: str, out: Path, path: Path, data) -> tuple:
    dataset, task, features, model, n_members = CASES[case]
    spec = get_dataset(dataset)
    ids = spec.labels(task, data).index.to_numpy()
    featurizer = spec.fit_featurizer(features, data, ids)
    task_type = spec.task_type(task)
    n_outputs = len(spec.class_names(task, data)) if task_type != "binary" else 1
    sizes = spec.model_sizes(featurizer)
    config = model_config_from_dict({**model, **sizes, "n_outputs": n_outputs})
    torch.manual_seed(0)
    members = [build_model(config).eval() for _ in range(n_members)]
    bundle = Bundle(
        config, featurizer, members, task=task_type,
        threshold=0.5 if task_type == "binary" else None,
        provenance={"dataset": dataset, "task": task},
        class_names=spec.class_names(task, data) if task_type != "binary" else None,
    )  # fmt: skip
    save_bundle(bundle, out)
    export_onnx(out)
    return out, bundle, spec.transform(featurizer, data, ids), ids


def _max_diff(bundle_dir: Path, bundle: Bundle, features: dict) -> float:
    onnx_scores = OnnxPredictor(bundle_dir, n_threads=1).predict_arrays(features)
    torch_scores = bundle.predict_arrays(features)
    assert onnx_scores.shape == torch_scores.shape
    return float(np.abs(onnx_scores - torch_scores).max())


@pytest.mark.parametrize("case", list(CASES))
def test_every_model_kind_exports_with_parity_on_real_inputs(case, bundles, real):
    bundle_dir, bundle, features, ids = bundles(case)
    dataset = CASES[case][0]
    diffs = {"all": _max_diff(bundle_dir, bundle, features)}
    lengths = features.get("lengths")
    if lengths is not None:  # each extreme alone: its own padded length through the graph
        spec, data = get_dataset(dataset), real(dataset)[1]
        for name, where in (("shortest", lengths.argmin()), ("longest", lengths.argmax())):
            alone = spec.transform(bundle.featurizer, data, ids[[where]])
            assert int(alone["lengths"][0]) == int(lengths[where])
            diffs[name] = _max_diff(bundle_dir, bundle, alone)
        assert lengths.min() < lengths.max(), "the slice must hold different lengths"
    shape = features[next(iter(features))].shape
    span = f"lengths {lengths.min()}-{lengths.max()}" if lengths is not None else ""
    print(f"\nONNX parity {case}: max |onnx - torch| {max(diffs.values()):.1e} on {shape} {span}")
    assert max(diffs.values()) <= TOL


# --- the CLI round trip, one bundle per dataset ----------------------------------------------

#: name -> case: every model kind of CASES at least once (issue 14: `medseq predict
#: --runtime onnx` for each kind), and each dataset kind.
ROUND_TRIPS = {
    "physionet2012": "gru-2-layers-mean",
    "physionet2012-rnn": "rnn",
    "physionet2012-lstm": "lstm-attention",
    "physionet2012-grud": "grud",
    "cinc2017-sequence": "conv_rnn-sequence-signal",
    "cinc2017-beats": "conv_rnn-recording-beats-static",
    "mitbih-sequence": "conv_rnn-sequence-mitbih",
    "cinc2017": "conv_rnn-recording-signal",
    "mitbih": "conv_rnn-recording-mitbih",
    "tox21": "smiles_rnn-enumerated",
    "adrenalmnist3d": "slice_rnn",
    "mimic3-retain": "retain",
    "mimic3-doctorai": "doctorai",
}


def _cli(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_cli_export_and_onnx_predict_match_torch_predict(name, bundles, real, tmp_path):
    case = ROUND_TRIPS[name]
    bundle_dir, *_ = bundles(case)
    data_path = real(CASES[case][0])[0]
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)
    (target / "model.onnx").unlink()
    _cli("export", str(target), "--format", "onnx")
    _cli("predict", str(target), "--data", str(data_path), "-o", str(tmp_path / "torch.csv"))
    _cli("predict", str(target), "--data", str(data_path), "--runtime", "onnx",
         "-o", str(tmp_path / "onnx.csv"))  # fmt: skip
    by_torch, by_onnx = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert list(by_onnx.columns) == list(by_torch.columns) and len(by_onnx) > 0
    assert (by_onnx["subject_id"] == by_torch["subject_id"]).all()
    numeric = [c for c in by_torch.columns if c.startswith("p_") or c in ("risk", "prediction")]
    numeric = [c for c in numeric if by_torch[c].dtype.kind == "f"]
    diff = float((by_onnx[numeric] - by_torch[numeric]).abs().to_numpy().max())
    print(f"\nCLI round trip {name}: {len(by_torch)} rows, max |onnx - torch| {diff:.2e}")
    assert diff <= TOL
    for label in ("decision", "prediction"):
        if label in by_torch.columns and by_torch[label].dtype.kind != "f":
            agree = (by_onnx[label] == by_torch[label]).mean()
            assert agree > 0.99, f"{label}: {agree:.3f} agree"


LIGHT = ("torch", "sklearn", "scipy", "wfdb", "medseq.training")


@pytest.mark.parametrize(
    ("case", "absent"),
    [
        ("retain", LIGHT),
        ("slice_rnn", LIGHT),
        ("smiles_rnn", LIGHT),  # RDKit, which its reader needs, is allowed
        ("conv_rnn-recording-mitbih", ("torch", "medseq.training")),  # scipy, wfdb: reader
    ],
)
def test_onnx_predict_imports_no_training_stack(case, absent, bundles, real, tmp_path):
    """``medseq predict --runtime onnx`` in a fresh interpreter: no torch, and none of
    scikit-learn, scipy, wfdb unless the dataset's reader needs them."""
    bundle_dir, *_ = bundles(case)
    data_path = real(CASES[case][0])[0]
    out = tmp_path / "p.csv"
    code = (
        "import sys\nfrom medseq.cli import app\n"
        f"sys.argv = ['medseq', 'predict', {str(bundle_dir)!r}, '--data', {str(data_path)!r}, "
        f"'--runtime', 'onnx', '-o', {str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        f"heavy = [m for m in {absent!r} if m in sys.modules]\nassert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_csv(out)) > 0


SERVE_LIGHT = ("sklearn", "scipy", "wfdb", "matplotlib", "medseq.training", "medseq.experiment")


@pytest.mark.parametrize("case", ["gru-2-layers-mean", "retain", "slice_rnn", "smiles_rnn"])
def test_export_and_serve_import_no_training_stack(case, bundles, tmp_path):
    """``medseq export`` and the service's start-up (``create_app`` with its lifespan, what
    ``medseq serve`` runs before listening) in a fresh interpreter: none of scikit-learn,
    scipy, wfdb, matplotlib, ``medseq.training`` or ``medseq.experiment`` is imported
    (torch is: export traces the members and the service runs them)."""
    bundle_dir, *_ = bundles(case)
    out = tmp_path / "model.onnx"
    code = (
        "import sys\nfrom medseq.cli import app\n"
        f"sys.argv = ['medseq', 'export', {str(bundle_dir)!r}, '--format', 'onnx', "
        f"'-o', {str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "from fastapi.testclient import TestClient\n"
        "from medseq.serving.api import create_app\n"
        "from medseq.serving.settings import ServeSettings\n"
        f"settings = ServeSettings(tokens=('t' * 32,), state_db={str(tmp_path / 's.db')!r})\n"
        f"with TestClient(create_app({str(bundle_dir)!r}, settings)) as client:\n"
        "    assert client.get('/healthz').status_code == 200\n"
        f"heavy = [m for m in {SERVE_LIGHT!r} if m in sys.modules]\nassert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.stat().st_size > 0


#: dataset kinds whose report had no test of its own (PhysioNet 2012, AdrenalMNIST3D, Bonn
#: EEG, Sleep-EDF, MIT-BIH + SVDB and the config tasks have theirs): case -> dataset task.
REPORTS = {
    "smiles_rnn": "toxicity",
    "conv_rnn-recording-signal": "rhythm",
    "conv_rnn-recording-mitbih": "beat",
    "retain": "mortality",
    "doctorai": "next_visit",
}


@pytest.mark.parametrize("case", list(REPORTS))
def test_report_of_every_dataset_kind_reads_the_spec(case, bundles, real, tmp_path):
    """``medseq report`` on a bundle of each of these datasets (untrained: the report's
    numbers are not the point, its generic sections are) writes the HTML with figures and
    names the dataset and task the bundle records."""
    bundle_dir, *_ = bundles(case)
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)  # the report stores its model card in the bundle
    dataset = CASES[case][0]
    out = tmp_path / "report.html"
    _cli("report", str(target), "--data", str(real(dataset)[0]), "--n-boot", "20",
         "-o", str(out))  # fmt: skip
    html = out.read_text()
    assert f"dataset {dataset}" in " ".join(html.split())
    assert REPORTS[case] in html
    assert any((tmp_path / "report_figures").glob("*.png"))


def test_bundle_without_a_dataset_is_refused_by_name(bundles, tmp_path):
    """A bundle that does not record its dataset cannot be saved, so no ONNX file or
    prediction can silently guess which reader to use."""
    _, bundle, *_ = bundles("slice_rnn")
    with pytest.raises(BundleError, match=r"provenance\['dataset'\]"):
        save_bundle(replace(bundle, provenance={}), tmp_path / "b")
    assert not (tmp_path / "b" / "model.onnx").exists()
