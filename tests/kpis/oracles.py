"""Every KPI's documented default definition (docs/contracts.md section 2) as plain Python.

Each oracle reads canonical rows (dicts, as loaded into the warehouse; instants aware) and
returns, per (local period start, group), the KPI's numerator, denominator, value and n. A row
is grouped by `group(row)` (the practice total: one group, None). The code is written from the
documentation, never from kpis/, and the slow, obvious way: loops, sets and sorted lists, so
that SQL shortcuts and three-valued logic can be checked against it. NULL is None here and
means "not in the export": the definitions say what each missing value counts as.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

TZ = ZoneInfo("America/New_York")
LATE_CANCEL_HOURS = 24
SHORT_ABANDON_SECONDS = 10
ANSWER_SECONDS = 30
CONTRACTUAL = ("CO", "45")
AGED_DAYS = 90
REFERRAL_WINDOW_DAYS = 90
BUSINESS_HOURS = (time(8), time(17))  # Monday-Friday, no holidays (the default config)

Rows = list[dict[str, Any]]
Tables = dict[str, Rows]
Group = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Result:
    numerator: float | None
    denominator: float | None
    value: float | None
    n: int
    unknown: int = 0


def total(_: dict[str, Any]) -> None:
    return None


def month(value: datetime | date) -> date:
    """The first day of the local month of an instant or a date."""
    day = value.astimezone(TZ).date() if isinstance(value, datetime) else value
    return day.replace(day=1)


def local_date(value: datetime) -> date:
    return value.astimezone(TZ).date()


def month_end(start: date) -> date:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def quantile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q * 100, method="linear")) if values else None


def _ratios(rows: Iterable[dict], event: str, group: Group, num: Callable, den: Callable, unknown=None) -> dict:
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        if r.get(event) is None:
            continue
        cell = cells[month(r[event]), group(r)]
        cell[0] += bool(num(r))
        cell[1] += bool(den(r))
        cell[2] += bool(unknown and unknown(r))
    return {k: Result(a, b, None if u else ratio(a, b), b, u) for k, (a, b, u) in cells.items() if b or a or u}


def _aggregate(rows: Iterable[dict], event: str, group: Group, value: Callable, agg: str) -> dict:
    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r.get(event) is None:
            continue
        v = value(r)
        if v is not None:
            cells[month(r[event]), group(r)].append(v)
    out = {}
    for k, values in cells.items():
        if agg == "mean":
            out[k] = Result(sum(values), len(values), sum(values) / len(values), len(values))
        else:
            out[k] = Result(None, None, quantile(values, 0.5 if agg == "median" else 0.9), len(values))
    return out


# -- access ---------------------------------------------------------------------------------------


def _rescheduled(appointments: Rows) -> set[tuple[str, str]]:
    """(source, id) of the appointments a later booking names as the one it replaces."""
    return {(a["source"], a["rebooked_from_id"]) for a in appointments if a.get("rebooked_from_id") is not None}


class Cancellations:
    """Who cancelled, and when, as far as an export says: late, not late, or unknown."""

    def __init__(self, appointments: Rows) -> None:
        self.moved = _rescheduled(appointments)

    def rescheduled(self, a: dict) -> bool:
        return (a["source"], a["appointment_id"]) in self.moved

    def in_window(self, a: dict) -> bool | None:
        if a.get("cancelled_at") is None:
            return None
        return a["cancelled_at"] >= a["scheduled_start"] - timedelta(hours=LATE_CANCEL_HOURS)

    def late(self, a: dict) -> bool:
        """A patient's cancellation within 24 h of the start, not rescheduled."""
        return (
            a["status"] == "cancelled"
            and not self.rescheduled(a)
            and a.get("cancel_initiator") == "patient"
            and self.in_window(a) is True
        )

    def unknown(self, a: dict) -> bool:
        """Not rescheduled, and without the initiator (in the window or at an unknown time), or the
        patient's at an unknown time: may or may not be late."""
        if a["status"] != "cancelled" or self.rescheduled(a):
            return False
        who, window = a.get("cancel_initiator"), self.in_window(a)
        return (who is None and window is not False) or (who == "patient" and window is None)


