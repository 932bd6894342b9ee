"""Choose the DP-SGD settings of the federated benchmark on validation AUROC only.

FedAvg with per-site DP-SGD (Opacus) over PhysioNet 2012 set A's four ICU-type sites, at
one target epsilon, for a small grid of local learning rates and round counts (each run's
noise is calibrated to its own number of rounds, so every run spends the same epsilon).
Only the subject-weighted validation AUROC of the sites is reported and used to choose;
set B is not read. Writes ``benchmarks/results/federated_dp_sweep.md``.

Usage: ``python benchmarks/federated_dp_sweep.py [--epsilon 8] [--lrs 0.003 0.01]
[--rounds 10 30] [--batch-sizes 128 256]``
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from medseq.federated import PrivacyConfig, load_federated
from medseq.federated.simulation import run_simulation

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "federated_dp_sweep.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2])
    parser.add_argument("--rounds", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    base = load_federated(ROOT / "configs" / "federated.toml")
    base = replace(base, test="", output_dir="")
    lines = ["| rounds | batch | lr | val AUROC | best round | spent epsilon | seconds |"]
    lines.append("|---" * 7 + "|")
    best: tuple[float, int, int, float] | None = None
    grid = [(r, b, lr) for r in args.rounds for b in args.batch_sizes for lr in args.lrs]
    for rounds, batch, lr in grid:
        fed = replace(
            base.federated,
            strategy="fedavg",
            rounds=rounds,
            privacy=PrivacyConfig(target_epsilon=args.epsilon),
        )
        train = {**base.local_train, "batch_size": batch, "lr": lr}
        result = run_simulation(replace(base, federated=fed, local_train=train))
        eps = max(result.epsilon.values())
        lines.append(
            f"| {rounds} | {batch} | {lr:g} | {result.best_val_auroc:.4f} | {result.best_round} | "
            f"{eps:.2f} | {result.seconds:.0f} |"
        )
        print(lines[-1], flush=True)
        if best is None or result.best_val_auroc > best[0]:
            best = (result.best_val_auroc, rounds, batch, lr)
    assert best is not None
    command = " ".join(["python", "benchmarks/federated_dp_sweep.py", *sys.argv[1:]])
    text = (
        "# DP-SGD settings of the federated benchmark, chosen on validation\n\n"
        f"`{command}`; {time.perf_counter() - start:.0f} s wall, one torch thread. FedAvg over "
        "set A's four ICU-type sites (configs/federated.toml), per-site DP-SGD at target "
        f"epsilon {args.epsilon:g}; subject-weighted validation "
        "AUROC of the sites' own validation stays (set B not read).\n\n"
        + "\n".join(lines)
        + f"\n\nChosen: {best[1]} rounds, batch {best[2]}, lr {best[3]:g} "
        f"(validation AUROC {best[0]:.4f}).\n"
    )
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
