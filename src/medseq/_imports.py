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
