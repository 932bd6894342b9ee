"""``build_model(config)``: the one place a ``ModelConfig.kind`` becomes a module class."""

from __future__ import annotations

from torch import nn

from medseq.models.config import KINDS, ModelConfig
from medseq.models.grud import GRUD
from medseq.models.sequence_classifier import SequenceClassifier

MODELS: dict[str, type[nn.Module]] = {"rnn_classifier": SequenceClassifier, "grud": GRUD}


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the model that ``config.kind`` names.

    Parameters
    ----------
    config : ModelConfig

    Returns
    -------
    nn.Module
        With ``forward(values, mask, delta, lengths, static=None) -> logits (B, n_outputs)``.

    Examples
    --------
    >>> model = build_model(ModelConfig(input_size=4, hidden_size=8, cell="lstm"))
    >>> type(model).__name__
    'SequenceClassifier'
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model expects a ModelConfig, got {type(config).__name__}")
    if config.kind not in MODELS:  # unreachable while MODELS covers KINDS
        raise ValueError(f"ModelConfig.kind must be one of {KINDS}, got {config.kind!r}")
    return MODELS[config.kind](config)
