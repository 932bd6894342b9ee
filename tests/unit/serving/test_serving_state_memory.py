"""A cached streaming state holds only its own data, and the compact forms change no number."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import observations, round_robin, run_concurrently, stays

from medseq.features.icu.incremental import FeatureState
from medseq.serving.engine import AlertPolicy, StreamingEngine
from medseq.serving.inputs import History
from medseq.serving.service import StreamService
from medseq.serving.store import StateStore, decode_state, encode_state, load_arrays


def _single_updates(setb, start: int, n: int) -> dict[str, list[History]]:
    """Per patient, one History per observation of a real stay (static with the first), so
    that many updates fall in the same open bin, where the step terms are reused."""
    plans = {}
    for sid, events, static in stays(setb, start, n):
        updates = [History(f"p{sid}", [o], [0]) for o in observations(events)]
        updates[0].static.update(static)
        plans[f"p{sid}"] = updates
    return plans


def _service(bundle, path, warm: int) -> StreamService:
    return StreamService(bundle, "v1", StateStore(path), AlertPolicy(0.3), warm_patients=warm)


def test_cooled_states_drop_their_terms_and_give_the_same_risks(gru_bundle, setb, tmp_path):
    plans = _single_updates(setb, 940, 4)
    warm = _service(gru_bundle, tmp_path / "warm.sqlite", warm=1_000)
    cool = _service(gru_bundle, tmp_path / "cool.sqlite", warm=1)
    n = 0
    for pid, history in round_robin(plans):
        a, b = warm.update(pid, history), cool.update(pid, history)
        assert a.risk == b.risk and a.alert == b.alert, pid
        n += 1
    assert n > 200
    # only the most recently updated patient is live (with its terms); the others packed
    assert list(cool._cache._live) == [pid] and cool._cache._live[pid].state._terms is not None
    assert cool._cache.n_packed == len(plans) - 1
    assert warm._cache.n_packed == 0
    assert all(warm._cache.get(p).state._terms is not None for p in plans)


def test_cooling_from_another_thread_changes_no_risk(gru_bundle, setb, tmp_path):
    # warm=1: every other patient's update drops this patient's terms, concurrently
    plans = _single_updates(setb, 960, 4)
    expected = _service(gru_bundle, tmp_path / "seq.sqlite", warm=1_000)
    want = {pid: [expected.update(pid, h).risk for h in plans[pid]] for pid in plans}
    service = _service(gru_bundle, tmp_path / "par.sqlite", warm=1)
    got: dict[str, list[float]] = {pid: [] for pid in plans}

    def stream(pid: str) -> None:
        got[pid] = [service.update(pid, h).risk for h in plans[pid]]

    errors = run_concurrently(stream, plans)
    assert not errors
    assert got == want


def test_feature_state_is_one_block_and_stores_as_before(gru_bundle, setb):
    engine = StreamingEngine(gru_bundle)
    _, events, static = next(stays(setb, 980, 1))
    state = engine.new_state(static)
    engine.update(state, observations(events)[:60])
    fs = state.features
    assert not hasattr(fs, "__dict__") and not hasattr(state, "__dict__")
    assert fs.block.shape == (len(FeatureState.ARRAYS), engine.features.n_features)
    for i, name in enumerate(FeatureState.ARRAYS):  # views of the block, not copies
        assert np.shares_memory(getattr(fs, name), fs.block)
        np.testing.assert_array_equal(getattr(fs, name), fs.block[i])
    assert (fs.last_bin >= 0).any()  # some variable was seen in a closed bin
    scalars, blob = encode_state(state)
    back = decode_state(scalars, blob)
    np.testing.assert_array_equal(back.features.block, fs.block)
    assert load_arrays(blob)["last_bin"].dtype == np.int64  # the stored form is unchanged
    rest = observations(events)[60:]
    assert engine.update(back, rest).risk == engine.update(state, rest).risk


def test_feature_state_refuses_missing_arrays():
    with pytest.raises(TypeError, match="missing"):
        FeatureState(open_bin=0, static_raw={}, last_z=np.zeros(3))
