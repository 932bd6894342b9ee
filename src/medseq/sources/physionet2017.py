"""Reader for the PhysioNet/CinC Challenge 2017 AF data (Clifford et al. 2017).

Layout (see ``shared/data/physionet2017/SOURCE.md``): recordings ``Axxxxx.mat`` (MATLAB v4,
one int16 row vector ``val``, 1000 ADC units per mV) with a WFDB header ``Axxxxx.hea``
(300 Hz), either unpacked in a folder or inside ``training2017-A0k.tar.xz`` parts, plus
``REFERENCE-v3.csv`` (``A00001,N``). The label file lists all 8528 recordings while only
some are present, so labels are joined to the recordings found, never the other way round.

The samples are taken from the ``.mat`` file; the header's "initial value" field disagrees
with the first sample in 565 upstream headers and is ignored. The header's sample count is
checked against the ``.mat`` so that a truncated file is an error, not a shorter record.

Reference: Clifford GD, Liu C, Moody B, et al. AF classification from a short single lead
ECG recording: the PhysioNet/Computing in Cardiology Challenge 2017. CinC 2017;44.
"""

from __future__ import annotations

import io
import logging
import lzma
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from medseq.schema import DataError, ReadReport, Signal

logger = logging.getLogger(__name__)

FS_HZ = 300.0
GAIN_ADC_PER_MV = 1000.0
LABELS: tuple[str, ...] = ("N", "A", "O", "~")
REFERENCE_FILE = "REFERENCE-v3.csv"


@dataclass(frozen=True)
class PhysioNet2017Set:
    """Recordings found and their labels.

    Attributes
    ----------
    signals : list of Signal
        One single-channel ``Signal`` per recording present, sorted by record name.
    labels : pandas.Series
        Index record name, values in :data:`LABELS`, for the recordings present only.
    report : ReadReport
        ``n_subjects`` = recordings read; counts of labels listed without a recording.
    """

    signals: list[Signal]
    labels: pd.Series
    report: ReadReport


