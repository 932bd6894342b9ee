"""Streaming engine == Bundle.predict over the same history, on real PhysioNet 2012 stays."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from serving_helpers import batch_risk, bundle_like, observations, stays

from medseq.bundle import Bundle
from medseq.features import ICUFeaturizer
from medseq.serving.engine import AlertPolicy, Observation, ObservationError, StreamingEngine
from medseq.serving.recurrent import StreamingUnsupported

TOL = 1e-5


def _max_error(bundle: Bundle, data, start: int, n: int, chunk: int) -> float:
    """Stream each stay in chunks; after every chunk compare with batch on the prefix."""
    engine = StreamingEngine(bundle)
    worst = 0.0
    for sid, events, static in stays(data, start, n):
        state = engine.new_state(static)
        obs = observations(events)
        worst = max(worst, abs(state.risk - batch_risk(bundle, events.iloc[:0], data, sid)))
        for k in range(0, len(obs), chunk):
            result = engine.update(state, obs[k : k + chunk])
            expected = batch_risk(bundle, events.iloc[: k + chunk], data, sid)
            worst = max(worst, abs(result.risk - expected))
    return worst


def test_trained_gru_streams_like_batch(gru_bundle, setb):
    assert _max_error(gru_bundle, setb, 0, 12, 30) <= TOL


def test_trained_grud_streams_like_batch(grud_bundle, setb):
    assert _max_error(grud_bundle, setb, 12, 12, 30) <= TOL


def test_one_observation_at_a_time_equals_batch_at_the_end(gru_bundle, setb):
    engine = StreamingEngine(gru_bundle)
    for sid, events, static in stays(setb, 40, 3):
        state = engine.new_state(static)
        for obs in observations(events):
            engine.update(state, [obs])
        assert abs(state.risk - batch_risk(gru_bundle, events, setb, sid)) <= TOL


@pytest.mark.parametrize(
    "config",
    [
        {"cell": "gru", "pooling": "last", "hidden_size": 8},
        {"cell": "gru", "pooling": "attention", "input_delta": True, "hidden_size": 8},
        {"cell": "lstm", "pooling": "mean", "num_layers": 2, "hidden_size": 8},
        {"cell": "rnn", "pooling": "attention", "input_mask": False, "hidden_size": 8},
        {"kind": "grud", "pooling": "mean", "input_delta": True, "hidden_size": 8},
        {"kind": "grud", "pooling": "attention", "hidden_size": 8},
    ],
)
def test_every_pooling_and_cell_streams_like_batch(gru_bundle, setb, config):
    bundle = bundle_like(gru_bundle, n_members=2, **config)
    assert _max_error(bundle, setb, 60, 4, 45) <= TOL


def test_other_featurizer_policies_stream_like_batch(gru_bundle, setb):
    """aggregate=mean, impute=mean, log variables, log1p δ, no summary fusion."""
    ids = setb.static.index.to_numpy()[200:700]
    featurizer = ICUFeaturizer(
        aggregate="mean", impute="mean", log_variables="auto", delta_scale="log1p"
    ).fit(setb.events, setb.static, ids)
    base = Bundle(
        gru_bundle.model_config, featurizer, gru_bundle.members,
        provenance=dict(gru_bundle.provenance),
    )  # fmt: skip
    bundle = bundle_like(base, kind="grud", hidden_size=8, input_delta=True)
    assert _max_error(bundle, setb, 80, 4, 25) <= TOL


def test_bidirectional_is_refused_with_a_reason(gru_bundle):
    bundle = bundle_like(gru_bundle, bidirectional=True, hidden_size=4)
    with pytest.raises(StreamingUnsupported, match="bidirectional"):
        StreamingEngine(bundle)


def test_out_of_order_is_refused_and_changes_nothing(gru_bundle):
    engine = StreamingEngine(gru_bundle)
    state = engine.new_state({"Age": 70.0})
    engine.update(state, [Observation("HR", 5.5, 90.0)])
    before = copy.deepcopy(state)
    with pytest.raises(ObservationError, match="out of order") as info:
        engine.update(state, [Observation("HR", 6.0, 91.0), Observation("HR", 4.9, 80.0)])
    assert (info.value.index, info.value.field) == (1, "time")
    assert state.risk == before.risk and state.n_observations == before.n_observations
    np.testing.assert_array_equal(state.hidden, before.hidden)
    engine.update(state, [Observation("HR", 5.1, 95.0)])  # same bin, earlier time: fine


def test_out_of_window_and_unknown_codes_are_reported(gru_bundle):
    engine = StreamingEngine(gru_bundle)
    state = engine.new_state()
    result = engine.update(
        state,
        [Observation("HR", -1.0, 80.0), Observation("XYZ", 1.0, 1.0), Observation("HR", 49, 80)],
    )
    reasons = [s["reason"] for s in result.skipped]
    assert reasons == ["before_window", "unknown_code", "after_window"]
    assert result.n_applied == 0


def test_alert_hysteresis():
    policy = AlertPolicy(on=0.5, hysteresis=0.1)
    trace, alert = [], False
    for risk in (0.4, 0.55, 0.45, 0.39, 0.5):
        alert = policy.next(alert, risk)
        trace.append(alert)
    assert trace == [False, True, True, False, True]
    with pytest.raises(ValueError, match="threshold"):
        AlertPolicy(on=1.5)


def test_engine_takes_its_incremental_featurizer_from_the_dataset_spec(gru_bundle):
    """The engine names no featurizer: the spec's streaming part builds it, and a dataset
    without one is refused with a sentence naming the dataset and the missing part."""
    from medseq.datasets import StageUnsupported
    from medseq.features.icu.incremental import StreamFeaturizer

    assert isinstance(StreamingEngine(gru_bundle).features, StreamFeaturizer)
    other = Bundle(
        gru_bundle.model_config, gru_bundle.featurizer, gru_bundle.members,
        provenance={"dataset": "tox21", "task": "NR-AR"},
    )  # fmt: skip
    with pytest.raises(StageUnsupported, match=r"dataset 'tox21'.*'streaming'"):
        StreamingEngine(other)
