"""The PhysioNet 2012 training tensors, written once by medseq and read by every peer.

Peers run in their own virtual environments without medseq, so the tensors travel as one
``.npz`` file: ``values``, ``mask``, ``delta`` ``(N, T, F)`` float32, ``lengths`` ``(N,)``
int64 and ``y`` ``(N,)`` float32 (in-hospital death). :func:`load_tensors` needs numpy only
and checks every field, so a stale or truncated file fails with its name and the fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEQUENCE_FIELDS = ("values", "mask", "delta")
FIELDS = (*SEQUENCE_FIELDS, "lengths", "y")


class TensorFileError(ValueError):
    """A tensor file that is missing a field or holds one of the wrong shape or type."""


def export_physionet2012(
    out: Path,
    set_name: str = "a",
    n_steps: int = 48,
    data=None,
    max_subjects: int | None = None,
) -> Path:
    """Read a PhysioNet 2012 set, featurize it with ``ICUFeaturizer`` and save the ``.npz``.

    ``data`` is an already read set (else ``set_name`` is read from the data root);
    ``max_subjects`` keeps the first stays only. The featurizer is fitted on the same stays:
    these tensors measure speed, not accuracy.
    """
    from medseq.features import ICUFeaturizer
    from medseq.paths import dataset_dir
    from medseq.sources import physionet2012
    from medseq.tasks.physionet2012 import mortality_labels

    if data is None:
        data = physionet2012.read(dataset_dir("physionet2012") / f"set-{set_name}.tar.gz")
    y = mortality_labels(data)
    if max_subjects is not None:
        y = y.iloc[:max_subjects]
    ids = y.index.to_numpy()
    featurizer = ICUFeaturizer(n_steps=n_steps, delta_scale="horizon")
    arrays = featurizer.fit_transform(data.events, data.static, ids)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        **{k: arrays[k].astype(np.float32) for k in SEQUENCE_FIELDS},
        lengths=arrays["lengths"].astype(np.int64),
        y=y.to_numpy().astype(np.float32),
    )
    return out


def load_tensors(path: Path | str) -> dict[str, np.ndarray]:
    """Read and check a tensor file; :class:`TensorFileError` names the file and field."""
    path = Path(path)
    if not path.is_file():
        raise TensorFileError(f"{path}: no such tensor file (run the benchmark's export first)")
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in FIELDS if k not in archive.files]
        if missing:
            raise TensorFileError(f"{path}: missing field(s) {missing}; has {archive.files}")
        out = {k: archive[k] for k in FIELDS}
    shape = out["values"].shape
    if len(shape) != 3 or min(shape) < 1:
        raise TensorFileError(f"{path}: field 'values' must be (N, T, F), got shape {shape}")
    for k in SEQUENCE_FIELDS:
        if out[k].shape != shape or out[k].dtype != np.float32:
            raise TensorFileError(
                f"{path}: field {k!r} must be float32 of shape {shape}, "
                f"got {out[k].dtype} {out[k].shape}"
            )
        if not np.isfinite(out[k]).all():
            raise TensorFileError(f"{path}: field {k!r} holds NaN or inf")
    n, n_steps = shape[0], shape[1]
    for k, dtype in (("lengths", np.int64), ("y", np.float32)):
        if out[k].shape != (n,) or out[k].dtype != dtype:
            raise TensorFileError(
                f"{path}: field {k!r} must be {np.dtype(dtype)} of shape ({n},), "
                f"got {out[k].dtype} {out[k].shape}"
            )
    bad = (out["lengths"] < 1) | (out["lengths"] > n_steps)
    if bad.any():
        raise TensorFileError(
            f"{path}: field 'lengths' must lie in [1, {n_steps}], "
            f"row {int(np.flatnonzero(bad)[0])} is {int(out['lengths'][bad][0])}"
        )
    if not np.isin(out["y"], (0.0, 1.0)).all():
        raise TensorFileError(f"{path}: field 'y' must be 0/1 labels")
    return out


def batches(arrays: dict[str, np.ndarray], batch_size: int, n_batches: int):
    """``n_batches`` consecutive index windows of ``batch_size`` rows, cycling over N."""
    n = len(arrays["y"])
    for b in range(n_batches):
        start = (b * batch_size) % max(n - batch_size + 1, 1)
        yield slice(start, start + batch_size)
