"""Why RETAIN gave this risk: the contribution of each visit and of each code in it.

RETAIN's logit is linear in its attention-weighted visit embeddings, so it splits exactly
into one term per (visit, code) (:meth:`medseq.models.retain.Retain.contributions`, the
paper's eq. 6): no gradient approximation, and the terms add up to the logit minus the
output bias. For a bundle of several members the explained output is the mean of the
members' logits (the terms are averaged the same way); the risk shown beside it is the
bundle's prediction (the mean of the members' probabilities).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseq.bundle import bundle_model_kind
from medseq.features.base import describe


def is_retain_bundle(bundle_dir: str | os.PathLike) -> bool:
    """Whether the bundle at ``bundle_dir`` holds RETAIN models (read from its JSON)."""
    return bundle_model_kind(bundle_dir) == "retain"


@dataclass
class HistoryExplanation:
    """One sample's risk, its per-visit attention and per-code contributions to the logit."""

    sample_id: int
    risk: float
    threshold: float | None
    logit: float
    bias: float
    visits: list[dict[str, Any]] = field(default_factory=list)

    def top_codes(self, n: int = 10) -> list[dict[str, Any]]:
        """The ``n`` (visit, code) terms of largest absolute contribution."""
        terms = [{"visit": v["visit"], **c} for v in self.visits for c in v["codes"]]
        return sorted(terms, key=lambda t: -abs(t["contribution"]))[:n]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: every visit with its codes, and the top codes overall."""
        return {
            "sample_id": self.sample_id,
            "risk": self.risk,
            "threshold": self.threshold,
            "decision": None if self.threshold is None else bool(self.risk >= self.threshold),
            "explained_output": "mean logit of the members",
            "logit": self.logit,
            "bias": self.bias,
            "sum_of_contributions": float(sum(v["contribution"] for v in self.visits)),
            "visits": self.visits,
            "top_codes": self.top_codes(),
        }

    def summary(self) -> str:
        """Plain text for a terminal."""
        lines = [f"sample {self.sample_id}: risk {self.risk:.3f}"]
        if self.threshold is not None:
            call = "positive" if self.risk >= self.threshold else "negative"
            lines[0] += f" (threshold {self.threshold:.3f}: {call})"
        total = sum(v["contribution"] for v in self.visits)
        lines.append(
            f"logit {self.logit:+.3f} = bias {self.bias:+.3f} + contributions {total:+.3f}"
        )
        for v in self.visits:
            lines.append(
                f"visit {v['visit']} (hour {v['start_hours']:.1f}): attention {v['alpha']:.3f}, "
                f"contribution {v['contribution']:+.3f}"
            )
        lines.append("top codes (visit, code, contribution):")
        for t in self.top_codes():
            lines.append(f"  {t['visit']}  {t['code']}  {t['contribution']:+.4f}")
        return "\n".join(lines)


def retain_terms(bundle, features: dict[str, np.ndarray], output: int = 0) -> dict[str, Any]:
    """Members' mean ``contributions`` (N, T, C), ``alpha`` (N, T), ``logit`` and ``bias``."""
    visits = torch.as_tensor(features["visits"], dtype=torch.float32)
    lengths = torch.as_tensor(features["lengths"], dtype=torch.int64)
    parts = [member.contributions(visits, lengths) for member in bundle.members]
    return {
        "contributions": np.mean([p["contributions"][..., output].numpy() for p in parts], 0),
        "alpha": np.mean([p["alpha"].numpy() for p in parts], 0),
        "logit": np.mean([p["logits"][:, output].numpy() for p in parts], 0),
        "bias": float(np.mean([float(p["bias"][output]) for p in parts])),
    }


def explain_history_arrays(
    bundle, features: dict[str, np.ndarray], sample_id: int, visit_starts: np.ndarray
) -> HistoryExplanation:
    """Explain one featurised sample (N = 1); ``visit_starts`` are its visits' hours."""
    if len(features["lengths"]) != 1:
        raise ValueError(f"explain one sample at a time, got {len(features['lengths'])}")
    terms = retain_terms(bundle, features)
    names = describe(bundle.featurizer).names("C")
    length = int(features["lengths"][0])
    first = len(visit_starts) - length  # visits beyond max_visits were dropped from the front
    visits = []
    for t in range(length):
        present = np.flatnonzero(features["visits"][0, t])
        codes: list[dict[str, Any]] = [
            {"code": names[c], "contribution": float(terms["contributions"][0, t, c])}
            for c in present
        ]
        codes.sort(key=lambda d: -abs(d["contribution"]))
        visits.append(
            {
                "visit": first + t,
                "start_hours": float(visit_starts[first + t]),
                "alpha": float(terms["alpha"][0, t]),
                "contribution": float(terms["contributions"][0, t].sum()),
                "codes": codes,
            }
        )
    return HistoryExplanation(
        sample_id=int(sample_id),
        risk=float(bundle.predict_arrays(features)[0]),
        threshold=bundle.threshold,
        logit=float(terms["logit"][0]),
        bias=terms["bias"],
        visits=visits,
    )


def explain_history(
    bundle_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    sample_id: int,
    *,
    output_dir: str | os.PathLike | None = None,
) -> tuple[HistoryExplanation, list[Path]]:
    """Read ``data_path`` with the bundle's dataset, explain ``sample_id``, write its JSON."""
    from medseq.bundle import load_bundle
    from medseq.experiment.data import resolve_data_path
    from medseq.tasks.histories import samples

    bundle = load_bundle(bundle_dir)
    spec = bundle.spec()
    data = spec.read(resolve_data_path(data_path))
    task = bundle.dataset_task
    spec.labels(task, data)
    # data labelled with its own samples (a config task's, keyed by sample) gives them;
    # a history dataset's samples are derived from its task
    table = getattr(data, "samples", None)
    if table is None:
        table = samples(data.history, task)
    if int(sample_id) not in table.index:
        raise ValueError(
            f"{data_path}: no {task} sample {sample_id} (ids are subject ids for mortality, "
            "subject_id * 1000 + visit for next_visit)"
        )
    features = spec.transform(bundle.featurizer, data, np.array([int(sample_id)]))
    row = table.loc[int(sample_id)]
    visits = data.history.visits
    # histories kept per sample (each cut at its prediction time) are keyed by sample id
    key = int(sample_id) if getattr(data, "history_by_sample", False) else row["subject_id"]
    mine = visits[(visits["subject_id"] == key) & (visits["start"] < row["cutoff"])]
    expl = explain_history_arrays(bundle, features, int(sample_id), mine["start"].to_numpy())
    out = Path(output_dir or f"explain-{sample_id}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sample-{sample_id}.json"
    path.write_text(json.dumps(expl.to_dict(), indent=2))
    return expl, [path]
