"""From a kept visit to money: claim submissions, payer remittances and patient payments.

EHR locations bill through a clearinghouse (X12 837P out, 835 back); NORTH posts the same
story to its practice-management ledger. Payer behaviour (allowed share, denial rate, lag,
payment weekday) comes from `practice.PAYERS`; the scenario shares below are the assumptions
documented in ASSUMPTIONS.md.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sample_data.draws import Weighted, pick, randint
from sample_data.events import Adjustment, Appointment, Claim, Line, PatientPayment, Remittance, Submission, WriteOff
from sample_data.practice import Payer, Practice

CENT = Decimal("0.01")
# visit type -> [(weight, [(procedure, charge)])]
FEE_SCHEDULE: dict[str, list[tuple[float, list[tuple[str, str]]]]] = {
    "new": [(0.6, [("99203", "185.00")]), (0.4, [("99204", "265.00")])],
    "followup": [(0.65, [("99213", "125.00")]), (0.35, [("99214", "185.00")])],
    "annual": [(1.0, [("99396", "255.00")])],
    "sick": [(0.7, [("99213", "125.00")]), (0.3, [("99212", "85.00")])],
    "procedure": [(1.0, [("99213", "125.00"), ("17110", "160.00")])],
}
MONTH_END_HOLD = 0.06  # claims held for the month-end billing catch-up
VOID_SHARE = 0.004
CORRECTED_BEFORE_PAYMENT = 0.01
DUPLICATE_SHARE = 0.005
REVERSAL_SHARE = 0.008
# commercial and Medicare claims applied wholly to the deductible (PR-1, paid 0): many more in
# the first months of the year, when deductibles start over
DEDUCTIBLE_ZERO_PAY = {"early": 0.32, "rest": 0.18}
COINSURANCE_PLANS = 0.65  # commercial plans with 20% coinsurance instead of a flat copay
DENIAL_CARCS = (
    ("CO", "16", 0.40, "MA130"),
    ("CO", "97", 0.15, "M15"),
    ("CO", "50", 0.15, "N115"),
    ("CO", "197", 0.15, "N54"),
    ("CO", "29", 0.05, ""),
    ("PI", "204", 0.10, "N130"),
)


def _service_lines(codes: list[tuple[str, str]], telehealth: bool) -> tuple[Line, ...]:
    """The claim lines of a fee-schedule option: modifier 95 on telehealth, 25 on an E/M billed with a procedure."""
    return tuple(
        Line(code, "95" if telehealth else ("25" if len(codes) > 1 and i == 0 else ""), Decimal(charge))
        for i, (code, charge) in enumerate(codes)
    )


# visit type -> weighted draw of {telehealth: lines}; the Line records are immutable and shared
_LINES = {
    visit: Weighted([{t: _service_lines(o[1], t) for t in (False, True)} for o in options], [o[0] for o in options])
    for visit, options in FEE_SCHEDULE.items()
}
_DENIAL = Weighted(DENIAL_CARCS, [c[2] for c in DENIAL_CARCS])
# How patients settle the share their payer left them, from the statement sent after the last
# remittance: (behaviour, share). Balances still unpaid go to the collection agency and are
# collected or written off as bad debt COLLECTION_DAYS after the statement.
PATIENT_BEHAVIOUR = Weighted(("prompt", "slow", "plan", "collections", "bad_debt"), (0.34, 0.36, 0.07, 0.10, 0.13))
PROMPT_DAYS = (7, 30)  # pays in full
SLOW_DAYS = (80, 150)  # pays in full after reminder statements
PLAN_INSTALLMENTS = 3  # monthly instalments from 30 days on (balances of 100.00 or more; else prompt)
COLLECTION_DAYS = (90, 150)
SELF_PAY_AT_VISIT = 0.50
SELF_PAY_LATER = 0.32  # within SELF_PAY_LATER_DAYS; the rest goes to collections and is written off
SELF_PAY_LATER_DAYS = (30, 120)


def _money(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def business_day_on_or_after(d: date) -> date:
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


def _last_business_day(d: date) -> date:
    nxt = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    d = nxt - timedelta(days=1)
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


class Biller:
    """Turns one location's visits into claims; holds only counters and the practice.

    Claim ids and payer claim control numbers carry the location's `tag`, so they are unique
    in the practice although each location is billed on its own.
    """

    def __init__(self, practice: Practice, tag: str) -> None:
        self.practice = practice
        self.clock = practice.clock
        self.tag = tag
        self._claims = 0
        self._icns = 0

    def lines_for(self, rng: random.Random, appt: Appointment) -> list[Line]:
        return list(_LINES[appt.visit](rng)[appt.telehealth])

    def claim(self, rng: random.Random, appt: Appointment) -> list[Claim]:
        """The claim(s) a kept visit produces: usually one; a duplicate submission adds a second."""
        assert appt.encounter is not None
        loc = self.practice.locations[appt.location]
        payer = self.practice.payers[appt.payer]
        service_date = self.clock.local_date(appt.start)
        lines = self.lines_for(rng, appt)
        if loc.system == "pms":
            return [self._ledger_claim(rng, appt, payer, service_date, lines)]
        if payer.payer_class == "self_pay":
            return []  # collected at the desk, never billed through the clearinghouse (ASSUMPTIONS.md)
        enc = appt.encounter
        ready = self.clock.local_date(enc.chart_closed) if enc.chart_closed is not None else None
        if ready is None:
            return []  # the note is not signed yet, so the claim cannot go out
        earliest = max(service_date + timedelta(days=1), ready)
        day = business_day_on_or_after(earliest + timedelta(days=randint(rng, 0, 2)))
        if rng.random() < MONTH_END_HOLD:
            day = max(day, _last_business_day(day))
        claim = Claim(self._claim_id(loc.code), appt, service_date, appt.payer)
        claim.submissions.append(Submission("1", self._batch_time(day, appt.location), lines))
        claims = [claim]
        r = rng.random()
        if r < VOID_SHARE:
            void_day = business_day_on_or_after(day + timedelta(days=randint(rng, 1, 3)))
            claim.submissions.append(
                Submission("8", self._batch_time(void_day, appt.location), lines, self._icn(payer))
            )
            return claims
        r -= VOID_SHARE
        if r < CORRECTED_BEFORE_PAYMENT:
            fix_day = business_day_on_or_after(day + timedelta(days=randint(rng, 2, 5)))
            fixed = [Line(ln.procedure, ln.modifier or "25", ln.charge) for ln in lines]
            claim.submissions.append(Submission("7", self._batch_time(fix_day, appt.location), fixed, self._icn(payer)))
            claim.remittances.append(self._paid(rng, payer, fixed, self._pay_date(rng, payer, fix_day)))
            self._patient_pays(rng, claim)
            return claims
        r -= CORRECTED_BEFORE_PAYMENT
        if r < DUPLICATE_SHARE:
            dup = Claim(self._claim_id(loc.code), appt, service_date, appt.payer)
            dup_day = business_day_on_or_after(day + timedelta(days=randint(rng, 3, 10)))
            dup.submissions.append(Submission("1", self._batch_time(dup_day, appt.location), lines))
            dup.remittances.append(
                self._denied(payer, lines, ("CO", "18", "N522"), self._pay_date(rng, payer, dup_day))
            )
            claims.append(dup)
        first_paid = self._pay_date(rng, payer, day)
        if rng.random() < payer.denial_rate:
            group, carc, _, rarc = _DENIAL(rng)
            claim.remittances.append(self._denied(payer, lines, (group, carc, rarc), first_paid))
            if carc == "16":
                redo_day = business_day_on_or_after(first_paid + timedelta(days=randint(rng, 5, 20)))
                icn = claim.remittances[0].payer_icn
                claim.submissions.append(Submission("7", self._batch_time(redo_day, appt.location), lines, icn))
                repaid = self._pay_date(rng, payer, redo_day)
                # the payer reverses its denial (CLP02 22) in the 835 that pays the replacement,
                # which puts the denied charge back in A/R before the payment takes it out
                claim.remittances.append(self._reversal(claim.remittances[0], repaid))
                claim.remittances.append(self._paid(rng, payer, lines, repaid))
                self._patient_pays(rng, claim)
            return claims
        paid = self._paid(rng, payer, lines, first_paid)
        claim.remittances.append(paid)
        if rng.random() < REVERSAL_SHARE:
            again = first_paid + timedelta(days=7 * randint(rng, 3, 6))
            claim.remittances.append(self._reversal(paid, again))
            claim.remittances.append(self._paid(rng, payer, lines, again, ratio=payer.allowed_ratio - Decimal("0.03")))
        self._patient_pays(rng, claim)
        return claims

    # -- pieces -------------------------------------------------------------------------------

    def _claim_id(self, code: str) -> str:
        self._claims += 1
        return f"{code[0]}{self.tag}{self._claims:08d}"

    def _icn(self, payer: Payer) -> str:
        self._icns += 1
        return f"{payer.payer_id[:2]}{self.tag}{self._icns:09d}"

    def _batch_time(self, day: date, loc: int) -> int:
        """Claims go out in one clearinghouse batch per location and business day, at 17:30 + location."""
        return self.clock.at(day, 17 * 60 + 30 + 7 * loc)

    def _pay_date(self, rng: random.Random, payer: Payer, submitted: date) -> date:
        """Adjudicated after the payer's lag and paid by EFT on the next business day."""
        return business_day_on_or_after(submitted + timedelta(days=randint(rng, *payer.lag_days)))

    def _paid(
        self, rng: random.Random, payer: Payer, lines: list[Line], paid_date: date, ratio: Decimal | None = None
    ) -> Remittance:
        ratio = payer.allowed_ratio if ratio is None else ratio
        season = "early" if paid_date.month <= 3 else "rest"
        deductible = payer.payer_class in ("commercial", "medicare") and rng.random() < DEDUCTIBLE_ZERO_PAY[season]
        commercial = payer.payer_class == "commercial"
        coinsurance = payer.payer_class == "medicare" or (commercial and rng.random() < COINSURANCE_PLANS)
        copay = Decimal(pick(rng, ("20.00", "25.00", "30.00"))) if commercial and not coinsurance else None
        paid, adjustments = [], []
        for i, ln in enumerate(lines):
            allowed = _money(ln.charge * ratio)
            adjustments.append(Adjustment("CO", "45", ln.charge - allowed, i))
            if deductible:
                patient = allowed
                adjustments.append(Adjustment("PR", "1", patient, i))
            elif copay is not None and i == 0:
                patient = min(copay, allowed)
                adjustments.append(Adjustment("PR", "3", patient, i))
            elif coinsurance:
                patient = _money(allowed * Decimal("0.20"))
                adjustments.append(Adjustment("PR", "2", patient, i))
            else:
                patient = Decimal("0.00")
            paid.append(allowed - patient)
        return Remittance(paid_date, "1", lines, paid, adjustments, self._icn(payer))

    def _denied(self, payer: Payer, lines: list[Line], reason: tuple[str, str, str], paid_date: date) -> Remittance:
        group, carc, rarc = reason
        adjustments = [Adjustment(group, carc, ln.charge, i) for i, ln in enumerate(lines)]
        remarks = (rarc,) if rarc else ()
        return Remittance(paid_date, "4", lines, [Decimal("0.00")] * len(lines), adjustments, self._icn(payer), remarks)

    def _reversal(self, original: Remittance, paid_date: date) -> Remittance:
        """CLP02 22: the payer takes back a payment, every amount negated (sign as sent)."""
        lines = [Line(ln.procedure, ln.modifier, -ln.charge) for ln in original.lines]
        adjustments = [Adjustment(a.group, a.reason, -a.amount, a.line) for a in original.adjustments]
        return Remittance(paid_date, "22", lines, [-p for p in original.paid], adjustments, original.payer_icn)

    def _patient_pays(self, rng: random.Random, claim: Claim) -> None:
        """The patient's share, billed after the last remittance: paid in full or in half within
        weeks, through the collection agency, or never; what is left unpaid is written off as bad
        debt when collections give up (`COLLECTION_DAYS`)."""
        if not claim.remittances:
            return
        last = claim.remittances[-1]
        owed = last.patient_responsibility
        if owed <= 0:
            return
        self._collect(rng, claim, owed, last.paid_date)

    def _collect(self, rng: random.Random, claim: Claim, owed: Decimal, billed: date) -> None:
        """The patient's balance `owed`, stated on `billed`: paid, paid late, in instalments, by the
        collection agency, or written off."""
        behaviour = PATIENT_BEHAVIOUR(rng)
        if behaviour == "plan" and owed < 100:
            behaviour = "prompt"
        method = pick(rng, ("CC", "CC", "CHECK", "CASH"))
        if behaviour in ("prompt", "slow"):
            days_ = PROMPT_DAYS if behaviour == "prompt" else SLOW_DAYS
            claim.patient_payments.append(PatientPayment(billed + timedelta(days=randint(rng, *days_)), owed, method))
        elif behaviour == "plan":
            part = _money(owed / PLAN_INSTALLMENTS)
            for k in range(PLAN_INSTALLMENTS):
                amount = part if k < PLAN_INSTALLMENTS - 1 else owed - part * (PLAN_INSTALLMENTS - 1)
                claim.patient_payments.append(PatientPayment(billed + timedelta(days=30 * (k + 1)), amount, "CC"))
        else:
            later = billed + timedelta(days=randint(rng, *COLLECTION_DAYS))
            if behaviour == "collections":
                claim.patient_payments.append(PatientPayment(later, owed, "COLLECTION"))
            else:
                claim.writeoffs.append(WriteOff(later, owed))

    def _ledger_claim(
        self, rng: random.Random, appt: Appointment, payer: Payer, service_date: date, lines: list[Line]
    ) -> Claim:
        """NORTH: the same story posted straight to the practice-management ledger (no denials there)."""
        claim = Claim(self._claim_id("NORTH"), appt, service_date, appt.payer)
        posted = business_day_on_or_after(service_date + timedelta(days=randint(rng, 0, 3)))
        claim.submissions.append(Submission("1", self.clock.at(posted, 12 * 60), lines))
        if payer.payer_class == "self_pay":
            total = sum((ln.charge for ln in lines), Decimal("0.00"))
            r = rng.random()
            if r < SELF_PAY_AT_VISIT:
                claim.patient_payments.append(PatientPayment(service_date, total, pick(rng, ("CC", "CASH"))))
            elif r < SELF_PAY_AT_VISIT + SELF_PAY_LATER:
                claim.patient_payments.append(
                    PatientPayment(service_date + timedelta(days=randint(rng, *SELF_PAY_LATER_DAYS)), total, "CHECK")
                )
            else:
                claim.writeoffs.append(WriteOff(service_date + timedelta(days=randint(rng, *COLLECTION_DAYS)), total))
            return claim
        claim.remittances.append(self._paid(rng, payer, lines, self._pay_date(rng, payer, posted)))
        self._patient_pays(rng, claim)
        return claim
