"""Reader for MedMNIST v2 3D ``.npz`` files (e.g. AdrenalMNIST3D, 28³ and 64³).

Layout (see ``shared/data/adrenalmnist3d/SOURCE.md``): six ``uint8`` arrays,
``{train,val,test}_images`` of shape (N, S, S, S) and ``{train,val,test}_labels`` of shape
(N, 1) (binary or class index), S = 28 or 64. The official split is patient-level and kept
as is. Samples get integer ids ``0 .. N_total - 1`` in the order train, val, test, so each id
names one volume across the three parts.

Reference: Yang J, Shi R, Wei D, et al. MedMNIST v2 - A large-scale lightweight benchmark
for 2D and 3D biomedical image classification. Sci Data 2023;10:41.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.schema import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
SIZES: tuple[int, ...] = (28, 64)


@dataclass(frozen=True)
class VolumeSet:
    """All volumes of one MedMNIST 3D file, with labels and the official split.

    Attributes
    ----------
    images : ndarray of shape (N, S, S, S), uint8
        Volumes in the order train, val, test.
    labels : pandas.Series
        Integer label per volume, indexed by sample id ``0 .. N-1``.
    split : pandas.Series
        ``"train"``, ``"val"`` or ``"test"`` per sample id.
    path : Path
    """

    images: np.ndarray
    labels: pd.Series
    split: pd.Series
    path: Path

    @property
    def size(self) -> int:
        """Edge length ``S`` of the cubic volumes."""
        return int(self.images.shape[1])

    def ids(self, part: str) -> np.ndarray:
        """Sample ids of one official part, int64, in file order."""
        if part not in SPLITS:
            raise ValueError(f"part must be one of {SPLITS}, got {part!r}")
        return self.split.index[self.split.to_numpy() == part].to_numpy(dtype=np.int64)


def resolve(path: str | Path, name: str = "adrenalmnist3d", size: int = 28) -> Path:
    """The ``.npz`` itself, or ``<name>.npz`` / ``<name>_64.npz`` inside a folder."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    path = Path(path)
    if path.is_dir():
        path = path / (f"{name}.npz" if size == 28 else f"{name}_{size}.npz")
    if not path.exists():
        raise FileNotFoundError(f"MedMNIST 3D file {path} does not exist")
    return path


def read(path: str | Path, *, name: str = "adrenalmnist3d", size: int = 28) -> VolumeSet:
    """Read a MedMNIST 3D ``.npz`` (a file, or a folder holding ``name``'s file of ``size``).

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    DataError
        If the file is not an npz, an array is missing, volumes are not cubic (N, S, S, S)
        with S in (28, 64), labels are not (N, 1) integers, or image and label counts differ;
        the message names the file and the array.
    """
    path = resolve(path, name, size)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    images, labels, split = [], [], []
    for part in SPLITS:
        x, y = _part(arrays, part, path)
        images.append(x)
        labels.append(y)
        split.extend([part] * len(y))
    shapes = {im.shape[1:] for im in images}
    if len(shapes) != 1:
        raise DataError(f"{path}: the parts hold volumes of different shapes {sorted(shapes)}")
    all_labels = np.concatenate(labels)
    index = pd.RangeIndex(len(all_labels), name="sample_id")
    return VolumeSet(
        images=np.concatenate(images),
        labels=pd.Series(all_labels, index=index, name="label"),
        split=pd.Series(split, index=index, name="split"),
        path=path,
    )


def _part(arrays: dict[str, np.ndarray], part: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    keys = (f"{part}_images", f"{part}_labels")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {missing}; the file has {sorted(arrays)}")
    x, y = arrays[keys[0]], arrays[keys[1]]
    if x.ndim != 4 or not (x.shape[1] == x.shape[2] == x.shape[3]) or x.shape[1] not in SIZES:
        raise DataError(f"{path}: {keys[0]} must be (N, S, S, S) with S in {SIZES}, got {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: {keys[0]} must be uint8, got {x.dtype}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {keys[1]} must be (N, 1) integers, got {y.dtype} {y.shape}")
    if len(y) != len(x):
        raise DataError(f"{path}: {keys[0]} has {len(x)} volumes but {keys[1]} {len(y)} labels")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: {keys[1]} has a negative label {int(y.min())}")
    return x, y.astype(np.int64)
