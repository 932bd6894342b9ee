"""medseq.sources.physionet2019 on small files written to tmp_path: layout, policy, quirks."""

from __future__ import annotations

import logging
import tarfile

import numpy as np
import pytest

from medseq.schema import DataError
from medseq.sources import physionet2019
from medseq.sources.physionet2019 import HEADER, VARIABLES

HEAD = "|".join(HEADER)


def row(iculos: int, label: int = 0, **cells: object) -> str:
    """One hourly line: NaN everywhere but the given cells, ICULOS and the label."""
    values = {name: "NaN" for name in HEADER}
    values.update({"Age": "70", "Gender": "1", "Unit1": "0", "Unit2": "1", "HospAdmTime": "-2"})
    values.update({k: str(v) for k, v in cells.items()})
    values["ICULOS"], values["SepsisLabel"] = str(iculos), str(label)
    return "|".join(values[name] for name in HEADER)


def write(folder, name: str, lines: list[str], header: str = HEAD) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("\n".join([header, *lines]) + "\n")


@pytest.fixture
def set_a(tmp_path):
    folder = tmp_path / "training_setA"
    write(folder, "p000001.psv", [row(1, HR=80, FiO2=0.5), row(2, HR=82), row(3, Temp=37.1)])
    write(folder, "p000002.psv", [row(4, label=1, HR=120), row(5, label=1, FiO2=40)])
    (folder / "README.txt").write_text("not a record\n")
    return folder


def test_folder_events_static_labels_and_quirks(set_a):
    data = physionet2019.read(set_a)
    events = data.events
    assert events["subject_id"].tolist() == [1, 1, 1, 1, 2]
    assert events["time"].tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert events["code"].tolist() == ["HR", "FiO2", "HR", "Temp", "HR"]
    assert events["value"].tolist() == [80.0, 0.5, 82.0, 37.1, 120.0]
    assert data.static.loc[2, "HospAdmTime"] == -2.0
    assert (data.static["hospital"] == "A").all()
    assert data.labels["sepsis_label"].tolist() == [0, 0, 0, 1, 1]
    counts = data.report.counts
    # FiO2 40 (a percentage where a fraction is expected) is left out and counted, never clipped.
    assert counts["implausible_value:FiO2"] == 1
    assert counts["first_iculos_after_1"] == 1
    assert counts["first_row_labelled"] == 1
    assert counts["ignored_file"] == 1
    assert counts["empty_column:EtCO2"] == 5  # never measured in the set: its 5 rows
    assert data.report.n_events == 5 and data.report.n_subjects == 2


def test_archive_reads_the_same_as_the_folder(set_a, tmp_path):
    archive = tmp_path / "training_setA.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(set_a, arcname="training_setA")
    from_folder, from_archive = physionet2019.read(set_a), physionet2019.read(archive)
    assert from_archive.events.equals(from_folder.events)
    assert from_archive.labels.equals(from_folder.labels)
    assert from_archive.report.counts == from_folder.report.counts


def test_parent_folder_reads_both_sets(set_a, tmp_path):
    write(tmp_path / "training_setB", "p100001.psv", [row(1, HR=70)])
    data = physionet2019.read(tmp_path)
    assert data.static["hospital"].tolist() == ["A", "A", "B"]
    assert data.static.index.tolist() == [1, 2, 100001]


def test_garbled_value_names_file_and_line_or_is_counted(tmp_path):
    folder = tmp_path / "training_setB"
    write(folder, "p100001.psv", [row(1, HR=80), row(2, HR="8O"), row(3, HR=81)])
    with pytest.raises(DataError, match=r"p100001\.psv:3: bad value in column 1 \(HR\).*'8O'"):
        physionet2019.read(folder)
    data = physionet2019.read(folder, on_bad_row="skip")
    assert data.report.counts["bad_row:value"] == 1
    assert data.events["value"].tolist() == [80.0, 81.0]
    assert data.report.counts["iculos_gap"] == 1  # the dropped hour is missing, and counted


@pytest.mark.parametrize("bad", ["inf", "nan", "", "NA"])
def test_spellings_of_missing_or_infinite_are_not_taken_as_values(tmp_path, bad):
    folder = tmp_path / "training_setB"
    write(folder, "p100001.psv", [row(1, HR=80), row(2, HR=bad)])
    with pytest.raises(DataError, match=r"p100001\.psv:3: bad value"):
        physionet2019.read(folder)


