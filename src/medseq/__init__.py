"""medseq: recurrent neural networks for healthcare sequences.

The package import is deliberately light: submodules (and torch) load only when used,
so ``import medseq`` stays fast for the serving and CLI entry points.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
