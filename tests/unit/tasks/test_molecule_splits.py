"""Random and Bemis–Murcko scaffold splits of molecules."""

import numpy as np
import pandas as pd
import pytest

from medseq.tasks.molecules import murcko_scaffolds, random_split, scaffold_split


def test_random_split_is_a_seeded_partition():
    ids = np.arange(100, 1100)
    train, val, test = random_split(ids, random_state=0)
    assert (len(train), len(val), len(test)) == (800, 100, 100)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), ids)
    assert np.array_equal(random_split(ids, random_state=0)[2], test)
    assert not np.array_equal(random_split(ids, random_state=1)[2], test)
    with pytest.raises(ValueError, match="three non-negative shares"):
        random_split(ids, fractions=(0.8, 0.3, 0.1))


def test_scaffold_split_on_real_tox21_keeps_each_scaffold_in_one_part():
    pytest.importorskip("rdkit")
    from medseq.paths import dataset_dir
    from medseq.sources import tox21

    smiles = tox21.read(dataset_dir("tox21")).smiles.iloc[:1500]
    parts = scaffold_split(smiles)
    scaffolds = murcko_scaffolds(smiles)
    seen = [set(scaffolds.loc[p]) for p in parts]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(len(p) for p in parts) == len(smiles)
    assert 0.75 * len(smiles) <= len(parts[0]) <= 0.8 * len(smiles)
    assert "" in seen[0]  # the acyclic molecules are the largest group: in train


def test_scaffold_of_benzene_derivatives_and_unsanitizable_salt():
    pytest.importorskip("rdkit")
    smiles = pd.Series({1: "Cc1ccccc1", 2: "OCc1ccccc1", 3: "CCO", 4: "O=CO[AlH3](OC=O)OC=O"})
    scaffolds = murcko_scaffolds(smiles)
    assert scaffolds[1] == scaffolds[2] == "c1ccccc1"
    assert scaffolds[3] == scaffolds[4] == ""
    with pytest.raises(ValueError, match="molecule 5"):
        murcko_scaffolds(pd.Series({5: "C1CC"}))
