"""Train/validation/test splits of molecules: random (MoleculeNet's) and Bemis–Murcko scaffold.

A random split measures interpolation among similar chemistry; a scaffold split puts whole
chemical series (molecules sharing a ring-system framework) on one side only, so the test
molecules have frameworks never seen in training, closer to prospective use. Both follow
MoleculeNet (Wu et al. 2018): 80/10/10, random with a fixed seed; scaffold groups sorted by
size, largest first, filled into train, then validation, then test.

Reference: Bemis GW, Murcko MA. The properties of known drugs. 1. Molecular frameworks.
J Med Chem 1996;39:2887-2893.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: (train, validation, test) shares of MoleculeNet.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative shares summing to 1, got {tuple(fractions)}"
        )
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def random_split(
    ids: Sequence[int] | np.ndarray,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle ``ids`` with a fixed seed and cut it into train/validation/test.

    Returns
    -------
    train, val, test : ndarray of int64, each sorted
    """
    train_f, val_f, _ = _check_fractions(fractions)
    ids = np.asarray(ids, dtype=np.int64)
    order = np.random.default_rng(random_state).permutation(ids)
    n_train = round(train_f * len(ids))
    n_val = round(val_f * len(ids))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return tuple(np.sort(p) for p in parts)  # type: ignore[return-value]


def murcko_scaffolds(smiles: pd.Series) -> pd.Series:
    """Bemis–Murcko scaffold SMILES (no chirality) per molecule, same index.

    Acyclic molecules have the empty scaffold ``""`` and form one group. A SMILES that RDKit
    cannot parse is an error naming its id.
    """
    from rdkit.Chem.Scaffolds import MurckoScaffold

    from medseq.features.molecules.smiles_enumeration import parse

    out = {}
    for mol_id, text in smiles.items():
        try:
            mol = parse(text, lenient=True)
        except ValueError as err:
            raise ValueError(f"molecule {mol_id}: {err}") from None
        out[mol_id] = MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    return pd.Series(out, name="scaffold").reindex(smiles.index)


def scaffold_split(
    smiles: pd.Series, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic scaffold split: no scaffold falls in two parts.

    Molecules are grouped by :func:`murcko_scaffolds`; groups are sorted by size (largest
    first, ties by their first molecule's position) and each goes to train while train stays
    within its share, else to validation while that stays within its share, else to test.

    Parameters
    ----------
    smiles : pandas.Series
        SMILES indexed by integer molecule id.

    Returns
    -------
    train, val, test : ndarray of int64, each sorted
    """
    train_f, val_f, _ = _check_fractions(fractions)
    scaffolds = murcko_scaffolds(smiles)
    groups: dict[str, list[int]] = defaultdict(list)
    for mol_id, scaffold in scaffolds.items():
        groups[scaffold].append(int(mol_id))
    ordered = sorted(groups.values(), key=len, reverse=True)  # stable: ties keep file order
    n = len(smiles)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) <= train_f * n:
            train.extend(group)
        elif len(val) + len(group) <= val_f * n:
            val.extend(group)
        else:
            test.extend(group)
    parts = (train, val, test)
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]
