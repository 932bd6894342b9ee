"""``ModelConfigBase``: what every model config shares, JSON round-trip, unknown and missing keys.

A model config is a frozen dataclass of hyperparameters that a bundle stores as JSON
(``medseq.json``, ``model_config``) and a TOML ``[model]`` table fills. Every kind needs
the same three things, written once here:

* :meth:`~ModelConfigBase.to_dict`: every field, in field order, tuples as lists, so the
  JSON of a config (and of every bundle saved before this base existed) stays the same;
* :meth:`~ModelConfigBase.from_dict`: the inverse, which refuses a key the config does not
  define (a typo never falls back to a default) and names every required key missing;
* the ``kind`` check: ``kind`` names the model in
  :data:`medseq.models.registry.MODEL_KINDS`, and a config only accepts the kinds of
  :attr:`~ModelConfigBase.KINDS`.

A config subclasses the base, declares ``KINDS`` and its fields (``kind`` among them, with
a default) and puts its field checks in ``_check_fields`` (see
:mod:`medseq.models.config_checks`), which the base's ``__post_init__`` calls after the
kind check.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from typing import Any, ClassVar, TypeVar

from medseq.models.config_checks import check_choice
from medseq.schema import check_known_keys

C = TypeVar("C", bound="ModelConfigBase")


class ModelConfigBase:
    """Mixin of the frozen model-config dataclasses: kind check, ``to_dict``, ``from_dict``.

    Examples
    --------
    >>> from medseq.models.doctorai import DoctorAIConfig
    >>> config = DoctorAIConfig(vocab_size=12, hidden_size=8)
    >>> DoctorAIConfig.from_dict(config.to_dict()) == config
    True
    >>> DoctorAIConfig.required_keys()
    ('vocab_size',)
    """

    #: The model kinds this config class configures (``kind`` must be one of them).
    KINDS: ClassVar[tuple[str, ...]] = ()
    # Declared for type checkers; each subclass defines ``kind`` as a dataclass field.
    kind: str
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def __post_init__(self) -> None:
        check_choice(type(self).__name__, "kind", self.kind, self.KINDS)
        self._check_fields()

    def _check_fields(self) -> None:
        """Check (and normalise, through ``object.__setattr__``) the other fields."""

    @classmethod
    def required_keys(cls) -> tuple[str, ...]:
        """Fields without a default, in field order: ``from_dict`` needs each of them."""
        return tuple(
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field, in field order (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        TypeError
            If ``data`` is not a dict.
        ValueError
            Naming the unknown keys (and the allowed ones), or the missing required keys.
        """
        check_known_keys(cls.__name__, data, [f.name for f in fields(cls)])
        missing = [name for name in cls.required_keys() if name not in data]
        if len(missing) == 1:
            raise ValueError(
                f"{cls.__name__}: missing required key {missing[0]!r}; got keys {sorted(data)}"
            )
        if missing:
            raise ValueError(
                f"{cls.__name__}: missing required keys {missing}; got keys {sorted(data)}"
            )
        return cls(**data)
