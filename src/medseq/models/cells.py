"""Reference recurrent cells written from their equations.

The cells take one time step at a time. They are used by the streaming engine (one step per
observation, O(1) state) and by the tests that check torch's fused kernels (``nn.RNN``,
``nn.LSTM``, ``nn.GRU``) against the equations. Parameter names, shapes and gate order are
those of torch's fused modules, so weights load across directly: ``weight_ih_l{k}[_reverse]``
of a fused module is ``weight_ih`` of a cell, and so on.

Shapes use ``B`` (batch), ``T`` (time), ``I`` (input size), ``H`` (hidden size).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

State = Tensor | tuple[Tensor, Tensor]


class _CellBase(nn.Module):
    """Parameters shared by every cell: ``n_gates`` stacked blocks of ``H`` rows."""

    n_gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        rows = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (B, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def _gates(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """Input and hidden projections ``(W_ih x + b_ih, W_hh h + b_hh)``, each ``(B, G*H)``."""
        gi = nn.functional.linear(x, self.weight_ih, self.bias_ih)
        gh = nn.functional.linear(h, self.weight_hh, self.bias_hh)
        return gi, gh


class RNNCell(_CellBase):
    r"""Elman recurrent cell with tanh (Elman, 1990, "Finding structure in time").

    .. math::
        h' = \tanh(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})

    Parameters ``weight_ih`` ``(H, I)``, ``weight_hh`` ``(H, H)``, ``bias_ih``, ``bias_hh``
    ``(H,)``, as in ``torch.nn.RNN(nonlinearity="tanh")``.

    Inputs: ``x`` ``(B, I)``, ``hx`` ``(B, H)`` or None (zeros). Output: ``h'`` ``(B, H)``.
    """

    n_gates = 1

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        h = self._zeros(x) if hx is None else hx
        gi, gh = self._gates(x, h)
        return torch.tanh(gi + gh)


class LSTMCell(_CellBase):
    r"""Long short-term memory cell (Hochreiter & Schmidhuber, 1997, "Long short-term memory";
    with the forget gate of Gers, Schmidhuber & Cummins, 2000).

    .. math::
        i &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' &= f \odot c + i \odot g \\
        h' &= o \odot \tanh(c')

    Gate blocks are stacked in torch's order ``(i, f, g, o)``: ``weight_ih`` ``(4H, I)``,
    ``weight_hh`` ``(4H, H)``, ``bias_ih``, ``bias_hh`` ``(4H,)``.

    Inputs: ``x`` ``(B, I)``, ``hx`` a tuple ``(h, c)`` of ``(B, H)`` or None (zeros).
    Output: the tuple ``(h', c')``.
    """

    n_gates = 4

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        self._check_input(x)
        h, c = (self._zeros(x), self._zeros(x)) if hx is None else hx
        gi, gh = self._gates(x, h)
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, c_new


class GRUCell(_CellBase):
    r"""Gated recurrent unit (Cho et al., 2014, "Learning phrase representations using RNN
    encoder-decoder for statistical machine translation").

    .. math::
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \\
        h' &= (1 - z) \odot n + z \odot h

    This is torch's (and cuDNN's) variant: the reset gate multiplies ``W_hn h + b_hn`` rather
    than ``h`` before the product as in Cho et al.; ``z`` weighs the old state. Gate blocks are
    stacked ``(r, z, n)``: ``weight_ih`` ``(3H, I)``, ``weight_hh`` ``(3H, H)``, biases ``(3H,)``.

    Inputs: ``x`` ``(B, I)``, ``hx`` ``(B, H)`` or None (zeros). Output: ``h'`` ``(B, H)``.
    """

    n_gates = 3

    def forward(self, x: Tensor, hx: Tensor | None = None) -> Tensor:
        self._check_input(x)
        h = self._zeros(x) if hx is None else hx
        gi, gh = self._gates(x, h)
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)


_MODES: dict[str, type[_CellBase]] = {"RNN_TANH": RNNCell, "LSTM": LSTMCell, "GRU": GRUCell}


def cell_from_fused(fused: nn.RNNBase, layer: int = 0, reverse: bool = False) -> _CellBase:
    """A reference cell holding a copy of one layer and direction of a fused module.

    Parameters
    ----------
    fused : nn.RNN (tanh), nn.LSTM (without ``proj_size``) or nn.GRU
    layer : int, default=0
        Which layer ``k`` (parameters ``weight_ih_l{k}``, ...).
    reverse : bool, default=False
        The backward direction (``..._reverse``) of a bidirectional module.

    Examples
    --------
    >>> gru = nn.GRU(3, 5, batch_first=True)
    >>> cell = cell_from_fused(gru)
    >>> x = torch.randn(2, 4, 3)
    >>> torch.allclose(run_cell(cell, x)[0], gru(x)[0], atol=1e-6)
    True
    """
    if fused.mode not in _MODES or fused.proj_size:
        raise ValueError(
            f"cell_from_fused supports RNN (tanh), LSTM without proj_size and GRU, got {fused!r}"
        )
    if not 0 <= layer < fused.num_layers or (reverse and not fused.bidirectional):
        raise ValueError(
            f"cell_from_fused: no layer={layer}, reverse={reverse} in {fused!r} "
            f"(num_layers={fused.num_layers}, bidirectional={fused.bidirectional})"
        )
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    weight_ih = getattr(fused, "weight_ih" + suffix)
    cell = _MODES[fused.mode](weight_ih.shape[1], fused.hidden_size, bias=fused.bias)
    with torch.no_grad():
        for name, param in cell.named_parameters():
            param.copy_(getattr(fused, name + suffix))
    return cell.to(weight_ih.device, weight_ih.dtype)


def run_cell(cell: _CellBase, x: Tensor, h0: State | None = None) -> tuple[Tensor, State]:
    """Step ``cell`` over time: the plain-loop equivalent of a one-layer fused RNN.

    Parameters
    ----------
    cell : RNNCell, LSTMCell or GRUCell
    x : Tensor of shape (B, T, I)
    h0 : initial state, ``(B, H)`` (``(h, c)`` for LSTM), or None for zeros.

    Returns
    -------
    outputs : Tensor of shape (B, T, H)
        The hidden state after every step.
    state : the final state (``(h, c)`` for LSTM).

    Examples
    --------
    >>> cell = GRUCell(3, 5)
    >>> out, h = run_cell(cell, torch.randn(2, 7, 3))
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 7, 5), (2, 5))
    """
    if x.dim() != 3:
        raise ValueError(f"run_cell: expected x of shape (B, T, I), got {tuple(x.shape)}")
    state = h0
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    if state is None:  # T == 0
        raise ValueError("run_cell: x has no time steps (T == 0)")
    return torch.stack(outputs, dim=1), state
