"""medseq.sources._longcsv: bulk parsing keeps every row's file, line, time and value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medseq.schema import DataError, ReadReport
from medseq.sources._longcsv import RecordFile, parse_long_csv

rows = st.lists(
    st.tuples(
        st.integers(0, 99),
        st.integers(0, 59),
        st.sampled_from(["HR", "Temp", "pH", "", "X_1"]),
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)),
    ),
    max_size=20,
)


def as_file(name: str, body: list[tuple[int, int, str, float]]) -> RecordFile:
    lines = [f"{h:02d}:{m:02d},{p},{v!r}" for h, m, p, v in body]
    return RecordFile(name, ("Time,Parameter,Value\n" + "".join(f"{x}\n" for x in lines)).encode())


@settings(max_examples=50, deadline=None)
@given(st.lists(rows, min_size=1, max_size=5))
def test_bulk_parse_equals_row_by_row(files):
    records = [as_file(f"{i}.txt", body) for i, body in enumerate(files)]
    parsed = parse_long_csv(records, on_bad_row="raise", report=ReadReport("t"))
    expected = [
        (i, n + 2, h + m / 60, p, v)
        for i, b in enumerate(files)
        for n, (h, m, p, v) in enumerate(b)
    ]
    assert len(parsed.value) == len(expected)
    if expected:
        file_index, line, hours, names, values = map(list, zip(*expected, strict=True))
        assert parsed.file_index.tolist() == file_index
        assert parsed.line.tolist() == line
        np.testing.assert_allclose(parsed.time_hours, hours)
        assert list(parsed.name) == names
        assert parsed.value.tolist() == values


def test_line_numbers_skip_dropped_lines():
    record = RecordFile("r.txt", b"Time,Parameter,Value\n\n00:01,HR,1,2\n00:02,HR,2\n")
    report = ReadReport("t")
    parsed = parse_long_csv([record], on_bad_row="skip", report=report)
    assert parsed.line.tolist() == [4] and parsed.value.tolist() == [2.0]
    assert report.counts == {"blank_line": 1, "bad_row:field_count": 1}


def test_a_row_bad_in_two_ways_is_counted_once():
    record = RecordFile("r.txt", b"Time,Parameter,Value\nx,HR,y\n")
    report = ReadReport("t")
    parse_long_csv([record], on_bad_row="skip", report=report)
    assert report.counts == {"bad_row:time": 1}


def test_header_only_and_missing_final_newline():
    records = [
        RecordFile("a.txt", b"Time,Parameter,Value"),
        RecordFile("b.txt", b"Time,Parameter,Value\n00:05,HR,3"),
    ]
    parsed = parse_long_csv(records, on_bad_row="raise", report=ReadReport("t"))
    assert parsed.file_index.tolist() == [1] and parsed.time_hours.tolist() == [5 / 60]


def test_empty_file_has_a_bad_header():
    with pytest.raises(
        DataError, match=r"^e\.txt:1: bad header: expected 'Time,Parameter,Value', got ''$"
    ):
        parse_long_csv([RecordFile("e.txt", b"")], on_bad_row="skip", report=ReadReport("t"))
