"""Benchmark: a federated run of any dataset vs pooled training vs each site alone.

For a federated config (``configs/federated-*.toml``) whose run has already been made
(``medseq federate simulate CONFIG`` writes ``output_dir/results.json``), trains with the same
local code (:mod:`medseq.federated.local`), the same ``[model]`` and ``[train]`` and the same
sites (:func:`medseq.federated.sites.load_site`, local train/validation splits included):

* pooled: the featurizer fitted on the union of the sites' training samples, trained on them
  for ``rounds * local_epochs`` epochs at most, early stopping on the union of the sites'
  validation samples;
* each site alone: its own featurizer and training samples, early stopping on its own
  validation samples;

and scores each once on the run's test samples (the ``[data] protocol`` test part, or
``[data] test``) with the task's AUROC (:func:`medseq.federated.local.mean_auroc`: binary,
or the mean one-vs-rest AUROC over the classes present), the figure the federated run
reports. Prints one markdown table; append it to ``benchmarks/results/federated.md``.

Usage: ``python benchmarks/federated_datasets.py configs/federated-mimic3.toml``
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medseq.datasets.registry import get_dataset
from medseq.federated import load_federated, local
from medseq.federated.client import model_config
from medseq.federated.sites import load_site, n_sites, protocol_test_ids, read_set


def _test_set(experiment):
    """The run's test data and labels: the protocol's test part, or ``[data] test``."""
    if experiment.protocol:
        data, labels = read_set(experiment, experiment.train)
        return data, labels.loc[protocol_test_ids(experiment)]
    if not experiment.test:
        raise SystemExit(f"{experiment.name}: no [data] protocol or test set to score")
    return read_set(experiment, experiment.test)


def _train_and_score(experiment, data, labels, train_ids, val_ids, test, seed: int):
    """Fit the featurizer on ``train_ids``, train with early stopping on ``val_ids``; the
    validation and test AUROC and the best epoch."""
    spec = get_dataset(experiment.dataset)
    task = spec.task_type(experiment.task)
    featurizer = spec.fit_featurizer(dict(experiment.features), data, train_ids)
    train = local.featurise(spec, featurizer, data, train_ids, labels)
    val = local.featurise(spec, featurizer, data, val_ids, labels)
    model = local.build_site_model(model_config(experiment, featurizer), seed=seed)
    epochs = experiment.federated.rounds * experiment.federated.local_epochs
    config = local.local_train_config(experiment.local_train, epochs=epochs, seed=seed, task=task)
    config = replace(config, patience=max(3, epochs // 4))
    augment = spec.augment(dict(experiment.features), featurizer) if spec.augment else None
    result = local.Trainer(config).fit(model, train, val, augment=augment)
    val_prob = local.predict(model, val, experiment.local_train, task)
    val_auroc = local.mean_auroc(val["y"], val_prob, task)
    test_data, test_labels = test
    ids = test_labels.index.to_numpy(dtype=np.int64)
    arrays = local.featurise(spec, featurizer, test_data, ids, test_labels)
    prob = local.predict(model, arrays, experiment.local_train, task)
    return val_auroc, local.mean_auroc(arrays["y"], prob, task), int(result.best_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    experiment = load_federated(args.config)
    saved = Path(experiment.output_dir) / "results.json"
    if not saved.is_file():
        raise SystemExit(f"{saved} not found: run `medseq federate simulate {args.config}` first")
    fed = json.loads(saved.read_text())
    test = _test_set(experiment)
    sites = [load_site(experiment, k) for k in range(n_sites(experiment))]
    seed = experiment.federated.seed
    rows = [
        (
            f"federated ({experiment.federated.strategy}, {len(sites)} sites)",
            fed["best_val_auroc"],
            fed["test_auroc"],
            f"best round {fed['best_round']} of {experiment.federated.rounds}",
            fed["seconds"],
        )
    ]
    data = sites[0].data
    train_ids = np.sort(np.concatenate([s.train_ids for s in sites]))
    val_ids = np.sort(np.concatenate([s.val_ids for s in sites]))
    labels = pd.concat([s.labels for s in sites])
    start = time.perf_counter()
    val, score, epoch = _train_and_score(experiment, data, labels, train_ids, val_ids, test, seed)
    rows.append(("pooled", val, score, f"best epoch {epoch}", time.perf_counter() - start))
    for site in sites:
        start = time.perf_counter()
        val, score, epoch = _train_and_score(
            experiment, site.data, site.labels, site.train_ids, site.val_ids, test, seed
        )
        note = f"{len(site.train_ids)} training samples; best epoch {epoch}"
        rows.append((f"{site.name} alone", val, score, note, time.perf_counter() - start))
    n_test = len(test[1])
    print(f"\n### {experiment.name} (`{args.config}`)\n")
    print(f"| model | validation AUROC | test AUROC ({n_test} samples) | note | seconds |")
    print("|---|---|---|---|---|")
    for name, val, score, note, seconds in rows:
        print(f"| {name} | {val:.4f} | {score:.4f} | {note} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
