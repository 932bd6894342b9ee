"""The Flower site client: trains the medseq model on its own partition only.

Every message from the server carries a ``stage`` in its config:

* one of the dataset's featurizer-statistics stages (``spec.federated_fit(features).stages``,
  :mod:`medseq.features.federated`); the reply's metrics hold the site's aggregates as
  JSON, its parameters are empty;
* ``train``: load the global weights, train ``local_epochs`` epochs on the site's training
  samples (plus FedProx's proximal term when the server sends ``proximal_mu`` > 0, or
  DP-SGD when the config has ``[federated.privacy]``), return the new weights.

``evaluate`` scores the global weights on the site's own validation samples (loss and the
task's AUROC); the server averages them, weighted by samples, to pick the best round.
The client keeps no state between messages except caches, so Flower's simulation may
rebuild it every round. Nothing here names a dataset or a featurizer: the experiment's
dataset spec featurises, sizes the model and fits the featurizer statistics.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import numpy as np

from medseq.datasets.registry import get_dataset
from medseq.features.registry import featurizer_from_state_dict
from medseq.federated import local
from medseq.federated.config import FederatedExperiment
from medseq.federated.sites import Site, load_site
from medseq.federated.threshold import encode, score_counts

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _site_arrays(experiment_json: str, index: int, state_json: str) -> tuple[dict, dict]:
    """Featurised train and validation arrays of a site (cached per featurizer state)."""
    experiment = _experiment(experiment_json)
    spec = get_dataset(experiment.dataset)
    site = load_site(experiment, index)
    featurizer = featurizer_from_state_dict(json.loads(state_json))
    train = local.featurise(spec, featurizer, site.data, site.train_ids, site.labels)
    val = local.featurise(spec, featurizer, site.data, site.val_ids, site.labels)
    return train, val


@functools.lru_cache(maxsize=4)
def _experiment(experiment_json: str) -> FederatedExperiment:
    from medseq.federated.config import parse_federated

    raw = json.loads(experiment_json)
    return parse_federated(raw, default_name=raw.get("name", "federated"))


@functools.lru_cache(maxsize=4)
def _federated_fit(experiment_json: str) -> Any:
    """The dataset's staged featurizer fit (one per process keeps its caches warm)."""
    experiment = _experiment(experiment_json)
    make = get_dataset(experiment.dataset).require("federated_fit", "medseq federate")
    return make(dict(experiment.features))


def federated_fit(experiment: FederatedExperiment) -> Any:
    """The :class:`~medseq.features.federated.FederatedFit` of the experiment's featurizer."""
    return _federated_fit(experiment_json(experiment))


def experiment_json(experiment: FederatedExperiment) -> str:
    """The experiment as the JSON of its TOML dict (a hashable, picklable cache key)."""
    raw = {
        "name": experiment.name,
        "data": {
            "dataset": experiment.dataset,
            "task": experiment.task,
            "train": experiment.train,
            "test": experiment.test,
            "protocol": experiment.protocol,
        },
        "features": experiment.features,
        "model": experiment.model,
        "train": experiment.local_train,
        "federated": _drop_none(experiment.federated.to_dict()),
        "output_dir": experiment.output_dir,
    }
    return json.dumps(raw, sort_keys=True)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def class_names(experiment: FederatedExperiment) -> list[str] | None:
    """The spec's class names (multiclass) or label columns (multilabel); None for binary.

    Asked without data (``spec.class_names(task, None)``): the server, which holds no
    rows, must size the model's output too.
    """
    spec = get_dataset(experiment.dataset)
    if spec.task_type(experiment.task) == "binary":
        return None
    names = list(spec.class_names(experiment.task, None)) if spec.class_names else []
    if not names:
        raise ValueError(
            f"dataset {spec.name!r}: a federated {spec.task_type(experiment.task)} task needs "
            "the spec's class_names (the server sizes the model without reading data)"
        )
    return names


def model_config(experiment: FederatedExperiment, featurizer: Any) -> Any:
    """The global model's config: ``[model]`` plus the spec's sizes and the output count."""
    spec = get_dataset(experiment.dataset)
    names = class_names(experiment)
    sizes = {**spec.model_sizes(featurizer), "n_outputs": 1 if names is None else len(names)}
    return local.model_config(experiment.model, sizes)