def no_show_rate(t: Tables, group: Group = total, denominator: str = "expected", late_cancel: str = "separate") -> dict:
    """No-shows / expected (fulfilled + arrived + no-shows), by scheduled start; or / scheduled: every
    booking but entered-in-error, provider/practice cancellations and reschedules (a cancellation
    without its initiator counts as a booking). Late cancellations may count as no-shows, or be left
    out of the scheduled denominator; then an unknown one makes the value unknown."""
    c = Cancellations(t["appointments"])
    as_noshow = late_cancel == "as_noshow"

    def num(a: dict) -> bool:
        return a["status"] == "noshow" or (as_noshow and c.late(a))

    def den(a: dict) -> bool:
        if denominator == "expected":
            return a["status"] in ("fulfilled", "arrived", "noshow") or (as_noshow and c.late(a))
        by_practice = a.get("cancel_initiator") in ("provider", "practice") or c.rescheduled(a)
        return (
            a["status"] != "entered_in_error"
            and not (a["status"] == "cancelled" and by_practice)
            and not (late_cancel == "exclude" and c.late(a))
        )

    depends = as_noshow or (late_cancel == "exclude" and denominator == "scheduled")
    return _ratios(t["appointments"], "scheduled_start", group, num, den, c.unknown if depends else None)


def late_cancel_rate(t: Tables, group: Group = total) -> dict:
    """Patient cancellations within 24 h of the start, not rescheduled / all but entered-in-error.

    A cancellation that may or may not be late (`Cancellations.unknown`) makes the period's value
    unknown.
    """
    c = Cancellations(t["appointments"])
    return _ratios(
        t["appointments"], "scheduled_start", group, c.late, lambda a: a["status"] != "entered_in_error", c.unknown
    )


def _end(start: datetime, minutes: int | None) -> datetime:
    return start + timedelta(minutes=minutes if minutes is not None else 1)


def slot_utilization(t: Tables, group: Group = total) -> dict:
    """Minutes of open slots overlapped by a live appointment of the slot's provider / open minutes."""
    live = [a for a in t["appointments"] if a["status"] not in ("cancelled", "entered_in_error")]
    cells: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0])
    for s in t["slots"]:
        if s["status"] == "blocked":
            continue
        end = s["start_at"] + timedelta(minutes=s["minutes"])
        booked = s.get("provider_id") is not None and any(
            a.get("provider_id") == s["provider_id"]
            and a["scheduled_start"] < end
            and _end(a["scheduled_start"], a.get("scheduled_minutes")) > s["start_at"]
            for a in live
        )
        cell = cells[month(s["start_at"]), group(s)]
        cell[0] += s["minutes"] if booked else 0
        cell[1] += s["minutes"]
        cell[2] += 1
    return {k: Result(a, b, ratio(a, b), n) for k, (a, b, n) in cells.items()}


