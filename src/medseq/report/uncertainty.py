"""How sure is the model? Conformal coverage, set sizes and the risk-coverage curve.

The conformal sets come from the validation scores stored in the bundle
(:mod:`medseq.evaluation.conformal`); here they are checked on each labelled set of the
report: the empirical coverage (share of cases whose true class is in the set, or whose
target is in the interval) should be close to the requested coverage, and the mean set
size says what that costs. Both carry percentile bootstrap CIs, overall and per subgroup
(the dataset spec's ``subgroups``), because a model can cover 90 % overall and much less
in one ICU type. The risk-coverage curve (:func:`medseq.evaluation.selective.risk_coverage`)
shows the error on the cases the model answers when it abstains on the least confident.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medseq.evaluation.bootstrap import cluster_resample_indices
from medseq.evaluation.conformal import intervals_from_pred, sets_from_probs
from medseq.evaluation.selective import abstain, risk_coverage
from medseq.report.datasets import EvaluatedSet
from medseq.report.subgroups import subgroups_for


def covered_and_size(
    calibration: dict[str, Any], y: np.ndarray, pred: np.ndarray, coverage: float,
    *, mondrian: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(N,) coverage indicator and (N,) set size (interval width for regression).

    Multilabel: the share of labels covered and the mean set size over labels, per case.
    """
    task = calibration["task"]
    if task == "regression":
        interval = intervals_from_pred(calibration, pred, coverage)
        inside = (interval[:, 0] <= y) & (y <= interval[:, 1])
        return inside.astype(float), interval[:, 1] - interval[:, 0]
    sets = sets_from_probs(calibration, pred, coverage, mondrian=mondrian)
    if task == "multilabel":  # sets (N, L, 2); a missing label (NaN) is not counted
        known = np.isfinite(np.asarray(y, dtype=np.float64))
        labels = np.where(known, y, 0).astype(int)
        hit = np.take_along_axis(sets, labels[:, :, None], axis=2)[:, :, 0]
        with np.errstate(invalid="ignore"):
            return (hit * known).sum(axis=1) / known.sum(axis=1), sets.sum(axis=2).mean(axis=1)
    y = np.asarray(y).astype(int)
    return sets[np.arange(len(y)), y].astype(float), sets.sum(axis=1).astype(float)


