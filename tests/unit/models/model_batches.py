"""Tiny random batches and configs shared by the model tests."""

from __future__ import annotations

import itertools

import torch

from medseq.models import ModelConfig
from medseq.models.config import CELLS, POOLINGS

# (kind, cell, bidirectional, pooling): every combination a ModelConfig accepts.
COMBOS: list[tuple[str, str, bool, str]] = [
    ("rnn_classifier", cell, bidirectional, pooling)
    for cell, bidirectional, pooling in itertools.product(CELLS, (False, True), POOLINGS)
] + [("grud", "gru", False, pooling) for pooling in POOLINGS]


def combo_id(combo: tuple[str, str, bool, str]) -> str:
    kind, cell, bidirectional, pooling = combo
    return f"{kind}-{cell}-{'bi' if bidirectional else 'uni'}-{pooling}"


def tiny_config(combo: tuple[str, str, bool, str], **overrides: object) -> ModelConfig:
    kind, cell, bidirectional, pooling = combo
    fields = {
        "input_size": 4,
        "kind": kind,
        "cell": cell,
        "bidirectional": bidirectional,
        "pooling": pooling,
        "hidden_size": 5,
        "num_layers": 1 if kind == "grud" else 2,
        "static_size": 3,
        "static_hidden_size": 4,
        "attention_size": 6,
        "n_outputs": 2,
        "input_delta": True,
    }
    fields.update(overrides)
    return ModelConfig(**fields)


def make_batch(
    batch: int = 3,
    n_steps: int = 6,
    n_features: int = 4,
    static_size: int = 3,
    seed: int = 0,
    lengths: list[int] | None = None,
) -> dict[str, torch.Tensor]:
    """Random inputs in the featurizer's format; padding (t >= length) already zeroed."""
    gen = torch.Generator().manual_seed(seed)
    if lengths is None:
        lengths = torch.randint(1, n_steps + 1, (batch,), generator=gen).tolist()
        lengths[0] = n_steps  # at least one full-length sequence
    length_t = torch.tensor(lengths, dtype=torch.int64)
    valid = (torch.arange(n_steps).unsqueeze(0) < length_t.unsqueeze(1)).unsqueeze(2).float()
    mask = (torch.rand(batch, n_steps, n_features, generator=gen) < 0.5).float() * valid
    out = {
        "values": torch.randn(batch, n_steps, n_features, generator=gen) * valid,
        "mask": mask,
        "delta": torch.rand(batch, n_steps, n_features, generator=gen) * 3.0 * valid,
        "lengths": length_t,
    }
    if static_size:
        out["static"] = torch.randn(batch, static_size, generator=gen)
    return out


def pad_batch(batch: dict[str, torch.Tensor], extra: int, fill: float) -> dict[str, torch.Tensor]:
    """Append ``extra`` padding steps: values and delta ``fill``, mask 0; lengths unchanged."""
    out = dict(batch)
    for key in ("values", "mask", "delta"):
        x = batch[key]
        pad = x.new_full((x.shape[0], extra, x.shape[2]), 0.0 if key == "mask" else fill)
        out[key] = torch.cat([x, pad], dim=1)
    return out


def scramble_padding(batch: dict[str, torch.Tensor], seed: int, scale: float = 1e3) -> dict:
    """Overwrite every padding step (t >= length) of values/delta with noise, mask with 0."""
    gen = torch.Generator().manual_seed(seed)
    out = dict(batch)
    n_steps = batch["values"].shape[1]
    pad = torch.arange(n_steps).unsqueeze(0) >= batch["lengths"].unsqueeze(1)
    pad = pad.unsqueeze(2)
    for key in ("values", "delta"):
        noise = torch.randn(batch[key].shape, generator=gen) * scale
        out[key] = torch.where(pad, noise, batch[key])
    out["mask"] = torch.where(pad, torch.zeros_like(batch["mask"]), batch["mask"])
    return out
