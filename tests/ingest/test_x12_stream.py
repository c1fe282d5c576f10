"""X12 read block by block and loaded in chunks, with exactly the result of reading it whole.

Why: an 837 of a 10 M-appointment practice is ~300 MB; the reader holds one block and the
transaction set being read, and the adapter hands its rows on every few thousand records. The
cuts must not show: a segment or a transaction set split across blocks, a terminator followed by
CR LF or by blank lines, an interchange ending in the middle of a block, a claim duplicated in a
later chunk (the load path's reject, whose segments are read again from the file), and every
envelope error, said in the same words.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from ingest.adapters import x12
from ingest.adapters.x12_segments import transaction_sets
from ingest.batch import rows_to_arrow, tuples_to_arrow
from ingest.errors import IngestError
from ingest.text import decode
from tests.ingest.conftest import FIXTURES
from tests.ingest.test_chunked import WHOLE, _compare

MARCH = FIXTURES / "x12" / "claims_2025-03.837"  # `~` + CRLF
APRIL = FIXTURES / "x12" / "claims_2025-04.837"  # a bare newline as terminator, two ST
REMITS = FIXTURES / "x12" / "remits_ACME01_2025-04.835"  # BOM, indented, CRLF
BLOCKS = [1, 2, 5, 64, 4096]


def _text(path: Path) -> str:
    return decode(path.read_bytes(), path.name)


def _layouts() -> dict[str, str]:
    march, april, remits = _text(MARCH), _text(APRIL), _text(REMITS)
    tilde = march.replace("~\r\n", "~")
    return {
        "tilde and CRLF": march,
        "newline terminator": april,
        "indented with CRLF": remits,
        "tilde only, one line": tilde,
        "tilde then blank lines": tilde.replace("~", "~\n\n  \n"),
        "two interchanges, separators of each": march + april + remits,
        "no terminator after IEA": tilde.rstrip().removesuffix("~"),
    }


def _read(text: str | list[str]) -> list[tuple]:
    return [
        (ts.kind, ts.syntax_error, [(s.number, list(s.elements), s.component) for s in ts.segments])
        for ts in transaction_sets(text, "f.837")
    ]


def _blocks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("layout", list(_layouts()))
def test_segments_read_in_blocks_are_those_of_the_whole_text(layout: str) -> None:
    text = _layouts()[layout]
    whole = _read(text)
    assert whole and sum(len(segments) for _, _, segments in whole) > 10
    for size in BLOCKS:
        assert _read(_blocks(text, size)) == whole, f"blocks of {size}"


def _broken() -> dict[str, str]:
    tilde = _text(MARCH).replace("~\r\n", "~")
    se = tilde.index("SE*")
    return {
        "cut inside a transaction set": tilde[: se - 5],
        "no IEA": tilde[: tilde.index("IEA*")],
        "ISA16 missing": tilde.replace("*P*:~", "*P*~", 1),
        "a segment after IEA": tilde + "ST*837*9~",
        "segment outside a set": tilde.replace("~ST*", "~REF*X~ST*", 1),
        "bad identifier": tilde.replace("~CLM*", "~C%M*", 1),
        "empty": "  \n ",
    }


@pytest.mark.parametrize("case", list(_broken()))
def test_envelope_errors_read_in_blocks_are_those_of_the_whole_text(case: str) -> None:
    text = _broken()[case]

    def outcome(source: str | list[str]) -> tuple:
        sets: list = []
        try:
            for ts in transaction_sets(source, "f.837"):
                sets.append((ts.kind, ts.syntax_error, len(ts.segments)))
        except IngestError as exc:
            return sets, str(exc)
        return sets, None

    whole = outcome(text)
    assert whole[1] or any(error for _, error, _ in whole[0]), "each case is broken"
    for size in BLOCKS:
        assert outcome(_blocks(text, size)) == whole, f"blocks of {size}"


def test_a_file_loaded_in_chunks_of_one_record_loads_as_whole(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims and payments in one file (claims load first), a claim repeated in a later chunk
    (rejected by the load path: its segments are read again from the file for the reject), a
    rejected claim (no CLM05) and a transaction set spread over several chunks."""
    march, april, remits = _text(MARCH), _text(APRIL), _text(REMITS)
    mixed = tmp_path / "mixed.x12"
    mixed.write_text(april + remits + march.replace("1200", "1300"), encoding="utf-8")
    twice = tmp_path / "twice.837"
    twice.write_text(march + march.replace("C101*80", "C101*81"), encoding="utf-8")
    monkeypatch.setattr(x12, "CHUNK_RECORDS", WHOLE)
    whole = _compare(tmp_path, empty_warehouse_file, monkeypatch, x12, "CHUNK_RECORDS", [1, 2], mixed, twice)
    counts = {r[0].rsplit("/", 1)[-1]: r[2:7] for r in whole["results"]}
    assert counts["mixed.x12"][0] >= 6 and counts["mixed.x12"][4] == 1  # read, ..., rejected: C102 without CLM05
    assert counts["twice.837"][4] == 1  # C101 again with another amount: the second is rejected
    duplicate = [r for r in whole["rejects"] if r[1].endswith("twice.837")]
    assert len(duplicate) == 1 and "CLM*C101*81" in duplicate[0][9], "the rejected claim's segments, read again"


def test_rows_as_tuples_make_the_table_rows_as_dicts_make() -> None:
    """The adapters build rows as tuples; the loader must get the values dicts gave it (it casts
    each column to the schema's type): a column of nulls only typed null, no rows at all, and a
    column of Decimals typed from its scale, or inferred when its scales differ."""
    columns = ["_pos", "amount", "units", "day", "none"]
    rows = [
        (1, Decimal("1.50"), Decimal("2"), date(2025, 3, 1), None),
        (2, None, Decimal("0.125"), None, None),
        (3, Decimal("-0.10"), None, None, None),
    ]
    dicts = [dict(zip(columns, r, strict=True)) for r in rows]
    table, expected = tuples_to_arrow(rows, columns), rows_to_arrow(dicts, columns)
    assert table.to_pylist() == expected.to_pylist()
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.schema.field("none").type == pa.null()
    assert tuples_to_arrow([], columns).equals(rows_to_arrow([], columns))
    with pytest.raises(ValueError):
        tuples_to_arrow([(1, 2)], columns)
