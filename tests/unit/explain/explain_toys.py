"""A small real bundle (fitted featurizer, untrained models) on synthetic stays.

Explanation methods must work for any model; these bundles hold real medseq models built
from configs (nothing mocked), only untrained and small so the unit tests stay fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from medseq.bundle import Bundle
from medseq.features import ICUFeaturizer
from medseq.models import ModelConfig, build_model

VARIABLES = ("HR", "Lactate", "MAP")
#: The toy stays are ICU stays: they borrow the ICU dataset's spec (subgroups, card notes).
TOY_ORIGIN = {"dataset": "physionet2012", "task": "mortality"}


def toy_tables(n_subjects: int = 12, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events over 8 hours (some stays shorter) and descriptors for ``n_subjects`` stays."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid in range(1, n_subjects + 1):
        horizon = 8.0 if sid % 3 else 4.5  # every third stay ends early: padding
        for code in VARIABLES:
            for t in np.sort(rng.uniform(0, horizon, size=5)):
                rows.append((sid, float(t), code, float(rng.normal(50, 10))))
    events = pd.DataFrame(rows, columns=["subject_id", "time", "code", "value"])
    index = pd.Index(range(1, n_subjects + 1), name="subject_id")
    static = pd.DataFrame(
        {"Age": rng.uniform(20, 90, n_subjects), "ICUType": rng.integers(1, 5, n_subjects)},
        index=index,
    ).astype(float)
    return events, static


def toy_bundle(pooling: str = "attention", kind: str = "rnn_classifier", n_members: int = 1):
    """A bundle and the features of its 12 stays (N=12, T=8, F=3)."""
    events, static = toy_tables()
    ids = static.index.to_numpy()
    featurizer = ICUFeaturizer(
        n_steps=8, static_columns=["Age", "ICUType"], static_summary=True, clip_quantiles=None
    )
    features = featurizer.fit_transform(events, static, ids)
    config = ModelConfig(
        kind=kind,
        cell="gru",
        input_size=featurizer.n_features,
        static_size=featurizer.n_static,
        hidden_size=8,
        pooling=pooling,
        input_delta=True,
    )
    members = []
    for seed in range(n_members):
        torch.manual_seed(seed)
        members.append(build_model(config).eval())
    bundle = Bundle(config, featurizer, members, threshold=0.5, provenance=dict(TOY_ORIGIN))
    return bundle, features
