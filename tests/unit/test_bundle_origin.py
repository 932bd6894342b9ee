"""A bundle records the dataset and task it was trained for, required and never defaulted,
and predicts from its dataset's own data object through the dataset spec's transform."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "explain"))
from explain_toys import toy_bundle, toy_tables

from medseq.bundle import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    BundleError,
    _content_hash,
    load_bundle,
    save_bundle,
)


def _strip_origin(path: Path, *keys: str) -> None:
    """Re-write a saved bundle as an older one whose provenance lacks ``keys``."""
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    for key in keys:
        manifest["provenance"].pop(key)
    manifest["content_sha256"] = _content_hash((path / WEIGHTS_FILE).read_bytes(), manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("missing", [("dataset",), ("task",), ("dataset", "task")])
def test_save_refuses_a_bundle_without_its_dataset_or_task(tmp_path, missing):
    bundle, _ = toy_bundle("mean")
    for key in missing:
        del bundle.provenance[key]
    with pytest.raises(BundleError, match=r"provenance lacks .*Fix: set bundle.provenance") as err:
        save_bundle(bundle, tmp_path / "b")
    assert all(repr(k) in str(err.value) for k in missing)
    assert not (tmp_path / "b" / MANIFEST_FILE).exists()


def test_loading_an_older_bundle_names_what_is_missing_and_origin_fills_it(tmp_path):
    bundle, features = toy_bundle("mean")
    path = save_bundle(bundle, tmp_path / "b")
    _strip_origin(path, "dataset", "task")
    with pytest.raises(BundleError, match=r"lacks \['dataset', 'task'\].*origin=\(dataset, task\)"):
        load_bundle(path)
    loaded = load_bundle(path, origin=("physionet2012", "mortality"))
    assert (loaded.dataset, loaded.dataset_task) == ("physionet2012", "mortality")
    np.testing.assert_array_equal(loaded.predict_arrays(features), bundle.predict_arrays(features))
    with pytest.raises(BundleError, match="origin gives dataset='tox21'"):
        load_bundle(save_bundle(loaded, path), origin=("tox21", "mortality"))


def test_predict_reads_the_datasets_data_object_through_its_spec():
    bundle, features = toy_bundle("mean")
    events, static = toy_tables()
    ids = static.index.to_numpy()[::-1]  # any order: rows follow ids
    data = SimpleNamespace(events=events, static=static)  # what the ICU spec's reader gives
    expected = bundle.predict_arrays({k: v[::-1] for k, v in features.items()})
    np.testing.assert_allclose(bundle.predict(data, ids), expected, rtol=1e-6)
    assert bundle.spec().name == "physionet2012"
