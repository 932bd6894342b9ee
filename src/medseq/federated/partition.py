"""Split one cohort into "sites": every subject in exactly one site.

A :class:`SitePartition` holds the sites' ids. A run gets it from its dataset spec's named
partition (``spec.partitions[name]``, which gives a site name per sample:
:meth:`SitePartition.from_assignment`); the functions below build one directly, for
benchmarks and notebooks: by a column of a descriptor table, by the set a subject came
from, IID (random equal shares) or label-skewed non-IID (each class spread over the sites
by Dirichlet shares, Hsu et al. 2019; :mod:`medseq.datasets.partitions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medseq.datasets import partitions as assign


@dataclass(frozen=True)
class SitePartition:
    """Subject ids of each site, disjoint, sorted, in a fixed site order.

    Attributes
    ----------
    sites : dict of str to ndarray of int64
        Site name -> its subject ids.
    by : str
        What the sites were drawn by (a column name, ``"set"``, ``"iid"``, ``"dirichlet"``).
    dropped : dict of str to int
        Subjects left out and why (e.g. ``missing:ICUType``), counted, never silent.
    """

    sites: dict[str, np.ndarray]
    by: str
    dropped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_assignment(cls, site_of: pd.Series, *, by: str, n_total: int) -> SitePartition:
        """Sites from a site name per sample id (a spec partition's answer).

        Categorical ``site_of`` gives the site order, else sites are sorted by name; the
        ``n_total - len(site_of)`` samples it did not place are counted as ``unassigned``.
        """
        site_of = site_of.dropna()
        if isinstance(site_of.dtype, pd.CategoricalDtype):
            order = [str(c) for c in site_of.cat.categories]
        else:
            order = sorted(str(v) for v in site_of.unique())
        names = site_of.astype(str)
        index = np.asarray(site_of.index, dtype=np.int64)
        sites = {name: np.sort(index[(names == name).to_numpy()]) for name in order}
        _check_disjoint(sites)
        dropped = {"unassigned": n_total - len(site_of)} if n_total > len(site_of) else {}
        return cls(sites=sites, by=by, dropped=dropped)

    def without_empty(self) -> SitePartition:
        """The sites that hold at least one subject (a label-skewed draw may leave one empty)."""
        kept = {k: v for k, v in self.sites.items() if len(v)}
        empty = len(self.sites) - len(kept)
        dropped = {**self.dropped, "empty_sites": empty} if empty else dict(self.dropped)
        return SitePartition(kept, by=self.by, dropped=dropped)

    @property
    def names(self) -> list[str]:
        return list(self.sites)

    def site_of(self) -> pd.Series:
        """Site name of every partitioned subject, indexed by ``subject_id``."""
        parts = [pd.Series(name, index=ids) for name, ids in self.sites.items()]
        return pd.concat(parts).rename("site").rename_axis("subject_id")

    def summary(self, labels: pd.Series | None = None) -> pd.DataFrame:
        """Subjects per site and, given labels, the positive rate."""
        rows: dict[str, dict[str, float]] = {
            name: {"subjects": len(ids)} for name, ids in self.sites.items()
        }
        if labels is not None:
            for name, ids in self.sites.items():
                rows[name]["positive_rate"] = float(labels.reindex(ids).mean())
        return pd.DataFrame.from_dict(rows, orient="index")


def _check_disjoint(sites: Mapping[str, np.ndarray]) -> None:
    seen = np.concatenate([np.asarray(v) for v in sites.values()]) if sites else np.array([])
    if len(np.unique(seen)) != len(seen):
        raise ValueError("a subject_id is in more than one site")


def partition_by_column(
    static: pd.DataFrame,
    column: str,
    *,
    subject_ids: np.ndarray | None = None,
    names: Mapping[int, str] | None = None,
    on_missing: str = "raise",
) -> SitePartition:
    """One site per distinct value of ``static[column]``.

    Parameters
    ----------
    static : DataFrame indexed by subject_id
        E.g. ``physionet2012.read(...).static``.
    column : str
        E.g. ``"ICUType"``.
    subject_ids : ndarray, optional
        Only these subjects (default: every row).
    names : mapping of value to site name, optional
        Default ``<column>=<value>`` (PhysioNet 2012's ICU type names are
        :data:`medseq.datasets.physionet2012.ICU_TYPE_NAMES`).
    on_missing : {"raise", "drop"}, default="raise"
        A subject whose value is missing: raise naming the ids, or leave it out (counted
        in ``dropped``).
    """
    if column not in static.columns:
        raise ValueError(f"partition column {column!r} is not in the static table {list(static)}")
    if on_missing not in ("raise", "drop"):
        raise ValueError(f"on_missing must be 'raise' or 'drop', got {on_missing!r}")
    values = static[column] if subject_ids is None else static[column].reindex(subject_ids)
    missing = values.isna()
    dropped: dict[str, int] = {}
    if missing.any():
        if on_missing == "raise":
            ids = values.index[missing][:10].tolist()
            raise ValueError(
                f"{int(missing.sum())} subjects have no {column} (first: {ids}); "
                "pass on_missing='drop' to leave them out"
            )
        dropped[f"missing:{column}"] = int(missing.sum())
        values = values[~missing]
    sites: dict[str, np.ndarray] = {}
    for value in sorted(values.unique()):
        key = int(value) if float(value).is_integer() else value
        name = (names or {}).get(key, f"{column}={value:g}")
        sites[name] = np.sort(values.index[values == value].to_numpy(dtype=np.int64))
    return SitePartition(sites=sites, by=column, dropped=dropped)


def partition_iid(subject_ids: np.ndarray, n_sites: int, *, random_state: int = 0) -> SitePartition:
    """Random, near-equal shares: the IID control of a non-IID experiment."""
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    ids = np.random.default_rng(random_state).permutation(np.asarray(subject_ids, np.int64))
    parts = np.array_split(ids, n_sites)
    return SitePartition({f"site_{k}": np.sort(p) for k, p in enumerate(parts)}, by="iid")


def partition_dirichlet(
    labels: pd.Series, n_sites: int, *, alpha: float = 0.5, random_state: int = 0
) -> SitePartition:
    """Label-skewed sites: each class is spread over sites by Dirichlet(``alpha``) shares.

    Small ``alpha`` (0.1) gives sites dominated by one outcome; large (100) is near IID.
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be >= 1, got {n_sites}")
    if not alpha > 0:
        raise ValueError(f"dirichlet_alpha must be > 0, got {alpha}")
    site_of = assign.dirichlet_label_skew(labels, n_sites, alpha, random_state)
    return SitePartition.from_assignment(
        site_of, by=f"dirichlet(alpha={alpha:g})", n_total=len(labels)
    )


def partition_sets(sets: Mapping[str, np.ndarray]) -> SitePartition:
    """One site per separately read set (e.g. ``{"set_a": ids_a, "set_b": ids_b}``)."""
    sites = {name: np.sort(np.asarray(ids, np.int64)) for name, ids in sets.items()}
    _check_disjoint(sites)
    return SitePartition(sites, by="set")
