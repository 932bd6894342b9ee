"""Request bodies as JSON, with the nesting depth checked on the raw bytes before parsing.

Python's ``json.loads`` recurses once per nesting level, and so do pydantic and
``fhir.resources`` after it: a 2 KB body of a thousand ``[`` was a ``RecursionError`` and
a 500. :func:`json_depth` measures the depth on the bytes with numpy (strings, including
escaped quotes, are masked out, so a ``"[[["`` inside a value does not count), in a few
milliseconds for 8 MB, and :func:`parse_body` refuses a body deeper than
:data:`MAX_JSON_DEPTH` with a 422 naming the limit, before any parser sees it. The bodies
this service takes are at most 8 levels deep (a FHIR Bundle with components and codings);
64 leaves room for extensions.

The parser is ``msgspec`` where it is installed (a core dependency, optional at run time):
it reads the numbers of a 1-s ECG chunk about eight times faster than ``json.loads``, the
largest cost of parsing one (``benchmarks/bench_stream_chunk_cost.py``). It gives the same
values for every document it accepts; what it refuses (``NaN`` literals, UTF-16, lone
surrogates, numbers beyond float range, invalid JSON) goes to ``json.loads``, so every
body is answered exactly as by ``json.loads`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from medseq.serving.requests import RequestError

#: Deepest nesting of objects and arrays a request body may have.
MAX_JSON_DEPTH = 64

_QUOTE, _BACKSLASH = 34, 92
_OPEN, _CLOSE = (91, 123), (93, 125)  # [ {   ] }


def _unescaped_quotes(b: np.ndarray) -> np.ndarray:
    """Mask of the ``"`` that open or close a string (not preceded by an odd run of ``\\``)."""
    quotes = b == _QUOTE
    backslash = b == _BACKSLASH
    if not backslash.any():
        return quotes
    idx = np.arange(len(b), dtype=np.int32)
    last_plain = np.maximum.accumulate(np.where(backslash, -1, idx))  # last non-\ at or before i
    run = np.zeros(len(b), dtype=np.int32)
    run[1:] = idx[:-1] - last_plain[:-1]  # number of \ right before position i
    return quotes & (run % 2 == 0)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in ``raw``, not counting brackets inside strings.

    Exact for valid JSON; for invalid JSON an estimate (the parser refuses it anyway).
    """
    b = np.frombuffer(raw, dtype=np.uint8)
    opens = (b == _OPEN[0]) | (b == _OPEN[1])
    brackets = opens | (b == _CLOSE[0]) | (b == _CLOSE[1])
    if not brackets.any():
        return 0
    inside = (np.cumsum(_unescaped_quotes(b), dtype=np.uint8) & 1).astype(bool)
    pos = np.flatnonzero(brackets & ~inside)
    if len(pos) == 0:
        return 0
    step = np.where(opens[pos], 1, -1).astype(np.int32)
    return int(np.cumsum(step).max())


@cache
def _fast_decoder() -> tuple[Callable[[bytes], Any], type[Exception]] | None:
    """``msgspec.json.decode`` and its error, or None without msgspec (imported on use)."""
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec.json.decode, msgspec.DecodeError


def parse_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of a request body, refused (422) when invalid or nested too deep.

    Raises
    ------
    RequestError
        ``type`` ``json_invalid`` (with line and column) or ``json_too_deep``.
    """
    shallow = raw.count(b"[") + raw.count(b"{") <= max_depth  # depth <= number of openers
    if not shallow and json_depth(raw) > max_depth:
        raise RequestError.at(
            ("body",), f"JSON nested deeper than {max_depth} levels", "json_too_deep"
        )
    fast = _fast_decoder()
    if fast is not None:
        try:
            return fast[0](raw)
        except fast[1]:
            pass  # json.loads decides (module doc): the same answer as without msgspec
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        where = f" at line {err.lineno} column {err.colno}"
        raise RequestError.at(("body",), f"invalid JSON{where}", "json_invalid") from None
    except (UnicodeDecodeError, RecursionError):
        raise RequestError.at(("body",), "invalid JSON", "json_invalid") from None
