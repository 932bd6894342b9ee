"""Occlusion (Captum): the change in output when a block of hours of one variable is reset.

Zeiler & Fergus (2014), "Visualizing and understanding convolutional networks". A block
of ``window_steps`` consecutive steps of one variable is set to the baseline (0, the
training mean after normalisation) and the drop in the explained output (the logit, see
:class:`~medseq.explain.attribution.BundleOutput`) is credited to every cell of the
block. Unlike gradients it needs no differentiability and never saturates, at the cost
of ``ceil(T / window_steps) * F`` forward passes per batch; it is a cross-check of
integrated gradients for one patient rather than a dataset-wide tool.
"""

from __future__ import annotations

import numpy as np
import torch

from medseq.explain.attribution import (
    Attribution,
    BundleOutput,
    _inputs,
    _outputs,
    _tensors,
    time_grid,
)


def occlusion(
    bundle,
    features: dict[str, np.ndarray],
    *,
    window_steps: int = 6,
    batch_size: int = 64,
) -> Attribution:
    """Occlusion map over ``values`` (N, T, F) with blocks of ``window_steps`` hours.

    Parameters
    ----------
    bundle : medseq.bundle.Bundle
    features : dict of ndarray
        The bundle featurizer's output for N stays.
    window_steps : int, default=6
        Block length in time steps (strides are the same, so blocks do not overlap).
    batch_size : int, default=64

    Returns
    -------
    Attribution
        ``method="occlusion"``; ``static`` is None and ``convergence_delta`` NaN
        (occlusion has no completeness property).
    """
    from captum.attr import Occlusion

    if isinstance(window_steps, bool) or not isinstance(window_steps, int) or window_steps < 1:
        raise ValueError(f"window_steps must be an int >= 1, got {window_steps!r}")
    grid = time_grid(bundle)
    forward = BundleOutput(bundle.members, bundle.task)
    occluder = Occlusion(forward)
    maps, outs = [], []
    n = len(features["lengths"])
    for start in range(0, n, batch_size):
        batch = _tensors({k: v[start : start + batch_size] for k, v in features.items()})
        inputs, extra = _inputs(batch, use_static=False)
        with torch.no_grad():
            attr = occluder.attribute(
                inputs[0],
                sliding_window_shapes=(window_steps, 1),
                strides=(window_steps, 1),
                baselines=0.0,
                target=0,
                additional_forward_args=extra,
            )
        maps.append(attr.numpy())
        outs.append(_outputs(forward, inputs, extra))
    out = np.concatenate(outs)
    return Attribution(
        values=np.concatenate(maps),
        static=None,
        output=out[:, 0],
        baseline_output=out[:, 1],
        convergence_delta=np.full(n, np.nan),
        feature_names=grid.names("F"),
        static_names=[],
        lengths=np.asarray(features["lengths"]),
        step_hours=grid.hours()[0],
        method="occlusion",
        extra={"window_steps": float(window_steps)},
    )
