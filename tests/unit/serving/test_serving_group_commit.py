"""Group commit of streaming updates (issue 19) on real PhysioNet 2012 stays: staged writes
are committed together, no update is answered before its commit, a failed commit answers
none of its updates and reloads their states; the state blob and the answers are the same
bytes as before."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import numpy as np
import pytest
from safetensors.numpy import save as safetensors_save
from serving_helpers import AUTH, TOKEN, hourly_updates, round_robin

from medseq.serving import schemas
from medseq.serving.api import create_app
from medseq.serving.engine import AlertPolicy, FeatureState
from medseq.serving.group_commit import GroupCommit
from medseq.serving.service import StreamService
from medseq.serving.settings import ServeSettings
from medseq.serving.state_codec import encode_state
from medseq.serving.store import CommitFailed, StateStore, UpdateRecord


@pytest.fixture(scope="module")
def plans(setb):
    """Per patient, one update per charted hour of 4 real stays."""
    return hourly_updates(setb, 1200, 4)


def _service(bundle, path) -> StreamService:
    return StreamService(bundle, "v1", StateStore(path), AlertPolicy(0.5))


def _rows(path) -> dict[str, int]:
    """``n_observations`` of each stored patient, read by a second connection."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT patient_id, scalars FROM patients").fetchall()
    return {pid: json.loads(s)["n_observations"] for pid, s in rows}


def test_state_blob_is_the_bytes_of_safetensors_numpy_save(gru_bundle, plans, tmp_path):
    service = _service(gru_bundle, tmp_path / "s.sqlite")
    for pid, history in list(round_robin(plans))[:40]:
        service.update(pid, history)
        state = service._cache.get(pid).state
        arrays = {n: np.ascontiguousarray(getattr(state.features, n), dtype=d)
                  for n, d in FeatureState.STORED_DTYPES.items()}  # fmt: skip
        arrays |= {"hidden": state.hidden, "pool": state.pool}
        assert encode_state(state)[1] == safetensors_save(arrays)


def test_staged_updates_commit_together_and_equal_one_by_one(gru_bundle, plans, tmp_path):
    one, group = tmp_path / "one.sqlite", tmp_path / "group.sqlite"
    single, grouped = _service(gru_bundle, one), _service(gru_bundle, group)
    updates = list(round_robin(plans))[:24]
    tickets = []
    for pid, history in updates:
        single.update(pid, history)
        ack = grouped.update(pid, history, stage=True)
        assert ack.ticket is not None and not ack.ticket.done
        tickets.append(ack.ticket)
        if len(tickets) % 8 == 0:  # a turn of the event loop: 8 updates, then one commit
            assert grouped.store.n_staged == 8
            assert sum(_rows(group).values()) < sum(_rows(one).values())  # not yet committed
            grouped.flush()
            assert all(t.done and t.error is None for t in tickets)
            assert _rows(group) == _rows(one)
    for pid in plans:  # the stored states are the same to the bit
        a, b = single.store.load(pid).state, grouped.store.load(pid).state
        assert a.risk == b.risk and np.array_equal(a.hidden, b.hidden)
        assert np.array_equal(a.features.block, b.features.block, equal_nan=True)


def test_reads_commit_staged_writes_first(gru_bundle, plans, tmp_path):
    path = tmp_path / "reads.sqlite"
    service = _service(gru_bundle, path)
    pid, updates = next(iter(plans.items()))
    service.update(pid, updates[0], key="k-1", stage=True)
    assert service.store.applied_update(pid, "key:k-1") is not None  # a retry sees it ...
    assert service.store.n_staged == 0 and pid in _rows(path)  # ... once committed
    service.update(pid, updates[1], key="k-2", stage=True)
    assert service.store.n_staged == 1
    assert service.get(pid) is not None and service.store.n_staged == 0  # GET commits first
    service.update(pid, updates[2], stage=True)
    service._cache.pop(pid)  # evicted before its commit: the reload must see the staged write
    ack = service.update(pid, updates[3])
    n = sum(len(u.observations) for u in updates[:4])
    assert ack.n_observations == n == _rows(path)[pid]


