"""Experiments: one config in, a bundle and a metrics table out."""

from medseq.experiment.config import ExperimentConfig, load_config, parse_config
from medseq.experiment.inference import evaluate_bundle, predict_file
from medseq.experiment.runner import ExperimentResult, run_experiment

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "evaluate_bundle",
    "load_config",
    "parse_config",
    "predict_file",
    "run_experiment",
]
