"""Bonn EEG: the ConvRNN and its band-power baseline on the same 10 folds, both tasks.

Usage::

    python benchmarks/eeg_bonn.py              # run the configs without a result yet
    python benchmarks/eeg_bonn.py --rerun      # run all four again
    python benchmarks/eeg_bonn.py --write-only # rebuild the markdown from runs/

Each row is one ``medseq train configs/<name>.toml`` (run under ``nice``); its figures come
from that run's ``runs/<name>/results.json``, so the section is reproduced by those
commands alone. The script times each run (wall and CPU seconds, with the load average
before and after, since the machine is shared) and writes the Bonn section of
``benchmarks/results/eeg.md`` between its markers, leaving other sections of the file alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "eeg.md"
BEGIN, END = "<!-- bonn_eeg:begin -->", "<!-- bonn_eeg:end -->"
NOTES = """
Data: `bonn_eeg/bonn_eeg.tar.xz` (SOURCE.md there): 500 single-channel segments of 23.6 s
(4097 samples at 173.61 Hz), 100 per set: Z healthy eyes open, O healthy eyes closed (scalp);
N interictal opposite hippocampus, F interictal epileptogenic zone, S seizure (intracranial).
Tasks: `seizure` (S against Z, O, N, F) and `five_set` (all five sets).

**The split is by segment, and the results are optimistic.** The database has no subject
labels: segments of the same five volunteers and five patients (and perhaps adjacent
stretches of one recording) fall on both sides of every fold. Sets also differ by recording
type (scalp against intracranial), so part of "healthy against epileptic" is the electrode.
These figures say little about new people.

Protocol (`[data] protocol = "by_set"`): 10 folds stratified on the set, the same folds for
both tasks and for the baselines (`split_seed = 0`); in each fold 10 % of the training
segments (stratified) are held out for early stopping, so the fold's validation part is
never seen before it is scored. The figures are the out-of-fold predictions: the mean ± sd
of the 10 fold accuracies, and the pooled accuracy over all 500 segments. There is no
untouched test set; `medseq evaluate` and `medseq report` refuse the training file and run on
any folder of segments the bundle has not seen.

Model (`ConvRNN`): the raw waveform (0.5-40 Hz band-pass, raw amplifier units, no
per-segment scaling, since amplitude is part of the signal) through causal convolutions
(stride 32, 5.4 steps/s) and a GRU with attention pooling. Training batches are random 5 s
sub-windows of the segments; a segment's prediction reads the whole 23.6 s segment in one
pass (attention over all its steps), i.e. the recording mode over the whole segment, not
an average of window predictions. With `band_power_summaries = true` the head also sees the
segment's z-scored band powers (summary fusion, the `static` input of the ConvRNN).

Baseline (`[baseline] kind = "hist_gradient_boosting"`, same folds): log and relative band
powers (delta 0.5-4, theta 4-8, alpha 8-13, beta 13-30, gamma 30-45 Hz; Welch, 2 s Hann
windows) and simple statistics (log sd, skewness, kurtosis, line length, zero-crossing rate,
Hjorth mobility and complexity, spectral edge, peak frequency, range) of the whole segment,
fitted on each fold's training and early-stopping segments.