def make_model(experiment: FederatedExperiment, featurizer: Any, seed: int) -> Any:
    """The global model's architecture (DP layers when the run is private)."""
    model = local.build_site_model(model_config(experiment, featurizer), seed=seed)
    if experiment.federated.privacy is not None:
        from medseq.federated.privacy import make_dp_model

        model = make_dp_model(model)
    return model


class SiteClient:
    """Flower ``NumPyClient`` of site ``index`` (built by :func:`numpy_client`)."""

    def __init__(self, experiment: FederatedExperiment, index: int) -> None:
        self.experiment = experiment
        self.index = index
        self._json = experiment_json(experiment)
        self.task_type = get_dataset(experiment.dataset).task_type(experiment.task)

    @property
    def site(self) -> Site:
        return load_site(self.experiment, self.index)

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return []  # the server builds the initial weights once the featurizer is known

    def _featurizer_and_arrays(self, config: dict[str, Any]) -> tuple[Any, dict, dict]:
        state_json = str(config["featurizer"])
        train, val = _site_arrays(self._json, self.index, state_json)
        return featurizer_from_state_dict(json.loads(state_json)), train, val

    def statistics(self, config: dict[str, Any]) -> dict[str, Any]:
        """The site's aggregates for the server's statistics ``stage`` (no rows)."""
        payload = json.loads(str(config.get("payload", "null")))
        site = self.site
        fit = _federated_fit(self._json)
        return fit.site_statistics(str(config["stage"]), payload, site.data, site.train_ids)

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        if config["stage"] != "train":
            stats = self.statistics(config)
            return [], self.site.n_train, {"stats": json.dumps(stats), "site": self.site.name}
        featurizer, train, val = self._featurizer_and_arrays(config)
        fed = self.experiment.federated
        round_ = int(config["round"])
        model = make_model(self.experiment, featurizer, seed=fed.seed)
        local.set_weights(model, parameters)
        seed = fed.seed + 1000 * round_ + self.index
        train_cfg = local.local_train_config(
            self.experiment.local_train, epochs=fed.local_epochs, seed=seed, task=self.task_type
        )
        metrics: dict[str, Any] = {"site": self.site.name}
        if fed.privacy is not None:
            from medseq.federated import privacy

            budget = privacy.plan_budget(
                fed.privacy, len(train["y"]), train_cfg.batch_size, fed.rounds * fed.local_epochs
            )
            loss = privacy.train_dp_local(model, train, train_cfg, budget, fed.local_epochs)
            metrics["epsilon"] = privacy.spent_epsilon(budget, round_ * fed.local_epochs)
            metrics["noise_multiplier"] = budget.noise_multiplier
        else:
            mu = float(config.get("proximal_mu", 0.0))
            extra = local.proximal_term(parameters, mu) if mu > 0 else None
            loss = local.train_local(
                model, train, val, train_cfg, extra_loss=extra, augment=self._augment(featurizer)
            )
        metrics["train_loss"] = loss
        return local.get_weights(model), len(train["y"]), metrics

    def _augment(self, featurizer: Any) -> Any:
        spec = get_dataset(self.experiment.dataset)
        if spec.augment is None:
            return None
        return spec.augment(dict(self.experiment.features), featurizer)

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        featurizer, _, val = self._featurizer_and_arrays(config)
        model = make_model(self.experiment, featurizer, seed=self.experiment.federated.seed)
        local.set_weights(model, parameters)
        prob = local.predict(model, val, self.experiment.local_train, self.task_type)
        loss = local.log_loss(val["y"], prob, self.task_type)
        n = local.n_scored(val["y"], self.task_type)  # per-hour tasks: weighted by hours
        metrics: dict[str, Any] = {"auroc": local.mean_auroc(val["y"], prob, self.task_type)}
        if self.task_type == "binary":  # the server picks the bundle's threshold on these
            metrics["val_counts"] = encode(score_counts(val["y"], prob))
        return loss, n, metrics | {"site": self.site.name}


def numpy_client(experiment: FederatedExperiment, index: int) -> Any:
    """A Flower ``NumPyClient`` wrapping :class:`SiteClient` (Flower imported here, lazily)."""
    from flwr.client import NumPyClient

    class _Client(SiteClient, NumPyClient):
        pass

    return _Client(experiment, index)
