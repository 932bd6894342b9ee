"""``SequenceClassifier``: fused RNN / LSTM / GRU over padded batches, pooling, static fusion."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from medseq.models.config import ModelConfig
from medseq.models.fused_gru import fused_gru
from medseq.models.fused_select import use_fused_gru
from medseq.models.head import OutputHead, check_inputs, check_model_config, zero_padding
from medseq.models.init import init_recurrent_
from medseq.models.pooling import Pooling, valid_steps

_FUSED: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def reverse_within_length(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence's valid steps and leave its padding in place.

    ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, ``x[b, t]`` otherwise.
    The map is its own inverse. ``x`` is ``(B, T, D)``, ``lengths`` ``(B,)``.
    """
    n_steps = x.shape[1]
    steps = torch.arange(n_steps, device=x.device).unsqueeze(0)  # (1, T)
    reverse = lengths.unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(valid_steps(lengths, n_steps), reverse, steps)
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))


def _run(rnn: nn.Module, x: Tensor) -> Tensor:
    """``rnn(x)[0]``, through the fused GRU training path where it is switched on."""
    if isinstance(rnn, nn.GRU) and use_fused_gru(rnn, x):  # see medseq.models.fused_select
        return fused_gru(rnn, x)[0]
    return rnn(x)[0]


class RecurrentEncoder(nn.Module):
    r"""Stacked fused recurrence over padded ``(B, T, I)`` input; output ``(B, T, D)``.

    Unidirectional: one fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (``batch_first=True``,
    ``num_layers``, inter-layer ``dropout``). Its output at step ``t`` depends only on steps
    ``<= t``, so padding after ``lengths`` cannot reach a valid step. ``D = H``.

    Bidirectional: a fused bidirectional module would start its backward direction at the
    last *padded* step, so padding would leak into every valid output. Instead each layer holds
    two one-layer fused modules: ``forward_layers[k]`` reads the input as is,
    ``backward_layers[k]`` reads it reversed **within each length**
    (:func:`reverse_within_length`, which keeps padding at the end), and its output is reversed
    back, so both halves are aligned to the original time axis:

    .. math::
        o_t = [\overrightarrow{h}_t ; \overleftarrow{h}_t], \qquad
        \overleftarrow{h}_t = f(x_t, \overleftarrow{h}_{t+1}), \quad
        \overleftarrow{h}_{L} = 0

    ``D = 2H``; the final backward state is at step 0. With all lengths equal to ``T`` this is
    exactly torch's bidirectional module (same weights as ``weight_*_l{k}`` / ``_reverse``).

    A GRU's training forward may run through :func:`medseq.models.fused_gru.fused_gru` (same
    modules and parameters, another way to compute them) when the fused path is switched on
    (:mod:`medseq.models.fused_select`; off by default).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in _FUSED:
            raise ValueError(f"cell must be one of {tuple(_FUSED)}, got {cell!r}")
        fused = _FUSED[cell]
        self.cell = cell
        self.bidirectional = bidirectional
        self.num_layers = num_layers
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout)
        if not bidirectional:
            inter = dropout if num_layers > 1 else 0.0
            self.rnn = fused(input_size, hidden_size, num_layers, batch_first=True, dropout=inter)
            return
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(fused(s, hidden_size, batch_first=True) for s in sizes)
        self.backward_layers = nn.ModuleList(fused(s, hidden_size, batch_first=True) for s in sizes)

    def extra_repr(self) -> str:
        return f"{self.cell!r}, num_layers={self.num_layers}, bidirectional={self.bidirectional}"

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``(B, T, I)``, ``(B,)`` -> ``(B, T, D)``."""
        if not self.bidirectional:
            return _run(self.rnn, x)
        pairs = zip(self.forward_layers, self.backward_layers, strict=True)
        for k, (forward_rnn, backward_rnn) in enumerate(pairs):
            if k > 0:
                x = self.dropout(x)
            ahead = _run(forward_rnn, x)
            behind = _run(backward_rnn, reverse_within_length(x, lengths))
            x = torch.cat([ahead, reverse_within_length(behind, lengths)], dim=2)
        return x


class SequenceClassifier(nn.Module):
    r"""Recurrent classifier (or regressor) over irregular clinical sequences.

    .. math::
        x_t &= [\text{values}_t ; m_t \text{ (input\_mask)} ; \delta_t \text{ (input\_delta)}]
            \\
        o_{1..T} &= \mathrm{RNN}(x_{1..T}) \quad \text{(RecurrentEncoder)} \\
        p &= \mathrm{pool}(o, L) \quad \text{(last, masked mean or additive attention)} \\
        \text{logits} &= W_o\,\mathrm{dropout}([p ; \mathrm{ReLU}(W_s\,\text{static} + b_s)])
            + b_o

    Padding (steps ``t >= lengths``) is zeroed on entry and excluded by pooling, so appending
    padding of any value never changes the logits. The static vector is fused late (after
    pooling); it does not initialise ``h0``, so the recurrence can be streamed step by step
    from a zero state.

    Parameters
    ----------
    config : ModelConfig
        ``kind="rnn_classifier"``; see :class:`ModelConfig` for every field.

    Inputs
    ------
    values, mask, delta : Tensor of shape (B, T, F), float32
    lengths : Tensor of shape (B,), int64, each in ``[1, T]``
    static : Tensor of shape (B, S) or None (required when ``config.static_size > 0``)
    return_attention : bool, default=False
        Also return the attention weights ``(B, T)`` (``pooling="attention"`` only).

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        check_model_config(config, "rnn_classifier", "SequenceClassifier")
        self.config = config
        self.encoder = RecurrentEncoder(
            config.cell,
            config.recurrent_input_size,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        backward = config.hidden_size if config.bidirectional else 0
        size = self.encoder.output_size
        self.pooling = Pooling(config.pooling, size, config.attention_size, backward)
        self.head = OutputHead(
            size, config.static_size, config.static_hidden_size, config.dropout, config.n_outputs
        )
        if config.init == "orthogonal":
            init_recurrent_(self)

    def extra_repr(self) -> str:
        c = self.config
        return f"pooling={c.pooling!r}, input_mask={c.input_mask}, input_delta={c.input_delta}"

    def forward(
        self,
        values: Tensor,
        mask: Tensor,
        delta: Tensor,
        lengths: Tensor,
        static: Tensor | None = None,
        return_attention: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        c = self.config
        sizes = (c.input_size, c.static_size)
        check_inputs("SequenceClassifier", values, mask, delta, lengths, static, sizes)
        if return_attention and c.pooling != "attention":
            raise ValueError(f"return_attention=True needs pooling='attention', got {c.pooling!r}")
        parts = [values] + [mask] * c.input_mask + [delta] * c.input_delta
        x = zero_padding(lengths, torch.cat(parts, dim=2))[0]  # (B, T, I)
        outputs = self.encoder(x, lengths)  # (B, T, D)
        pooled, weights = self.pooling(outputs, lengths)  # (B, D), (B, T) | None
        logits = self.head(pooled, static)  # (B, n_outputs)
        if return_attention:
            return logits, weights
        return logits
