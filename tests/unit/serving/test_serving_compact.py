"""Packed cached states (one compressed ``bytes`` each) give bit-identical outputs, on real
PhysioNet 2012 stays replayed hour by hour."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from serving_helpers import hourly_updates, observations, stays

from medseq.serving.compact import pack_state, unpack_state
from medseq.serving.engine import AlertPolicy, PatientState, StreamingEngine
from medseq.serving.service import _LRU, OpenStay, StreamService
from medseq.serving.store import StateStore


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_same_bits(a: PatientState, b: PatientState) -> None:
    """Every persisted part of two states equal to the bit (NaN payloads, -0.0, inf)."""
    fa, fb = a.features, b.features
    assert fa.open_bin == fb.open_bin
    assert list(fa.static_raw) == list(fb.static_raw)
    assert [_bits(v) for v in fa.static_raw.values()] == [_bits(v) for v in fb.static_raw.values()]
    for x, y in ((fa.block, fb.block), (a.hidden, b.hidden), (a.pool, b.pool)):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    if a._static_vec is None:
        assert b._static_vec is None
    else:
        assert b._static_vec is not None and a._static_vec.tobytes() == b._static_vec.tobytes()
    assert (a.alert, a.n_observations, a.alert_run) == (b.alert, b.n_observations, b.alert_run)
    assert _bits(a.last_time) == _bits(b.last_time) and _bits(a.risk) == _bits(b.risk)


@pytest.mark.parametrize("kind", ["gru", "grud"])
def test_pack_round_trips_real_states_bit_for_bit(kind, gru_bundle, grud_bundle, setb):
    engine = StreamingEngine(gru_bundle if kind == "gru" else grud_bundle)
    _, events, static = next(stays(setb, 1100, 1))
    obs = observations(events)
    fresh = engine.new_state({})  # NaN descriptors, last_time -inf, nothing observed
    back, admitted = unpack_state(pack_state(fresh, None))
    assert_same_bits(fresh, back)
    assert admitted is None
    state, done = engine.new_state(static), 0
    for cut in (len(obs) // 4, len(obs) // 2, len(obs)):
        engine.update(state, obs[done:cut])
        done = cut
        blob = pack_state(state, "2024-03-01T00:00:00+00:00")
        back, admitted = unpack_state(blob)
        assert admitted == "2024-03-01T00:00:00+00:00"
        assert_same_bits(state, back)
        assert not np.shares_memory(back.features.block, state.features.block)
        live = sum(a.nbytes for a in (state.features.block, state.hidden, state.pool))
        assert len(blob) < live  # the arrays' raw bytes alone are larger
    # the rehydrated state continues exactly as the live one
    rest = obs[len(obs) // 2 :]
    half = engine.new_state(static)
    engine.update(half, obs[: len(obs) // 2])
    again, _ = unpack_state(pack_state(half, None))
    assert engine.update(again, rest).risk == engine.update(half, rest).risk
    assert_same_bits(again, half)


@pytest.mark.parametrize("kind", ["gru", "grud"])
def test_packed_cache_equals_an_unbounded_live_one(kind, gru_bundle, grud_bundle, setb, tmp_path):
    bundle = gru_bundle if kind == "gru" else grud_bundle
    plans = hourly_updates(setb, 1120, 6)

    def service(name: str, warm: int) -> StreamService:
        store = StateStore(tmp_path / f"{name}.sqlite")
        return StreamService(bundle, "v1", store, AlertPolicy(0.3), 10_000, warm)

    packed, live = service("packed", warm=2), service("live", warm=10_000)
    longest = max(len(u) for u in plans.values())
    n = 0
    for k in range(longest):  # round robin: every update but two rehydrates a packed state
        for pid, updates in plans.items():
            if k < len(updates):
                a, b = packed.update(pid, updates[k]), live.update(pid, updates[k])
                assert _bits(a.risk) == _bits(b.risk), (pid, k)
                assert (a.alert, a.n_observations, a.hours_covered) == (
                    b.alert, b.n_observations, b.hours_covered,
                )  # fmt: skip
                n += 1
    assert n > 100
    assert packed._cache.n_packed == len(plans) - 2 and live._cache.n_packed == 0
    assert packed._cache.evictions == 0  # every state came back from a blob, not SQLite
    for pid in plans:
        assert_same_bits(packed.get(pid).state, live.get(pid).state)


def test_a_malformed_blob_is_refused_with_a_message(gru_bundle):
    state = StreamingEngine(gru_bundle).new_state({})
    blob = pack_state(state, None)
    raw = zlib.decompress(blob)
    with pytest.raises(ValueError, match="truncated or malformed"):
        unpack_state(zlib.compress(raw + b"\0"))
    with pytest.raises(ValueError, match="unknown format"):
        unpack_state(zlib.compress(b"XXXX" + raw[4:]))


def test_a_busy_stay_is_never_packed(gru_bundle):
    engine = StreamingEngine(gru_bundle)
    busy = {"a"}
    cache = _LRU(size=10, warm=1, busy=lambda key: key in busy)
    for key in ("a", "b"):
        cache.put(key, OpenStay(engine.new_state({}), None))
    assert set(cache._live) == {"a", "b"}  # "a" is over the warm count but in flight
    busy.clear()
    cache.put("c", OpenStay(engine.new_state({}), None))  # "a" and "b" are the oldest
    assert list(cache._live) == ["c"] and set(cache._packed) == {"a", "b"}
    assert len(cache) == 3 and cache.packed_bytes() > 0
    assert cache.get("a") is not None and set(cache._packed) == {"b", "c"}
