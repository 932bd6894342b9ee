"""Download one file over HTTP(S) (or ``file://``) and check it against a pinned SHA-256.

Every reader's ``download`` goes through :func:`fetch`, so that no unverified byte is
ever left where a reader would pick it up: the file is streamed to ``<name>.part``,
hashed on the way, and only renamed to its final name when the hash matches. A file
that is already present with the right hash is not downloaded again, which makes an
interrupted multi-file download resumable by simply calling it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tqdm.auto import tqdm

from medseq.schema import DataError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20

Opener = Callable[[str], IO[bytes]]


class ChecksumError(DataError):
    """A downloaded file's SHA-256 differs from the pinned value; the file was deleted."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB blocks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_url(url: str) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "medseq"})
    return urllib.request.urlopen(request, timeout=60)  # pinned: hashed after


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    opener: Opener | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256.

    Parameters
    ----------
    url : str
        Anything :func:`urllib.request.urlopen` accepts (``https://``, ``file://``).
    dest : path-like
        The final file name (its folder is created).
    sha256 : str
        The pinned, expected hex digest (64 characters, case-insensitive).
    opener : callable, optional
        ``opener(url)`` returns a binary file-like object (default: urllib).
    progress : bool, default=True
        Show a tqdm progress bar (bytes).

    Returns ``dest``, verified.

    Raises
    ------
    ChecksumError
        If the downloaded bytes do not hash to ``sha256``; the partial file is deleted.
    ValueError
        If ``sha256`` is not a 64-digit hex string.
    """
    expected = _check_hex(sha256)
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == expected:
        logger.info("%s already present with the pinned sha256; not downloading", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    logger.info("downloading %s -> %s", url, dest)
    _download_verified(url, part, expected, opener or _open_url, progress)
    os.replace(part, dest)
    return dest


def _download_verified(url: str, part: Path, expected: str, opener: Opener, progress: bool) -> None:
    """Stream to ``part``; delete it on any failure or hash mismatch."""
    try:
        got = _stream(url, part, opener, progress)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if got != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: sha256 mismatch: expected {expected}, got {got}; the download was "
            "deleted. Retry; if it persists the upstream file changed: do not use it."
        )


def _check_hex(sha256: str) -> str:
    expected = sha256.lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return expected


def _stream(url: str, part: Path, opener: Opener, progress: bool) -> str:
    """Copy ``url`` to ``part`` in blocks, returning the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with opener(url) as response, open(part, "wb") as out:
        length = getattr(response, "headers", {}).get("Content-Length")
        total = int(length) if length else None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
        ) as bar:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                digest.update(block)
                out.write(block)
                bar.update(len(block))
    return digest.hexdigest()
