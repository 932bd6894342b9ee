"""Reader for the Bonn University EEG database (Andrzejak et al. 2001): sets Z, O, N, F, S.

Five sets of 100 single-channel segments, 4097 samples at 173.61 Hz (23.6 s) each, one
segment per text file: one signed integer per line, no header, no time column (see
``shared/data/bonn_eeg/SOURCE.md``). The set is the first letter of the file name
(``Z001.txt`` .. ``S100.txt``); set N's files end in upper-case ``.TXT`` upstream.

Layouts read (``path`` may be any of them):

- the staged archive ``bonn_eeg.tar.xz`` (members ``bonn_eeg/<SET>/<name>``), or the folder
  holding it;
- the upstream ("official") download: the five zip files ``Z.zip`` .. ``S.zip`` (any case,
  e.g. ``z.zip``), each holding one set's text files, possibly under a folder and beside
  macOS ``__MACOSX/`` metadata, in one folder;
- any folder of the text files, flat or in per-set subfolders (the zips or the archive
  unpacked).

Nothing is repaired silently: a file that is not 4097 integer lines is an error naming the
file and the line; the quirks found (upper-case extensions, LF instead of CRLF line endings,
samples at the converter maximum, macOS metadata skipped) are counted in the report.

Reference: Andrzejak RG, Lehnertz K, Mormann F, Rieke C, David P, Elger CE. Indications of
nonlinear deterministic and finite-dimensional structures in time series of brain electrical
activity. Phys Rev E 64:061907 (2001).
"""

from __future__ import annotations

import logging
import lzma
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medseq.schema import DataError, ReadReport, Signal

logger = logging.getLogger(__name__)