def mean_ci(
    values: np.ndarray, *, n_boot: int, random_state: int = 0, groups: object | None = None
) -> list[float]:
    """``[mean, lo, hi]``: percentile bootstrap 95 % interval of a per-case mean.

    With ``groups`` (the patient of each case) whole patients are resampled, as the run's
    metric CIs do: one patient's cases are not independent. With one case per patient
    the interval is the per-case one exactly.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return [float("nan")] * 3
    if groups is None:
        rng = np.random.default_rng(random_state)
        means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    else:
        rows = cluster_resample_indices(values, groups, n_boot, random_state, stratified=False)
        means = np.array([values[row].mean() for row in rows])
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [float(values.mean()), float(lo), float(hi)]


def _summary(covered, size, n_boot: int, random_state: int, groups=None) -> dict[str, Any]:
    settings = {"n_boot": n_boot, "random_state": random_state, "groups": groups}
    return {
        "n": len(covered),
        "coverage": mean_ci(covered, **settings),
        "set_size": mean_ci(size, **settings),
    }


def set_uncertainty(
    bundle, ev: EvaluatedSet, coverage: float, *, n_boot: int, random_state: int = 0
) -> dict[str, Any]:
    """Coverage and size (marginal and Mondrian), by subgroup, and the abstention share."""
    cal, y = bundle.conformal, np.asarray(ev.y)
    variants = ("marginal",) if cal["task"] == "regression" else ("marginal", "mondrian")
    out: dict[str, Any] = {"name": ev.name, "coverage_requested": coverage}
    groups = subgroups_for(bundle, ev)
    who = ev.groups  # the patient of each sample, when the spec names it: resample patients

    def part(mask: np.ndarray) -> np.ndarray | None:
        return None if who is None else np.asarray(who)[mask]

    for variant in variants:
        covered, size = covered_and_size(cal, y, ev.risk, coverage, mondrian=variant != "marginal")
        out[variant] = _summary(covered, size, n_boot, random_state, who)
        if cal["task"] in ("binary", "multiclass"):  # what Mondrian is for: each true class
            out[variant]["by_class"] = [
                {"class": str(k)} | _summary(covered[m], size[m], n_boot, random_state, part(m))
                for k in range(len(cal["by_class"]))
                for m in [y == k]
            ]
        out[variant]["subgroups"] = [
            {"attribute": attr, "group": str(g)}
            | _summary(covered[mask], size[mask], n_boot, random_state, part(mask))
            for attr, column in groups.items()
            for g in sorted(column.dropna().unique(), key=str)
            for mask in [column.to_numpy() == g]
        ]
    if cal.get("abstention"):
        out["abstention"] = cal["abstention"] | {"abstained": float(abstain(cal, ev.risk).mean())}
    if cal["task"] in ("binary", "multiclass"):
        threshold = bundle.threshold if cal["task"] == "binary" else None
        out["risk_coverage"] = risk_coverage(y, ev.risk, cal["task"], threshold=threshold)
    return out


def cross_fold_coverage(
    task: str, y: np.ndarray, pred: np.ndarray, folds: np.ndarray, coverage: float,
    *, n_boot: int, mondrian: bool = False, random_state: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Coverage on each cross-validation test part, calibrated on the other parts.

    A dataset evaluated by cross-validation has no separate test set: fold ``k``'s
    out-of-fold predictions are its test part. Its sets are calibrated on the scores of the
    other folds only (:func:`~medseq.evaluation.conformal.fit_conformal`), never on fold
    ``k`` itself, so each fold's coverage is an honest held-out figure; ``pooled`` sums the
    parts. Returns ``{"folds": [{"fold", "n", "coverage", "set_size"}...], "pooled": ...}``
    with percentile bootstrap 95 % CIs (``[mean, lo, hi]``).
    """
    from medseq.evaluation.conformal import fit_conformal

    y, pred, folds = np.asarray(y), np.asarray(pred, dtype=np.float64), np.asarray(folds)
    if not len(y) == len(pred) == len(folds):
        raise ValueError(
            f"cross_fold_coverage: {len(y)} labels, {len(pred)} predictions and "
            f"{len(folds)} fold labels; one of each per case"
        )
    if len(np.unique(folds)) < 2:
        raise ValueError("cross_fold_coverage: needs at least two folds to calibrate on others")
    covered = np.zeros(len(y))
    size = np.zeros(len(y))
    parts = []
    for k in np.unique(folds):
        held, rest = folds == k, folds != k
        calibration = fit_conformal(task, y[rest], pred[rest])
        if calibration is None:
            raise ValueError(f"cross_fold_coverage: no conformal scores for task {task!r}")
        c, s = covered_and_size(calibration, y[held], pred[held], coverage, mondrian=mondrian)
        covered[held], size[held] = c, s
        parts.append({"fold": int(k)} | _summary(c, s, n_boot, random_state))
    return {"folds": parts, "pooled": _summary(covered, size, n_boot, random_state)}


def uncertainty_section(
    bundle, sets: dict[str, EvaluatedSet], *, coverage: float, n_boot: int, random_state: int
) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    """Per set uncertainty numbers and the risk-coverage figure; None without scores."""
    if getattr(bundle, "conformal", None) is None:
        return None, {}
    per_set = {
        role: set_uncertainty(bundle, ev, coverage, n_boot=n_boot, random_state=random_state)
        for role, ev in sets.items()
    }
    curves = {s["name"]: s["risk_coverage"] for s in per_set.values() if "risk_coverage" in s}
    return per_set, ({"risk_coverage": risk_coverage_figure(curves)} if curves else {})


def risk_coverage_figure(curves: dict[str, list[dict[str, float]]]) -> bytes:
    """Error on the answered cases against the share answered, one line per set."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, rows in curves.items():
        ax.plot([r["answer_rate"] for r in rows], [r["error"] for r in rows], marker="o",
                markersize=3, label=name)  # fmt: skip
    ax.set_xlabel("share of cases answered (most confident first)")
    ax.set_ylabel("error rate on the answered cases")
    ax.set_title("Risk-coverage", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
