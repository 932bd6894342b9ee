"""The Sleep-EDF feature/hypnogram reader on small files written here, broken on purpose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseq.schema import DataError, ReadReport
from medseq.sources import sleepedf_features as sef


def write_hypnogram(path: Path, annotations: list[tuple[int, int, str]], *, raw: bytes = b""):
    """A minimal EDF+ hypnogram: one 'EDF Annotations' signal in one data record."""
    tals = b"+0\x14\x14\x00" + b"".join(
        f"+{onset}\x15{duration}\x14{text}\x14\x00".encode()
        for onset, duration, text in annotations
    )
    tals += raw
    samples = (len(tals) + 1) // 2 + 8
    data = tals.ljust(2 * samples, b"\x00")
    header = (
        b"0".ljust(8) + b"X F X Female_33yr".ljust(80) + b"Startdate X".ljust(80)
        + b"24.04.89" + b"16.13.00" + b"512".ljust(8) + b"EDF+C".ljust(44)
        + b"1".ljust(8) + b"0".ljust(8) + b"1".ljust(4)
    )  # fmt: skip
    signal = (
        b"EDF Annotations".ljust(16) + b"".ljust(80) + b"".ljust(8) + b"0".ljust(8)
        + b"1".ljust(8) + b"-32768".ljust(8) + b"32767".ljust(8) + b"".ljust(80)
        + str(samples).encode().ljust(8) + b"".ljust(32)
    )  # fmt: skip
    path.write_bytes(header + signal + data)
    return path


STAGED = [(0, 120, "Sleep stage W"), (120, 60, "Sleep stage 1"), (180, 30, "Movement time"),
          (210, 90, "Sleep stage 2"), (300, 30, "Sleep stage 4"), (330, 60, "Sleep stage R"),
          (390, 60, "Sleep stage ?")]  # fmt: skip
STAGES = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4])  # movement at epoch 6 dropped


def night(tmp_path: Path, stages=STAGES, x=None, annotations=STAGED) -> Path:
    x = np.random.default_rng(0).normal(size=(len(stages), 72)) if x is None else x
    np.savez_compressed(tmp_path / "SC4001E0.npz", X=x, y=np.asarray(stages))
    write_hypnogram(tmp_path / "SC4001EC-Hypnogram.edf", annotations)
    return tmp_path / "SC4001E0.npz"


def test_a_good_night_is_aligned_to_its_hypnogram_and_its_gaps_counted(tmp_path):
    report = ReadReport(source="t")
    got = sef.read_night(night(tmp_path), report=report)
    assert got.night_id == 4001 and got.subject == 0
    assert got.epoch.tolist() == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert report.counts["movement epochs between rows (dropped upstream)"] == 1
    assert "hypnogram epochs no annotation covers (unscored)" not in report.counts
    assert got.hypnogram[-2:].tolist() == [sef.UNSCORED, sef.UNSCORED]


def test_a_truncated_npz_is_an_error_naming_the_file(tmp_path):
    path = night(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"SC4001E0\.npz: unreadable \.npz.*truncated"):
        sef.read_night(path)


def test_malformed_arrays_name_the_row(tmp_path):
    x = np.zeros((len(STAGES), 72))
    x[5, 3] = np.nan
    with pytest.raises(DataError, match="row 5 of X holds NaN"):
        sef.read_night(night(tmp_path, x=x))
    bad = STAGES.copy()
    bad[3] = 7
    with pytest.raises(DataError, match="row 3 of y is 7"):
        sef.read_night(night(tmp_path, stages=bad))
    np.savez(tmp_path / "SC4001E0.npz", X=np.zeros((3, 72)))
    with pytest.raises(DataError, match=r"missing arrays \['y'\]"):
        sef.read_features(tmp_path / "SC4001E0.npz")


def test_stages_that_disagree_with_the_hypnogram_name_the_row(tmp_path):
    wrong = STAGES.copy()
    wrong[7] = 3
    with pytest.raises(DataError, match="row 7 has stage N3 but the hypnogram scores epoch 8"):
        sef.read_night(night(tmp_path, stages=wrong))


def test_a_feature_file_shorter_than_its_hypnogram_is_counted(tmp_path):
    report = ReadReport(source="t")
    got = sef.read_night(night(tmp_path, stages=STAGES[:9]), report=report)
    assert len(got.stages) == 9
    assert report.counts["scored hypnogram epochs past the end of a truncated feature file"] == 3


def test_a_truncated_hypnogram_is_an_error(tmp_path):
    path = night(tmp_path)
    edf = tmp_path / "SC4001EC-Hypnogram.edf"
    edf.write_bytes(edf.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"Hypnogram\.edf: truncated: the header announces"):
        sef.read_night(path)
    edf.write_bytes(b"0       X F")
    with pytest.raises(DataError, match="truncated EDF header: 11 bytes"):
        sef.read_night(path)


def test_a_malformed_annotation_names_its_number(tmp_path):
    path = night(tmp_path)
    write_hypnogram(tmp_path / "SC4001EC-Hypnogram.edf", STAGED, raw=b"garbage\x14x\x14\x00")
    with pytest.raises(DataError, match=r"annotation 8 \(byte \d+ of the annotation signal\)"):
        sef.read_night(path)


def test_an_unknown_stage_text_follows_the_policy(tmp_path):
    odd = [*STAGED[:-1], (390, 60, "Lights on")]
    path = night(tmp_path, annotations=odd)
    with pytest.raises(DataError, match="annotation 6 has the unknown text 'Lights on'"):
        sef.read_night(path)
    report = ReadReport(source="t")
    got = sef.read_night(path, on_unknown="skip", report=report)
    assert report.counts["epochs with an unknown annotation text ('Lights on')"] == 2
    assert got.hypnogram[-1] == sef.UNKNOWN
    with pytest.raises(ValueError, match="on_unknown must be one of"):
        sef.read_night(path, on_unknown="drop")


def test_annotations_off_the_epoch_grid_are_an_error(tmp_path):
    path = night(tmp_path, annotations=[(0, 45, "Sleep stage W"), *STAGED[1:]])
    with pytest.raises(DataError, match=r"annotation 0 .* not on the 30-s epoch grid"):
        sef.read_night(path)


def test_a_folder_without_feature_files_and_a_missing_hypnogram(tmp_path):
    with pytest.raises(DataError, match=r"no SC4ssNE0\.npz feature files"):
        sef.read_folder(tmp_path)
    night(tmp_path)
    (tmp_path / "SC4001EC-Hypnogram.edf").unlink()
    with pytest.raises(DataError, match="expected one hypnogram SC4001"):
        sef.read_folder(tmp_path)
