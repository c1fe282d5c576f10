"""KPIs on real files written outside this project, against an independent pandas computation.

The files (../shared/external) go through the real ingest; the expected numbers are computed
here straight from the files with pandas and a few lines of segment splitting, following the
documented mapping (ingest/profiles/synthea_transactions.toml; docs/contracts.md section 2),
never through ingest/ or kpis/ code.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from ingest import ingest_paths
from kpis import Warehouse

pytestmark = pytest.mark.slow

TZ = "America/New_York"  # the default practice time zone: it decides the calendar date of an instant


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "external-files-test-secret")


def _month_ends(first: date, last: date) -> list[pd.Timestamp]:
    return list(pd.date_range(pd.Timestamp(first).to_period("M").start_time, last, freq="ME"))


def test_synthea_days_in_ar_and_net_collection(external: Path, tmp_path: Path, secret: None) -> None:
    """Synthea's claims_transactions: CHARGE -> charge (AMOUNT); PAYMENT -> payment (PAYMENTS) and a
    CO-45 adjustment (ADJUSTMENTS); transfers move balances only. Posting date = the practice's
    local date of the FROMDATE instant (Synthea has no posting date). MGMA days in A/R at each month end; net collection
    rate per month."""
    folder = external / "synthea-csv-au-evinett"
    with Warehouse(tmp_path / "w.duckdb") as wh:
        results = ingest_paths(wh, [folder])
        assert {r.status for r in results} <= {"succeeded", "skipped"}
        got = wh.compute(["days_in_ar", "net_collection_rate"], start="1900-01", end="2100-12")

    tx = pd.read_csv(folder / "claims_transactions.csv", dtype=str, keep_default_na=False)
    tx["posted"] = pd.to_datetime(tx["FROMDATE"], utc=True).dt.tz_convert(TZ).dt.tz_localize(None).dt.normalize()
    money = {c: tx[c].map(lambda s: Decimal(s or "0")) for c in ("AMOUNT", "PAYMENTS", "ADJUSTMENTS")}
    entries = pd.concat(
        [
            pd.DataFrame({"posted": tx["posted"], "charge": money["AMOUNT"], "kind": tx["TYPE"]}).query(
                "kind == 'CHARGE'"
            ),
            pd.DataFrame({"posted": tx["posted"], "payment": money["PAYMENTS"], "kind": tx["TYPE"]}).query(
                "kind == 'PAYMENT'"
            ),
            pd.DataFrame({"posted": tx["posted"], "adjustment": money["ADJUSTMENTS"], "kind": tx["TYPE"]}).query(
                "kind == 'PAYMENT'"
            ),
        ]
    ).fillna({"charge": Decimal(0), "payment": Decimal(0), "adjustment": Decimal(0)})

    checked = 0
    days = got[got["kpi_id"] == "days_in_ar"].set_index("period_start")
    collection = got[got["kpi_id"] == "net_collection_rate"].set_index("period_start")
    for end in _month_ends(entries["posted"].min(), entries["posted"].max()):
        start = end.to_period("M").start_time
        upto = entries[entries["posted"] <= end]
        ar = upto["charge"].sum() - upto["payment"].sum() - upto["adjustment"].sum()
        window = upto[upto["posted"] > end - pd.Timedelta(days=365)]
        adjusted = window["charge"].sum() - window["adjustment"].sum()
        expected_days = float(ar) / (float(adjusted) / 365) if adjusted else math.nan
        month = entries[(entries["posted"] >= start) & (entries["posted"] <= end)]
        net = month["charge"].sum() - month["adjustment"].sum()
        expected_ncr = float(month["payment"].sum()) / float(net) if net else math.nan

        row_days, row_ncr = days.loc[start], collection.loc[start]
        assert _same(row_days["value"], expected_days), (start, row_days["value"], expected_days)
        assert _same(row_ncr["value"], expected_ncr), (start, row_ncr["value"], expected_ncr)
        assert _same(row_days["numerator"], float(ar)), start
        checked += 1
    assert checked > 100  # decades of monthly values, not a handful


# Real 835s with distinct claim ids (the de-identified clearinghouse files mask every account
# number to the same 9s, which merges their claims, so they are not used here).
REMITS = [
    "x12-edi-835-parser/test_edi_835_files/emedny_sample.txt",
    "x12-edi-835-parser/test_edi_835_files/united_healthcare_legacy_sample.txt",
    "x12-linuxforhealth/835_005010X221A1/cob-contractural-adjustment.835",
    "x12-linuxforhealth/835_005010X221A1/managed-care.835",
    "x12-linuxforhealth/835_005010X221A1/secondary-payment.835",
    "x12-linuxforhealth/835_005010X221A1/tertiary-payment.835",
    "x12-pyx12/835_mult_loops.txt",
]


def test_x12_denial_rate(external: Path, tmp_path: Path, secret: None) -> None:
    """Denial rate from real 835s: per claim (CLP01), the first remittance that is not a reversal
    (CLP02 22), by payment date (BPR16, else DTM*405); a denial is CLP02 = 4, or nothing paid with
    a CO/PI/OA adjustment and no PR one; claims whose first remittance carries CARC 18 are left out."""
    paths = [external / p for p in REMITS]
    with Warehouse(tmp_path / "w.duckdb") as wh:
        results = ingest_paths(wh, paths)
        assert {r.status for r in results} == {"succeeded"}, [(r.path, r.error) for r in results]
        got = wh.compute("denial_rate", start="1990-01", end="2100-12")

    by_claim: dict[str, list[dict]] = defaultdict(list)
    for path in paths:
        for remit in _remittances(path):
            if remit["status"] != "22":
                by_claim[remit["claim"]].append(remit)
    # Per month: [denied low, denied high, remitted low, remitted high]. A claim whose earliest
    # payment date carries differing decisions (emedny repeats one account number) has no single
    # "first" remittance in the file; it may count either way, and there must be few such claims.
    bounds: dict[pd.Timestamp, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    ambiguous = 0
    for remits in by_claim.values():
        earliest = min(r["paid"] for r in remits)
        candidates = {_outcome(r): r for r in remits if r["paid"] == earliest}
        ambiguous += len(candidates) > 1
        counted = [r for r in candidates.values() if "18" not in r["carcs"]]
        denied = [_denied(r) for r in counted]
        cell = bounds[pd.Timestamp(earliest).to_period("M").start_time]
        cell[0] += len(denied) == len(candidates) and all(denied)
        cell[1] += any(denied)
        cell[2] += len(counted) == len(candidates)
        cell[3] += bool(counted)
    assert ambiguous <= 2

    assert sum(c[2] for c in bounds.values()) >= 8  # every claim of these samples
    assert sum(c[1] for c in bounds.values()) >= 1
    table = got.set_index("period_start")
    for month, (denied_lo, denied_hi, remitted_lo, remitted_hi) in bounds.items():
        row = table.loc[month]
        assert denied_lo <= row["numerator"] <= denied_hi, month
        assert remitted_lo <= row["denominator"] <= remitted_hi, month
    assert got["denominator"].fillna(0).sum() >= sum(c[2] for c in bounds.values())


def test_835s_without_their_837s_have_no_impossible_ratios(external: Path, tmp_path: Path, secret: None) -> None:
    """The real 835s above, loaded without any 837: the ledger holds payments and adjustments whose
    charges are missing. Net collection over a negative denominator (-3,368% once) and A/R shares
    or days over a negative A/R (-0.0% "on target" once) have no value and no status, and say why;
    every value given is a real share or number of days."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        ingest_paths(wh, [external / p for p in REMITS])
        kpis = ["net_collection_rate", "ar_over_90_pct", "days_in_ar"]
        frame = wh.compute(kpis, start="2000-01", end="2022-12")
    with_data = frame[(frame["n"] > 0) | (frame["numerator"] != 0) | (frame["denominator"] != 0)]
    refused = (with_data["denominator"] <= 0) | ((with_data["kpi_id"] == "days_in_ar") & (with_data["numerator"] < 0))
    assert with_data.loc[refused, "value"].isna().all()
    assert with_data.loc[refused, "status"].isna().all()
    assert with_data.loc[refused, "note"].str.contains("load the claims (837s", regex=False).all()
    assert (with_data.loc[~refused, "value"] >= 0).all() and with_data.loc[~refused, "note"].isna().all()
    negative = with_data[refused & (with_data["denominator"] < 0)]
    assert {"net_collection_rate", "ar_over_90_pct"} <= set(negative["kpi_id"])  # the cases of the issue


