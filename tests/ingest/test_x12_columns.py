"""X12 mapped in columns gives exactly what the Python mappers give, and leaves them every oddity.

Why: the columnar way (`x12_runs`, `x12_837_columns`, `x12_835_columns`) maps most sets of a
file with a few SQL statements; it is only right if, file for file, its rows, rejects, sentences,
warnings and counts are the Python mappers' value for value, and if every set holding something
it might read differently goes the Python way. Both are checked here: on the hand-made fixtures,
on the practice simulator's files, on every external X12 sample, and on one clean file altered
one oddity at a time.
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path

import pytest

from ingest.adapters import x12_835, x12_835_columns, x12_837, x12_837_columns
from ingest.adapters.x12 import X12Adapter
from ingest.adapters.x12_runs import interchange_runs
from ingest.adapters.x12_segments import transaction_sets
from ingest.context import ParseContext
from ingest.errors import IngestError
from ingest.pseudonymize import Pseudonymizer
from ingest.sources import InputFile
from tests.conftest import clinic_kpis
from tests.ingest.conftest import FIXTURES
from tests.ingest.test_x12_stream import _layouts

# the fixtures on one line each (their CRLF and indentation are the reader's business, tested elsewhere)
CLAIMS = re.sub(r"~\s*", "~", (FIXTURES / "x12" / "claims_2025-03.837").read_text()).strip()
REMITS = re.sub(r"~\s*", "~", (FIXTURES / "x12" / "remits_ACME01_2025-04.835").read_text(encoding="utf-8-sig")).strip()


def _ctx() -> ParseContext:
    return ParseContext("America/New_York", Pseudonymizer(b"columns-test-secret-" * 2))


def _parse(name: str, data: bytes, columnar: bool) -> tuple:
    """Everything a parse hands the loader: rows of every target (in order), rejects, warnings,
    ignored counts, the adapter's name, the claim ids touched; or the error."""
    file = InputFile(name, lambda: io.BytesIO(data), False)
    try:
        batch = X12Adapter(columnar).parse(file, _ctx())
        tables: dict[str, list] = {}
        errors = []
        for chunk in batch.chunks:
            errors += [(e.pos, e.field, e.check, e.reason, e.value) for e in chunk.errors]
            for phase in chunk.phases:
                for target, table in phase.targets:
                    tables.setdefault(target.table, []).extend(table.to_pylist())
    except IngestError as exc:
        return ("error", str(exc))
    rows = {k: sorted(v, key=lambda r: (r["_pos"], repr(sorted(r.items())))) for k, v in tables.items()}
    rows = {k: v for k, v in rows.items() if v}
    derived = [(d.target.table, d.inputs["_touched"].to_pylist()) for d in batch.derived]
    return rows, errors, batch.warnings, dict(batch.ignored), batch.adapter, derived


def _same(name: str, text: str | bytes) -> tuple:
    data = text.encode() if isinstance(text, str) else text
    python, columnar = _parse(name, data, False), _parse(name, data, True)
    assert columnar == python
    return python


def _fast_share(text: str) -> tuple[int, int]:
    """(sets mapped in columns, sets in all) of the 837s and 835s of `text`."""
    claims, remits = x12_837.Claims(_ctx()), x12_835.Remittances(_ctx())
    fast = total = 0
    for run in transaction_sets(text, "f", interchange_runs):
        for kind, part, mapper in (
            ("837", claims, x12_837_columns.map_claims),
            ("835", remits, x12_835_columns.map_payments),
        ):
            spans = [s for s in run.sets if s.kind == kind]
            if spans:
                total += len(spans)
                fast += len(spans) - len(mapper(part, run, spans))
    return fast, total


def test_fixtures_mapped_in_columns_as_in_python() -> None:
    for path in sorted((FIXTURES / "x12").iterdir()):
        rows = _same(path.name, path.read_bytes())[0]
        assert rows  # the files load
    for text in _layouts().values():
        _same("layout.837", text)
    assert _fast_share(CLAIMS) == (1, 1)
    assert _fast_share(REMITS) == (0, 1)  # its MOA and PLB
    assert _fast_share(CLEAN_REMITS) == (1, 1)
    _same("clean.835", CLEAN_REMITS)


