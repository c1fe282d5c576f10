"""Revenue-cycle KPIs on hand-computed fixtures: denials, clean claims, charge lag, A/R, collections."""

from __future__ import annotations

import math

import pytest

from tests.kpis.builder import Fixture
from tests.kpis.helpers import one


def claims(fx: Fixture) -> None:
    """Claims (837) and their remittances (835); times local, amounts billed.

    C1  sub 10-02, svc 09-28, 100: paid 10-20 (CO-45)                      clean, not denied
    C2  sub 10-03, svc 10-01, 200: CLP02 4 on 10-21 (CO-16)                 denied
    C3  sub 10-05, svc 10-05,  50: paid 0 on 10-22, PR-1 only (deductible)  NOT a denial, clean
    C4  sub 10-06, svc 10-02, 120: paid 0 on 10-23 with CO-97              denied
    C5  sub 10-07, svc 10-07,  70: CLP02 4 with CO-18 on 10-24             duplicate: out of denial rate
    C6  sub 09-10, svc 09-08,  90: paid 09-25, reversed (22) and re-paid 10-10
                                   -> its first remittance is in September, and not a denial
    C7  sub 10-08, svc 10-07,  80: replacement (7) 10-15, paid 10-25        rework before payment: not clean
    C8  sub 10-09, svc 10-01,  40: never remitted                          not clean
    C9  sub 10-10, svc 10-03,  60: paid 10-26; replacement 10-28            clean (rework after payment)
    C10 no 837, 835 only:    300: CLP02 4 on 10-27 (payer PAY2)           denied (remittance-only)
    C11 sub 10-31 23:30 local (11-01 03:30 UTC), svc 10-30, 30: paid 11-15
                                   -> submitted in October, charge lag 1 day (2 in UTC)
    C12 sub 10-12, svc 10-12, 100: paid 0 on 10-19 with CO-45 60 and PR-1 40 (all to the
                                   deductible): a payer adjustment, but PR explains the zero
                                   payment -> NOT a denial, clean
    October denial rate: C2 C4 C10 of C1 C2 C3 C4 C7 C9 C10 C12 = 3/8 (dollars 620/1010).
    October clean claims: C1 C3 C9 C11 C12 of C1-C5 C7-C9 C11 C12 = 5/10.
    Charge lag (days) [4, 2, 0, 4, 0, 1, 8, 7, 1, 0]: median 1.5.
    """
    subs = [
        ("C1", "1", "2026-10-02 10:00", "2026-09-28", 100),
        ("C2", "1", "2026-10-03 10:00", "2026-10-01", 200),
        ("C3", "1", "2026-10-05 10:00", "2026-10-05", 50),
        ("C4", "1", "2026-10-06 10:00", "2026-10-02", 120),
        ("C5", "1", "2026-10-07 10:00", "2026-10-07", 70),
        ("C6", "1", "2026-09-10 10:00", "2026-09-08", 90),
        ("C7", "1", "2026-10-08 10:00", "2026-10-07", 80),
        ("C7", "7", "2026-10-15 10:00", "2026-10-07", 80),
        ("C8", "1", "2026-10-09 10:00", "2026-10-01", 40),
        ("C9", "1", "2026-10-10 10:00", "2026-10-03", 60),
        ("C9", "7", "2026-10-28 10:00", "2026-10-03", 60),
        ("C11", "1", "2026-10-31 23:30", "2026-10-30", 30),
        ("C12", "1", "2026-10-12 10:00", "2026-10-12", 100),
    ]
    fx.add(
        "claims",
        *(
            {"claim_id": c, "frequency_code": f, "submitted_at": at, "service_date": svc, "billed_amount": amount}
            for c, f, at, svc, amount in subs
        ),
    )
    remits = [
        ("R1", "C1", "1", "2026-10-20", 100, 80, [("CO", "45", 20)]),
        ("R2", "C2", "4", "2026-10-21", 200, 0, [("CO", "16", 200)]),
        ("R3", "C3", "1", "2026-10-22", 50, 0, [("PR", "1", 50)]),
        ("R4", "C4", "1", "2026-10-23", 120, 0, [("CO", "97", 120)]),
        ("R5", "C5", "4", "2026-10-24", 70, 0, [("CO", "18", 70)]),
        ("R6a", "C6", "1", "2026-09-25", 90, 90, []),
        ("R6b", "C6", "22", "2026-10-10", 90, -90, []),
        ("R6c", "C6", "1", "2026-10-10", 90, 95, []),
        ("R7", "C7", "1", "2026-10-25", 80, 80, []),
        ("R9", "C9", "1", "2026-10-26", 60, 60, []),
        ("R10", "C10", "4", "2026-10-27", 300, 0, [("CO", "50", 300)]),
        ("R11", "C11", "1", "2026-11-15", 30, 30, []),
        ("R12", "C12", "1", "2026-10-19", 100, 0, [("CO", "45", 60), ("PR", "1", 40)]),
    ]
    for rid, claim, status, paid, billed, amount, adjustments in remits:
        fx.add(
            "remittances",
            {
                "remittance_id": rid,
                "claim_id": claim,
                "claim_status_code": status,
                "paid_date": paid,
                "billed_amount": billed,
                "paid_amount": amount,
                "payer_id": "PAY2" if claim == "C10" else "PAY1",
            },
        )
        for group, carc, adj in adjustments:
            adjustment = {"remittance_id": rid, "group_code": group, "reason_code": carc, "amount": adj}
            fx.add("remittance_adjustments", adjustment)


