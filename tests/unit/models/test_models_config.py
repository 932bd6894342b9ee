"""ModelConfig: defaults, JSON round-trip, and an error naming field, bound and value."""

from __future__ import annotations

import json

import pytest

from medseq.models import ModelConfig


def test_defaults_match_the_contract():
    config = ModelConfig(input_size=37)
    assert config.to_dict() == {
        "input_size": 37,
        "kind": "rnn_classifier",
        "cell": "gru",
        "hidden_size": 64,
        "num_layers": 1,
        "bidirectional": False,
        "dropout": 0.0,
        "pooling": "last",
        "static_size": 0,
        "static_hidden_size": 32,
        "attention_size": 32,
        "n_outputs": 1,
        "input_mask": True,
        "input_delta": False,
        "init": "orthogonal",
    }


def test_json_round_trip():
    config = ModelConfig(
        input_size=5, cell="lstm", bidirectional=True, num_layers=2, dropout=0.25, pooling="mean"
    )
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_is_frozen():
    config = ModelConfig(input_size=3)
    with pytest.raises(AttributeError):
        config.hidden_size = 8  # type: ignore[misc]


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown keys \['hiden_size'\]"):
        ModelConfig.from_dict({"input_size": 3, "hiden_size": 8})


def test_missing_input_size():
    with pytest.raises(ValueError, match="missing required key 'input_size'"):
        ModelConfig.from_dict({"hidden_size": 8})


def test_integer_dropout_is_stored_as_float():
    assert isinstance(ModelConfig(input_size=3, dropout=0).to_dict()["dropout"], float)


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("input_size", 0, ValueError, "input_size must be >= 1, got 0"),
        ("hidden_size", -2, ValueError, "hidden_size must be >= 1, got -2"),
        ("num_layers", 0, ValueError, "num_layers must be >= 1, got 0"),
        ("static_size", -1, ValueError, "static_size must be >= 0, got -1"),
        ("static_hidden_size", 0, ValueError, "static_hidden_size must be >= 1, got 0"),
        ("attention_size", 0, ValueError, "attention_size must be >= 1, got 0"),
        ("n_outputs", 0, ValueError, "n_outputs must be >= 1, got 0"),
        ("hidden_size", 8.0, TypeError, "hidden_size must be an int, got float 8.0"),
        ("hidden_size", True, TypeError, "hidden_size must be an int, got bool True"),
        ("kind", "retain", ValueError, "kind must be one of .*got 'retain'"),
        ("cell", "GRU", ValueError, "cell must be one of .*got 'GRU'"),
        ("pooling", "max", ValueError, "pooling must be one of .*got 'max'"),
        ("init", "xavier", ValueError, "init must be one of .*got 'xavier'"),
        ("cell", 3, TypeError, "cell must be a str, got int 3"),
        ("bidirectional", 1, TypeError, "bidirectional must be a bool, got int 1"),
        ("input_mask", "yes", TypeError, "input_mask must be a bool, got str 'yes'"),
        ("input_delta", None, TypeError, "input_delta must be a bool, got NoneType None"),
        ("dropout", 1.0, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ("dropout", -0.1, ValueError, r"dropout must be in \[0, 1\), got -0.1"),
        ("dropout", "0.1", TypeError, "dropout must be a float, got str '0.1'"),
    ],
)
def test_every_field_is_validated(field, value, error, message):
    fields = {"input_size": 3, field: value}
    with pytest.raises(error, match=rf"ModelConfig\.{message}"):
        ModelConfig(**fields)


@pytest.mark.parametrize(
    ("field", "value"), [("cell", "lstm"), ("num_layers", 2), ("bidirectional", True)]
)
def test_grud_rejects_what_it_cannot_be(field, value):
    with pytest.raises(ValueError, match=rf"ModelConfig\.{field} must be .* when kind='grud'"):
        ModelConfig(input_size=3, kind="grud", **{field: value})


def test_recurrent_input_size():
    assert ModelConfig(input_size=4).recurrent_input_size == 8
    assert ModelConfig(input_size=4, input_mask=False).recurrent_input_size == 4
    assert ModelConfig(input_size=4, input_delta=True).recurrent_input_size == 12
