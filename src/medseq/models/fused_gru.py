r"""A fused GRU training path for CPU: ``nn.GRU``'s maths with a hand-written backward pass.

``nn.GRU`` on CPU trains through per-step ATen ops (``aten::gru`` replays ``cat``, ``mm``,
``addmm``, ``sigmoid``, ``tanh`` ... for every step, and autograd records and replays each
of them; ``benchmarks/results/training_profile.md``). This module computes the same function
with the work arranged for a CPU core:

* the input projections of all steps are one matrix product before the recurrence,
  ``A = X W_{ih}^T + b_{ih}`` of shape ``(T, B, 3H)`` (left to autograd, whose ``addmm``
  backward then forms ``dW_ih``, ``db_ih`` and the input gradient ``dX`` each as one large
  product after the loop);
* the forward loop does, per step, one ``addmm_`` (``W_hh h + b_hh``) and four element-wise
  ops, writing ``r, z, g_n = W_{hn} h + b_{hn}`` and ``n`` into preallocated buffers:

  .. math::
      r_t &= \sigma(a_{r,t} + W_{hr} h_{t-1} + b_{hr}), \quad
      z_t = \sigma(a_{z,t} + W_{hz} h_{t-1} + b_{hz}) \\
      n_t &= \tanh(a_{n,t} + r_t \odot g_{n,t}), \quad g_{n,t} = W_{hn} h_{t-1} + b_{hn} \\
      h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

* the backward loop is only the recurrent product per step. The incoming gradient ``dh_t``
  enters every gate gradient linearly, ``dg_t = dh_t \odot C_t`` with ``C_t`` computed for
  all steps at once from the saved gates, so a step is

  .. math::
      dg_t = dh_t \odot C_t, \qquad
      dh_{t-1} = \text{d}out_{t-1} + dh_t \odot z_t + dg_t W_{hh}

  and the gate gradients of all steps are kept, so that ``dW_hh = dG^T H_{prev}``,
  ``db_hh`` and the gradient of ``A`` are each one vectorised expression after the loop.

Parameters are read from an ``nn.GRU`` module (``weight_ih_l{k}[_reverse]``, ...), so the
fused path changes neither the parameters nor the ``state_dict``; it is a different way of
computing ``module(x, h0)``, equal to float32 tolerance (the order of float sums differs).
Where it is used is decided by :mod:`medseq.models.fused_select`.

Two implementations of the recurrence compute the same function: the Python loop below
(:class:`FusedGRULayer`) and a compiled C++ one (:class:`~medseq.models.fused_gru_compiled.
CompiledGRULayer`, built on first use), which does a step as one matrix product and one
plain loop over the ``B x H`` elements. ``kernel="auto"`` takes the compiled one on CPU in
float32/float64 when it builds, else the Python one (after one warning naming the reason).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from medseq.models import fused_gru_compiled
from medseq.models.fused_gru_compiled import KERNELS, CompiledGRULayer


def _forward_saving(gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None) -> dict:
    """Run the recurrence over time-major ``gi`` ``(T, B, 3H)``; buffers the backward needs.

    ``gates`` starts as ``[a_r + b_hr ; a_z + b_hz ; b_hn]``: one in-place ``addmm_`` per step
    leaves the pre-activations of ``r, z`` and ``g_n`` in it, and an in-place sigmoid turns
    the first two blocks into ``r, z`` (the backward needs ``r, z, g_n``, never the
    pre-activations). ``tanh(x)`` is computed as ``2 sigmoid(2x) - 1`` (the same function;
    torch's CPU sigmoid kernel is several times faster than its tanh on ``(64, H)`` blocks,
    as in :mod:`medseq.models.grud_recurrence`). ``states`` holds ``h0, h_0, ..., h_{T-1}``,
    so that the outputs and the previous states of every step are two views of one buffer.
    """
    n_steps, batch, three_h = gi.shape
    hidden = three_h // 3
    two = 2 * hidden
    gates = torch.empty_like(gi)
    if bias_hh is None:
        gates[..., :two] = gi[..., :two]
        gates[..., two:] = 0.0
    else:
        torch.add(gi[..., :two], bias_hh[:two], out=gates[..., :two])
        gates[..., two:] = bias_hh[two:]
    a_n2 = gi[..., two:] * 2.0  # (T, B, H), contiguous; the 2 of tanh(x) = 2 sigmoid(2x) - 1
    n = gi.new_empty(n_steps, batch, hidden)
    states = gi.new_empty(n_steps + 1, batch, hidden)
    states[0] = h0
    weight_t = weight_hh.t()
    minus_one = gi.new_tensor(-1.0)  # a tensor: a Python scalar is converted at every call
    h = states[0]
    blocks = (gates[..., :two], gates[..., :hidden], gates[..., hidden:two], gates[..., two:])
    per_step = [x.unbind(0) for x in (a_n2, gates, *blocks, n, states[1:])]  # views, made in C++
    for a_n2_t, gates_t, rz_t, r_t, z_t, g_n_t, n_t, out_t in zip(*per_step, strict=True):
        gates_t.addmm_(h, weight_t)
        rz_t.sigmoid_()
        torch.addcmul(a_n2_t, r_t, g_n_t, value=2.0, out=n_t)
        torch.add(minus_one, n_t.sigmoid_(), alpha=2.0, out=n_t)  # tanh(a_n + r * g_n)
        h = torch.lerp(n_t, h, z_t, out=out_t)  # n + z * (h - n)
    return {"gates": gates, "n": n, "states": states}


def _coefficients(buf: dict, h_prev: Tensor) -> tuple[Tensor, Tensor]:
    """``C`` ``(T, B, 3, H)`` with ``dg_t = dh_t * C_t``, and ``dh_t / da_n`` ``(T, B, H)``."""
    hidden = h_prev.shape[2]
    gates, n = buf["gates"], buf["n"]
    r, z, g_n = gates[..., :hidden], gates[..., hidden : 2 * hidden], gates[..., 2 * hidden :]
    one = n.new_tensor(1.0)
    one_minus_z = torch.sub(one, z)
    dn_pre = torch.addcmul(one, n, n, value=-1.0).mul_(one_minus_z)  # dh_t / d(pre-act. of n_t)
    coef = torch.empty(*n.shape[:2], 3, hidden, dtype=n.dtype, device=n.device)
    r_slope = torch.addcmul(r, r, r, value=-1.0)  # r (1 - r), the sigmoid's derivative
    torch.mul(dn_pre, g_n, out=coef[:, :, 0]).mul_(r_slope)
    torch.sub(h_prev, n, out=coef[:, :, 1]).mul_(z).mul_(one_minus_z)
    torch.mul(dn_pre, r, out=coef[:, :, 2])
    return coef, dn_pre


def _backward(
    grad_out: Tensor, grad_hn: Tensor | None, buf: dict, weight_hh: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients of ``gi``, ``h0``, ``weight_hh`` and ``bias_hh`` from those of the outputs."""
    n_steps, batch, hidden = grad_out.shape
    h_prev = buf["states"][:-1]  # (T, B, H)
    coef, dn_pre = _coefficients(buf, h_prev)
    z = buf["gates"][..., hidden : 2 * hidden]
    # dh[t + 1] is the total gradient of h_t (dh[0] that of h0), filled from the last step back
    dh = grad_out.new_empty(n_steps + 1, batch, hidden)
    dh[1:] = grad_out
    if grad_hn is not None:
        dh[n_steps] += grad_hn
    dh[0] = 0.0
    per_step = [
        x.unbind(0)  # views made in C++, not by Python indexing in the loop
        for x in (coef, coef.view(n_steps, batch, 3 * hidden), dh[1:].unsqueeze(2), dh[1:])
    ]
    per_step += [dh[:-1].unbind(0), z.unbind(0)]
    for coef_t, dgh_t, dh_t3, dh_t, dh_prev, z_t in reversed(list(zip(*per_step, strict=True))):
        coef_t.mul_(dh_t3)  # coef_t becomes dg_t, seen as (B, 3H) by dgh_t
        dh_prev.addcmul_(dh_t, z_t).addmm_(dgh_t, weight_hh)
    flat_gh = coef.view(-1, 3 * hidden)
    grad_weight = flat_gh.t() @ h_prev.reshape(-1, hidden)
    grad_bias = torch.mv(flat_gh.t(), flat_gh.new_ones(flat_gh.shape[0]))  # sum(0), 2x faster
    grad_gi = coef  # equal to the gate gradient but for the n block: reuse the buffer
    torch.mul(dh[1:], dn_pre, out=grad_gi[:, :, 2])
    return grad_gi.view(n_steps, batch, 3 * hidden), dh[0], grad_weight, grad_bias