def test_denial_rate(fx: Fixture) -> None:
    claims(fx)
    frame = fx.wh.compute("denial_rate", start="2026-09", end="2026-11")
    assert [(r.numerator, r.denominator) for r in frame.itertuples()] == [(0, 1), (3, 8), (0, 1)]
    options = {"denial_rate": {"measure": "dollars"}}
    dollars = fx.wh.compute("denial_rate", start="2026-10", end="2026-10", options=options)
    row = one(dollars, period_start="2026-10-01")
    assert (row.numerator, row.denominator, row.n) == (620, 1010, 8)
    assert row.definition == "denial_rate[measure=dollars]"


def test_denial_rate_by_payer_includes_remittance_only_claims(fx: Fixture) -> None:
    claims(fx)
    frame = fx.wh.compute("denial_rate", start="2026-10", end="2026-10", by="payer")
    assert (one(frame, payer="PAY1").numerator, one(frame, payer="PAY1").denominator) == (2, 7)
    assert (one(frame, payer="PAY2").numerator, one(frame, payer="PAY2").denominator) == (1, 1)


def test_clean_claim_rate_and_charge_lag(fx: Fixture) -> None:
    claims(fx)
    frame = fx.wh.compute(["clean_claim_rate", "charge_lag"], start="2026-09", end="2026-10")
    clean = one(frame, kpi_id="clean_claim_rate", period_start="2026-10-01")
    assert (clean.numerator, clean.denominator) == (5, 10)
    assert one(frame, kpi_id="clean_claim_rate", period_start="2026-09-01").value == 1  # C6
    lag = one(frame, kpi_id="charge_lag", period_start="2026-10-01")
    assert (lag.value, lag.n) == (1.5, 10)
    # The data reach 11-15; October stays open for claims to be remitted (30 days).
    assert not clean.complete and one(frame, kpi_id="clean_claim_rate", period_start="2026-09-01").complete


