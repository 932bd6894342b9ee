"""The ``medseq`` command: each command parses its arguments, calls one library function, prints."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from medseq import __version__

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
        except (ValueError, FileNotFoundError, KeyError) as err:
            typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
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


@app.command()
@_friendly_errors
def train(
    config: Annotated[Path, typer.Argument(help="Experiment TOML, e.g. configs/gru.toml.")],
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", "-o", help="Overrides the config's output_dir.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoints.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train, select on validation, test once, save the bundle and print the metrics table."""
    from dataclasses import replace

    from medseq.experiment import load_config, run_experiment

    _setup_logging(verbose)
    cfg = load_config(config)
    if output_dir is not None:
        cfg = replace(cfg, output_dir=str(output_dir))
    result = run_experiment(cfg, resume=resume)
    threshold = "" if result.threshold is None else f", threshold {result.threshold:.3f}"
    if result.test_metrics:
        title = f"{result.name}: test metrics, 95% bootstrap CI{threshold}"
        _print_metrics(title, result.test_metrics)
    else:
        typer.echo(f"\n{result.name}: validation (out-of-fold) metrics{threshold}")
        typer.echo("\n".join(f"{k}: {v:.4f}" for k, v in result.val_metrics.items()))
    typer.echo(f"\nbundle: {result.bundle_dir or '(baseline, none saved)'}")
    typer.echo(f"results: {Path(cfg.output_dir) / 'results.json'} ({result.seconds:.0f} s)")


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
) -> None:
    """Write one prediction per subject to a CSV file."""
    from medseq.experiment import predict_file

    frame = predict_file(bundle, data)
    frame.to_csv(output, index=False)
    typer.echo(f"wrote {len(frame)} predictions to {output}")


if __name__ == "__main__":  # pragma: no cover
    app()
