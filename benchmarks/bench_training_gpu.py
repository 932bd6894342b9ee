# ruff: noqa: E501  (the markdown tables of the report are long lines)
"""Training throughput on a GPU: cuDNN GRU/LSTM, medseq's models and GRU-D, fp32 and bf16.

One training step (forward, backward, Adam step) at ``bench_training.py``'s shapes (T = 48,
37 variables: input ``[values; mask; Δt]`` = 111 wide for GRU/LSTM, ``[x̂; mask]`` = 74 for
GRU-D), hidden 64/128/256, batch 64 (the CPU benchmark's) and larger batches (what a GPU is
for). Synthetic data (normal values, 30 % observed mask, lengths 24..48) already on the
device: the work of a recurrence does not depend on the values, and no host-to-device copy
is timed. Models:

* ``nn.GRU`` / ``nn.LSTM``: torch's cuDNN modules + a linear head on the last valid step;
* ``medseq gru`` / ``medseq lstm``: ``SequenceClassifier`` (the same cuDNN modules inside;
  the fused CPU GRU path is off on CUDA), last-step pooling;
* ``medseq grud``: ``GRUD`` (its hand-written recurrence, a Python loop of small kernels).

Each in float32 (torch's defaults: cuDNN may use TF32, the flags are recorded) and under
``torch.autocast(dtype=torch.bfloat16)``. bf16 is *checked* before it is timed: two copies of
the same initial model, one fp32 and one bf16, train on the same batches; the largest
relative loss difference over those steps and the relative gradient error of the first step
must stay within ``--loss-tol`` / ``--grad-tol``, else the cell is marked not correct.

The GPU's matmul rate (large square products, bf16, fp32 and TF32) is measured in the same
run; each cell's achieved rate counts the recurrence's gate-matmul FLOPs per sample
(``benchkit.flops.recurrent_flops``: forward ``2 T (I + H) G H``, backward twice that) and is
shown as a fraction of the matmul rate of its precision. Writes a markdown table and the
JSON rows. ``--tiny`` runs every path with toy sizes on the CPU (for the tests).

    python benchmarks/bench_training_gpu.py [--device cuda] [--batches 64,1024,8192] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit.flops import matmul_flops, recurrent_flops  # noqa: E402

MODELS = ("nn.GRU", "nn.LSTM", "medseq gru", "medseq lstm", "medseq grud")
PRECISIONS = ("fp32", "bf16")
#: Timed precisions and the matmul rate each is measured against: "fp32" is torch's default,
#: where cuDNN may use TF32 tensor cores (``torch.backends.cudnn.allow_tf32``), so its
#: ceiling is the TF32 rate; "fp32-strict" turns TF32 off.
CEILING = {"fp32": "tf32", "fp32-strict": "fp32", "bf16": "bf16"}


@dataclass(frozen=True)
class Shapes:
    """Benchmark sizes; :meth:`tiny` for a CPU smoke run."""

    n_steps: int = 48
    n_features: int = 37
    hidden: tuple[int, ...] = (64, 128, 256)
    batches: tuple[int, ...] = (64, 1024, 8192)
    matmul_n: int = 8192
    seconds: float = 0.4
    check_steps: int = 30

    @classmethod
    def tiny(cls) -> Shapes:
        return cls(n_steps=5, n_features=3, hidden=(4, 8), batches=(4,), matmul_n=64,
                   seconds=0.01, check_steps=3)  # fmt: skip


def input_width(model: str, n_features: int) -> int:
    """Width of the recurrence's input: ``[x̂; mask]`` for GRU-D, ``[values; mask; Δt]`` else."""
    return 2 * n_features if model.endswith("grud") else 3 * n_features


def flops_per_sample(model: str, shapes: Shapes, hidden: int) -> int:
    """Gate-matmul FLOPs of one sample's training step (forward + backward)."""
    cell = model.split()[-1].lower().removeprefix("nn.")
    return recurrent_flops(cell, 1, shapes.n_steps, input_width(model, shapes.n_features), hidden)


class CudnnBaseline(nn.Module):
    """``nn.GRU``/``nn.LSTM`` + a linear head on each sequence's last valid step."""

    def __init__(self, cell: str, input_size: int, hidden: int) -> None:
        super().__init__()
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(input_size, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, values: Tensor, mask: Tensor, delta: Tensor, lengths: Tensor) -> Tensor:
        out = self.rnn(torch.cat([values, mask, delta], dim=2))[0]  # (B, T, H)
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
        return self.head(out.gather(1, index).squeeze(1))  # (B, 1)


