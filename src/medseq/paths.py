"""Where the datasets live.

Data is never bundled with the package. It is read from ``$MEDSEQ_DATA`` when set,
otherwise from a ``shared/data`` folder beside the checkout (the layout used by the
project's CI), otherwise the caller must pass a path explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MEDSEQ_DATA"


def data_root() -> Path:
    """Return the root folder holding one sub-folder per dataset.

    Raises
    ------
    FileNotFoundError
        If neither ``$MEDSEQ_DATA`` nor a ``../shared/data`` folder exists.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"${ENV_VAR}={env!r} is not a directory")
        return root
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *here.parents]:
        candidate = parent.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no dataset folder found: set ${ENV_VAR} to the folder holding e.g. physionet2012/"
    )


def dataset_dir(name: str) -> Path:
    """Return ``data_root() / name``, with an error naming the missing folder."""
    path = data_root() / name
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {path} does not exist (set ${ENV_VAR})")
    return path
