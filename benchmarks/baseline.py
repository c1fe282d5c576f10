"""The pandas baseline: every KPI computed the way an analyst would, from the warehouse tables.

Why it exists: the benchmark's claim is "faster than what an analyst would write", so the
baseline is plain pandas on the same warehouse: load each table into a DataFrame, derive the
few facts a KPI needs (a rescheduled appointment, a claim's first remittance, an account's
balance), then filter and `groupby`. It follows docs/contracts.md section 2 independently of
`kpis/` (no SQL, no shared code), so agreeing numbers are a real cross-check of both.

Output: one row per KPI, period and dimension value, with the columns the project's
`Warehouse.compute` returns (kpi_id, period_start, <dimension>, numerator, denominator, value, n),
for groups that have rows in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd

from kpis.config import BusinessHours

TABLES = (
    "appointments",
    "encounters",
    "slots",
    "calls",
    "claims",
    "remittances",
    "remittance_adjustments",
    "ledger",
    "referrals",
    "portal_messages",
)
DIMENSION_COLUMNS = {  # the source column of each dimension, per table
    "location": {"referrals": "location_id"},
    "provider": {"referrals": "referring_provider_id"},
}
RESULT_COLUMNS = ("numerator", "denominator", "value", "n")


def load_tables(db: Path) -> dict[str, pd.DataFrame]:
    """Every fact table as a DataFrame (instants as UTC datetimes, money as float), as an analyst loads them."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return {name: con.table(name).df() for name in TABLES}
    finally:
        con.close()


@dataclass(frozen=True)
class Scope:
    """What to compute: months [first, last] (first days), one dimension, the practice's zone and hours."""

    first: date
    last: date
    dimension: str
    timezone: str
    hours: BusinessHours

    def dim_column(self, table: str) -> str:
        return DIMENSION_COLUMNS[self.dimension].get(table, f"{self.dimension}_id")

    def months(self) -> list[pd.Timestamp]:
        return list(pd.date_range(self.first, self.last, freq="MS"))


def compute(tables: dict[str, pd.DataFrame], scope: Scope) -> pd.DataFrame:
    """All KPIs for `scope` as one long frame (kpi_id, period_start, <dimension>, numerator, ...)."""
    t = tables
    appointments = _with_rescheduled(t["appointments"])
    parts = [
        _appointment_kpis(appointments, scope),
        _third_next_available(t["slots"], appointments, scope),
        _slot_utilization(t["slots"], appointments, scope),
        _encounter_kpis(t["encounters"], scope),
        _ar_kpis(t["ledger"], scope),
        _net_collection_rate(t["ledger"], scope),
        _claim_kpis(t["claims"], t["remittances"], t["remittance_adjustments"], scope),
        _referral_completion_rate(t["referrals"], scope),
        _portal_response_time(t["portal_messages"], scope),
    ]
    if scope.dimension == "location":
        parts.append(_call_kpis(t["calls"], scope))
    result = pd.concat(parts, ignore_index=True)
    return result[["kpi_id", "period_start", scope.dimension, *RESULT_COLUMNS]]


# -- shared steps -------------------------------------------------------------------------------


def _month(instants: pd.Series, scope: Scope) -> pd.Series:
    """First day of the local calendar month of each instant (UTC) or date."""
    if isinstance(instants.dtype, pd.DatetimeTZDtype):
        instants = instants.dt.tz_convert(scope.timezone).dt.tz_localize(None)
    return instants.dt.to_period("M").dt.start_time


def _frame(table: pd.DataFrame, name: str, event: str, scope: Scope) -> pd.DataFrame:
    """The rows of `table` whose event falls in the months of `scope`, with period_start and the dimension."""
    frame = table.assign(period_start=_month(table[event], scope), dim=table[scope.dim_column(name)])
    in_range = (frame["period_start"] >= pd.Timestamp(scope.first)) & (
        frame["period_start"] <= pd.Timestamp(scope.last)
    )
    return frame[in_range]


