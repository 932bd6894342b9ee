"""Which slices of a volume drove the decision: attention over slices and slice occlusion.

For a :class:`~medseq.models.slice_rnn.SliceRNN` bundle two views are given side by side:

- **attention** (mean over the bundle's members): the weight each slice's recurrent state
  has in the pooled vector. It says where the model *read*; a state also carries its
  neighbours' slices (bidirectional GRU), so it is not an attribution by itself.
- **occlusion** (Captum, Zeiler & Fergus 2014): the drop in the risk logit when one slice
  is blanked (set to 0, the background of MedMNIST's shape masks), all others kept. It
  says what the output *needs*; ``D`` forward passes per volume.

Agreement between the two is worth more than either alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from medseq.bundle import bundle_model_kind

_EPS = 1e-6


def is_slice_bundle(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle at ``bundle_dir`` holds slice-stack models (read from its JSON)."""
    return bundle_model_kind(bundle_dir) == "slice_rnn"


class SliceLogit(nn.Module):
    """``slices (B, D, H, W) -> (B, 1)``: the logit of the members' mean probability."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.eval()

    def forward(self, slices: Tensor) -> Tensor:
        probs = torch.stack([torch.sigmoid(m(slices=slices)) for m in self.members]).mean(0)
        return torch.logit(probs.clamp(_EPS, 1.0 - _EPS))


@dataclass
class SliceExplanation:
    """One volume's risk and per-slice evidence; ``figures`` maps a name to PNG bytes."""

    sample_id: int
    risk: float
    threshold: float | None
    label: int | None
    attention: np.ndarray  # (D,), sums to 1
    occlusion: np.ndarray  # (D,), logit drop when the slice is blanked
    foreground: np.ndarray  # (D,), share of non-zero voxels per slice
    figures: dict[str, bytes] = field(default_factory=dict)

    def top_slices(self, n: int = 5) -> list[int]:
        """Slices with the largest attention, most attended first."""
        return [int(i) for i in np.argsort(-self.attention, kind="stable")[:n]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "sample_id": self.sample_id,
            "risk": self.risk,
            "threshold": self.threshold,
            "decision": None if self.threshold is None else bool(self.risk >= self.threshold),
            "label": self.label,
            "top_slices_by_attention": self.top_slices(),
            "top_slices_by_occlusion": [int(i) for i in np.argsort(-self.occlusion)[:5]],
            "attention": [float(a) for a in self.attention],
            "occlusion_logit_drop": [float(o) for o in self.occlusion],
            "foreground_share": [float(f) for f in self.foreground],
        }

    def summary(self) -> str:
        """Plain text for a terminal."""
        head = f"sample {self.sample_id}: risk {self.risk:.3f}"
        if self.threshold is not None:
            call = "positive" if self.risk >= self.threshold else "negative"
            head += f" (threshold {self.threshold:.3f}: {call})"
        if self.label is not None:
            head += f", label {self.label}"
        lines = [head, "slice  attention  occlusion (logit drop)  foreground"]
        for d in self.top_slices():
            lines.append(
                f"{d:5d}  {self.attention[d]:9.3f}  {self.occlusion[d]:+22.3f}"
                f"  {self.foreground[d]:10.3f}"
            )
        return "\n".join(lines)


def slice_attention(bundle, slices: np.ndarray) -> np.ndarray:
    """Attention over slices ``(N, D)``, averaged over the bundle's members."""
    x = torch.as_tensor(slices, dtype=torch.float32)
    with torch.no_grad():
        weights = [m.eval()(slices=x, return_attention=True)[1] for m in bundle.members]
    return torch.stack(weights).mean(0).numpy()


def slice_occlusion(bundle, slices: np.ndarray) -> np.ndarray:
    """Logit drop ``(N, D)`` when each slice alone is set to 0 (Captum ``Occlusion``)."""
    from captum.attr import Occlusion

    x = torch.as_tensor(slices, dtype=torch.float32)
    height, width = x.shape[2:]
    with torch.no_grad():
        attr = Occlusion(SliceLogit(bundle.members)).attribute(
            x,
            sliding_window_shapes=(1, height, width),
            strides=(1, height, width),
            baselines=0.0,
            target=0,
        )
    # Every pixel of a slice holds that slice's drop: read it at the corner.
    return attr[:, :, 0, 0].numpy()


