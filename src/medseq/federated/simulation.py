"""Run a federated experiment: Flower's simulation engine on one machine, or real processes.

:func:`run_simulation` starts Flower's Ray-based simulation engine with one virtual client
per site (each loads only its own partition), runs the statistics and training rounds, and
then :func:`finish` scores the selected global model once on the test set, overall and per
site, and saves the selected global model as a bundle (``output_dir/bundle``) that
``medseq evaluate``, ``predict`` and ``report`` read like any other. :func:`run_client` is
one site as its own process, talking gRPC to :func:`medseq.federated.server.start_server`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medseq.datasets.registry import get_dataset
from medseq.federated import local
from medseq.federated.client import class_names, make_model, model_config, numpy_client
from medseq.federated.config import FederatedExperiment
from medseq.federated.server import MedseqStrategy, make_strategy, n_server_rounds
from medseq.federated.sites import (
    load_site,
    make_partition,
    n_sites,
    protocol_data,
    protocol_test_ids,
    read_set,
)
from medseq.federated.threshold import threshold_from_counts

logger = logging.getLogger(__name__)

ClientFactory = Callable[[FederatedExperiment, int], Any]


@dataclass
class FederatedResult:
    """What a run gives: rounds, the selected round and, with a test set, its metrics."""

    name: str
    strategy: str
    sites: list[str]
    best_round: int | None
    best_val_auroc: float
    history: list[dict[str, Any]]
    test_auroc: float | None = None
    test_site_auroc: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    epsilon: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    bundle_dir: str | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client_fn(experiment: FederatedExperiment, factory: ClientFactory) -> Callable[[Any], Any]:
    def client_fn(context: Any) -> Any:
        import torch

        torch.set_num_threads(1)
        experiment.register_task()  # a worker process has not parsed the experiment file
        return factory(experiment, int(context.node_config["partition-id"])).to_client()

    return client_fn


def run_simulation(
    experiment: FederatedExperiment,
    *,
    client_factory: ClientFactory = numpy_client,
    parallel_clients: int = 1,
) -> FederatedResult:
    """Simulate the run with Flower's engine; ``parallel_clients`` sites train at once.

    ``parallel_clients=1`` keeps the run on one core (each virtual client gets both of Ray's
    CPUs, so they take turns), which is the polite setting on a shared machine.
    """
    from flwr.server import ServerConfig
    from flwr.simulation import start_simulation

    start = time.perf_counter()
    count = n_sites(experiment)
    strategy = make_strategy(experiment, count)
    cpus = max(1, int(parallel_clients))
    start_simulation(
        client_fn=_client_fn(experiment, client_factory),
        num_clients=count,
        config=ServerConfig(num_rounds=n_server_rounds(experiment)),
        strategy=strategy,
        client_resources={"num_cpus": cpus},
        ray_init_args={
            "num_cpus": cpus,
            "include_dashboard": False,
            "log_to_driver": False,
            "ignore_reinit_error": True,
        },
    )
    return finish(experiment, strategy, start)


def finish(
    experiment: FederatedExperiment, strategy: MedseqStrategy, start: float
) -> FederatedResult:
    """Score the best-validation global model on the test set once; write results.json,
    the featurizer state and the bundle."""
    if strategy.best_parameters is None:
        raise RuntimeError("no training round was evaluated: every site failed?")
    featurizer = strategy.featurizer()
    result = FederatedResult(
        name=experiment.name,
        strategy=experiment.federated.strategy,
        sites=sorted({s for r in strategy.history for s in r.site_auroc}),
        best_round=strategy.best_round,
        best_val_auroc=float(strategy.best_val_auroc),
        history=[asdict(r) for r in strategy.history],
        epsilon=dict(strategy.history[-1].epsilon) if strategy.history else {},
    )
    if strategy.best_val_counts is not None:  # binary: chosen on validation, as centrally
        result.threshold = threshold_from_counts(strategy.best_val_counts)
    model = make_model(experiment, featurizer, seed=experiment.federated.seed)
    local.set_weights(model, strategy.best_parameters)
    if experiment.test or experiment.protocol:
        data, labels, prob = test_predictions(experiment, featurizer, model)
        result.test_auroc, result.test_site_auroc = site_aurocs(experiment, data, labels, prob)
        result.test_metrics = dataset_metrics(experiment, labels, prob)
    result.seconds = time.perf_counter() - start
    if experiment.output_dir:
        out = Path(experiment.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        if experiment.federated.privacy is None:
            result.bundle_dir = str(save_global_bundle(experiment, featurizer, model, result))
        else:  # Opacus' DP layers have other weight names than the plain model
            logger.warning("a private run saves no bundle: its DP layers are not a model kind")
        (out / "results.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
        (out / "featurizer.json").write_text(json.dumps(strategy.featurizer_state))
    return result


def save_global_bundle(
    experiment: FederatedExperiment, featurizer: Any, model: Any, result: FederatedResult
) -> Path:
    """The selected global model as ``output_dir/bundle``, with its dataset and task."""
    from medseq.bundle import Bundle, save_bundle
    from medseq.experiment.data import file_sha256, resolve_data_path

    spec = get_dataset(experiment.dataset)
    task_type = spec.task_type(experiment.task)
    paths = {"train": experiment.train, **({"test": experiment.test} if experiment.test else {})}
    bundle = Bundle(
        model_config=model_config(experiment, featurizer),
        featurizer=featurizer,
        members=[model.eval()],
        task=task_type,
        class_names=class_names(experiment),
        threshold=_bundle_threshold(task_type, result.threshold),
        metrics={"validation": {"auroc": result.best_val_auroc}},
        provenance={
            "dataset": experiment.dataset,
            "task": experiment.task,
            **({"task_definition": experiment.task_table} if experiment.task_table else {}),
            "files": {
                role: {"path": str(p), "sha256": file_sha256(resolve_data_path(p))}
                for role, p in paths.items()
            },
            **({"split": _split_provenance(experiment)} if experiment.protocol else {}),
            "federated": {
                "partition": experiment.federated.partition,
                "sites": result.sites,
                "strategy": experiment.federated.strategy,
                "best_round": result.best_round,
            },
        },
        train_config={**experiment.local_train, "federated": experiment.federated.to_dict()},
    )
    if spec.signal_streaming is not None:  # the model's input rate and lead (edge path)
        bundle.provenance["signal"] = spec.signal_streaming.input_signal(featurizer.state_dict())
    return save_bundle(bundle, Path(experiment.output_dir) / "bundle")


def _bundle_threshold(task_type: str, chosen: float | None) -> float | None:
    """The validation-chosen threshold of a binary bundle; 0.5 (with a warning) when the
    sites' validation could not choose one (one outcome only, or sites too old to send
    their score counts)."""
    if task_type != "binary":
        return None
    if chosen is None:
        logger.warning("no threshold was chosen on validation: the bundle keeps 0.5")
        return 0.5
    return chosen


def _split_provenance(experiment: FederatedExperiment) -> dict[str, Any]:
    """The bundle's ``split``: what ``medseq evaluate`` on the training file needs to keep
    only the protocol's test part (:mod:`medseq.experiment.evaluation_set`)."""
    data = protocol_data(experiment)
    return {
        "protocol": data.protocol,
        "val_fraction": data.val_fraction,
        "cv_folds": data.cv_folds,
        "split_seed": data.split_seed,
        "max_subjects": None,
    }


