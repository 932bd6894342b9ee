"""Shared figure plumbing: the Agg backend, one house style, and PNG bytes out.

Every medseq figure is drawn off-screen (Agg: no display, no GUI toolkit, identical on a
laptop and in CI), at a size and font that stay legible when embedded in an HTML page at
its natural width, and saved as PNG bytes that the report embeds as base64 and also writes
beside the HTML. matplotlib is imported here lazily, so ``import medseq.explain`` stays
cheap and the extra is only needed when a figure is drawn.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

FIGURE_DPI = 110
BASE_FONT_SIZE = 10
_INSTALL_HINT = 'figures need matplotlib: pip install "medseq[report]"'


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, with medseq's style applied once."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(_INSTALL_HINT) from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": BASE_FONT_SIZE,
            "axes.titlesize": BASE_FONT_SIZE + 1,
            "axes.labelsize": BASE_FONT_SIZE,
            "legend.fontsize": BASE_FONT_SIZE - 1,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": FIGURE_DPI,
            "savefig.dpi": FIGURE_DPI,
        }
    )
    return plt


def figure_png(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes and close it (figures are never left open)."""
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def write_png(png: bytes, path: str | Path) -> Path:
    """Write PNG bytes to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path
