"""Read and verify a bundle's ``medseq.json`` without torch.

The ONNX runtime path and the model card need the manifest and the bundle's content
hash, but must not import :mod:`medseq.bundle` (which loads torch). The hash is the one
:func:`medseq.bundle.save_bundle` writes: sha256 over the weight bytes and the canonical
JSON of the manifest without the hash itself (a test checks both agree).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "medseq.json"


class ManifestError(ValueError):
    """The bundle directory is missing files or its content hash does not match."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def read_manifest(bundle_dir: str | os.PathLike, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of ``bundle_dir``; with ``verify`` the content hash is checked."""
    path = Path(bundle_dir)
    manifest_path, weights_path = path / MANIFEST_FILE, path / WEIGHTS_FILE
    if not manifest_path.is_file():
        raise ManifestError(f"{path}: not a medseq bundle, {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{manifest_path}: invalid JSON ({err})") from None
    if verify:
        if not weights_path.is_file():
            raise ManifestError(f"{path}: {WEIGHTS_FILE} is missing")
        body = {k: v for k, v in manifest.items() if k != "content_sha256"}
        digest = hashlib.sha256(weights_path.read_bytes() + _canonical(body)).hexdigest()
        if manifest.get("content_sha256") != digest:
            raise ManifestError(f"{path}: content hash mismatch; refusing a modified bundle")
    return manifest


def model_version(manifest: dict[str, Any]) -> str:
    """Short, stable identifier of a bundle: ``sha256:<first 16 hex digits>``."""
    return f"sha256:{manifest['content_sha256'][:16]}"
