"""For whom does the model fail? The same metrics by subgroup, with CIs and a flag.

Each subgroup (an age band, a sex, an ICU type) is compared with **the rest** of the set:
both are resampled independently (stratified bootstrap, as everywhere in medseq; whole
patients when the dataset spec names the patient of each sample, as the run and
``medseq evaluate`` do), the
difference ``subgroup - rest`` is computed on each pair of resamples, and the subgroup is
flagged when the 95 % interval of that difference excludes 0. A flag is a prompt to look,
not a proof of bias: with many subgroups and metrics some flags arise by chance
(about 1 in 20 comparisons at a 95 % level when nothing differs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from medseq.evaluation.bootstrap import bootstrap_distribution

SUBGROUP_METRICS: tuple[str, ...] = ("auroc", "auprc", "brier", "recall", "specificity")


def subgroups_for(bundle, ev) -> dict[str, pd.Series]:
    """The subgroup columns the bundle's dataset spec defines for the set ``ev`` (an
    :class:`~medseq.report.datasets.EvaluatedSet`), in its sample order; empty when the
    spec has no ``subgroups`` part (the report then leaves the section out and says so)."""
    spec = bundle.spec()
    if spec.subgroups is None:
        return {}
    return dict(spec.subgroups(ev.data, ev.subject_ids))


def _compare(
    y: np.ndarray,
    p: np.ndarray,
    inside: np.ndarray,
    metric: str,
    settings: dict,
    patients: np.ndarray | None = None,
) -> dict[str, float]:
    """Point and CI of ``metric`` in the subgroup, in the rest, and of their difference.

    With ``patients`` (the patient of each sample), each side resamples its patients whole
    (cluster bootstrap): several samples of one patient are not independent evidence.
    """
    sub_groups = None if patients is None else patients[inside]
    rest_groups = None if patients is None else patients[~inside]
    sub = bootstrap_distribution(y[inside], p[inside], metric, **settings, groups=sub_groups)
    rest = bootstrap_distribution(y[~inside], p[~inside], metric, **settings, groups=rest_groups)
    n = min(len(sub.values), len(rest.values))
    diff = sub.values[:n] - rest.values[:n]  # independent resamples, paired by draw order
    lo, hi = np.quantile(diff, [0.025, 0.975])
    ci = sub.ci(0.05)
    return {
        "value": ci.point,
        "lo": ci.lo,
        "hi": ci.hi,
        "rest": rest.point,
        "diff_lo": float(lo),
        "diff_hi": float(hi),
        "flag": bool(lo > 0 or hi < 0),
    }


def _rows_for_group(
    y: np.ndarray,
    p: np.ndarray,
    inside: np.ndarray,
    metrics: Sequence[str],
    settings: dict,
    patients: np.ndarray | None,
) -> list[dict]:
    n_pos = int(y[inside].sum())
    both = 0 < n_pos < int(inside.sum()) and 0 < int(y[~inside].sum()) < int((~inside).sum())
    rows = []
    for metric in metrics:
        row: dict = {"metric": metric, "flag": False}
        if both:
            row |= _compare(y, p, inside, metric, dict(settings), patients)
        else:
            row["note"] = "one class only: not estimable"
        rows.append(row)
    return rows


def _group_order(series: pd.Series, labels: np.ndarray) -> list:
    """Groups present, in the categorical order when there is one, else sorted."""
    present = set(labels)
    if isinstance(getattr(series, "dtype", None), pd.CategoricalDtype):
        return [c for c in series.cat.categories if c in present]
    return sorted(present, key=str)


def check_patients(patients: object | None, n_samples: int) -> np.ndarray | None:
    """``patients`` as an array of one patient per sample, or None; a clear error if not."""
    if patients is None:
        return None
    who = np.asarray(patients)
    if who.shape != (n_samples,):
        raise ValueError(
            f"patients must name the patient of each of the {n_samples} samples, "
            f"got shape {who.shape}"
        )
    return who


def iter_subgroups(groups: Mapping[str, pd.Series], n_samples: int):
    """Yield ``(attribute, group, inside)`` for every group present, ``inside`` a bool mask.

    One walk over the subgroup definitions for every task's table, so binary and regression
    reports order, check and select groups the same way.
    """
    for attribute, series in groups.items():
        labels = np.asarray(series, dtype=object)
        if len(labels) != n_samples:
            raise ValueError(
                f"subgroup {attribute!r} has {len(labels)} labels for {n_samples} samples"
            )
        for group in _group_order(series, labels):
            yield attribute, group, labels == group


def subgroup_table(
    y_true: object,
    y_prob: object,
    groups: Mapping[str, pd.Series],
    *,
    threshold: float,
    metrics: Sequence[str] = SUBGROUP_METRICS,
    n_boot: int = 1000,
    random_state: int = 0,
    min_size: int = 30,
    patients: object | None = None,
) -> pd.DataFrame:
    """Metrics with 95 % CIs per subgroup, each compared with the rest of the set.

    Parameters
    ----------
    y_true, y_prob : array-like of shape (n_samples,)
    groups : mapping of str to Series of length n_samples
        Attribute name -> group label of each sample (positional order of ``y_true``).
    threshold : float
        For the thresholded metrics (``recall``, ``specificity``, ...), the bundle's.
    metrics : sequence of str, default=SUBGROUP_METRICS
    n_boot : int, default=1000
    random_state : int, default=0
    min_size : int, default=30
        Smaller groups are listed with their size only: their intervals would be too
        wide to read.
    patients : array-like of shape (n_samples,), default=None
        The patient of each sample (:attr:`EvaluatedSet.groups`, from the dataset spec's
        ``sample_keys``): the subgroup and the rest then resample whole patients
        (:func:`~medseq.evaluation.bootstrap.cluster_resample_indices`). With one sample
        per patient this gives the per-sample intervals exactly.

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (attribute, group, metric): ``attribute``, ``group``,
        ``n``, ``n_positive``, ``metric``, ``value``, ``lo``, ``hi``, ``rest``,
        ``diff_lo``, ``diff_hi``, ``flag``, ``note``.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_prob, dtype=np.float64)
    settings = {"n_boot": n_boot, "random_state": random_state, "threshold": threshold}
    who = check_patients(patients, len(y))
    rows = []
    for attribute, group, inside in iter_subgroups(groups, len(y)):
        base = {"attribute": attribute, "group": group, "n": int(inside.sum())}
        base["n_positive"] = int(y[inside].sum())
        if inside.sum() < min_size or inside.all():
            rows.append(base | {"metric": "", "flag": False, "note": "too small to estimate"})
            continue
        rows += [base | r for r in _rows_for_group(y, p, inside, metrics, settings, who)]
    columns = ["attribute", "group", "n", "n_positive", "metric", "value", "lo", "hi", "rest"]
    columns += ["diff_lo", "diff_hi", "flag", "note"]
    return pd.DataFrame(rows).reindex(columns=columns)
