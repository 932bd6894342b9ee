"""Calibration and model card inside a bundle: stored, hashed, applied only when asked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "explain"))
from explain_toys import toy_bundle

from medseq.bundle import MANIFEST_FILE, MODEL_CARD_FILE, BundleError, load_bundle, save_bundle
from medseq.report.model_card import build_model_card, render_markdown

CALIBRATION = {"method": "temperature", "temperature": 2.0, "n_samples": 10}


def _card(bundle):
    metrics = {"auroc": [0.8, 0.75, 0.85], "brier": [0.1, 0.09, 0.11]}
    sets = {
        "internal": {
            "name": "test",
            "path": "x",
            "sha256": None,
            "n": 10,
            "n_positive": 2,
            "metrics": metrics,
            "calibration": {},
        }
    }
    return build_model_card(bundle, sets=sets, notes=["a note"])


def test_calibration_is_applied_only_when_asked(tmp_path):
    bundle, features = toy_bundle("mean")
    raw = bundle.predict_arrays(features)
    with pytest.raises(ValueError, match="no calibration"):
        bundle.predict_arrays(features, calibrated=True)
    bundle.calibration = CALIBRATION
    save_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.calibration == CALIBRATION
    np.testing.assert_allclose(loaded.predict_arrays(features), raw, rtol=1e-6)
    calibrated = loaded.predict_arrays(features, calibrated=True)
    logit = np.log(raw / (1 - raw))
    np.testing.assert_allclose(calibrated, 1 / (1 + np.exp(-logit / 2.0)), rtol=1e-5)


def test_model_card_round_trip_and_tamper_checks(tmp_path):
    bundle, _ = toy_bundle("mean")
    bundle.calibration = CALIBRATION
    bundle.model_card = _card(bundle)
    bundle.model_card_markdown = render_markdown(bundle.model_card)
    path = save_bundle(bundle, tmp_path / "b")
    loaded = load_bundle(path)
    assert loaded.model_card == json.loads(json.dumps(bundle.model_card))
    assert loaded.model_card_markdown == (path / MODEL_CARD_FILE).read_text()
    assert "| auroc | 0.800 | 0.750 – 0.850 |" in loaded.model_card_markdown
    assert "- a note" in loaded.model_card_markdown
    # the markdown card is covered by the hash through its sha256
    (path / MODEL_CARD_FILE).write_text(loaded.model_card_markdown + "\nall fine!\n")
    with pytest.raises(BundleError, match="modified after saving"):
        load_bundle(path)
    (path / MODEL_CARD_FILE).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(path)


def test_editing_the_stored_calibration_is_refused(tmp_path):
    bundle, _ = toy_bundle("mean")
    bundle.calibration = CALIBRATION
    path = save_bundle(bundle, tmp_path / "b")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest["calibration"]["temperature"] = 0.5
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="content hash mismatch"):
        load_bundle(path)


def test_bundles_saved_before_calibration_existed_still_load(tmp_path):
    bundle, _ = toy_bundle("mean")
    path = save_bundle(bundle, tmp_path / "b")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for key in ("calibration", "model_card"):
        del manifest[key]
    from medseq.bundle import _content_hash

    weights = (path / "weights.safetensors").read_bytes()
    manifest["content_sha256"] = _content_hash(weights, manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))
    loaded = load_bundle(path)
    assert loaded.calibration is None and loaded.model_card is None
    assert loaded.model_card_markdown is None


def test_saving_without_a_card_removes_a_stale_one(tmp_path):
    bundle, _ = toy_bundle("mean")
    bundle.model_card = _card(bundle)
    bundle.model_card_markdown = render_markdown(bundle.model_card)
    path = save_bundle(bundle, tmp_path / "b")
    bundle.model_card = bundle.model_card_markdown = None
    save_bundle(bundle, path)
    assert not (path / MODEL_CARD_FILE).exists()
    assert load_bundle(path).model_card is None
