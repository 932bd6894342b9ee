"""The ``medseq`` command: each command parses its arguments, calls one library function, prints."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from medseq import __version__
from medseq._imports import missing_extra_message

app = typer.Typer(
    name="medseq",
    help="Recurrent neural networks for healthcare sequences.",
    no_args_is_help=True,
    add_completion=False,
)


F = TypeVar("F", bound=Callable[..., None])


def _friendly_errors(command: F) -> F:
    """Turn input errors into one clear line and exit code 2 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ModuleNotFoundError as err:
            typer.secho(missing_extra_message(err), err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None
        except (ValueError, FileNotFoundError, KeyError) as err:
            typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    # torchrun ranks > 0 log warnings only. RANK is read here, as
    # medseq.training.distributed.is_rank_zero does, so that `serve`, `export` and
    # `predict --runtime onnx` never import the training stack.
    rank_zero = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if verbose and rank_zero else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _print_metrics(title: str, metrics: dict) -> None:
    from medseq.evaluation import format_table

    typer.echo(f"\n{title}")
    typer.echo(format_table(metrics))


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"medseq {__version__}")
        raise typer.Exit()


def _validation_lines(pooled: dict[str, float], extra: dict) -> str:
    """Pooled validation metrics, with the per-fold mean and sd beside them under CV."""
    spread = extra.get("val_fold_mean_sd", {})
    folds = len(extra.get("val_folds", []))
    lines = []
    for name, value in pooled.items():
        line = f"{name}: {value:.4f}"
        if name in spread:
            mean, sd = spread[name]
            line += f"   ({folds} folds: {mean:.4f} ± {sd:.4f})"
        lines.append(line)
    return "\n".join(lines)


def _print_baseline(name: str, baseline: dict | None) -> None:
    """The [baseline] fitted beside the model on the same folds, when the config has one:
    its test metrics (when the run scored a test part), then its validation lines."""
    if not baseline:
        return
    threshold = "" if baseline["threshold"] is None else f", threshold {baseline['threshold']:.3f}"
    if baseline["test_metrics"]:
        title = f"{name}: baseline {baseline['kind']}, test metrics, 95% bootstrap CI{threshold}"
        _print_metrics(title, baseline["test_metrics"])
    typer.echo(f"\nbaseline {baseline['kind']} ({baseline['features']}), same folds, validation:")
    typer.echo(_validation_lines(baseline["val_metrics"], baseline))