def explain_volume(
    bundle, slices: np.ndarray, sample_id: int, label: int | None = None
) -> SliceExplanation:
    """Explain one volume given as ``slices`` ``(1, D, H, W)`` (the featurizer's output)."""
    if slices.ndim != 4 or slices.shape[0] != 1:
        raise ValueError(f"explain_volume explains one volume (1, D, H, W), got {slices.shape}")
    risk = float(bundle.predict_arrays({"slices": slices})[0])
    expl = SliceExplanation(
        sample_id=int(sample_id),
        risk=risk,
        threshold=bundle.threshold,
        label=label,
        attention=slice_attention(bundle, slices)[0],
        occlusion=slice_occlusion(bundle, slices)[0],
        foreground=(slices[0] > 0).mean(axis=(1, 2)),
    )
    expl.figures = {"slices": slice_figure(expl, slices[0])}
    return expl


def slice_figure(expl: SliceExplanation, volume: np.ndarray, n_shown: int = 6) -> bytes:
    """Attention and occlusion per slice (bars), above the most attended non-empty slices."""
    from medseq.explain.plotting import figure_png, pyplot

    plt = pyplot()
    depth = len(expl.attention)
    filled = [d for d in np.argsort(-expl.attention, kind="stable") if expl.foreground[d] > 0]
    shown = sorted(int(d) for d in (filled or list(range(depth)))[:n_shown])
    fig = plt.figure(figsize=(9.0, 6.4))
    grid = fig.add_gridspec(3, len(shown), height_ratios=(1.0, 1.0, 1.1))
    steps = np.arange(depth)
    top = fig.add_subplot(grid[0, :])
    top.bar(steps, expl.attention, color="#d95f02")
    top.set_ylabel("attention")
    top.set_title(f"Sample {expl.sample_id}: risk {expl.risk:.2f} - which slices mattered")
    mid = fig.add_subplot(grid[1, :], sharex=top)
    mid.bar(steps, expl.occlusion, color="#1b9e77")
    mid.axhline(0.0, color="black", linewidth=0.6)
    mid.set_ylabel("logit drop\nwhen blanked")
    mid.set_xlabel("slice")
    for k, d in enumerate(shown):
        sub = fig.add_subplot(grid[2, k])
        sub.imshow(volume[d], cmap="gray", vmin=0.0, vmax=max(float(volume.max()), 1e-6))
        sub.set_title(f"slice {d}: {expl.attention[d]:.2f}", fontsize=8)
        sub.axis("off")
    return figure_png(fig)


def explain_sample(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
) -> tuple[SliceExplanation, list[Path]]:
    """Read ``data_path``, explain volume ``sample_id``, write its figure and JSON.

    Files: ``<output_dir>/sample-<id>-slices.png`` and ``sample-<id>.json``
    (``output_dir`` defaults to ``explain-<id>/``).
    """
    from medseq.bundle import load_bundle
    from medseq.experiment.data import read_set

    bundle = load_bundle(bundle_dir)
    spec = bundle.spec()
    data = read_set(bundle.dataset, data_path)
    labels = spec.labels(bundle.dataset_task, data)
    if int(sample_id) not in labels.index:
        raise ValueError(f"{data_path}: no sample_id {sample_id} (ids run 0..{labels.index.max()})")
    features = spec.transform(bundle.featurizer, data, np.array([sample_id]))
    expl = explain_volume(bundle, features["slices"], int(sample_id), int(labels[sample_id]))
    out = Path(output_dir or f"explain-{sample_id}")
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"sample-{sample_id}-slices.png"
    png.write_bytes(expl.figures["slices"])
    summary = out / f"sample-{sample_id}.json"
    summary.write_text(json.dumps(expl.to_dict(), indent=2))
    return expl, [png, summary]
