"""The Flower server side: FedAvg or FedProx, preceded by the featurizer's statistics.

:class:`MedseqStrategy` wraps one of Flower's built-in strategies (``FedAvg``, ``FedProx``)
and adds what a medseq run needs around it:

* the first server rounds are the federated featurizer statistics, one per stage of the
  dataset's :class:`~medseq.features.federated.FederatedFit` (three for the ICU featurizer:
  codes, bounds, moments; one for the beat and SMILES featurizers): every connected site
  is asked, only aggregates come back, and the server builds the featurizer and then the
  initial global model from it;
* the training rounds after them are the wrapped strategy's, with the featurizer state and
  the round number added to each site's config;
* after each training round the sites score the new global weights on their own
  validation samples; the mean of the sites' AUROCs weighted by what each scored (samples,
  or labelled hours of a per-hour task; the task's AUROC: binary, the mean over classes /
  label columns, or over every labelled step) selects the best round (validation only: the
  test set is never seen here).

Failures: Flower's ``accept_failures=True`` aggregates whatever sites answered, and a round
needs only ``min_fit_clients`` of them, so a site that dies mid-round costs that round its
update, not the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from medseq.features.registry import featurizer_from_state_dict
from medseq.federated.config import FederatedExperiment

logger = logging.getLogger(__name__)


@dataclass
class RoundRecord:
    """One training round as the server saw it."""

    round: int
    n_results: int
    n_failures: int
    val_auroc: float = float("nan")
    val_loss: float = float("nan")
    site_auroc: dict[str, float] = field(default_factory=dict)
    epsilon: dict[str, float] = field(default_factory=dict)


def build_inner_strategy(experiment: FederatedExperiment, n_sites: int) -> Any:
    """Flower's FedAvg or FedProx with failure tolerance (Flower imported lazily)."""
    from flwr.server.strategy import FedAvg, FedProx

    fed = experiment.federated
    common: dict[str, Any] = {
        "fraction_fit": 1.0,
        "fraction_evaluate": 1.0,
        "min_fit_clients": min(fed.min_fit_clients, n_sites),
        "min_evaluate_clients": min(fed.min_fit_clients, n_sites),
        "min_available_clients": min(fed.min_fit_clients, n_sites),
        "accept_failures": True,
    }
    if fed.strategy == "fedprox":
        return FedProx(**common, proximal_mu=fed.proximal_mu)
    return FedAvg(**common)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class MedseqStrategy:
    """A Flower ``Strategy``: featurizer statistics, then ``inner``'s rounds (see module doc).

    Build it with :func:`make_strategy`, which also makes it a subclass of Flower's
    ``Strategy`` (Flower is an optional dependency, imported only there).
    """

    def __init__(self, experiment: FederatedExperiment, inner: Any, n_sites: int) -> None:
        self.experiment = experiment
        self.inner = inner
        self.n_sites = n_sites
        self.wait_timeout_s = 600
        self.featurizer_state: dict[str, Any] | None = None
        self._payload: Any = None
        self._latest: Any = None
        self.best_parameters: list[np.ndarray] | None = None
        self.best_round: int | None = None
        self.best_val_auroc = -np.inf
        self.best_val_counts: np.ndarray | None = None  # binary: the sites' pooled scores
        self.history: list[RoundRecord] = []
        self.stats_sites: dict[str, list[str]] = {}
        from medseq.federated.client import federated_fit

        self.fit_stats = federated_fit(experiment)
        self.stages: tuple[str, ...] = tuple(self.fit_stats.stages)

    @property
    def n_stats_rounds(self) -> int:
        """Server rounds spent on the featurizer statistics, before training."""
        return len(self.stages)

    # ------------------------------------------------------------------ Flower API

    def initialize_parameters(self, client_manager: Any) -> Any:
        from flwr.common import ndarrays_to_parameters

        return ndarrays_to_parameters([])  # built after the statistics rounds

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list:
        from flwr.common import FitIns

        if server_round <= self.n_stats_rounds:
            if server_round == 1 and not client_manager.wait_for(self.n_sites, self.wait_timeout_s):
                logger.warning(
                    "only %d of %d sites connected", client_manager.num_available(), self.n_sites
                )
            stage = self.stages[server_round - 1]
            clients = client_manager.sample(
                num_clients=client_manager.num_available(),
                min_num_clients=self.inner.min_fit_clients,
            )
            payload = json.dumps(self._payload, default=_json_default)
            config: dict[str, Any] = {"stage": stage, "payload": payload}
            return [(c, FitIns(parameters, config)) for c in clients]
        pairs = self.inner.configure_fit(
            server_round - self.n_stats_rounds, parameters, client_manager
        )
        extra = self._train_config(server_round)
        return [(c, FitIns(ins.parameters, {**ins.config, **extra})) for c, ins in pairs]

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple[Any, dict]:
        for failure in failures:
            logger.warning("round %d: a site failed (%s)", server_round, _describe(failure))
        # Flower lists results in arrival order; a fixed order makes the float sums of the
        # aggregate, and so the whole run, the same every time.
        results = sorted(results, key=lambda pair: str(pair[1].metrics.get("site", "")))
        if server_round <= self.n_stats_rounds:
            return self._aggregate_statistics(server_round, results), {}
        parameters, metrics = self.inner.aggregate_fit(
            server_round - self.n_stats_rounds, results, failures
        )
        self._latest = parameters
        record = RoundRecord(server_round - self.n_stats_rounds, len(results), len(failures))
        for _, res in results:
            if "epsilon" in res.metrics:
                record.epsilon[str(res.metrics["site"])] = float(res.metrics["epsilon"])
        self.history.append(record)
        logger.info(
            "training round %d: %d sites, %d failures", record.round, len(results), len(failures)
        )
        return parameters, metrics

    def configure_evaluate(self, server_round: int, parameters: Any, client_manager: Any) -> list:
        from flwr.common import EvaluateIns

        if server_round <= self.n_stats_rounds:
            return []
        pairs = self.inner.configure_evaluate(
            server_round - self.n_stats_rounds, parameters, client_manager
        )
        extra = self._train_config(server_round)
        return [(c, EvaluateIns(ins.parameters, {**ins.config, **extra})) for c, ins in pairs]

    def aggregate_evaluate(
        self, server_round: int, results: list, failures: list
    ) -> tuple[Any, dict]:
        if server_round <= self.n_stats_rounds or not results:
            return None, {}
        n = np.array([res.num_examples for _, res in results], dtype=float)
        auroc = np.array([float(res.metrics["auroc"]) for _, res in results])
        loss = np.array([float(res.loss) for _, res in results])
        val_auroc, val_loss = _weighted_mean(auroc, n), _weighted_mean(loss, n)
        record = self.history[-1]
        record.val_auroc, record.val_loss = val_auroc, val_loss
        record.site_auroc = {
            str(res.metrics["site"]): float(res.metrics["auroc"]) for _, res in results
        }
        if val_auroc > self.best_val_auroc and self._latest is not None:
            from flwr.common import parameters_to_ndarrays

            self.best_val_auroc, self.best_round = val_auroc, record.round
            self.best_parameters = parameters_to_ndarrays(self._latest)
            self.best_val_counts = _pooled_counts(results)
        logger.info(
            "training round %d: validation AUROC %.4f (sites %s)",
            record.round,
            val_auroc,
            record.site_auroc,
        )
        return val_loss, {"val_auroc": val_auroc}

    def evaluate(self, server_round: int, parameters: Any) -> None:
        return None  # no central data: the sites evaluate

    # ------------------------------------------------------------------ helpers

    def _train_config(self, server_round: int) -> dict[str, Any]:
        return {
            "stage": "train",
            "round": server_round - self.n_stats_rounds,
            "featurizer": json.dumps(self.featurizer_state, default=_json_default),
        }

    def _aggregate_statistics(self, server_round: int, results: list) -> Any:
        from flwr.common import ndarrays_to_parameters

        stage = self.stages[server_round - 1]
        replies = [json.loads(str(res.metrics["stats"])) for _, res in results]
        self.stats_sites[stage] = sorted(str(res.metrics["site"]) for _, res in results)
        logger.info("statistics stage %r: %d sites answered", stage, len(replies))
        merged = self.fit_stats.merge(stage, self._payload, replies)
        if server_round < self.n_stats_rounds:
            self._payload = merged
            return ndarrays_to_parameters([])
        # a JSON round trip: the state every site rebuilds from is exactly this one
        self.featurizer_state = json.loads(json.dumps(merged, default=_json_default))
        self._payload = None
        return ndarrays_to_parameters(self.initial_weights())

    def featurizer(self) -> Any:
        if self.featurizer_state is None:
            raise RuntimeError("the featurizer statistics rounds have not completed")
        return featurizer_from_state_dict(self.featurizer_state)

    def initial_weights(self) -> list[np.ndarray]:
        from medseq.federated.client import make_model
        from medseq.federated.local import get_weights

        model = make_model(self.experiment, self.featurizer(), seed=self.experiment.federated.seed)
        return get_weights(model)


