"""``build_report``: one bundle, one or two labelled sets -> one self-contained HTML file.

The report answers what a clinician asks before trusting a risk score: how well does it
discriminate (metrics with CIs, ROC/PR), are its risks right (calibration), is it worth
acting on (decision curve), for whom does it fail (subgroups), does it hold elsewhere
(external set, drift), what data does it lack (missingness), and why did it fire
(attributions). The numbers also go into the bundle's model card.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medseq.report import generic, insight, regression, sections
from medseq.report.datasets import EvaluatedSet, load_set, training_overlap
from medseq.report.html import render_html
from medseq.report.model_card import build_model_card, render_markdown
from medseq.report.uncertainty import uncertainty_section

logger = logging.getLogger(__name__)
CALIBRATION_METHODS = ("temperature", "platt")


@dataclass(frozen=True)
class ReportConfig:
    """Settings of :func:`build_report`.

    Parameters
    ----------
    n_boot : int, default=1000
        Bootstrap resamples for every CI (metrics and subgroups).
    n_bins : int, default=10
        Bins of the reliability diagram and of the ECE.
    calibration_method : {"temperature", "platt"}, default="temperature"
        Used only when the bundle has no calibration and a validation set is given.
    max_subjects : int or None, default=None
        Keep the first subjects of each set by id (quick looks and tests only).
    n_explain : int, default=200
        Stays sampled for global importance and the deletion check.
    ig_steps : int, default=32
        Integration points of integrated gradients.
    deletion_k : int, default=10
        Cells deleted per stay in the faithfulness check.
    random_state : int, default=0
    update_bundle : bool, default=True
        Store the model card (and a calibration fitted here) in the bundle.
    coverage : float, default=0.9
        Requested coverage of the conformal sets or intervals checked in the report.
    """

    n_boot: int = 1000
    n_bins: int = 10
    calibration_method: str = "temperature"
    max_subjects: int | None = None
    n_explain: int = 200
    ig_steps: int = 32
    deletion_k: int = 10
    random_state: int = 0
    update_bundle: bool = True
    coverage: float = 0.9

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration_method must be one of {CALIBRATION_METHODS}, "
                f"got {self.calibration_method!r}"
            )
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"ReportConfig: coverage must be in (0, 1), got {self.coverage!r}")
        for name in ("n_boot", "n_bins", "n_explain", "ig_steps", "deletion_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")


@dataclass
class Report:
    """What :func:`build_report` produced."""

    html_path: Path
    figure_paths: dict[str, Path]
    model_card: dict[str, Any]
    sets: dict[str, dict[str, Any]]
    subgroups: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    uncertainty: dict[str, Any] | None = None


def _calibrate(
    bundle, validation: str | os.PathLike | None, internal: EvaluatedSet, config: ReportConfig
) -> list[str]:
    """Fit a calibration on ``validation`` when the bundle has none; notes for the reader."""
    from medseq.evaluation.calibration import fit_calibration

    if bundle.task == "regression":
        return _regression_calibration_note(validation)
    if bundle.task in generic.MULTI_TASKS:
        if validation is None:
            return []
        return [f"--validation was ignored: {bundle.task} probabilities are not recalibrated."]
    if bundle.calibration is not None:
        if validation is not None:
            return ["The bundle's stored calibration was used; --validation was ignored."]
        return []
    if validation is None:
        return [
            "No calibration is stored in the bundle and no validation set was given: risks "
            "are reported uncalibrated (pass --validation to fit one)."
        ]
    val = load_set(bundle, validation, name="validation", max_subjects=config.max_subjects)
    params = fit_calibration(val.y, val.risk, method=config.calibration_method)
    bundle.calibration = params | {"fitted_on": str(validation), "fitted_by": "medseq report"}
    overlap = training_overlap(bundle, val)
    return [f"Calibration fitted on {validation}." + (f" Caution: {overlap}." if overlap else "")]


def _regression_calibration_note(validation: str | os.PathLike | None) -> list[str]:
    """A regression bundle has no risk to recalibrate: say why ``validation`` is unused."""
    if validation is None:
        return []
    return ["--validation was ignored: a regression bundle has no calibration map to fit."]


def _check_distinct(data: str | os.PathLike, validation: str | os.PathLike | None) -> None:
    """Refuse, before any work, to fit a calibration on the evaluation set itself."""
    from medseq.experiment.data import file_sha256, resolve_data_path

    if validation is None:
        return
    if file_sha256(resolve_data_path(validation)) == file_sha256(resolve_data_path(data)):
        raise ValueError(
            f"--validation {validation} is the evaluation set itself: a calibration fitted "
            "on the test set is perfect by construction; pass a separate validation set"
        )


def _load_sets(
    bundle, data: str | os.PathLike, external: str | os.PathLike | None, config: ReportConfig
) -> tuple[dict[str, EvaluatedSet], list[str]]:
    gap = generic.time_grid_gap(bundle)
    if bundle.task == "regression" and gap is not None:
        raise ValueError(
            f"medseq report covers regression bundles on a time grid of named variables "
            f"only, and for dataset {bundle.dataset!r} {gap}"
        )
    if bundle.task == "binary" and bundle.threshold is None:
        raise ValueError("the bundle has no decision threshold; retrain it with `medseq train`")
    limit = config.max_subjects
    sets = {"internal": load_set(bundle, data, name="internal test", max_subjects=limit)}
    if external is not None:
        sets["external"] = load_set(bundle, external, name="external", max_subjects=limit)
    notes = [w for w in (training_overlap(bundle, ev) for ev in sets.values()) if w]
    return sets, notes


def _save_card(bundle, bundle_dir: Path, card: dict[str, Any]) -> None:
    from medseq.bundle import save_bundle

    bundle.model_card = card
    bundle.model_card_markdown = render_markdown(card)
    save_bundle(bundle, bundle_dir)
    logger.info("model card and calibration stored in %s", bundle_dir)


def _write_figures(figs: dict[str, bytes], html_path: Path) -> dict[str, Path]:
    folder = html_path.with_name(html_path.stem + "_figures")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, png in figs.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(png)
    return paths


def build_report(
    bundle_dir: str | os.PathLike,
    data: str | os.PathLike,
    *,
    external: str | os.PathLike | None = None,
    validation: str | os.PathLike | None = None,
    output: str | os.PathLike = "report.html",
    config: ReportConfig | None = None,
) -> Report:
    """Evaluate, explain and document a bundle; write the HTML report and its figures.

    Parameters
    ----------
    bundle_dir : path
        A bundle saved by ``medseq train``.
    data : path
        The internal test set (labelled; never the training data).
    external : path, optional
        A set from another site or period: the same metrics side by side, and the drift.
    validation : path, optional
        Labelled data, separate from ``data``, to fit a calibration when the bundle has
        none (then stored in the bundle when ``config.update_bundle``).
    output : path, default="report.html"
        The HTML file; PNG figures go to ``<stem>_figures/`` beside it.
    config : ReportConfig, optional

    Returns
    -------
    Report
        Paths written, the model card and the numbers of each section.
    """
    from medseq.bundle import MANIFEST_FILE, load_bundle

    config = config or ReportConfig()
    _check_distinct(data, validation)
    bundle_dir = Path(bundle_dir)
    bundle = load_bundle(bundle_dir)
    original_hash = _manifest_hash(bundle_dir / MANIFEST_FILE)
    sets, notes = _load_sets(bundle, data, external, config)
    notes += _calibrate(bundle, validation, sets["internal"], config)
    if bundle.task in generic.MULTI_TASKS or not generic.has_time_grid(bundle):
        return _build_generic(bundle, bundle_dir, sets, notes, original_hash, output, config)
    context, figs = _compute(bundle, sets, config, notes)
    card = build_model_card(
        bundle,
        sets=context["sets"],
        subgroups=context["subgroups"],
        notes=notes,
        bundle_sha256=original_hash,
        explanations={k: context["explanations"][k] for k in ("importance", "faithfulness")},
    )
    if config.update_bundle:
        _save_card(bundle, bundle_dir, card)
    html_path = Path(output)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    context |= {"bundle": bundle, "bundle_dir": str(bundle_dir), "card": card, "notes": notes}
    context |= {"calibration": bundle.calibration, "config": config}
    template = "report.html.j2" if bundle.task == "binary" else "report_regression.html.j2"
    html_path.write_text(render_html(context, figs, template=template), encoding="utf-8")
    paths = _write_figures(figs, html_path)
    return Report(
        html_path, paths, card, context["sets"], context["subgroups"], notes,
        context["uncertainty"],
    )  # fmt: skip


def _build_generic(bundle, bundle_dir, sets, notes, original_hash, output, config) -> Report:
    """The report of a non-ICU or multiclass/multilabel bundle (:mod:`medseq.report.generic`)."""
    summaries, figs = _evaluate(bundle, sets, config)
    uncertainty, unc_figs = _uncertainty(bundle, sets, config)
    drift = summaries.pop("drift", None) if bundle.task == "binary" else None
    if drift is not None:
        notes += sections.drift_notes(drift)
    card = build_model_card(bundle, sets=summaries, notes=notes, bundle_sha256=original_hash)
    if config.update_bundle:
        _save_card(bundle, bundle_dir, card)
    html_path = Path(output)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    context = {
        "sets": summaries,
        "drift": drift,
        "bundle": bundle,
        "bundle_dir": str(bundle_dir),
        "card": card,
        "notes": notes,
        "calibration": bundle.calibration,
        "config": config,
        "uncertainty": uncertainty,
    }
    html = render_html(context, figs | unc_figs, template="report_generic.html.j2")
    html_path.write_text(html, encoding="utf-8")
    paths = _write_figures(figs | unc_figs, html_path)
    return Report(html_path, paths, card, summaries, None, notes, uncertainty)


def _uncertainty(bundle, sets: dict[str, EvaluatedSet], config: ReportConfig):
    return uncertainty_section(
        bundle, sets, coverage=config.coverage, n_boot=config.n_boot,
        random_state=config.random_state,
    )  # fmt: skip


def _compute(
    bundle, sets: dict[str, EvaluatedSet], config: ReportConfig, notes: list[str]
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Every section's numbers and figures; appends data-quality and drift notes."""
    summaries, figs = _evaluate(bundle, sets, config)
    drift = summaries.pop("drift", None)
    section = insight if bundle.task == "binary" else regression
    table, sub_figs = section.subgroup_section(
        bundle, sets["internal"], n_boot=config.n_boot, random_state=config.random_state
    )
    quality, static_quality, quality_figs = insight.quality_section(bundle, sets)
    if len(sets) > 1:
        flagged = quality.index[quality["flag"].astype(bool)]
        notes += [f"Missingness of {v} differs by 10+ points between the sets." for v in flagged]
    if drift is not None and bundle.task == "binary":
        notes += sections.drift_notes(drift)
    elif drift is not None:
        notes += regression.drift_notes(drift, regression.unit_for(_task(bundle)))
    explanations, explain_figs = insight.explanation_section(
        bundle,
        sets["internal"],
        n_explain=config.n_explain,
        ig_steps=config.ig_steps,
        k=config.deletion_k,
        random_state=config.random_state,
    )
    uncertainty, unc_figs = _uncertainty(bundle, sets, config)
    context = {
        "sets": summaries,
        "drift": drift,
        "uncertainty": uncertainty,
        "subgroups": table,
        "quality": quality,
        "static_quality": static_quality,
        "explanations": explanations,
        "unit": regression.unit_for(_task(bundle)),
    }
    return context, figs | sub_figs | quality_figs | explain_figs | unc_figs


def _task(bundle) -> str:
    return bundle.dataset_task


def _evaluate_regression(
    bundle, sets: dict[str, EvaluatedSet], config: ReportConfig
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Regression metrics of each set, their drift, and the regression figures."""
    summaries: dict[str, Any] = {
        role: regression.set_metrics(ev, n_boot=config.n_boot, random_state=config.random_state)
        for role, ev in sets.items()
    }
    if "external" in summaries:
        summaries["drift"] = regression.drift(summaries["internal"], summaries["external"])
    unit = regression.unit_for(_task(bundle))
    return summaries, regression.performance_figures(sets, config.n_bins, unit)


def _evaluate(
    bundle, sets: dict[str, EvaluatedSet], config: ReportConfig
) -> tuple[dict[str, Any], dict[str, bytes]]:
    if bundle.task == "regression":
        return _evaluate_regression(bundle, sets, config)
    summaries, figs = generic.evaluate_sets(bundle, sets, config)
    if "external" in summaries:
        summaries["drift"] = sections.drift(summaries["internal"], summaries["external"])
    return summaries, figs


def _manifest_hash(path: Path) -> str | None:
    import json

    return json.loads(path.read_text()).get("content_sha256")
