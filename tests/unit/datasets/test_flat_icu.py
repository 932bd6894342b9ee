"""Dataset "flat_icu": PhysioNet 2012 exported as flat CSVs and read through a mapping file
gives the dedicated pipeline's labels and exactly its ICU features."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.datasets.registry import get_dataset
from medseq.schema import DataError
from physionet2012_flat import FEATURES, export, read_stays


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """300 stays of set A: the dedicated reader's set, and the same exported + mapped."""
    root = tmp_path_factory.mktemp("pn2012")
    data = read_stays("a", 300, root / "set-a")
    return data, export(data, root / "flat")


def test_flat_export_gives_the_same_labels_and_features(both):
    data, mapping = both
    dedicated, flat = get_dataset("physionet2012"), get_dataset("flat_icu")
    flat_data = flat.read(mapping)
    y_ded, y_flat = dedicated.labels("mortality", data), flat.labels("label", flat_data)
    np.testing.assert_array_equal(y_ded.index, y_flat.index)
    np.testing.assert_array_equal(y_ded.to_numpy(), y_flat.to_numpy())
    ids = y_ded.index.to_numpy()[:200]
    f_ded = dedicated.fit_featurizer(FEATURES, data, ids)
    f_flat = flat.fit_featurizer(FEATURES, flat_data, ids)
    rest = y_ded.index.to_numpy()[200:]
    a, b = dedicated.transform(f_ded, data, rest), flat.transform(f_flat, flat_data, rest)
    assert a.keys() == b.keys() and "values" in a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_label_problems_are_named(both, tmp_path):
    _, mapping = both
    text = mapping.read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('column = "In-hospital_death"', 'column = "Died"'))
    with pytest.raises(DataError, match="'Died'"):
        get_dataset("flat_icu").read(bad)
    with pytest.raises(ValueError, match="one task, 'label'"):
        get_dataset("flat_icu").labels("mortality", None)
