"""``ConvRNN``: causal convolutional front end + (bi)LSTM/GRU for long waveforms.

A 30 s ECG at 300 Hz has 9,000 samples and a MIT-BIH record 650,000: too many steps for a
recurrence to learn from directly. Strided convolutions learn local (QRS-scale) filters and
shorten the sequence by ``prod(conv_strides)`` before the RNN, the design of the strongest
CinC 2017 entries (e.g. Zihlmann et al. 2017, convolutional-recurrent networks; Clifford et
al. 2017 for the challenge). The convolutions are *causal* (left-padded), so output step
``j`` depends only on input samples before the end of its stride block: a record can then be
processed in chunks with the last few samples of each chunk carried as context, giving the
same outputs as one pass over the whole record (:meth:`ConvRNN.forward_chunk`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_bool, check_choice, check_dropout, check_int
from medseq.models.pooling import AdditiveAttention, gather_steps, valid_steps
from medseq.models.sequence_classifier import RecurrentEncoder

MODES = ("recording", "sequence")
CELLS = ("lstm", "gru")
POOLINGS = ("attention", "last")
KIND = "conv_rnn"


@dataclass(frozen=True)
class SignalModelConfig(ModelConfigBase):
    """Hyperparameters of :class:`ConvRNN` (JSON round-trip with ``to_dict``/``from_dict``).

    ``mode="recording"`` pools the RNN outputs into one prediction per input sequence, with
    additive attention (``pooling="attention"``, CinC 2017 rhythm classes) or by taking the
    last valid step (``pooling="last"``, a beat read after its preceding beats);
    ``mode="sequence"`` predicts at every RNN step (one step = ``prod(conv_strides)`` input
    samples, or one beat when the input is a beat feature sequence and ``conv_channels=()``).
    ``static_size > 0`` adds a static per-recording vector (e.g. the rhythm summaries of
    :mod:`medseq.features.signals.rhythm_summary`) to recording mode: it is encoded by one
    ``Linear(static_size, static_hidden_size)`` + ReLU and concatenated to the pooled RNN
    output before the output layer ("summary fusion", as :class:`~medseq.models.head.
    OutputHead` does for the ICU models); 0 (the default) is the model without it, whose
    parameters and ``to_dict`` are unchanged.
    ``kind`` names the model in :data:`medseq.models.registry.MODEL_KINDS`. The field checks
    are the shared ones of :mod:`medseq.models.config_checks`, so a bad TOML value is
    reported the same way for every model kind.
    """

    KINDS: ClassVar[tuple[str, ...]] = (KIND,)

    in_channels: int = 1
    n_outputs: int = 4
    kind: str = KIND
    conv_channels: tuple[int, ...] = (16, 32, 32)
    conv_strides: tuple[int, ...] = (4, 4, 2)
    kernel_size: int = 9
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    mode: str = "recording"
    pooling: str = "attention"
    attention_size: int = 32
    static_size: int = 0
    static_hidden_size: int = 32

    def _check_fields(self) -> None:
        owner = type(self).__name__
        for name in ("in_channels", "n_outputs", "hidden_size", "num_layers", "kernel_size"):
            check_int(owner, name, getattr(self, name), 1)
        check_int(owner, "attention_size", self.attention_size, 1)
        check_int(owner, "static_size", self.static_size, 0)
        check_int(owner, "static_hidden_size", self.static_hidden_size, 1)
        if self.static_size and self.mode != "recording":
            raise ValueError(f"{owner}: static_size > 0 needs mode='recording', got {self.mode!r}")
        object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        object.__setattr__(self, "conv_strides", tuple(self.conv_strides))
        for name in ("conv_channels", "conv_strides"):
            for value in getattr(self, name):
                check_int(owner, name, value, 1)
        if len(self.conv_channels) != len(self.conv_strides):
            raise ValueError(
                f"{owner}: conv_channels {self.conv_channels} and conv_strides "
                f"{self.conv_strides} must have the same length"
            )
        if any(s > self.kernel_size for s in self.conv_strides):
            raise ValueError(
                f"{owner}.conv_strides: each stride must be <= kernel_size={self.kernel_size}, "
                f"got {self.conv_strides}"
            )
        check_choice(owner, "cell", self.cell, CELLS)
        check_choice(owner, "mode", self.mode, MODES)
        check_choice(owner, "pooling", self.pooling, POOLINGS)
        check_bool(owner, "bidirectional", self.bidirectional)
        object.__setattr__(self, "dropout", check_dropout(owner, self.dropout))

    @property
    def total_stride(self) -> int:
        """Input samples per RNN step."""
        return math.prod(self.conv_strides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (tuples as lists); the static fields only when ``static_size > 0``, so
        a model without summary fusion keeps the JSON of bundles saved before it existed."""
        out = super().to_dict()
        if not self.static_size:
            out.pop("static_size")
            out.pop("static_hidden_size")
        return out


