"""One config base for every model kind: JSON unchanged, round trip, unknown and missing keys.

``model_config_dicts.json`` holds, per registered kind, example ``[model]`` tables and the
JSON that ``to_dict`` gave for them before the configs shared :class:`ModelConfigBase`
(captured with that code); bundles store this JSON, so it must not change by a byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from medseq.models import model_config_from_dict
from medseq.models.config_base import ModelConfigBase
from medseq.models.registry import MODEL_KINDS, model_config_class

PINNED = json.loads((Path(__file__).parent / "model_config_dicts.json").read_text())
EXAMPLES = [(kind, row["input"], row["json"]) for kind, rows in PINNED.items() for row in rows]


def test_every_registered_kind_has_pinned_examples():
    assert set(PINNED) == set(MODEL_KINDS)


@pytest.mark.parametrize(("kind", "given", "expected"), EXAMPLES)
def test_to_dict_is_byte_identical_to_before_and_round_trips(kind, given, expected):
    config = model_config_from_dict({**given, "kind": kind})
    assert json.dumps(config.to_dict()) == expected
    again = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and type(again) is type(config)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_config_uses_the_base_and_repeats_none_of_it(kind):
    cls = model_config_class(kind)
    assert issubclass(cls, ModelConfigBase) and kind in cls.KINDS
    assert "from_dict" not in vars(cls) and "__post_init__" not in vars(cls)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_unknown_and_missing_keys_are_named(kind):
    cls = model_config_class(kind)
    given = {**PINNED[kind][0]["input"], "kind": kind}
    with pytest.raises(ValueError, match=rf"{cls.__name__}: unknown keys \['hiden_size'\]"):
        cls.from_dict({**given, "hiden_size": 8})
    for name in cls.required_keys():
        partial = {k: v for k, v in given.items() if k != name}
        with pytest.raises(ValueError, match=rf"{cls.__name__}: missing required key '{name}'"):
            cls.from_dict(partial)


def test_required_keys_are_the_fields_without_a_default():
    required = {kind: model_config_class(kind).required_keys() for kind in MODEL_KINDS}
    assert required == {
        "rnn_classifier": ("input_size",),
        "grud": ("input_size",),
        "smiles_rnn": ("vocab_size",),
        "slice_rnn": ("slice_size",),
        "conv_rnn": (),
        "doctorai": ("vocab_size",),
        "retain": ("vocab_size",),
    }


@dataclass(frozen=True)
class _TwoRequired(ModelConfigBase):
    KINDS: ClassVar[tuple[str, ...]] = ("two",)

    width: int
    depth: int
    kind: str = "two"
    sizes: tuple[int, ...] = (1, 2)

    def _check_fields(self) -> None:
        object.__setattr__(self, "sizes", tuple(self.sizes))  # JSON gives a list back


def test_the_base_names_every_missing_key_checks_kind_and_lists_tuples():
    missing = r"_TwoRequired: missing required keys \['width', 'depth'\]"
    with pytest.raises(ValueError, match=missing):
        _TwoRequired.from_dict({"kind": "two"})
    with pytest.raises(ValueError, match=r"_TwoRequired.kind must be one of \('two',\)"):
        _TwoRequired(width=1, depth=2, kind="three")
    with pytest.raises(TypeError, match="expected a dict, got list"):
        _TwoRequired.from_dict([("width", 1)])  # type: ignore[arg-type]
    config = _TwoRequired(width=1, depth=2)
    assert config.to_dict() == {"width": 1, "depth": 2, "kind": "two", "sizes": [1, 2]}
    assert _TwoRequired.from_dict(config.to_dict()) == config