def build(model: str, shapes: Shapes, hidden: int, device: torch.device) -> nn.Module:
    """A fresh model (seed 0) of ``model`` on ``device``."""
    from medseq.models import ModelConfig, build_model

    torch.manual_seed(0)
    f = shapes.n_features
    if model.startswith("nn."):
        net: nn.Module = CudnnBaseline(model[3:].lower(), 3 * f, hidden)
    elif model == "medseq grud":
        net = build_model(ModelConfig(input_size=f, kind="grud", hidden_size=hidden, pooling="last",
                                      input_mask=True, input_delta=False))  # fmt: skip
    else:
        net = build_model(ModelConfig(input_size=f, cell=model.split()[1], hidden_size=hidden,
                                      pooling="last", input_mask=True, input_delta=True))  # fmt: skip
    return net.to(device)


_BATCHES: dict[tuple, list[dict]] = {}


def make_batches(shapes: Shapes, batch: int, device: torch.device, n: int = 4) -> list[dict]:
    """``n`` synthetic batches on ``device``: values, mask, delta ``(B, T, F)``, lengths, y.

    Made once per (shapes, batch, device) and reused: every cell reads the same data.
    """
    key = (shapes, batch, str(device), n)
    if key not in _BATCHES:
        _BATCHES[key] = _new_batches(shapes, batch, device, n)
    return _BATCHES[key]


