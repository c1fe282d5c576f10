"""The lazy line splitter that feeds the csv module must cut lines exactly where io.StringIO does.

Why: CSV records report the line they start on, and `csv_lines.lines` replaced
`io.StringIO(text, newline="")` (which copies the whole file first) as the reader's input, so
every line number in a reject depends on the two agreeing, whatever mix of line endings a file has.
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from ingest import csv_lines


@given(st.text(alphabet='ab,"\r\n\t ', max_size=60))
def test_lines_are_cut_where_stringio_cuts_them(text: str) -> None:
    assert list(csv_lines.lines(text)) == io.StringIO(text, newline="").readlines()


def test_records_start_on_the_right_line_with_mixed_endings() -> None:
    text = 'id,note\r\n1,"two\nlines"\r3,x\n\n4,"never closed\n'
    assert list(csv_lines.records(text))[:3] == [(1, ["id", "note"]), (2, ["1", "two\nlines"]), (4, ["3", "x"])]
    last = list(csv_lines.records(text))[3]
    assert last.pos == 6 and last.check == "invalid_csv"
