"""A signal stream's detector state as JSON plus arrays, and back (no pickle).

The streaming detector (:class:`medseq.monitoring.detector.StreamDetector`) carries its
state in plain attributes of a handful of objects (filters, the R-peak detector, the beat
features, the numpy GRU's beat context, quality and episode trackers). The service saves
that state as a checkpoint in SQLite and restores it after an eviction or a restart, so
this module must capture every attribute, exactly, without the monitoring package having
to know about storage (it is also the torch-free edge package, kept free of serving code).

How: :func:`snapshot` walks the detector's attributes and keeps only those that differ
from a freshly built detector of the same stream (``template``): constants such as the
model weights (shared by identity), filter coefficients and settings are left out, so a
checkpoint holds the state only. :func:`restore` builds a fresh detector and writes the
kept attributes back. Floats go through JSON (``repr`` round trip, so exact, also
``inf``/``nan``), arrays as raw bytes in a safetensors blob (dtype and shape kept).

Only classes of the ``medseq.monitoring`` package are rebuilt from a checkpoint (by
module and name, checked), so a tampered database cannot make the service instantiate
arbitrary classes; an attribute of a type the codec does not know is an error at once
(:class:`SnapshotError`), never a silently incomplete checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections import deque
from typing import Any

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

#: Classes rebuilt from a checkpoint must come from this package.
ALLOWED_PACKAGE = "medseq.monitoring."


class SnapshotError(ValueError):
    """A detector attribute the checkpoint codec cannot store, or a corrupt checkpoint."""


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray) -> dict[str, Any]:
        name = f"a{len(self.arrays)}"
        if a.dtype == object:
            raise SnapshotError("object arrays cannot be stored in a checkpoint")
        if np.iscomplexobj(a):  # safetensors has no complex128: its float pairs, bit-exact
            real = np.ascontiguousarray(a).view(a.real.dtype).reshape(*a.shape, 2)
            self.arrays[name] = np.ascontiguousarray(real)
            return {"a": name, "c": a.dtype.str}
        self.arrays[name] = np.ascontiguousarray(a)
        return {"a": name}

    def value(self, v: Any) -> Any:
        """A JSON-able form of ``v`` (full, not a diff)."""
        if v is None or isinstance(v, bool | str):
            return v
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, np.generic):
            return {"np": v.dtype.str, "v": v.item()}
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return {"f": repr(v)} if not np.isfinite(v) else v
        if isinstance(v, list):
            return {"l": [self.value(x) for x in v]}
        if isinstance(v, tuple):
            return {"t": [self.value(x) for x in v]}
        if isinstance(v, deque):
            return {"dq": [self.value(x) for x in v], "maxlen": v.maxlen}
        if isinstance(v, dict):
            return {"d": [[self.value(k), self.value(x)] for k, x in v.items()]}
        return {"o": _class_name(type(v)), "s": self.attrs(v, None)}

    def attrs(self, obj: Any, template: Any) -> dict[str, Any]:
        """The attributes of ``obj`` that differ from ``template``'s (all without one)."""
        out: dict[str, Any] = {}
        for name, v in _attributes(obj).items():
            if template is not None and hasattr(template, name):
                t = getattr(template, name)
                if _same(v, t):
                    continue
                if _is_object(v) and type(t) is type(v) and not dataclasses.is_dataclass(v):
                    out[name] = {"p": self.attrs(v, t)}  # a patch of the template's object
                    continue
            out[name] = self.value(v)
        return out


def _class_name(cls: type) -> str:
    module = cls.__module__
    if not module.startswith(ALLOWED_PACKAGE):
        raise SnapshotError(
            f"a detector attribute of type {module}.{cls.__qualname__} cannot be stored "
            f"(only {ALLOWED_PACKAGE}* classes and plain values are)"
        )
    return f"{module}:{cls.__qualname__}"


def _is_object(v: Any) -> bool:
    return type(v).__module__.startswith(ALLOWED_PACKAGE)


def _attributes(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    slots = [s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())]
    return {s: getattr(obj, s) for s in slots if hasattr(obj, s)}


def _same(v: Any, t: Any) -> bool:
    """True when ``v`` needs no storing because the fresh detector has it already."""
    if v is t:
        return True
    if type(v) is not type(t):
        return False
    if isinstance(v, np.ndarray):
        return v.shape == t.shape and v.dtype == t.dtype and np.array_equal(v, t, equal_nan=True)
    if isinstance(v, bool | int | str | np.generic) or v is None:
        return bool(v == t)
    if isinstance(v, float):
        return v == t or (v != v and t != t)
    if dataclasses.is_dataclass(v):
        try:
            return bool(v == t)
        except ValueError:  # a field holding arrays
            return False
    return False


def snapshot(detector: Any, template: Any) -> tuple[str, bytes]:
    """(JSON, safetensors blob) of ``detector``'s state relative to the fresh ``template``."""
    enc = _Encoder()
    state = enc.attrs(detector, template)
    return json.dumps(state), save_arrays(enc.arrays)


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, bool | str | int | float):
            return v
        if isinstance(v, dict):
            if "a" in v:
                got = self.arrays[v["a"]]
                if "c" in v:  # complex, stored as (..., 2) float pairs
                    return np.ascontiguousarray(got).view(np.dtype(v["c"]))[..., 0].copy()
                return got.copy()
            if "np" in v:
                return np.dtype(v["np"]).type(v["v"])
            if "f" in v:
                return float(v["f"])
            if "l" in v:
                return [self.value(x) for x in v["l"]]
            if "t" in v:
                return tuple(self.value(x) for x in v["t"])
            if "dq" in v:
                return deque((self.value(x) for x in v["dq"]), maxlen=v["maxlen"])
            if "d" in v:
                return {self.value(k): self.value(x) for k, x in v["d"]}
            if "o" in v:
                obj: Any = object.__new__(_load_class(v["o"]))
                self.apply(obj, v["s"])
                return obj
        raise SnapshotError(f"corrupt checkpoint: unknown value {str(v)[:80]!r}")

    def apply(self, obj: Any, attrs: dict[str, Any]) -> None:
        for name, v in attrs.items():
            if isinstance(v, dict) and "p" in v:
                self.apply(getattr(obj, name), v["p"])
            else:
                object.__setattr__(obj, name, self.value(v))


def _load_class(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not module.startswith(ALLOWED_PACKAGE) or not qualname.isidentifier():
        raise SnapshotError(f"corrupt checkpoint: class {name!r} is not a monitoring class")
    cls = getattr(importlib.import_module(module), qualname, None)
    if not isinstance(cls, type):
        raise SnapshotError(f"corrupt checkpoint: no class {name!r}")
    return cls


def restore(fresh: Any, state_json: str, blob: bytes) -> Any:
    """``fresh`` (a newly built detector of the stream) with the snapshot's state written in."""
    try:
        attrs = json.loads(state_json)
        arrays = load_arrays(blob)
    except Exception as err:  # any decoding failure is a corrupt checkpoint
        raise SnapshotError(f"corrupt checkpoint: {type(err).__name__}") from None
    _Decoder(arrays).apply(fresh, attrs)
    return fresh
