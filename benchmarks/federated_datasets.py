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
reports (per labelled hour for a per-hour task such as PhysioNet 2019's). Prints one
markdown table; append it to ``benchmarks/results/federated_datasets.md``. A second table
gives the dataset's own test figures (``spec.metrics``) of every row, when the spec has them.

``--utility`` (per-hour tasks with the Challenge's utility): each row's alarm threshold is
the one of maximal normalized utility on that row's own validation patients (the federated
row: the union of the sites' validation patients, predicted by the saved bundle), and the
test utility at it is reported beside the utility at 0.5; the test part chooses nothing.

``--ci`` (binary tasks with one label per sample): a third table gives each row's test AUROC
with its 95 % stratified bootstrap interval and the paired bootstrap difference from the
federated row (the same resamples of the test samples for every row).

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
from medseq.evaluation.utility import best_utility_threshold, normalized_utility
from medseq.federated import load_federated, local
from medseq.federated.client import model_config
from medseq.federated.sites import load_site, n_sites, protocol_test_ids, read_set

UTILITY = False  # --utility
CI_BOOT = 0  # --ci: bootstrap resamples of the test AUROC (0: no CI table)


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
    scores of :func:`_scores` and the best epoch."""
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
    scores = _scores(experiment, featurizer, model, val, test)
    return scores, int(result.best_epoch)


def _scores(experiment, featurizer, model, val_arrays: dict, test) -> dict:
    """Validation and test AUROC of ``model`` (the task's, as the federated run reports it),
    the dataset's test figures and, with ``--utility``, the validation-chosen threshold's."""
    spec = get_dataset(experiment.dataset)
    task = spec.task_type(experiment.task)
    val_prob = local.predict(model, val_arrays, experiment.local_train, task)
    test_data, test_labels = test
    ids = test_labels.index.to_numpy(dtype=np.int64)
    arrays = local.featurise(spec, featurizer, test_data, ids, test_labels)
    prob = local.predict(model, arrays, experiment.local_train, task)
    out = {
        "val_auroc": local.mean_auroc(val_arrays["y"], val_prob, task),
        "test_auroc": local.mean_auroc(arrays["y"], prob, task),
        "figures": spec.metrics(experiment.task, arrays["y"], prob) if spec.metrics else {},
        "test_y": arrays["y"],
        "test_prob": prob,
    }
    if UTILITY:
        threshold, val_utility = best_utility_threshold(*_hours(val_arrays["y"], val_prob))
        labels, risks, lengths = _hours(arrays["y"], prob)
        alarms = (risks >= threshold).astype(np.float64)
        out["utility"] = (threshold, val_utility, normalized_utility(labels, alarms, lengths))
    return out


def _hours(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, risks (P(class 1)) and stay lengths of the labelled hours, stays in order."""
    steps = min(y.shape[1], prob.shape[1])
    y, risk = y[:, :steps], prob[:, :steps, 1]
    scored = ~np.isnan(y)
    return y[scored], risk[scored], scored.sum(axis=1)


def _federated_scores(experiment, fed: dict, sites, test) -> dict:
    """:func:`_scores` of the run's saved bundle (the selected round's global model), on the
    union of the sites' validation samples and on the test samples."""
    from medseq.bundle import load_bundle

    if not fed.get("bundle_dir"):
        return {"val_auroc": fed["best_val_auroc"], "test_auroc": fed["test_auroc"]}
    bundle = load_bundle(fed["bundle_dir"])
    spec = get_dataset(experiment.dataset)
    val_ids = np.sort(np.concatenate([s.val_ids for s in sites]))
    labels = pd.concat([s.labels for s in sites])
    val = local.featurise(spec, bundle.featurizer, sites[0].data, val_ids, labels)
    scores = _scores(experiment, bundle.featurizer, bundle.members[0], val, test)
    scores["val_auroc"] = fed["best_val_auroc"]  # the run's own (site-weighted) figure
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--utility", action="store_true", help=__doc__.split("\n\n")[2])
    parser.add_argument("--ci", type=int, default=0, metavar="N_BOOT", help="bootstrap CIs")
    args = parser.parse_args()
    global UTILITY, CI_BOOT
    UTILITY = args.utility
    CI_BOOT = args.ci
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
    start = time.perf_counter()
    fed_scores = _federated_scores(experiment, fed, sites, test)
    rows = [
        (
            f"federated ({experiment.federated.strategy}, {len(sites)} sites)",
            fed_scores,
            f"best round {fed['best_round']} of {experiment.federated.rounds}",
            fed["seconds"],
        )
    ]
    logging.warning("federated bundle scored in %.0f s", time.perf_counter() - start)
    data = sites[0].data
    train_ids = np.sort(np.concatenate([s.train_ids for s in sites]))
    val_ids = np.sort(np.concatenate([s.val_ids for s in sites]))
    labels = pd.concat([s.labels for s in sites])
    start = time.perf_counter()
    scores, epoch = _train_and_score(experiment, data, labels, train_ids, val_ids, test, seed)
    rows.append(("pooled", scores, f"best epoch {epoch}", time.perf_counter() - start))
    for site in sites:
        start = time.perf_counter()
        scores, epoch = _train_and_score(
            experiment, site.data, site.labels, site.train_ids, site.val_ids, test, seed
        )
        note = f"{len(site.train_ids)} training samples; best epoch {epoch}"
        rows.append((f"{site.name} alone", scores, note, time.perf_counter() - start))
    _print(experiment, args.config, rows, len(test[1]))


def _print(experiment, config: Path, rows: list, n_test: int) -> None:
    print(f"\n### {experiment.name} (`{config}`)\n")
    print(f"| model | validation AUROC | test AUROC ({n_test} samples) | note | seconds |")
    print("|---|---|---|---|---|")
    for name, scores, note, seconds in rows:
        val, score = scores["val_auroc"], scores["test_auroc"]
        print(f"| {name} | {val:.4f} | {score:.4f} | {note} | {seconds:.0f} |")
    keys = list(rows[0][1].get("figures") or {})
    if keys:
        print("\nThe dataset's own test figures (`spec.metrics`):\n")
        print("| model | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, scores, _, _ in rows:
            values = " | ".join(f"{float(scores['figures'][k]):.4f}" for k in keys)
            print(f"| {name} | {values} |")
    if CI_BOOT:
        _print_ci(rows)
    if UTILITY:
        print("\nNormalized utility at the threshold of best utility on each row's validation:\n")
        print("| model | threshold | validation utility | test utility |")
        print("|---|---|---|---|")
        for name, scores, _, _ in rows:
            threshold, val_utility, test_utility = scores["utility"]
            print(f"| {name} | {threshold:.4f} | {val_utility:.4f} | {test_utility:.4f} |")


def _positive_scores(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and P(positive) of a binary task with one label per sample; an error for
    any other task (the CI table is for those only)."""
    y, prob = np.asarray(y, dtype=np.float64), np.asarray(prob, dtype=np.float64)
    if prob.ndim == 2 and prob.shape[1] == 2:
        prob = prob[:, 1]
    if y.ndim != 1 or prob.ndim != 1 or not set(np.unique(y)) <= {0.0, 1.0}:
        raise SystemExit("--ci is for binary tasks with one label per sample")
    return y, prob


def _print_ci(rows: list) -> None:
    """Each row's test AUROC with a stratified bootstrap 95 % CI, and the paired difference
    from the first (federated) row on the same resamples."""
    from sklearn.metrics import roc_auc_score

    from medseq.evaluation.bootstrap import resample_indices

    pairs = [_positive_scores(r[1]["test_y"], r[1]["test_prob"]) for r in rows]
    y = pairs[0][0]
    if any(not np.array_equal(y, other) for other, _ in pairs):
        raise SystemExit("the rows were scored on different test samples")
    idx = resample_indices(y, CI_BOOT, random_state=0, stratified=True)
    boot = np.array([[roc_auc_score(y[i], p[i]) for i in idx] for _, p in pairs])
    print(f"\nTest AUROC, 95 % stratified bootstrap CI ({CI_BOOT} resamples), and the paired")
    print("difference from the federated row on the same resamples:\n")
    print("| model | test AUROC [95 % CI] | minus federated [95 % CI] |")
    print("|---|---|---|")
    for k, (name, _, _, _) in enumerate(rows):
        point = roc_auc_score(y, pairs[k][1])
        lo, hi = np.percentile(boot[k], [2.5, 97.5])
        diff = point - roc_auc_score(y, pairs[0][1])
        d_lo, d_hi = np.percentile(boot[k] - boot[0], [2.5, 97.5])
        other = "" if k == 0 else f"{diff:+.3f} [{d_lo:+.3f}, {d_hi:+.3f}]"
        print(f"| {name} | {point:.3f} [{lo:.3f}, {hi:.3f}] | {other} |")


if __name__ == "__main__":
    main()
