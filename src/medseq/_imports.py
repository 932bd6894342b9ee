"""Lazy imports for the registries: a table of ``"module:attribute"`` strings costs nothing."""

from __future__ import annotations

import importlib
from typing import Any


def load_object(path: str) -> Any:
    """The object named by ``"package.module:attribute"``, imported on first use."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'package.module:attribute', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


# Which optional-dependency group ships each third-party module a command may import.
EXTRA_OF_MODULE = {
    "torch": "train",  # also in `serve`; not in the core install nor in `edge`
    "sklearn": "train",
    "scipy": "train",
    "wfdb": "train",
    "matplotlib": "report",
    "jinja2": "report",
    "captum": "report",
    "rdkit": "molecules",
    "fastapi": "serve",
    "uvicorn": "serve",
    "fhir": "serve",
    "onnx": "serve",
    "onnxruntime": "serve",
    "flwr": "federated",
    "ray": "federated",
    "opacus": "federated",
}


def install_hint(err: ModuleNotFoundError) -> str:
    """``"the optional module 'wfdb' (pip install 'medseq[train]')"`` for a missing module.

    >>> install_hint(ModuleNotFoundError("No module named 'wfdb'", name="wfdb"))
    "the optional module 'wfdb' (pip install 'medseq[train]')"
    """
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return f"the Python module {module!r}, which is not installed"
    return f"the optional module {module!r} (pip install 'medseq[{extra}]')"


def missing_extra_message(err: ModuleNotFoundError) -> str:
    """Name the extra to install for a missing optional module, instead of a traceback.

    >>> missing_extra_message(ModuleNotFoundError("No module named 'wfdb'", name="wfdb"))
    "error: this command needs the optional module 'wfdb': pip install 'medseq[train]'"
    """
    module = (err.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return f"error: missing Python module {module!r} ({err})"
    return (
        f"error: this command needs the optional module {module!r}: pip install 'medseq[{extra}]'"
    )
