"""A streaming patient state as stored: JSON scalars plus a safetensors blob of its arrays.

Every acknowledged update writes its state (:mod:`medseq.serving.store`), so encoding one
is on the path of every request; :func:`save_tensors` gives the bytes of
``safetensors.numpy.save`` without its per-array overhead. The format is unchanged: a
store written before reads the same.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import safetensors
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from medseq.serving.engine import FeatureState, PatientState

__all__ = ["decode_state", "encode_state", "load_arrays", "save_tensors"]


def encode_state(state: PatientState) -> tuple[str, bytes]:
    """(JSON scalars, safetensors arrays) of a patient state.

    It runs once per acknowledged update, so it reads the feature block's rows directly
    (contiguous float64 views; only ``last_bin`` is converted, to its stored int64) and
    hands them to :func:`save_tensors`; the bytes equal those of ``safetensors.numpy.save``.
    """
    fs = state.features
    scalars = {
        "open_bin": fs.open_bin,
        "static_raw": {k: (None if math.isnan(v) else v) for k, v in fs.static_raw.items()},
        "alert": state.alert,
        "n_observations": state.n_observations,
        "last_time": state.last_time if math.isfinite(state.last_time) else None,
        "risk": state.risk,
        "alert_run": state.alert_run,
    }
    block = fs.block if fs.block.flags.c_contiguous else np.ascontiguousarray(fs.block)
    arrays: dict[str, np.ndarray] = {
        name: block[i] if dtype is np.float64 else block[i].astype(dtype)
        for i, (name, dtype) in enumerate(FeatureState.STORED_DTYPES.items())
    }
    arrays["hidden"] = np.ascontiguousarray(state.hidden)
    arrays["pool"] = np.ascontiguousarray(state.pool)
    return json.dumps(scalars), save_tensors(arrays, shared=[(block, FeatureState.ARRAYS)])


def save_tensors(
    arrays: dict[str, np.ndarray],
    shared: Sequence[tuple[np.ndarray, Sequence[str]]] = (),
) -> bytes:
    """``safetensors.numpy.save(arrays)``, byte for byte, without its per-array overhead.

    ``safetensors.numpy.save`` describes each array through ``ndarray.ctypes`` and
    ``dtype.name`` (several µs each; a state has 10 arrays, so that was the largest part
    of encoding one); here the same :class:`safetensors.TensorSpec` objects are built from
    the array interface, read once per ``(base, names)`` of ``shared``: a 2-D array whose
    rows are ``arrays[name]`` for the names it lists (the feature block). Arrays must be
    C-contiguous and of a native little-endian dtype (a state's are); anything else, or a
    safetensors without ``TensorSpec`` (< 0.7), goes through ``safetensors.numpy.save``.
    """
    spec = getattr(safetensors, "TensorSpec", None)
    if spec is None or not all(_plain(a) for a in arrays.values()):
        return save_arrays(arrays)
    pointers: dict[str, int] = {}
    for base, names in shared:
        start, row = base.__array_interface__["data"][0], base.strides[0]
        for i, name in enumerate(names):
            if arrays[name].base is base:  # a row of the block, not a converted copy
                pointers[name] = start + i * row
    flat = {
        name: spec(
            dtype=_DTYPE_NAMES[a.dtype.kind, a.dtype.itemsize],
            shape=a.shape,
            data_ptr=pointers.get(name) or a.__array_interface__["data"][0],
            data_len=a.nbytes,
        )
        for name, a in arrays.items()
    }
    return bytes(safetensors.serialize(flat))


#: ``dtype.name`` of the dtypes :func:`save_tensors` describes itself, by (kind, itemsize).
_DTYPE_NAMES = {("f", 8): "float64", ("f", 4): "float32", ("i", 8): "int64", ("i", 4): "int32"}
_LITTLE = sys.byteorder == "little"


def _plain(a: np.ndarray) -> bool:
    """C-contiguous, native little-endian, and of a dtype in :data:`_DTYPE_NAMES`."""
    dtype = a.dtype
    return (
        _LITTLE
        and a.flags.c_contiguous
        and (dtype.kind, dtype.itemsize) in _DTYPE_NAMES
        and dtype.byteorder in ("=", "<")
    )


def decode_state(scalars_json: str, blob: bytes) -> PatientState:
    """Inverse of :func:`encode_state`."""
    scalars = json.loads(scalars_json)
    arrays: dict[str, Any] = load_arrays(blob)
    static = {k: (np.nan if v is None else float(v)) for k, v in scalars["static_raw"].items()}
    features = FeatureState(
        open_bin=int(scalars["open_bin"]),
        static_raw=static,
        **{name: arrays[name] for name in FeatureState.ARRAYS},  # copied into its block
    )
    last_time = scalars["last_time"]
    return PatientState(
        features=features,
        hidden=arrays["hidden"].copy(),
        pool=arrays["pool"].copy(),
        alert=bool(scalars["alert"]),
        n_observations=int(scalars["n_observations"]),
        last_time=-np.inf if last_time is None else float(last_time),
        risk=float(scalars["risk"]),
        alert_run=int(scalars.get("alert_run", 0)),
    )