def test_simulated_practice_mapped_in_columns_as_in_python(tmp_path: Path) -> None:
    args = ("--months", "2", "--providers", "6", "--scale", "0.5", "--end", "2026-09-30", "--seed", "11")
    done = clinic_kpis("sample", "--out", "exports", "--workers", "1", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "exports").rglob("*.83[57]"))
    assert files
    for path in files:
        _same(path.name, path.read_bytes())
    fast, total = _fast_share("".join(p.read_text() for p in files[:2]))
    assert fast == total > 0


def test_external_samples_mapped_in_columns_as_in_python(external: Path) -> None:
    files = [p for d in sorted(external.glob("x12-*")) for p in sorted(d.rglob("*")) if p.is_file()]
    x12_files = [p for p in files if p.read_bytes()[:200].lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"ISA")]
    assert len(x12_files) > 20
    for path in x12_files:
        _same(path.name, path.read_bytes())


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("an unknown segment", "~HI*", "~PWK*OZ*BM~HI*"),
        ("an invalid segment identifier", "~HI*", "~h1*X~HI*"),
        ("an element padded with a space", "CLM*", "CLM* "),
        ("an amount with three decimals", "*150***", "*150.001***"),
        ("an amount in another notation", "*150***", "*1.5E2***"),
        ("a date that is not a date", "D8*2025", "D8*2O25"),
        ("a date format other than D8 or RD8", "~DTP*472*D8*", "~DTP*472*DT*"),
        ("a day that does not exist", "D8*20250303", "D8*20250230"),
        ("a range starting on a day that does not exist", "RD8*20250301-", "RD8*20250229-"),
        ("a patient loop", "~CLM*C100", "~HL*3*2*23*0~NM1*QC*1*DOE*J~CLM*C100"),
        ("no HI", "~HI*ABK:J069", ""),
        ("a CLM05 without frequency", ":B:1*", ":B*"),
        ("an NM1 without entity", "~NM1*82*", "~NM1**"),
        ("an SV1 without its LX", "~LX*1~", "~"),
        ("no BHT", "~BHT*", "~BHX*"),
        ("a BHT date that is not a date", "*20250305*1200*CH", "*20251399*1200*CH"),
        ("two rendering providers", "~NM1*82*", "~NM1*82*1*X****XX*1~NM1*82*"),
        ("no claim", "~CLM*", "~CLX*"),
    ],
)
def test_an_oddity_in_an_837_goes_the_python_way(what: str, old: str, new: str) -> None:
    assert old in CLAIMS, what
    text = CLAIMS.replace(old, new, 1) if what != "no claim" else CLAIMS.replace(old, new)
    assert _fast_share(text) == (0, 1), what
    _same("odd.837", text)


def test_a_leap_day_is_read_in_columns() -> None:
    # the columnar mappers read CCYYMMDD themselves (days of the month, leap years) where the Python
    # mappers ask `datetime.strptime`: a real 29 February stays in columns, with the same rows
    claims = CLAIMS.replace("D8*20250303", "D8*20240229", 1)
    assert _fast_share(claims) == (1, 1)
    rows = _same("leap.837", claims)[0]
    assert date(2024, 2, 29) in {r["service_date"] for r in rows["claims"]}
    remits = CLEAN_REMITS.replace("~DTM*232*20250303", "~DTM*232*20240229", 1)
    assert _fast_share(remits) == (1, 1)
    rows = _same("leap.835", remits)[0]
    assert date(2024, 2, 29) in {r["service_date"] for r in rows["ledger"]}