def test_wrong_field_count_is_named_or_counted(tmp_path, caplog):
    folder = tmp_path / "training_setB"
    write(folder, "p100001.psv", [row(1, HR=80), row(2) + "|7", row(3, HR=90)])
    with pytest.raises(DataError, match=r"p100001\.psv:3: bad row: expected 41 .* got 42"):
        physionet2019.read(folder)
    with caplog.at_level(logging.WARNING):
        data = physionet2019.read(folder, on_bad_row="warn")
    assert data.report.counts["bad_row:field_count"] == 1
    assert "p100001.psv:3" in caplog.text


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([row(2), row(2)], r"p100001\.psv:3: bad ICULOS 2"),
        ([row(0)], r"p100001\.psv:2: bad ICULOS 0"),
        ([row(1, label=2)], r"p100001\.psv:2: bad SepsisLabel 2"),
        ([], r"p100001\.psv: no hourly rows"),
    ],
)
def test_garbled_file_always_raises(tmp_path, lines, match):
    folder = tmp_path / "training_setB"
    write(folder, "p100001.psv", lines)
    with pytest.raises(DataError, match=match):
        physionet2019.read(folder, on_bad_row="skip")


def test_bad_header_and_bad_names(tmp_path):
    folder = tmp_path / "training_setB"
    write(folder, "p100001.psv", [row(1)], header=HEAD.replace("HR|", "Pulse|"))
    with pytest.raises(DataError, match=r"p100001\.psv:1: bad header"):
        physionet2019.read(folder)
    other = tmp_path / "training_setA"
    write(other, "patient7.psv", [row(1)])
    with pytest.raises(DataError, match=r"pNNNNNN\.psv"):
        physionet2019.read(other)
    with pytest.raises(ValueError, match="hospital='A'"):
        physionet2019.read(_renamed(tmp_path))


def _renamed(tmp_path):
    folder = tmp_path / "somewhere"
    write(folder, "p000001.psv", [row(1)])
    return folder


def test_descriptor_quirks_are_counted_and_the_first_value_kept(tmp_path):
    folder = tmp_path / "training_setA"
    lines = [row(1, Unit1="NaN", Unit2="NaN"), row(2, Unit1="NaN", Unit2="NaN", Age=71)]
    write(folder, "p000003.psv", lines)
    data = physionet2019.read(folder)
    counts = data.report.counts
    assert counts["descriptor_missing:Unit1"] == counts["descriptor_missing:Unit2"] == 1
    assert counts["descriptor_varies:Age"] == 1
    assert data.static.loc[3, "Age"] == 70.0
    assert np.isnan(data.static.loc[3, "Unit1"])


def test_label_reverting_is_counted(tmp_path):
    folder = tmp_path / "training_setA"
    write(folder, "p000004.psv", [row(1, label=1), row(2, label=0)])
    assert physionet2019.read(folder).report.counts["label_reverts"] == 1


def test_crlf_files_read_like_lf(tmp_path):
    folder = tmp_path / "training_setA"
    folder.mkdir()
    text = "\r\n".join([HEAD, row(1, HR=80), row(2, HR=81)]) + "\r\n"
    (folder / "p000005.psv").write_bytes(text.encode())
    assert physionet2019.read(folder).events["value"].tolist() == [80.0, 81.0]


def test_not_an_archive(tmp_path):
    bad = tmp_path / "training_setA.tar.gz"
    bad.write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(DataError, match=r"training_setA\.tar\.gz"):
        physionet2019.read(bad)
    assert len(VARIABLES) == 34  # the 34 time-varying columns of SOURCE.md


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_tar_format_reads_the_same(set_a, tmp_path, fmt):
    """The header walk (ustar with a name prefix, GNU) and tarfile's fallback (pax long names)."""
    deep = "training_setA/" + "d" * 90 + ("/" + "e" * 60 if fmt == tarfile.PAX_FORMAT else "")
    archive = tmp_path / "training_setA.tar.gz"
    with tarfile.open(archive, "w:gz", format=fmt) as tar:
        for path in sorted(set_a.iterdir()):
            tar.add(path, arcname=f"{deep}/{path.name}")
    got, expected = physionet2019.read(archive), physionet2019.read(set_a)
    assert got.events.equals(expected.events)
    assert got.report.counts == expected.report.counts
