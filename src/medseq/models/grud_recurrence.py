r"""The hidden-state loop of GRU-D, time-major, with a hand-written backward pass.

Everything of GRU-D that does not depend on ``h`` (imputation, decays, the input projection
of all three gates) is computed for all steps at once by :class:`~medseq.models.GRUD`; what
is left is the serial part, for ``t = 0 .. T-1`` with ``h_{-1} = 0``:

.. math::
    \tilde h_t &= \gamma_t \odot h_{t-1} \\
    g_t &= W_{hh} \tilde h_t + b_{hh} = [g_r ; g_z ; g_n] \\
    r_t &= \sigma(a_{r,t} + g_r), \quad z_t = \sigma(a_{z,t} + g_z) \\
    n_t &= \tanh(a_{n,t} + r_t \odot g_n) \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot \tilde h_t

where ``a`` is the precomputed input projection ``(T, B, 3H)`` and ``gamma`` the hidden decay
``(T, B, H)``. Tensors are time-major so that every per-step slice is contiguous.

Autograd through a Python loop records ~10 nodes per step and replays them one by one.
:class:`GRUDRecurrence` instead writes each step's ``h~``, ``r, z``, ``g_n``, ``n`` and ``h``
into preallocated buffers, and its backward uses that the incoming gradient ``dh_t``
enters every per-step derivative linearly, ``dg_t = dh_t \odot C_t`` with ``C_t`` computed
for all steps at once, so the backward loop is only

.. math::
    dh_t &= \text{d}out_t + \gamma_{t+1} \odot d\tilde h_{t+1} \\
    d\tilde h_t &= dh_t \odot z_t + (dh_t \odot C_t)\, W_{hh}

and the gradients of ``a``, ``gamma``, ``W_hh``, ``b_hh`` are vectorised expressions (one
matmul for ``W_hh``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from medseq.models import fused_gru_compiled
from medseq.models.fused_select import current_mode


def grud_loop(gi: Tensor, gamma: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """Run the recurrence with plain ops: differentiable by autograd, traceable, exportable.

    ``gi`` ``(T, B, 3H)``, ``gamma`` ``(T, B, H)``, ``weight_hh`` ``(3H, H)``, ``bias_hh``
    ``(3H,)`` -> outputs ``(T, B, H)``.
    """
    n_steps, batch, hidden = gamma.shape
    h = gamma.new_zeros(batch, hidden)
    weight_t = weight_hh.t()
    outputs: list[Tensor] = []
    for t in range(n_steps):
        h = gamma[t] * h  # (B, H)
        gh = torch.addmm(bias_hh, h, weight_t)  # (B, 3H)
        a = gi[t]
        rz = torch.sigmoid(a[:, : 2 * hidden] + gh[:, : 2 * hidden])
        n = torch.tanh(torch.addcmul(a[:, 2 * hidden :], rz[:, :hidden], gh[:, 2 * hidden :]))
        h = torch.lerp(n, h, rz[:, hidden:])  # n + z * (h - n)
        outputs.append(h)
    return torch.stack(outputs, dim=0)


def _forward_saving(
    gi: Tensor, gamma: Tensor, weight_hh: Tensor, bias_hh: Tensor
) -> dict[str, Tensor]:
    """:func:`grud_loop` writing ``h~, [r, z, g_n], n, h`` of every step into preallocated buffers.

    ``gates`` starts as ``[a_rz + b_hrz ; b_hn]``: one in-place ``addmm_`` per step leaves the
    pre-activations of ``r, z`` and ``g_n`` in it, and an in-place sigmoid turns the first two
    blocks into ``r, z`` (the backward pass needs ``r, z, g_n``, never the pre-activations).
    ``tanh(x)`` is computed as ``2 sigmoid(2x) - 1`` (the same function; torch's CPU sigmoid
    kernel is several times faster than its tanh on ``(64, 256)`` blocks), with the factor 2
    folded into ``a_n`` once for all steps and into the ``addcmul``.
    """
    n_steps, batch, hidden = gamma.shape
    two = 2 * hidden
    gates = gi + bias_hh  # one pass; the n block is then overwritten with b_hn
    gates[..., two:] = bias_hh[two:]
    buf = {
        "h_dec": gamma.new_empty(n_steps, batch, hidden),
        "gates": gates,
        "n": gamma.new_empty(n_steps, batch, hidden),
        "out": gamma.new_empty(n_steps, batch, hidden),
    }
    weight_t = weight_hh.t()
    h = gamma.new_zeros(batch, hidden)
    a_n2 = gi[..., two:] * 2.0  # (T, B, H), contiguous
    steps = zip(
        *(x.unbind(0) for x in (gamma, a_n2)), *(x.unbind(0) for x in buf.values()), strict=True
    )
    for gamma_t, a_n2_t, h_dec, gates, n, out in steps:
        torch.mul(gamma_t, h, out=h_dec)
        gates.addmm_(h_dec, weight_t)
        rz = gates[:, :two].sigmoid_()
        torch.addcmul(a_n2_t, rz[:, :hidden], gates[:, two:], value=2.0, out=n)
        n.sigmoid_().mul_(2.0).sub_(1.0)  # tanh(a_n + r * g_n)
        h = torch.lerp(n, h_dec, rz[:, hidden:], out=out)
    return buf


def _coefficients(buf: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``C`` ``(T, B, 3, H)`` with ``dg_t = dh_t * C_t``, and ``d h_t / d a_n`` ``(T, B, H)``."""
    hidden = buf["n"].shape[2]
    gates = buf["gates"]
    r, z, g_n = gates[..., :hidden], gates[..., hidden : 2 * hidden], gates[..., 2 * hidden :]
    n = buf["n"]
    one_minus_z = 1.0 - z
    dn_pre = (1.0 - n * n).mul_(one_minus_z)  # d h / d(pre-activation of n)
    coef = torch.empty(*n.shape[:2], 3, hidden, dtype=n.dtype, device=n.device)
    torch.mul(dn_pre, g_n, out=coef[:, :, 0]).mul_(r).mul_(1.0 - r)
    torch.sub(buf["h_dec"], n, out=coef[:, :, 1]).mul_(z).mul_(one_minus_z)
    torch.mul(dn_pre, r, out=coef[:, :, 2])
    return coef, dn_pre


