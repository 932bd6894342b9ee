"""CinC 2017 reader on files built in tmp_path: good layouts and clear errors."""

import io
import lzma
import tarfile

import numpy as np
import pytest
import scipy.io

from medseq.schema import DataError
from medseq.sources import physionet2017


def _mat_bytes(val: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"val": val}, format="4")
    return buffer.getvalue()


def _header(name: str, n: int) -> str:
    return f"{name} 1 300 {n} 05:05:15 1/05/2000 \r\n{name}.mat 16+24 1000/mV 16 0 -1 0 0 ECG \r\n"


def _write_folder(folder, records: dict[str, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in records.items():
        val = (np.arange(n, dtype=np.int16) % 200 - 100)[None, :]
        (folder / f"{name}.mat").write_bytes(_mat_bytes(val))
        (folder / f"{name}.hea").write_text(_header(name, n))


def _write_reference(path, labels: dict[str, str]) -> None:
    path.write_text("".join(f"{k},{v}\n" for k, v in labels.items()))


def test_reads_folder_converts_to_mv_and_joins_labels(tmp_path):
    _write_folder(tmp_path / "training2017", {"A00001": 900, "A00002": 600})
    _write_reference(tmp_path / "REFERENCE-v3.csv", {"A00001": "N", "A00002": "A", "A00003": "O"})
    data = physionet2017.read(tmp_path)
    first = data.signals[0]
    assert [s.record_id for s in data.signals] == ["A00001", "A00002"]
    assert first.samples.shape == (900, 1) and first.fs_hz == 300.0
    assert first.units == ("mV",)
    np.testing.assert_allclose(first.samples[:3, 0], [-0.1, -0.099, -0.098], rtol=1e-6)
    assert data.labels.to_dict() == {"A00001": "N", "A00002": "A"}
    assert data.report.counts == {"labels without a recording": 1}


def test_reads_tar_xz_parts(tmp_path):
    _write_folder(tmp_path / "src" / "training2017", {"A00001": 300})
    part = tmp_path / "data" / "training2017-A00.tar.xz"
    part.parent.mkdir()
    with tarfile.open(part, "w:xz") as tf:
        tf.add(tmp_path / "src" / "training2017", arcname="training2017")
    _write_reference(tmp_path / "data" / "REFERENCE-v3.csv", {"A00001": "~"})
    data = physionet2017.read(tmp_path / "data")
    assert len(data.signals) == 1 and data.labels["A00001"] == "~"


def test_truncated_archive_is_a_clear_error(tmp_path):
    _write_folder(tmp_path / "src", {f"A0000{i}": 3000 for i in range(1, 4)})
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w") as tf:
        tf.add(tmp_path / "src", arcname="training2017")
    packed = lzma.compress(blob.getvalue())
    part = tmp_path / "training2017-A00.tar.xz"
    part.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        list(physionet2017.iter_records(part))


def test_corrupt_mat_names_the_file(tmp_path):
    _write_folder(tmp_path, {"A00001": 300})
    (tmp_path / "A00001.mat").write_bytes(b"not a matlab file at all")
    with pytest.raises(DataError, match=r"A00001\.mat: not a readable MATLAB file"):
        list(physionet2017.iter_records(tmp_path))


def test_truncated_mat_disagrees_with_header(tmp_path):
    _write_folder(tmp_path, {"A00001": 300})
    (tmp_path / "A00001.hea").write_text(_header("A00001", 9000))
    with pytest.raises(DataError, match="300 samples but the header says 9000"):
        list(physionet2017.iter_records(tmp_path))


def test_mat_without_val_and_missing_header(tmp_path):
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"x": np.zeros((1, 5))}, format="4")
    (tmp_path / "A00001.mat").write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match=r"no header A00001\.hea"):
        list(physionet2017.iter_records(tmp_path))
    (tmp_path / "A00001.hea").write_text(_header("A00001", 5))
    with pytest.raises(DataError, match="no variable 'val'"):
        list(physionet2017.iter_records(tmp_path))


def test_bad_reference_lines(tmp_path):
    path = tmp_path / "REFERENCE-v3.csv"
    path.write_text("A00001,N\r\nA00002,X\r\n")
    with pytest.raises(DataError, match=r"REFERENCE-v3.csv:2"):
        physionet2017.read_reference(path)
    path.write_text("A00001,N\nA00001,A\n")
    with pytest.raises(DataError, match="listed twice"):
        physionet2017.read_reference(path)


def test_recording_without_label_is_an_error(tmp_path):
    _write_folder(tmp_path, {"A00009": 300})
    _write_reference(tmp_path / "REFERENCE-v3.csv", {"A00001": "N"})
    with pytest.raises(DataError, match="A00009 is not in"):
        physionet2017.read(tmp_path)


def test_malformed_header(tmp_path):
    with pytest.raises(DataError, match="malformed WFDB header"):
        physionet2017.parse_header("A00001 1 x 9000\nA00001.mat 16 1000/mV\n", "h")
    with pytest.raises(DataError, match="expected 1 signal"):
        physionet2017.parse_header("A00001 2 300 9000\nA00001.mat 16 1000/mV\n", "h")
