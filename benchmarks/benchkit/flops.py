r"""Analytic FLOP counts of recurrent layers, to compare achieved GFLOP/s with matmul's.

Only the gate matmuls are counted (they dominate: the element-wise gate arithmetic is
``O(B T H)`` against ``O(B T (I + H) H)``). A layer with ``G`` gates (RNN 1, GRU 3, LSTM 4)
multiplies ``[x_t ; h_{t-1}]`` ``(B, I + H)`` by ``(I + H, G H)`` every step:

.. math::
    \text{forward} = 2 B T (I + H) G H, \qquad \text{backward} = 2 \times \text{forward}

(the backward pass has two matmuls of the same size per forward one: the gradient with
respect to the inputs and with respect to the weights).
"""

from __future__ import annotations

GATES = {"rnn": 1, "gru": 3, "lstm": 4, "grud": 3}


def gate_count(cell: str) -> int:
    """Number of gate blocks of ``cell``; ``ValueError`` naming the known cells otherwise."""
    try:
        return GATES[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; known: {sorted(GATES)}") from None


def recurrent_flops(
    cell: str, batch: int, steps: int, input_size: int, hidden: int, backward: bool = True
) -> int:
    """Gate-matmul FLOPs of one layer over a sequence: forward, plus backward if asked."""
    for name, value in (("batch", batch), ("steps", steps), ("input_size", input_size),
                        ("hidden", hidden)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    forward = 2 * batch * steps * (input_size + hidden) * gate_count(cell) * hidden
    return forward * 3 if backward else forward


def matmul_flops(m: int, k: int, n: int) -> int:
    """FLOPs of an ``(m, k) x (k, n)`` matmul (one multiply and one add per term)."""
    return 2 * m * k * n