def _backward(
    grad_out: Tensor, buf: dict[str, Tensor], gamma: Tensor, weight_hh: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_steps, batch, hidden = gamma.shape
    coef, dn_pre = _coefficients(buf)
    z = buf["gates"][..., hidden : 2 * hidden]
    dh = torch.empty_like(grad_out)  # total gradient of h_t
    dbar = torch.empty_like(grad_out)  # gradient of h~_t
    dh[n_steps - 1] = grad_out[n_steps - 1]
    grad_gh = coef  # (T, B, 3, H), overwritten step by step: dg_t = dh_t * C_t
    steps = zip(*(x.unbind(0) for x in (grad_out, gamma, z, grad_gh, dh, dbar)), strict=True)
    dbar_next, gamma_next = None, None
    for grad_t, gamma_t, z_t, dgh_t, dh_t, dbar_t in reversed(list(steps)):
        if dbar_next is not None and gamma_next is not None:  # both set after the last step
            torch.addcmul(grad_t, dbar_next, gamma_next, out=dh_t)
        dgh_t.mul_(dh_t.unsqueeze(1))
        torch.mul(dh_t, z_t, out=dbar_t).addmm_(dgh_t.view(batch, 3 * hidden), weight_hh)
        dbar_next, gamma_next = dbar_t, gamma_t
    flat_gh = grad_gh.view(-1, 3 * hidden)
    grad_weight = flat_gh.t() @ buf["h_dec"].view(-1, hidden)
    grad_bias = flat_gh.sum(dim=0)
    grad_gi = grad_gh  # equal to grad_gh but for the n block: reuse the buffer
    torch.mul(dh, dn_pre, out=grad_gi[:, :, 2])
    grad_gamma = torch.empty_like(gamma)  # h~_t = gamma_t * h_{t-1}, h_{-1} = 0
    grad_gamma[0] = 0.0
    torch.mul(dbar[1:], buf["out"][:-1], out=grad_gamma[1:])
    return grad_gi.view(n_steps, batch, 3 * hidden), grad_gamma, grad_weight, grad_bias


class GRUDRecurrence(torch.autograd.Function):
    """``apply(gi, gamma, weight_hh, bias_hh) -> outputs (T, B, H)``; see the module doc."""

    @staticmethod
    def forward(ctx: Any, gi: Tensor, gamma: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
        buf = _forward_saving(gi.contiguous(), gamma.contiguous(), weight_hh, bias_hh)
        ctx.save_for_backward(gamma, weight_hh, *buf.values())
        ctx.keys = tuple(buf)
        return buf["out"]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        gamma, weight_hh, *rest = ctx.saved_tensors
        buf = dict(zip(ctx.keys, rest, strict=True))
        return _backward(grad_out.contiguous(), buf, gamma.contiguous(), weight_hh)


def _use_compiled(gi: Tensor) -> bool:
    """The compiled loop (``csrc/fused_gru_step.cpp``) where the fused-GRU switch is on.

    Behind :func:`medseq.models.fused_select.fused_gru_mode` (``"auto"`` or ``"on"``), so that
    with ``"off"`` GRU-D trains exactly as before 2026-12-05; where it is on (the default),
    the kernel is used on CPU float32/float64 when it builds (else one warning, and the
    Python loop).
    """
    return (
        current_mode() != "off"
        and fused_gru_compiled.supports(gi)
        and fused_gru_compiled.load_kernel() is not None
    )


def grud_recurrence(gi: Tensor, gamma: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
    """The GRU-D hidden loop, ``(T, B, 3H)``, ``(T, B, H)`` -> ``(T, B, H)``.

    Uses :class:`GRUDRecurrence` (hand-written backward; its compiled twin where the
    fused-GRU switch is on, see :func:`_use_compiled`) when a gradient is needed, and the
    plain-op :func:`grud_loop` otherwise (inference) and while tracing, compiling or
    exporting, so ONNX export and ``torch.compile`` see ordinary operators. Under
    ``torch.autocast`` the loop runs in the weights' dtype (autocast switched off inside).
    """
    device_type = gi.device.type
    if torch.is_autocast_enabled(device_type):
        # autocast hands in bf16/fp16 projections, and this loop's preallocated buffers and
        # addmm need one dtype: run the serial part in the weights' dtype with autocast off
        # (what torch.amp.custom_fwd(cast_inputs=...) does), so a mixed-precision model
        # trains GRU-D with a full-precision recurrence instead of failing.
        with torch.autocast(device_type, enabled=False):
            dtype = weight_hh.dtype
            return grud_recurrence(gi.to(dtype), gamma.to(dtype), weight_hh, bias_hh)
    needs_grad = torch.is_grad_enabled() and any(
        x.requires_grad for x in (gi, gamma, weight_hh, bias_hh)
    )
    exporting = (
        torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
    )
    if needs_grad and not exporting:
        if _use_compiled(gi):
            return fused_gru_compiled.CompiledGRUDRecurrence.apply(gi, gamma, weight_hh, bias_hh)
        return GRUDRecurrence.apply(gi, gamma, weight_hh, bias_hh)
    return grud_loop(gi, gamma, weight_hh, bias_hh)
