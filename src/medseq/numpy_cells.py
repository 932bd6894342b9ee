"""Recurrent cell updates in numpy, shared by every torch-free runtime of a bundle.

The streaming engine of the service (:mod:`medseq.serving.recurrent`) and the edge ECG
detector (:mod:`medseq.monitoring.beat_model`) both run a bundle's GRU without torch: one
implementation of the gate equations serves both, so a fix or a speed-up reaches both and
both are tested against torch (``tests/unit/serving``, ``tests/integration/
test_monitoring_stream.py``). This module imports numpy only.
"""

from __future__ import annotations

import numpy as np


def gru_update(gi: np.ndarray, gh: np.ndarray, h: np.ndarray, size: int) -> np.ndarray:
    """The GRU's next hidden state from its input and recurrent projections.

    Gates in torch's order (r, z, n) along the last axis, as :class:`torch.nn.GRU`:

    .. math::
        r = \\sigma(g^i_r + g^h_r), \\quad z = \\sigma(g^i_z + g^h_z), \\quad
        n = \\tanh(g^i_n + r \\odot g^h_n), \\quad h' = (1 - z) \\odot n + z \\odot h

    Parameters
    ----------
    gi : ndarray of shape (..., 3 * size)
        ``W_ih x + b_ih``.
    gh : ndarray of shape (..., 3 * size)
        ``W_hh h + b_hh`` (broadcast against ``gi``: ``b_hh`` alone for a zero state).
    h : ndarray of shape (..., size)
        The current hidden state.
    size : int
        Hidden size ``H`` (several members side by side count as one wider state).

    Returns
    -------
    ndarray of shape (..., size)
        A new array; the inputs are not modified.

    The operations are those of ``1 / (1 + exp(-x))`` etc., in place on two fresh buffers,
    so a step allocates 3 arrays instead of 11 (it runs once per observation or beat).
    """
    rz = np.add(gi[..., : 2 * size], gh[..., : 2 * size])
    np.negative(rz, out=rz)
    np.exp(rz, out=rz)
    rz += 1.0
    np.divide(1.0, rz, out=rz)
    n = np.multiply(rz[..., :size], gh[..., 2 * size :])
    n += gi[..., 2 * size :]
    np.tanh(n, out=n)
    out = np.subtract(h, n)
    out *= rz[..., size:]
    out += n
    return out
