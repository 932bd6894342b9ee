"""MedMNIST 3D reader: both sizes of the real file, and clear errors on broken files."""

import numpy as np
import pytest

from medseq.schema import DataError
from medseq.sources import medmnist3d


def _arrays(n=(3, 2, 2), size=28):
    out = {}
    for part, k in zip(medmnist3d.SPLITS, n, strict=True):
        out[f"{part}_images"] = np.zeros((k, size, size, size), np.uint8)
        out[f"{part}_labels"] = np.ones((k, 1), np.uint8)
    return out


@pytest.mark.parametrize("size", [28, 64])
def test_reads_real_adrenal_with_official_split(size):
    from medseq.paths import dataset_dir

    data = medmnist3d.read(dataset_dir("adrenalmnist3d"), size=size)
    assert data.images.shape == (1584, size, size, size) and data.size == size
    assert [len(data.ids(p)) for p in medmnist3d.SPLITS] == [1188, 98, 298]
    assert int(data.labels[data.ids("test")].sum()) == 69
    assert set(np.unique(data.images[:50])) <= {0, 255}


def test_ids_run_train_val_test(tmp_path):
    np.savez(tmp_path / "x.npz", **_arrays())
    data = medmnist3d.read(tmp_path / "x.npz")
    assert data.ids("val").tolist() == [3, 4] and data.ids("test").tolist() == [5, 6]
    with pytest.raises(ValueError, match="part must be one of"):
        data.ids("dev")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a.pop("val_labels"), r"missing array\(s\) \['val_labels'\]"),
        (lambda a: a.update(test_images=np.zeros((2, 28, 28), np.uint8)), r"test_images must be"),
        (lambda a: a.update(train_labels=np.ones((4, 1), np.uint8)), r"3 volumes but .* 4 labels"),
        (lambda a: a.update(val_images=np.zeros((2, 28, 28, 28), np.float32)), "must be uint8"),
        (lambda a: a.update(val_labels=np.ones((2, 1), np.float32)), r"\(N, 1\) integers"),
    ],
)
def test_broken_arrays_are_named(tmp_path, change, match):
    arrays = _arrays()
    change(arrays)
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(DataError, match=match):
        medmnist3d.read(tmp_path / "x.npz")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"adrenalmnist3d_64\.npz"):
        medmnist3d.read(tmp_path, size=64)
    with pytest.raises(ValueError, match="size must be one of"):
        medmnist3d.read(tmp_path, size=32)
    (tmp_path / "adrenalmnist3d.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        medmnist3d.read(tmp_path)


def test_official_protocol_refuses_an_empty_part(tmp_path):
    from medseq.datasets.registry import get_dataset

    np.savez(tmp_path / "x.npz", **_arrays())
    spec = get_dataset("adrenalmnist3d")
    data = spec.read(tmp_path / "x.npz")
    labels = spec.labels("adrenal", data)
    split = spec.protocol("official")(None, data, labels)
    assert split.test.tolist() == [5, 6]
    with pytest.raises(ValueError, match=r"\['val', 'test'\] part"):
        spec.protocol("official")(None, data, labels.iloc[:3])
