"""Where the fused GRU training path (:mod:`medseq.models.fused_gru`) replaces ``nn.GRU``.

Three modes, one switch:

* ``"off"``: every GRU runs through ``nn.GRU``, so training reproduces the releases before
  2026-12-05 (and their published weights) to the byte.
* ``"auto"`` (the default): the fused path where it was measured faster: a training
  forward (a gradient is needed) on CPU in float32 or float64, hidden size
  <= :data:`AUTO_MAX_HIDDEN` (``benchmarks/results/fused_gru.md``, compiled kernel: 2.4×
  per training step at hidden 16, 1.6× / 1.3× / 1.1× at 64 / 128 / 256; larger sizes were
  not measured, and there the matrix products, the same in both paths, take ever more of
  the step).
* ``"on"``: the fused path for every forward that needs a gradient, on any device (for
  tests and for measuring; on CUDA ``nn.GRU``'s cuDNN kernel is the faster one).

Both ``"auto"`` and ``"on"`` run the recurrence through the compiled C++ kernel
(:mod:`medseq.models.fused_gru_compiled`, built once on first use, 1-2 min) on CPU in
float32/float64, and through the Python kernel of :mod:`medseq.models.fused_gru` elsewhere,
when the build fails (one warning names the compiler error) or when
``MEDSEQ_FUSED_GRU_NO_COMPILE=1``. GRU-D's hidden loop (:mod:`medseq.models.grud_recurrence`)
takes the compiled kernel under the same two modes, and its Python loop under ``"off"``.

Inference (no gradient), tracing, ``torch.compile`` and ONNX export always use ``nn.GRU``,
so exported graphs and served predictions never depend on the switch.

The mode comes from, first to last: the innermost :func:`fused_gru_mode` block (the
Trainer opens one for ``TrainConfig.fused_gru``), then the environment variable
``MEDSEQ_FUSED_GRU`` (``off``, ``auto`` or ``on``), then ``"auto"``. The fused path changes the
order of float sums, so training with it gives weights equal to ``nn.GRU``'s to float32
rounding, not to the byte. The default model trained both ways (``make main``, 40 epochs,
15 members) gave test AUROC 0.8701 (off) and 0.8700 (auto), largest prediction difference
0.028, in 163 instead of 273 CPU-seconds (``benchmarks/results/fused_gru.md``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor, nn

MODES: tuple[str, ...] = ("off", "auto", "on")
ENV_VAR = "MEDSEQ_FUSED_GRU"
DEFAULT_MODE = "auto"
#: The largest hidden size ``"auto"`` fuses: the largest one measured faster.
AUTO_MAX_HIDDEN = 256
_OVERRIDE: ContextVar[str | None] = ContextVar("medseq_fused_gru_mode", default=None)


def _check_mode(mode: str, where: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"{where} must be one of {MODES}, got {mode!r}; "
            "'auto' uses the fused GRU where it is faster, 'off' never"
        )
    return mode


def current_mode() -> str:
    """The mode in force: a :func:`fused_gru_mode` block, else ``$MEDSEQ_FUSED_GRU``, else auto."""
    mode = _OVERRIDE.get()
    if mode is not None:
        return mode
    env = os.environ.get(ENV_VAR, "").strip().lower()
    return _check_mode(env, f"environment variable {ENV_VAR}") if env else DEFAULT_MODE


@contextlib.contextmanager
def fused_gru_mode(mode: str | None) -> Iterator[None]:
    """Use ``mode`` inside the block; ``None`` leaves the mode in force unchanged.

    Examples
    --------
    >>> with fused_gru_mode("on"):
    ...     current_mode()
    'on'
    """
    if mode is None:
        yield
        return
    token = _OVERRIDE.set(_check_mode(mode, "fused_gru_mode(mode)"))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def _exporting() -> bool:
    return bool(
        torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
    )


def use_fused_gru(module: nn.Module, x: Tensor) -> bool:
    """Whether ``module(x)`` should run through :func:`medseq.models.fused_gru.fused_gru`."""
    mode = current_mode()
    if mode == "off" or not isinstance(module, nn.GRU) or module.proj_size:
        return False
    if not torch.is_grad_enabled() or _exporting():
        return False
    if not (x.requires_grad or any(p.requires_grad for p in module.parameters())):
        return False
    if mode == "on":
        return True
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")  # bf16 autocast: nn.GRU's own kernel
        and module.hidden_size <= AUTO_MAX_HIDDEN
    )
