"""Which tokens of a molecule's SMILES drove each predicted label: integrated gradients on the
token embeddings.

For a model over token ids with an ``embedding`` layer (``SmilesRNN``), the input the
gradients can reach is the embedded sequence. Each token ``t`` gets a gate ``g_t`` that
scales its embedding, ``e_t -> g_t e_t``; integrated gradients (Sundararajan et al. 2017,
Captum) over the gates from 0 to 1 follow the straight path from the all-zero embedding
(the padding embedding) to the molecule's embeddings, in every member at once, so

.. math::
    \\sum_t \\mathrm{IG}_t = f(\\text{molecule}) - f(\\text{all tokens at the padding embedding})

with ``f`` the log-odds of the label (:mod:`medseq.explain.gradients`; the lengths are
kept). For a single member this is Captum's ``LayerIntegratedGradients`` on the embedding
layer with a zero baseline, summed over the embedding dimension (a test checks it), and it
extends to an ensemble, whose members each have their own embedding table.

The canonical SMILES (variant 0 of an enumerating featurizer) is explained; the bundle's
probability, averaged over the variants, is reported beside it. Labels explained: those
predicted positive (``p >= 0.5``, the three most probable at most) or the most probable
one, or ``--target NAME``. Nothing here names a dataset: the vocabulary is the
featurizer's ``describe()`` names along ``V``.
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
from torch import nn

from medseq.explain.gradients import Integrated, LogOdds, integrate, read_sample, write_files

MAX_LABELS = 3


def is_token_input(described: Any) -> bool:
    """The featurizer (its ``describe()``) gives ``tokens`` with a vocabulary (``V`` names)."""
    return "tokens" in described.output_names and "V" in described.feature_names


def _embedding(member: nn.Module) -> nn.Embedding:
    layer = getattr(member, "embedding", None)
    if not isinstance(layer, nn.Embedding):
        raise ValueError(
            f"token attributions need the model's `embedding` layer (nn.Embedding); "
            f"{type(member).__name__} has none"
        )
    return layer


class GatedEmbeddings:
    """Scale every member's embedding output by per-token gates while active (forward hooks).

    Use as a context manager; ``gates`` ``(B, T)`` is set before each forward call.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        self.members = list(members)
        self.gates: torch.Tensor | None = None
        self._handles: list[Any] = []

    def _hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            raise RuntimeError("GatedEmbeddings: set .gates before calling the model")
        gates = self.gates[:, : output.shape[1]]  # the model may cut to the longest length
        return output * gates[..., None].to(output.dtype)

    def __enter__(self) -> GatedEmbeddings:
        self._handles = [_embedding(m).register_forward_hook(self._hook) for m in self.members]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@dataclass
class LabelTokens:
    """One label's token attributions (log-odds units)."""

    name: str
    probability: float  # the bundle's (all variants)
    canonical_probability: float
    scores: np.ndarray  # (T,)
    integrated: Integrated


