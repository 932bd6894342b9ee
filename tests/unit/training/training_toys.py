"""A tiny recurrent model and learnable synthetic data for the training tests.

The real models are written elsewhere; this one only follows the forward contract
``forward(values, mask, delta, lengths, static=None) -> logits (B, n_outputs)``. It is a
plain module, also imported by the subprocess scripts of the resume test.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyGRU(nn.Module):
    """GRU over [values, mask], last valid step, dropout, static concatenated, linear head."""

    def __init__(
        self, n_features: int = 3, hidden_size: int = 8, n_outputs: int = 1, static_size: int = 2
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(2 * n_features, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(hidden_size + static_size, n_outputs)

    def forward(self, values, mask, delta, lengths, static=None):
        out, _ = self.gru(torch.cat([values, mask], dim=-1))  # (B, T, H)
        last = out[torch.arange(out.shape[0], device=out.device), lengths - 1]  # (B, H)
        features = [self.dropout(last)]
        if static is not None:
            features.append(static)
        return self.head(torch.cat(features, dim=-1))  # (B, n_outputs)


class NoStatic(nn.Module):
    """Takes only values and lengths: the trainer must not pass mask, delta or static."""

    def __init__(self, n_features: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, values, lengths):
        steps = torch.arange(values.shape[1], device=values.device)
        valid = (steps[None, :] < lengths[:, None]).unsqueeze(-1).float()  # (B, T, 1)
        pooled = (values * valid).sum(1) / lengths[:, None].float()
        return self.linear(pooled)


def make_data(
    n: int = 128, *, seed: int = 0, task: str = "binary", n_steps: int = 10, n_features: int = 3
) -> dict[str, np.ndarray]:
    """Feature dict whose label depends on the mean of feature 0 over the valid steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, n_steps + 1, size=n)
    valid = np.arange(n_steps)[None, :] < lengths[:, None]  # (N, T)
    values = rng.normal(size=(n, n_steps, n_features)).astype(np.float32) * valid[..., None]
    mask = (rng.random((n, n_steps, n_features)) < 0.8).astype(np.float32) * valid[..., None]
    delta = np.cumsum(np.ones_like(mask), axis=1).astype(np.float32)
    static = rng.normal(size=(n, 2)).astype(np.float32)
    signal = values[..., 0].sum(1) / lengths + 0.5 * static[:, 0]
    if task == "binary":
        y = (signal > 0).astype(np.float32)
    elif task == "multilabel":
        y = np.stack([signal > 0, static[:, 1] > 0], axis=1).astype(np.float32)
    elif task == "multiclass":
        y = np.digitize(signal, [-0.3, 0.3]).astype(np.float32)
    else:
        y = signal.astype(np.float32)
    return {
        "values": values,
        "mask": mask,
        "delta": delta,
        "lengths": lengths.astype(np.int64),
        "static": static,
        "y": y,
    }
