"""``ModelConfig``: every hyperparameter of a medseq model, frozen and JSON round-trippable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from medseq.schema import check_known_keys

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
    ("kind", KINDS),
    ("cell", CELLS),
    ("pooling", POOLINGS),
    ("init", INITS),
)
_BOOLS: tuple[str, ...] = ("bidirectional", "input_mask", "input_delta")


@dataclass(frozen=True)
class ModelConfig:
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

    def __post_init__(self) -> None:
        for name, low in _INT_BOUNDS:
            check_int(name, getattr(self, name), low)
        for name, choices in _CHOICES:
            check_choice(name, getattr(self, name), choices)
        for name in _BOOLS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(
                    f"ModelConfig.{name} must be a bool, got {type(value).__name__} {value!r}"
                )
        check_dropout(self.dropout)
        object.__setattr__(self, "dropout", float(self.dropout))
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError`` naming them."""
        check_known_keys("ModelConfig", data, {f.name for f in fields(cls)})
        if "input_size" not in data:
            raise ValueError("ModelConfig: missing required key 'input_size'")
        return cls(**data)


def check_int(name: str, value: Any, low: int, owner: str = "ModelConfig") -> None:
    """An int (not a bool) ``>= low``; shared by every model config's checks."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{owner}.{name} must be >= {low}, got {value!r}")


def check_choice(
    name: str, value: Any, choices: tuple[str, ...], owner: str = "ModelConfig"
) -> None:
    """A str among ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name} must be a str, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {choices}, got {value!r}")


def check_dropout(value: Any, owner: str = "ModelConfig", name: str = "dropout") -> None:
    """A probability in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}.{name} must be a float, got {type(value).__name__} {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.{name} must be in [0, 1), got {value!r}")
