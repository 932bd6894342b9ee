"""What every medseq model shares: input checks, padding clean-up, static fusion and the head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medseq.models.pooling import valid_steps


def check_model_config(config: object, kind: str, owner: str) -> None:
    """A model is built from a ``ModelConfig`` of its own kind; say which call builds it."""
    from medseq.models.config import ModelConfig

    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    if config.kind != kind:
        raise ValueError(
            f"{owner} needs config.kind={kind!r}, got {config.kind!r}; "
            "use medseq.models.build_model(config)"
        )


def _is_exporting() -> bool:
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def check_inputs(
    owner: str,
    values: Tensor,
    mask: Tensor,
    delta: Tensor,
    lengths: Tensor,
    static: Tensor | None,
    sizes: tuple[int, int],
) -> None:
    """Raise ``ValueError`` naming the argument, expected and got shapes, on bad input.

    ``sizes`` is ``(input_size, static_size)`` of the model ``owner``.
    """
    input_size, static_size = sizes
    if values.dim() != 3 or values.shape[2] != input_size:
        raise ValueError(
            f"{owner}: values must have shape (B, T, {input_size}), got {tuple(values.shape)}"
        )
    for name, tensor in (("mask", mask), ("delta", delta)):
        if tensor.shape != values.shape:
            raise ValueError(
                f"{owner}: {name} must have the shape of values {tuple(values.shape)}, "
                f"got {tuple(tensor.shape)}"
            )
    batch, n_steps = values.shape[0], values.shape[1]
    if lengths.shape != (batch,) or lengths.is_floating_point():
        raise ValueError(
            f"{owner}: lengths must be an integer tensor of shape ({batch},), "
            f"got {lengths.dtype} {tuple(lengths.shape)}"
        )
    if not _is_exporting() and batch > 0:
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1 or high > n_steps:
            raise ValueError(f"{owner}: lengths must be in [1, T={n_steps}], got [{low}, {high}]")
    _check_static(owner, static, batch, static_size)


def _check_static(owner: str, static: Tensor | None, batch: int, static_size: int) -> None:
    if static is None:
        if static_size > 0:
            raise ValueError(f"{owner}: static of shape ({batch}, {static_size}) is required")
        return
    if static.shape != (batch, static_size):
        hint = "; build with static_size=S to use static inputs" if static_size == 0 else ""
        raise ValueError(
            f"{owner}: static must have shape ({batch}, {static_size}), "
            f"got {tuple(static.shape)}{hint}"
        )


def zero_padding(lengths: Tensor, *tensors: Tensor) -> list[Tensor]:
    """Replace every step ``t >= lengths[b]`` of each ``(B, T, F)`` tensor by zeros.

    After this nothing a caller put in the padding (even NaN or inf) can reach a valid step.
    """
    padding = ~valid_steps(lengths, tensors[0].shape[1]).unsqueeze(2)
    return [x.masked_fill(padding, 0.0) for x in tensors]


class OutputHead(nn.Module):
    r"""Fuse the pooled sequence vector with the static vector and map to logits.

    .. math::
        s &= \mathrm{ReLU}(W_s\,\text{static} + b_s) \quad (\text{if } S > 0) \\
        \text{logits} &= W_o\,\mathrm{dropout}([\text{pooled}; s]) + b_o

    Parameters
    ----------
    pooled_size : int
        ``D``, the size of the pooled vector.
    static_size : int
        ``S``; 0 for no static input.
    static_hidden_size : int
        Width of the static encoder.
    dropout : float
        Dropout before the output layer.
    n_outputs : int
        Number of logits.
    """

    def __init__(
        self,
        pooled_size: int,
        static_size: int,
        static_hidden_size: int,
        dropout: float,
        n_outputs: int,
    ) -> None:
        super().__init__()
        self.static_net: nn.Sequential | None = None
        fused = pooled_size
        if static_size > 0:
            self.static_net = nn.Sequential(nn.Linear(static_size, static_hidden_size), nn.ReLU())
            fused += static_hidden_size
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(fused, n_outputs)

    def forward(self, pooled: Tensor, static: Tensor | None) -> Tensor:
        """``(B, D)``, ``(B, S)`` or None -> logits ``(B, n_outputs)``."""
        if self.static_net is not None and static is not None:
            pooled = torch.cat([pooled, self.static_net(static)], dim=1)
        return self.out(self.dropout(pooled))
