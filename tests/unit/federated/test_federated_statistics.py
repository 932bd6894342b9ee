"""Federated featurizer statistics: pooled moments from site aggregates, exactly."""

from __future__ import annotations

import numpy as np

from medseq.federated import statistics
from medseq.federated.statistics import SiteRaw

FEATURES = {"static_summary": True, "delta_scale": "horizon", "log_variables": "auto"}


def _site(data, ids) -> SiteRaw:
    ids = np.asarray(ids, dtype=np.int64)
    events = data.events[data.events["subject_id"].isin(ids)].reset_index(drop=True)
    return SiteRaw(events, data.static.loc[ids], ids)


def test_federated_moments_equal_pooled_moments(set_a):
    ids = set_a.static.index.to_numpy()[:400]
    sites = [_site(set_a, ids[:150]), _site(set_a, ids[150:])]
    everyone = _site(set_a, ids)
    variables = statistics.merge_codes([statistics.site_codes(s) for s in sites])
    assert variables == statistics.site_codes(everyone)["codes"]
    partial = statistics.merge_bounds(
        [statistics.site_bounds(s, FEATURES, variables) for s in sites]
    )
    state = statistics.merge_moments(partial, [statistics.site_moments(s, partial) for s in sites])
    # the same common bounds, applied to the pooled rows in one place
    pooled = statistics.merge_moments(partial, [statistics.site_moments(everyone, partial)])
    for key in ("normalizer",):
        np.testing.assert_allclose(state[key]["mean"], pooled[key]["mean"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(state[key]["std"], pooled[key]["std"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        state["static"]["normalizer"]["std"], pooled["static"]["normalizer"]["std"], rtol=1e-9
    )
    # the merged bounds lie between the sites' own ones, weighted by their counts
    lows = [statistics.site_bounds(s, FEATURES, variables)["normalizer"]["lower"] for s in sites]
    hr = variables.index("HR")
    assert (
        min(lo[hr] for lo in lows) <= state["normalizer"]["lower"][hr] <= max(lo[hr] for lo in lows)
    )


def test_federated_featurizer_standardises_every_site_alike(set_a):
    ids = set_a.static.index.to_numpy()[:300]
    sites = [_site(set_a, ids[:100]), _site(set_a, ids[100:])]
    featurizer = statistics.federated_featurizer(FEATURES, sites)
    out = featurizer.transform(set_a.events, set_a.static, ids)
    observed = out["values"][out["mask"] == 1]
    assert abs(float(observed.mean())) < 0.2  # standardised on the union of the sites
    assert 0.7 < float(observed.std()) < 1.3
    assert out["static"].shape[1] == featurizer.n_static
