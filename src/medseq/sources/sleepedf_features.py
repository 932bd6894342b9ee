"""Reader for the Sleep-EDF per-epoch EEG features and their PhysioNet hypnograms.

Layout (see ``shared/data/sleepedf_features/SOURCE.md``): one ``SC4ssNE0.npz`` per night
(``X`` float64 (n, 72) features of the 30-s epochs, ``y`` int64 (n,) stages 0..4 =
W, N1, N2, N3, REM) and its ``SC4ssN??-Hypnogram.edf`` (EDF+ annotations). The feature
files hold only the epochs scored W/1/2/3/4/R, in time order, with ``Movement time`` and
``Sleep stage ?`` epochs dropped; they say nothing of *when* each row was. The hypnogram
does: this reader rebuilds the 30-s stage sequence from it, checks that ``y`` equals its
scored epochs row by row (so a feature file paired with the wrong hypnogram is an error),
and gives each row its epoch index in the recording. That index is what lets a task trim
the night to the window around sleep in clock time and see the dropped epochs as gaps.

Nothing is dropped silently: unknown annotation texts follow ``on_unknown`` and are
counted; movement and unscored epochs, and hypnogram epochs past the end of a truncated
feature file (SC4011E0 upstream), are counted in the :class:`~medseq.schema.ReadReport`.
Malformed or truncated files raise :class:`~medseq.schema.DataError` naming the file and
the row, annotation or byte at fault.

Reference: Kemp B, et al. Analysis of a sleep-dependent neuronal feedback loop: the
slow-wave microcontinuity of the EEG. IEEE Trans Biomed Eng 47(9):1185-1194 (2000).
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseq.schema import DataError, ReadReport

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
EPOCH_S = 30
#: Hypnogram text -> stage index (R&K stages 3 and 4 merged into N3, as in AASM).
STAGE_OF_TEXT: dict[str, int] = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,
    "Sleep stage 4": 3,
    "Sleep stage R": 4,
}
MOVEMENT, UNSCORED, UNKNOWN = -1, -2, -3
NOT_STAGES: dict[str, int] = {"Movement time": MOVEMENT, "Sleep stage ?": UNSCORED}
ON_UNKNOWN = ("raise", "skip")
_NIGHT = re.compile(r"^SC4(\d\d)(\d)E0\.npz$")
_TAL = re.compile(rb"^([+-]\d+(?:\.\d+)?)(?:\x15(\d+(?:\.\d+)?))?$")


@dataclass(frozen=True)
class Night:
    """One recording: its features, stages, and where each row lies in the recording.

    Attributes
    ----------
    night_id : int
        ``4000 + 10 * subject + night`` (``SC4012`` -> 4012), the sample id of the night.
    subject : int
        The Sleep-EDF subject number ``ss`` (0..9 here); both nights of a subject share it.
    features : ndarray of shape (n, F)
        The feature file's ``X`` (float64, as stored).
    stages : ndarray of shape (n,)
        The feature file's ``y``, int64 in ``0..4`` (:data:`STAGES`).
    epoch : ndarray of shape (n,)
        The hypnogram epoch (30 s from the recording start) of each row, increasing.
    hypnogram : ndarray of shape (n_epochs,)
        Stage per hypnogram epoch: ``0..4``, :data:`MOVEMENT`, :data:`UNSCORED` or
        :data:`UNKNOWN` (an unknown text kept under ``on_unknown="skip"``).
    """

    night_id: int
    subject: int
    features: np.ndarray
    stages: np.ndarray
    epoch: np.ndarray
    hypnogram: np.ndarray


def night_id_of(path: Path) -> tuple[int, int]:
    """``(night_id, subject)`` from a file name ``SC4ssNE0.npz``; other names are an error."""
    match = _NIGHT.match(Path(path).name)
    if match is None:
        raise DataError(f"{path}: not a Sleep-EDF feature file name; expected SC4ssNE0.npz")
    subject, night = int(match.group(1)), int(match.group(2))
    return 4000 + 10 * subject + night, subject


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n, F) float64 and ``y`` (n,) int64 of one ``.npz``, checked row by row."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = sorted({"X", "y"} - set(archive.files))
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; it holds {archive.files}")
            x, y = archive["X"], archive["y"]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(
            f"{path}: unreadable .npz ({type(err).__name__}: {err}); the file is truncated or "
            "not a numpy archive, fetch it again and check SHA256SUMS.txt"
        ) from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise DataError(
            f"{path}: expected X (n, F) and y (n,) with the same n > 0, got X {x.shape} "
            f"and y {y.shape}"
        )
    if not np.issubdtype(x.dtype, np.floating) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: expected float X and integer y, got {x.dtype} and {y.dtype}")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise DataError(f"{path}: row {bad[0]} of X holds NaN or inf ({bad.size} rows in all)")
    bad = np.flatnonzero((y < 0) | (y >= len(STAGES)))
    if bad.size:
        raise DataError(
            f"{path}: row {bad[0]} of y is {int(y[bad[0]])}, expected a stage 0..{len(STAGES) - 1}"
        )
    return x.astype(np.float64), y.astype(np.int64)


def _edf_field(raw: bytes, start: int, width: int, name: str, path: Path) -> int:
    text = raw[start : start + width].decode("ascii", "replace").strip()
    try:
        return int(text)
    except ValueError:
        raise DataError(
            f"{path}: EDF header byte {start}: {name} must be an integer, got {text!r}"
        ) from None


def _annotation_bytes(path: Path) -> tuple[bytes, int]:
    """The bytes of the EDF+ annotation signal, and the offset where the data start."""
    raw = Path(path).read_bytes()
    if len(raw) < 256:
        raise DataError(f"{path}: truncated EDF header: {len(raw)} bytes, expected >= 256")
    header = _edf_field(raw, 184, 8, "header size", path)
    n_records = _edf_field(raw, 236, 8, "number of data records", path)
    n_signals = _edf_field(raw, 252, 4, "number of signals", path)
    if n_signals < 1 or header != 256 * (n_signals + 1) or n_records < 1:
        raise DataError(
            f"{path}: EDF header says {n_signals} signals, {n_records} records, {header} "
            f"header bytes; expected >= 1 signal and record, and 256 * (signals + 1) bytes"
        )
    if len(raw) < header:
        raise DataError(f"{path}: truncated EDF header: {len(raw)} of {header} bytes")
    labels = [raw[256 + 16 * k : 272 + 16 * k].decode("ascii", "replace").strip()
              for k in range(n_signals)]  # fmt: skip
    base = 256 + 216 * n_signals
    samples = [_edf_field(raw, base + 8 * k, 8, f"samples of signal {k}", path)
               for k in range(n_signals)]  # fmt: skip
    if "EDF Annotations" not in labels:
        raise DataError(f"{path}: no 'EDF Annotations' signal (signals: {labels}); not EDF+")
    size = header + n_records * 2 * sum(samples)
    if len(raw) < size:
        raise DataError(
            f"{path}: truncated: the header announces {size} bytes, the file has {len(raw)}"
        )
    which = labels.index("EDF Annotations")
    offset = 2 * sum(samples[:which])
    width = 2 * samples[which]
    record = 2 * sum(samples)
    parts = [raw[header + r * record + offset : header + r * record + offset + width]
             for r in range(n_records)]  # fmt: skip
    return b"".join(parts), header


def read_annotations(path: Path) -> list[tuple[float, float, str]]:
    """``(onset_s, duration_s, text)`` of every annotation of an EDF+ file, in file order.

    Each time-stamped annotation list (TAL) is ``+onset[\\x15duration]\\x14text\\x14...\\x00``;
    the time-keeping TALs (no text) are skipped. A malformed TAL is an error naming its
    number and byte position within the annotation signal.
    """
    data, _ = _annotation_bytes(path)
    out: list[tuple[float, float, str]] = []
    position = 0
    for number, tal in enumerate(data.split(b"\x00")):
        here, position = position, position + len(tal) + 1
        if not tal:
            continue
        head, *texts = tal.split(b"\x14")
        match = _TAL.match(head)
        if match is None or not texts or texts[-1] != b"":
            raise DataError(
                f"{path}: annotation {number} (byte {here} of the annotation signal) is not "
                f"an EDF+ TAL '+onset[\\x15duration]\\x14text\\x14': got {tal[:40]!r}"
            )
        onset = float(match.group(1))
        duration = float(match.group(2)) if match.group(2) else 0.0
        for text in texts[:-1]:
            if text:
                out.append((onset, duration, text.decode("latin-1")))
    return out


def hypnogram_epochs(
    path: Path, *, on_unknown: str = "raise", report: ReadReport | None = None
) -> np.ndarray:
    """Stage per 30-s epoch from a hypnogram: ``0..4``, MOVEMENT, UNSCORED or UNKNOWN.

    Annotations must start and last whole epochs and follow each other without overlap;
    epochs no annotation covers are UNSCORED (counted). ``on_unknown="skip"`` keeps epochs
    of an unknown text as UNKNOWN (never a stage) and counts them.
    """
    if on_unknown not in ON_UNKNOWN:
        raise ValueError(f"on_unknown must be one of {ON_UNKNOWN}, got {on_unknown!r}")
    annotations = read_annotations(path)
    if not annotations:
        raise DataError(f"{path}: no annotations; expected a Sleep-EDF hypnogram")
    end = max(onset + duration for onset, duration, _ in annotations)
    epochs = np.full(round(end / EPOCH_S), UNSCORED, dtype=np.int64)
    covered = np.zeros(len(epochs), dtype=bool)
    for number, (onset, duration, text) in enumerate(annotations):
        if onset % EPOCH_S or duration % EPOCH_S or onset < 0:
            raise DataError(
                f"{path}: annotation {number} ({text!r} at {onset} s for {duration} s) is "
                f"not on the {EPOCH_S}-s epoch grid"
            )
        code = STAGE_OF_TEXT.get(text, NOT_STAGES.get(text))
        if code is None:
            if on_unknown == "raise":
                raise DataError(
                    f"{path}: annotation {number} has the unknown text {text!r}; expected one "
                    f"of {sorted(STAGE_OF_TEXT) + sorted(NOT_STAGES)} "
                    "(on_unknown='skip' keeps such epochs unlabelled)"
                )
            code = UNKNOWN
            if report is not None:
                report.add(f"epochs with an unknown annotation text ({text!r})",
                           int(duration // EPOCH_S))  # fmt: skip
        first, last = int(onset // EPOCH_S), int((onset + duration) // EPOCH_S)
        if covered[first:last].any():
            raise DataError(f"{path}: annotation {number} ({text!r}) overlaps an earlier one")
        epochs[first:last], covered[first:last] = code, True
    if report is not None:
        report.add("hypnogram epochs no annotation covers (unscored)", int((~covered).sum()))
    return epochs


def align_rows(stages: np.ndarray, hypnogram: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Epoch index of each feature row, and how many scored epochs lie past the last row.

    Rows are the hypnogram's scored epochs in order; ``stages`` must equal the first of them
    exactly (a mismatch names the row), or the files do not belong together.
    """
    scored = np.flatnonzero(hypnogram >= 0)
    if len(stages) > len(scored):
        raise DataError(
            f"{where}: {len(stages)} feature rows but the hypnogram scores only "
            f"{len(scored)} epochs; the files do not belong together"
        )
    expected = hypnogram[scored[: len(stages)]]
    wrong = np.flatnonzero(expected != stages)
    if wrong.size:
        row = int(wrong[0])
        raise DataError(
            f"{where}: row {row} has stage {STAGES[stages[row]]} but the hypnogram scores "
            f"epoch {scored[row]} as {STAGES[expected[row]]} ({wrong.size} rows differ)"
        )
    return scored[: len(stages)], len(scored) - len(stages)


