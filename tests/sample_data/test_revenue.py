"""A/R and denials re-derived from the billing exports by the contract's derived-ledger rules."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.sample_data.conftest import truth_rows


def _segments(path: Path) -> list[list[str]]:
    return [s.strip().split("*") for s in path.read_text(encoding="ascii").split("~") if s.strip()]


def _day(ccyymmdd: str) -> date:
    return datetime.strptime(ccyymmdd, "%Y%m%d").date()


def _ledger(small: Path) -> list[tuple[date, Decimal]]:
    """(posted date, change of A/R) for every entry the contract derives from the billing exports."""
    entries: list[tuple[date, Decimal]] = []
    billed: dict[str, Decimal] = {}
    for path in sorted((small / "billing").glob("claims_*.837")):
        submitted = None
        for s in _segments(path):
            if s[0] == "BHT":
                submitted = _day(s[4])
            elif s[0] == "CLM":
                assert submitted is not None
                amount, frequency = Decimal(s[2]), s[5].split(":")[2]
                previous = billed.get(s[1], Decimal(0))
                delta = {"1": amount, "7": amount - previous, "8": -previous}[frequency]
                billed[s[1]] = amount
                entries.append((submitted, delta))
    for path in sorted((small / "billing").glob("remits_*.835")):
        paid = None
        for s in _segments(path):
            if s[0] == "BPR":
                paid = _day(s[16])
            elif s[0] == "CLP":
                assert paid is not None
                entries.append((paid, -Decimal(s[4])))
            elif s[0] == "CAS" and s[1] in ("CO", "OA", "PI", "CR"):
                assert paid is not None
                entries.append((paid, -Decimal(s[3])))
    for name in ("patient_payments.csv", "north_transactions.csv"):
        with open(small / "billing" / name, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                posted = date.fromisoformat(row["POSTDATE"])
                if row["TYPE"] == "CHARGE":
                    entries.append((posted, Decimal(row["AMOUNT"])))
                elif row["TYPE"] == "PAYMENT":
                    entries.append((posted, -Decimal(row["PAYMENTS"]) - Decimal(row["ADJUSTMENTS"] or "0")))
                elif row["TYPE"] == "ADJUSTMENT" and row["TRANSFERTYPE"] == "p":  # bad-debt write-off
                    entries.append((posted, -Decimal(row["ADJUSTMENTS"])))
    return entries


def test_total_ar_matches_truth(small: Path, small_truth: dict[str, Any]) -> None:
    entries = _ledger(small)
    rows = truth_rows(small_truth, "days_in_ar")
    assert len(rows) == 3
    for period, row in rows.items():
        start = date.fromisoformat(period)
        month_end = date(start.year + start.month // 12, start.month % 12 + 1, 1).toordinal() - 1
        ar = sum((delta for posted, delta in entries if posted.toordinal() <= month_end), Decimal(0))
        assert ar > 0
        assert abs(Decimal(str(row["numerator"])) - ar) < Decimal("0.005"), period


def test_denial_rate_matches_truth(small: Path, small_truth: dict[str, Any]) -> None:
    remits: dict[str, list[tuple[date, int, str, Decimal, set[str], set[str]]]] = defaultdict(list)
    order = 0
    for path in sorted((small / "billing").glob("remits_*.835")):
        paid = None
        current: list | None = None
        for s in _segments(path):
            if s[0] == "BPR":
                paid = _day(s[16])
            elif s[0] == "CLP":
                order += 1
                current = [paid, order, s[2], Decimal(s[4]), set(), set()]
                remits[s[1]].append(current)  # type: ignore[arg-type]
            elif s[0] == "CAS" and current is not None:
                current[4].add(s[1])
                current[5].add(s[2])
    denied: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for claim_remits in remits.values():
        first = min((r for r in claim_remits if r[2] != "22"), key=lambda r: (r[0], r[1]), default=None)
        if first is None or "18" in first[5]:
            continue
        cell = denied[first[0].strftime("%Y-%m-01")]
        cell[1] += 1
        cell[0] += first[2] == "4" or (first[3] == 0 and bool(first[4] & {"CO", "PI", "OA"}) and "PR" not in first[4])
    truth = truth_rows(small_truth, "denial_rate")
    assert sum(c[0] for c in denied.values()) > 0
    for period, row in truth.items():
        assert [row["numerator"], row["denominator"]] == denied.get(period, [0, 0]), period
