"""Per-site DP-SGD with Opacus: DP recurrent layers, epsilon spent within the target."""

from __future__ import annotations

import numpy as np
import pytest
from opacus.layers import DPGRU
from torch import nn

from medseq.datasets.physionet2012 import PHYSIONET2012 as SPEC
from medseq.federated import FederatedConfig, PrivacyConfig, local
from medseq.federated.privacy import make_dp_model, plan_budget, spent_epsilon, train_dp_local
from medseq.federated.sites import cut_site
from medseq.tasks.physionet2012 import mortality_labels

MODEL = {"cell": "gru", "hidden_size": 8, "pooling": "mean", "static_hidden_size": 16}


def test_dp_sgd_spends_at_most_the_target_epsilon(set_a):
    labels = mortality_labels(set_a)
    config = FederatedConfig(partition="icu_type")
    site = cut_site(set_a, "s0", labels.index.to_numpy()[:200], labels, config)
    featurizer = SPEC.federated_fit({"static_summary": True}).fit([(set_a, site.train_ids)])
    train = local.featurise(SPEC, featurizer, set_a, site.train_ids, site.labels)
    sizes = {**SPEC.model_sizes(featurizer), "n_outputs": 1}
    plain = local.build_site_model(local.model_config(MODEL, sizes), seed=0)
    model = make_dp_model(plain)
    assert any(isinstance(m, DPGRU) for m in model.modules())
    assert not any(type(m) is nn.GRU for m in model.modules())
    # same weights after the swap: the DP model computes what the plain one did
    val = local.featurise(SPEC, featurizer, set_a, site.val_ids, site.labels)
    np.testing.assert_allclose(
        local.predict(model, val, {}), local.predict(plain, val, {}), rtol=1e-4, atol=1e-5
    )
    target, rounds = 3.0, 2
    budget = plan_budget(PrivacyConfig(target_epsilon=target), len(train["y"]), 32, rounds)
    assert budget.noise_multiplier > 0.5
    before = local.get_weights(model)
    config = local.local_train_config({"batch_size": 32, "lr": 1e-2}, epochs=1, seed=0)
    loss = train_dp_local(model, train, config, budget, epochs=1)
    assert np.isfinite(loss)
    assert any(not np.allclose(a, b) for a, b in zip(before, local.get_weights(model), strict=True))
    first, total = spent_epsilon(budget, 1), spent_epsilon(budget, rounds)
    assert 0 < first < total <= target * 1.01  # Opacus' calibration tolerance is 0.01
    assert total == pytest.approx(target, rel=0.05)  # the whole budget is used, not wasted