# the 835 fixture without what always goes the Python way (its MOA and PLB)
CLEAN_REMITS = REMITS.replace("~MOA***MA01", "").replace("~PLB*9999999999*20251231*WO:C100*-5", "")


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("a provider-level adjustment", "~SE*", "~PLB*1234567890*20251231*WO:X*10~SE*"),
        ("an MOA segment", "~DTM*232", "~MOA***N1~DTM*232"),
        ("a CAS amount with three decimals", "~CAS*CO*45*40", "~CAS*CO*45*40.001"),
        ("a CAS quantity in another notation", "~CAS*CO*45*40", "~CAS*CO*45*40*1E1"),
        ("a paid amount in another notation", "~CLP*C100*1*170*95*", "~CLP*C100*1*170*9.5E1*"),
        ("a statement date that is not a date", "~DTM*232*20250303", "~DTM*232*20251303"),
        ("a statement date on a day that does not exist", "~DTM*232*20250303", "~DTM*232*20250431"),
        ("a line date on a day that does not exist", "~DTM*472*20250303", "~DTM*472*20250229"),
        ("an element padded with a space", "~CLP*", "~CLP* "),
        ("two patient names", "~NM1*QC*1*QUIXOTEZZ", "~NM1*QC*1*X~NM1*QC*1*QUIXOTEZZ"),
        ("a payment date that is not a date", "*654321*20250415", "*654321*20251415"),
        ("no payment", "~CLP*", "~CLX*"),
    ],
)
def test_an_oddity_in_an_835_goes_the_python_way(what: str, old: str, new: str) -> None:
    assert old in CLEAN_REMITS, what
    text = CLEAN_REMITS.replace(old, new, 1) if what != "no payment" else CLEAN_REMITS.replace(old, new)
    assert _fast_share(text) == (0, 1), what
    _same("odd.835", text)


@pytest.mark.parametrize(
    "text",
    [
        CLAIMS.replace("~SE*", "~GE*", 1),  # GE inside a set
        CLAIMS.replace("~SE*", "~IEA*", 1),  # IEA inside a set
        CLAIMS.replace("~SE*", "~ST*", 1),  # ST inside a set
        CLAIMS.replace("~GS*", "~XX*", 1),  # ST outside a group
        CLAIMS.replace("~ST*", "~NM1*X~ST*", 1),  # a segment outside a set
        CLAIMS.replace("~GE*", "~SE*1*1~GE*", 1),  # SE outside a set
        CLAIMS[: CLAIMS.index("~SE*")],  # truncated inside a set
        CLAIMS[: CLAIMS.index("~GE*")],  # truncated after the set
        CLAIMS.replace("~BHT*", "~GS*HC*X*Y*20250301*1200*2*X*005010X222A1~BHT*", 1),  # GS inside a set
    ],
)
def test_envelope_errors_said_in_the_same_words(text: str) -> None:
    def read(columnar: bool) -> object:
        try:
            if columnar:
                return [
                    (s.kind, s.label, run.python_set(s).syntax_error, len(run.python_set(s).segments))
                    for run in transaction_sets(text, "f.837", interchange_runs)
                    for s in run.sets
                ]
            return [(ts.kind, ts.label, ts.syntax_error, len(ts.segments)) for ts in transaction_sets(text, "f.837")]
        except IngestError as exc:
            return str(exc)

    assert read(True) == read(False)
    _same("env.837", text)


@pytest.mark.parametrize(
    ("name", "text", "old", "new", "reason"),
    [
        ("nan.837", CLAIMS, "*UN*1***1~DTP", "*UN*NaN***1~DTP", "SV104 units 'NaN' (segment 27) is not a number"),
        (
            "nan.835",
            CLEAN_REMITS,
            "~CAS*CO*45*40",
            "~CAS*CO*45*40*NaN",
            "CAS quantity 'NaN' (segment 17) is not a number",
        ),
    ],
)
def test_a_quantity_nan_is_a_reject_not_a_crash(name: str, text: str, old: str, new: str, reason: str) -> None:
    # Decimal reads "NaN" and quantizes it; Arrow then failed on the whole file ("Decimal precision
    # out of range"): the claim or payment is rejected with the sentence of any unreadable quantity
    assert old in text
    errors = _same(name, text.replace(old, new, 1))[1]
    assert [e[3] for e in errors] == [reason]
