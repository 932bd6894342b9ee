r"""The compiled GRU recurrence (``csrc/fused_gru_step.cpp``): built on first use, or not at all.

The Python fused path (:mod:`medseq.models.fused_gru`) spends what is left of a step, after
the matrix products, in the Python dispatch of ~6 element-wise ops per step and in separate
coefficient passes (``benchmarks/results/fused_gru.md``). The C++ source does a step as one
``mm_out`` into a preallocated buffer plus ONE plain loop over the ``B x H`` elements, forward
and backward; the equations are those of :mod:`medseq.models.fused_gru`.

The extension is compiled by :func:`torch.utils.cpp_extension.load` (JIT: a C++ compiler and
``ninja`` are needed; the first build takes 1-2 minutes and is cached, keyed on the source,
under ``~/.cache/medseq/torch_ext`` (or ``$TORCH_EXTENSIONS_DIR``)). :func:`load_kernel`
builds it lazily, once per process, and logs when it starts, every 20 s while it runs, and
when it ends. When the build fails, or ``MEDSEQ_FUSED_GRU_NO_COMPILE=1``, it returns None
after ONE warning naming the reason, and the callers keep the Python fused path.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

logger = logging.getLogger(__name__)

NO_COMPILE_ENV = "MEDSEQ_FUSED_GRU_NO_COMPILE"
SOURCE = Path(__file__).resolve().parent / "csrc" / "fused_gru_step.cpp"
EXTENSION_NAME = "medseq_fused_gru_step"
#: Kernels :func:`medseq.models.fused_gru.fused_gru` accepts.
KERNELS: tuple[str, ...] = ("auto", "python", "compiled")


class CompiledKernelUnavailable(RuntimeError):
    """The compiled kernel was asked for by name and could not be built."""


def build_dir() -> Path:
    """Where the extension is built: ``$TORCH_EXTENSIONS_DIR``, else the user cache.

    Not ``$MEDSEQ_CACHE`` (a data cache, which the tests point at a fresh folder): a build
    is keyed on the source and flags, so one folder per user serves every run.
    """
    root = os.environ.get("TORCH_EXTENSIONS_DIR", "").strip()
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medseq" / "torch_ext"


def _no_compile() -> bool:
    return os.environ.get(NO_COMPILE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def _build() -> tuple[ModuleType | None, str]:
    """Compile (or load the cached build of) the extension: ``(module, "")`` or ``(None, why)``."""
    if _no_compile():
        return None, f"{NO_COMPILE_ENV} is set"
    from torch.utils import cpp_extension  # lazy: imports setuptools machinery

    folder = build_dir()
    logger.info(
        "fused GRU: compiling %s into %s (first build takes 1-2 min; later runs reuse it)",
        SOURCE.name,
        folder,
    )
    start = time.perf_counter()
    done = threading.Event()
    threading.Thread(target=_progress, args=(done, start), daemon=True).start()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        module = cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(SOURCE)],
            build_directory=str(folder),
            extra_cflags=["-O3", "-fno-trapping-math"],  # lets the gate loops vectorise
            verbose=False,
        )
    except Exception as err:  # a missing compiler raises RuntimeError, OSError, ...
        reason = " ".join(str(err).split())[-600:] or type(err).__name__
        return None, f"{type(err).__name__}: {reason}"
    finally:
        done.set()
    logger.info("fused GRU: compiled kernel ready in %.1f s", time.perf_counter() - start)
    return module, ""


def _progress(done: threading.Event, start: float, every_s: float = 20.0) -> None:
    """Log a progress note every ``every_s`` seconds while the build runs (it is silent)."""
    while not done.wait(every_s):
        logger.info("fused GRU: still compiling (%.0f s so far)", time.perf_counter() - start)


def load_kernel(required: bool = False) -> ModuleType | None:
    """The compiled extension, or None (after one warning) when it cannot be built.

    Parameters
    ----------
    required : bool, default=False
        Raise :class:`CompiledKernelUnavailable` instead of returning None (for
        ``kernel="compiled"``, where a silent fallback would hide what was measured).
    """
    module, reason = _build()
    if module is None:
        if required:
            raise CompiledKernelUnavailable(
                f"fused GRU: the compiled kernel is unavailable ({reason}); use "
                "kernel='python' or 'auto', or install a C++ compiler and ninja"
            )
        _warn_once(reason)
    return module


@functools.cache
def _warn_once(reason: str) -> None:
    warnings.warn(
        f"fused GRU: the compiled kernel is unavailable ({reason}); "
        "training uses the Python fused path",
        RuntimeWarning,
        stacklevel=4,
    )


def reset() -> None:
    """Forget the build result and the warning (for tests that change the environment)."""
    _build.cache_clear()
    _warn_once.cache_clear()


def supports(gi: Tensor) -> bool:
    """Whether the compiled kernel computes this input: CPU, float32 or float64."""
    return gi.device.type == "cpu" and gi.dtype in (torch.float32, torch.float64)


class CompiledGRULayer(torch.autograd.Function):
    """``apply(gi, h0, weight_hh, bias_hh) -> (outputs (T, B, H), h_T (B, H))``, compiled.

    The same contract as :class:`medseq.models.fused_gru.FusedGRULayer`; the recurrence of
    both passes runs in ``csrc/fused_gru_step.cpp``.
    """

    @staticmethod
    def forward(
        ctx: Any, gi: Tensor, h0: Tensor, weight_hh: Tensor, bias_hh: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        kernel = load_kernel(required=True)
        assert kernel is not None  # for mypy: required=True raises instead
        gates, n, states = kernel.gru_forward(gi.contiguous(), h0.contiguous(), weight_hh, bias_hh)
        ctx.save_for_backward(weight_hh, gates, n, states)
        ctx.has_bias = bias_hh is not None
        return states[1:], states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_out: Tensor | None, grad_hn: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        weight_hh, gates, n, states = ctx.saved_tensors
        grad_out = torch.zeros_like(states[1:]) if grad_out is None else grad_out.contiguous()
        kernel = load_kernel(required=True)
        assert kernel is not None
        grad_gi, grad_h0, grad_w, grad_b = kernel.gru_backward(
            grad_out, grad_hn, gates, n, states, weight_hh
        )
        return grad_gi, grad_h0, grad_w, grad_b if ctx.has_bias else None


class CompiledGRUDRecurrence(torch.autograd.Function):
    """``apply(gi, gamma, weight_hh, bias_hh) -> outputs (T, B, H)``: GRU-D's hidden loop.

    The same contract as :class:`medseq.models.grud_recurrence.GRUDRecurrence` (a GRU step
    on the decayed state ``gamma_t * h_{t-1}``, ``h_{-1} = 0``), compiled like
    :class:`CompiledGRULayer`.
    """

    @staticmethod
    def forward(ctx: Any, gi: Tensor, gamma: Tensor, weight_hh: Tensor, bias_hh: Tensor) -> Tensor:
        kernel = load_kernel(required=True)
        assert kernel is not None  # for mypy: required=True raises instead
        gamma = gamma.contiguous()
        gates, n, h_dec, out = kernel.grud_forward(gi.contiguous(), gamma, weight_hh, bias_hh)
        ctx.save_for_backward(gates, n, h_dec, out, gamma, weight_hh)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        kernel = load_kernel(required=True)
        assert kernel is not None
        grads = kernel.grud_backward(grad_out.contiguous(), *ctx.saved_tensors)
        return tuple(grads)