def test_scores(
    experiment: FederatedExperiment, featurizer: Any, model: Any
) -> tuple[float, dict[str, float]]:
    """Test AUROC (the task's) overall and per site (test samples partitioned like the
    training set; sites where it is undefined are left out). The test samples are the
    ``[data] test`` set, or under a ``[data] protocol`` its test part of the training set."""
    return site_aurocs(experiment, *test_predictions(experiment, featurizer, model))


def test_predictions(
    experiment: FederatedExperiment, featurizer: Any, model: Any
) -> tuple[Any, Any, np.ndarray]:
    """The test data, its labels and the model's probabilities (one row per label row):
    the ``[data] test`` set, or under a ``[data] protocol`` its test part of the training set."""
    spec = get_dataset(experiment.dataset)
    if experiment.protocol:
        data, labels = read_set(experiment, experiment.train)
        labels = labels.loc[protocol_test_ids(experiment)]
    else:
        data, labels = read_set(experiment, experiment.test)
    ids = labels.index.to_numpy(dtype=np.int64)
    arrays = local.featurise(spec, featurizer, data, ids, labels)
    task_type = spec.task_type(experiment.task)
    return data, labels, local.predict(model, arrays, experiment.local_train, task_type)


def dataset_metrics(experiment: FederatedExperiment, labels: Any, prob: np.ndarray) -> dict:
    """The dataset's own test figures (``spec.metrics``: e.g. the challenge F1, or the
    normalized utility of per-hour alarms at 0.5); empty when the spec has none."""
    spec = get_dataset(experiment.dataset)
    if spec.metrics is None:
        return {}
    y = labels.to_numpy(dtype=np.float32)
    try:
        figures = spec.metrics(experiment.task, y, prob)
    except ValueError as err:  # e.g. a test part too small for a figure: the AUROC stands
        logger.warning("%s: the dataset's test metrics were not computed: %s", spec.name, err)
        return {}
    return {k: float(v) for k, v in figures.items()}


