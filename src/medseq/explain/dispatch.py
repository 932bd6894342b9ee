"""``medseq explain``: the explanation that fits the bundle, chosen from its JSON alone.

The choice reads the model config and the featurizer's ``describe()`` (rebuilt from the
bundle's JSON, no weights), never the dataset's name:

==============================================  ==========================================
bundle                                          explanation
==============================================  ==========================================
slice-stack model (volumes)                     attention and occlusion per slice
a class per step (``mode = "sequence"``)         per-step labels, occlusion, context reach,
                                                and one step by integrated gradients
RETAIN (visit histories)                        visit attention, code contributions
``tokens`` with a vocabulary (SMILES)           integrated gradients per token and label
named features per step (beats)                 integrated gradients per step and feature
samples at a rate (waveforms)                   occlusion over seconds
an ICU time grid (GRU, GRU-D)                   integrated gradients per variable and hour
==============================================  ==========================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medseq.bundle import MANIFEST_FILE, bundle_model_kind

GRID_KINDS = (None, "rnn_classifier", "grud")


def _manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(bundle_dir) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _described(manifest: dict[str, Any]) -> Any:
    """The featurizer's description, from the state in the bundle's JSON (None if absent)."""
    from medseq.features.registry import featurizer_from_state_dict

    state = manifest.get("featurizer")
    return featurizer_from_state_dict(state).describe() if state else None


def _by_class(described: Any, mode: str) -> Callable[..., tuple[Any, list[Path]]] | None:
    """The explanation by class of token and feature-sequence inputs; None for others."""
    from medseq.explain.feature_sequences import explain_feature_sequence, is_feature_sequence
    from medseq.explain.tokens import explain_tokens, is_token_input

    if described is not None and is_token_input(described):
        return explain_tokens
    if described is not None and is_feature_sequence(described, mode):
        return explain_feature_sequence
    return None


def _check_step(bundle_dir: str | os.PathLike, mode: str, step: int | None) -> None:
    if step is not None and mode != "sequence":
        raise ValueError(f"{bundle_dir}: --step applies to models with a class per step")


def explain_any(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    subject: int,
    *,
    output_dir: str | os.PathLike | None = None,
    n_steps: int = 64,
    step: int | None = None,
    target: str | None = None,
) -> tuple[Any, list[Path]]:
    """Explain sample ``subject`` of ``data_path`` with the method that fits the bundle.

    ``step`` applies to per-step models, ``target`` (a class or label name) to models
    explained by class; both are refused where they mean nothing.
    Returns the explanation (each has ``summary()``) and the files written.
    """
    from medseq.explain.retain import explain_history
    from medseq.explain.slices import explain_sample
    from medseq.explain.steps import explain_steps
    from medseq.explain.subject import explain_subject
    from medseq.explain.waveforms import explain_recording

    manifest, kind = _manifest(bundle_dir), bundle_model_kind(bundle_dir)
    mode = manifest.get("model_config", {}).get("mode", "recording")
    _check_step(bundle_dir, mode, step)
    if kind == "slice_rnn":
        return explain_sample(bundle_dir, data_path, subject, output_dir=output_dir)
    if mode == "sequence":
        return explain_steps(
            bundle_dir, data_path, subject, output_dir=output_dir, step=step, n_steps=n_steps
        )
    if kind == "retain":
        return explain_history(bundle_dir, data_path, subject, output_dir=output_dir)
    by_class = _by_class(_described(manifest), mode) if kind not in GRID_KINDS else None
    if by_class is not None:
        return by_class(
            bundle_dir, data_path, subject, output_dir=output_dir, target=target, n_steps=n_steps
        )
    if target is not None:
        raise ValueError(f"{bundle_dir}: --target applies to token and feature-sequence models")
    if kind == "conv_rnn":
        return explain_recording(bundle_dir, data_path, subject, output_dir=output_dir)
    if kind not in GRID_KINDS:
        raise ValueError(
            f"{bundle_dir}: medseq explain covers ICU-grid, RETAIN, slice-stack, waveform, "
            "beat-feature, token and per-step bundles; this one holds a "
            f"{kind!r} model (use medseq.explain's attention and Captum helpers from Python, "
            "or `medseq report` for its metrics)"
        )
    return explain_subject(bundle_dir, data_path, subject, output_dir=output_dir, n_steps=n_steps)
