"""ONNX export of the ICU bundles trained on real stays: parity with torch, no torch to predict.

Every other model kind and dataset: tests/integration/test_onnx_every_kind.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from serving_helpers import bundle_like

from medseq.bundle import save_bundle
from medseq.serving.manifest import ManifestError, read_manifest
from medseq.serving.onnx import OnnxPredictor, export_onnx

TOL = 1e-5


def _parity(bundle_dir, bundle, setb, n: int = 400) -> float:
    export_onnx(bundle_dir)
    ids = setb.static.index.to_numpy()[:n]
    onnx_scores = OnnxPredictor(bundle_dir, n_threads=1).predict(setb, ids)
    return float(np.abs(onnx_scores - bundle.predict(setb, ids)).max())


@pytest.mark.parametrize("name", ["gru", "grud"])
def test_trained_bundles_export_with_parity(name, request, tmp_path, setb):
    source = request.getfixturevalue(f"trained_{name}_bundle")
    bundle = request.getfixturevalue(f"{name}_bundle")
    target = tmp_path / name
    shutil.copytree(source, target)
    assert _parity(target, bundle, setb) <= TOL


@pytest.mark.parametrize(
    "config",
    [
        {"cell": "lstm", "num_layers": 2, "pooling": "attention"},
        {"cell": "rnn", "bidirectional": True, "pooling": "last"},
        {"cell": "gru", "bidirectional": True, "num_layers": 2, "pooling": "mean"},
    ],
)
def test_other_kinds_export_with_parity(gru_bundle, setb, tmp_path, config):
    bundle = bundle_like(gru_bundle, n_members=2, hidden_size=8, **config)
    bundle.provenance = {"dataset": "physionet2012", "task": "mortality"}
    save_bundle(bundle, tmp_path)
    assert _parity(tmp_path, bundle, setb, n=200) <= TOL


def test_manifest_hash_matches_bundle_and_refuses_edits(trained_gru_bundle, tmp_path):
    target = tmp_path / "b"
    shutil.copytree(trained_gru_bundle, target)
    assert read_manifest(target)["content_sha256"]
    manifest = (target / "medseq.json").read_text().replace('"threshold": 0.', '"threshold": 1.')
    (target / "medseq.json").write_text(manifest)
    with pytest.raises(ManifestError, match="hash"):
        read_manifest(target)


def test_onnx_predict_cli_never_imports_torch(
    trained_gru_bundle, gru_bundle, setb, physionet2012_dir, tmp_path
):
    target = tmp_path / "b"
    shutil.copytree(trained_gru_bundle, target)
    export_onnx(target)
    out = tmp_path / "p.csv"
    code = (
        "import sys\nfrom medseq.cli import app\n"
        f"sys.argv = ['medseq', 'predict', {str(target)!r}, '--data', "
        f"{str(physionet2012_dir / 'set-b.tar.gz')!r}, '--runtime', 'onnx', '-o', {str(out)!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'medseq.training' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    import pandas as pd

    frame = pd.read_csv(out)
    ids = frame["subject_id"].to_numpy()
    torch_risk = gru_bundle.predict(setb, ids)
    assert np.abs(frame["risk"].to_numpy() - torch_risk).max() <= TOL
    decisions = (torch_risk >= gru_bundle.threshold).astype(int)
    assert (frame["decision"].to_numpy() == decisions).mean() > 0.999


def test_import_serving_is_light():
    code = (
        "import sys, medseq.serving, medseq.serving.onnx, medseq.serving.manifest\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not {"torch", "medseq.training", "fastapi"} & loaded


def test_serving_stack_never_imports_training():
    code = (
        "import sys, medseq.serving.api, medseq.serving.service, medseq.serving.engine\n"
        "print('medseq.training' in sys.modules, 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
