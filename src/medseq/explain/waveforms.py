"""Which stretches of a recording drove a waveform model's call: occlusion over time.

For a :class:`~medseq.models.conv_rnn.ConvRNN` bundle in recording mode (one prediction per
recording: an EEG segment, an ECG rhythm strip) the explanation is **occlusion** (Zeiler &
Fergus 2014) along time: each window of ``window_s`` seconds of the model input is set to
0 (the band-passed signal's baseline) in turn, everything else kept, and the drop of the
explained probability is recorded (the risk for a binary task, the probability of the
predicted class for a multiclass one). A positive drop marks a stretch the call needs; a
negative one a stretch that argues against it. ``n_windows`` forward passes per recording,
batched, so it costs about one prediction of that many recordings.

Nothing here names a dataset: the recording is read, labelled and featurised through the
dataset spec named in the bundle's provenance, and the input rate is the featurizer's
``target_fs_hz``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseq.bundle import bundle_model_kind


def is_waveform_bundle(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle holds ``ConvRNN`` models (read from its JSON, no weights)."""
    return bundle_model_kind(bundle_dir) == "conv_rnn"


@dataclass
class WaveformExplanation:
    """One recording's call and the occlusion drop per window; ``figures`` name -> PNG."""

    sample_id: int
    explained: str  # "risk" or "p(<class>)"
    probability: float
    threshold: float | None
    label: str | None
    window_s: float
    drop: np.ndarray  # (n_windows,)
    figures: dict[str, bytes] = field(default_factory=dict)

    def top_windows(self, n: int = 5) -> list[int]:
        """Windows whose occlusion lowers the explained probability most, largest first."""
        return [int(i) for i in np.argsort(-self.drop, kind="stable")[:n]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "sample_id": self.sample_id,
            "explained": self.explained,
            "probability": self.probability,
            "threshold": self.threshold,
            "label": self.label,
            "window_s": self.window_s,
            "top_windows_start_s": [w * self.window_s for w in self.top_windows()],
            "occlusion_drop": [float(d) for d in self.drop],
        }

    def summary(self) -> str:
        """Plain text for a terminal."""
        head = f"sample {self.sample_id}: {self.explained} = {self.probability:.3f}"
        if self.threshold is not None:
            head += f" (threshold {self.threshold:.3f})"
        if self.label is not None:
            head += f", label {self.label}"
        lines = [head, f"window (s)  drop of {self.explained} when the window is blanked"]
        for w in self.top_windows():
            start = w * self.window_s
            lines.append(f"{start:5.1f}-{start + self.window_s:5.1f}  {self.drop[w]:+.3f}")
        return "\n".join(lines)


def _explained(bundle, prob: np.ndarray) -> tuple[np.ndarray, str, int | None]:
    """The probability explained for each row of ``prob``, its name and the class index."""
    if prob.ndim == 1:
        return prob, "risk", None
    if prob.ndim != 2:
        raise ValueError(
            f"waveform occlusion explains one prediction per recording; this bundle predicts "
            f"per step (output shape {prob.shape})"
        )
    names = bundle.class_names or [str(k) for k in range(prob.shape[1])]
    k = int(np.argmax(prob[0]))
    return prob[:, k], f"p({names[k]})", k


def occlusion_drop(
    bundle, features: dict[str, np.ndarray], window_steps: int
) -> tuple[float, np.ndarray, str]:
    """``(probability, drop per window, name)`` for one featurised recording.

    ``features`` holds ``values`` ``(1, T, C)`` and ``lengths`` (and any other input the
    model takes, kept as is); window ``w`` blanks input steps ``[w * window_steps,
    (w + 1) * window_steps)`` of the valid part.
    """
    values = features["values"]
    if values.shape[0] != 1:
        raise ValueError(f"occlusion_drop explains one recording, got {values.shape[0]}")
    length = int(features["lengths"][0])
    starts = np.arange(0, length, window_steps)
    batch = np.repeat(values, len(starts) + 1, axis=0)
    for row, start in enumerate(starts, start=1):
        batch[row, start : start + window_steps] = 0.0
    arrays = {k: np.repeat(v, len(starts) + 1, axis=0) for k, v in features.items()}
    prob = np.asarray(bundle.predict_arrays({**arrays, "values": batch}))
    first, name, k = _explained(bundle, prob[:1])
    explained = prob if k is None else prob[:, k]
    return float(first[0]), float(first[0]) - explained[1:], name


