"""Render a metrics table as Markdown or aligned plain text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _cells(value: float | Sequence[float], digits: int) -> tuple[str, str]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 3:
            raise ValueError(f"a CI entry must be (point, lo, hi), got {value!r}")
        point, lo, hi = (float(v) for v in value)
        return f"{point:.{digits}f}", f"{lo:.{digits}f} – {hi:.{digits}f}"
    return f"{float(value):.{digits}f}", ""


def format_table(
    metrics: Mapping[str, float | Sequence[float]],
    *,
    digits: int = 3,
    style: str = "markdown",
    ci_label: str = "95% CI",
) -> str:
    """A table with one row per metric: name, value and, where given, the interval.

    Parameters
    ----------
    metrics : mapping of str to float or (point, lo, hi)
        The output of :func:`binary_metrics` / :func:`regression_metrics` (floats) or of
        :func:`metrics_with_ci` (triples; lists as read back from JSON also work).
    digits : int, default=3
    style : {"markdown", "plain"}, default="markdown"
        Markdown for README and benchmark files; plain aligned text for terminals.
    ci_label : str, default="95% CI"
        Header of the interval column; say which level was computed.

    Examples
    --------
    >>> print(format_table({"auroc": (0.8512, 0.8203, 0.8794), "brier": 0.1}))
    | metric | value | 95% CI |
    |---|---:|---|
    | auroc | 0.851 | 0.820 – 0.879 |
    | brier | 0.100 |  |
    """
    if style not in ("markdown", "plain"):
        raise ValueError(f"style must be 'markdown' or 'plain', got {style!r}")
    rows: list[tuple[str, ...]]  # (name, value, ci), or (name, value) when no entry has a CI
    rows = [(name, *_cells(value, digits)) for name, value in metrics.items()]
    has_ci = any(ci for _, _, ci in rows)
    header = ("metric", "value", ci_label) if has_ci else ("metric", "value")
    rows = [r if has_ci else r[:2] for r in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("|---|---:|---|" if has_ci else "|---|---:|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:{'>' if i == 1 else '<'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r).rstrip() for r in (header, *rows))
