"""Every real third-party file in ../shared/external loads, or fails or is quarantined for its real defect.

Files not listed in EXPECTED must load with no reject. The listed ones are malformed on purpose
(x12-imsweb names them so), internally inconsistent (fixtures whose CLM05 uses `>` while ISA16
declares `:`), masked by de-identification (times `999999`, colliding trace numbers), or not a
supported kind (CDR parser output CSVs, Asterisk CEL, a Bulk export log). See SOURCES.md there.
"""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from kpis.warehouse import Warehouse
from tests.conftest import external_dir
from tests.ingest.conftest import load, rejects, rows

NOT_RECOGNIZED = "not a recognized export"
# path -> (status, {check_name: count} of rejects, a fragment every reject reason or the error contains)
EXPECTED: dict[str, tuple[str, dict[str, int], str]] = {
    "asterisk-testsuite/cdrlib/buggy.csv": ("succeeded", {"invalid_csv": 1}, "a quoted field is never closed"),
    "asterisk-testsuite/cdrlib/good.csv": ("succeeded", {"rule_wait_seconds": 1, "duplicate_conflict": 3}, ""),
    "asterisk-testsuite/self_test/CELMaster1.csv": ("failed", {}, NOT_RECOGNIZED),
    "asterisk-testsuite/self_test/CELMaster2.csv": ("failed", {}, NOT_RECOGNIZED),
    "fhir-bulk-smart-10-patients/log.ndjson": ("failed", {}, NOT_RECOGNIZED),
    "fhir-r4-hl7-examples/appointment-example-request.json": ("succeeded", {"required": 1}, "has no start time"),
    "fhir-r4-hl7-examples/servicerequest-example-subrequest.json": ("succeeded", {"required": 1}, "no creation date"),
    "synthea-csv-au-evinett/patients.csv": ("skipped", {}, "patient demographics only"),
    "synthea-csv-au-evinett/payer_transitions.csv": ("skipped", {}, "insurance history"),
    "synthea-csv-us-unmc/patients.csv": ("skipped", {}, "patient demographics only"),
    "synthea-csv-us-unmc/payer_transitions.csv": ("skipped", {}, "insurance history"),
    "x12-edi-835-parser/output/all_samples.csv": ("failed", {}, NOT_RECOGNIZED),
    "x12-edi-835-parser/output/blue_cross_nc_sample.csv": ("failed", {}, NOT_RECOGNIZED),
    "x12-edi-835-parser/output/emedny_sample.csv": ("failed", {}, NOT_RECOGNIZED),
    "x12-edi-835-parser/output/united_healthcare_legacy_sample.csv": ("failed", {}, NOT_RECOGNIZED),
    "x12-edi-835-parser/test_edi_835_files/blue_cross_nc_sample.txt": (
        "failed",
        {},
        "segment 1: the file starts with 'ST*835' but an X12 file must begin with an ISA interchange header",
    ),
    "x12-imsweb/837_5010/x12_bad_first_line.txt": (
        "failed",
        {},
        "segment 1: ISA02 (authorization information) is 9 characters, expected 10",
    ),
    "x12-imsweb/837_5010/x12_no_isa_line.txt": ("failed", {}, "must begin with an ISA interchange header"),
    "x12-imsweb/837_5010/x12_bad_segment_identifier.txt": (
        "succeeded",
        {"malformed_transaction": 2},
        "(segment 6: '' is not a segment identifier)",
    ),
    "x12-imsweb/837_5010/x12_bad_valid_code.txt": (
        "succeeded",
        {"billing_provider": 2},
        "must have exactly one NM1*85 billing provider name; it has 0 (found NM1*117, NM1*87)",
    ),
    "x12-imsweb/837_5010/x12_loop_errors1_exceeds_max_1_parent.txt": (
        "succeeded",
        {"billing_provider": 1},
        "must have exactly one NM1*85 billing provider name; it has 2",
    ),
    "x12-imsweb/837_5010/x12_loop_errors2_exceeds_max_repeats_multiple_parents.txt": (
        "succeeded",
        {"billing_provider": 1},
        "must have exactly one NM1*85 billing provider name; it has 2",
    ),
    "x12-imsweb/837_5010/x12_loop_errors3_missing_loops.txt": (
        "succeeded",
        {"billing_provider": 1},
        "must have exactly one NM1*85 billing provider name; it has 0",
    ),
    "x12-imsweb/837_5010/x12_missing_elements.txt": ("succeeded", {"required": 1}, "CLM05"),
    "x12-imsweb/837_5010/x12_missing_required_loop_in_one_repeat.txt": (
        "succeeded",
        {"subscriber": 1},
        "must have exactly one NM1*IL subscriber name; it has 0",
    ),
    "x12-imsweb/837_5010/x12_missing_required_loops_mult_repeats.txt": (
        "succeeded",
        {"missing_lx": 2},
        "the service line (SV1) is not preceded by an LX segment",
    ),
    "x12-imsweb/837_5010/x12_multiple_gs.txt": ("succeeded", {"duplicate_conflict": 2}, "appears earlier in this file"),
    "x12-imsweb/837_5010/x12_segment_errors.txt": (
        "succeeded",
        {"billing_provider": 1},
        "has no N3 address for NM1*85",
    ),
    "x12-imsweb/837_5010/x12_segments_out_of_order.txt": (
        "succeeded",
        {"out_of_order": 2},
        "N3 (address) comes after N4 (city/state/ZIP)",
    ),
    "x12-linuxforhealth/835_005010X221A1/managed-care.835": (
        "succeeded",
        {"unreadable_value": 2},
        "BPR16 '20002316' (segment 4) is not a date CCYYMMDD",
    ),
    **{
        f"x12-linuxforhealth/837_005010X222A2/{name}": (
            "succeeded",
            {"required": 1},
            "has no claim frequency code as its third part, separated by ':' as ISA16 declares",
        )
        for name in (
            "demo.cob.2ndary.example4.837",
            "demo.example11.837",
            "demo.example12.837",
            "demo.example6.837",
            "demo.example9.837",
        )
    },
    "x12-oopfactory/_835/_4010/FromNth/835_DeIdent_02.dat": (
        "succeeded",
        {"duplicate_conflict": 167},  # every failure of a record: 2 records conflict in two tables
        "appears earlier in this file",
    ),
    "x12-oopfactory/_835/_5010/Example1.txt": (
        "succeeded",
        {"required": 2},  # the payment without CLP04 fails as a remittance and as a ledger entry
        " has no ",
    ),
    "x12-oopfactory/_835/_5010/ExampleFromNth.txt": ("succeeded", {"duplicate_conflict": 2}, "appears earlier"),
    "x12-oopfactory/_835/_5010/FromNth/835_WithMultipleInterchanges.txt": (
        "succeeded",
        {"duplicate_conflict": 2},
        "appears earlier",
    ),
    **{
        f"x12-oopfactory/_837P/_4010/FromNth/837_DeIdent_0{i}.dat": (
            "succeeded",
            {"unreadable_value": n},
            "BHT05 time '999999' (segment 4) is not HHMM",
        )
        for i, n in ((1, 143), (2, 62), (3, 18), (4, 53), (5, 186))
    },
    "x12-oopfactory/_837P/_5010/MedicaidExample.txt": ("succeeded", {"unreadable_value": 5}, "BHT05 time '9999'"),
    "x12-oopfactory/_837P/_5010/MissingEntityCode.txt": ("succeeded", {"unreadable_value": 5}, "BHT05 time '9999'"),
    "x12-oopfactory/_837P/_5010/UnicodeExample.txt": (  # a cut-off fragment, in UTF-16: both are said
        "failed",
        {},
        "the file ends inside transaction set ST*837*000000001 (segment 3): it has no SE trailer (is the file "
        "truncated?) [the file is UTF-16 text (little-endian, without a byte-order mark)",
    ),
}
# files that need another file loaded with them
COMPANIONS = {"synthea-csv-au-evinett/claims.csv": ["synthea-csv-au-evinett/claims_transactions.csv"]}
KAGGLE = "noshow-brazil-kaggle/KaggleV2-May-2016.csv"  # its own test, test_kaggle_noshow.py


