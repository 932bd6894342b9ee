"""Random crops of training batches: the augmentation of whole-recording ECG classifiers.

Every epoch each training recording is seen through a different window, so a model that
is read over whole recordings at test time (attention pooling accepts any length) learns
from many shifted views of each one, and a training step costs a crop, not a recording.
"""

from __future__ import annotations

import torch
from torch import Tensor


class RandomCropAugment:
    """``augment(batch, generator)``: crop ``values`` along time to ``length`` steps.

    Each sample's window starts uniformly within its valid steps (``lengths``); samples
    shorter than ``length`` keep all their steps (and their length). Steps are samples of
    a raw signal or beats of a beat sequence alike.
    """

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"crop length must be >= 1 step, got {length}")
        self.length = int(length)

    def __call__(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        values, lengths = batch["values"], batch["lengths"]
        width = min(self.length, values.shape[1])
        room = (lengths - width + 1).clamp(min=1).to(torch.float64)
        draw = torch.rand(len(lengths), generator=generator, dtype=torch.float64)
        starts = (draw * room).floor().to(torch.int64).to(values.device)
        index = starts[:, None] + torch.arange(width, device=values.device)[None, :]
        index = index.clamp(max=values.shape[1] - 1)
        cropped = values.gather(1, index[:, :, None].expand(-1, -1, values.shape[2]))
        new_lengths = lengths.clamp(max=width)
        mask = torch.arange(width, device=values.device)[None, :] < new_lengths[:, None]
        return {**batch, "values": cropped * mask[:, :, None], "lengths": new_lengths}
