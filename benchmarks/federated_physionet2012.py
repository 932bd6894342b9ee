"""Benchmark: centralised vs federated (FedAvg, FedProx) vs each site alone vs DP on PhysioNet 2012.

Protocol (in-hospital mortality):

* Sites: set A's four ICU types (coronary care, cardiac surgery recovery, medical,
  surgical). Each site splits its own stays 80/20, stratified, into training and
  validation; every row below trains on the same training stays and selects on the same
  validation stays (its own site's, or the union for the pooled rows).
* Test: set B (4000 stays), scored once per row by the selected model: overall AUROC and
  AUROC within each ICU type of set B.
* Centralised: the training stays of all sites pooled in one place, featurizer fitted on
  them, early stopping on the pooled validation AUROC.
* Site alone: one site's training stays only, its own featurizer, early stopping on its own
  validation AUROC; scored on set B's stays of the same ICU type.
* Federated (FedAvg, FedProx; Flower simulation): featurizer from federated statistics,
  one local epoch per round, the round with the best subject-weighted validation AUROC.
* DP: FedAvg with per-site DP-SGD (Opacus) at two target epsilons over the whole run.

Writes ``benchmarks/results/federated.md``. Usage:
``python benchmarks/federated_physionet2012.py [--rounds 30] [--epsilons 1 8]``
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medseq.datasets.registry import get_dataset
from medseq.features import ICUFeaturizer
from medseq.federated import PrivacyConfig, load_federated, local
from medseq.federated.simulation import run_simulation, site_aurocs
from medseq.federated.sites import cut_site, make_partition, read_set

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "federated.md"
CONFIG = ROOT / "configs" / "federated.toml"


def _pooled(sites: list, attr: str) -> np.ndarray:
    return np.sort(np.concatenate([getattr(s, attr) for s in sites]))


def _fit(experiment, featurizer, data, labels, train_ids, val_ids, epochs: int, seed: int):
    """Train one model with early stopping on ``val_ids``; return it."""
    spec = get_dataset(experiment.dataset)
    train = local.featurise(spec, featurizer, data, train_ids, labels)
    val = local.featurise(spec, featurizer, data, val_ids, labels)
    sizes = {**spec.model_sizes(featurizer), "n_outputs": 1}
    model = local.build_site_model(local.model_config(experiment.model, sizes), seed=seed)
    config = local.local_train_config(experiment.local_train, epochs=epochs, seed=seed)
    config = replace(config, patience=8)
    result = local.Trainer(config).fit(model, train, val)
    return model, float(result.best_score), int(result.best_epoch)


def _test_prob(experiment, featurizer, model, test, test_labels) -> np.ndarray:
    ids = test_labels.index.to_numpy(dtype=np.int64)
    arrays = featurizer.transform(test.events, test.static, ids)
    return local.predict(model, arrays, experiment.local_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--dp-rounds", type=int, default=10, help="rounds of the DP rows")
    parser.add_argument("--dp-batch-size", type=int, default=128)
    parser.add_argument("--dp-lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=40, help="centralised / site-alone cap")
    parser.add_argument("--epsilons", type=float, nargs="*", default=[1.0, 8.0])
    parser.add_argument("--mu", type=float, default=0.01, help="FedProx proximal mu")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    start_all = time.perf_counter()
    experiment = load_federated(CONFIG)
    experiment = replace(
        experiment,
        output_dir="",
        federated=replace(experiment.federated, rounds=args.rounds),
    )
    train_set, labels = read_set(experiment, experiment.train)
    test_set, test_labels = read_set(experiment, experiment.test)
    spec = get_dataset(experiment.dataset)
    part = make_partition(spec, train_set, labels, experiment.federated)
    sites = [
        cut_site(train_set, n, ids, labels, experiment.federated) for n, ids in part.sites.items()
    ]
    rows: list[dict] = []
    seed = experiment.federated.seed

    def add(name: str, prob: np.ndarray, val_auroc: float, seconds: float, note: str) -> None:
        overall, per_site = site_aurocs(experiment, test_set, test_labels, prob)
        rows.append(
            {"row": name, "val": val_auroc, "test": overall, **per_site, "s": seconds, "note": note}
        )
        print(
            f"{name}: val {val_auroc:.4f} test {overall:.4f} {per_site} ({seconds:.0f} s)",
            flush=True,
        )

    # centralised
    t = time.perf_counter()
    train_ids, val_ids = _pooled(sites, "train_ids"), _pooled(sites, "val_ids")
    featurizer = ICUFeaturizer(**experiment.features).fit(
        train_set.events, train_set.static, train_ids
    )
    model, val, epoch = _fit(
        experiment, featurizer, train_set, labels, train_ids, val_ids, args.epochs, seed
    )
    prob = _test_prob(experiment, featurizer, model, test_set, test_labels)
    add("centralised (pooled data)", prob, val, time.perf_counter() - t, f"best epoch {epoch}")

    # each site alone: scored on its own ICU type of set B (the other columns are for reference)
    for site in sites:
        t = time.perf_counter()
        feat = ICUFeaturizer(**experiment.features).fit(
            site.data.events, site.data.static, site.train_ids
        )
        model, val, epoch = _fit(
            experiment,
            feat,
            site.data,
            site.labels,
            site.train_ids,
            site.val_ids,
            args.epochs,
            seed,
        )
        prob = _test_prob(experiment, feat, model, test_set, test_labels)
        add(f"{site.name} alone", prob, val, time.perf_counter() - t, f"best epoch {epoch}")

    def federated(name: str, fed, local_train: dict | None = None) -> None:
        exp = replace(experiment, federated=fed, local_train=local_train or experiment.local_train)
        result = run_simulation(exp)
        note = f"best round {result.best_round} of {fed.rounds}"
        if result.epsilon:
            note += f"; spent epsilon {max(result.epsilon.values()):.2f}"
        rows.append(
            {
                "row": name,
                "val": result.best_val_auroc,
                "test": result.test_auroc,
                **result.test_site_auroc,
                "s": result.seconds,
                "note": note,
            }
        )
        print(f"{name}: {rows[-1]}", flush=True)

    base = experiment.federated
    federated("FedAvg", replace(base, strategy="fedavg"))
    federated(f"FedProx (mu={args.mu:g})", replace(base, strategy="fedprox", proximal_mu=args.mu))
    dp_train = {**experiment.local_train, "batch_size": args.dp_batch_size, "lr": args.dp_lr}
    for eps in args.epsilons:
        privacy = PrivacyConfig(target_epsilon=eps)
        fed = replace(base, strategy="fedavg", rounds=args.dp_rounds, privacy=privacy)
        federated(f"FedAvg + DP-SGD (epsilon={eps:g})", fed, local_train=dp_train)

    write(args, rows, [s.name for s in sites], sites, time.perf_counter() - start_all)


def _ddp_table() -> str:
    path = RESULTS.parent / "ddp_cpu.md"
    if not path.exists():
        return "(benchmarks/results/ddp_cpu.md not found: run benchmarks/bench_ddp_cpu.py)"
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("|"))


def write(args, rows: list[dict], names: list[str], sites: list, seconds: float) -> None:
    frame = pd.DataFrame(rows)
    header = (
        "| model | val AUROC | test AUROC (set B) | " + " | ".join(names) + " | seconds | note |"
    )
    lines = [header, "|" + "---|" * (len(names) + 5)]
    for r in rows:
        cells = " | ".join(f"{r.get(n, float('nan')):.4f}" for n in names)
        head = f"| {r['row']} | {r['val']:.4f} | {r['test']:.4f} | {cells}"
        lines.append(f"{head} | {r['s']:.0f} | {r['note']} |")
    fedavg = frame.loc[frame["row"] == "FedAvg"].iloc[0]
    central = frame.loc[frame["row"].str.startswith("centralised")].iloc[0]
    checks = [
        f"- FedAvg vs centralised, set B AUROC: {fedavg['test']:.4f} vs {central['test']:.4f} "
        f"(difference {fedavg['test'] - central['test']:+.4f}; target within 0.01: "
        f"{'met' if abs(fedavg['test'] - central['test']) <= 0.01 else 'missed'})."
    ]
    for name in names:
        alone = frame.loc[frame["row"] == f"{name} alone"].iloc[0]
        verdict = "beats" if fedavg[name] > alone[name] else "does not beat"
        checks.append(
            f"- {name}: FedAvg {fedavg[name]:.4f} vs alone {alone[name]:.4f} on its own set B "
            f"stays ({verdict}, {fedavg[name] - alone[name]:+.4f})."
        )
    sizes = ", ".join(f"{s.name} {s.n_train}+{len(s.val_ids)}" for s in sites)
    command = " ".join(["python", "benchmarks/federated_physionet2012.py", *sys.argv[1:]])
    text = RESULTS_TEMPLATE.format(
        command=command,
        seconds=seconds,
        machine=f"{platform.machine()}, one torch thread, torch {torch.__version__}",
        sizes=sizes,
        rounds=args.rounds,
        dp_rounds=args.dp_rounds,
        dp_batch=args.dp_batch_size,
        dp_lr=args.dp_lr,
        table="\n".join(lines),
        checks="\n".join(checks),
        ddp=_ddp_table(),
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


RESULTS_TEMPLATE = """# Federated learning on PhysioNet 2012: four ICU types as four hospitals

