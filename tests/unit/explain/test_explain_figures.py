"""Explanation figures: valid PNGs of a readable size; one stay explained end to end."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from explain_toys import toy_bundle, toy_tables

from medseq.explain import explain_stay, global_importance, integrated_gradients
from medseq.explain.figures import (
    attention_plot,
    attribution_heatmap,
    importance_plot,
    signal_attribution_plot,
)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", png[16:24])


def test_heatmap_attention_and_importance_are_readable_pngs():
    rng = np.random.default_rng(0)
    names = [f"v{i}" for i in range(30)]
    heat = attribution_heatmap(
        rng.normal(size=(48, 30)), names, length=40, top_n=12, mask=rng.random((48, 30)) > 0.7
    )
    width, height = png_size(heat)
    assert 700 <= width <= 1400 and 300 <= height <= 1000
    weights = rng.dirichlet(np.ones(40))
    assert png_size(attention_plot(weights, length=40, reference=weights))[0] >= 700
    bundle, features = toy_bundle("mean")
    table = global_importance(integrated_gradients(bundle, features, n_steps=8))
    assert png_size(importance_plot(table))[0] >= 500


def test_signal_plot_for_waveforms():
    fs = 250.0
    t = np.arange(int(4 * fs)) / fs
    signal = np.sin(2 * np.pi * 1.2 * t)
    attribution = np.zeros_like(signal)
    attribution[500:560] = 1.0
    assert png_size(signal_attribution_plot(signal, attribution, fs=fs))[0] >= 700
    with pytest.raises(ValueError, match="fs"):
        signal_attribution_plot(signal, attribution, fs=0)


def test_explain_stay_on_an_attention_model():
    bundle, features = toy_bundle("attention")
    events, static = toy_tables()
    one = {k: v[:1] for k, v in features.items()}
    expl = explain_stay(bundle, one, 1, events=events, static=static, n_steps=32)
    assert set(expl.figures) == {"integrated_gradients", "occlusion", "attention"}
    summary = expl.to_dict()
    assert summary["risk"] == pytest.approx(float(bundle.predict_arrays(one)[0]))
    assert abs(summary["convergence_delta"]) < 1e-2
    assert len(summary["attention"]) == features["values"].shape[1]
    top = expl.top_variables.set_index("variable")
    assert top.loc["Age", "last_value"] == pytest.approx(static.loc[1, "Age"])
    assert "convergence delta" in expl.summary()
    with pytest.raises(ValueError, match="one stay"):
        explain_stay(bundle, features, 1)