def ledger(fx: Fixture) -> None:
    """Ledger entries (posted, service date, amount); claims A-E.

    A  charge 1000 06-01 (svc 06-01); payment 600 and CO-45 300 on 07-01      balance 100
    B  charge 500 10-05 (svc 10-01); CO-45 100 and payment 300 on 10-20       balance 100 from 10-20
    C  charge 200 09-15 (svc 09-10); payment 250 09-30 (credit -50); refund 50 10-10 -> 0
    D  charge 300 2025-11-15 (svc 2025-11-10); bad-debt write-off 300 on 10-15
    E  charge 400 08-01 (svc 07-15); CO-97 50 on 08-20 (a payer adjustment, not contractual)  350
    At 09-30: A 100 (aged 121 d), C -50, D 300 (aged), E 350 (77 d) -> A/R 700; without credits 750.
    At 10-31: A 100 (aged), B 100, E 350 (aged 108 d)              -> A/R 550, no credits.
    """
    entries = [
        ("A", "charge", "2026-06-01", "2026-06-01", 1000, None, None),
        ("A", "payment", "2026-07-01", "2026-06-01", 600, None, None),
        ("A", "adjustment", "2026-07-01", "2026-06-01", 300, "CO", "45"),
        ("B", "charge", "2026-10-05", "2026-10-01", 500, None, None),
        ("B", "adjustment", "2026-10-20", "2026-10-01", 100, "CO", "45"),
        ("B", "payment", "2026-10-20", "2026-10-01", 300, None, None),
        ("C", "charge", "2026-09-15", "2026-09-10", 200, None, None),
        ("C", "payment", "2026-09-30", "2026-09-10", 250, None, None),
        ("C", "refund", "2026-10-10", "2026-09-10", 50, None, None),
        ("D", "charge", "2025-11-15", "2025-11-10", 300, None, None),
        ("D", "writeoff", "2026-10-15", "2025-11-10", 300, None, None),
        ("E", "charge", "2026-08-01", "2026-07-15", 400, None, None),
        ("E", "adjustment", "2026-08-20", "2026-07-15", 50, "CO", "97"),
    ]
    fx.add(
        "ledger",
        *(
            {
                "claim_id": claim,
                "entry_type": kind,
                "posted_date": posted,
                "service_date": service,
                "amount": amount,
                "group_code": group,
                "reason_code": carc,
            }
            for claim, kind, posted, service, amount, group, carc in entries
        ),
    )


@pytest.mark.parametrize(
    ("preset", "september", "october", "charges"),
    [
        # A/R / (charges - CO-45 of 365 days / 365): 09-30: 700 / (1600/365); 10-31: 550 / (2000/365)
        ("mgma", 700 * 365 / 1600, 550 * 365 / 2000, (4, 5)),
        # A/R without credits / ((charges - payer adjustments) of 90 days / 90):
        # 09-30: window 07-03..09-30 = 200 + 400 - 50 = 550, 750 / (550/90); 10-31: 500 + 200 - 100 - 50
        ("hfma", 750 * 90 / 550, 550 * 90 / 550, (2, 2)),
        # A/R without credits / (gross charges of 90 days / 90): 600 and 700
        ("aafp", 750 * 90 / 600, 550 * 90 / 700, (2, 2)),
    ],
)
def test_days_in_ar_presets(fx: Fixture, preset: str, september: float, october: float, charges: tuple) -> None:
    ledger(fx)
    frame = fx.wh.compute("days_in_ar", start="2026-09", end="2026-10", options={"days_in_ar": {"preset": preset}})
    sep, octo = one(frame, period_start="2026-09-01"), one(frame, period_start="2026-10-01")
    assert sep.value == pytest.approx(september, rel=1e-12)
    assert octo.value == pytest.approx(october, rel=1e-12)
    assert sep.value == pytest.approx(sep.numerator / sep.denominator, rel=1e-12)
    assert (sep.n, octo.n) == charges  # charge entries in the look-back window
    assert octo.definition.startswith(f"days_in_ar[preset={preset}")


def test_days_in_ar_options_override_the_preset(fx: Fixture) -> None:
    """mgma with credit balances excluded and a 90-day window: 10-31 = 550 / ((700 - 100)/90)."""
    ledger(fx)
    options = {"days_in_ar": {"credit_balances": "exclude", "lookback_days": 90}}
    frame = fx.wh.compute("days_in_ar", start="2026-09", end="2026-10", options=options)
    assert one(frame, period_start="2026-10-01").value == pytest.approx(550 * 90 / 600)
    # 09-30: window 07-03..09-30 has charges 600 and no CO-45: 750 / (600 / 90)
    assert one(frame, period_start="2026-09-01").value == pytest.approx(750 * 90 / 600)