`{command}` (configs/federated.toml), {machine}; whole benchmark {seconds:.0f} s wall.

Protocol: set A split by ICU type into four sites (training + validation stays: {sizes}),
each site's validation share (20 %, stratified) is its own; every model is selected on
validation only (early stopping, or the federated round with the best subject-weighted
validation AUROC) and set B (4000 stays) is scored once: overall and within each ICU
type (the per-site columns). GRU hidden 16 with summary fusion, the default model's
features; one seed. Federated rows: Flower simulation, {rounds} rounds of one local epoch,
featurizer from federated statistics (sites share per-variable counts, quantiles and
moments, never rows). "Site alone": trained and selected on that site's data only, with
its own featurizer. DP rows: per-site DP-SGD with Opacus (DPGRU), noise calibrated so the
whole run spends at most the target epsilon (delta = 1 / (10 n_site)); the spent epsilon
is the largest over sites. DP rows: {dp_rounds} rounds, local batch {dp_batch}, Adam lr
{dp_lr:g}, clipping norm 1.0: the setting with the best validation AUROC at epsilon 8 in
[`federated_dp_sweep.md`](federated_dp_sweep.md), used for both epsilons.

The validation column is each row's own selection score (pooled validation stays for
the centralised row, the site's own for "alone" rows, the subject-weighted mean of the
sites' AUROCs for federated rows), so it does not compare across rows; set B does. In
"alone" rows only the site's own ICU-type column is its target; the others show how a
single hospital's model transfers.

{table}

Targets:

{checks}

## Data-parallel training (DDP, issue 8 part 1)

From [`ddp_cpu.md`](ddp_cpu.md) (`python benchmarks/bench_ddp_cpu.py --n-samples 4096
--epochs 2`): training throughput of one process vs two under `torchrun` (gloo) on this
2-core machine; the DDP metrics equal one process's (tests/integration/test_distributed_train.py).

{ddp}
"""


if __name__ == "__main__":
    main()
