"""``ModelConfig``: every hyperparameter of a medseq model, frozen and JSON round-trippable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_bool, check_choice, check_dropout, check_int

KINDS: tuple[str, ...] = ("rnn_classifier", "grud")
CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")
POOLINGS: tuple[str, ...] = ("last", "mean", "attention")
INITS: tuple[str, ...] = ("orthogonal", "default")

# (field, lower bound) for the integer fields; every bound is inclusive.
_INT_BOUNDS: tuple[tuple[str, int], ...] = (
    ("input_size", 1),
    ("hidden_size", 1),
    ("num_layers", 1),
    ("static_size", 0),
    ("static_hidden_size", 1),
    ("attention_size", 1),
    ("n_outputs", 1),
)
_CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cell", CELLS),
    ("pooling", POOLINGS),
    ("init", INITS),
)
_BOOLS: tuple[str, ...] = ("bidirectional", "input_mask", "input_delta")


@dataclass(frozen=True)
class ModelConfig(ModelConfigBase):
    """Hyperparameters of a sequence model; ``build_model(config)`` turns it into a module.

    Parameters
    ----------
    input_size : int
        ``F``, the number of time-varying features (last dim of ``values``, ``mask``, ``delta``).
    kind : {"rnn_classifier", "grud"}, default="rnn_classifier"
        :class:`~medseq.models.SequenceClassifier` or :class:`~medseq.models.GRUD`.
    cell : {"rnn", "lstm", "gru"}, default="gru"
        Recurrent cell of ``rnn_classifier``; ``grud`` requires ``"gru"``.
    hidden_size : int, default=64
        ``H``, the hidden state size (per direction).
    num_layers : int, default=1
        Stacked recurrent layers; ``grud`` requires 1.
    bidirectional : bool, default=False
        Run a second, time-reversed recurrence (within each sequence's length); ``grud``
        requires ``False``.
    dropout : float, default=0.0
        Dropout probability in ``[0, 1)`` between recurrent layers and before the output head.
    pooling : {"last", "mean", "attention"}, default="last"
        How the per-step outputs ``(B, T, D)`` become one vector ``(B, D)``.
    static_size : int, default=0
        ``S``, the size of the ``static`` vector; 0 means the model takes no static input.
    static_hidden_size : int, default=32
        Width of the one-layer MLP that encodes ``static`` before fusion with the pooled vector.
    attention_size : int, default=32
        Width of the additive attention scorer (used when ``pooling="attention"``).
    n_outputs : int, default=1
        Number of logits per sequence.
    input_mask : bool, default=True
        Concatenate the observation mask to the recurrent input (GRU-D: feed ``m`` to the gates).
    input_delta : bool, default=False
        Concatenate ``delta`` (hours since last observation) to the recurrent input.
    init : {"orthogonal", "default"}, default="orthogonal"
        ``"orthogonal"``: :func:`medseq.models.init.init_recurrent_`; ``"default"``: torch's.
    """

    KINDS: ClassVar[tuple[str, ...]] = KINDS

    input_size: int
    kind: str = "rnn_classifier"
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    pooling: str = "last"
    static_size: int = 0
    static_hidden_size: int = 32
    attention_size: int = 32
    n_outputs: int = 1
    input_mask: bool = True
    input_delta: bool = False
    init: str = "orthogonal"

    def _check_fields(self) -> None:
        for name, low in _INT_BOUNDS:
            check_int("ModelConfig", name, getattr(self, name), low)
        for name, choices in _CHOICES:
            check_choice("ModelConfig", name, getattr(self, name), choices)
        for name in _BOOLS:
            check_bool("ModelConfig", name, getattr(self, name))
        object.__setattr__(self, "dropout", check_dropout("ModelConfig", self.dropout))
        if self.kind == "grud":
            self._check_grud()

    def _check_grud(self) -> None:
        required = {"cell": "gru", "num_layers": 1, "bidirectional": False}
        for name, expected in required.items():
            got = getattr(self, name)
            if got != expected:
                raise ValueError(
                    f"ModelConfig.{name} must be {expected!r} when kind='grud' "
                    f"(GRU-D is a single forward GRU layer), got {got!r}"
                )

    @property
    def recurrent_input_size(self) -> int:
        """Per-step recurrent input size: ``F * (1 + input_mask + input_delta)``."""
        return self.input_size * (1 + int(self.input_mask) + int(self.input_delta))