def parse_header(text: str, where: str) -> tuple[float, int, float, str]:
    """Return ``(fs_hz, n_samples, gain_adc_per_unit, unit)`` from a one-signal WFDB header.

    Raises
    ------
    DataError
        If the record line or the signal line is missing or malformed.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if len(lines) < 2:
        raise DataError(f"{where}: expected a record line and a signal line, got {len(lines)}")
    record = lines[0].split()
    signal = lines[1].split()
    try:
        if int(record[1]) != 1:
            raise DataError(f"{where}: expected 1 signal, got {record[1]}")
        fs_hz, n_samples = float(record[2]), int(record[3])
        gain_text, _, unit = signal[2].partition("/")
        gain = float(gain_text.split("(")[0])
    except (IndexError, ValueError) as err:
        raise DataError(f"{where}: malformed WFDB header ({err}): {lines[:2]!r}") from None
    return fs_hz, n_samples, gain, unit or "mV"


def parse_mat(data: bytes, where: str) -> np.ndarray:
    """Return the int16 ``val`` vector of a CinC 2017 ``.mat`` file.

    Raises
    ------
    DataError
        If the bytes are not a MATLAB file holding a 1 × N ``val`` array.
    """
    try:
        content = scipy.io.loadmat(io.BytesIO(data))
    except Exception as err:  # scipy raises several types for corrupt files
        raise DataError(
            f"{where}: not a readable MATLAB file ({type(err).__name__}: {err})"
        ) from None
    val = content.get("val")
    if val is None:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"{where}: no variable 'val' in the .mat file (has {keys})")
    val = np.asarray(val)
    if val.ndim != 2 or val.shape[0] != 1 or val.shape[1] == 0:
        raise DataError(f"{where}: 'val' must be 1 x N with N > 0, got shape {val.shape}")
    return val[0]


def make_signal(record_id: str, mat: bytes, header: str, where: str) -> Signal:
    """Build the ``Signal`` of one recording (mV) from its ``.mat`` bytes and header text.

    Raises
    ------
    DataError
        On a corrupt file or a sample count that disagrees with the header (truncation).
    """
    fs_hz, n_header, gain, unit = parse_header(header, f"{where}/{record_id}.hea")
    val = parse_mat(mat, f"{where}/{record_id}.mat")
    if len(val) != n_header:
        raise DataError(
            f"{where}/{record_id}.mat: {len(val)} samples but the header says {n_header}; "
            "the file is truncated or does not belong to this header"
        )
    samples = (val.astype(np.float32) / np.float32(gain))[:, None]
    return Signal(record_id, samples, fs_hz, ("ECG",), (unit,))


def _iter_folder(folder: Path) -> Iterator[tuple[str, bytes, str, str]]:
    for mat in sorted(folder.glob("*.mat")):
        hea = mat.with_suffix(".hea")
        if not hea.exists():
            raise DataError(f"{mat}: no header {hea.name} beside it")
        yield mat.stem, mat.read_bytes(), hea.read_text(errors="replace"), str(folder)


def _iter_tar(part: Path) -> Iterator[tuple[str, bytes, str, str]]:
    pending: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(part, "r:*") as tf:
            for member in tf:
                name = Path(member.name)
                if not member.isfile() or name.suffix not in (".mat", ".hea"):
                    continue
                handle = tf.extractfile(member)
                entry = pending.setdefault(name.stem, {})
                entry[name.suffix] = handle.read() if handle else b""
                if len(entry) == 2:
                    del pending[name.stem]
                    yield (
                        name.stem,
                        entry[".mat"],
                        entry[".hea"].decode(errors="replace"),
                        str(part),
                    )
    except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as err:
        raise DataError(
            f"{part}: corrupt or truncated archive ({type(err).__name__}: {err})"
        ) from None
    if pending:
        raise DataError(f"{part}: records without both .mat and .hea: {sorted(pending)[:5]}")


def iter_records(path: str | Path) -> Iterator[Signal]:
    """Yield the recordings under ``path`` one at a time, in record order.

    ``path`` is a folder holding ``*.mat``/``*.hea`` (e.g. an unpacked ``training2017/``),
    a folder holding ``training2017-*.tar.xz`` parts, or one such part.
    """
    path = Path(path)
    if path.is_file():
        sources = [_iter_tar(path)]
    elif path.is_dir():
        parts = sorted(path.glob("*.tar.xz")) + sorted(path.glob("*.tar.gz"))
        if parts:
            sources = [_iter_tar(p) for p in parts]
        elif (path / "training2017").is_dir():
            sources = [_iter_folder(path / "training2017")]
        else:
            sources = [_iter_folder(path)]
    else:
        raise FileNotFoundError(f"{path} does not exist")
    for source in sources:
        for record_id, mat, header, where in source:
            yield make_signal(record_id, mat, header, where)


def read_reference(path: str | Path) -> pd.Series:
    """Read a ``REFERENCE*.csv`` (``A00001,N`` per line, LF or CRLF) into a Series.

    Raises
    ------
    DataError
        On a line without two fields, a label outside :data:`LABELS`, or a repeated name.
    """
    path = Path(path)
    names, labels = [], []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 2 or fields[1] not in LABELS:
            raise DataError(f"{path}:{i}: expected 'name,label' with label in {LABELS}: {line!r}")
        names.append(fields[0])
        labels.append(fields[1])
    series = pd.Series(labels, index=pd.Index(names, name="record_id"), name="label")
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise DataError(f"{path}: record {dup!r} is listed twice")
    return series


def read(
    path: str | Path, *, reference: str | Path | None = None, max_records: int | None = None
) -> PhysioNet2017Set:
    """Read the recordings under ``path`` and their labels.

    Parameters
    ----------
    path : str or Path
        See :func:`iter_records`.
    reference : str or Path, optional
        Label file; by default ``REFERENCE-v3.csv`` in ``path`` (or beside it).
    max_records : int, optional
        Stop after this many recordings (quick runs and tests).

    Raises
    ------
    DataError
        On corrupt files, or a recording absent from the label file.
    """
    path = Path(path)
    if reference is None:
        folder = path if path.is_dir() else path.parent
        candidates = [folder / REFERENCE_FILE, folder.parent / REFERENCE_FILE]
        reference = next((c for c in candidates if c.exists()), candidates[0])
    labels = read_reference(reference)
    signals = []
    for signal in iter_records(path):
        if signal.record_id not in labels.index:
            raise DataError(f"{path}: recording {signal.record_id} is not in {reference}")
        signals.append(signal)
        if max_records is not None and len(signals) >= max_records:
            break
    present = labels.loc[[s.record_id for s in signals]]
    report = ReadReport(source=str(path), n_subjects=len(signals))
    if max_records is None:
        report.add("labels without a recording", len(labels) - len(present))
    logger.info("%s", report.summary())
    return PhysioNet2017Set(signals=signals, labels=present, report=report)
