"""Small hand-checkable tables shared by the feature tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

NAN = np.nan


def toy_events() -> pd.DataFrame:
    """Subjects 10, 20 (requested in the tests) and 30 (often left out); variables A, B."""
    rows = [
        (10, -0.5, "A", 50.0),  # before the window
        (10, 0.0, "A", 1.0),  # bin 0
        (10, 0.5, "A", 3.0),  # bin 0, later: the one kept by "last"
        (10, 1.0, "C", 2.0),  # unknown code
        (10, 1.2, "B", 10.0),  # bin 1
        (10, 2.0, "B", NAN),  # code-only event
        (10, 2.9, "A", 5.0),  # bin 2
        (10, 4.0, "A", 7.0),  # the window's right edge: last bin
        (10, 4.5, "B", 99.0),  # after the window
        (20, 1.0, "B", 20.0),  # bin 1
        (30, 0.0, "A", 100.0),  # a subject outside the fit
    ]
    return pd.DataFrame(rows, columns=["subject_id", "time", "code", "value"])


def toy_static() -> pd.DataFrame:
    return pd.DataFrame(
        {"Age": [60.0, 80.0, 20.0], "Gender": [1.0, NAN, 0.0], "ICUType": [2.0, 7.0, 1.0]},
        index=pd.Index([10, 20, 30], name="subject_id"),
    )