def _hypnogram_of(npz: Path) -> Path:
    found = sorted(npz.parent.glob(f"{npz.name[:7]}*-Hypnogram.edf"))
    if len(found) != 1:
        raise DataError(
            f"{npz}: expected one hypnogram {npz.name[:7]}??-Hypnogram.edf beside it, "
            f"found {[p.name for p in found]}"
        )
    return found[0]


def read_night(path: Path, *, on_unknown: str = "raise", report: ReadReport | None = None) -> Night:
    """One night: the ``.npz`` at ``path`` and the hypnogram beside it, aligned."""
    path = Path(path)
    night_id, subject = night_id_of(path)
    hypnogram_path = _hypnogram_of(path)
    features, stages = read_features(path)
    hypnogram = hypnogram_epochs(hypnogram_path, on_unknown=on_unknown, report=report)
    epoch, past_end = align_rows(stages, hypnogram, f"{path.name} / {hypnogram_path.name}")
    if report is not None:
        span = slice(epoch[0], epoch[-1] + 1)
        report.add("movement epochs between rows (dropped upstream)",
                   int((hypnogram[span] == MOVEMENT).sum()))  # fmt: skip
        report.add("unscored epochs between rows (dropped upstream)",
                   int((hypnogram[span] == UNSCORED).sum()))  # fmt: skip
        if past_end:
            report.add("scored hypnogram epochs past the end of a truncated feature file",
                       past_end)  # fmt: skip
    if past_end:
        logger.warning("%s: feature file stops %d scored epochs before the hypnogram",
                       path.name, past_end)  # fmt: skip
    return Night(night_id, subject, features, stages, epoch, hypnogram)


def read_folder(folder: Path, *, on_unknown: str = "raise") -> tuple[list[Night], ReadReport]:
    """Every ``SC4ssNE0.npz`` of ``folder`` with its hypnogram, by night id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected the sleepedf_features folder")
    files = sorted(folder.glob("SC4*E0.npz"))
    if not files:
        raise DataError(f"{folder}: no SC4ssNE0.npz feature files")
    report = ReadReport(source=str(folder))
    nights = [read_night(f, on_unknown=on_unknown, report=report) for f in files]
    report.n_subjects = len(nights)
    report.n_events = sum(len(n.stages) for n in nights)
    return nights, report
