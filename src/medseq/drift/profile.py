"""The reference profile a bundle keeps of its training inputs and predictions (no rows).

A deployed model should notice when the patients it scores stop looking like the ones it
was trained on. For that the bundle stores, at training time, a small summary of the model
inputs of the training subjects and of the out-of-fold validation predictions; the service
accumulates the same summary over what it serves (:mod:`medseq.drift.window`).

What is profiled is read from the featurizer's :meth:`describe` (never from its class), so
any featurizer whose outputs carry **named features** works:

- a float array ``(N, T, X)`` whose last dimension has names (an ICU grid ``values``
  ``(N, T, F)``, sleep-epoch features, visit codes) gives, per sample and feature, the mean
  of its observed steps: steps before ``lengths`` and, where the featurizer gives a
  ``mask`` of the same shape, the steps it marks observed. A sample with no observed step
  is *missing* for that feature. ``mask`` and ``delta`` (time since last observation) are
  the grid's companions, not features of their own;
- a float array ``(N, X)`` with names (``static`` descriptors, summary features) gives its
  values; non-finite values are missing.

A bundle whose featurizer names no feature (raw waveforms, SMILES tokens, image slices)
gets no profile, and :class:`ProfileUnsupported` says why in a sentence the service shows.

Per feature the profile keeps ``n_bins`` quantile bins of the per-sample values
(``edges``, interior edges, ties merged) with the reference count in each bin and a last
bin for *missing*; and ``lo``/``hi``, the 0.5 % and 99.5 % quantiles of the observed values
(cells), with ``out_of_range``, the share of training cells at or beyond them. (A
winsorising featurizer, like the ICU normaliser, clips at those very quantiles, so this is
the share it clips.) Predictions are profiled the same way: one feature for a binary risk
or a regression output, one per class or label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PROFILE_VERSION = 1
#: Companions of a time grid: observation flags and time since the last observation.
GRID_COMPANIONS = ("mask", "delta")
#: Quantiles bounding the observed range of each feature (``lo``, ``hi``).
RANGE_QUANTILES = (0.005, 0.995)
#: Features beyond this many are not profiled (a code vocabulary of thousands), and said so.
MAX_FEATURES = 512
DECIMALS = 6


class ProfileUnsupported(ValueError):
    """The bundle's featurizer gives no named feature to profile."""


@dataclass(frozen=True)
class Part:
    """One profiled array: its name, feature names, and whether it is a per-step grid."""

    array: str
    names: tuple[str, ...]
    grid: bool
    mask: str | None = None


def plan(description: Any) -> tuple[list[Part], list[dict[str, str]]]:
    """The arrays of a :class:`~medseq.features.base.FeaturizerDescription` to profile, and
    the ones left out with the reason (reported in the profile, never silently)."""
    parts: list[Part] = []
    left: list[dict[str, str]] = []
    by_name = {a.name: a for a in description.outputs}
    for spec in description.outputs:
        dim = spec.dims[-1]
        names = description.feature_names.get(dim)
        if spec.name in GRID_COMPANIONS or spec.name == "lengths":
            continue
        if not names or not spec.dtype.startswith("float") or len(spec.dims) not in (2, 3):
            left.append({"array": spec.name, "reason": "no named float features"})
            continue
        mask = by_name.get("mask")
        same = mask is not None and tuple(mask.dims) == tuple(spec.dims)
        parts.append(Part(spec.name, tuple(names), len(spec.dims) == 3, "mask" if same else None))
    return parts, left


def profile_refusal(description: Any) -> str | None:
    """Why a featurizer gets no drift profile; None when it gets one."""
    parts, _ = plan(description)
    if parts:
        return None
    return (
        f"featurizer {description.kind!r} ({description.modality}) gives no array of named "
        f"features (outputs {description.output_names}), so drift monitoring has no "
        "per-feature distribution to compare"
    )


