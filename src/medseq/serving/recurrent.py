"""One recurrent step of a bundled model in numpy, for the streaming engine.

The weights are copied out of each torch member once, as float64 arrays; a step is then a
few matrix-vector products with no torch dispatch, which is what makes a per-observation
update cost microseconds (see ``benchmarks/bench_serving.py``). The equations are those of
:mod:`medseq.models.cells` (torch's gate order and GRU variant) and of
:class:`medseq.models.GRUD`; ``tests/unit/serving`` checks every step against the torch
model over real stays.

State of one member, kept per patient:

``hidden`` (L, K*H)
    per layer the hidden state (``K = 2`` for an LSTM: ``[h ; c]``).
``pool`` (D + 2,)
    running terms of the pooling over the closed steps: ``[m, s, acc]`` with, for
    ``"mean"``, ``s`` the step count and ``acc`` the sum of outputs; for
    ``"attention"``, ``m`` the largest score so far, ``s = sum exp(e_t - m)`` and
    ``acc = sum exp(e_t - m) o_t`` (a streaming softmax); unused for ``"last"``.

Bidirectional models read the future and cannot be streamed: :func:`numpy_member`
refuses them with :class:`StreamingUnsupported`.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from torch import nn

from medseq.models import GRUD, ModelConfig, SequenceClassifier
from medseq.numpy_cells import gru_update


class StreamingUnsupported(ValueError):
    """The model cannot be advanced causally one step at a time (e.g. bidirectional)."""


def _np(tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy().copy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyMember:
    """Numpy copy of one ``SequenceClassifier`` (unidirectional) or ``GRUD``.

    Parameters
    ----------
    module : SequenceClassifier or GRUD
        In eval mode (dropout is not applied).
    """

    def __init__(self, module: nn.Module) -> None:
        config = cast(ModelConfig, module.config)
        if config.bidirectional:
            raise StreamingUnsupported(
                "a bidirectional model reads each stay backwards from its last step, so it "
                "cannot be updated causally one observation at a time; serve it for batch "
                "prediction (/v1/predict) only, or train a unidirectional model for streaming"
            )
        self.config = config
        self.cell = "grud" if isinstance(module, GRUD) else config.cell
        self.hidden_size = config.hidden_size
        self.n_layers = config.num_layers
        self.state_width = self.hidden_size * (2 if self.cell == "lstm" else 1)
        if isinstance(module, GRUD):
            self._load_grud(module)
        elif isinstance(module, SequenceClassifier):
            rnn = module.encoder.rnn
            self.layers = [
                tuple(_np(getattr(rnn, f"{name}_l{k}")) for name in _WEIGHTS)
                for k in range(self.n_layers)
            ]
        else:
            raise StreamingUnsupported(f"no streaming step for {type(module).__name__}")
        self._load_head(module)

    def _load_grud(self, module: GRUD) -> None:
        self.gamma_x = (_np(module.gamma_x_weight), _np(module.gamma_x_bias))
        self.gamma_h = (_np(module.gamma_h.weight), _np(module.gamma_h.bias))
        self.x_mean = _np(module.x_mean)
        self.layers = [tuple(_np(getattr(module, name)) for name in _WEIGHTS)]

    def _load_head(self, module: SequenceClassifier | GRUD) -> None:
        attention = module.pooling.attention
        self.pooling = self.config.pooling
        if attention is not None:
            self.att_w, self.att_b = _np(attention.proj.weight), _np(attention.proj.bias)
            self.att_v = _np(attention.score.weight)[0]
        head = module.head
        self.static_net = None
        if head.static_net is not None:
            linear = head.static_net[0]
            self.static_net = (_np(linear.weight), _np(linear.bias))
        self.out_w, self.out_b = _np(head.out.weight), _np(head.out.bias)

    # ---- state ---------------------------------------------------------------------------

    def initial_hidden(self) -> np.ndarray:
        """Zero hidden state, shape (L, K*H)."""
        return np.zeros((self.n_layers, self.state_width))

    def initial_pool(self) -> np.ndarray:
        """Empty pooling terms ``[m=-inf, s=0, acc=0]``, shape (D + 2,)."""
        pool = np.zeros(self.hidden_size + 2)
        pool[0] = -np.inf
        return pool

    # ---- one step ------------------------------------------------------------------------

    def closed_terms(
        self, hidden: np.ndarray, delta: np.ndarray, x_last: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """The parts of a step that depend on the closed bins only.

        Per layer ``W_hh h + b_hh``; for GRU-D ``W_hh h~ + b_hh``, the decayed ``h~`` and the
        imputation fallback (``delta`` and ``x_last`` are fixed while a bin is open). They do
        not change while observations arrive in the open bin, so the engine keeps them per
        patient until the bin closes and a streaming update pays only for the input product
        and the gate arithmetic; :meth:`step` computes them when not given (same operations
        on the same arrays, so the same numbers either way).
        """
        if self.cell == "grud":
            w, b = self.gamma_x
            gamma_x = np.exp(np.minimum(0.0, -b - w * delta))
            gw, gb = self.gamma_h
            gamma_h = np.exp(np.minimum(0.0, -(gw @ delta) - gb))
            fallback = self.x_mean + gamma_x * (x_last - self.x_mean)
            _, w_hh, _, b_hh = self.layers[0]
            h_dec = gamma_h * hidden[0]
            return w_hh @ h_dec + b_hh, h_dec, fallback
        size = self.hidden_size
        return tuple(
            w_hh @ hidden[k, :size] + b_hh for k, (_, w_hh, _, b_hh) in enumerate(self.layers)
        )

    def step(
        self, hidden: np.ndarray, values: np.ndarray, mask: np.ndarray, delta: np.ndarray,
        x_last: np.ndarray | None, terms: tuple[np.ndarray, ...] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Advance one time step; returns the new hidden (L, K*H) and the output (D,).

        ``x_last`` (F,) is GRU-D's last observed value before this step (``x_mean``
        before the first); other cells ignore it. ``terms`` are :meth:`closed_terms` of
        ``hidden``, ``delta`` and ``x_last`` if already known (then ``x_last`` is not read).
        """
        if terms is None:
            if x_last is None:
                raise ValueError("step needs x_last when terms are not given")
            terms = self.closed_terms(hidden, delta, x_last)
        c = self.config
        if self.cell == "grud":
            return self._grud_step(values, mask, delta, terms)
        parts = [values] + [mask] * c.input_mask + [delta] * c.input_delta
        x = np.concatenate(parts) if len(parts) > 1 else values
        new = np.empty_like(hidden)
        cell = _CELLS[self.cell]
        for k, (w_ih, _, b_ih, _) in enumerate(self.layers):
            gi = w_ih @ x
            gi += b_ih
            new[k] = cell(gi, terms[k], hidden[k], self.hidden_size)
            x = new[k, : self.hidden_size]
        return new, x

    def _grud_step(self, values, mask, delta, terms):
        c = self.config
        gh, h_dec, fallback = terms
        x_hat = np.where(mask > 0, values, fallback)
        parts = [x_hat] + [mask] * c.input_mask + [delta] * c.input_delta
        w_ih, _, b_ih, _ = self.layers[0]
        gi = w_ih @ np.concatenate(parts)
        gi += b_ih
        out = _gru(gi, gh, h_dec, self.hidden_size)
        return out[None, :], out

    # ---- pooling and head ----------------------------------------------------------------

    def _score(self, output: np.ndarray) -> float:
        return float(self.att_v @ np.tanh(self.att_w @ output + self.att_b))

    def fold(self, pool: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Pooling terms after adding one more (closed) step's output."""
        d = self.hidden_size
        new = pool.copy()
        if self.pooling == "mean":
            new[1] += 1.0
            new[2:] += output
        elif self.pooling == "attention":
            score = self._score(output)
            m = max(pool[0], score)
            old, now = np.exp(pool[0] - m), np.exp(score - m)
            new[0], new[1] = m, pool[1] * old + now
            new[2 : 2 + d] = pool[2:] * old + now * output
        return new

    def pooled(self, pool: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The pooled vector over the closed steps plus the open step's ``output``."""
        if self.pooling == "last":
            return output
        if self.pooling == "mean":  # fold's two sums, without its copy of the terms
            return (pool[2:] + output) / (pool[1] + 1.0)
        new = self.fold(pool, output)
        return new[2:] / new[1]

    def head(self, pooled: np.ndarray, static: np.ndarray | None) -> np.ndarray:
        """Logits (n_outputs,) from the pooled vector and the static vector."""
        if self.static_net is not None and static is not None:
            w, b = self.static_net
            encoded = w @ static
            encoded += b
            pooled = np.concatenate([pooled, np.maximum(encoded, 0.0, out=encoded)])
        logits = self.out_w @ pooled
        logits += self.out_b
        return logits


_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


_gru = gru_update  # one GRU update for the service and the edge detector (medseq.numpy_cells)


def _gru_cell(gi, gh, state, size):
    return _gru(gi, gh, state, size)


def _rnn_cell(gi, gh, state, size):
    return np.tanh(gi + gh)


def _lstm_cell(gi, gh, state, size):
    g = gi + gh
    i, f = _sigmoid(g[:size]), _sigmoid(g[size : 2 * size])
    cand, o = np.tanh(g[2 * size : 3 * size]), _sigmoid(g[3 * size :])
    c = f * state[size:] + i * cand
    return np.concatenate([o * np.tanh(c), c])


_CELLS = {"gru": _gru_cell, "rnn": _rnn_cell, "lstm": _lstm_cell}


def numpy_member(module: nn.Module) -> NumpyMember:
    """:class:`NumpyMember` of ``module``; raises :class:`StreamingUnsupported` if impossible."""
    module.eval()
    return NumpyMember(module)
