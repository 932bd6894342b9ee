"""On-disk cache of detected R peaks, so a recording is run through XQRS once per machine.

R-peak detection is the slowest step of beat features on records without annotations
(about 5 CPU-minutes for the 6999 CinC 2017 recordings) and its result depends only on the
samples, so every ``medseq train`` of a beat configuration would otherwise repeat it. Each
recording's peaks are stored as one ``.npy`` file named by a SHA-256 of what the detection
depends on: the lead's samples and sampling rate, the detector settings and the wfdb
version. A changed recording or detector gets a new key, never a stale result.

The folder is ``$MEDSEQ_CACHE/r_peaks`` (default ``~/.cache/medseq``, or
``$XDG_CACHE_HOME/medseq``); ``MEDSEQ_CACHE=none`` turns the cache off. Files are written
atomically (a temporary file renamed into place), so parallel runs can share the folder;
a folder that cannot be written only costs the re-detection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import wfdb

from medseq.features.signals import beats
from medseq.features.signals import signal as sig

logger = logging.getLogger(__name__)

CACHE_ENV = "MEDSEQ_CACHE"
#: Bump when the detection (filter, detector, correction) changes.
DETECTOR_VERSION = "xqrs-bandpass5-25-correct50ms-v1"


def cache_dir() -> Path | None:
    """The R-peak cache folder, or None when ``$MEDSEQ_CACHE`` is ``none``."""
    root = os.environ.get(CACHE_ENV)
    if root is not None and root.strip().lower() in ("none", "off", "0", ""):
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "medseq")
    return Path(root).expanduser() / "r_peaks"


def peak_key(lead: np.ndarray, fs_hz: float) -> str:
    """SHA-256 naming one detection: samples, rate, detector settings, wfdb version."""
    digest = hashlib.sha256()
    digest.update(f"{DETECTOR_VERSION}|wfdb {wfdb.__version__}|fs {float(fs_hz)!r}|".encode())
    samples = np.ascontiguousarray(lead, dtype=np.float32)
    digest.update(f"{samples.shape}|".encode())
    digest.update(samples.tobytes())
    return digest.hexdigest()


def load_peaks(key: str) -> np.ndarray | None:
    """Cached peaks of ``key``, or None (no cache, not stored yet, or unreadable)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        peaks = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        logger.warning("R-peak cache file %s unreadable (%s); detecting again", path, err)
        return None
    if peaks.ndim != 1 or not np.issubdtype(peaks.dtype, np.integer):
        logger.warning(
            "R-peak cache file %s holds %s %s; detecting again", path, peaks.dtype, peaks.shape
        )
        return None
    return peaks.astype(np.int64)


def save_peaks(key: str, peaks: np.ndarray) -> None:
    """Store ``peaks`` under ``key`` (atomically); a failure is logged, not raised."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
        with os.fdopen(handle, "wb") as out:
            np.save(out, np.asarray(peaks, dtype=np.int64), allow_pickle=False)
        os.replace(tmp, folder / f"{key}.npy")
    except OSError as err:
        logger.debug("R-peak cache %s not written: %s", folder, err)


def detected_peaks(lead: np.ndarray, fs_hz: float) -> np.ndarray:
    """R peaks of one lead: from the cache, else XQRS on its 5-25 Hz band-pass, then stored.

    Parameters
    ----------
    lead : ndarray of shape (T, 1)
        The channel the peaks are detected on.
    fs_hz : float

    Returns
    -------
    ndarray of shape (N,), int64
        Sample positions (:func:`~medseq.features.signals.beats.detect_r_peaks`).
    """
    key = peak_key(lead, fs_hz)
    peaks = load_peaks(key)
    if peaks is None:
        x = sig.bandpass_filter(lead, fs_hz, low_hz=5.0, high_hz=25.0)
        peaks = beats.detect_r_peaks(x, fs_hz)
        save_peaks(key, peaks)
    return peaks