def _pooled_counts(results: list) -> np.ndarray | None:
    """The sum of the sites' validation score counts (binary tasks), None when not sent."""
    from medseq.federated.threshold import decode

    sent = [res.metrics["val_counts"] for _, res in results if "val_counts" in res.metrics]
    return sum((decode(text) for text in sent[1:]), decode(sent[0])) if sent else None


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean over the finite values (a site whose AUROC is undefined is skipped)."""
    keep = np.isfinite(values)
    if not keep.any():
        return float("nan")
    return float(np.sum(weights[keep] * values[keep]) / weights[keep].sum())


def _describe(failure: Any) -> str:
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}: {failure}"
    return f"status {getattr(failure[1], 'status', '?')}"


def make_strategy(experiment: FederatedExperiment, n_sites: int) -> MedseqStrategy:
    """A :class:`MedseqStrategy` that is also a Flower ``Strategy`` subclass."""
    from flwr.server.strategy import Strategy

    class _Strategy(MedseqStrategy, Strategy):
        pass

    return _Strategy(experiment, build_inner_strategy(experiment, n_sites), n_sites)


def n_server_rounds(experiment: FederatedExperiment) -> int:
    """Flower rounds of a run: the statistics rounds plus the training rounds."""
    from medseq.federated.client import federated_fit

    return len(federated_fit(experiment).stages) + experiment.federated.rounds


def start_server(experiment: FederatedExperiment, address: str, n_sites: int) -> MedseqStrategy:
    """Serve a run to real site processes (gRPC on ``address``); returns the finished strategy."""
    from flwr.server import ServerConfig
    from flwr.server import start_server as flwr_start_server
    from flwr.server.strategy import Strategy

    strategy = make_strategy(experiment, n_sites)
    config = ServerConfig(
        num_rounds=n_server_rounds(experiment), round_timeout=experiment.federated.round_timeout_s
    )
    flower_strategy = cast(Strategy, strategy)  # make_strategy's class subclasses Strategy
    flwr_start_server(server_address=address, config=config, strategy=flower_strategy)
    return strategy
