"""Pool per-step outputs ``(B, T, D)`` into one vector ``(B, D)`` using valid steps only.

A step ``t`` of sequence ``b`` is valid when ``t < lengths[b]``. Padding steps never reach the
result, whatever they hold (they are replaced by zeros with ``torch.where``, so even NaN
padding is harmless).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medseq.models.config import POOLINGS


def valid_steps(lengths: Tensor, n_steps: int) -> Tensor:
    """Boolean ``(B, T)`` that is True where ``t < lengths[b]``."""
    steps = torch.arange(n_steps, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def gather_steps(outputs: Tensor, index: Tensor) -> Tensor:
    """``outputs[b, index[b]]`` for every ``b``: ``(B, T, D)``, ``(B,)`` -> ``(B, D)``."""
    idx = index.long().view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
    return outputs.gather(1, idx).squeeze(1)


def last_pool(outputs: Tensor, lengths: Tensor, backward_size: int = 0) -> Tensor:
    """Final state of each direction.

    The first ``D - backward_size`` features are a forward recurrence: taken at
    ``lengths - 1``. The last ``backward_size`` features are a backward recurrence aligned to
    the original time axis (its step ``t`` has read ``t .. lengths-1``): taken at step 0.
    """
    forward_size = outputs.shape[2] - backward_size
    last = gather_steps(outputs[..., :forward_size], lengths - 1)
    if backward_size == 0:
        return last
    return torch.cat([last, outputs[:, 0, forward_size:]], dim=1)


def mean_pool(outputs: Tensor, lengths: Tensor) -> Tensor:
    r"""Masked mean over valid steps: :math:`\frac{1}{L_b} \sum_{t < L_b} o_{b,t}`."""
    valid = valid_steps(lengths, outputs.shape[1]).unsqueeze(2)
    total = torch.where(valid, outputs, torch.zeros_like(outputs)).sum(dim=1)
    return total / lengths.to(outputs.dtype).unsqueeze(1)


class AdditiveAttention(nn.Module):
    r"""Additive (Bahdanau-style) attention pooling over valid steps.

    Bahdanau, Cho & Bengio (2015), "Neural machine translation by jointly learning to align
    and translate", with a learned query vector ``v`` in place of a decoder state:

    .. math::
        e_t &= v^\top \tanh(W o_t + b) \\
        \alpha_t &= \frac{\exp e_t}{\sum_{s < L} \exp e_s} \quad (t < L), \qquad
            \alpha_t = 0 \quad (t \ge L) \\
        \text{pooled} &= \sum_{t < L} \alpha_t o_t

    Parameters
    ----------
    input_size : int
        ``D``, the size of each step's output.
    attention_size : int
        ``A``, the width of the scorer.
    """

    def __init__(self, input_size: int, attention_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.attention_size = attention_size
        self.proj = nn.Linear(input_size, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.attention_size}"

    def forward(self, outputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, D)``, ``(B,)`` -> pooled ``(B, D)``, weights ``(B, T)`` (0 on padding)."""
        valid = valid_steps(lengths, outputs.shape[1])
        clean = torch.where(valid.unsqueeze(2), outputs, torch.zeros_like(outputs))
        scores = self.score(torch.tanh(self.proj(clean))).squeeze(2)  # (B, T)
        scores = scores.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), clean).squeeze(1)
        return pooled, weights


class Pooling(nn.Module):
    """One of ``"last"``, ``"mean"``, ``"attention"`` behind a single interface.

    Parameters
    ----------
    mode : {"last", "mean", "attention"}
    input_size : int
        ``D``, the size of each step's output.
    attention_size : int, default=32
        Width of the attention scorer (``mode="attention"`` only).
    backward_size : int, default=0
        Trailing features of ``outputs`` that come from a backward recurrence (``"last"``
        takes them at step 0, see :func:`last_pool`).
    """

    def __init__(
        self, mode: str, input_size: int, attention_size: int = 32, backward_size: int = 0
    ) -> None:
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
        self.mode = mode
        self.input_size = input_size
        self.backward_size = backward_size
        self.attention: AdditiveAttention | None = None
        if mode == "attention":
            self.attention = AdditiveAttention(input_size, attention_size)

    def extra_repr(self) -> str:
        text = f"{self.mode!r}, {self.input_size}"
        return text + (f", backward_size={self.backward_size}" if self.backward_size else "")

    def forward(self, outputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(B, T, D)``, ``(B,)`` -> pooled ``(B, D)`` and attention weights ``(B, T)`` or None."""
        if self.attention is not None:
            return self.attention(outputs, lengths)
        if self.mode == "mean":
            return mean_pool(outputs, lengths), None
        return last_pool(outputs, lengths, self.backward_size), None