def test_days_in_ar_is_incomplete_while_its_look_back_reaches_before_the_first_entry(fx: Fixture) -> None:
    """The first entry is posted 2025-11-15. On 09-30 the MGMA window (365 days, from 2025-10-01)
    reads six weeks with no data, so its average daily charges are too low: not complete. The HFMA
    window (90 days, from 07-03) is covered. The window of 320 days starts on 2025-11-15 itself
    (covered); 321 days start one day before it. A/R over 90 days has no window: complete."""
    ledger(fx)

    def september(kpi: str, **options: object) -> bool:
        frame = fx.wh.compute(kpi, start="2026-09", end="2026-09", options={kpi: options} if options else None)
        return bool(one(frame, period_start="2026-09-01").complete)

    assert not september("days_in_ar")
    assert september("days_in_ar", preset="hfma")
    assert september("days_in_ar", lookback_days=320)
    assert not september("days_in_ar", lookback_days=321)
    assert september("ar_over_90_pct")


@pytest.mark.parametrize(
    ("credit_balances", "september", "october"),
    [("include", (400, 700), (450, 550)), ("exclude", (400, 750), (450, 550))],
)
def test_ar_over_90_pct(fx: Fixture, credit_balances: str, september: tuple, october: tuple) -> None:
    ledger(fx)
    options = {"ar_over_90_pct": {"credit_balances": credit_balances}}
    frame = fx.wh.compute("ar_over_90_pct", start="2026-09", end="2026-10", options=options)
    sep, octo = one(frame, period_start="2026-09-01"), one(frame, period_start="2026-10-01")
    assert (sep.numerator, sep.denominator) == september
    assert (octo.numerator, octo.denominator) == october
    assert (sep.n, octo.n) == (8, 13)  # ledger entries posted up to each period end


def test_ar_aging_buckets(fx: Fixture) -> None:
    """At 10-31: B 100 is 30 days old, E 350 is 108, A 100 is 152; the other buckets are empty."""
    ledger(fx)
    aging = fx.wh.ar_aging("2026-10")
    assert aging["bucket"].tolist() == ["0-30", "31-60", "61-90", "91-120", "120+"]
    assert aging["amount"].tolist() == [100, 0, 0, 350, 100]
    assert aging["share"].tolist() == pytest.approx([100 / 550, 0, 0, 350 / 550, 100 / 550])


def test_a_patient_payment_counts_in_the_claims_payer(fx: Fixture) -> None:
    """Claim F is billed to PAY2 (medicare): charge 200 on 10-01; the patient pays 50 on 10-10,
    an entry with no payer (patient_payments.csv has none). At 10-31 PAY2 holds A/R 150, and no
    payer-less group appears (it would show -50 and PAY2 200)."""
    fx.add("payers", {"payer_id": "PAY2", "payer_class": "medicare"})
    fx.add(
        "claims",
        {
            "claim_id": "F",
            "submitted_at": "2026-10-01T17:30:00",
            "payer_id": "PAY2",
            "service_date": "2026-10-01",
            "billed_amount": 200,
        },
    )
    common = {"claim_id": "F", "service_date": "2026-10-01"}
    fx.add(
        "ledger",
        {**common, "entry_type": "charge", "posted_date": "2026-10-01", "amount": 200, "payer_id": "PAY2"},
        {
            **common,
            "entry_type": "payment",
            "party": "patient",
            "posted_date": "2026-10-10",
            "amount": 50,
            "payer_id": None,
        },
    )
    frame = fx.wh.compute("ar_over_90_pct", start="2026-10", end="2026-10", by="payer")
    held = frame[frame["denominator"] != 0]
    assert held["payer"].tolist() == ["PAY2"] and held["denominator"].tolist() == [150]
    aging = fx.wh.ar_aging("2026-10", by="payer_class")
    assert aging.groupby("payer_class")["amount"].sum().to_dict() == {"medicare": 150}