class FusedGRULayer(torch.autograd.Function):
    """``apply(gi, h0, weight_hh, bias_hh) -> (outputs (T, B, H), h_T (B, H))``.

    ``gi`` is the time-major input projection ``X W_ih^T + b_ih`` ``(T, B, 3H)``; ``bias_hh``
    may be None (``bias=False``). See the module docstring for the equations.
    """

    @staticmethod
    def forward(
        ctx: Any, gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        buf = _forward_saving(gi.contiguous(), h0, weight_hh, bias_hh)
        ctx.save_for_backward(weight_hh, buf["gates"], buf["n"], buf["states"])
        ctx.has_bias = bias_hh is not None
        states = buf["states"]
        return states[1:], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_out: Tensor | None, grad_hn: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        weight_hh, gates, n, states = ctx.saved_tensors
        if grad_out is None:
            grad_out = torch.zeros_like(states[1:])
        buf = {"gates": gates, "n": n, "states": states}
        grad_gi, grad_h0, grad_w, grad_b = _backward(grad_out, grad_hn, buf, weight_hh)
        return grad_gi, grad_h0, grad_w, grad_b if ctx.has_bias else None


def _layer_function(kernel: str, gi: Tensor) -> type[torch.autograd.Function]:
    """The autograd Function that runs the recurrence for ``kernel`` on ``gi``."""
    if kernel == "python":
        return FusedGRULayer
    if kernel == "compiled":
        if not fused_gru_compiled.supports(gi):
            raise ValueError(
                "fused_gru: kernel='compiled' runs on the CPU in float32 or float64, got "
                f"{gi.device.type} {gi.dtype}; use kernel='auto' or 'python'"
            )
        fused_gru_compiled.load_kernel(required=True)
        return CompiledGRULayer
    if fused_gru_compiled.supports(gi) and fused_gru_compiled.load_kernel() is not None:
        return CompiledGRULayer
    return FusedGRULayer


def _direction(
    module: nn.GRU, x: Tensor, h0: Tensor, suffix: str, reverse: bool, kernel: str
) -> tuple[Tensor, Tensor]:
    """One layer and direction over time-major ``x`` ``(T, B, I)``: ``(T, B, H)``, ``(B, H)``."""
    n_steps, batch, _ = x.shape
    weight_ih = getattr(module, "weight_ih" + suffix)
    bias_ih = getattr(module, "bias_ih" + suffix) if module.bias else None
    flat = x.reshape(n_steps * batch, x.shape[2])
    gi = nn.functional.linear(flat, weight_ih, bias_ih)  # (T*B, 3H): one product, all steps
    gi = gi.view(n_steps, batch, -1)
    if reverse:
        gi = gi.flip(0)
    bias_hh = getattr(module, "bias_hh" + suffix) if module.bias else None
    layer = _layer_function(kernel, gi)
    out, h_n = layer.apply(gi, h0, getattr(module, "weight_hh" + suffix), bias_hh)
    return (out.flip(0) if reverse else out), h_n


def check_fusable(module: nn.Module) -> None:
    """Raise unless ``module`` is an ``nn.GRU`` the fused path computes exactly."""
    if not isinstance(module, nn.GRU):
        raise TypeError(f"fused_gru: expected an nn.GRU, got {type(module).__name__}")
    if module.proj_size:
        raise ValueError(f"fused_gru: nn.GRU has no proj_size, got {module.proj_size!r}")


def fused_gru(
    module: nn.GRU, x: Tensor, h0: Tensor | None = None, kernel: str = "auto"
) -> tuple[Tensor, Tensor]:
    """``module(x, h0)`` computed by the fused path: same outputs and gradients.

    Parameters
    ----------
    module : nn.GRU
        Any ``num_layers``, ``bidirectional``, ``bias``, ``batch_first`` and ``dropout``
        (inter-layer dropout applies in training mode, as in ``nn.GRU``).
    x : Tensor of shape (B, T, I) if ``batch_first`` else (T, B, I)
    h0 : Tensor of shape (L * D, B, H), or None for zeros
    kernel : {"auto", "python", "compiled"}, default="auto"
        Which recurrence: ``"compiled"`` the C++ one (raises when it cannot be built or the
        input is not CPU float32/float64), ``"python"`` the Python loop, ``"auto"`` the
        compiled one where it builds and applies, else the Python one.

    Returns
    -------
    output : Tensor of shape (B, T, D * H) (``batch_first``) or (T, B, D * H)
    h_n : Tensor of shape (L * D, B, H)

    Examples
    --------
    >>> gru = nn.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    >>> x = torch.randn(4, 6, 3)
    >>> out, h_n = fused_gru(gru, x)
    >>> torch.allclose(out, gru(x)[0], atol=1e-5), tuple(h_n.shape)
    (True, (4, 4, 5))
    """
    check_fusable(module)
    if kernel not in KERNELS:
        raise ValueError(f"fused_gru: kernel must be one of {KERNELS}, got {kernel!r}")
    if x.dim() != 3 or x.shape[2] != module.input_size:
        raise ValueError(
            f"fused_gru: expected x of shape ({'B, T' if module.batch_first else 'T, B'}, "
            f"{module.input_size}), got {tuple(x.shape)}"
        )
    layer_input = x.transpose(0, 1) if module.batch_first else x  # (T, B, I)
    n_dirs = 2 if module.bidirectional else 1
    if h0 is None:
        h0 = x.new_zeros(module.num_layers * n_dirs, layer_input.shape[1], module.hidden_size)
    layer_input = layer_input.contiguous()
    finals: list[Tensor] = []
    for k in range(module.num_layers):
        if k > 0 and module.dropout > 0 and module.training:
            layer_input = nn.functional.dropout(layer_input, module.dropout, training=True)
        outs = []
        for d in range(n_dirs):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            h0_d = h0[k * n_dirs + d]
            out, h_n = _direction(module, layer_input, h0_d, suffix, bool(d), kernel)
            outs.append(out)
            finals.append(h_n)
        layer_input = outs[0] if n_dirs == 1 else torch.cat(outs, dim=2)
    output = layer_input.transpose(0, 1) if module.batch_first else layer_input
    return output, torch.stack(finals, dim=0)
