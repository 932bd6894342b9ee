"""WFDB records (MIT-BIH format 212 or 16, CinC 2017 ``.mat``) read with numpy and scipy only.

The edge install has no ``wfdb`` (it pulls in pandas and matplotlib), so ``medseq monitor``
reads the two layouts it replays itself. A WFDB header (``NAME.hea``) gives the sampling
rate, the number of samples and, per signal, its file, format, gain (ADC units per mV),
baseline and name. Format 212 packs two 12-bit two's-complement samples in three bytes;
format 16 is little-endian int16; a ``.mat`` signal file (CinC 2017) holds the ``val``
array. A signal file stored xz-compressed (``NAME.dat.xz``, as in ``shared/data``) is read
through :mod:`lzma`. Physical value = (ADC value - baseline) / gain, in mV.

Reference: WFDB header and signal formats, https://physionet.org/physiotools/wag/header-5.htm
and https://physionet.org/physiotools/wag/signal-5.htm
"""

from __future__ import annotations

import io
import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class RecordError(ValueError):
    """A record that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Record:
    """One lead of a record in mV, with its rate and name."""

    name: str
    fs_hz: float
    samples: np.ndarray  # (n,), float64, mV
    lead: str


@dataclass(frozen=True)
class _SignalSpec:
    file: str
    fmt: str
    gain: float
    baseline: int
    name: str


def _parse_header(path: Path) -> tuple[float, int, list[_SignalSpec]]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and ln[0] != "#"]
    if not lines or len(lines[0]) < 4:
        raise RecordError(f"{path}: the first line must be 'NAME N_SIGNALS FS N_SAMPLES'")
    try:
        n_sig, fs, n = int(lines[0][1]), float(lines[0][2].split("/")[0]), int(lines[0][3])
    except ValueError:
        raise RecordError(f"{path}: unreadable record line {' '.join(lines[0])!r}") from None
    specs: list[_SignalSpec] = []
    for fields in lines[1 : 1 + n_sig]:
        if len(fields) < 5:
            raise RecordError(f"{path}: signal line {' '.join(fields)!r} has too few fields")
        gain_text = fields[2].split("/")[0]
        baseline = int(gain_text.split("(")[1].rstrip(")")) if "(" in gain_text else None
        gain = float(gain_text.split("(")[0]) or 200.0
        zero = int(fields[4]) if len(fields) > 4 else 0
        name = " ".join(fields[8:]) if len(fields) > 8 else f"signal {len(specs)}"
        specs.append(
            _SignalSpec(fields[0], fields[1], gain, zero if baseline is None else baseline, name)
        )
    if len(specs) != n_sig:
        raise RecordError(f"{path}: header announces {n_sig} signals, describes {len(specs)}")
    return fs, n, specs


def _read_bytes(folder: Path, name: str) -> bytes:
    plain, packed = folder / name, folder / f"{name}.xz"
    if plain.is_file():
        return plain.read_bytes()
    if packed.is_file():
        try:
            return lzma.decompress(packed.read_bytes())
        except lzma.LZMAError as err:
            raise RecordError(f"{packed}: corrupt xz file ({err})") from None
    raise RecordError(f"{folder}: signal file {name} (or {name}.xz) not found")


def _decode(data: bytes, fmt: str, n_sig: int, path: str) -> np.ndarray:
    """ADC values ``(n, n_sig)`` of a format 212 or 16 signal file."""
    base = fmt.split("+")[0]
    if base == "212":
        raw = np.frombuffer(data[: len(data) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        first = raw[:, 0] | ((raw[:, 1] & 0x0F) << 8)
        second = raw[:, 2] | ((raw[:, 1] & 0xF0) << 4)
        values = np.stack([first, second], axis=1).reshape(-1)
        values = np.where(values >= 2048, values - 4096, values)
    elif base == "16":
        offset = int(fmt.split("+")[1]) if "+" in fmt else 0
        values = np.frombuffer(data[offset:], "<i2")[: (len(data) - offset) // 2].astype(np.int32)
    else:
        raise RecordError(f"{path}: signal format {fmt!r} is not supported (212 or 16)")
    usable = len(values) // n_sig * n_sig
    return values[:usable].reshape(-1, n_sig)


def read_record(path: str | Path, *, lead: str | None = None) -> Record:
    """One lead of the WFDB record ``path`` (``folder/NAME``, with or without ``.hea``).

    Parameters
    ----------
    path : str or Path
    lead : str, optional
        Signal name to read (e.g. ``"MLII"``); the first signal when None.

    Raises
    ------
    RecordError
        If the header or a signal file is missing or unreadable, the format unsupported,
        the lead absent, or the signal shorter than the header says.
    """
    path = Path(path)
    header = path if path.suffix == ".hea" else path.with_name(path.name + ".hea")
    if not header.is_file():
        raise RecordError(f"{header}: no such WFDB header")
    fs, n, specs = _parse_header(header)
    names = [s.name for s in specs]
    index = 0 if lead is None else names.index(lead) if lead in names else -1
    if index < 0:
        raise RecordError(f"{header}: no lead {lead!r}; the record has {names}")
    spec = specs[index]
    same_file = [i for i, s in enumerate(specs) if s.file == spec.file]
    data = _read_bytes(header.parent, spec.file)
    if spec.file.endswith(".mat"):
        try:
            import scipy.io  # only here: a second of start-up that WFDB records do not need

            values = scipy.io.loadmat(io.BytesIO(data))["val"].T.astype(np.int64)
        except (ValueError, KeyError) as err:
            raise RecordError(f"{header.parent / spec.file}: no 'val' array ({err})") from None
    else:
        values = _decode(data, spec.fmt, len(same_file), str(header.parent / spec.file))
    if len(values) < n:
        raise RecordError(f"{header}: header says {n} samples, the signal file holds {len(values)}")
    adc = values[:n, same_file.index(index)]
    samples = (adc - spec.baseline) / spec.gain
    return Record(header.stem, fs, samples.astype(np.float64), spec.name)