def test_days_in_ar_without_charges_in_the_window_has_no_value(fx: Fixture) -> None:
    """Remittances loaded without their claims: on 10-31 the window holds a CO-45 adjustment of 40
    and no charge (adjusted charges -40), A/R is -100 (payment 60, adjustment 40). Neither side is a
    number of days: value None, and no status."""
    fx.add(
        "ledger",
        {"claim_id": "G", "entry_type": "payment", "posted_date": "2026-10-05", "amount": 60},
        {"claim_id": "G", "entry_type": "adjustment", "posted_date": "2026-10-05", "amount": 40}
        | {"group_code": "CO", "reason_code": "45"},
    )
    row = one(fx.wh.compute("days_in_ar", start="2026-10", end="2026-10"), period_start="2026-10-01")
    assert (row.numerator, row.denominator * 365) == (pytest.approx(-100), pytest.approx(-40))
    assert math.isnan(row.value) and row.status is None
    assert row.note.startswith("No value: charges of the look-back window / look-back days is -0.11, not positive.")


def test_remittances_without_their_claims_give_no_impossible_ratios(fx: Fixture) -> None:
    """835s loaded without their 837s (the issue's -3,368% net collection and -0.0% "on target").

    October: payment 60 and CO-45 adjustment 240 of claim G; one small charge of 10 for claim H.
    Net collection 60 / (10 - 240): a negative denominator, so no value. A/R at 10-31 is
    10 - 60 - 240 = -290: days in A/R over gross charges (10, positive) with credit balances
    counted still has no value, and A/R over 90 days has none either. Each says why, and
    none gets a status.
    """
    fx.add(
        "ledger",
        {"claim_id": "G", "entry_type": "payment", "posted_date": "2026-10-05", "amount": 60},
        {"claim_id": "G", "entry_type": "adjustment", "posted_date": "2026-10-05", "amount": 240}
        | {"group_code": "CO", "reason_code": "45"},
        {"claim_id": "H", "entry_type": "charge", "posted_date": "2026-10-06", "amount": 10},
    )
    kpis = ["net_collection_rate", "days_in_ar", "ar_over_90_pct"]
    options = {"days_in_ar": {"preset": "aafp", "credit_balances": "include"}}  # gross charges of 90 days
    frame = fx.wh.compute(kpis, start="2026-10", end="2026-10", options=options)
    for kpi in kpis:
        row = one(frame, kpi_id=kpi)
        assert math.isnan(row.value) and row.status is None, kpi
        assert "load the claims (837s, or the transaction export)" in row.note, kpi
    assert one(frame, kpi_id="net_collection_rate").note.startswith(
        "No value: charges - contractual adjustments is -230.00, not positive."
    )
    days = one(frame, kpi_id="days_in_ar")
    assert (days.numerator, days.denominator * 90) == (pytest.approx(-290), pytest.approx(10))
    assert days.note.startswith("No value: A/R at period end is -290.00, below zero.")
    assert one(frame, kpi_id="ar_over_90_pct").note.startswith("No value: total A/R at period end is -290.00")


def test_ar_aging_by_payer_class_and_without_data(fx: Fixture) -> None:
    fx.add("payers", {"payer_id": "PAY1", "payer_class": "commercial"})
    assert fx.wh.ar_aging("2026-10", by="payer_class")["amount"].tolist() == [0, 0, 0, 0, 0]  # no A/R yet
    ledger(fx)
    aging = fx.wh.ar_aging("2026-10", by="payer_class")
    assert set(aging["payer_class"]) == {"commercial"}
    assert aging["amount"].tolist() == [100, 0, 0, 350, 100]


@pytest.mark.parametrize(
    ("method", "expected", "entries"),
    [
        # posted in the month: Sept 250 / 200 (cash ahead of charges), Oct (300 - 50) / (500 - 100)
        ("period", {"2026-09-01": (250, 200), "2026-10-01": (250, 400)}, {"2026-09-01": 2, "2026-10-01": 4}),
        # by date of service, settled claims only: C (Sept) 200 / 200; B is not settled in October
        ("cohort", {"2026-09-01": (200, 200), "2026-10-01": (0, 0)}, {"2026-09-01": 3, "2026-10-01": 0}),
    ],
)
def test_net_collection_rate(fx: Fixture, method: str, expected: dict, entries: dict) -> None:
    """n counts the entries on either side (charges, contractual adjustments, payments, refunds)."""
    ledger(fx)
    options = {"net_collection_rate": {"method": method}}
    frame = fx.wh.compute("net_collection_rate", start="2026-09", end="2026-10", options=options)
    for month, (numerator, denominator) in expected.items():
        row = one(frame, period_start=month)
        assert (row.numerator, row.denominator, row.n) == (numerator, denominator, entries[month])
        assert row.value == pytest.approx(numerator / denominator) if denominator else math.isnan(row.value)


