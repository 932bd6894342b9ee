"""A cached streaming state as one compressed ``bytes`` object, lossless to the bit.

Why: the service keeps up to ``max_cached_patients`` states in memory (10,000 by default).
A live :class:`~medseq.serving.engine.PatientState` costs about 7 KiB of resident memory
(float64 arrays, their numpy headers, the Python objects around them), which is 70 MiB for
a full cache. Lowering the precision would change the outputs, so instead every cached
state but a small hot set is held as one ``bytes`` object: the scalars packed with
:mod:`struct`, the arrays' raw bytes, compressed with :mod:`zlib` (level 1). One object
instead of about twenty, and the featurizer's block compresses well (NaN-filled open-bin
rows, ``-1`` in ``last_bin``, ``±inf`` running extremes, zero counts and sums): on real
PhysioNet 2012 stays a state of 4.7 KB packs to about 0.7 KB after its first hour and
3.3 KB after 24-48 hours, where the hidden state and the pooling terms (2 KB of
full-mantissa floats) no longer compress. Grouping the floats' bytes by position (the
"byte shuffle" of Blosc) was measured and made the blobs larger, so it is not used.

What is kept: everything :meth:`StreamingEngine.update` reads that is not derived, plus
the encoded descriptors (``_static_vec``, recomputing them costs a pandas call); what is
dropped is derived and recomputed on use with the same arithmetic: the featurizer's
per-bin cache and the step terms (as for a state reloaded from SQLite or cooled down).
Floats travel as their IEEE bytes (NaN payloads, ``-0.0`` and infinities included), so a
rehydrated state gives bit-identical outputs (``tests/unit/serving/test_serving_compact.py``).

Layout (little-endian, then zlib-compressed)::

    header   <4s q q q ? d d H H   magic, open_bin, n_observations, alert_run, alert,
                                    last_time, risk, n_static, len(admission_time)+1 (0: None)
    text     static names joined by NUL, then admission_time, UTF-8
    static   n_static float64
    arrays   block, hidden, pool, static_vec: each <? 3s B + ndim q (present, dtype, ndim,
             shape), then its bytes (C order)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from medseq.serving.engine import FeatureState, PatientState

MAGIC = b"MSC1"
_HEADER = struct.Struct("<4sqqq?ddHH")
_ARRAY = struct.Struct("<?3sB")
#: zlib level: 1 compresses these blobs within a few per cent of level 9 at a fraction
#: of the time (measured in ``benchmarks/results/serving.md``)
LEVEL = 1


def _array(buf: memoryview, at: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A writable copy of the array stored at ``buf[at:]`` (the engine writes into it)."""
    n = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(buf, dtype=dtype, count=n, offset=at).reshape(shape).copy()


def _pack_array(a: np.ndarray | None) -> list[bytes]:
    if a is None:
        return [_ARRAY.pack(False, b"<f8", 0)]
    code = a.dtype.str.encode()
    if len(code) != 3:
        raise TypeError(f"compact state: cannot pack an array of dtype {a.dtype}")
    head = _ARRAY.pack(True, code, a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
    return [head, np.ascontiguousarray(a).tobytes()]


def _unpack_array(buf: memoryview, at: int) -> tuple[np.ndarray | None, int]:
    present, code, ndim = _ARRAY.unpack_from(buf, at)
    at += _ARRAY.size
    if not present:
        return None, at
    shape = struct.unpack_from(f"<{ndim}q", buf, at)
    at += 8 * ndim
    dtype = np.dtype(code.decode())
    a = _array(buf, at, dtype, shape)
    return a, at + a.nbytes


def pack_state(state: PatientState, admission_time: str | None, level: int = LEVEL) -> bytes:
    """One compressed ``bytes`` holding ``state`` and the stay's admission time.

    Parameters
    ----------
    state : PatientState
        Read only; its derived parts (step terms, featurizer cache) are not packed.
    admission_time : str or None
        The stay's absolute admission time (FHIR input), kept beside the state.
    level : int, default=1
        zlib compression level.
    """
    fs = state.features
    names = list(fs.static_raw)
    text = "\0".join(names).encode()
    admitted = b"" if admission_time is None else admission_time.encode()
    header = _HEADER.pack(
        MAGIC,
        fs.open_bin,
        state.n_observations,
        state.alert_run,
        state.alert,
        state.last_time,
        state.risk,
        len(names),
        0 if admission_time is None else len(admitted) + 1,
    )
    parts = [header, struct.pack("<I", len(text)), text, admitted]
    parts.append(np.array([fs.static_raw[k] for k in names], dtype=np.float64).tobytes())
    for a in (fs.block, state.hidden, state.pool, state._static_vec):
        parts += _pack_array(a)
    return zlib.compress(b"".join(parts), level)


def unpack_state(blob: bytes) -> tuple[PatientState, str | None]:
    """Inverse of :func:`pack_state`: a new live state (its own arrays) and the admission
    time."""
    buf = memoryview(zlib.decompress(blob))
    magic, open_bin, n_obs, alert_run, alert, last_time, risk, n_static, n_admitted = (
        _HEADER.unpack_from(buf, 0)
    )
    if magic != MAGIC:
        raise ValueError(f"compact state: unknown format {bytes(magic)!r}, expected {MAGIC!r}")
    at = _HEADER.size
    (n_text,) = struct.unpack_from("<I", buf, at)
    at += 4
    names = bytes(buf[at : at + n_text]).decode().split("\0") if n_static else []
    at += n_text
    admission_time = None
    if n_admitted:
        admission_time = bytes(buf[at : at + n_admitted - 1]).decode()
        at += n_admitted - 1
    values = np.frombuffer(buf, dtype=np.float64, count=n_static, offset=at)
    static_raw = dict(zip(names, values.tolist(), strict=True))
    at += 8 * n_static
    block, at = _unpack_array(buf, at)
    hidden, at = _unpack_array(buf, at)
    pool, at = _unpack_array(buf, at)
    static_vec, at = _unpack_array(buf, at)
    if block is None or hidden is None or pool is None or at != len(buf):
        raise ValueError("compact state: truncated or malformed blob")
    state = PatientState(
        features=FeatureState.from_block(open_bin, static_raw, block),
        hidden=hidden,
        pool=pool,
        alert=alert,
        n_observations=n_obs,
        last_time=last_time,
        risk=risk,
        alert_run=alert_run,
        _static_vec=static_vec,
    )
    return state, admission_time


__all__ = ["pack_state", "unpack_state"]