Selection, stated plainly. *Seizure*: the configuration was fixed before its one 10-fold
run (only a 2-fold, 2-epoch smoke run came before it); it missed the target, and one more
run with summary fusion was made after seeing that: it is the "post hoc" row, not a
selected result. *Five-set*: a first 10-fold run of the raw ConvRNN (batch 32, otherwise as
the seizure config) underfitted (training loss still falling at the last epoch; mean
early-stopping loss 0.466; its out-of-fold accuracy, seen too, 0.768 ± 0.061, with N and F
confused); a second trial (batch 16, 60 epochs, dropout 0.1) was stopped after one fold
because it would have taken over an hour here. The configuration was then changed once
(batch 16, band-power summary fusion),
which lowered the early-stopping loss to a mean of {five_set_stop_loss}, and that run is the
five-set row: one change after one look at these folds, so that row is not free of selection.
"""
MISSED = """
**Both targets missed by the ConvRNN, and neither beats the band-power baseline in the same
run.** Seizure: 0.978 against ≥ 0.99 (short by 0.012; the baseline 0.986 misses too, by
0.004); the errors are false alarms (specificity 0.975: 10 of 400 non-seizure segments),
and the members early-stopped at epochs 1-10 on 45 segments (9 seizures) per fold, a noisy
criterion. Summary fusion, run afterwards, reaches 0.988 ± 0.014 (post hoc, still short by
0.002). Five-set: 0.856 against ≥ 0.90 (short by 0.044; baseline 0.906): Z, O and S are
separated about as well as by the trees, but the two interictal intracranial sets N and F
(the same five patients, two electrode sites) are confused both ways (51 of 200), where the
trees, reading spectral statistics of the whole segment directly, confuse 33. With 405
training segments per fold, 5 s training windows and about 30 epochs, the network does not
learn those statistics as well from the raw waveform; longer training and wider networks
were not tried because the shared 2 cores (load average 10-12, about 15 % of one core per
run) made each 10-fold run take 15-30 minutes of wall time.

Time: each run is single-threaded (`num_threads = 1`, nice'd). The CPU times (1.7-4.1 min
for the ConvRNN runs, under 1 min for the baselines) are what a free core needs; the wall
times above were measured with 7 other jobs on the 2 cores (load average in brackets), so
the five-set ConvRNN run took 30 min of wall time there, over the 20-minute budget.
"""
#: Runs made after the pre-registered row of their task was seen: reported, never selected.
POST_HOC = {
    "bonn-eeg-seizure-fusion": (
        "seizure",
        "ConvRNN + band-power fusion, run after the ConvRNN row missed",
        "medseq train configs/bonn-eeg-seizure.toml --set features.band_power_summaries=true "
        "-o runs/bonn-eeg-seizure-fusion",
    ),
}
TASKS = {"seizure": ("bonn-eeg-seizure", 0.99), "five_set": ("bonn-eeg-five-set", 0.90)}


def _run(name: str) -> dict:
    out = ROOT / "runs" / name
    cmd = [
        "nice",
        sys.executable,
        "-m",
        "medseq.cli",
        "train",
        f"configs/{name}.toml",
        "-o",
        str(out),
    ]
    print("$", " ".join(cmd[3:]), flush=True)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = {
        "wall_s": time.perf_counter() - start,
        "cpu_s": cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    (out / "timing.json").write_text(json.dumps(timing, indent=2))
    return _load(name)


def _load(name: str) -> dict | None:
    out = ROOT / "runs" / name
    if not (out / "results.json").exists():
        return None
    result = json.loads((out / "results.json").read_text())
    timing = out / "timing.json"
    result["timing"] = json.loads(timing.read_text()) if timing.exists() else None
    return result


def _stop_loss(name: str) -> str:
    """Mean over the members of their best early-stopping loss, from the bundle's fits."""
    manifest = ROOT / "runs" / name / "bundle" / "medseq.json"
    if not manifest.exists():
        return "(not run)"
    fits = json.loads(manifest.read_text())["train_config"]["fits"]
    return f"{sum(f['best_score'] for f in fits) / len(fits):.3f}"


def _acc(result: dict) -> str:
    mean, sd = result["val_fold_mean_sd"]["accuracy"]
    return f"{mean:.3f} ± {sd:.3f}"


def _time(result: dict) -> str:
    t = result.get("timing")
    if not t:
        return f"{result['seconds']:.0f} s wall"
    return (f"{t['wall_s'] / 60:.1f} min wall, {t['cpu_s'] / 60:.1f} min CPU "
            f"(load {t['load_before']:.1f} → {t['load_after']:.1f})")  # fmt: skip