SETS: tuple[str, ...] = ("Z", "O", "N", "F", "S")
FS_HZ = 173.61
N_SAMPLES = 4097
ADC_MAX = 2047  # 12-bit converter: three segments (F009, S065, S059) are clipped here
UNIT = "adu"  # raw amplifier units; the files do not state a physical unit
ARCHIVE = "bonn_eeg.tar.xz"
SEGMENT_NAME = re.compile(r"^([ZONFS])(\d{3})\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class BonnSet:
    """The segments found, in (set, number) order.

    Attributes
    ----------
    signals : list of Signal
        One ``(4097, 1)`` signal per segment, in raw amplifier units (``"adu"``), named as
        its file without the extension (``"Z001"``).
    sets : pandas.Series
        Index record name, value the set letter (one of :data:`SETS`).
    report : ReadReport
        ``n_subjects`` = segments read (there are no subject labels: see SOURCE.md), and the
        quirks counted.
    """

    signals: list[Signal]
    sets: pd.Series
    report: ReadReport


def parse_segment(data: bytes, where: str, report: ReadReport | None = None) -> np.ndarray:
    """The 4097 samples of one segment file, as int16.

    Raises
    ------
    DataError
        Naming ``where`` and the line: a line that is not an integer, a value outside the
        12-bit range, or a sample count other than 4097 (a truncated or padded file).
    """
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        line_no = data[: err.start].count(b"\n") + 1
        raise DataError(f"{where}:{line_no}: not ASCII text (byte {err.start}); expected one "
                        "integer per line") from None  # fmt: skip
    lines = text.splitlines()
    if report is not None:
        report.add("files with LF (not CRLF) line endings", "\r\n" not in text and "\n" in text)
        report.add("files without a final newline", not text.endswith("\n"))
    values = np.empty(len(lines), np.int64)
    for i, line in enumerate(lines):
        try:
            values[i] = int(line)
        except ValueError:
            raise DataError(
                f"{where}:{i + 1}: expected one integer sample per line, got {line!r}"
            ) from None
    if len(values) != N_SAMPLES:
        raise DataError(
            f"{where}: {len(values)} samples (lines), expected {N_SAMPLES} (23.6 s at "
            f"{FS_HZ} Hz); the file is truncated or padded after line {len(values)}"
        )
    out_of_range = np.flatnonzero(np.abs(values) > ADC_MAX + 1)
    if out_of_range.size:
        i = int(out_of_range[0])
        raise DataError(
            f"{where}:{i + 1}: sample {values[i]} is outside the 12-bit range "
            f"[-{ADC_MAX + 1}, {ADC_MAX}] of the recording"
        )
    if report is not None:
        report.add(
            f"samples at the converter maximum {ADC_MAX} (clipped)", (values == ADC_MAX).sum()
        )
    return values.astype(np.int16)


Member = tuple[str, bytes]  # (path inside its container, bytes)


def _from_tar(path: Path) -> Iterator[Member]:
    try:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                handle = tf.extractfile(member) if member.isfile() else None
                if handle is not None:
                    yield f"{path}/{member.name}", handle.read()
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as err:
        raise DataError(
            f"{path}: corrupt or truncated archive ({type(err).__name__}: {err})"
        ) from None


def _from_zip(path: Path) -> Iterator[Member]:
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield f"{path}/{info.filename}", zf.read(info)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise DataError(
            f"{path}: corrupt or truncated zip file ({type(err).__name__}: {err})"
        ) from None


def _containers(path: Path) -> list[Path]:
    """The archives to read under ``path``, or ``[path]`` for a folder of text files."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    if (path / ARCHIVE).is_file():
        return [path / ARCHIVE]
    zips = sorted(
        p for p in path.iterdir() if p.suffix.lower() == ".zip" and p.stem.upper() in SETS
    )
    return zips or [path]


def iter_members(path: str | Path) -> Iterator[Member]:
    """Every file of the layout at ``path`` (see the module docstring), with its bytes."""
    for container in _containers(Path(path)):
        if container.is_dir():
            for file in sorted(p for p in container.rglob("*") if p.is_file()):
                yield str(file), file.read_bytes()
        elif container.suffix.lower() == ".zip":
            yield from _from_zip(container)
        elif tarfile.is_tarfile(container):
            yield from _from_tar(container)
        else:
            raise DataError(
                f"{container}: not a tar archive, a zip file or a folder; expected "
                f"{ARCHIVE}, the five set zips or a folder of Z001.txt .. S100.txt"
            )


def _segment_name(where: str, report: ReadReport) -> str | None:
    """``"Z001"`` for a segment file, None (counted) for anything else."""
    parts = PurePosixPath(where.replace("\\", "/")).parts
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        report.add("macOS metadata files skipped")
        return None
    match = SEGMENT_NAME.match(parts[-1])
    if match is None:
        report.add("other files ignored")
        return None
    name = match.group(1).upper() + match.group(2)
    folder = parts[-2].upper() if len(parts) > 1 else ""
    if folder in SETS and folder != name[0]:
        raise DataError(f"{where}: a set-{name[0]} file in folder {parts[-2]!r}; the set is "
                        "the file name's first letter, so the file is misplaced")  # fmt: skip
    if parts[-1].endswith(".TXT"):
        report.add("upper-case .TXT extension (set N upstream)")
    return name


def read(path: str | Path, *, sets: tuple[str, ...] = SETS) -> BonnSet:
    """Read the segments of ``sets`` under ``path`` (any layout of the module docstring).

    Raises
    ------
    DataError
        On a malformed or truncated segment file (naming file and line), a corrupt
        archive, a segment found twice, or no segment at all.
    """
    unknown = sorted(set(sets) - set(SETS))
    if unknown:
        raise ValueError(f"sets must be among {SETS}, got {unknown}")
    report = ReadReport(source=str(path))
    found: dict[str, tuple[str, Signal]] = {}
    for where, data in iter_members(path):
        name = _segment_name(where, report)
        if name is None or name[0] not in sets:
            continue
        if name in found:
            raise DataError(f"{where}: segment {name} was already read from {found[name][0]}")
        samples = parse_segment(data, where, report)[:, None]
        found[name] = (where, Signal(name, samples, FS_HZ, ("EEG",), (UNIT,)))
    if not found:
        raise DataError(f"{path}: no segment files (Z001.txt .. S100.txt) found")
    names = sorted(found, key=lambda n: (SETS.index(n[0]), n))
    series = pd.Series([n[0] for n in names], index=pd.Index(names, name="record_id"), name="set")
    report.n_subjects = len(names)
    for letter in sets:
        report.add(
            f"set {letter} segments missing of 100", max(0, 100 - int((series == letter).sum()))
        )
    logger.info("%s", report.summary())
    return BonnSet(signals=[found[n][1] for n in names], sets=series, report=report)
