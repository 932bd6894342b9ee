"""``POST /v1/predict``'s answer for a per-step model: every named step, then the last."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseq.serving.predict import answer
from medseq.serving.requests import Parsed


def _bundle(threshold=None):
    return SimpleNamespace(task="multiclass", threshold=threshold, class_names=["no", "yes"])


def test_each_named_step_is_answered_and_the_item_is_its_last_step():
    scores = np.array([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], [[0.7, 0.3], [0.0, 0.0], [0, 0]]])
    parsed = Parsed(None, np.arange(2), ["a", "b"], steps=[[5, 6, 7], [1]])
    out = answer(_bundle(threshold=0.35), "sepsis_6h", scores, parsed)
    first, second = out["predictions"]
    assert [s["step"] for s in first["steps"]] == [5, 6, 7] and len(second["steps"]) == 1
    assert [s["predicted"] for s in first["steps"]] == [["no"], ["yes"], ["yes"]]  # >= 0.35
    assert first["probabilities"] == [0.2, 0.8] and second["probabilities"] == [0.7, 0.3]
    assert out["threshold"] == 0.35 and out["class_names"] == ["no", "yes"]
    plain = answer(_bundle(), "t", scores, parsed)["predictions"][0]["steps"][1]
    assert plain["predicted"] == ["no"]  # argmax without a stored threshold


def test_a_per_step_model_needs_named_steps_and_enough_outputs():
    scores = np.zeros((1, 2, 2))
    with pytest.raises(ValueError, match="name its steps"):
        answer(_bundle(), "t", scores, Parsed(None, np.arange(1), ["a"]))
    with pytest.raises(ValueError, match="3 steps to answer from 2"):
        answer(_bundle(), "t", scores, Parsed(None, np.arange(1), ["a"], steps=[[1, 2, 3]]))