def test_net_collection_cohort_never_subtracts_write_offs(fx: Fixture) -> None:
    """Claim D (service 2025-11) settled by a bad-debt write-off: 0 collected of 300, not 0 / 0."""
    ledger(fx)
    options = {"net_collection_rate": {"method": "cohort"}}
    frame = fx.wh.compute("net_collection_rate", start="2025-11", end="2025-11", options=options)
    row = one(frame, period_start="2025-11-01")
    assert (row.numerator, row.denominator, row.value) == (0, 300, 0)


def test_denial_rate_by_reason_adds_up_to_the_rate(fx: Fixture) -> None:
    """October's denials by the payer's principal reason (claims()): C2 CO-16, C4 CO-97, C10 CO-50,
    each 1 of the 8 remitted claims; the other 5 are "not denied" (C12's CO-45 with PR-1 is no
    denial). Numerators / the total denominator add up to the rate 3/8."""
    claims(fx)
    frame = fx.wh.compute("denial_rate", start="2026-10", end="2026-10", by="denial_reason")
    counts = {r.denial_reason: (r.numerator, r.denominator) for r in frame.itertuples() if r.denominator}
    assert counts == {"CO-16": (1, 1), "CO-97": (1, 1), "CO-50": (1, 1), "not denied": (0, 5)}
    assert frame["numerator"].sum() / frame["denominator"].sum() == pytest.approx(3 / 8)


def test_claims_of_a_system_without_remittances_are_not_judged_clean_or_not(fx: Fixture) -> None:
    """A practice-management claims export (Synthea claims.csv, source csv:synthea_claims) has its
    payments in its transaction ledger, never in 835s: counted as "not yet remitted" it would make
    every such claim unclean (NORTH at 0%). It is left out of the clean claim rate, and still has
    a charge lag. X1 (x12, paid clean) and X2 (x12, never remitted) are judged: 1 / 2."""
    fx.add(
        "claims",
        {"claim_id": "X1", "submitted_at": "2026-10-06 17:00", "service_date": "2026-10-02", "billed_amount": 100},
        {"claim_id": "X2", "submitted_at": "2026-10-07 17:00", "service_date": "2026-10-05", "billed_amount": 100},
        {"claim_id": "N1", "source": "csv:synthea_claims", "submitted_at": "2026-10-08 12:00"}
        | {"service_date": "2026-10-06", "billed_amount": 100, "location_id": "NORTH"},
    )
    fx.add("remittances", {"claim_id": "X1", "paid_date": "2026-10-20", "paid_amount": 60, "billed_amount": 100})
    frame = fx.wh.compute(["clean_claim_rate", "charge_lag"], start="2026-10", end="2026-10")
    clean = one(frame, kpi_id="clean_claim_rate")
    assert (clean.numerator, clean.denominator) == (1, 2)
    assert one(frame, kpi_id="charge_lag").n == 3
    by_location = fx.wh.compute("clean_claim_rate", start="2026-10", end="2026-10", by="location")
    assert one(by_location, location="NORTH").n == 0


def test_net_collection_over_100_percent_says_why(fx: Fixture) -> None:
    """October's payments (90) settle September's larger charges; October's net charges are 60:
    150%, kept (it is what the period method says) with a note giving the reason."""
    fx.add(
        "ledger",
        {"claim_id": "S", "entry_type": "charge", "posted_date": "2026-09-10", "amount": 200},
        {"claim_id": "S", "entry_type": "payment", "posted_date": "2026-10-05", "amount": 90},
        {"claim_id": "O", "entry_type": "charge", "posted_date": "2026-10-20", "amount": 60},
    )
    october = one(fx.wh.compute("net_collection_rate", start="2026-10", end="2026-10"))
    assert october.value == pytest.approx(1.5) and october.status == "on_target"
    assert october.note.startswith("Over 100%: this period's payments settle earlier, larger charges.")
