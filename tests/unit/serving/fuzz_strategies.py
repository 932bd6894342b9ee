"""Hypothesis strategies and settings shared by the serving fuzz suites (issue 21).

Each suite names the field names and sample strings of its own routes; what is the same
for all of them lives here: arbitrary JSON built from those names, replacing any node of
a well-formed body, deeply nested bodies, and the mix of bodies that is posted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

N_CASES = 600  # asked for per run
MIN_CASES = 500  # that must have been posted
LIMIT = 64 * 1024  # the body limit the fuzzed service runs with: "oversized" is cheap

FUZZ_SETTINGS = settings(
    max_examples=N_CASES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def json_values(fields: Sequence[str], samples: Sequence[str]) -> st.SearchStrategy[object]:
    """Arbitrary JSON whose keys are mostly ``fields`` and whose strings are often
    ``samples`` (so that the parsers go past their first check), wrong types everywhere."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(list(samples))
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(
                st.sampled_from(list(fields)) | st.text(max_size=8), inner, max_size=5
            )
        ),
        max_leaves=30,
    )


def replace_at(obj: object, path: list[int], value: object) -> object:
    """``obj`` with the node reached by ``path`` (indices modulo the children) replaced."""
    if not path or not isinstance(obj, dict | list) or not obj:
        return value
    keys = list(obj) if isinstance(obj, dict) else list(range(len(obj)))
    key = keys[path[0] % len(keys)]
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[key] = replace_at(obj[key], path[1:], value)
    return copy


def nested(depth: int, kind: int) -> bytes:
    """``depth`` nested lists (``kind`` 0) or objects (``kind`` 1)."""
    if kind == 0:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def dumped(values: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    """``values`` as JSON bytes."""
    return values.map(lambda v: json.dumps(v).encode())


def bodies(
    values: st.SearchStrategy[object],
    well_formed: st.SearchStrategy[object],
    deep: st.SearchStrategy[bytes],
    oversized: st.SearchStrategy[bytes],
) -> st.SearchStrategy[bytes]:
    """The posted mix: arbitrary JSON, well-formed bodies with parts replaced, deeply nested
    and oversized bodies, raw bytes, truncated JSON."""
    return st.one_of(
        dumped(values),
        dumped(well_formed),
        deep,
        oversized,
        st.binary(max_size=200),
        values.map(lambda v: json.dumps(v).encode()[:-1]),  # truncated
    )
