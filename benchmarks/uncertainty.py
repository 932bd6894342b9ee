"""Benchmark: empirical coverage of a bundle's conformal sets on a held-out labelled set.

The sets are calibrated on the bundle's stored out-of-fold validation scores (never on the
evaluated set); the evaluated set is scored once. Prints (and with ``--append`` adds to
``benchmarks/results/uncertainty.md``) the coverage and mean set size with 95 % bootstrap
CIs, marginal and Mondrian, by subgroup, the share the stored abstention rule abstains on,
and the risk-coverage curve.

Usage: ``python benchmarks/uncertainty.py BUNDLE DATA [--coverage 0.9] [--append TITLE]``
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

from medseq.bundle import load_bundle
from medseq.report.datasets import load_set
from medseq.report.uncertainty import set_uncertainty

RESULTS = Path(__file__).parent / "results" / "uncertainty.md"


def _ci(triple: list[float], digits: int = 3) -> str:
    return f"{triple[0]:.{digits}f} ({triple[1]:.{digits}f} – {triple[2]:.{digits}f})"


def markdown(u: dict, title: str, command: str) -> str:
    """The numbers of :func:`set_uncertainty` as a markdown section."""
    lines = [f"## {title}", "", f"Command: `{command}`", ""]
    lines += ["| variant | group | n | coverage (95 % CI) | mean set size (95 % CI) |"]
    lines += ["|---|---|---:|---|---|"]
    for variant in ("marginal", "mondrian"):
        if variant not in u:
            continue
        v = u[variant]
        lines.append(
            f"| {variant} | all | {v['n']} | {_ci(v['coverage'])} | {_ci(v['set_size'])} |"
        )
        for c in v.get("by_class", []):
            lines.append(
                f"| {variant} | true class {c['class']} | {c['n']} | {_ci(c['coverage'])} "
                f"| {_ci(c['set_size'])} |"
            )
        for g in v["subgroups"]:
            group = f"{g['attribute']} = {g['group']}"
            lines.append(
                f"| {variant} | {group} | {g['n']} | {_ci(g['coverage'])} | {_ci(g['set_size'])} |"
            )
    if "abstention" in u:
        a = u["abstention"]
        lines += [
            "",
            f"Stored abstention rule `{a['rule']}` abstains on {100 * a['abstained']:.1f} %.",
        ]
    if "risk_coverage" in u:
        lines += ["", "| answered | n | error | AUROC |", "|---:|---:|---:|---:|"]
        for r in u["risk_coverage"][1::2]:
            auroc = r.get("auroc", float("nan"))
            lines.append(
                f"| {r['answer_rate']:.2f} | {int(r['n'])} | {r['error']:.3f} | {auroc:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("data")
    parser.add_argument("--coverage", type=float, default=0.9)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--append", metavar="TITLE", help="append a section to the results file")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    ev = load_set(bundle, args.data, name=Path(args.data).name)
    u = set_uncertainty(bundle, ev, args.coverage, n_boot=args.n_boot)
    command = (
        f"python benchmarks/uncertainty.py {args.bundle} {args.data} --coverage {args.coverage}"
    )
    text = markdown(u, args.append or f"{bundle.dataset_task} on {ev.name}", command)
    print(text)
    if args.append:
        with RESULTS.open("a") as out:
            out.write(f"\n{text}\n_{platform.node()}, load {os.getloadavg()[0]:.1f}_\n")


if __name__ == "__main__":
    main()