def waveform_figure(expl: WaveformExplanation, values: np.ndarray, fs_hz: float) -> bytes:
    """The model input (first channel) above the occlusion drop per window."""
    from medseq.explain.plotting import figure_png, pyplot

    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True)
    t = np.arange(len(values)) / fs_hz
    top.plot(t, values[:, 0], linewidth=0.5, color="black")
    top.set_ylabel("model input")
    top.set_title(f"Sample {expl.sample_id}: {expl.explained} = {expl.probability:.2f}")
    starts = np.arange(len(expl.drop)) * expl.window_s
    colours = ["#d95f02" if d > 0 else "#1b9e77" for d in expl.drop]
    bottom.bar(starts, expl.drop, width=expl.window_s, align="edge", color=colours)
    bottom.axhline(0.0, color="black", linewidth=0.6)
    bottom.set_ylabel(f"drop of {expl.explained}\nwhen blanked")
    bottom.set_xlabel("time (s)")
    return figure_png(fig)


def explain_recording(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
    window_s: float = 1.0,
) -> tuple[WaveformExplanation, list[Path]]:
    """Read ``data_path``, explain recording ``sample_id``, write its figure and JSON.

    Files: ``<output_dir>/sample-<id>-occlusion.png`` and ``sample-<id>.json``
    (``output_dir`` defaults to ``explain-<id>/``).
    """
    from medseq.bundle import load_bundle
    from medseq.datasets.registry import get_dataset
    from medseq.experiment.data import read_set

    bundle = load_bundle(bundle_dir)
    if getattr(bundle.model_config, "mode", "recording") != "recording":
        raise ValueError(f"{bundle_dir}: occlusion explains recording-mode models only")
    dataset, task = bundle.dataset, bundle.dataset_task
    spec = get_dataset(dataset)
    described = bundle.featurizer.describe()
    if described.time_unit != "s" or not described.step_size:
        raise ValueError(
            f"{bundle_dir}: occlusion over seconds needs a featurizer that steps in samples; "
            f"{described.kind!r} steps by {described.step or 'an unknown unit'}"
        )
    data = read_set(dataset, data_path)
    labels = spec.labels(task, data)
    if int(sample_id) not in labels.index:
        raise ValueError(
            f"{data_path}: no sample_id {sample_id} in dataset {dataset!r} "
            f"(e.g. {labels.index[:5].tolist()})"
        )
    features = spec.transform(bundle.featurizer, data, np.array([sample_id]))
    fs_hz = 1.0 / float(described.step_size)
    steps = max(1, round(window_s * fs_hz))
    probability, drop, name = occlusion_drop(bundle, features, steps)
    names = bundle.class_names or []
    label = int(labels.loc[sample_id])
    expl = WaveformExplanation(
        sample_id=int(sample_id), explained=name, probability=probability,
        threshold=bundle.threshold if bundle.task == "binary" else None,
        label=names[label] if bundle.task == "multiclass" and label < len(names) else str(label),
        window_s=steps / fs_hz, drop=drop,
    )  # fmt: skip
    expl.figures = {"occlusion": waveform_figure(expl, features["values"][0], fs_hz)}
    out = Path(output_dir or f"explain-{sample_id}")
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"sample-{sample_id}-occlusion.png"
    png.write_bytes(expl.figures["occlusion"])
    summary = out / f"sample-{sample_id}.json"
    summary.write_text(json.dumps(expl.to_dict(), indent=2))
    return expl, [png, summary]
