"""The per-patient step terms the engine caches while a bin is open change no number."""

from __future__ import annotations

import copy

import pytest
from serving_helpers import bundle_like, observations, stays

from medseq.serving.engine import StreamingEngine


def _risks(engine: StreamingEngine, data, start: int, n: int, drop_cache: bool) -> list[float]:
    out = []
    for _, events, static in stays(data, start, n):
        state = engine.new_state(static)
        for obs in observations(events):
            if drop_cache:  # every update recomputes W_hh h (and GRU-D's decays) from scratch
                state._terms = None
            out.append(engine.update(state, [obs]).risk)
    return out


@pytest.mark.parametrize(
    "config",
    [
        {"cell": "lstm", "pooling": "mean", "num_layers": 2, "hidden_size": 8},
        {"kind": "grud", "pooling": "attention", "input_delta": True, "hidden_size": 8},
    ],
)
def test_cached_terms_give_the_same_risks_to_the_bit(gru_bundle, setb, config):
    bundle = bundle_like(gru_bundle, n_members=2, **config)
    engine = StreamingEngine(bundle)
    cached = _risks(engine, setb, 70, 2, drop_cache=False)
    assert len(cached) > 100
    assert cached == _risks(engine, setb, 70, 2, drop_cache=True)


def test_trained_gru_cached_terms_equal_recomputed(gru_bundle, setb):
    engine = StreamingEngine(gru_bundle)
    assert _risks(engine, setb, 80, 2, False) == _risks(engine, setb, 80, 2, True)


def test_another_engine_never_reads_a_state_cache_it_did_not_write(gru_bundle, setb):
    # a service that reloads its bundle keeps the patients' states: the new engine's
    # answer must come from its own weights, not from terms the old one cached
    old = StreamingEngine(bundle_like(gru_bundle, seed=1, cell="gru", hidden_size=8))
    new = StreamingEngine(bundle_like(gru_bundle, seed=2, cell="gru", hidden_size=8))
    _, events, static = next(stays(setb, 90, 1))
    obs = observations(events)
    state = old.new_state(static)
    old.update(state, obs[:20])
    assert state._terms is not None
    fresh = copy.deepcopy(state)
    fresh._terms = None
    assert new.predict(state) == new.predict(fresh)
    assert new.predict(state) != old.predict(state)