@app.command()
@_friendly_errors
def train(
    config: Annotated[Path, typer.Argument(help="Experiment TOML, e.g. configs/gru.toml.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Overrides the config's output_dir.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoints.")] = False,
    no_test: Annotated[
        bool,
        typer.Option(
            "--no-test",
            help="Selection run: validation (out-of-fold) metrics only, the test set is not "
            "read or predicted ([data] score_test = false).",
        ),
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one config value, section.key=value as TOML (repeatable), e.g. "
            "--set train.epochs=2 --set data.max_subjects=500.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train, select on validation, test once, save the bundle and print the metrics table."""
    from dataclasses import replace

    from medseq.experiment import load_config, run_experiment
    from medseq.training.distributed import is_rank_zero

    _setup_logging(verbose)
    cfg = load_config(config, overrides or ())
    if output_dir is not None:
        cfg = replace(cfg, output_dir=str(output_dir))
    if no_test:
        cfg = replace(cfg, data=replace(cfg.data, score_test=False))
    result = run_experiment(cfg, resume=resume)
    if not is_rank_zero():  # under torchrun, rank 0 alone prints
        return
    threshold = "" if result.threshold is None else f", threshold {result.threshold:.3f}"
    if result.test_metrics:
        title = f"{result.name}: test metrics, 95% bootstrap CI{threshold}"
        _print_metrics(title, result.test_metrics)
    else:
        typer.echo(f"\n{result.name}: validation (out-of-fold) metrics{threshold}")
        typer.echo(_validation_lines(result.val_metrics, result.extra))
    matrix = result.extra.get("test_confusion") or result.extra.get("val_confusion")
    if matrix is not None:
        names = result.extra["class_names"]
        which = "test" if "test_confusion" in result.extra else "validation"
        typer.echo(f"\nconfusion matrix ({which}; rows true, columns predicted): {names}")
        typer.echo(
            "\n".join(
                f"{name:>6} " + " ".join(f"{v:7d}" for v in row)
                for name, row in zip(names, matrix, strict=True)
            )
        )
    _print_baseline(result.name, result.extra.get("baseline"))
    typer.echo(f"\nbundle: {result.bundle_dir or '(baseline, none saved)'}")
    typer.echo(f"results: {Path(cfg.output_dir) / 'results.json'} ({result.seconds:.0f} s)")


@app.command()
@_friendly_errors
def cohort(
    config: Annotated[Path, typer.Argument(help="Experiment TOML with a [task] table.")],
    labels_out: Annotated[
        Path | None,
        typer.Option("--labels-out", help="Write the labels here (MEDS label schema, parquet)."),
    ] = None,
    hour0: Annotated[
        str | None,
        typer.Option(help="Date-time of every subject's hour 0, for relative times."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Print a config task's cohort table, samples and prevalence (nothing is trained)."""
    from medseq.experiment import load_config
    from medseq.experiment.task_cohort import task_cohort, write_meds_labels

    _setup_logging(verbose)
    result = task_cohort(load_config(config))
    typer.echo("| step | excluded | remaining | subjects |\n|---|---:|---:|---:|")
    for row in result.cohort.itertuples(index=False):
        typer.echo(f"| {row.step} | {row.n_excluded} | {row.n_remaining} | {row.n_subjects} |")
    n, n_pos = len(result.labels), int(result.labels.sum())
    n_subjects = result.samples["subject_id"].nunique()
    typer.echo(
        f"\nsamples: {n} of {n_subjects} subjects, positive: {n_pos}, "
        f"prevalence: {result.prevalence:.3f}"
    )
    if labels_out is not None:
        typer.echo(f"labels: {write_meds_labels(result, labels_out, hour0)}")


@app.command()
@_friendly_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    data: Annotated[Path, typer.Option("--data", help="A labelled set (folder or .tar.gz).")],
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
) -> None:
    """Metrics with 95% CIs of a saved bundle on a labelled set, at the bundle's threshold."""
    from medseq.experiment import evaluate_bundle

    _print_metrics(f"{bundle} on {data}", evaluate_bundle(bundle, data, n_boot=n_boot))


@app.command()
@_friendly_errors
def predict(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    data: Annotated[Path, typer.Option("--data", help="A set to score (folder or .tar.gz).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV to write.")] = Path(
        "predictions.csv"
    ),
    runtime: Annotated[
        str, typer.Option(help="torch, or onnx (ONNX Runtime, no torch; `medseq export` first).")
    ] = "torch",
    coverage: Annotated[
        float | None,
        typer.Option(help="Add conformal sets (intervals) at this coverage, e.g. 0.9."),
    ] = None,
    mondrian: Annotated[
        bool, typer.Option(help="Class-conditional sets: the coverage holds per true class.")
    ] = False,
) -> None:
    """Write one prediction per subject to a CSV file."""
    if runtime not in ("torch", "onnx"):
        raise ValueError(f"--runtime must be 'torch' or 'onnx', got {runtime!r}")
    if runtime == "onnx":
        from medseq.serving.onnx import predict_file_onnx as predict_file
    else:
        from medseq.experiment import predict_file

    frame = predict_file(bundle, data)
    if coverage is not None:
        from medseq.evaluation.conformal import conformal_columns

        manifest = json.loads((bundle / "medseq.json").read_text())  # verified on loading
        frame = conformal_columns(
            frame, manifest.get("conformal"), manifest["task"], coverage,
            class_names=manifest.get("class_names"), mondrian=mondrian,
        )  # fmt: skip
    frame.to_csv(output, index=False)
    typer.echo(f"wrote {len(frame)} predictions to {output}")


@app.command()
@_friendly_errors
def export(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    fmt: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Default: BUNDLE/model.onnx.")
    ] = None,
) -> None:
    """Export a bundle's models (all members, averaged) to ONNX."""
    if fmt != "onnx":
        raise ValueError(f"--format must be 'onnx', got {fmt!r}")
    from medseq.serving.onnx import export_onnx

    typer.echo(f"wrote {export_onnx(bundle, output)}")


@app.command()
@_friendly_errors
def serve(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    state_db: Annotated[
        str, typer.Option("--state-db", help="SQLite file of streaming states.")
    ] = "medseq-state.sqlite",
    token_file: Annotated[
        Path | None,
        typer.Option(help="File of bearer tokens, one a line (also $MEDSEQ_SERVE_TOKENS)."),
    ] = None,
    synchronous: Annotated[
        str, typer.Option(help="SQLite synchronous: NORMAL (process crash) or FULL (power loss).")
    ] = "NORMAL",
    alert_threshold: Annotated[
        float | None, typer.Option(help="Alert on at this risk (default: bundle threshold).")
    ] = None,
    alert_hysteresis: Annotated[
        float, typer.Option(help="Alert off only below threshold minus this.")
    ] = 0.02,
    alert_onset_steps: Annotated[
        int, typer.Option(help="Per-step streaming: alert on after this many steps above.")
    ] = 1,
    alert_clear_steps: Annotated[
        int, typer.Option(help="Per-step streaming: alert off after this many steps below.")
    ] = 1,
    max_body_bytes: Annotated[int, typer.Option(help="Larger requests get 413.")] = 8 << 20,
    drift_window: Annotated[
        int, typer.Option(help="Served samples in the drift window (GET /v1/drift).")
    ] = 100,
    drift_psi: Annotated[
        float, typer.Option(help="Population stability index at which a feature drifts.")
    ] = 0.25,
    drift_alpha: Annotated[
        float, typer.Option(help="Family-wise level of the drift tests (Bonferroni).")
    ] = 1e-5,
    worker_threads: Annotated[
        int, typer.Option(help="Requests parsed and scored at once, off the event loop.")
    ] = 4,
    max_connections: Annotated[
        int, typer.Option(help="Open connections; one more is answered 503 and closed.")
    ] = 512,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a request's headers may take; then closed.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request's body may take after its headers.")
    ] = 60.0,
    max_cached_patients: Annotated[
        int, typer.Option(help="Streaming states kept in memory (the rest reload from SQLite).")
    ] = 10_000,
    warm_patients: Annotated[
        int, typer.Option(help="Of those, kept live; the others are held packed (lossless).")
    ] = 1_000,
    max_cached_streams: Annotated[
        int, typer.Option(help="Signal-stream detectors kept in memory (the rest reload).")
    ] = 1000,
    retention_hours: Annotated[
        float | None, typer.Option(help="Delete stays without an update for this long.")
    ] = None,
    retention_sweep_seconds: Annotated[
        float, typer.Option(help="Interval of the retention sweep.")
    ] = 300.0,
    group_commit: Annotated[
        bool, typer.Option(help="Streaming updates arriving together share one commit.")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve a bundle over REST: batch, FHIR and streaming prediction."""
    from medseq.drift.window import DriftSettings
    from medseq.serving.server import serve as run_server
    from medseq.serving.settings import ServeSettings, read_tokens

    _setup_logging(verbose)
    drift = DriftSettings(
        window=drift_window, min_samples=max(1, drift_window // 2), psi=drift_psi, alpha=drift_alpha
    )
    settings = ServeSettings(
        tokens=read_tokens(token_file),
        state_db=state_db,
        synchronous=synchronous,
        max_body_bytes=max_body_bytes,
        alert_threshold=alert_threshold,
        alert_hysteresis=alert_hysteresis,
        alert_onset_steps=alert_onset_steps,
        alert_clear_steps=alert_clear_steps,
        drift=drift,
        worker_threads=worker_threads,
        max_connections=max_connections,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_cached_patients=max_cached_patients,
        warm_patients=warm_patients,
        max_cached_streams=max_cached_streams,
        retention_hours=retention_hours,
        retention_sweep_seconds=retention_sweep_seconds,
        group_commit=group_commit,
    )
    typer.echo(f"medseq serve: http://{host}:{port} (state: {state_db})")
    run_server(bundle, settings, host, port)


@app.command()
@_friendly_errors
def report(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    data: Annotated[Path, typer.Option("--data", help="The labelled internal test set.")],
    external: Annotated[
        Path | None, typer.Option(help="A labelled set from another site or period.")
    ] = None,
    validation: Annotated[
        Path | None,
        typer.Option(help="Labelled data to fit a calibration when the bundle has none."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs.")] = 1000,
    max_subjects: Annotated[
        int | None, typer.Option(help="First N subjects of each set only (quick looks).")
    ] = None,
    update_bundle: Annotated[
        bool, typer.Option(help="Store the model card and calibration in the bundle.")
    ] = True,
    coverage: Annotated[
        float, typer.Option(help="Requested coverage of the conformal sets checked.")
    ] = 0.9,
) -> None:
    """Self-contained HTML report: metrics, calibration, subgroups, drift, explanations."""
    from medseq.report import ReportConfig, build_report

    config = ReportConfig(
        n_boot=n_boot, max_subjects=max_subjects, update_bundle=update_bundle, coverage=coverage
    )
    result = build_report(
        bundle, data, external=external, validation=validation, output=output, config=config
    )
    for note in result.notes:
        typer.echo(f"note: {note}")
    folder = next(iter(result.figure_paths.values())).parent
    typer.echo(f"wrote {result.html_path} and {len(result.figure_paths)} figures in {folder}")
    if update_bundle:
        typer.echo(f"model card stored in {bundle}")


@app.command()
@_friendly_errors
def explain(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory saved by `medseq train`.")],
    data: Annotated[Path, typer.Option("--data", help="The set holding the subject.")],
    subject: Annotated[int, typer.Option("--subject", help="The subject_id to explain.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Default: explain-<ID>/.")
    ] = None,
    n_steps: Annotated[int, typer.Option(help="Integrated-gradients steps.")] = 64,
    step: Annotated[
        int | None,
        typer.Option(
            help="Per-step models: the step (e.g. ICU hour) to explain; default: "
            "the step of highest risk."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Token and beat-feature models: the class or label to explain; "
            "default: the predicted one(s)."
        ),
    ] = None,
) -> None:
    """Why the model gave this risk: attributions per variable and hour, attention, figures.

    For a slice-stack bundle (volumes): attention and occlusion per slice of sample SUBJECT.
    For a RETAIN bundle (histories): visit attention and each code's contribution to the logit
    of sample SUBJECT (a subject_id for mortality). For a waveform (ConvRNN) bundle: the drop
    of the call when each second of recording SUBJECT is blanked (occlusion).
    For a beat-feature bundle: integrated gradients per beat and per named beat feature, the
    top beats against time in the recording. For a SMILES bundle: integrated gradients per
    token for the predicted assay(s) (or --target).
    For a sequence-labelling bundle (a class per step, e.g. sleep epochs of a night, ICU
    hours): labels and predictions per step, input occlusion per class, how far the context
    reaches, and the prediction at one step (--step) attributed to every earlier step and
    input by integrated gradients.
    """
    from medseq.capabilities import require_bundle_stage
    from medseq.explain.dispatch import explain_any

    require_bundle_stage(bundle, "explain")
    result, written = explain_any(
        bundle, data, subject, output_dir=output_dir, n_steps=n_steps, step=step, target=target
    )
    typer.echo(result.summary())
    typer.echo("wrote " + ", ".join(str(p) for p in written))


@app.command()
@_friendly_errors
def capabilities(
    fmt: Annotated[str, typer.Option("--format", help="text or markdown.")] = "text",
    write_readme: Annotated[
        Path | None, typer.Option(help="Put the table between the README's capability markers.")
    ] = None,
) -> None:
    """Which stage works for which dataset (datasets × stages), and why not where not."""
    from medseq.capabilities import show

    typer.echo(show(fmt, write_readme), nl=False)


class _FederateGroup(typer.core.TyperGroup):
    """``medseq federate CONFIG`` means ``medseq federate simulate CONFIG``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["simulate", *args]
        return super().parse_args(ctx, args)


@app.command()
@_friendly_errors
def monitor(
    bundle: Annotated[Path, typer.Argument(help="A beat bundle saved by `medseq train`.")],
    record: Annotated[
        str, typer.Option(help="WFDB record (folder/NAME: MIT-BIH .dat, CinC .mat), or - (stdin).")
    ],
    speed: Annotated[
        float, typer.Option(help="Seconds of record per second of wall time; 0: no waiting.")
    ] = 0.0,
    lead: Annotated[str | None, typer.Option(help="Lead to read (default: the bundle's).")] = None,
    fs: Annotated[float | None, typer.Option(help="Sampling rate (Hz), for stdin.")] = None,
    beats: Annotated[bool, typer.Option(help="Print every beat, not only alerts.")] = False,
    runtime: Annotated[
        str, typer.Option(help="Beat model: numpy (bundle weights) or onnx (BUNDLE/model.onnx).")
    ] = "numpy",
    af_model: Annotated[
        Path | None, typer.Option(help="AF model JSON (benchmarks/train_af_rr.py); else a rule.")
    ] = None,
) -> None:
    """Replay a record as a stream through the bundle's detector and print alerts as they happen.

    Runs without torch (numpy and scipy only), as on an edge device.
    """
    import sys

    from medseq.monitoring.replay import monitor as run_monitor

    _setup_logging(False)
    lines = run_monitor(
        bundle,
        record,
        speed=speed,
        lead=lead,
        fs_hz=fs,
        show_beats=beats,
        stdin=sys.stdin,
        runtime=runtime,
        af_model=af_model,
    )
    for line in lines:
        typer.echo(line)


federate_app = typer.Typer(
    cls=_FederateGroup,
    help="Federated training across sites (Flower): simulate, or run a server and site clients.",
    no_args_is_help=True,
)
app.add_typer(federate_app, name="federate")
FederateConfig = Annotated[Path, typer.Argument(help="Federated TOML: configs/federated.toml.")]
Address = Annotated[str, typer.Option(help="Server host:port (loopback for a local try).")]


def _print_federated(result) -> None:
    from medseq.federated.simulation import summary

    typer.echo(summary(result))


@federate_app.command("simulate")
@_friendly_errors
def federate_simulate(
    config: FederateConfig, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False
) -> None:
    """Simulate server and sites on this machine (Flower's simulation engine)."""
    from medseq.federated import load_federated
    from medseq.federated.simulation import run_simulation

    _setup_logging(verbose)
    _print_federated(run_simulation(load_federated(config)))


@federate_app.command("server")
@_friendly_errors
def federate_server(
    config: FederateConfig,
    address: Address = "127.0.0.1:8080",
    sites: Annotated[int, typer.Option(help="Sites to wait for before the first round.")] = 4,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve a federated run to site processes over gRPC; write the results when done."""
    from medseq.federated import load_federated
    from medseq.federated.simulation import serve

    _setup_logging(verbose)
    _print_federated(serve(load_federated(config), address, sites))


@federate_app.command("client")
@_friendly_errors
def federate_client(
    config: FederateConfig,
    site: Annotated[int, typer.Option(help="This process's site, 0-based in partition order.")],
    address: Address = "127.0.0.1:8080",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one site: train on its own partition in every round the server starts."""
    from medseq.federated import load_federated
    from medseq.federated.simulation import run_client

    _setup_logging(verbose)
    run_client(load_federated(config), site, address)
    typer.echo(f"site {site}: the server closed the run")


data_app = typer.Typer(
    help="Look at event data, or write it as MEDS, before training.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("inspect")
@_friendly_errors
def data_inspect(
    path: Annotated[
        Path,
        typer.Argument(help="FHIR files (folder, .json, .tar.xz), MEDS, or a flat mapping TOML."),
    ],
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment TOML: its reader and task.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="fhir_r4, meds_events or flat_events (default: from the path)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the card as HTML with plots.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Print a dataset card: subjects, events, codes, time span, missingness, units, cohort."""
    from medseq.experiment import load_config
    from medseq.experiment.task_cohort import inspect_data
    from medseq.tasks.data_card import card_html, card_text

    _setup_logging(verbose)
    card = inspect_data(
        path, config=None if config is None else load_config(config), dataset=dataset
    )
    typer.echo(card_text(card))
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(card_html(card), encoding="utf-8")
        typer.echo(f"\nhtml: {html}")


@data_app.command("meds")
@_friendly_errors
def data_meds(
    path: Annotated[
        Path,
        typer.Argument(help="FHIR files (folder, .json, .tar.xz), MEDS, or a flat mapping TOML."),
    ],
    out: Annotated[Path, typer.Argument(help="The MEDS folder to write (data/, metadata/).")],
    dataset: Annotated[
        str | None,
        typer.Option(help="fhir_r4, meds_events or flat_events (default: from the path)."),
    ] = None,
    hour0: Annotated[
        str | None,
        typer.Option(help="Date-time of every subject's hour 0, for relative times."),
    ] = None,
    subjects_per_shard: Annotated[
        int | None, typer.Option(help="Subjects per data/<k>.parquet (default: one file).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write event data as a MEDS folder, for MEDS tools and `dataset = "meds_events"`."""
    from medseq.experiment.task_cohort import export_meds

    _setup_logging(verbose)
    root = export_meds(
        path, out, dataset=dataset, hour0=hour0, subjects_per_shard=subjects_per_shard
    )
    typer.echo(f"MEDS: {root}")


if __name__ == "__main__":  # pragma: no cover
    app()