def third_next_available_pairs(slots: Rows, appointments: Rows, mondays: Iterable[date]) -> dict:
    """(snapshot Monday, provider, location) -> days from the Monday to the third open slot at 08:00.

    A slot is open at the snapshot when it is not blocked, starts after it, and no appointment of
    its provider booked at or before the snapshot (and not cancelled at or before it) overlaps
    it; an appointment without a booking time never holds a slot. Snapshots are taken only
    between the first slot and the last booking; a pair with fewer than three open slots left
    has no value.
    """
    booked = [a for a in appointments if a.get("booked_at") is not None]
    first_slot = min((s["start_at"] for s in slots), default=None)
    last_booking = max((a["booked_at"] for a in booked), default=None)
    schedules = {
        (s["provider_id"], s.get("location_id"))
        for s in slots
        if s["status"] != "blocked" and s.get("provider_id") is not None
    }
    out = {}
    for monday in mondays:
        at = datetime.combine(monday, time(8), tzinfo=TZ)
        if first_slot is None or last_booking is None or not first_slot <= at <= last_booking:
            continue
        for provider, location in schedules:
            open_slots = []
            mine = [
                s
                for s in slots
                if s["provider_id"] == provider and s.get("location_id") == location and s["status"] != "blocked"
            ]
            for s in sorted(mine, key=lambda s: (s["start_at"], s["source"], s["slot_id"])):
                if s["start_at"] <= at:
                    continue
                end = s["start_at"] + timedelta(minutes=s["minutes"])
                held = any(
                    a.get("provider_id") == provider
                    and a["scheduled_start"] < end
                    and _end(a["scheduled_start"], a.get("scheduled_minutes")) > s["start_at"]
                    and a["booked_at"] <= at
                    and (a.get("cancelled_at") is None or a["cancelled_at"] > at)
                    for a in booked
                )
                if not held:
                    open_slots.append(s)
            if len(open_slots) >= 3:
                out[monday, provider, location] = (local_date(open_slots[2]["start_at"]) - monday).days
    return out


def third_next_available(t: Tables, group: Group = total, mondays: Iterable[date] = ()) -> dict:
    """Mean over (provider, location, Monday) pairs of the days to the third open slot, by Monday."""
    cells: dict[tuple, list[int]] = defaultdict(list)
    for (monday, _provider, location), days in third_next_available_pairs(
        t["slots"], t["appointments"], mondays
    ).items():
        cells[monday.replace(day=1), group({"location_id": location})].append(days)
    return {k: Result(sum(v), len(v), sum(v) / len(v), len(v)) for k, v in cells.items()}


# -- visit flow -----------------------------------------------------------------------------------


