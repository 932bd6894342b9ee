"""Random crops of sequence-labelling batches: inputs and per-step labels cut together.

DeepSleepNet (Supratak et al. 2017) and TinySleepNet (2020) train their recurrent part on
short runs of consecutive epochs (25 and 20), not whole nights: each optimiser step then
costs a crop, an epoch of training holds many more updates, and the recurrence still
learns the transitions between stages. Prediction reads whole nights.
:class:`~medseq.datasets.ecg_augment.RandomCropAugment` crops ``values`` only (its labels
are per recording); here ``y`` of shape ``(B, T)`` is cut with the same window.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SequenceCropAugment:
    """``augment(batch, generator)``: the same random window of ``values`` and ``y``.

    Each sample's window of ``length`` steps starts uniformly within its valid steps;
    shorter samples keep all their steps. Labels outside the valid steps become NaN
    (unlabelled), inputs there zero.
    """

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"crop length must be >= 1 step, got {length}")
        self.length = int(length)

    def __call__(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        values, lengths, y = batch["values"], batch["lengths"], batch["y"]
        if y.ndim != 2 or y.shape[:2] != values.shape[:2]:
            raise ValueError(
                f"SequenceCropAugment needs per-step labels y (B, T) matching values "
                f"{tuple(values.shape[:2])}, got {tuple(y.shape)}"
            )
        width = min(self.length, values.shape[1])
        room = (lengths - width + 1).clamp(min=1).to(torch.float64)
        draw = torch.rand(len(lengths), generator=generator, dtype=torch.float64)
        starts = (draw * room).floor().to(torch.int64).to(values.device)
        index = starts[:, None] + torch.arange(width, device=values.device)[None, :]
        index = index.clamp(max=values.shape[1] - 1)
        new_lengths = lengths.clamp(max=width)
        mask = torch.arange(width, device=values.device)[None, :] < new_lengths[:, None]
        cropped = values.gather(1, index[:, :, None].expand(-1, -1, values.shape[2]))
        labels = y.gather(1, index).masked_fill(~mask, float("nan"))
        return {
            **batch,
            "values": cropped * mask[:, :, None],
            "lengths": new_lengths,
            "y": labels,
        }