def external_files() -> list[str]:
    base = external_dir()
    if not base.is_dir():
        return ["<missing>"]
    return [
        str(p.relative_to(base))
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name != "SOURCES.md" and str(p.relative_to(base)) != KAGGLE
    ]


@pytest.mark.parametrize("name", external_files())
def test_external_file(name: str, external: Path, warehouse: Warehouse) -> None:
    companions = [external / c for c in COMPANIONS.get(name, [])]
    *_, result = load(warehouse, *companions, external / name)
    status, checks, fragment = EXPECTED.get(name, ("succeeded", {}, ""))
    assert result.status == status, result
    if status == "succeeded":
        found = rejects(warehouse, result.run_id)
        assert Counter(r["check_name"] for r in found) == Counter(checks)
        assert all(fragment in r["reason"] for r in found), [r["reason"] for r in found]
        assert result.read > 0 or result.ignored > 0, "a supported file that yields nothing"
    else:
        assert fragment in result.message
    if status == "failed":  # one line naming the file, the position and what was expected
        assert result.message.startswith(f"{external / name}: ")


def test_expectations_name_real_files(external: Path) -> None:
    assert [n for n in [*EXPECTED, *COMPANIONS] if not (external / n).is_file()] == []


@pytest.mark.parametrize("sample", ["emedny_sample", "united_healthcare_legacy_sample"])
def test_835_matches_the_other_parsers_output(sample: str, external: Path, warehouse: Warehouse) -> None:
    """keironstoddart/edi-835-parser's expected service lines: the same total paid, and every
    line adjustment it found is ours too."""
    base = external / "x12-edi-835-parser"
    load(warehouse, base / "test_edi_835_files" / f"{sample}.txt")
    with (base / "output" / f"{sample}.csv").open() as fh:
        lines = list(csv.DictReader(fh))
    theirs_paid = sum(Decimal(line["paid_amount"]) for line in lines)
    assert rows(warehouse, "SELECT sum(paid_amount) FROM remittances") == [(theirs_paid.quantize(Decimal("0.01")),)]
    theirs = Counter(
        (line[f"adj_{i}_group"], line[f"adj_{i}_code"], Decimal(line[f"adj_{i}_amount"]).quantize(Decimal("0.01")))
        for line in lines
        for i in range(4)
        if line.get(f"adj_{i}_code")
    )
    ours = Counter(
        rows(warehouse, "SELECT group_code, reason_code, amount FROM remittance_adjustments WHERE line_no IS NOT NULL")
    )
    assert theirs - ours == Counter()
    if sample == "united_healthcare_legacy_sample":
        # `CAS*PR*2*5.13**1*110` holds two triplets; the other parser keeps only the first. The
        # line balances only with both: 328.50 = 29.05 paid + 5.13 + 110.00 + 184.32.
        assert ours - theirs == Counter({("PR", "1", Decimal("110.00")): 1})