def _summary(results: dict[str, dict]) -> list[str]:
    lines = [
        "| task | model | accuracy, mean ± sd over 10 folds | pooled OOF accuracy | target "
        "| time | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, (name, target) in TASKS.items():
        for suffix, label in (("", "ConvRNN"), ("-hgb", "band powers + HistGradientBoosting")):
            result = results.get(name + suffix)
            if result is None:
                continue
            mean = result["val_fold_mean_sd"]["accuracy"][0]
            status = (
                "(baseline)" if suffix
                else f"≥ {target}: met" if mean >= target
                else f"≥ {target}: **missed** by {target - mean:.3f}"
            )  # fmt: skip
            command = f"`medseq train configs/{name}{suffix}.toml`"
            lines.append(
                f"| {task} | {label} | {_acc(result)} | {result['val_metrics']['accuracy']:.3f} "
                f"| {status} | {_time(result)} | {command} |"
            )
    for name, (task, label, command) in POST_HOC.items():
        result = results.get(name)
        if result is not None:
            lines.append(
                f"| {task} | {label} | {_acc(result)} | {result['val_metrics']['accuracy']:.3f} "
                f"| (post hoc) | {_time(result)} | `{command}` |"
            )
    return lines


def _per_class(result: dict) -> list[str]:
    names, m = result["class_names"], result["val_metrics"]
    lines = ["| class | precision | recall | F1 |", "|---|---|---|---|"]
    for k, name in enumerate(names):
        key = name if f"recall_{name}" in m else str(k)
        lines.append(f"| {name} | {m[f'precision_{key}']:.3f} | {m[f'recall_{key}']:.3f} "
                     f"| {m[f'f1_{key}']:.3f} |")  # fmt: skip
    return lines


def _confusion(result: dict, names: list[str]) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, result["val_confusion"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(int(v)) for v in row) + " |")
    return lines


def _binary(result: dict) -> list[str]:
    m = result["val_metrics"]
    keys = ("accuracy", "auroc", "recall", "specificity", "precision", "f1")
    cells = ", ".join(f"{k} {m[k]:.3f}" for k in keys)
    return [f"Pooled out-of-fold, at the Youden threshold {result['threshold']:.3f} chosen on "
            f"them: {cells}."]  # fmt: skip


def section(results: dict[str, dict]) -> str:
    """The markdown of the Bonn section (between the markers)."""
    out = [BEGIN, "## Bonn EEG (Andrzejak et al. 2001): seizure and five-set classification", ""]
    notes = NOTES.replace("{five_set_stop_loss}", _stop_loss("bonn-eeg-five-set"))
    out += notes.strip().splitlines()
    out += ["", "### Results (out-of-fold, 10 folds by segment)", "", *_summary(results), ""]
    out += [*MISSED.strip().splitlines(), ""]
    for name in ("bonn-eeg-seizure", "bonn-eeg-seizure-hgb", *POST_HOC):
        if name in results:
            out += [f"#### `{name}`", "", *_binary(results[name]), ""]
    for name in ("bonn-eeg-five-set", "bonn-eeg-five-set-hgb"):
        if name in results:
            names = results[name]["class_names"]
            out += [f"#### `{name}`: per class", "", *_per_class(results[name]), ""]
            out += [
                "Confusion matrix (pooled out-of-fold):",
                "",
                *_confusion(results[name], names),
                "",
            ]
    return "\n".join([*out, END])


def write(results: dict[str, dict]) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# EEG benchmarks\n\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        text = head + section(results) + rest.partition(END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + section(results) + "\n"
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", action="store_true", help="run every config again")
    parser.add_argument("--write-only", action="store_true", help="only rebuild the markdown")
    parser.add_argument("--only", nargs="*", default=None, help="run only these configs")
    args = parser.parse_args()
    results = {}
    results |= {n: r for n in POST_HOC if (r := _load(n)) is not None}
    for name, _ in TASKS.values():
        for run in (name + "-hgb", name):
            result = _load(run)
            wanted = args.only is None or run in args.only
            if wanted and not args.write_only and (args.rerun or result is None):
                result = _run(run)
            if result is not None:
                results[run] = result
    write(results)


if __name__ == "__main__":
    main()
