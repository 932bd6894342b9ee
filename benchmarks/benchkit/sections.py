"""One benchmark's section of a shared results file, between its own begin/end markers.

Several benchmarks write into the same markdown file (``results/serving.md`` holds the
HTTP, hardening, memory, kill and signal sections), so none may rewrite the file or
"everything below its heading": each replaces only the text between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` (the convention of ``eeg_bonn.py``).
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The begin and end comment lines of section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_section(
    text: str, name: str, section: str, *, legacy_heading: str | None = None
) -> str:
    """``text`` with section ``name`` set to ``section``; every other part left as it is.

    Parameters
    ----------
    text : str
        The whole results file.
    name : str
        The section's marker name, e.g. ``"serving_hardening"``.
    section : str
        The new section (its ``## `` heading included, markers not).
    legacy_heading : str, optional
        A heading line (``"## Hardening"``) that a file written before the markers holds:
        that heading and the lines up to the next ``## `` heading are the section to
        replace, in place. Without markers or that heading the section is appended.

    Raises
    ------
    ValueError
        If only one of the markers is present, or the end comes before the begin: the file
        was edited by hand and guessing would overwrite someone else's section.
    """
    begin, end = markers(name)
    block = f"{begin}\n{section.strip(chr(10))}\n{end}"
    i, j = text.find(begin), text.find(end)
    if i >= 0 or j >= 0:
        if i < 0 or j < i:
            raise ValueError(
                f"section {name!r}: expected {begin!r} before {end!r}, got only one of them "
                "or the end first; fix the markers in the results file by hand"
            )
        return text[:i] + block + text[j + len(end) :]
    lines = text.split("\n")
    if legacy_heading is not None and legacy_heading in lines:
        start = lines.index(legacy_heading)
        stop = next(
            (k for k in range(start + 1, len(lines)) if lines[k].startswith("## ")), len(lines)
        )
        head = "\n".join(lines[:start]).rstrip("\n")
        tail = "\n".join(lines[stop:]).strip("\n")
        return (head + "\n\n" if head else "") + block + "\n" + ("\n" + tail + "\n" if tail else "")
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"


def write_section(
    path: Path, name: str, section: str, *, legacy_heading: str | None = None
) -> None:
    """Replace section ``name`` of the file ``path`` (created if absent); see
    :func:`replace_section`."""
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_section(text, name, section, legacy_heading=legacy_heading))
