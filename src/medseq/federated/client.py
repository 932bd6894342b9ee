"""The Flower site client: trains the medseq model on its own partition only.

Every message from the server carries a ``stage`` in its config:

* ``codes`` / ``bounds`` / ``moments``: the three exchanges of the federated featurizer
  statistics (:mod:`medseq.federated.statistics`); the reply's metrics hold the site's
  aggregates as JSON, its parameters are empty.
* ``train``: load the global weights, train ``local_epochs`` epochs on the site's training
  subjects (plus FedProx's proximal term when the server sends ``proximal_mu`` > 0, or
  DP-SGD when the config has ``[federated.privacy]``), return the new weights.

``evaluate`` scores the global weights on the site's own validation subjects (loss and
AUROC); the server averages them, weighted by subjects, to pick the best round.
The client keeps no state between messages except caches, so Flower's simulation may
rebuild it every round.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import numpy as np

from medseq.features import ICUFeaturizer
from medseq.federated import local, statistics
from medseq.federated.config import FederatedExperiment
from medseq.federated.sites import Site, load_site

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _site_arrays(experiment_json: str, index: int, state_json: str) -> tuple[dict, dict]:
    """Featurised train and validation arrays of a site (cached per featurizer state)."""
    experiment = _experiment(experiment_json)
    site = load_site(experiment, index)
    featurizer = ICUFeaturizer.from_state_dict(json.loads(state_json))
    train = local.featurise(featurizer, site.raw, site.train_ids, site.labels)
    val = local.featurise(featurizer, site.raw, site.val_ids, site.labels)
    return train, val


@functools.lru_cache(maxsize=4)
def _experiment(experiment_json: str) -> FederatedExperiment:
    from medseq.federated.config import parse_federated

    raw = json.loads(experiment_json)
    return parse_federated(raw, default_name=raw.get("name", "federated"))


def experiment_json(experiment: FederatedExperiment) -> str:
    """The experiment as the JSON of its TOML dict (a hashable, picklable cache key)."""
    raw = {
        "name": experiment.name,
        "data": {"train": experiment.train, "test": experiment.test},
        "features": experiment.features,
        "model": experiment.model,
        "train": experiment.local_train,
        "federated": _drop_none(experiment.federated.to_dict()),
        "output_dir": experiment.output_dir,
    }
    return json.dumps(raw, sort_keys=True)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def make_model(experiment: FederatedExperiment, featurizer: ICUFeaturizer, seed: int) -> Any:
    """The global model's architecture (DP layers when the run is private)."""
    model = local.build_site_model(experiment.model, featurizer, seed=seed)
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

    @property
    def site(self) -> Site:
        return load_site(self.experiment, self.index)

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return []  # the server builds the initial weights once the featurizer is known

    def _featurizer_and_arrays(self, config: dict[str, Any]) -> tuple[ICUFeaturizer, dict, dict]:
        state_json = str(config["featurizer"])
        state = json.loads(state_json)
        train, val = _site_arrays(self._json, self.index, state_json)
        return ICUFeaturizer.from_state_dict(state), train, val

    def statistics(self, config: dict[str, Any]) -> dict[str, Any]:
        stage = config["stage"]
        payload = json.loads(str(config.get("payload", "null")))
        site = self.site
        if stage == "codes":
            return statistics.site_codes(site.raw)
        if stage == "bounds":
            return statistics.site_bounds(site.raw, self.experiment.features, payload)
        if stage == "moments":
            return statistics.site_moments(site.raw, payload)
        raise ValueError(f"unknown stage {stage!r}")

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
            self.experiment.local_train, epochs=fed.local_epochs, seed=seed
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
            loss = local.train_local(model, train, val, train_cfg, extra_loss=extra)
        metrics["train_loss"] = loss
        return local.get_weights(model), len(train["y"]), metrics

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        featurizer, _, val = self._featurizer_and_arrays(config)
        model = make_model(self.experiment, featurizer, seed=self.experiment.federated.seed)
        local.set_weights(model, parameters)
        scores = local.score(model, val, self.experiment.local_train)
        return scores["loss"], len(val["y"]), {"auroc": scores["auroc"], "site": self.site.name}


def numpy_client(experiment: FederatedExperiment, index: int) -> Any:
    """A Flower ``NumPyClient`` wrapping :class:`SiteClient` (Flower imported here, lazily)."""
    from flwr.client import NumPyClient

    class _Client(SiteClient, NumPyClient):
        pass

    return _Client(experiment, index)
