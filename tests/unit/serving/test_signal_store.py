"""The signal streams' SQLite tables: checkpoints apart from the stream rows.

A stream's checkpoint (about 80 KB) lives in ``signal_checkpoints``: SQLite rewrites a
whole row on every update, so in the stream's row each chunk rewrote it. Files of the
earlier layout (the checkpoint in ``signal_streams``) are read after a move at opening.
Samples are a real MIT-BIH record's.
"""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from medseq.monitoring.records import read_record
from medseq.paths import dataset_dir
from medseq.serving.signal_store import ChunkRecord, SignalStore

FS = 360
CHECKPOINT = ('{"qrs": {"p": {"n_seen": 360}}}', os.urandom(80_000))  # opaque to the store


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    rec = read_record(dataset_dir("mitdb_full") / "100", lead="MLII")
    return rec.samples[: 40 * FS].astype(np.float64)


def _chunk(x: np.ndarray, seq: int, checkpoint=None) -> ChunkRecord:
    start = (seq - 1) * FS
    ack = {"stream_id": "a", "start": start, "beats": [], "quality": [], "open_episodes": []}
    return ChunkRecord(
        "a", seq, start, x[start : start + FS], start + FS, None, {"n_beats": 0},
        f"start:{start}", f"{seq:064d}", ack, [], checkpoint,
    )  # fmt: skip


def test_a_chunk_after_a_checkpoint_does_not_rewrite_it(tmp_path, samples):
    db = str(tmp_path / "s.sqlite")
    store = SignalStore(db)
    store.open_stream("a", "v1", FS, "MLII", None, {"n_beats": 0})
    store.save_chunk(_chunk(samples, 1, CHECKPOINT))
    store.checkpoint()  # WAL truncated: what follows is one chunk's writes
    ack = store.save_chunk(_chunk(samples, 2))
    wal = os.path.getsize(db + "-wal")
    assert wal < len(CHECKPOINT[1]) / 2, f"{wal} bytes of WAL for one chunk"
    assert ack.value["start"] == FS and '"start":360' in ack.text
    stored = store.load_stream("a")
    assert stored is not None and stored.checkpoint == CHECKPOINT
    assert stored.checkpoint_seq == 1 and [s for s, _ in stored.chunks] == [FS]
    np.testing.assert_array_equal(stored.chunks[0][1], samples[FS : 2 * FS])
    store.close()


def test_checkpoints_of_the_earlier_layout_are_moved_and_read(tmp_path, samples):
    db = str(tmp_path / "old.sqlite")
    store = SignalStore(db)
    store.open_stream("a", "v1", FS, "MLII", None, {"n_beats": 0})
    for seq in (1, 2, 3):
        store.save_chunk(_chunk(samples, seq))
    store.close()
    with sqlite3.connect(db) as con:  # as the earlier version wrote a checkpoint at chunk 2
        con.execute(
            "UPDATE signal_streams SET checkpoint_seq = 2, checkpoint_state = ?, "
            "checkpoint_arrays = ? WHERE stream_id = 'a'",
            CHECKPOINT,
        )
        con.execute("DELETE FROM signal_chunks WHERE seq <= 2")
        con.execute("DELETE FROM signal_checkpoints")
    store = SignalStore(db)
    stored = store.load_stream("a")
    assert stored is not None and stored.checkpoint == CHECKPOINT
    assert stored.checkpoint_seq == 2 and [s for s, _ in stored.chunks] == [2 * FS]
    with sqlite3.connect(db) as con:
        old = con.execute("SELECT checkpoint_state, checkpoint_arrays FROM signal_streams")
        assert old.fetchall() == [(None, None)]
    assert store.delete_stream("a")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM signal_checkpoints").fetchone()[0] == 0
    store.close()
