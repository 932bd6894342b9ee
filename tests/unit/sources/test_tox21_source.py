"""Tox21 reader: the real file, and clear errors on broken copies."""

import gzip

import numpy as np
import pytest

from medseq.schema import DataError
from medseq.sources import tox21

HEADER = ",".join([*tox21.TASKS, "mol_id", "smiles"])


def _write(path, rows, header=HEADER):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _row(labels="0,1,,0,0,0,0,0,0,0,0,", mol_id="TOX1", smiles="CCO"):
    return f"{labels},{mol_id},{smiles}"


def test_reads_the_real_file(tmp_path):
    from medseq.paths import dataset_dir

    data = tox21.read(dataset_dir("tox21"))
    assert len(data.smiles) == 7831
    assert list(data.labels.columns) == list(tox21.TASKS)
    assert data.labels.loc[3021, "NR-Aromatase"] != data.labels.loc[3021, "NR-Aromatase"]  # NaN
    assert data.smiles.loc[3021] == "CCOc1ccc2nc(S(N)(=O)=O)sc2c1"
    assert int(data.labels["NR-AR"].sum()) == 309
    assert data.ids.dtype == np.int64


def test_reads_gzip_and_missing_labels_are_nan(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + "\n" + _row() + "\n")
    data = tox21.read(path)
    assert data.labels.loc[1].isna().sum() == 2
    assert data.labels.loc[1, "NR-AR-LBD"] == 1.0


def test_missing_file_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tox21\.csv\.gz"):
        tox21.read(tmp_path)
    path = _write(tmp_path / "t.csv", ["0,CCO"], header="NR-AR,smiles")
    with pytest.raises(DataError, match=r"missing column.*NR-AR-LBD"):
        tox21.read(path)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (_row(labels="0,2,,0,0,0,0,0,0,0,0,"), r"row 2, column 'NR-AR-LBD'.*got '2'"),
        (_row(mol_id="MOL7"), r"row 2: mol_id must look like 'TOX<number>'"),
        (_row(smiles=""), r"row 2 \(mol_id TOX1\) has an empty smiles"),
    ],
)
def test_bad_rows_name_row_and_field(tmp_path, row, match):
    with pytest.raises(DataError, match=match):
        tox21.read(_write(tmp_path / "t.csv", [row]))


def test_repeated_mol_id(tmp_path):
    path = _write(tmp_path / "t.csv", [_row(), _row(smiles="CCN")])
    with pytest.raises(DataError, match="row 3: mol_id 'TOX1' appears twice"):
        tox21.read(path)
