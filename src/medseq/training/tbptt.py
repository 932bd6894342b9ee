"""Truncated backpropagation through time for models that carry state across chunks.

Williams & Peng (1990), "An efficient gradient-based algorithm for on-line training of
recurrent network trajectories": the recurrence runs over the whole sequence, but the
gradient is propagated back through the last ``k`` steps only. Here ``k = tbptt_steps``
recurrent steps (``tbptt_steps * total_stride`` input samples for ``ConvRNN``); everything
before that window runs chunk by chunk without an autograd graph, and the carried state
(RNN hidden state, convolution context, online attention pool) is detached at the window's
border. Training memory is then bounded by one chunk plus the window, whatever the record
length, which is what lets a 30-minute 360 Hz record (650,000 samples) be trained on.

Recording mode (one label per record): :func:`tbptt_forward` gives the record's logits with a
graph through the last window only. Sequence mode (one label per step, NaN = none):
:func:`tbptt_backward` runs chunk by chunk, back-propagates each chunk's loss through that
chunk only and accumulates the gradients, so every label contributes, scaled so that the
summed loss equals the loss of one pass over the whole record.

A model qualifies when it has ``init_state()``, ``forward_chunk(values, state)``,
``detach_state(state)``, ``pool_update(pool, outputs)``, ``pool_logits(pool)``,
``step_logits(outputs)`` and ``config.total_stride`` (see :class:`medseq.models.conv_rnn.ConvRNN`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import torch
from torch import Tensor, nn

REQUIRED = (
    "init_state",
    "forward_chunk",
    "detach_state",
    "pool_update",
    "pool_logits",
    "step_logits",
)
#: A module with the methods in REQUIRED and ``config.total_stride`` (checked by
#: :func:`check_tbptt_model`); duck-typed, since nn.Module types its attributes as Tensor | Module.
ChunkedModel: TypeAlias = Any


def check_tbptt_model(model: nn.Module) -> None:
    """Raise naming what is missing when ``model`` cannot carry state across chunks."""
    missing = [name for name in REQUIRED if not hasattr(model, name)]
    config = getattr(model, "config", None)
    if missing or not hasattr(config, "total_stride"):
        raise ValueError(
            f"TrainConfig.tbptt_steps needs a model that carries state across chunks "
            f"(e.g. ConvRNN); {type(model).__name__} lacks {missing or ['config.total_stride']}"
        )
    if getattr(config, "bidirectional", False):
        raise ValueError(
            "TrainConfig.tbptt_steps needs a unidirectional model (a backward recurrence "
            "reads the future, which a chunk does not have)"
        )


def window_start(n_samples: int, window_samples: int, stride: int) -> int:
    """First sample of the gradient window: the last ``window_samples``, on a stride border."""
    if n_samples <= window_samples:
        return 0
    return ((n_samples - window_samples) // stride) * stride


def tbptt_forward(
    model: ChunkedModel,
    values: Tensor,
    lengths: Tensor,
    tbptt_steps: int,
    static: Tensor | None = None,
) -> Tensor:
    """Recording logits ``(B, K)`` whose graph reaches back ``tbptt_steps`` steps only.

    The values equal ``model(values, lengths, static)`` (the state is carried, not reset),
    but the gradient stops at the window border. Records in a batch must be unpadded (equal
    lengths): cut fixed windows or random crops first. ``static`` is the per-recording input
    of a model with ``static_size > 0`` (fused into the head, so inside the graph).
    """
    if bool((lengths != values.shape[1]).any()):
        raise ValueError(
            "truncated BPTT needs unpadded batches (all lengths == T); cut fixed-length "
            "windows or random crops (medseq.features.signals.signal) before training"
        )
    stride = model.config.total_stride
    window = tbptt_steps * stride
    border = window_start(values.shape[1], window, stride)
    state, pool = model.init_state(), None
    with torch.no_grad():
        for start in range(0, border, window):
            stop = min(start + window, border)
            outputs, state = model.forward_chunk(values[:, start:stop], state)
            pool = model.pool_update(pool, outputs)
    state = model.detach_state(state)
    pool = None if pool is None else tuple(p.detach() for p in pool)
    outputs, _ = model.forward_chunk(values[:, border:], state)
    return model.pool_logits(model.pool_update(pool, outputs), static)


def _label_mass(loss_fn: nn.Module, y: Tensor) -> Tensor:
    """What a mean-reduced masked loss divides by: the count (or class-weight sum) of labels."""
    observed = ~torch.isnan(y)
    weight = getattr(loss_fn, "weight", None)
    if weight is None:
        return observed.sum().to(torch.float32)
    return weight[y[observed].long()].sum()


def _sequence_backward(
    model: ChunkedModel, values: Tensor, y: Tensor, loss_fn: nn.Module, tbptt_steps: int
) -> Tensor:
    stride = model.config.total_stride
    n_steps = -(-values.shape[1] // stride)
    if y.ndim != 2 or y.shape[1] != n_steps:
        raise ValueError(
            f"sequence labelling needs y of shape (B, {n_steps}) (one label per "
            f"{stride}-sample step, NaN where none), got {tuple(y.shape)}"
        )
    total_mass = _label_mass(loss_fn, y).clamp_min(1e-12)
    state, total = model.init_state(), values.new_zeros(())
    for first in range(0, n_steps, tbptt_steps):
        chunk = values[:, first * stride : (first + tbptt_steps) * stride]
        outputs, state = model.forward_chunk(chunk, state)
        y_chunk = y[:, first : first + outputs.shape[1]]
        mass = _label_mass(loss_fn, y_chunk)
        if mass > 0:
            loss = loss_fn(model.step_logits(outputs), y_chunk) * (mass / total_mass)
            loss.backward()
            total = total + loss.detach()
        state = model.detach_state(state)
    return total


def tbptt_backward(
    model: ChunkedModel,
    values: Tensor,
    lengths: Tensor,
    y: Tensor,
    loss_fn: nn.Module,
    tbptt_steps: int,
    static: Tensor | None = None,
) -> Tensor:
    """Back-propagate the batch loss with truncated BPTT; return the (detached) loss.

    Recording mode: ``loss_fn(tbptt_forward(...), y)``. Sequence mode: per-chunk losses whose
    sum equals the loss of one full pass (each chunk's mean is weighted by its share of the
    labels), each back-propagated through its own chunk only.
    """
    if model.config.mode == "recording":
        loss = loss_fn(tbptt_forward(model, values, lengths, tbptt_steps, static), y)
        loss.backward()
        return loss.detach()
    if bool((lengths != values.shape[1]).any()):
        raise ValueError("truncated BPTT needs unpadded batches (all lengths == T)")
    return _sequence_backward(model, values, y, loss_fn, tbptt_steps)