def _ratio(
    kpi: str, frame: pd.DataFrame, numerator: pd.Series, denominator: pd.Series, population: pd.Series, scope: Scope
) -> pd.DataFrame:
    """Sum of numerator / sum of denominator per period and dimension value; n = rows of the population."""
    parts = pd.DataFrame(
        {
            "period_start": frame["period_start"],
            "dim": frame["dim"],
            "numerator": numerator.astype(float),
            "denominator": denominator.astype(float),
            "n": population.astype(int),
        }
    )
    grouped = parts.groupby(["period_start", "dim"], dropna=False).sum().reset_index()
    grouped["value"] = grouped["numerator"] / grouped["denominator"].where(grouped["denominator"] > 0)
    return _shaped(kpi, grouped, scope)


def _count_ratio(kpi: str, frame: pd.DataFrame, numerator: pd.Series, denominator: pd.Series, scope: Scope):
    return _ratio(kpi, frame, numerator & denominator, denominator, denominator, scope)


def _quantile(kpi: str, frame: pd.DataFrame, values: pd.Series, keep: pd.Series, q: float, scope: Scope):
    """The continuous quantile q of `values` over the rows kept; n = values behind it."""
    kept = pd.DataFrame({"period_start": frame["period_start"], "dim": frame["dim"], "x": values})[keep]
    kept = kept[kept["x"].notna()]
    grouped = kept.groupby(["period_start", "dim"], dropna=False)["x"].agg(value=lambda s: s.quantile(q), n="count")
    grouped = grouped.reset_index().assign(numerator=np.nan, denominator=np.nan)
    return _shaped(kpi, grouped, scope)


