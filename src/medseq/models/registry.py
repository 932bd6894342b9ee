"""``build_model(config)``: the one place a model config's ``kind`` becomes a module class.

Every model kind is listed in :data:`MODEL_KINDS` as a pair of import paths, its config
class and its module class. They are imported only when a config of that kind is built, so
the image, molecule or signal models (and whatever they import) cost nothing to a user of
the ICU models. A new model is one line here plus its two classes:

- the config is a frozen dataclass subclassing
  :class:`~medseq.models.config_base.ModelConfigBase` (which gives ``to_dict()``,
  ``from_dict(d)`` refusing unknown and missing keys, and the ``kind`` check), with
  ``KINDS``, a ``kind`` and an ``n_outputs`` field and its checks in ``_check_fields``;
- the module's ``__init__`` takes the config; ``forward`` takes by keyword the arrays it
  names (``values``, ``lengths``, ``tokens``, ...) and returns logits ``(B, n_outputs)``,
  or ``(B, T', n_outputs)`` for a per-step labelling model.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medseq._imports import load_object

#: kind -> ("module:ConfigClass", "module:ModuleClass")
MODEL_KINDS: dict[str, tuple[str, str]] = {
    "rnn_classifier": (
        "medseq.models.config:ModelConfig",
        "medseq.models.sequence_classifier:SequenceClassifier",
    ),
    "grud": ("medseq.models.config:ModelConfig", "medseq.models.grud:GRUD"),
    "smiles_rnn": (
        "medseq.models.smiles_rnn:SmilesRNNConfig",
        "medseq.models.smiles_rnn:SmilesRNN",
    ),
    "slice_rnn": ("medseq.models.slice_rnn:SliceRNNConfig", "medseq.models.slice_rnn:SliceRNN"),
    "conv_rnn": ("medseq.models.conv_rnn:SignalModelConfig", "medseq.models.conv_rnn:ConvRNN"),
    "doctorai": ("medseq.models.doctorai:DoctorAIConfig", "medseq.models.doctorai:DoctorAI"),
    "retain": ("medseq.models.retain:RetainConfig", "medseq.models.retain:Retain"),
}

DEFAULT_KIND = "rnn_classifier"


def _entry(kind: Any) -> tuple[str, str]:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind]


def model_config_class(kind: str) -> type[Any]:
    """The config dataclass of model ``kind``."""
    return load_object(_entry(kind)[0])


def model_config_from_dict(data: dict[str, Any]) -> Any:
    """A model config from its JSON/TOML dict, dispatched on ``data["kind"]``.

    ``kind`` defaults to ``"rnn_classifier"``, so ICU configs written before other kinds
    existed keep loading.
    """
    if not isinstance(data, dict):
        raise TypeError(f"a model config must be a dict, got {type(data).__name__}")
    kind = data.get("kind", DEFAULT_KIND)
    return model_config_class(kind).from_dict({**data, "kind": kind})


def build_model(config: Any) -> nn.Module:
    """Instantiate the model that ``config.kind`` names.

    Parameters
    ----------
    config : ModelConfig or another registered model config

    Returns
    -------
    nn.Module

    Examples
    --------
    >>> from medseq.models import ModelConfig
    >>> model = build_model(ModelConfig(input_size=4, hidden_size=8, cell="lstm"))
    >>> type(model).__name__
    'SequenceClassifier'
    """
    kind = getattr(config, "kind", None)
    if kind is None or not hasattr(config, "to_dict"):
        raise TypeError(f"build_model expects a model config, got {type(config).__name__}")
    config_path, module_path = _entry(kind)
    expected = load_object(config_path)
    if not isinstance(config, expected):
        raise TypeError(
            f"model kind {kind!r} is configured by {expected.__name__}, got {type(config).__name__}"
        )
    return load_object(module_path)(config)
