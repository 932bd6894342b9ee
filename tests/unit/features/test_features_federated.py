"""Featurizers fitted across sites from aggregates equal the pooled fit (real data).

Each featurizer family's :class:`~medseq.features.federated.FederatedFit`, run over two
sites' training ids, gives the featurizer fitted on the union of those ids, to float
tolerance: the ICU featurizer (when its bounds need no quantiles; with quantiles the
moments are still exact under the common bounds), the CinC 2017 beat + rhythm-summary
featurizer, and the Tox21 SMILES featurizer.
"""

from __future__ import annotations

import numpy as np
import pytest

from medseq.datasets.physionet2012 import PHYSIONET2012
from medseq.features.icu import federated as icu

FEATURES = {"static_summary": True, "delta_scale": "horizon", "log_variables": "auto"}


def _assert_states_close(a, b, path="state"):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), path
        for key in a:
            _assert_states_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and a and all(isinstance(v, float | int) for v in a + b):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=path)
    else:
        assert a == b, path


def test_icu_federated_fit_equals_the_pooled_fit_without_quantiles(set_a):
    features = {"static_summary": True, "delta_scale": "horizon", "clip_quantiles": None}
    ids = set_a.static.index.to_numpy()[:300]
    sites = [(set_a, ids[:120]), (set_a, ids[120:])]
    federated = PHYSIONET2012.federated_fit(features).fit(sites)
    pooled = PHYSIONET2012.fit_featurizer(features, set_a, ids)
    assert federated.feature_names_ == pooled.feature_names_
    # the federated fit names the union of the sites' variables; the pooled fit found them
    pooled = PHYSIONET2012.fit_featurizer(
        {**features, "variables": federated.feature_names_}, set_a, ids
    )
    _assert_states_close(federated.state_dict(), pooled.state_dict())
    out = federated.transform(set_a.events, set_a.static, ids[:50])
    ref = pooled.transform(set_a.events, set_a.static, ids[:50])
    np.testing.assert_allclose(out["values"], ref["values"], rtol=1e-5, atol=1e-5)


def test_icu_federated_moments_equal_pooled_moments_under_common_bounds(set_a):
    ids = set_a.static.index.to_numpy()[:400]
    sites = [ids[:150], ids[150:]]
    ev, st = set_a.events, set_a.static
    variables = icu.merge_codes([icu.site_codes(ev, s) for s in sites])
    assert variables == icu.site_codes(ev, ids)["codes"]
    partial = icu.merge_bounds([icu.site_bounds(ev, st, s, FEATURES, variables) for s in sites])
    state = icu.merge_moments(partial, [icu.site_moments(ev, st, s, partial) for s in sites])
    pooled = icu.merge_moments(partial, [icu.site_moments(ev, st, ids, partial)])
    for key in ("mean", "std"):
        np.testing.assert_allclose(
            state["normalizer"][key], pooled["normalizer"][key], rtol=1e-9, atol=1e-9
        )
        np.testing.assert_allclose(
            state["static"]["normalizer"][key], pooled["static"]["normalizer"][key], rtol=1e-9
        )
    # the merged bounds lie between the sites' own ones, weighted by their counts
    lows = [icu.site_bounds(ev, st, s, FEATURES, variables)["normalizer"]["lower"] for s in sites]
    hr = variables.index("HR")
    assert min(lo[hr] for lo in lows) <= state["normalizer"]["lower"][hr]
    assert state["normalizer"]["lower"][hr] <= max(lo[hr] for lo in lows)


def test_icu_federated_featurizer_standardises_every_site_alike(set_a):
    ids = set_a.static.index.to_numpy()[:300]
    fit = PHYSIONET2012.federated_fit(FEATURES)
    assert fit.stages == ("codes", "bounds", "moments")
    featurizer = fit.fit([(set_a, ids[:100]), (set_a, ids[100:])])
    out = featurizer.transform(set_a.events, set_a.static, ids)
    observed = out["values"][out["mask"] == 1]
    assert abs(float(observed.mean())) < 0.2  # standardised on the union of the sites
    assert 0.7 < float(observed.std()) < 1.3
    assert out["static"].shape[1] == featurizer.n_static


@pytest.fixture(scope="module")
def cinc_small():
    from medseq.datasets import cinc2017
    from medseq.paths import dataset_dir

    return cinc2017.read(dataset_dir("physionet2017") / "training2017-A00.tar.xz", max_records=14)


def test_beat_rhythm_federated_fit_equals_the_pooled_fit(cinc_small):
    from medseq.datasets.cinc2017 import CINC2017

    features = {"kind": "beats", "rhythm_summary": True}
    ids = np.sort(cinc_small.labels.index.to_numpy())
    fit = CINC2017.federated_fit(features)
    assert fit.stages == ("moments",)
    federated = fit.fit([(cinc_small, ids[:5]), (cinc_small, ids[5:])])
    pooled = CINC2017.fit_featurizer(features, cinc_small, ids)
    assert federated.kind == pooled.kind == "beats_rhythm"
    for key in ("mean", "std", "summary_mean", "summary_std"):
        np.testing.assert_allclose(
            getattr(federated, key), getattr(pooled, key), rtol=1e-4, atol=1e-6, err_msg=key
        )
    assert federated.state_dict().keys() == pooled.state_dict().keys()


def test_signal_federated_fit_learns_the_channel_count(cinc_small):
    from medseq.datasets.cinc2017 import CINC2017

    ids = np.sort(cinc_small.labels.index.to_numpy())
    fit = CINC2017.federated_fit({"kind": "signal"})
    federated = fit.fit([(cinc_small, ids[:5]), (cinc_small, ids[5:])])
    pooled = CINC2017.fit_featurizer({"kind": "signal"}, cinc_small, ids)
    assert federated.state_dict() == pooled.state_dict()


def test_smiles_federated_fit_equals_the_pooled_vocabulary():
    from medseq.datasets.tox21 import TOX21, Molecules
    from medseq.features.molecules.smiles_enumeration import canonical_smiles
    from medseq.paths import dataset_dir
    from medseq.sources import tox21

    raw = tox21.read(dataset_dir("tox21") / "tox21.csv.gz")
    subset = raw.smiles.iloc[:400]
    data = Molecules(raw=raw, canonical=subset.map(canonical_smiles))
    ids = subset.index.to_numpy()
    features = {"min_count": 3, "max_length": 120}
    federated = TOX21.federated_fit(features).fit([(data, ids[:150]), (data, ids[150:])])
    pooled = TOX21.fit_featurizer(features, data, ids)
    assert federated.state_dict() == pooled.state_dict()
    alone = TOX21.fit_featurizer(features, data, ids[:150])
    assert alone.vocab_size < federated.vocab_size  # rare tokens pass min_count only pooled