def _minutes(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds() / 60


def _in_person(e: dict) -> bool:
    return not e["is_telehealth"]


def _cycle(e: dict) -> float | None:
    if e["status"] != "finished" or not _in_person(e):
        return None
    return _minutes(e.get("checked_in_at"), e.get("checked_out_at"))


def visit_cycle_time(t: Tables, group: Group = total) -> dict:
    return _aggregate(t["encounters"], "checked_in_at", group, _cycle, "median")


def visit_cycle_time_p90(t: Tables, group: Group = total) -> dict:
    return _aggregate(t["encounters"], "checked_in_at", group, _cycle, "p90")


def _segment(start: str, end: str) -> Callable[[Tables, Group], dict]:
    def oracle(t: Tables, group: Group = total) -> dict:
        def value(e: dict) -> float | None:
            return _minutes(e.get(start), e.get(end)) if _in_person(e) else None

        return _aggregate(t["encounters"], "checked_in_at", group, value, "median")

    return oracle


visit_segment_checkin_to_roomed = _segment("checked_in_at", "roomed_at")
visit_segment_roomed_to_provider = _segment("roomed_at", "provider_start_at")
visit_segment_provider_time = _segment("provider_start_at", "provider_end_at")
visit_segment_provider_to_checkout = _segment("provider_end_at", "checked_out_at")


def chart_closure_lag(t: Tables, group: Group = total) -> dict:
    def hours(e: dict) -> float | None:
        lag = _minutes(e.get("provider_end_at"), e.get("chart_closed_at")) if _in_person(e) else None
        return None if lag is None else lag / 60

    return _aggregate(t["encounters"], "provider_end_at", group, hours, "median")


# -- phones ---------------------------------------------------------------------------------------


def _abandoned(c: dict) -> bool:
    return c["outcome"] in ("abandoned", "timeout") and c["wait_seconds"] >= SHORT_ABANDON_SECONDS


def _offered(c: dict) -> bool:
    return c["outcome"] == "answered" or _abandoned(c)


def call_abandonment_rate(t: Tables, group: Group = total) -> dict:
    return _ratios(t["calls"], "entered_at", group, _abandoned, _offered)


def service_level(t: Tables, group: Group = total) -> dict:
    def on_time(c: dict) -> bool:
        return c["outcome"] == "answered" and c["wait_seconds"] <= ANSWER_SECONDS

    return _ratios(t["calls"], "entered_at", group, on_time, _offered)


def average_speed_of_answer(t: Tables, group: Group = total) -> dict:
    return _aggregate(
        t["calls"], "entered_at", group, lambda c: c["wait_seconds"] if c["outcome"] == "answered" else None, "mean"
    )


# -- revenue cycle --------------------------------------------------------------------------------


@dataclass
class Claim:
    claim_id: str
    first: dict | None  # the first submission (by time, then id)
    rework_date: date | None  # local date of the first 7/8 submission
    remit: dict | None  # the first remittance that is not a reversal (by paid date, then id)
    denied: bool
    carc18: bool


def claims(t: Tables) -> list[Claim]:
    """Each claim with its first submission, first rework and first non-reversal remittance."""
    ids = {c["claim_id"] for c in t["claims"]} | {r["claim_id"] for r in t["remittances"]}
    adjustments: dict[str, list[dict]] = defaultdict(list)
    for a in t["remittance_adjustments"]:
        adjustments[a["remittance_id"]].append(a)
    out = []
    for claim_id in sorted(ids):
        submissions = sorted(
            (c for c in t["claims"] if c["claim_id"] == claim_id), key=lambda c: (c["submitted_at"], c["submission_id"])
        )
        reworks = [c["submitted_at"] for c in submissions if c["frequency_code"] in ("7", "8")]
        remits = sorted(
            (r for r in t["remittances"] if r["claim_id"] == claim_id and r["claim_status_code"] != "22"),
            key=lambda r: (r["paid_date"], r["remittance_id"]),
        )
        remit = remits[0] if remits else None
        groups = {a["group_code"] for a in adjustments[remit["remittance_id"]]} if remit else set()
        denied = remit is not None and (
            remit["claim_status_code"] == "4"
            or (remit["paid_amount"] == 0 and bool(groups & {"CO", "PI", "OA"}) and "PR" not in groups)
        )
        carc18 = remit is not None and any(a["reason_code"] == "18" for a in adjustments[remit["remittance_id"]])
        out.append(
            Claim(
                claim_id,
                submissions[0] if submissions else None,
                local_date(min(reworks)) if reworks else None,
                remit,
                denied,
                carc18,
            )
        )
    return out


def _claim_row(c: Claim) -> dict:
    return {
        **(c.first or {}),
        "first_submitted_at": c.first["submitted_at"] if c.first else None,
        "first_paid_date": c.remit["paid_date"] if c.remit else None,
    }


def denial_rate(t: Tables, group: Group = total) -> dict:
    """Claims whose first remittance denies them / claims with one, CARC 18 out of both, by its paid date."""
    rows = [_claim_row(c) | {"_c": c} for c in claims(t)]
    return _ratios(
        rows, "first_paid_date", group, lambda r: not r["_c"].carc18 and r["_c"].denied, lambda r: not r["_c"].carc18
    )


def clean_claim_rate(t: Tables, group: Group = total) -> dict:
    """Claims paid on the first remittance, not denied, without a 7/8 before payment / claims first
    submitted, among the claims of systems that send remittances (others cannot be judged)."""
    remitting = {r["source"] for r in t["remittances"]}

    def clean(r: dict) -> bool:
        c = r["_c"]
        return c.remit is not None and not c.denied and (c.rework_date is None or c.rework_date >= c.remit["paid_date"])

    rows = [_claim_row(c) | {"_c": c} for c in claims(t) if c.first is None or c.first["source"] in remitting]
    return _ratios(rows, "first_submitted_at", group, clean, lambda r: True)


def charge_lag(t: Tables, group: Group = total) -> dict:
    def days(r: dict) -> float | None:
        return (local_date(r["submitted_at"]) - r["service_date"]).days

    rows = [_claim_row(c) for c in claims(t) if c.first is not None]
    return _aggregate(rows, "first_submitted_at", group, days, "median")


def _contractual(entry: dict) -> bool:
    return entry["entry_type"] == "adjustment" and (entry.get("group_code"), entry.get("reason_code")) == CONTRACTUAL


def net_collection_rate(t: Tables, group: Group = total) -> dict:
    """(Payments - refunds) / (charges - CO-45 adjustments), both posted in the period."""
    cells: dict[tuple, list] = defaultdict(lambda: [Decimal(0), Decimal(0), 0])
    for e in t["ledger"]:
        kind, amount = e["entry_type"], e["amount"]
        if kind not in ("charge", "payment", "refund") and not _contractual(e):
            continue
        cell = cells[month(e["posted_date"]), group(e)]
        if kind in ("payment", "refund"):
            cell[0] += amount if kind == "payment" else -amount
        else:
            cell[1] += amount if kind == "charge" else -amount
        cell[2] += 1
    return {k: Result(float(a), float(b), ratio(float(a), float(b)), n) for k, (a, b, n) in cells.items()}


def _ar_effect(e: dict) -> Decimal:
    return e["amount"] if e["entry_type"] in ("charge", "refund") else -e["amount"]


# days_in_ar presets: (look-back days, what a window entry adds to the charges, credit balances)
AR_PRESETS = {
    "mgma": (
        365,
        lambda e: e["amount"] if e["entry_type"] == "charge" else -e["amount"] if _contractual(e) else 0,
        "include",
    ),
    "hfma": (90, lambda e: {"charge": 1, "adjustment": -1}.get(e["entry_type"], 0) * e["amount"], "exclude"),
    "aafp": (90, lambda e: e["amount"] if e["entry_type"] == "charge" else 0, "exclude"),
}


def ar_balances(
    t: Tables,
    ends: Iterable[date],
    group: Group = total,
    preset: str = "mgma",
    age_from: str = "service",
    credit_balances: str = "include",
) -> dict:
    """days_in_ar (by `preset`) and ar_over_90_pct (aged from service or first bill) at each end.

    A/R = every entry posted by the end (charges and refunds add, the rest subtract). An account
    is a claim (or a lone entry) and its date of service, within a group; with credit balances
    excluded, only accounts with a positive balance count. An account is aged when the date it
    ages from - its date of service, or its claim's first bill, or else its first posting in any
    group - is more than 90 days before the end. Days in A/R divide by the average daily
    charges of the look-back window (the preset says which entries count and how).
    """
    ends = list(ends)
    lookback, window_amount, days_credits = AR_PRESETS[preset]
    first_bill: dict[str, date] = {}
    for c in t.get("claims", []):
        day = local_date(c["submitted_at"])
        first_bill[c["claim_id"]] = min(first_bill.get(c["claim_id"], day), day)
    posted = [e for e in t["ledger"] if e["posted_date"] <= max(ends)]
    first_posted: dict[tuple, date] = {}
    for e in posted:
        account = (e.get("claim_id") or f"entry:{e['entry_id']}", e.get("service_date"))
        first_posted[account] = min(first_posted.get(account, e["posted_date"]), e["posted_date"])

    def aged_from(e: dict) -> date:
        account = (e.get("claim_id") or f"entry:{e['entry_id']}", e.get("service_date"))
        dates = (
            [e.get("service_date")]
            if age_from == "service"
            else [first_bill.get(e.get("claim_id")), e.get("service_date")]
        )
        return next((d for d in dates if d is not None), first_posted[account])

    out: dict[str, dict] = {"days_in_ar": {}, "ar_over_90_pct": {}}
    for end in ends:
        balances: dict[Any, dict[tuple, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        aged: dict[Any, dict[tuple, bool]] = defaultdict(dict)
        window: dict[Any, list] = defaultdict(lambda: [Decimal(0), 0])
        entries: dict[Any, int] = defaultdict(int)
        for e in posted:
            if e["posted_date"] > end:
                continue
            g = group(e)
            account = (e.get("claim_id") or f"entry:{e['entry_id']}", e.get("service_date"))
            balances[g][account] += _ar_effect(e)
            aged[g][account] = (end - aged_from(e)).days > AGED_DAYS
            entries[g] += 1
            if end - timedelta(days=lookback) < e["posted_date"]:
                window[g][0] += window_amount(e)
                window[g][1] += e["entry_type"] == "charge"
        for g in entries:
            ar = _kept(balances[g], aged[g], days_credits)
            daily = window[g][0] / lookback
            days = float(ar) / float(daily) if daily > 0 and ar >= 0 else None
            out["days_in_ar"][end.replace(day=1), g] = Result(float(ar), float(daily), days, window[g][1])
            total_ar = _kept(balances[g], aged[g], credit_balances)
            aged_ar = _kept(balances[g], aged[g], credit_balances, only_aged=True)
            out["ar_over_90_pct"][end.replace(day=1), g] = Result(
                float(aged_ar), float(total_ar), ratio(float(aged_ar), float(total_ar)), entries[g]
            )
    return out


def _kept(balances: dict[tuple, Decimal], aged: dict[tuple, bool], credits: str, only_aged: bool = False) -> Decimal:
    """The A/R of a group's accounts: credit balances kept or not, all accounts or the aged ones."""
    return sum(
        (b for a, b in balances.items() if (credits == "include" or b > 0) and (aged[a] or not only_aged)),
        Decimal(0),
    )


# -- referrals and portal -------------------------------------------------------------------------


def referral_completion_rate(t: Tables, group: Group = total) -> dict:
    def closed(r: dict) -> bool:
        report = r.get("report_received_at")
        return (
            r["status"] != "cancelled"
            and report is not None
            and report <= r["created_at"] + timedelta(days=REFERRAL_WINDOW_DAYS)
        )

    return _ratios(t["referrals"], "created_at", group, closed, lambda r: r["status"] != "cancelled")


def business_hours(start: datetime, end: datetime) -> float:
    """Hours of Monday-Friday 08:00-17:00 local time between two instants."""
    a, b = start.astimezone(TZ).replace(tzinfo=None), end.astimezone(TZ).replace(tzinfo=None)
    seconds, day = 0.0, a.date()
    while day <= b.date():
        if day.weekday() < 5:
            lo = max(a, datetime.combine(day, BUSINESS_HOURS[0]))
            hi = min(b, datetime.combine(day, BUSINESS_HOURS[1]))
            seconds += max(0.0, (hi - lo).total_seconds())
        day += timedelta(days=1)
    return seconds / 3600


def portal_response_time(t: Tables, group: Group = total) -> dict:
    def hours(m: dict) -> float | None:
        reply = m.get("first_response_at")
        return None if reply is None else business_hours(m["received_at"], reply)

    return _aggregate(t["portal_messages"], "received_at", group, hours, "median")


SPEC_ORACLES: dict[str, Callable[..., dict]] = {
    "no_show_rate": no_show_rate,
    "late_cancel_rate": late_cancel_rate,
    "slot_utilization": slot_utilization,
    "visit_cycle_time": visit_cycle_time,
    "visit_cycle_time_p90": visit_cycle_time_p90,
    "visit_segment_checkin_to_roomed": visit_segment_checkin_to_roomed,
    "visit_segment_roomed_to_provider": visit_segment_roomed_to_provider,
    "visit_segment_provider_time": visit_segment_provider_time,
    "visit_segment_provider_to_checkout": visit_segment_provider_to_checkout,
    "chart_closure_lag": chart_closure_lag,
    "call_abandonment_rate": call_abandonment_rate,
    "average_speed_of_answer": average_speed_of_answer,
    "service_level": service_level,
    "denial_rate": denial_rate,
    "clean_claim_rate": clean_claim_rate,
    "net_collection_rate": net_collection_rate,
    "charge_lag": charge_lag,
    "referral_completion_rate": referral_completion_rate,
    "portal_response_time": portal_response_time,
}
