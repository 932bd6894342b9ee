"""WFDB reader on records written in tmp_path with ``wfdb`` itself, plain and xz-compressed."""

import lzma

import numpy as np
import pytest
import wfdb

from medseq.schema import DataError
from medseq.sources import wfdb_records

FS_HZ = 360
N = 2000


@pytest.fixture
def record_dir(tmp_path):
    t = np.arange(N) / FS_HZ
    signal = np.stack([np.sin(2 * np.pi * t), 0.5 * np.cos(2 * np.pi * t)], axis=1)
    wfdb.wrsamp(
        "rec",
        fs=FS_HZ,
        units=["mV", "mV"],
        sig_name=["MLII", "V1"],
        p_signal=signal,
        fmt=["212", "212"],
        adc_gain=[200.0, 200.0],
        baseline=[1024, 1024],
        write_dir=str(tmp_path),
    )
    wfdb.wrann(
        "rec", "atr", np.array([100, 460, 820]), symbol=["N", "V", "+"], write_dir=str(tmp_path)
    )
    return tmp_path


def _compress(folder, name="rec.dat"):
    data = (folder / name).read_bytes()
    (folder / f"{name}.xz").write_bytes(lzma.compress(data))
    (folder / name).unlink()
    return folder / f"{name}.xz"


def test_reads_plain_record_with_annotations(record_dir):
    s = wfdb_records.read_record(record_dir, "rec")
    assert s.samples.shape == (N, 2) and s.fs_hz == FS_HZ
    assert s.channel_names == ("MLII", "V1") and s.units == ("mV", "mV")
    assert s.annotation_samples.tolist() == [100, 460, 820]
    assert s.annotation_symbols == ("N", "V", "+")
    t = np.arange(N) / FS_HZ
    np.testing.assert_allclose(s.samples[:, 0], np.sin(2 * np.pi * t), atol=1 / 200)


def test_reads_xz_record_without_touching_the_folder(record_dir):
    _compress(record_dir)
    before = sorted(p.name for p in record_dir.iterdir())
    s = wfdb_records.read_record(record_dir, "rec", annotator=None, channels=[1])
    assert s.samples.shape == (N, 1) and s.channel_names == ("V1",)
    assert len(s.annotation_samples) == 0
    assert sorted(p.name for p in record_dir.iterdir()) == before


def test_corrupt_xz_is_a_clear_error(record_dir):
    packed = _compress(record_dir)
    packed.write_bytes(packed.read_bytes()[:40])
    with pytest.raises(DataError, match=r"rec\.dat\.xz: corrupt or truncated xz"):
        wfdb_records.read_record(record_dir, "rec")


def test_truncated_dat_is_a_clear_error(record_dir):
    dat = record_dir / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:300])
    with pytest.raises(DataError, match="rec"):
        wfdb_records.read_record(record_dir, "rec")


def test_missing_files(record_dir):
    with pytest.raises(FileNotFoundError, match=r"nope\.hea"):
        wfdb_records.read_record(record_dir, "nope")
    (record_dir / "rec.atr").unlink()
    with pytest.raises(FileNotFoundError, match=r"rec\.atr does not exist"):
        wfdb_records.read_record(record_dir, "rec")
    (record_dir / "rec.dat").unlink()
    with pytest.raises(FileNotFoundError, match=r"rec\.dat or rec\.dat\.xz"):
        wfdb_records.read_record(record_dir, "rec", annotator=None)


def test_corrupt_annotation_file(record_dir):
    (record_dir / "rec.atr").write_bytes(b"\xff" * 7)
    with pytest.raises(DataError, match=r"rec\.atr: (unreadable|truncated) annotation file"):
        wfdb_records.read_record(record_dir, "rec")


def test_list_records(record_dir):
    assert wfdb_records.list_records(record_dir) == ["rec"]
    (record_dir / "RECORDS").write_text("b\na\n")
    assert wfdb_records.list_records(record_dir) == ["b", "a"]
