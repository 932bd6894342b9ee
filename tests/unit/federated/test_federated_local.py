"""A site's local round: FedProx's proximal term through the Trainer's extra-loss hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseq.datasets.physionet2012 import PHYSIONET2012 as SPEC
from medseq.federated import FederatedConfig, local
from medseq.federated.sites import cut_site
from medseq.tasks.physionet2012 import mortality_labels

FEATURES = {"static_summary": True, "delta_scale": "horizon"}
MODEL = {"cell": "gru", "hidden_size": 8, "pooling": "mean", "static_hidden_size": 16}


@pytest.fixture(scope="module")
def site_arrays(set_a):
    labels = mortality_labels(set_a)
    ids = labels.index.to_numpy()[:240]
    site = cut_site(set_a, "s0", ids, labels, FederatedConfig(partition="icu_type", seed=0))
    featurizer = SPEC.federated_fit(FEATURES).fit([(set_a, site.train_ids)])
    train = local.featurise(SPEC, featurizer, set_a, site.train_ids, site.labels)
    val = local.featurise(SPEC, featurizer, set_a, site.val_ids, site.labels)
    return featurizer, train, val


def _model(featurizer):
    sizes = {**SPEC.model_sizes(featurizer), "n_outputs": 1}
    return local.build_site_model(local.model_config(MODEL, sizes), seed=0)


def _distance(model, anchor) -> float:
    now = local.get_weights(model)
    return float(sum(np.sum((a - b) ** 2) for a, b in zip(now, anchor, strict=True)))


def test_proximal_term_value_and_gradient(site_arrays):
    featurizer, _, _ = site_arrays
    model = _model(featurizer)
    anchor = [w + 0.5 for w in local.get_weights(model)]
    n_params = sum(w.size for w in anchor)
    term = local.proximal_term(anchor, mu=0.2)(model)
    assert float(term.detach()) == pytest.approx(0.5 * 0.2 * 0.25 * n_params, rel=1e-5)
    term.backward()
    grad = next(model.parameters()).grad
    assert torch.allclose(grad, torch.full_like(grad, -0.2 * 0.5))  # mu * (w - w_global)


def test_fedprox_keeps_local_weights_closer_to_the_global_model(site_arrays):
    featurizer, train, val = site_arrays
    global_model = _model(featurizer)
    anchor = local.get_weights(global_model)
    config = local.local_train_config({"lr": 1e-2, "num_threads": 1}, epochs=3, seed=1)
    distances = {}
    for mu in (0.0, 1.0):
        model = _model(featurizer)
        extra = local.proximal_term(anchor, mu) if mu > 0 else None
        local.train_local(model, train, val, config, extra_loss=extra)
        distances[mu] = _distance(model, anchor)
    assert distances[0.0] > 0
    assert distances[1.0] < 0.7 * distances[0.0]
