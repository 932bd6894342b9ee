"""Reader for Tox21 as curated by MoleculeNet (``tox21.csv.gz``, 7,831 molecules).

Layout (see ``shared/data/tox21/SOURCE.md``): one CSV row per molecule with 12 assay columns
(``1`` active, ``0`` inactive, empty = not measured), ``mol_id`` (``TOX<n>``, unique) and
``smiles``. Missing labels are kept as NaN: they are a property of the assay campaign, not
an error, and the multi-task loss leaves them out.

The reader needs only pandas; SMILES are checked for being non-empty text here and are
tokenised (and parsed by RDKit, where a protocol needs it) downstream.

Reference: Wu Z, Ramsundar B, Feinberg EN, et al. MoleculeNet: a benchmark for molecular
machine learning. Chem Sci 2018;9:513-530.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medseq.schema import DataError

#: The 12 assay columns, in the file's order.
TASKS: tuple[str, ...] = (
    "NR-AR",
    "NR-AR-LBD",
    "NR-AhR",
    "NR-Aromatase",
    "NR-ER",
    "NR-ER-LBD",
    "NR-PPAR-gamma",
    "SR-ARE",
    "SR-ATAD5",
    "SR-HSE",
    "SR-MMP",
    "SR-p53",
)
FILE_NAME = "tox21.csv.gz"
_MOL_ID = re.compile(r"^TOX(\d+)$")


@dataclass(frozen=True)
class Tox21Data:
    """Molecules and their 12 assay labels.

    Attributes
    ----------
    smiles : pandas.Series
        SMILES text, indexed by the integer molecule id (``TOX3021`` -> 3021).
    labels : pandas.DataFrame
        One float column per task in :data:`TASKS`: 1.0 active, 0.0 inactive, NaN not
        measured; same index as ``smiles``.
    path : Path
        The file read.
    """

    smiles: pd.Series
    labels: pd.DataFrame
    path: Path

    @property
    def ids(self) -> np.ndarray:
        """Molecule ids (int64), in file order."""
        return self.smiles.index.to_numpy(dtype=np.int64)


def resolve(path: str | Path) -> Path:
    """The CSV itself, or ``FILE_NAME`` inside a folder."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.exists():
        raise FileNotFoundError(f"Tox21 file {path} does not exist (expected {FILE_NAME})")
    return path


def read(path: str | Path) -> Tox21Data:
    """Read the MoleculeNet Tox21 CSV (plain or gzip) from a file or its folder.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    DataError
        If a column is missing, a label is not 0/1/empty, a ``mol_id`` is malformed or
        repeated, or a SMILES is empty; the message names the file, row and column.
    """
    path = resolve(path)
    try:
        frame = pd.read_csv(path, dtype={"mol_id": str, "smiles": str}, keep_default_na=False)
    except (UnicodeDecodeError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    missing = [c for c in (*TASKS, "mol_id", "smiles") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; got {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    ids = _parse_ids(frame["mol_id"], path)
    smiles = frame["smiles"].str.strip()
    empty = np.flatnonzero(smiles.eq("").to_numpy())
    if empty.size:
        raise DataError(
            f"{path}: row {empty[0] + 2} (mol_id {frame['mol_id'].iloc[empty[0]]}) "
            "has an empty smiles"
        )
    labels = pd.DataFrame({t: _parse_labels(frame[t], t, path) for t in TASKS})
    labels.index = pd.Index(ids, name="mol_id")
    return Tox21Data(
        smiles=pd.Series(smiles.to_numpy(), index=labels.index, name="smiles"),
        labels=labels,
        path=path,
    )


def _parse_ids(column: pd.Series, path: Path) -> np.ndarray:
    matches = column.str.strip().str.extract(_MOL_ID, expand=False)
    bad = np.flatnonzero(matches.isna().to_numpy())
    if bad.size:
        raise DataError(
            f"{path}: row {bad[0] + 2}: mol_id must look like 'TOX<number>', "
            f"got {column.iloc[bad[0]]!r}"
        )
    ids = matches.astype(np.int64).to_numpy()
    dup = pd.Index(ids).duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(f"{path}: row {row + 2}: mol_id {column.iloc[row]!r} appears twice")
    return ids


def _parse_labels(column: pd.Series, task: str, path: Path) -> np.ndarray:
    text = column.astype(str).str.strip()
    mapping = {"": np.nan, "0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}
    bad = np.flatnonzero(~text.isin(list(mapping)).to_numpy())
    if bad.size:
        raise DataError(
            f"{path}: row {bad[0] + 2}, column {task!r}: label must be 0, 1 or empty, "
            f"got {text.iloc[bad[0]]!r}"
        )
    return text.map(mapping).to_numpy(dtype=np.float64)
