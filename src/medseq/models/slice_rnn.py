"""``SliceRNN``: a small 2D CNN per slice, a bidirectional GRU across slices, attention over them.

A volume is read the way a radiologist scrolls a stack: each slice is encoded on its own by
the same small CNN, the slice codes form a sequence, a bidirectional recurrence relates each
slice to its neighbours above and below, and additive attention weighs the slices into one
vector. The attention weights (one per slice, summing to 1) say which slices the decision
rests on; ``medseq explain`` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_bool, check_choice, check_dropout, check_int
from medseq.models.init import init_recurrent_
from medseq.models.pooling import AdditiveAttention
from medseq.models.sequence_classifier import RecurrentEncoder

# Every combination of flipping the depth, height and width axes of (B, D, H, W), identity first.
MIRRORS: tuple[tuple[int, ...], ...] = ((), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3))


@dataclass(frozen=True)
class SliceRNNConfig(ModelConfigBase):
    """Hyperparameters of :class:`SliceRNN`.

    Parameters
    ----------
    slice_size : int
        ``H = W`` of each slice (28 or 64 for MedMNIST), from the featurizer.
    kind : "slice_rnn"
    n_outputs : int, default=1
    channels : tuple of int, default=(8, 16, 32)
        Output channels of the CNN's 3x3 conv blocks; each but the last is followed by 2x2
        max pooling.
    slice_embedding_size : int, default=64
        Size of each slice's code.
    cell : {"gru", "lstm"}, default="gru"
    hidden_size : int, default=32
        Per direction.
    bidirectional : bool, default=True
    attention_size : int, default=32
    dropout : float, default=0.2
        On the slice codes and before the output layer.
    test_time_flips : bool, default=False
        In eval mode, average the logits over the volume and its 7 mirror images (every
        combination of flipping the three axes). A model trained with random flips has seen
        all eight orientations; averaging them removes the orientation noise from each
        prediction at 8x the inference cost. Training is unchanged.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("slice_rnn",)

    slice_size: int
    kind: str = "slice_rnn"
    n_outputs: int = 1
    channels: tuple[int, ...] = (8, 16, 32)
    slice_embedding_size: int = 64
    cell: str = "gru"
    hidden_size: int = 32
    bidirectional: bool = True
    attention_size: int = 32
    dropout: float = 0.2
    test_time_flips: bool = False

    def _check_fields(self) -> None:
        owner = type(self).__name__
        check_int(owner, "slice_size", self.slice_size, 4)
        if isinstance(self.channels, (str, bytes)) or not hasattr(self.channels, "__iter__"):
            raise TypeError(f"{owner}.channels must be a list of ints, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.channels:
            raise ValueError(f"{owner}.channels must hold at least one conv block")
        for c in self.channels:
            check_int(owner, "channels[]", c, 1)
        if self.slice_size >> (len(self.channels) - 1) < 1:
            raise ValueError(
                f"{owner}: {len(self.channels) - 1} poolings halve slice_size={self.slice_size} "
                "below one pixel; use fewer channels"
            )
        for name in ("n_outputs", "slice_embedding_size", "hidden_size", "attention_size"):
            check_int(owner, name, getattr(self, name), 1)
        check_choice(owner, "cell", self.cell, ("gru", "lstm"))
        check_bool(owner, "bidirectional", self.bidirectional)
        check_bool(owner, "test_time_flips", self.test_time_flips)
        object.__setattr__(self, "dropout", check_dropout(owner, self.dropout))


class SliceEncoder(nn.Module):
    """2D CNN: one slice ``(1, H, W)`` -> code ``(E,)``; conv3x3-BN-ReLU blocks, max pooling."""

    def __init__(self, slice_size: int, channels: tuple[int, ...], embedding_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = slice_size, 1
        for k, c_out in enumerate(channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            if k < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.conv = nn.Sequential(*layers)
        self.project = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * size * size, embedding_size), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, H, W)`` -> ``(N, E)``."""
        return self.project(self.conv(x.unsqueeze(1)))


class SliceRNN(nn.Module):
    r"""Binary (or multi-output) classifier of a volume read slice by slice.

    .. math::
        z_d &= \mathrm{CNN}(\text{slice}_d) \in \mathbb{R}^{E} \\
        o_{1..D} &= \mathrm{BiGRU}(\mathrm{dropout}(z_{1..D})) \\
        p &= \textstyle\sum_d \alpha_d o_d \quad \text{(additive attention over slices)} \\
        \text{logits} &= W\,\mathrm{dropout}(p) + b

    Inputs
    ------
    slices : Tensor of shape (B, D, H, W), float32
    return_attention : bool, default=False
        Also return the attention over slices ``(B, D)``.

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
        With ``test_time_flips`` in eval mode, the mean over the eight mirror images; the
        attention returned is then that of the volume as given.
    """

    def __init__(self, config: SliceRNNConfig) -> None:
        super().__init__()
        if not isinstance(config, SliceRNNConfig):
            raise TypeError(f"SliceRNN needs a SliceRNNConfig, got {type(config).__name__}")
        self.config = c = config
        self.slice_encoder = SliceEncoder(c.slice_size, c.channels, c.slice_embedding_size)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = RecurrentEncoder(
            c.cell, c.slice_embedding_size, c.hidden_size, 1, c.bidirectional, 0.0
        )
        self.attention = AdditiveAttention(self.encoder.output_size, c.attention_size)
        self.out = nn.Linear(self.encoder.output_size, c.n_outputs)
        init_recurrent_(self)

    def forward(
        self, slices: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        size = self.config.slice_size
        if slices.dim() != 4 or slices.shape[2:] != (size, size):
            raise ValueError(
                f"SliceRNN: slices must have shape (B, D, {size}, {size}), "
                f"got {tuple(slices.shape)}"
            )
        if self.config.test_time_flips and not self.training:
            # One mirror image at a time: the memory of one pass, not eight.
            logits, weights = self._logits(slices)
            for dims in MIRRORS[1:]:
                logits = logits + self._logits(slices.flip(dims))[0]
            logits = logits / len(MIRRORS)
        else:
            logits, weights = self._logits(slices)
        if return_attention:
            return logits, weights
        return logits

    def _logits(self, slices: Tensor) -> tuple[Tensor, Tensor]:
        size = self.config.slice_size
        batch, depth = slices.shape[:2]
        codes = self.slice_encoder(slices.reshape(batch * depth, size, size).float())
        codes = self.dropout(codes.reshape(batch, depth, -1))  # (B, D, E)
        lengths = torch.full((batch,), depth, dtype=torch.long, device=slices.device)
        outputs = self.encoder(codes, lengths)  # (B, D, 2H)
        pooled, weights = self.attention(outputs, lengths)  # (B, 2H), (B, D)
        return self.out(self.dropout(pooled)), weights
