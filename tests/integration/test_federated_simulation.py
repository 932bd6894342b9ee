"""A small real Flower simulation: four ICU-type sites, two rounds, one site dying in round 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from medseq.federated import parse_federated
from medseq.federated.client import SiteClient, make_model
from medseq.federated.local import featurise, get_weights, score
from medseq.federated.sites import load_site

pytest.importorskip("ray", reason="Flower's simulation engine needs medseq[federated]")


def _experiment(physionet2012_dir, tmp_path):
    return parse_federated(
        {
            "name": "tiny",
            "data": {
                "dataset": "physionet2012",
                "task": "mortality",
                "train": str(physionet2012_dir / "set-a.tar.gz"),
            },
            "features": {"static_summary": True, "delta_scale": "horizon"},
            "model": {"cell": "gru", "hidden_size": 8, "pooling": "mean", "static_hidden_size": 16},
            "train": {"lr": 1e-2, "batch_size": 32},
            "federated": {
                "partition": "icu_type",
                "rounds": 2,
                "max_subjects_per_site": 100,
                "min_fit_clients": 2,
            },
            "output_dir": str(tmp_path),
        }
    )


def dying_client(experiment, index):
    """Site 0 crashes in training round 2 (a stand-in for a hospital going offline)."""
    from flwr.client import NumPyClient

    class Dying(SiteClient, NumPyClient):
        def fit(self, parameters, config):
            if self.index == 0 and config.get("stage") == "train" and int(config["round"]) == 2:
                raise RuntimeError("site 0 went down mid-round")
            return super().fit(parameters, config)

    return Dying(experiment, index)


@pytest.mark.slow
def test_simulation_learns_and_survives_a_dead_site(physionet2012_dir, tmp_path):
    import ray.cloudpickle

    from medseq.datasets.physionet2012 import PHYSIONET2012 as spec
    from medseq.features import ICUFeaturizer
    from medseq.federated.simulation import run_simulation

    # Ray's workers cannot import this test module: ship dying_client by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    experiment = _experiment(physionet2012_dir, tmp_path)
    result = run_simulation(experiment, client_factory=dying_client)

    assert [r["round"] for r in result.history] == [1, 2]
    assert (result.history[0]["n_results"], result.history[0]["n_failures"]) == (4, 0)
    assert (result.history[1]["n_results"], result.history[1]["n_failures"]) == (3, 1)
    assert np.isfinite(result.history[1]["val_auroc"])  # the round completed without site 0
    assert sorted(result.sites) == ["cardiac_surgery", "coronary_care", "medical", "surgical"]

    # round 0: the initial global model (same seed as the server's) on the same validation sets
    featurizer = ICUFeaturizer.from_state_dict(
        json.loads((tmp_path / "featurizer.json").read_text())
    )
    model = make_model(experiment, featurizer, seed=experiment.federated.seed)
    initial, n = [], []
    for index in range(4):
        site = load_site(experiment, index)
        val = featurise(spec, featurizer, site.data, site.val_ids, site.labels)
        initial.append(score(model, val, experiment.local_train)["auroc"])
        n.append(len(val["y"]))
    round0 = float(np.average(initial, weights=n))
    assert result.best_val_auroc > round0 + 0.1, (round0, result.history)
    assert len(get_weights(model)) > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best_round"] == result.best_round