def _new_batches(shapes: Shapes, batch: int, device: torch.device, n: int) -> list[dict]:
    gen = torch.Generator().manual_seed(batch)
    out = []
    for _ in range(n):
        size = (batch, shapes.n_steps, shapes.n_features)
        mask = (torch.rand(size, generator=gen) < 0.3).float()
        b = {"values": torch.randn(size, generator=gen) * mask, "mask": mask,
             "delta": torch.rand(size, generator=gen),
             "lengths": torch.randint(max(1, shapes.n_steps // 2), shapes.n_steps + 1, (batch,), generator=gen),
             "y": (torch.rand(batch, generator=gen) < 0.14).float()}  # fmt: skip
        out.append({k: v.to(device) for k, v in b.items()})
    return out


def autocast(device: torch.device, precision: str):
    """The bf16 autocast context for ``precision == "bf16"``, a no-op one otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def loss_of(net: nn.Module, b: dict, device: torch.device, precision: str) -> Tensor:
    with autocast(device, precision):
        logits = net(values=b["values"], mask=b["mask"], delta=b["delta"], lengths=b["lengths"])
        return nn.functional.binary_cross_entropy_with_logits(logits.squeeze(1).float(), b["y"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_chunks(
    fn: Callable[[int], None], device: torch.device, seconds: float, chunk: int = 10
) -> float:
    """Median seconds of one ``fn(i)`` call, timed in chunks of ``chunk`` calls between syncs."""
    for i in range(3):
        fn(i)
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for i in range(chunk):
            fn(i)
        sync(device)
        times.append((time.perf_counter() - t0) / chunk)
    return statistics.median(times)


def matmul_rates(device: torch.device, n: int) -> dict[str, float]:
    """FLOP/s of an ``n × n × n`` product in bf16, fp32 (no TF32) and TF32, mean of 10 after 3."""
    rates = {}
    saved = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                              ("tf32", torch.float32, True)):  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        for _ in range(3):
            a @ b
        sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        rates[name] = 10 * matmul_flops(n, n, n) / (time.perf_counter() - t0)
    torch.backends.cuda.matmul.allow_tf32 = saved
    return rates


def bf16_check(
    model: str, shapes: Shapes, hidden: int, device: torch.device, batches: list[dict]
) -> dict:
    """Train an fp32 and a bf16 copy of one model on the same batches; their disagreement."""
    nets = {p: build(model, shapes, hidden, device) for p in PRECISIONS}
    opts = {p: torch.optim.Adam(nets[p].parameters(), lr=1e-3) for p in PRECISIONS}
    loss_rel, grad_rel = 0.0, float("nan")
    for i in range(shapes.check_steps):
        b = batches[i % len(batches)]
        losses = {}
        for p in PRECISIONS:
            opts[p].zero_grad(set_to_none=True)
            loss = loss_of(nets[p], b, device, p)
            loss.backward()
            losses[p] = loss.item()
        if not all(map(_finite, losses.values())):
            return {
                "loss_rel": float("inf"),
                "grad_rel": grad_rel,
                "error": f"non-finite loss {losses}",
            }
        loss_rel = max(
            loss_rel, abs(losses["bf16"] - losses["fp32"]) / max(abs(losses["fp32"]), 1e-6)
        )
        if i == 0:
            g = {p: torch.cat([q.grad.float().flatten() for q in nets[p].parameters() if q.grad is not None])
                 for p in PRECISIONS}  # fmt: skip
            grad_rel = ((g["bf16"] - g["fp32"]).norm() / g["fp32"].norm().clamp_min(1e-12)).item()
        for p in PRECISIONS:
            opts[p].step()
    return {"loss_rel": loss_rel, "grad_rel": grad_rel, "error": ""}


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def time_cell(model: str, shapes: Shapes, hidden: int, batch: int, precision: str,
              device: torch.device) -> float:  # fmt: skip
    """Median seconds of one training step (forward, backward, Adam)."""
    net = build(model, shapes, hidden, device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = make_batches(shapes, batch, device)

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(net, batches[i % len(batches)], device, precision).backward()
        opt.step()

    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = precision != "fp32-strict"
    try:
        return time_chunks(step, device, shapes.seconds)
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def run(shapes: Shapes, device: torch.device, loss_tol: float, grad_tol: float,
        budget_s: float = float("inf"), log=print) -> dict:  # fmt: skip
    """Every cell: the bf16 check (at the first batch size), then the timings.

    Cells not started within ``budget_s`` seconds are left out (and the report says so), so
    a run on a rented device ends inside its time slot with what it measured.
    """
    deadline = time.perf_counter() + budget_s
    rates = matmul_rates(device, shapes.matmul_n)
    log("matmul TFLOP/s: " + ", ".join(f"{k} {v / 1e12:.1f}" for k, v in rates.items()))
    checks, rows, skipped = {}, [], []
    for model in MODELS:
        for hidden in shapes.hidden:
            if time.perf_counter() > deadline:
                skipped.append(f"{model} {hidden}")
                continue
            try:
                check = bf16_check(
                    model, shapes, hidden, device, make_batches(shapes, shapes.batches[0], device)
                )
            except RuntimeError as err:  # an op without a bf16 kernel: recorded, not timed
                check = {
                    "loss_rel": float("nan"),
                    "grad_rel": float("nan"),
                    "error": str(err).splitlines()[0],
                }
            check["correct"] = (not check["error"] and check["loss_rel"] <= loss_tol
                                and check["grad_rel"] <= grad_tol)  # fmt: skip
            checks[(model, hidden)] = check
            for batch in shapes.batches:
                for precision in CEILING:
                    if precision == "bf16" and check["error"]:
                        continue
                    step_s = time_cell(model, shapes, hidden, batch, precision, device)
                    flops = flops_per_sample(model, shapes, hidden)
                    row = {"model": model, "hidden": hidden, "batch": batch, "precision": precision,
                           "step_s": step_s, "samples_per_s": batch / step_s, "flops_per_sample": flops,
                           "tflops": flops * batch / step_s / 1e12,
                           "fraction": flops * batch / step_s / rates[CEILING[precision]],
                           "bf16_correct": check["correct"]}  # fmt: skip
                    rows.append(row)
                    log(f"{time.perf_counter() - deadline + budget_s:.0f} s {model} H={hidden} B={batch} {precision}: {row['samples_per_s']:.0f} samples/s, "
                        f"{row['fraction']:.2%} of {precision} matmul")  # fmt: skip
    return {"rates": rates, "checks": checks, "rows": rows, "skipped": skipped}


def device_facts(device: torch.device) -> list[str]:
    facts = [f"- torch {torch.__version__}, device `{device}`"]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        facts += [f"- GPU: {torch.cuda.get_device_name(device)}, {p.multi_processor_count} SMs, "
                  f"{p.total_memory / 2**30:.0f} GiB; CUDA {torch.version.cuda}, cuDNN "
                  f"{torch.backends.cudnn.version()}",
                  f"- torch.backends.cudnn.allow_tf32 = {torch.backends.cudnn.allow_tf32} (fp32 "
                  f"RNN cells may use TF32), torch.backends.cuda.matmul.allow_tf32 = "
                  f"{torch.backends.cuda.matmul.allow_tf32}"]  # fmt: skip
    return facts


def report(
    result: dict, shapes: Shapes, device: torch.device, args: argparse.Namespace, wall: float
) -> str:
    rates = result["rates"]
    lines = [
        "# Training throughput on a GPU",
        "",
        f"Command: `{args.command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall:.0f} s wall.",
        "",
        f"Synthetic batches at the PhysioNet 2012 shapes (T = {shapes.n_steps}, {shapes.n_features} variables), "
        "one step = forward + backward + Adam; median of chunks of 10 steps between device syncs "
        f"(≥ {shapes.seconds} s per cell after 3 warm-up steps). Matmul rate ({shapes.matmul_n}³, mean of "
        "10 after 3): "
        + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in rates.items())
        + ". 'of matmul' = the recurrence's gate-matmul FLOPs per sample × samples/s ÷ the matmul "
        "rate of the same precision: 'fp32' (torch's default, cuDNN may use TF32) against TF32, "
        "'fp32-strict' (`torch.backends.cudnn.allow_tf32 = False`) against plain fp32, bf16 against bf16.",
        "",
        "## bf16 autocast against fp32 (same initial weights, same batches)",
        "",
        f"Trained {shapes.check_steps} steps side by side at batch {shapes.batches[0]}; tolerance: "
        f"loss ≤ {args.loss_tol:g} relative at every step, first-step gradient ≤ {args.grad_tol:g} relative (L2).",
        "",
        "| model | hidden | max loss rel. diff | grad rel. error | bf16 correct |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for (model, hidden), c in result["checks"].items():
        verdict = "yes" if c["correct"] else f"**no**{': ' + c['error'] if c['error'] else ''}"
        lines.append(
            f"| {model} | {hidden} | {c['loss_rel']:.2e} | {c['grad_rel']:.2e} | {verdict} |"
        )
    lines += ["", "## Samples per second", "",
              "| model | hidden | batch | fp32 samples/s | of TF32 matmul | fp32-strict samples/s | of fp32 matmul | bf16 samples/s | of bf16 matmul | bf16 / fp32 |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    cells: dict[tuple, dict[str, dict]] = {}
    for r in result["rows"]:
        cells.setdefault((r["model"], r["hidden"], r["batch"]), {})[r["precision"]] = r
    for (model, hidden, batch), by in cells.items():
        a, strict, b = by["fp32"], by["fp32-strict"], by.get("bf16")
        bf = (f"{b['samples_per_s']:.0f}{'' if b['bf16_correct'] else ' (not correct)'} | {b['fraction']:.2%} | "
              f"{b['samples_per_s'] / a['samples_per_s']:.2f}×") if b else "not run | | "  # fmt: skip
        lines.append(
            f"| {model} | {hidden} | {batch} | {a['samples_per_s']:.0f} | {a['fraction']:.2%} "
            f"| {strict['samples_per_s']:.0f} | {strict['fraction']:.2%} | {bf} |"
        )
    if result["skipped"]:
        lines += [
            "",
            f"Not run (time budget of {args.budget_s:g} s spent): {', '.join(result['skipped'])}.",
        ]
    lines += ["", "## Machine", "", *device_facts(device)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU smoke run")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes")
    parser.add_argument("--loss-tol", type=float, default=0.02)
    parser.add_argument("--grad-tol", type=float, default=0.05)
    parser.add_argument("--budget-s", type=float, default=200.0, help="start no cell after this")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "training_gpu.md")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_training_gpu.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    shapes = Shapes.tiny() if args.tiny else Shapes()
    if args.batches:
        shapes = Shapes(
            **{**shapes.__dict__, "batches": tuple(int(b) for b in args.batches.split(","))}
        )
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here; use --device cpu")
    t0 = time.perf_counter()
    result = run(shapes, device, args.loss_tol, args.grad_tol, args.budget_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(result, shapes, device, args, time.perf_counter() - t0))
    rows = {"rates": result["rates"], "rows": result["rows"],
            "checks": [{"model": m, "hidden": h, **c} for (m, h), c in result["checks"].items()]}  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(args.out.read_text())
    return args.out


if __name__ == "__main__":
    main()