def _denied(remit: dict) -> bool:
    groups = remit["groups"]
    return remit["status"] == "4" or (remit["amount"] == 0 and bool(groups & {"CO", "PI", "OA"}) and "PR" not in groups)


def _remittances(path: Path) -> list[dict]:
    """CLP loops of an 835, with the payment date of their transaction and their CAS codes.

    A payment whose BPR16 is not a real date (managed-care.835 has 2000-23-16) dates no claim:
    ingest quarantines those claims, so they are in no count here either.
    """
    text = path.read_bytes().decode("utf-8-sig").lstrip()
    element, terminator = text[3], text[105]
    segments = [s.strip().split(element) for s in text.split(terminator) if s.strip()]
    out: list[dict] = []
    paid: date | None = None
    production: date | None = None
    current: dict | None = None
    for seg in segments:
        tag = seg[0]
        if tag == "ST":
            paid = production = None
        elif tag == "BPR" and len(seg) > 16 and seg[16]:
            paid = _date(seg[16])
        elif tag == "DTM" and seg[1] == "405":
            production = datetime.strptime(seg[2], "%Y%m%d").date()
        elif tag == "CLP":
            if paid is INVALID:  # ingest quarantines the claims of a payment with an impossible date
                current = None
                continue
            current = {
                "claim": seg[1],
                "status": seg[2],
                "amount": Decimal(seg[4] or "0"),
                "paid": paid or production,
                "groups": set(),
                "carcs": set(),
            }
            out.append(current)
        elif tag == "CAS" and current is not None:
            current["groups"].add(seg[1])
            current["carcs"].update(seg[i] for i in range(2, len(seg), 3) if seg[i])
        elif tag == "SE":
            current = None
    return out


def _outcome(remit: dict) -> tuple:
    return remit["status"], remit["amount"], frozenset(remit["groups"]), frozenset(remit["carcs"])


INVALID = date.min


def _date(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return INVALID


def _same(a: object, b: object) -> bool:
    a, b = float(a), float(b)  # type: ignore[arg-type]
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))