def site_aurocs(
    experiment: FederatedExperiment, data: Any, labels: Any, prob: np.ndarray
) -> tuple[float, dict[str, float]]:
    """AUROC of ``prob`` (one row per sample of ``labels``) overall and within each site."""
    spec = get_dataset(experiment.dataset)
    task_type = spec.task_type(experiment.task)
    y = labels.to_numpy(dtype=np.float32)
    overall = local.mean_auroc(y, prob, task_type)
    whole = replace(experiment.federated, max_subjects_per_site=None)
    part = make_partition(spec, data, labels, whole)
    position = {int(sid): k for k, sid in enumerate(labels.index)}
    per_site: dict[str, float] = {}
    for name, site_ids in part.sites.items():
        rows = np.array([position[int(s)] for s in site_ids])
        value = local.mean_auroc(y[rows], prob[rows], task_type)
        if np.isfinite(value):
            per_site[name] = value
    return overall, per_site


def run_client(experiment: FederatedExperiment, site: int, address: str) -> None:
    """One site as its own process: connect to the server at ``address`` and serve rounds."""
    import torch
    from flwr.compat.client.app import start_client

    torch.set_num_threads(1)
    load_site(experiment, site)  # a bad --site fails here, before connecting
    start_client(
        server_address=address,
        client=numpy_client(experiment, site).to_client(),
        insecure=True,
        max_retries=30,
        max_wait_time=60.0,
    )


def serve(experiment: FederatedExperiment, address: str, sites: int) -> FederatedResult:
    """The server of a run with real site processes; scores the test set like a simulation."""
    from medseq.federated.server import start_server

    start = time.perf_counter()
    strategy = start_server(experiment, address, sites)
    return finish(experiment, strategy, start)


def summary(result: FederatedResult) -> str:
    """A few lines for the terminal: rounds, selected round, test AUROC, epsilon."""
    lines = [f"{result.name}: {result.strategy}, sites {', '.join(result.sites)}"]
    for r in result.history:
        lines.append(
            f"  round {r['round']:3d}: {r['n_results']} sites, {r['n_failures']} failed, "
            f"validation AUROC {r['val_auroc']:.4f}"
        )
    lines.append(f"best round {result.best_round}: validation AUROC {result.best_val_auroc:.4f}")
    if result.threshold is not None:
        lines.append(f"decision threshold {result.threshold:.3f} (chosen on validation)")
    if result.test_auroc is not None:
        per_site = ", ".join(f"{k} {v:.4f}" for k, v in result.test_site_auroc.items())
        lines.append(f"test AUROC {result.test_auroc:.4f} ({per_site})")
    if result.test_metrics:
        figures = ", ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items())
        lines.append(f"test {figures}")
    if result.bundle_dir:
        lines.append(f"bundle: {result.bundle_dir}")
    if result.epsilon:
        lines.append(f"spent epsilon per site: {result.epsilon}")
    lines.append(f"{result.seconds:.0f} s")
    return "\n".join(lines)
