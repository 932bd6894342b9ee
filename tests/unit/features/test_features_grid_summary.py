import json

import numpy as np
import pandas as pd

from medseq.features import ICUFeaturizer
from medseq.features.icu.summary import GRID_STATISTICS, grid_summary


def test_grid_summary_by_hand():
    z = np.array([[[1.0, 9.0], [np.nan, 9.0], [-2.0, 9.0]]])  # (1, 3, 2)
    mask = np.array([[[1, 0], [0, 0], [1, 0]]], dtype=float)
    out = grid_summary(z, mask).reshape(1, 2, len(GRID_STATISTICS))
    # variable 0: mean -0.5, min -2, max 1, last -2, log1p(2)
    np.testing.assert_allclose(out[0, 0], [-0.5, -2.0, 1.0, -2.0, np.log1p(2)], rtol=1e-6)
    # variable 1 never observed: every statistic 0, whatever the unobserved z holds
    np.testing.assert_array_equal(out[0, 1], np.zeros(5))


def test_static_summary_extends_static_and_round_trips():
    events = pd.DataFrame(
        {
            "subject_id": [1, 1, 2],
            "time": [0.0, 2.5, 1.0],
            "code": ["HR", "HR", "Temp"],
            "value": [80.0, 100.0, 37.0],
        }
    )
    static = pd.DataFrame({"Age": [70.0, 50.0]}, index=pd.Index([1, 2], name="subject_id"))
    kwargs = dict(n_steps=4, static_columns=["Age"], clip_quantiles=None)
    plain = ICUFeaturizer(**kwargs).fit(events, static, [1, 2])
    fused = ICUFeaturizer(**kwargs, static_summary=True).fit(events, static, [1, 2])
    out = fused.transform(events, static, [1, 2])
    assert fused.n_static == plain.n_static + 2 * len(GRID_STATISTICS)
    assert fused.static_names_[-1] == "Temp_log_count"
    assert out["static"].shape == (2, fused.n_static)
    # subject 1 saw HR twice: log count log1p(2); never saw Temp: 0
    names = fused.static_names_
    assert out["static"][0, names.index("HR_log_count")] == np.float32(np.log1p(2))
    assert out["static"][0, names.index("Temp_mean")] == 0.0
    again = ICUFeaturizer.from_state_dict(json.loads(json.dumps(fused.state_dict())))
    np.testing.assert_array_equal(again.transform(events, static, [1, 2])["static"], out["static"])
