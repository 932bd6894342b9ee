"""A large MEDS folder to a task's count features, one shard at a time, in bounded memory.

:func:`medseq.sources.meds.read_events` builds one pandas table of every event: right for
thousands of subjects, not for millions of events on a laptop. MEDS puts each subject in
exactly one shard (``data/**/*.parquet``), so a task whose samples are per subject can be
built shard by shard: read one shard's four columns with pyarrow (codes dictionary-encoded,
so a code string is decoded once per shard, not once per event), find each subject's
prediction time, label and input counts with numpy, keep only those, and drop the shard.
Peak memory is one shard plus the (sparse) result, whatever the number of shards.

The task is the anchor form of the config tasks (:mod:`medseq.tasks.spec`): prediction time
= first event with an anchor code + ``offset_hours``; label = a label code in
``(t, t + within_hours]``; inputs = events in ``[t - window_hours, t)`` (all before ``t``
when ``window_hours`` is 0), counted per code: the features of the count baseline. Birth,
death and ``GENDER/`` codes are static facts, not inputs, as in :mod:`medseq.tasks.inputs`.
Subjects without an anchor are counted, not silently dropped. Null times (static facts)
are never inputs or outcomes here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseq.schema import DataError

US_PER_HOUR = 3_600_000_000
#: static facts of the MEDS conventions: never counted as inputs (as in medseq.tasks.inputs)
STATIC = frozenset({"MEDS_BIRTH", "MEDS_DEATH"})
GENDER = "GENDER/"


@dataclass
class ScanResult:
    """Samples, labels and count features of every shard.

    Attributes
    ----------
    subject_id : ndarray of int64, shape (n_samples,)
    prediction_time : ndarray of datetime64[us]
    label : ndarray of int8
    counts : scipy.sparse.csr_matrix of shape (n_samples, n_codes)
        Events of each input code in each sample's observation window.
    codes : list of str
        Column names of ``counts`` (every code seen, in first-seen order).
    n_events : int
        Rows read, over all shards.
    excluded : dict of str to int
        Subjects left out and why (``no_anchor``).
    """

    subject_id: np.ndarray
    prediction_time: np.ndarray
    label: np.ndarray
    counts: object
    codes: list[str]
    n_events: int
    excluded: dict[str, int] = field(default_factory=dict)


def shards(path: str | Path) -> list[Path]:
    """The parquet shards of a MEDS folder (or the folder of shards itself), sorted."""
    root = Path(path)
    data = root / "data" if (root / "data").is_dir() else root
    found = sorted(data.rglob("*.parquet"))
    if not found:
        raise DataError(f"{path}: no parquet shards under {data}")
    return found


def _read(shard: Path):
    import pyarrow.parquet as pq

    table = (
        pq.read_table(shard, columns=["subject_id", "time", "code"], read_dictionary=["code"])
        .unify_dictionaries()
        .combine_chunks()
    )
    missing = {"subject_id", "time", "code"} - set(table.column_names)
    if missing:
        raise DataError(f"{shard}: MEDS columns {sorted(missing)} missing")
    return table


class _Vocabulary:
    """Global code ids; a shard's dictionary is mapped once (its size, not its rows)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def ids(self, dictionary: list[str]) -> np.ndarray:
        return np.array(
            [self.index.setdefault(code, len(self.index)) for code in dictionary], dtype=np.int64
        )


def _shard_samples(
    table, vocab: _Vocabulary, anchor: set[str], labels: set[str], spec: tuple[int, int, int]
) -> tuple[np.ndarray, ...]:
    offset, within, window = spec
    chunks = table.column("code").chunks
    if not chunks:  # an empty shard
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty.astype(np.int8), empty, empty, np.array([0])
    column = chunks[0]
    dictionary = column.dictionary.to_pylist()
    local = column.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    code = vocab.ids(dictionary)[local]
    subject = table.column("subject_id").to_numpy()
    time_col = table.column("time")
    timed = ~np.asarray(time_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    time = time_col.cast("int64").fill_null(0).to_numpy()
    order = np.lexsort((time, subject))
    if not np.array_equal(order, np.arange(len(order))):  # MEDS shards are sorted; check
        subject, time, code, timed = subject[order], time[order], code[order], timed[order]
    anchor_ids = vocab.ids([c for c in dictionary if c in anchor])
    label_ids = vocab.ids([c for c in dictionary if c in labels])
    static_ids = vocab.ids([c for c in dictionary if c in STATIC or c.startswith(GENDER)])
    hits = np.isin(code, anchor_ids) & timed
    subjects, first = np.unique(subject[hits], return_index=True)
    cutoff = time[hits][first] + offset
    # each event's sample row (-1: subject has no sample)
    row = np.searchsorted(subjects, subject)
    row[(row >= len(subjects)) | (subjects[np.minimum(row, len(subjects) - 1)] != subject)] = -1
    has = row >= 0
    t = np.where(has, cutoff[np.maximum(row, 0)], 0)
    before = has & timed & (time < t) & ~np.isin(code, static_ids)
    if window:
        before &= time >= t - window
    outcome = has & timed & np.isin(code, label_ids) & (time > t) & (time <= t + within)
    label = np.zeros(len(subjects), dtype=np.int8)
    label[np.unique(row[outcome])] = 1
    n_all = len(np.unique(subject))
    return subjects, cutoff, label, row[before], code[before], np.array([n_all - len(subjects)])


def scan_task(
    path: str | Path,
    *,
    anchor: list[str],
    offset_hours: float,
    label_codes: list[str],
    within_hours: float,
    window_hours: float = 0.0,
) -> ScanResult:
    """Build an anchor task's samples and count features shard by shard (see module doc)."""
    from scipy import sparse

    if not anchor or not label_codes:
        raise ValueError("scan_task needs at least one anchor code and one label code")
    spec = (
        int(offset_hours * US_PER_HOUR),
        int(within_hours * US_PER_HOUR),
        int(window_hours * US_PER_HOUR),
    )
    vocab = _Vocabulary()
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, Any]] = []
    n_events, no_anchor = 0, 0
    for shard in shards(path):
        table = _read(shard)
        n_events += table.num_rows
        subjects, cutoff, label, rows, codes, excluded = _shard_samples(
            table, vocab, set(anchor), set(label_codes), spec
        )
        no_anchor += int(excluded[0])
        del table
        # counts of this shard now (bounded), as a sparse block; stacked at the end
        block = sparse.coo_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, codes)),
            shape=(len(subjects), max(len(vocab.index), 1)),
        ).tocsr()
        parts.append((subjects, cutoff, label, block))
    n_codes = max(len(vocab.index), 1)
    blocks = [
        sparse.csr_matrix((b.data, b.indices, b.indptr), shape=(b.shape[0], n_codes))
        for *_, b in parts
    ]
    return ScanResult(
        subject_id=np.concatenate([p[0] for p in parts]),
        prediction_time=np.concatenate([p[1] for p in parts]).astype("datetime64[us]"),
        label=np.concatenate([p[2] for p in parts]),
        counts=sparse.vstack(blocks, format="csr"),
        codes=list(vocab.index),
        n_events=n_events,
        excluded={"no_anchor": no_anchor},
    )


def iter_shard_sizes(path: str | Path) -> Iterator[tuple[Path, int]]:
    """Rows per shard from the parquet footers (nothing read): for progress and checks."""
    import pyarrow.parquet as pq

    for shard in shards(path):
        yield shard, pq.ParquetFile(shard).metadata.num_rows