def test_a_failed_group_commit_answers_none_and_reloads(gru_bundle, plans, tmp_path, monkeypatch):
    path = tmp_path / "fail.sqlite"
    service = _service(gru_bundle, path)
    updates = list(round_robin(plans))
    for pid, history in updates[:4]:  # one committed update per patient
        service.update(pid, history)
    committed = _rows(path)
    staged = [service.update(pid, h, stage=True) for pid, h in updates[4:8]]

    def broken(*args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(service.store, "_write", broken)
    service.flush()
    assert all(isinstance(a.ticket.error, CommitFailed) for a in staged)
    monkeypatch.undo()
    assert _rows(path) == committed  # rolled back: nothing of the group is stored
    assert len(service._cache) == 0  # their in-memory states were dropped ...
    pid, history = updates[4]
    ack = service.update(pid, history)  # ... so the retry applies to the committed state
    assert ack.n_observations == committed[pid] + len(history.observations)


def test_save_raises_when_its_commit_fails(tmp_path, gru_bundle, monkeypatch):
    service = _service(gru_bundle, tmp_path / "save.sqlite")
    state = service.engine.new_state({})

    def broken(*args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(service.store, "_write", broken)
    with pytest.raises(CommitFailed) as info:
        service.store.save("p1", "v1", None, state, [], UpdateRecord())
    assert info.value.patient_ids == ["p1"]
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


def _bodies(plans, n_rounds):
    """Single-observation bodies: round r sends each patient's r-th observation."""
    out = []
    for k in range(n_rounds):
        for pid, updates in plans.items():
            obs = [o for u in updates for o in u.observations][k]
            body = {"observations": [{"time": obs.time, "code": obs.code, "value": obs.value}]}
            if k == 0:
                body["static"] = updates[0].static
            out.append((k, pid, body))
    return out


async def _post_rounds(app, bodies):
    """Each round's requests at once (one per patient), as concurrent clients would."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    answers = []
    client = httpx.AsyncClient(transport=transport, base_url="http://t")
    async with app.router.lifespan_context(app), client:
        for k in sorted({k for k, _, _ in bodies}):
            calls = [
                client.post(f"/v1/patients/{pid}/observations", json=body, headers=AUTH)
                for r, pid, body in bodies if r == k
            ]  # fmt: skip
            answers += [(a.status_code, a.content) for a in await asyncio.gather(*calls)]
        metrics = (await client.get("/metrics", headers=AUTH)).text
    return answers, metrics


def test_concurrent_requests_share_commits_with_the_same_answers(trained_gru_bundle, plans,
                                                                  tmp_path):  # fmt: skip
    bodies = _bodies(plans, 6)
    answers = {}
    # (group commit, inline_body_bytes): 0 applies every update in a worker thread, which
    # stages it there; the request still waits on the event loop for the group's commit
    for group, inline in ((False, 4096), ("threads", 0), (True, 4096)):
        settings = ServeSettings(
            tokens=(TOKEN,), state_db=str(tmp_path / f"{group}.sqlite"),
            group_commit=bool(group), inline_body_bytes=inline,
        )  # fmt: skip
        app = create_app(trained_gru_bundle, settings)
        answers[group], metrics = asyncio.run(_post_rounds(app, bodies))
    assert all(status == 200 for status, _ in answers[True])
    assert answers[True] == answers[False] == answers["threads"]  # the same bytes
    for _, content in answers[True]:  # and the shape of the documented response model
        body = json.loads(content)
        assert schemas.StreamUpdate(**body).model_dump(mode="json") == body
    values = dict(
        line.split() for line in metrics.splitlines() if line.startswith("medseq_group_commit")
    )
    flushes, settled = float(values["medseq_group_commits"]), float(
        values["medseq_group_committed_updates"])  # fmt: skip
    assert settled == len(bodies) and flushes < settled  # updates did share commits


def test_group_commit_wakes_every_waiter_after_one_flush():
    flushed: list[int] = []

    class Ticket:
        def __init__(self) -> None:
            self.done, self.error = False, None

    tickets = [Ticket() for _ in range(5)]

    def flush() -> None:
        flushed.append(sum(not t.done for t in tickets))
        for t in tickets:
            t.done = True

    async def main() -> None:
        commits = GroupCommit(flush)
        await asyncio.gather(*(commits.settle(t) for t in tickets))
        assert commits.n_flushes == 1 and commits.n_settled == 5

    asyncio.run(main())
    assert flushed == [5]  # one commit for the five, after all five had staged


def test_commits_leave_the_wal_checkpoint_to_a_thread(gru_bundle, plans, tmp_path):
    path = tmp_path / "wal.sqlite"
    service = _service(gru_bundle, path)
    store = service.store
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    store._checkpointer.max_wal_bytes = 1  # checkpoint at the next poll
    for pid, history in list(round_robin(plans))[:8]:
        service.update(pid, history)
    deadline = time.monotonic() + 10
    while store._checkpointer.n_checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store._checkpointer.n_checkpoints >= 1
    store.close()
    assert not store._checkpointer._thread.is_alive()
    assert sum(_rows(path).values()) == sum(
        len(h.observations) for _, h in list(round_robin(plans))[:8]
    )
