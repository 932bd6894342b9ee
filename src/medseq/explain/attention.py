"""Attention weights over time of attention-pooling models.

An attention-pooling model (``pooling="attention"``) summarises a stay as
``sum_t alpha_t o_t`` with weights ``alpha`` that sum to 1 over the valid steps
(:class:`medseq.models.pooling.AdditiveAttention`). The weights say which hours' hidden
states the prediction was read from; they are not attributions to input variables (a
hidden state at hour 30 carries the whole history up to hour 30; Jain & Wallace, 2019,
"Attention is not explanation"), so medseq shows them beside integrated gradients, not
instead of them.
"""

from __future__ import annotations

import numpy as np
import torch


def has_attention(bundle) -> bool:
    """Whether the bundle's models pool with attention."""
    return bundle.model_config.pooling == "attention"


@torch.no_grad()
def attention_weights(bundle, features: dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Attention weights ``(N, T)`` averaged over the bundle's members.

    Each row sums to 1 over the stay's valid steps and is 0 on padding.

    Raises
    ------
    ValueError
        If the bundle's models do not pool with attention.
    """
    if not has_attention(bundle):
        raise ValueError(
            f"attention weights need a model with pooling='attention', this bundle's is "
            f"{bundle.model_config.pooling!r}; use integrated_gradients for any model"
        )
    keys = [k for k in ("values", "mask", "delta", "lengths", "static") if k in features]
    n = len(features["lengths"])
    per_member = []
    for member in bundle.members:
        member.eval()
        chunks = []
        for start in range(0, n, batch_size):
            batch = {k: torch.as_tensor(features[k][start : start + batch_size]) for k in keys}
            chunks.append(member(**batch, return_attention=True)[1])
        per_member.append(torch.cat(chunks).numpy())
    return np.mean(per_member, axis=0)
