"""The small but real PhysioNet 2012 runs behind the trained-bundle fixtures of
``tests/conftest.py``, importable by any test that trains one more of the same kind.

A module of its own (not ``conftest``): ``tests/unit/serving`` and ``tests/unit/monitoring``
have a ``conftest.py`` too, and with pytest's default import mode ``from conftest import``
reaches whichever of them was imported under that name first.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

# A small but real model: trained on 1000 stays of set A, tested on 1000 of set B.
SMALL_RUN: dict[str, Any] = {
    "name": "small",
    "seeds": [0],
    "data": {"max_subjects": 1000, "val_fraction": 0.25},
    "features": {"static_summary": True, "delta_scale": "horizon"},
    "model": {"cell": "gru", "hidden_size": 16, "pooling": "mean", "input_delta": True},
    "train": {"epochs": 6, "lr": 3e-3, "monitor": "auroc", "progress": False},
    "evaluate": {"n_boot": 50},
}

# The same small run on the regression task: hospital length of stay (days), MAE-selected.
SMALL_LOS: dict[str, Any] = {
    "data": {**SMALL_RUN["data"], "task": "length_of_stay"},
    "train": {**SMALL_RUN["train"], "task": "regression", "monitor": "mae", "epochs": 4},
}


def train_small(out: Path, model: dict, overrides: dict | None = None) -> Path:
    """Train ``SMALL_RUN`` with ``model`` (and top-level ``overrides``) into ``out``; the
    bundle's directory."""
    from medseq.experiment import parse_config, run_experiment

    raw = {**SMALL_RUN, "model": model, **(overrides or {})}
    config = replace(parse_config(raw), output_dir=str(out))
    bundle_dir = run_experiment(config, progress=False).bundle_dir
    if bundle_dir is None:
        raise RuntimeError(f"{out}: the small run saved no bundle")
    return Path(bundle_dir)
