"""PyPOTS GRU-D training throughput on the exported PhysioNet 2012 tensors.

Runs inside ``benchmarks/.peer-venvs/pypots`` (no medseq there). The model is PyPOTS's own
GRU-D classification module (``pypots.classification.grud.core._GRUD``: ``BackboneGRUD`` +
linear classifier + its ``CrossEntropy`` training loss, two classes as PyPOTS uses), fed the
inputs its data loader would build from the same tensors: ``X`` (values, 0 where missing),
``missing_mask``, ``deltas``, ``X_filledLOCF`` (the featurizer's forward-filled values) and
``empirical_mean`` (0: the values are normalised). A plain torch loop with Adam times the
same training step as medseq's; PyPOTS's ``fit`` adds its own data loading on top, so this
is the module's best case. Prints one JSON line per hidden size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit.tensors import load_tensors
from benchkit.timing import time_steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tensors", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", default="64,128,256")
    parser.add_argument("--cells", default="grud")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=300)
    args = parser.parse_args()
    import torch
    from pypots.classification.grud.core import _GRUD
    from pypots.nn.modules.loss import CrossEntropy

    torch.set_num_threads(args.threads)
    arrays = {k: torch.from_numpy(v) for k, v in load_tensors(args.tensors).items()}
    n, n_steps, n_features = arrays["values"].shape
    inputs = {
        "X": arrays["values"] * arrays["mask"],
        "missing_mask": arrays["mask"],
        "deltas": arrays["delta"],
        "X_filledLOCF": arrays["values"],
        "y": arrays["y"].long(),
    }
    mean = torch.zeros(n_features)
    for hidden in (int(h) for h in args.hidden.split(",")):
        torch.manual_seed(0)
        model = _GRUD(n_steps, n_features, hidden, 2, CrossEntropy(), CrossEntropy())
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(i: int, model=model, optimizer=optimizer) -> None:
            start = (i * args.batch) % (n - args.batch)
            b = {k: v[start : start + args.batch] for k, v in inputs.items()}
            optimizer.zero_grad(set_to_none=True)
            loss = model(b | {"empirical_mean": mean}, calc_criterion=True)["loss"]
            loss.backward()
            optimizer.step()

        timed = time_steps(step, args.min_seconds, max_steps=args.max_steps)
        print(json.dumps({
            "lib": "pypots", "model": "grud", "hidden": hidden, "threads": args.threads,
            "steps": timed["steps"], "median_step_s": timed["median_step_s"],
            "samples_per_s": args.batch / timed["median_step_s"],
                "cpu_per_wall": timed["cpu_per_wall"],
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