def _shaped(kpi: str, grouped: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    grouped = grouped.rename(columns={"dim": scope.dimension})
    grouped.insert(0, "kpi_id", kpi)
    return grouped[["kpi_id", "period_start", scope.dimension, *RESULT_COLUMNS]]


def _minutes(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 60


# -- access -------------------------------------------------------------------------------------


def _with_rescheduled(appointments: pd.DataFrame) -> pd.DataFrame:
    """An appointment is rescheduled when a later booking of the same source names it as its predecessor."""
    keys = appointments["source"] + ":" + appointments["appointment_id"]
    successors = appointments[appointments["rebooked_from_id"].notna()]
    named = set(successors["source"] + ":" + successors["rebooked_from_id"])
    return appointments.assign(rescheduled=keys.isin(named))


def _appointment_kpis(appointments: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    a = _frame(appointments, "appointments", "scheduled_start", scope)
    expected = a["status"].isin(["fulfilled", "arrived", "noshow"])
    late_cancel = (
        (a["status"] == "cancelled")
        & (a["cancel_initiator"] == "patient")
        & ~a["rescheduled"]
        & (a["cancelled_at"] >= a["scheduled_start"] - pd.Timedelta(hours=24))
    )
    # a cancellation without its initiator (or the patient's without a time) may have been late:
    # the period's late-cancellation rate is then unknown
    window = a["cancelled_at"] >= a["scheduled_start"] - pd.Timedelta(hours=24)
    unknown = (
        (a["status"] == "cancelled")
        & ~a["rescheduled"]
        & (
            (a["cancel_initiator"].isna() & (a["cancelled_at"].isna() | window))
            | ((a["cancel_initiator"] == "patient") & a["cancelled_at"].isna())
        )
    )
    late = _count_ratio("late_cancel_rate", a, late_cancel, a["status"] != "entered_in_error", scope)
    uncertain = unknown.groupby([a["period_start"], a["dim"]], dropna=False).any()
    keys = pd.MultiIndex.from_frame(late[["period_start", scope.dimension]])
    late["value"] = late["value"].where(~uncertain.reindex(keys, fill_value=False).to_numpy())
    return pd.concat([_count_ratio("no_show_rate", a, a["status"] == "noshow", expected, scope), late])


def _spans(frame: pd.DataFrame, start: str, minutes: pd.Series) -> pd.DataFrame:
    """Each row with its end and once per UTC day it touches (start day, end day), to join by day."""
    frame = frame.assign(start_at=frame[start], end_at=frame[start] + pd.to_timedelta(minutes, unit="min"))
    by_start = frame.assign(day=frame["start_at"].dt.floor("D"))
    by_end = frame.assign(day=frame["end_at"].dt.floor("D"))
    return pd.concat([by_start, by_end]).drop_duplicates(subset=[*frame.columns.drop(["start_at", "end_at"]), "day"])


def _overlaps(slots: pd.DataFrame, bookings: pd.DataFrame) -> pd.DataFrame:
    """(slot, booking) pairs of the same provider whose times overlap."""
    s = _spans(slots[["source", "slot_id", "provider_id", "start_at", "minutes"]], "start_at", slots["minutes"])
    b = _spans(bookings, "scheduled_start", bookings["scheduled_minutes"].fillna(1))
    pairs = s.merge(b, on=["provider_id", "day"], suffixes=("", "_b"))
    return pairs[(pairs["start_at_b"] < pairs["end_at"]) & (pairs["end_at_b"] > pairs["start_at"])]


def _slot_utilization(slots: pd.DataFrame, appointments: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    live = appointments[~appointments["status"].isin(["cancelled", "entered_in_error"])]
    live = live[["provider_id", "scheduled_start", "scheduled_minutes"]]
    booked = _overlaps(slots, live)[["source", "slot_id"]].drop_duplicates()
    s = _frame(slots, "slots", "start_at", scope)
    s = s.merge(booked.assign(booked=True), on=["source", "slot_id"], how="left")
    open_ = s["status"] != "blocked"
    minutes = s["minutes"].astype(float)
    booked_open = open_ & s["booked"].fillna(False).astype(bool)
    return _ratio("slot_utilization", s, minutes.where(booked_open, 0), minutes.where(open_, 0), open_, scope)


def _third_next_available(slots: pd.DataFrame, appointments: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """For each Monday 08:00 and provider (and location): days to the third slot still open then."""
    zone = ZoneInfo(scope.timezone)
    open_slots = slots[(slots["status"] != "blocked") & slots["provider_id"].notna()]
    open_slots = open_slots.sort_values(["start_at", "source", "slot_id"])
    bookings = appointments[appointments["booked_at"].notna()]
    bookings = bookings[["provider_id", "scheduled_start", "scheduled_minutes", "booked_at", "cancelled_at"]]
    holds = _overlaps(open_slots, bookings)[["source", "slot_id", "start_at", "booked_at", "cancelled_at"]]
    first_slot, last_booking = slots["start_at"].min(), appointments["booked_at"].max()
    rows = []
    day = scope.first + timedelta(days=(0 - scope.first.weekday()) % 7)
    end = (pd.Timestamp(scope.last) + pd.offsets.MonthBegin(1)).date()
    while day < end:
        at = pd.Timestamp(datetime.combine(day, time(8, 0), tzinfo=zone)).tz_convert("UTC")
        if first_slot <= at <= last_booking:
            taken = holds[
                (holds["start_at"] > at)
                & (holds["booked_at"] <= at)
                & (holds["cancelled_at"].isna() | (holds["cancelled_at"] > at))
            ]
            ahead = open_slots[open_slots["start_at"] > at]
            ahead = ahead[~(ahead["source"] + ":" + ahead["slot_id"]).isin(taken["source"] + ":" + taken["slot_id"])]
            third = ahead.groupby(["provider_id", "location_id"], dropna=False).nth(2)
            local_days = third["start_at"].dt.tz_convert(scope.timezone).dt.tz_localize(None).dt.normalize()
            rows.append(
                pd.DataFrame(
                    {
                        "period_start": pd.Timestamp(day.replace(day=1)),
                        "dim": third[scope.dim_column("slots")],
                        "days": (local_days - pd.Timestamp(day)).dt.days,
                    }
                )
            )
        day += timedelta(days=7)
    pairs = pd.concat(rows) if rows else pd.DataFrame(columns=["period_start", "dim", "days"])
    grouped = pairs.groupby(["period_start", "dim"], dropna=False)["days"].agg(numerator="sum", denominator="count")
    grouped = grouped.reset_index().astype({"numerator": float, "denominator": float})
    grouped["value"] = grouped["numerator"] / grouped["denominator"]
    grouped["n"] = grouped["denominator"].astype(int)
    return _shaped("third_next_available", grouped, scope)


# -- visit flow ---------------------------------------------------------------------------------


def _encounter_kpis(encounters: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    e = _frame(encounters, "encounters", "checked_in_at", scope)
    in_person = ~e["is_telehealth"]
    cycle_population = (e["status"] == "finished") & in_person & e["checked_out_at"].notna()
    cycle = _minutes(e["checked_out_at"], e["checked_in_at"])
    segments = {
        "visit_segment_checkin_to_roomed": ("checked_in_at", "roomed_at"),
        "visit_segment_roomed_to_provider": ("roomed_at", "provider_start_at"),
        "visit_segment_provider_time": ("provider_start_at", "provider_end_at"),
        "visit_segment_provider_to_checkout": ("provider_end_at", "checked_out_at"),
    }
    parts = [
        _quantile("visit_cycle_time", e, cycle, cycle_population, 0.5, scope),
        _quantile("visit_cycle_time_p90", e, cycle, cycle_population, 0.9, scope),
    ]
    for kpi, (begin, finish) in segments.items():
        both = in_person & e[begin].notna() & e[finish].notna()
        parts.append(_quantile(kpi, e, _minutes(e[finish], e[begin]), both, 0.5, scope))
    ended = _frame(encounters, "encounters", "provider_end_at", scope)
    lag = (ended["chart_closed_at"] - ended["provider_end_at"]).dt.total_seconds() / 3600
    both = ~ended["is_telehealth"] & ended["chart_closed_at"].notna()
    parts.append(_quantile("chart_closure_lag", ended, lag, both, 0.5, scope))
    return pd.concat(parts)


# -- phones -------------------------------------------------------------------------------------


def _call_kpis(calls: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    c = _frame(calls, "calls", "entered_at", scope)
    answered = c["outcome"] == "answered"
    abandoned = c["outcome"].isin(["abandoned", "timeout"]) & (c["wait_seconds"] >= 10)
    offered = answered | abandoned
    waits = c["wait_seconds"].where(answered, 0)
    asa = _ratio("average_speed_of_answer", c, waits, answered.astype(int), answered, scope)
    return pd.concat(
        [
            _count_ratio("call_abandonment_rate", c, abandoned, offered, scope),
            asa,
            _count_ratio("service_level", c, answered & (c["wait_seconds"] <= 30), offered, scope),
        ]
    )


# -- revenue cycle ------------------------------------------------------------------------------


def _signed(ledger: pd.DataFrame) -> pd.Series:
    """Each entry's effect on A/R: charges and refunds add, payments, adjustments and write-offs subtract."""
    return ledger["amount"].where(ledger["entry_type"].isin(["charge", "refund"]), -ledger["amount"])


def _contractual(ledger: pd.DataFrame) -> pd.Series:
    return (ledger["entry_type"] == "adjustment") & (ledger["group_code"] == "CO") & (ledger["reason_code"] == "45")


def _ar_kpis(ledger: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    """Days in A/R (MGMA: A/R / average daily adjusted charges of 365 days) and A/R over 90 days, per month end."""
    dim = scope.dim_column("ledger")
    entries = ledger.assign(
        ar=_signed(ledger),
        account=ledger["claim_id"].fillna("entry:" + ledger["entry_id"]),
        window=ledger["amount"].where(ledger["entry_type"] == "charge", 0)
        - ledger["amount"].where(_contractual(ledger), 0),
        dim=ledger[dim],
    )
    last_end = pd.Timestamp(scope.last) + pd.offsets.MonthEnd(0)
    entries = entries[entries["posted_date"] <= last_end]
    account_key = ["account", "service_date", "dim"]
    # an account without a date of service ages from its first posting in any segment
    first_posted = entries.groupby(["account", "service_date"], dropna=False)["posted_date"].transform("min")
    entries = entries.assign(age_from=entries["service_date"].fillna(first_posted))
    rows = []
    for start in scope.months():
        end = start + pd.offsets.MonthEnd(0)
        posted = entries[entries["posted_date"] <= end]
        accounts = posted.groupby([*account_key, "age_from"], dropna=False)["ar"].sum().reset_index()
        accounts["aged"] = accounts["ar"].where((end - accounts["age_from"]).dt.days > 90, 0)
        balances = accounts.groupby("dim", dropna=False)[["ar", "aged"]].sum()
        counts = posted.groupby("dim", dropna=False).size()
        window = posted[posted["posted_date"] > end - pd.Timedelta(days=365)]
        charges = window.groupby("dim", dropna=False)["window"].sum()
        charge_count = (window["entry_type"] == "charge").groupby(window["dim"], dropna=False).sum()
        month = pd.DataFrame({"ar": balances["ar"], "aged": balances["aged"], "entries": counts})
        month = month.join(pd.DataFrame({"charges": charges, "charge_count": charge_count}), how="outer")
        month = month.fillna(0).reset_index(names="dim").assign(period_start=start)
        rows.append(month)
    months = pd.concat(rows, ignore_index=True)
    daily_charges = months["charges"] / 365
    days = months.assign(
        numerator=months["ar"],
        denominator=daily_charges,
        value=(months["ar"] / daily_charges.where(daily_charges > 0)).where(months["ar"] >= 0),
        n=months["charge_count"].astype(int),
    )
    over_90 = months.assign(
        numerator=months["aged"],
        denominator=months["ar"],
        value=months["aged"] / months["ar"].where(months["ar"] > 0),
        n=months["entries"].astype(int),
    )
    return pd.concat([_shaped("days_in_ar", days, scope), _shaped("ar_over_90_pct", over_90, scope)])


def _net_collection_rate(ledger: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    entries = _frame(ledger, "ledger", "posted_date", scope)
    kind = entries["entry_type"]
    contractual = _contractual(entries)
    population = kind.isin(["charge", "payment", "refund"]) | contractual
    entries = entries[population]
    kind, contractual, amount = entries["entry_type"], _contractual(entries), entries["amount"]
    collected = amount.where(kind == "payment", 0) - amount.where(kind == "refund", 0)
    adjusted_charges = amount.where(kind == "charge", 0) - amount.where(contractual, 0)
    parts = pd.DataFrame(
        {
            "period_start": entries["period_start"],
            "dim": entries["dim"],
            "numerator": collected,
            "denominator": adjusted_charges,
        }
    )
    grouped = parts.groupby(["period_start", "dim"], dropna=False).agg(
        numerator=("numerator", "sum"), denominator=("denominator", "sum"), n=("numerator", "size")
    )
    grouped = grouped.reset_index()
    grouped["value"] = grouped["numerator"] / grouped["denominator"].where(grouped["denominator"] > 0)
    return _shaped("net_collection_rate", grouped, scope)


def _claim_outcomes(claims: pd.DataFrame, remittances: pd.DataFrame, adjustments: pd.DataFrame, scope: Scope):
    """One row per claim: first submission, first 7/8 resubmission, first non-reversal remittance and its CAS flags."""
    first_submission = claims.sort_values(["submitted_at", "submission_id"]).drop_duplicates("claim_id")
    reworks = claims[claims["frequency_code"].isin(["7", "8"])].groupby("claim_id")["submitted_at"].min()
    remits = remittances[remittances["claim_status_code"] != "22"]
    first_remit = remits.sort_values(["paid_date", "remittance_id"]).drop_duplicates("claim_id")
    flags = adjustments.assign(
        has_payer_adjustment=adjustments["group_code"].isin(["CO", "PI", "OA"]),
        has_patient_responsibility=adjustments["group_code"] == "PR",
        has_carc18=adjustments["reason_code"] == "18",
    )
    flags = flags.groupby("remittance_id")[["has_payer_adjustment", "has_patient_responsibility", "has_carc18"]].any()
    first_remit = first_remit.merge(flags, left_on="remittance_id", right_index=True, how="left")
    for column in ("has_payer_adjustment", "has_patient_responsibility", "has_carc18"):
        first_remit[column] = first_remit[column].fillna(False).astype(bool)
    outcomes = first_submission.merge(first_remit, on="claim_id", how="outer", suffixes=("", "_remit"))
    for column in ("has_payer_adjustment", "has_patient_responsibility", "has_carc18"):
        outcomes[column] = outcomes[column].fillna(False).astype(bool)
    rework_at = outcomes["claim_id"].map(reworks)
    outcomes["rework_date"] = rework_at.dt.tz_convert(scope.timezone).dt.tz_localize(None).dt.normalize()
    outcomes["submitted_date"] = (
        outcomes["submitted_at"].dt.tz_convert(scope.timezone).dt.tz_localize(None).dt.normalize()
    )
    outcomes["denied"] = (outcomes["claim_status_code"] == "4") | (
        (outcomes["paid_amount"] == 0) & outcomes["has_payer_adjustment"] & ~outcomes["has_patient_responsibility"]
    )
    return outcomes


def _claim_kpis(claims: pd.DataFrame, remittances: pd.DataFrame, adjustments: pd.DataFrame, scope: Scope):
    outcomes = _claim_outcomes(claims, remittances, adjustments, scope)
    paid = _frame(outcomes, "claims", "paid_date", scope)
    counted = paid["paid_date"].notna() & ~paid["has_carc18"]
    submitted = _frame(outcomes, "claims", "submitted_at", scope)
    # claims of a system that sends no remittances (a PM claims export) are not judged clean or not
    judged = submitted[submitted["source"].isin(set(remittances["source"]))]
    clean = (
        judged["paid_date"].notna()
        & ~judged["denied"]
        & (judged["rework_date"].isna() | (judged["rework_date"] >= judged["paid_date"]))
    )
    lag = (submitted["submitted_date"] - submitted["service_date"]).dt.days
    return pd.concat(
        [
            _count_ratio("denial_rate", paid, paid["denied"], counted, scope),
            _count_ratio("clean_claim_rate", judged, clean, judged["submitted_at"].notna(), scope),
            _quantile("charge_lag", submitted, lag, submitted["service_date"].notna(), 0.5, scope),
        ]
    )


# -- referrals and portal -----------------------------------------------------------------------


def _referral_completion_rate(referrals: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    r = _frame(referrals, "referrals", "created_at", scope)
    live = r["status"] != "cancelled"
    closed = r["report_received_at"] <= r["created_at"] + pd.Timedelta(days=90)
    return _count_ratio("referral_completion_rate", r, closed, live, scope)


def _business_hours(start: pd.Series, end: pd.Series, scope: Scope) -> pd.Series:
    """Business hours between two instants: whole business days between their dates, plus the open part of each day."""
    hours = scope.hours
    weekmask = [d in hours.days for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
    holidays = list(hours.holidays)
    opens, closes = (int(t[:2]) * 3600 + int(t[3:]) * 60 for t in (hours.start, hours.end))

    def open_seconds(local: pd.Series) -> np.ndarray:
        day = local.dt.normalize()
        since_midnight = (local - day).dt.total_seconds().to_numpy()
        business_day = np.is_busday(day.to_numpy().astype("datetime64[D]"), weekmask=weekmask, holidays=holidays)
        return np.where(business_day, np.clip(since_midnight, opens, closes) - opens, 0)

    local_start = start.dt.tz_convert(scope.timezone).dt.tz_localize(None)
    local_end = end.dt.tz_convert(scope.timezone).dt.tz_localize(None)
    days = np.busday_count(
        local_start.dt.normalize().to_numpy().astype("datetime64[D]"),
        local_end.dt.normalize().to_numpy().astype("datetime64[D]"),
        weekmask=weekmask,
        holidays=holidays,
    )
    seconds = days * (closes - opens) + open_seconds(local_end) - open_seconds(local_start)
    return pd.Series(seconds / 3600.0, index=start.index)


def _portal_response_time(messages: pd.DataFrame, scope: Scope) -> pd.DataFrame:
    m = _frame(messages, "portal_messages", "received_at", scope)
    replied = m["first_response_at"].notna()
    hours = pd.Series(np.nan, index=m.index)
    hours[replied] = _business_hours(m.loc[replied, "received_at"], m.loc[replied, "first_response_at"], scope)
    return _quantile("portal_response_time", m, hours, replied, 0.5, scope)