@dataclass
class TokenExplanation:
    """A molecule, its tokens and one :class:`LabelTokens` per explained label."""

    sample_id: int
    smiles: str
    tokens: list[str]
    labels: list[LabelTokens]
    figures: dict[str, bytes] = field(default_factory=dict)

    def annotated(self, label: LabelTokens) -> str:
        """The SMILES with each token's score after it: ``C(+0.12)c(-0.03)...``."""
        return " ".join(f"{t}({s:+.2f})" for t, s in zip(self.tokens, label.scores, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_id": self.sample_id,
            "smiles": self.smiles,
            "tokens": self.tokens,
            "labels": [
                {
                    "label": lab.name,
                    "probability": lab.probability,
                    "canonical_probability": lab.canonical_probability,
                    "log_odds": lab.integrated.output,
                    "baseline_log_odds": lab.integrated.baseline_output,
                    "convergence_delta": lab.integrated.convergence_delta,
                    "token_scores": [float(s) for s in lab.scores],
                }
                for lab in self.labels
            ],
        }

    def summary(self) -> str:
        lines = [f"molecule {self.sample_id}: {self.smiles}"]
        for lab in self.labels:
            ig = lab.integrated
            top = np.argsort(-np.abs(lab.scores), kind="stable")[:5]
            lines += [
                f"{lab.name}: p = {lab.probability:.3f} (canonical SMILES "
                f"{lab.canonical_probability:.3f}); log-odds {ig.output:+.3f} against "
                f"{ig.baseline_output:+.3f} with every token at the padding embedding "
                f"(delta {ig.convergence_delta:+.2g})",
                "  " + self.annotated(lab),
                "  top tokens: " + ", ".join(
                    f"{self.tokens[i]}@{i} {lab.scores[i]:+.3f}" for i in top),
            ]  # fmt: skip
        return "\n".join(lines)


def chosen_labels(prob: np.ndarray, names: Sequence[str], target: str | None) -> list[int]:
    """``--target`` by name; else the labels with ``p >= 0.5`` (most probable first, at most
    :data:`MAX_LABELS`), else the most probable label."""
    if target is not None:
        if target not in names:
            raise ValueError(f"--target {target!r} is not one of this bundle's labels {names}")
        return [list(names).index(target)]
    order = [int(k) for k in np.argsort(-prob, kind="stable")]
    positive = [k for k in order if prob[k] >= 0.5][:MAX_LABELS]
    return positive or order[:1]


def token_attributions(
    bundle: Any, tokens: np.ndarray, length: int, label: int, *, n_steps: int = 64
) -> Integrated:
    """Integrated gradients of label ``label``'s log-odds over the gates of ``tokens`` (T,)."""
    ids = torch.as_tensor(tokens[:length]).long()[None]  # (1, T)
    lengths = torch.tensor([length])
    task = "multiclass" if bundle.task == "multiclass" else "multilabel"
    with GatedEmbeddings(bundle.members) as gated:

        def logits_of(gates: torch.Tensor, ids: torch.Tensor) -> list[torch.Tensor]:
            # One row per call: a model may reorder a batch internally (length buckets),
            # which would pair the gates with the wrong rows.
            out = []
            for m in bundle.members:
                rows = []
                for row in range(len(gates)):
                    gated.gates = gates[row : row + 1]
                    rows.append(m(ids[row : row + 1], lengths))
                out.append(torch.cat(rows))
            return out

        forward = LogOdds(logits_of, task, label)
        return integrate(forward, (torch.ones(1, length),), (ids,), n_steps=n_steps)


def explain_molecule(
    bundle: Any, features: dict[str, np.ndarray], sample_id: int, *,
    target: str | None = None, n_steps: int = 64,
) -> TokenExplanation:  # fmt: skip
    """:class:`TokenExplanation` of one featurised molecule (``tokens`` of shape (1, T) or
    (1, K, T), variant 0 explained)."""
    for member in bundle.members:
        member.eval()
    vocabulary = bundle.featurizer.describe().names("V")
    tokens = np.asarray(features["tokens"])[0]
    canonical = tokens[0] if tokens.ndim == 2 else tokens
    length = int((canonical != 0).sum())
    prob = np.atleast_1d(np.asarray(bundle.predict_arrays(features))[0])
    one = {"tokens": canonical[None], "lengths": np.array([length])}
    canonical_prob = np.atleast_1d(np.asarray(bundle.predict_arrays(one))[0])
    names = list(bundle.class_names or [str(k) for k in range(len(prob))])
    labels = []
    for k in chosen_labels(prob, names, target):
        integrated = token_attributions(bundle, canonical, length, k, n_steps=n_steps)
        labels.append(LabelTokens(names[k], float(prob[k]), float(canonical_prob[k]),
                                  integrated.attributions[0], integrated))  # fmt: skip
    words = [vocabulary[int(i)] for i in canonical[:length]]
    return TokenExplanation(int(sample_id), "".join(words), words, labels)


def explain_tokens(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
    target: str | None = None,
    n_steps: int = 64,
) -> tuple[TokenExplanation, list[Path]]:
    """Read ``data_path`` with the bundle's dataset, explain molecule ``sample_id``.

    Files: ``<output_dir>/sample-<id>-tokens.png`` and ``sample-<id>.json``.
    """
    from medseq.explain.sequence_figures import token_figure

    bundle, data, _, ids = read_sample(bundle_dir, data_path, sample_id)
    features = bundle.spec().transform(bundle.featurizer, data, ids)
    expl = explain_molecule(bundle, features, sample_id, target=target, n_steps=n_steps)
    expl.figures = {"tokens": token_figure(expl)}
    return expl, write_files(Path(output_dir or f"explain-{sample_id}"), {
        f"sample-{sample_id}-tokens.png": expl.figures["tokens"],
        f"sample-{sample_id}.json": json.dumps(expl.to_dict(), indent=2),
    })  # fmt: skip
