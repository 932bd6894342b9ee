"""The Bonn EEG reader on small files written here: layouts, quirks counted, clear errors."""

import tarfile
import zipfile

import numpy as np
import pytest

from medseq.schema import DataError
from medseq.sources import bonn_eeg

N = bonn_eeg.N_SAMPLES


def _text(values, newline: str = "\r\n") -> bytes:
    return ("".join(f"{int(v)}{newline}" for v in values)).encode("ascii")


def _segment(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-600, 600, N)


def _write_folder(root, names=("Z001.txt", "O002.txt", "N003.TXT", "F004.txt", "S005.txt")):
    expected = {}
    for k, name in enumerate(names):
        folder = root / name[0]
        folder.mkdir(parents=True, exist_ok=True)
        values = _segment(k)
        (folder / name).write_bytes(_text(values))
        expected[name[:4]] = values
    return expected


def test_folder_with_set_subfolders_reads_every_segment_in_set_order(tmp_path):
    expected = _write_folder(tmp_path)
    out = bonn_eeg.read(tmp_path)
    assert [s.record_id for s in out.signals] == ["Z001", "O002", "N003", "F004", "S005"]
    assert out.sets.tolist() == ["Z", "O", "N", "F", "S"]
    for s in out.signals:
        assert s.samples.shape == (N, 1) and s.fs_hz == bonn_eeg.FS_HZ and s.units == ("adu",)
        np.testing.assert_array_equal(s.samples[:, 0], expected[s.record_id])
    assert out.report.counts["upper-case .TXT extension (set N upstream)"] == 1
    assert out.report.counts["set Z segments missing of 100"] == 99


def test_staged_tar_xz_and_upstream_zips_give_the_same_segments(tmp_path):
    expected = _write_folder(tmp_path / "bonn_eeg")
    with tarfile.open(tmp_path / "bonn_eeg.tar.xz", "w:xz") as tf:
        tf.add(tmp_path / "bonn_eeg", arcname="bonn_eeg")
    zips = tmp_path / "official"
    zips.mkdir()
    for letter in "ZONFS":
        with zipfile.ZipFile(zips / f"{letter.lower()}.zip", "w") as zf:
            for name, values in expected.items():
                if name[0] == letter:
                    zf.writestr(f"{letter}/{name}.txt", _text(values))
                    zf.writestr(f"__MACOSX/{letter}/._{name}.txt", b"\x00\x05junk")
    from_tar = bonn_eeg.read(tmp_path / "bonn_eeg.tar.xz")
    from_zips = bonn_eeg.read(zips)
    for a, b in zip(from_tar.signals, from_zips.signals, strict=True):
        assert a.record_id == b.record_id
        np.testing.assert_array_equal(a.samples, b.samples)
    assert from_zips.report.counts["macOS metadata files skipped"] == 5
    assert len(from_tar.signals) == 5


def test_quirks_are_counted_not_repaired(tmp_path):
    values = _segment(0)
    values[:3] = bonn_eeg.ADC_MAX
    (tmp_path / "F009.txt").write_bytes(_text(values, newline="\n")[:-1])  # LF, no final newline
    (tmp_path / "notes.md").write_text("not a segment")
    out = bonn_eeg.read(tmp_path)
    counts = out.report.counts
    assert counts["samples at the converter maximum 2047 (clipped)"] == 3
    assert counts["files with LF (not CRLF) line endings"] == 1
    assert counts["files without a final newline"] == 1
    assert counts["other files ignored"] == 1
    assert out.signals[0].samples.max() == bonn_eeg.ADC_MAX


def test_truncated_file_names_the_file_and_the_last_line(tmp_path):
    (tmp_path / "S001.txt").write_bytes(_text(_segment(0)[:4000]))
    with pytest.raises(DataError, match=r"S001\.txt: 4000 samples .*expected 4097.*line 4000"):
        bonn_eeg.read(tmp_path)


def test_malformed_line_is_named_with_its_number(tmp_path):
    lines = _text(_segment(0)).split(b"\r\n")
    lines[122] = b"12.5"
    (tmp_path / "O010.txt").write_bytes(b"\r\n".join(lines))
    with pytest.raises(DataError, match=r"O010\.txt:123: expected one integer .*'12\.5'"):
        bonn_eeg.read(tmp_path)


def test_non_ascii_and_out_of_range_values_are_errors(tmp_path):
    values = _segment(0)
    (tmp_path / "Z001.txt").write_bytes(_text(values).replace(b"\r\n", "\r\n\u00b5".encode(), 1))
    with pytest.raises(DataError, match=r"Z001\.txt:2: not ASCII"):
        bonn_eeg.read(tmp_path)
    values[9] = 40000
    (tmp_path / "Z001.txt").write_bytes(_text(values))
    with pytest.raises(DataError, match=r"Z001\.txt:10: sample 40000 is outside the 12-bit"):
        bonn_eeg.read(tmp_path)


def test_truncated_archive_duplicates_misplaced_and_empty_are_errors(tmp_path):
    _write_folder(tmp_path / "bonn_eeg")
    archive = tmp_path / "bonn_eeg.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        tf.add(tmp_path / "bonn_eeg", arcname="bonn_eeg")
    cut = tmp_path / "cut" / "bonn_eeg.tar.xz"
    cut.parent.mkdir()
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        bonn_eeg.read(cut)
    (tmp_path / "bonn_eeg" / "Z" / "extra").mkdir()
    (tmp_path / "bonn_eeg" / "Z" / "extra" / "Z001.txt").write_bytes(_text(_segment(1)))
    with pytest.raises(DataError, match="segment Z001 was already read from"):
        bonn_eeg.read(tmp_path / "bonn_eeg")
    misplaced = tmp_path / "misplaced" / "O"
    misplaced.mkdir(parents=True)
    (misplaced / "S001.txt").write_bytes(_text(_segment(2)))
    with pytest.raises(DataError, match="a set-S file in folder 'O'"):
        bonn_eeg.read(misplaced.parent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no segment files"):
        bonn_eeg.read(tmp_path / "empty")
