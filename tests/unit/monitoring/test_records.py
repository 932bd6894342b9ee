"""The torch-free, wfdb-free record reader agrees with the wfdb reader and names bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medseq.monitoring.records import RecordError, read_record
from medseq.paths import dataset_dir
from medseq.sources.wfdb_records import read_record as wfdb_read


def test_format_212_equals_wfdb_including_swapped_leads():
    folder = dataset_dir("mitdb_full")
    ours = read_record(folder / "114", lead="MLII")  # record 114 has V5 first, MLII second
    theirs = wfdb_read(folder, "114")
    assert ours.lead == "MLII" and ours.fs_hz == 360.0
    np.testing.assert_allclose(ours.samples, theirs.samples[:, 1], atol=1e-6)


def test_cinc2017_mat_record_is_read(tmp_path):
    import tarfile

    archive = dataset_dir("physionet2017") / "training2017-A00.tar.xz"
    with tarfile.open(archive) as tar:
        for name in ("training2017/A00001.hea", "training2017/A00001.mat"):
            tar.extract(name, tmp_path, filter="data")
    rec = read_record(tmp_path / "training2017" / "A00001")
    assert rec.fs_hz == 300.0 and len(rec.samples) == 9000
    assert 0.2 < np.ptp(rec.samples) < 10.0  # mV, not ADC units


def test_bad_input_is_named(tmp_path):
    with pytest.raises(RecordError, match="no such WFDB header"):
        read_record(tmp_path / "missing")
    with pytest.raises(RecordError, match="no lead 'V9'"):
        read_record(dataset_dir("mitdb_full") / "100", lead="V9")
    (tmp_path / "r.hea").write_text("r 1 360 1000\nr.dat 212 200 11 1024 0 0 0 MLII\n")
    (tmp_path / "r.dat").write_bytes(b"\x00" * 30)
    with pytest.raises(RecordError, match="header says 1000 samples"):
        read_record(tmp_path / "r")
