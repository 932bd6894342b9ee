"""Reader for WFDB records (e.g. the MIT-BIH Arrhythmia Database) through the ``wfdb`` library.

A record is ``NAME.hea`` + its signal file(s) + optionally an annotation file
``NAME.<annotator>`` (``atr`` for MIT-BIH reference beat labels). Signal files may be stored
xz-compressed (``NAME.dat.xz``, as in ``shared/data/mitdb_full``): they are decompressed with
:mod:`lzma` into a temporary directory that is removed after reading, so the data folder is
never modified and ``wfdb`` reads an ordinary record.

Reference: Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. IEEE Eng Med
Biol Mag 2001;20(3):45-50. WFDB formats: https://physionet.org/physiotools/wag/
"""

from __future__ import annotations

import logging
import lzma
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import wfdb

from medseq.schema import DataError, Signal

logger = logging.getLogger(__name__)

MITDB_RECORDS: tuple[str, ...] = (
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "111", "112",
    "113", "114", "115", "116", "117", "118", "119", "121", "122", "123", "124", "200",
    "201", "202", "203", "205", "207", "208", "209", "210", "212", "213", "214", "215",
    "217", "219", "220", "221", "222", "223", "228", "230", "231", "232", "233", "234",
)  # fmt: skip


@contextmanager
def _quiet_wfdb() -> Iterator[None]:
    """Silence the pandas deprecation warnings that ``wfdb`` 4.3 raises on every read."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"wfdb\.")
        yield


def list_records(folder: str | Path) -> list[str]:
    """Record names from the folder's ``RECORDS`` file, or from its ``*.hea`` files."""
    folder = Path(folder)
    listing = folder / "RECORDS"
    if listing.exists():
        return [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
    return sorted(p.stem for p in folder.glob("*.hea"))


#: Bytes per sample of the WFDB signal formats whose file size the header fixes.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "212": 1.5}


def _check_length(header: wfdb.Record, name: str, path: Path, shown: Path) -> None:
    """A signal file shorter than its header says is truncated: refuse it by name.

    ``wfdb`` would otherwise fail deep inside numpy (a broadcast error) or, for some
    formats, return fewer samples without saying so.
    """
    formats = [
        f for f, n in zip(header.fmt or [], header.file_name or [], strict=False) if n == name
    ]
    offsets = [
        o or 0
        for o, n in zip(header.byte_offset or [], header.file_name or [], strict=False)
        if n == name
    ]
    if not formats or len(set(formats)) != 1 or formats[0] not in _BYTES_PER_SAMPLE:
        return
    if not header.sig_len:
        return
    need = int(np.ceil(header.sig_len * len(formats) * _BYTES_PER_SAMPLE[formats[0]]))
    need += max(offsets, default=0)
    have = path.stat().st_size
    if have < need:
        raise DataError(
            f"{shown}: truncated signal file: {have} bytes, the header needs {need} "
            f"({header.sig_len} samples x {len(formats)} channels in format {formats[0]})"
        )


def _check_annotation_end(path: Path) -> None:
    """An MIT-format annotation file ends with the two zero bytes of its end marker; a
    file without them was cut short, and ``wfdb`` would return the beats before the cut."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 2))
        tail = handle.read()
    if size < 2 or tail != b"\x00\x00":
        raise DataError(f"{path}: truncated annotation file (no end-of-file marker)")


def _signal_files(header: wfdb.Record) -> list[str]:
    return sorted({name for name in (header.file_name or []) if name})


def _stage(folder: Path, record: str, tmp: Path) -> Path:
    """Copy the header and decompress/copy each signal file of ``record`` into ``tmp``."""
    shutil.copyfile(folder / f"{record}.hea", tmp / f"{record}.hea")
    with _quiet_wfdb():
        header = wfdb.rdheader(str(tmp / record))
    for name in _signal_files(header):
        plain, packed = folder / name, folder / f"{name}.xz"
        if plain.exists():
            shutil.copyfile(plain, tmp / name)
        elif packed.exists():
            try:
                with lzma.open(packed) as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (lzma.LZMAError, EOFError) as err:
                raise DataError(f"{packed}: corrupt or truncated xz file ({err})") from None
        else:
            raise FileNotFoundError(f"{folder}: record {record} needs {name} or {name}.xz")
        _check_length(header, name, tmp / name, folder / name)
    return tmp / record


def _read_annotations(folder: Path, record: str, annotator: str, n_samples: int):
    path = folder / f"{record}.{annotator}"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (pass annotator=None to skip)")
    _check_annotation_end(path)
    try:
        with _quiet_wfdb():
            ann = wfdb.rdann(str(folder / record), annotator)
    except Exception as err:  # wfdb raises several types on corrupt annotation files
        raise DataError(
            f"{path}: unreadable annotation file ({type(err).__name__}: {err})"
        ) from None
    positions = np.asarray(ann.sample, dtype=np.int64)
    symbols = tuple(ann.symbol)
    inside = (positions >= 0) & (positions < n_samples)
    if not inside.all():
        logger.warning("%s: %d annotations outside the signal dropped", path, (~inside).sum())
    return positions[inside], tuple(s for s, keep in zip(symbols, inside, strict=True) if keep)


def _read_signals(folder: Path, record: str, channels: list[int] | None) -> wfdb.Record:
    if not (folder / f"{record}.hea").exists():
        raise FileNotFoundError(f"{folder / record}.hea does not exist")
    with tempfile.TemporaryDirectory(prefix="medseq-wfdb-") as tmp:
        staged = _stage(folder, record, Path(tmp))
        try:
            with _quiet_wfdb():
                rec = wfdb.rdrecord(str(staged), channels=channels)
        except Exception as err:  # wfdb raises ValueError, IndexError... on bad files
            raise DataError(
                f"{folder / record}: unreadable record ({type(err).__name__}: {err})"
            ) from None
    samples = rec.p_signal
    if samples is None or samples.shape[0] != rec.sig_len:
        got = None if samples is None else samples.shape[0]
        raise DataError(f"{folder / record}: header says {rec.sig_len} samples, read {got}")
    return rec


def read_record(
    folder: str | Path,
    record: str,
    *,
    annotator: str | None = "atr",
    channels: list[int] | None = None,
) -> Signal:
    """Read one WFDB record (physical units) and its annotations into a :class:`Signal`.

    Parameters
    ----------
    folder : str or Path
        Folder holding ``record.hea``, its signal files (plain or ``.xz``) and annotations.
    record : str
        Record name, e.g. ``"100"``.
    annotator : str or None, default="atr"
        Annotation file extension; ``None`` reads no annotations.
    channels : list of int, optional
        Channel indices to keep; all by default.

    Raises
    ------
    FileNotFoundError
        If the header, a signal file or the annotation file is missing.
    DataError
        If a file is corrupt, or the signal is shorter than its header says (truncated).
    """
    folder = Path(folder)
    rec = _read_signals(folder, record, channels)
    samples = rec.p_signal
    positions, symbols = np.zeros(0, np.int64), ()
    if annotator is not None:
        positions, symbols = _read_annotations(folder, record, annotator, len(samples))
    return Signal(
        record_id=record,
        samples=samples,
        fs_hz=float(rec.fs),
        channel_names=tuple(rec.sig_name),
        units=tuple(rec.units),
        annotation_samples=positions,
        annotation_symbols=symbols,
    )