def summarise(parts: Sequence[Part], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per-sample values ``x`` (N, F) (NaN: missing) and the observed cells of each part.

    Returns ``{"x": (N, F), "cells": [(values, observed) per part]}``; grid cells are
    ``(N, T, X)``, flat ones ``(N, X)``.
    """
    columns, cells = [], []
    lengths = arrays.get("lengths")
    for part in parts:
        v = np.asarray(arrays[part.array], dtype=np.float64)
        observed = np.isfinite(v)
        if part.grid:
            if lengths is not None:
                steps = np.arange(v.shape[1])[None, :] < np.asarray(lengths)[:, None]
                observed &= steps[:, :, None]
            if part.mask is not None:
                observed &= np.asarray(arrays[part.mask]) > 0
            count = observed.sum(axis=1)
            total = np.where(observed, v, 0.0).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                columns.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
        else:
            columns.append(np.where(observed, v, np.nan))
        cells.append((v, observed))
    return {"x": np.concatenate(columns, axis=1), "cells": cells}


def out_of_range(
    cells: Sequence[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample and feature: observed cells at or beyond ``lo``/``hi``, and observed cells.

    A feature with ``lo == hi`` (one value in training) counts any other value.
    """
    outs, obs = [], []
    start = 0
    for v, observed in cells:
        k = v.shape[-1]
        low, high = lo[start : start + k], hi[start : start + k]
        flat = low == high
        with np.errstate(invalid="ignore"):
            beyond = np.where(flat, v != low, (v <= low) | (v >= high)) & observed
        axis = 1 if v.ndim == 3 else None
        outs.append(beyond.sum(axis=axis) if axis else beyond.astype(np.int64))
        obs.append(observed.sum(axis=axis) if axis else observed.astype(np.int64))
        start += k
    return np.concatenate(outs, axis=1), np.concatenate(obs, axis=1)


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(N, F) bin of each value: edges at or below it; missing (NaN) -> the last column.

    ``edges`` is (F, B - 1), padded with +inf; column ``B`` counts missing samples.
    """
    index = (x[:, :, None] >= edges[None, :, :]).sum(axis=2)
    return np.where(np.isnan(x), edges.shape[1] + 1, index)


def prediction_columns(
    predictions: np.ndarray, task: str, class_names: Sequence[str] | None
) -> tuple[np.ndarray, list[str]] | None:
    """(N, K) predictions and their names; None for per-step outputs (no one per sample)."""
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim == 1:
        return pred[:, None], ["risk" if task == "binary" else "prediction"]
    if pred.ndim != 2:
        return None
    names = list(class_names) if class_names and len(class_names) == pred.shape[1] else None
    return pred, [f"p_{n}" for n in (names or range(pred.shape[1]))]


def _features(x: np.ndarray, names: Sequence[str], n_bins: int) -> list[dict[str, Any]]:
    """Bins, reference counts and missing share of each column of ``x`` (N, F)."""
    q = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    out = []
    for j, name in enumerate(names):
        col = x[:, j]
        seen = col[np.isfinite(col)]
        edges: Any = np.unique(np.round(np.quantile(seen, q), DECIMALS)) if len(seen) else []
        padded = np.full((1, n_bins - 1), np.inf)
        padded[0, : len(edges)] = edges
        counts = np.bincount(bin_index(col[:, None], padded)[:, 0], minlength=n_bins + 1)
        out.append(
            {
                "name": str(name),
                "edges": [float(e) for e in edges],
                "counts": [int(c) for c in counts],
                "missing": round(float(np.mean(~np.isfinite(col))), DECIMALS),
            }
        )
    return out


def _ranges(cells: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for v, observed in cells:
        for j in range(v.shape[-1]):
            seen = v[..., j][observed[..., j]]
            q = np.quantile(seen, RANGE_QUANTILES) if len(seen) else (np.nan, np.nan)
            lo.append(round(float(q[0]), DECIMALS))
            hi.append(round(float(q[1]), DECIMALS))
    return np.array(lo), np.array(hi)


def _unique_names(parts: Sequence[Part]) -> list[str]:
    """Feature names; one that two arrays share is prefixed with its array (``static:Age``)."""
    every = [n for p in parts for n in p.names]
    return [n if every.count(n) == 1 else f"{p.array}:{n}" for p in parts for n in p.names]


def build_profile(
    description: Any,
    arrays: Mapping[str, np.ndarray],
    predictions: np.ndarray | None = None,
    *,
    task: str = "binary",
    class_names: Sequence[str] | None = None,
    n_bins: int = 10,
) -> dict[str, Any]:
    """The reference profile (plain JSON) of training ``arrays`` and ``predictions``.

    Parameters
    ----------
    description : FeaturizerDescription
        ``featurizer.describe()`` of the featurizer that made ``arrays``.
    arrays : mapping of str to ndarray
        ``transform``'s output for the training subjects.
    predictions : ndarray of shape (N',) or (N', K), optional
        Out-of-fold validation predictions: what the model gives on subjects it did not
        train on, as in service. Per-step outputs are not profiled (said in the profile).
    n_bins : int, default=10
        Quantile bins per feature (deciles); ties merge bins of discrete features.

    Raises
    ------
    ProfileUnsupported
        The featurizer names no feature (:func:`profile_refusal`).
    """
    refusal = profile_refusal(description)
    if refusal is not None:
        raise ProfileUnsupported(refusal)
    if n_bins < 2:
        raise ValueError(f"build_profile: n_bins must be >= 2, got {n_bins}")
    parts, left = plan(description)
    names = _unique_names(parts)
    if len(names) > MAX_FEATURES:
        raise ProfileUnsupported(
            f"featurizer {description.kind!r} names {len(names)} features, more than the "
            f"{MAX_FEATURES} a drift profile keeps; drift monitoring is not offered for it"
        )
    summary = summarise(parts, arrays)
    lo, hi = _ranges(summary["cells"])
    beyond, observed = out_of_range(summary["cells"], lo, hi)
    features = _features(summary["x"], names, n_bins)
    for j, feature in enumerate(features):
        share = beyond[:, j].sum() / max(int(observed[:, j].sum()), 1)
        feature.update(lo=lo[j], hi=hi[j], out_of_range=round(float(share), DECIMALS))
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION,
        "n_samples": len(summary["x"]),
        "n_bins": n_bins,
        "parts": [
            {"array": p.array, "grid": p.grid, "mask": p.mask, "n_features": len(p.names)}
            for p in parts
        ],
        "features": features,
        "not_profiled": left,
    }
    cols = None if predictions is None else prediction_columns(predictions, task, class_names)
    if cols is not None:
        profile["n_predictions"] = len(cols[0])
        profile["predictions"] = _features(cols[0], cols[1], n_bins)
    else:
        reason = "not given" if predictions is None else "per-step outputs"
        profile["not_profiled"] = [*left, {"array": "predictions", "reason": reason}]
    return profile


def parts_of(profile: Mapping[str, Any], description: Any) -> list[Part]:
    """The profiled parts, checked against the serving featurizer's description."""
    wanted, _ = plan(description)
    stored = [(p["array"], p["n_features"]) for p in profile["parts"]]
    if [(p.array, len(p.names)) for p in wanted] != stored:
        raise ValueError(
            f"drift profile: profiled arrays {stored} do not match the featurizer's "
            f"{[(p.array, len(p.names)) for p in wanted]}; the profile belongs to another "
            "featurizer (retrain the bundle)"
        )
    return wanted
