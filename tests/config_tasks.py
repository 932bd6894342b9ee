"""Small ``medseq train`` configs of config tasks, shared by the tests that write one
(unit/tasks, unit/datasets/test_flat_tables.py, integration/test_config_task_serving.py).

Each test keeps what it is about (its model, features, protocol) and takes the rest from
here as dicts, written to TOML with ``tomli_w`` rather than each holding a copy of the
same TOML text.
"""

from __future__ import annotations

from pathlib import Path

import tomli_w

# Acute care (an emergency or inpatient encounter) within 3 years of 2016-01-01, from the
# 3 years before: the task of the Synthea config-task tests.
ACUTE_3Y = {
    "prediction_time": {"date": "2016-01-01T00:00:00Z"},
    "label": {"codes": ["ENCOUNTER/EMER", "ENCOUNTER/IMP"], "within_hours": 26298},
    "observation": {"window_hours": 26298},
}

# Two epochs on one thread: a real run that stays a few seconds long.
TRAIN_SMALL = {"epochs": 2, "batch_size": 16, "num_threads": 1, "progress": False}


def small_config(
    name: str,
    dataset: str,
    train: Path | str,
    task_name: str,
    task: dict,
    *,
    features: dict,
    model: dict,
    protocol: str = "subject",
    train_options: dict = TRAIN_SMALL,
    baseline: dict | None = None,
) -> dict:
    """A one-seed run of ``model`` on dataset ``dataset`` read from ``train``, for the config
    task ``task`` registered as ``task_name``: 2 folds by ``protocol``, the test part taken
    from ``train`` (no separate test set), 50 bootstrap draws; ``baseline`` adds one."""
    config = {
        "name": name,
        "seeds": [0],
        "data": {
            "dataset": dataset,
            "train": str(train),
            "test": "",
            "task": task_name,
            "protocol": protocol,
            "cv_folds": 2,
        },
        "task": task,
        "features": features,
        "model": model,
        "train": train_options,
        "evaluate": {"n_boot": 50},
    }
    if baseline is not None:
        config["baseline"] = baseline
    return config


def write_config(path: Path, config: dict) -> Path:
    """``config`` written to ``path`` as TOML; ``path``."""
    path.write_text(tomli_w.dumps(config))
    return path