class CausalConv(nn.Module):
    """Conv1d (stride ``s``, kernel ``k``) left-padded by ``k - s`` samples, BatchNorm, ReLU.

    Output step ``j`` reads input samples ``[j s - k + s, j s + s - 1]``. ``context`` holds
    the ``k - s`` input steps before the chunk (zeros at the record start).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.pad = kernel_size - stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(B, C, T)`` with ``T`` a multiple of the stride -> ``(B, C', T / s)``, new context."""
        if context is None:
            context = x.new_zeros(x.shape[0], x.shape[1], self.pad)
        full = torch.cat([context, x], dim=2)
        new_context = full[:, :, full.shape[2] - self.pad :]
        return torch.relu(self.norm(self.conv(full))), new_context


class ConvRNN(nn.Module):
    r"""Convolutional front end + recurrent encoder + attention pooling or per-step head.

    .. math::
        z_{1..T'} &= \mathrm{CausalConv}^{(n)} \circ \dots \circ \mathrm{CausalConv}^{(1)}
            (x_{1..T}), \qquad T' = \lceil T / \textstyle\prod_l s_l \rceil \\
        o_{1..T'} &= \mathrm{RNN}(z_{1..T'}) \\
        \text{logits} &= W\,\mathrm{attention}(o, L') + b \quad (\text{recording}), \qquad
        \text{logits}_t = W o_t + b \quad (\text{sequence})

    Inputs
    ------
    values : Tensor of shape (B, T, C), float32 samples (time first, as ``Signal.samples``)
    lengths : Tensor of shape (B,), int64, valid samples per record in ``[1, T]``
    static : Tensor of shape (B, static_size) or None; required when ``static_size > 0``
        (fused with the pooled vector, recording mode only), absent otherwise

    Outputs
    -------
    logits : (B, n_outputs) for ``mode="recording"``; (B, T', n_outputs) for ``"sequence"``,
    valid for steps ``< output_lengths(lengths)``.
    """

    def __init__(self, config: SignalModelConfig) -> None:
        super().__init__()
        self.config = config
        sizes = (config.in_channels, *config.conv_channels)
        self.convs = nn.ModuleList(
            CausalConv(sizes[i], sizes[i + 1], config.kernel_size, config.conv_strides[i])
            for i in range(len(config.conv_channels))
        )
        self.encoder = RecurrentEncoder(
            config.cell,
            sizes[-1],
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        size = self.encoder.output_size
        self.attention = AdditiveAttention(size, config.attention_size)
        self.dropout = nn.Dropout(config.dropout)
        if config.static_size:
            self.static_net = nn.Sequential(
                nn.Linear(config.static_size, config.static_hidden_size), nn.ReLU()
            )
            size += config.static_hidden_size
        self.output = nn.Linear(size, config.n_outputs)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """RNN steps per record: ``ceil(lengths / total_stride)``."""
        stride = self.config.total_stride
        return torch.div(lengths + stride - 1, stride, rounding_mode="floor")

    def _front(self, values: Tensor, contexts: list | None) -> tuple[Tensor, list[Tensor]]:
        stride = self.config.total_stride
        x = values.transpose(1, 2)  # (B, C, T)
        extra = (-x.shape[2]) % stride
        if extra:
            x = nn.functional.pad(x, (0, extra))
        new_contexts = []
        for i, conv in enumerate(self.convs):
            x, ctx = conv(x, None if contexts is None else contexts[i])
            new_contexts.append(ctx)
        return x.transpose(1, 2), new_contexts  # (B, T', C')

    def _check(self, values: Tensor) -> None:
        if values.ndim != 3 or values.shape[2] != self.config.in_channels:
            raise ValueError(
                f"ConvRNN expects values of shape (B, T, {self.config.in_channels}), "
                f"got {tuple(values.shape)}"
            )

    def _check_static(self, static: Tensor | None, batch: int) -> None:
        size = self.config.static_size
        if size == 0:
            if static is not None:
                raise ValueError("ConvRNN got a static input; build it with static_size=S")
            return
        if static is None or tuple(static.shape) != (batch, size):
            got = None if static is None else tuple(static.shape)
            raise ValueError(f"ConvRNN expects static of shape ({batch}, {size}), got {got}")

    def _head(self, pooled: Tensor, static: Tensor | None) -> Tensor:
        if self.config.static_size:
            pooled = torch.cat([pooled, self.static_net(static)], dim=1)
        return self.output(self.dropout(pooled))

    def forward(self, values: Tensor, lengths: Tensor, static: Tensor | None = None) -> Tensor:
        self._check(values)
        self._check_static(static, values.shape[0])
        valid = valid_steps(lengths, values.shape[1]).unsqueeze(2)
        values = values.masked_fill(~valid, 0.0)
        z, _ = self._front(values, None)  # (B, T', C')
        steps = self.output_lengths(lengths).clamp(max=z.shape[1])
        outputs = self.encoder(z, steps)  # (B, T', D)
        if self.config.mode == "sequence":
            return self.step_logits(outputs)  # (B, T', K)
        if self.config.pooling == "last":
            pooled = gather_steps(outputs, steps - 1)  # (B, D)
        else:
            pooled, _ = self.attention(outputs, steps)  # (B, D)
        return self._head(pooled, static)  # (B, K)

    def init_state(self) -> dict:
        """Empty carried state for :meth:`forward_chunk` (zeros at the record start)."""
        return {"contexts": None, "hidden": None}

    def forward_chunk(self, values: Tensor, state: dict) -> tuple[Tensor, dict]:
        """Per-step RNN outputs ``(B, T'_chunk, D)`` of one chunk, and the state after it.

        Chunks must hold a multiple of ``total_stride`` samples (except the last one of a
        record) and records in a batch must be unpadded. The state carries the convolution
        context and the RNN hidden state; the caller detaches it for truncated BPTT.
        """
        self._check(values)
        if self.config.bidirectional:
            raise ValueError("forward_chunk needs bidirectional=False (a backward RNN reads ahead)")
        if state.get("last_chunk_done"):
            raise ValueError("only the last chunk may be shorter than a multiple of total_stride")
        z, contexts = self._front(values, state["contexts"])
        outputs, hidden = self.encoder.rnn(z, state["hidden"])
        new_state = {
            "contexts": contexts,
            "hidden": hidden,
            "last_chunk_done": bool(values.shape[1] % self.config.total_stride),
        }
        return outputs, new_state

    def pool_update(self, pool: tuple | None, outputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Fold one chunk's outputs ``(B, t, D)`` into an online attention pool.

        The pool is ``(running max score, sum of exp(score - max), weighted sum of outputs)``,
        the online softmax of streaming attention: after every chunk of a record,
        :meth:`pool_logits` equals attention pooling over all steps seen so far, while the
        memory does not grow with the record length. With ``pooling="last"`` the pool is
        the last step's output, kept in the same three-slot shape.
        """
        if self.config.pooling == "last":
            last = outputs[:, -1]
            ones = last.new_ones(last.shape[0])
            return ones, ones, last
        scores = self.attention.score(torch.tanh(self.attention.proj(outputs))).squeeze(2)
        chunk_max = scores.max(dim=1).values  # (B,)
        new_max = chunk_max if pool is None else torch.maximum(pool[0], chunk_max)
        w = torch.exp(scores - new_max.unsqueeze(1))  # (B, t)
        total, weighted = w.sum(1), torch.bmm(w.unsqueeze(1), outputs).squeeze(1)
        if pool is not None:
            scale = torch.exp(pool[0] - new_max)
            total = total + pool[1] * scale
            weighted = weighted + pool[2] * scale.unsqueeze(1)
        return new_max, total, weighted

    def step_logits(self, outputs: Tensor) -> Tensor:
        """Per-step logits ``(B, t, n_outputs)`` from RNN outputs (sequence mode)."""
        return self.output(self.dropout(outputs))

    def pool_logits(
        self, pool: tuple[Tensor, Tensor, Tensor], static: Tensor | None = None
    ) -> Tensor:
        """Recording logits ``(B, n_outputs)`` from an online attention pool."""
        self._check_static(static, pool[2].shape[0])
        return self._head(pool[2] / pool[1].unsqueeze(1), static)

    @staticmethod
    def detach_state(state: dict) -> dict:
        """The carried state with its gradient history cut (the border of a TBPTT chunk)."""
        hidden = state["hidden"]
        if isinstance(hidden, tuple):
            hidden = tuple(h.detach() for h in hidden)
        elif hidden is not None:
            hidden = hidden.detach()
        contexts = state["contexts"]
        contexts = None if contexts is None else [c.detach() for c in contexts]
        return {**state, "hidden": hidden, "contexts": contexts}

    def chunked_forward(
        self, values: Tensor, chunk_samples: int, static: Tensor | None = None
    ) -> Tensor:
        """Same logits as :meth:`forward` on unpadded ``(B, T, C)``, in bounded memory.

        Only one chunk of activations is alive at a time (call it under ``torch.no_grad()``
        for inference). Recording mode pools with :meth:`pool_update`, so the memory does not
        grow with ``T``; sequence mode returns the per-step logits ``(B, T', K)``.
        """
        if chunk_samples <= 0 or chunk_samples % self.config.total_stride:
            raise ValueError(
                f"chunk_samples must be a positive multiple of total_stride="
                f"{self.config.total_stride}, got {chunk_samples}"
            )
        state, pool, step_logits = self.init_state(), None, []
        for start in range(0, values.shape[1], chunk_samples):
            outputs, state = self.forward_chunk(values[:, start : start + chunk_samples], state)
            if self.config.mode == "sequence":
                step_logits.append(self.step_logits(outputs))
            else:
                pool = self.pool_update(pool, outputs)
        if self.config.mode == "sequence":
            return torch.cat(step_logits, dim=1)
        return self.pool_logits(cast(tuple[Tensor, Tensor, Tensor], pool), static)
