"""Ground truth: every KPI of docs/contracts.md section 2, by month, for the practice, each
location and each provider, computed from the simulator's own events (never from its exports,
never by calling `kpis/`).

Accumulation is streaming and memory-bounded: ratios and means keep sums per (KPI, month,
provider); medians keep a histogram of integer minutes/days per (KPI, month, provider), which
gives the exact continuous quantile without holding the values; A/R keeps per-month deltas.
Locations and the practice total are merged from providers at the end, so every level is a
ratio of sums. Each shard of a run (a location, the phones) keeps its own Truth; the run adds
their tallies together, which is exact because shards count disjoint events.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sample_data.clock import add_months, month_end, month_index
from sample_data.events import Appointment, Call, Claim, PortalMessage, Referral, Remittance
from sample_data.portal import business_minutes
from sample_data.practice import Practice

ZERO = Decimal("0.00")
LATE_CANCEL_SECONDS = 24 * 3600
REFERRAL_WINDOW_DAYS = 90
SHORT_ABANDON_SECONDS = 10
SERVICE_LEVEL_SECONDS = 30

RATIO_KPIS = (
    "no_show_rate",
    "late_cancel_rate",
    "slot_utilization",
    "call_abandonment_rate",
    "service_level",
    "denial_rate",
    "clean_claim_rate",
    "referral_completion_rate",
)
MEAN_KPIS = ("third_next_available", "average_speed_of_answer")
SNAPSHOT_MINUTE = 8 * 60  # third next available: Mondays 08:00 local
MEDIAN_KPIS = {  # kpi -> (histogram, quantile, divisor turning the stored integer into the KPI's unit)
    "visit_cycle_time": ("cycle", 0.5, 1),
    "visit_cycle_time_p90": ("cycle", 0.9, 1),
    "visit_segment_checkin_to_roomed": ("checkin_to_roomed", 0.5, 1),
    "visit_segment_roomed_to_provider": ("roomed_to_provider", 0.5, 1),
    "visit_segment_provider_time": ("provider_time", 0.5, 1),
    "visit_segment_provider_to_checkout": ("provider_to_checkout", 0.5, 1),
    "chart_closure_lag": ("chart_minutes", 0.5, 60),
    "charge_lag": ("charge_lag_days", 0.5, 1),
    "portal_response_time": ("portal_minutes", 0.5, 60),
}
MONEY_KPIS = ("days_in_ar", "ar_over_90_pct", "net_collection_rate")
KPI_ORDER = (
    "no_show_rate",
    "late_cancel_rate",
    "third_next_available",
    "slot_utilization",
    "visit_cycle_time",
    "visit_cycle_time_p90",
    "visit_segment_checkin_to_roomed",
    "visit_segment_roomed_to_provider",
    "visit_segment_provider_time",
    "visit_segment_provider_to_checkout",
    "chart_closure_lag",
    "call_abandonment_rate",
    "average_speed_of_answer",
    "service_level",
    "days_in_ar",
    "ar_over_90_pct",
    "denial_rate",
    "clean_claim_rate",
    "net_collection_rate",
    "charge_lag",
    "referral_completion_rate",
    "portal_response_time",
)
# which locations have the data a KPI needs: every location, EHR (FHIR + X12) ones, or none (practice only)
EHR_ONLY = {
    "third_next_available",
    "slot_utilization",
    "chart_closure_lag",
    "denial_rate",
    "clean_claim_rate",
}
PRACTICE_ONLY = {"call_abandonment_rate", "average_speed_of_answer", "service_level"}
LEAD_BANDS = ((7, "0-7"), (30, "8-30"), (10_000, ">30"))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS = tuple(f"{h:02d}" for h in range(24))


def quantile(counts: Counter[int], q: float) -> float | None:
    """Continuous quantile with linear interpolation (numpy 'linear', DuckDB quantile_cont) from a histogram."""
    n = sum(counts.values())
    if n == 0:
        return None
    pos = (n - 1) * q
    lo_rank, hi_rank = math.floor(pos), math.ceil(pos)
    lo = hi = None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if lo is None and seen > lo_rank:
            lo = value
        if seen > hi_rank:
            hi = value
            break
    assert lo is not None and hi is not None
    return lo + (hi - lo) * (pos - lo_rank)


TALLIES = (
    "tna",
    "last_booked",
    "ratio",
    "mean",
    "slot_count",
    "hist",
    "ar_delta",
    "ar90_delta",
    "ar_entries",
    "adjusted_by_day",
    "charges_by_day",
    "collected",
    "realism",
)


def _pair() -> list[int]:
    return [0, 0]


def _pairs() -> defaultdict[str, list[int]]:
    return defaultdict(_pair)


def _collected() -> list[Any]:
    return [ZERO, ZERO, 0]  # payments, adjusted charges, entries


def _add(into: Any, other: dict[Any, Any]) -> None:
    """Add `other` into `into`, key by key: nested dicts recursively, lists element-wise, numbers."""
    for key, value in other.items():
        if isinstance(value, dict):
            _add(into[key], value)
        elif isinstance(value, list):
            cell = into[key]
            for i, x in enumerate(value):
                cell[i] += x
        else:
            into[key] += value


class Truth:
    """Accumulates events; `result()` renders truth.json's `meta`, `kpis` and `realism`."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self.clock = practice.clock
        params = practice.params
        self.start, self.end, self.months = params.start, params.end, params.months
        self.ratio: defaultdict[tuple[str, int, int], list[int]] = defaultdict(_pair)
        self.mean: defaultdict[tuple[str, int, int], list[int]] = defaultdict(_pair)
        # third next available by (provider, snapshot date): a snapshot counts only up to the last
        # booking the exports hold (docs/contracts.md), which is known once every shard is in
        self.tna: Counter[tuple[int, date]] = Counter()
        self.last_booked: Counter[int] = Counter()  # per location (shards are disjoint): its last booking
        self.slot_count: Counter[tuple[int, int]] = Counter()
        self.hist: defaultdict[tuple[str, int, int], Counter[int]] = defaultdict(Counter)
        self.ar_delta: defaultdict[tuple[int, int], Decimal] = defaultdict(Decimal)
        self.ar90_delta: defaultdict[tuple[int, int], Decimal] = defaultdict(Decimal)
        self.ar_entries: Counter[tuple[int, int]] = Counter()
        self.adjusted_by_day: defaultdict[tuple[int, date], Decimal] = defaultdict(Decimal)
        self.charges_by_day: Counter[tuple[int, date]] = Counter()
        self.collected: defaultdict[tuple[int, int], list[Any]] = defaultdict(_collected)
        self.realism: defaultdict[str, defaultdict[str, list[int]]] = defaultdict(_pairs)
        self.change_location = next((i for i, loc in enumerate(practice.locations) if loc.code == "EAST"), None)
        self._prefix: dict[int, tuple[list[date], list[Decimal], list[int]]] | None = None
        self._aging: dict[date, int] = {}  # service date -> first month in which it is over 90 days old
        self._posting: dict[date, int] = {}  # posting date -> month index (-1: after the data's end)
        self._month_of: dict[date, int | None] = {}  # date -> month index (None: outside the period)
        self.change_day = params.process_change
        self.month_ends = [month_end(add_months(self.start, k)) for k in range(self.months)]

    def tallies(self) -> dict[str, Any]:
        """The accumulated counts and sums (plain picklable containers), to merge into another Truth."""
        return {name: getattr(self, name) for name in TALLIES}

    def add(self, tallies: dict[str, Any]) -> None:
        """Add another shard's tallies. Shards count disjoint events, so the sums are exact totals."""
        for name, values in tallies.items():
            _add(getattr(self, name), values)

    def _month(self, d: date) -> int | None:
        """The index of the simulated month `d` falls in, or None outside the period."""
        k = self._month_of.get(d, -1)
        if k == -1:
            k = month_index(d, self.start)
            k = self._month_of[d] = k if 0 <= k < self.months and d <= self.end else None
        return k

    # -- access -------------------------------------------------------------------------------

    def appointment(self, a: Appointment) -> None:
        if a.booked <= self.practice.cutoff:
            self.last_booked[a.location] = max(self.last_booked[a.location], a.booked)
        day = self.clock.local_date(a.start)
        m = self._month(day)
        if m is None:
            return
        p = a.provider
        if a.status in ("fulfilled", "noshow"):
            cell = self.ratio["no_show_rate", m, p]
            cell[1] += 1
            noshow = a.status == "noshow"
            cell[0] += noshow
            realism = self.realism
            cells = [
                realism["no_show_by_lead_days"][next(name for limit, name in LEAD_BANDS if a.lead_days <= limit)],
                realism["no_show_by_patient"]["new" if a.is_new else "established"],
                realism["no_show_by_weekday"][WEEKDAYS[day.weekday()]],
                realism["no_show_by_payer_class"][self.practice.payers[a.payer].payer_class],
            ]
            if a.location == self.change_location:
                when = "after" if day >= self.change_day else "before"
                cells.append(realism["no_show_process_change_location"][when])
            for cell in cells:
                cell[0] += noshow
                cell[1] += 1
        if a.status != "entered_in_error":
            cell = self.ratio["late_cancel_rate", m, p]
            cell[1] += 1
            cell[0] += (
                a.status == "cancelled"
                and a.initiator == "patient"
                and not a.rescheduled
                and a.cancelled is not None
                and a.cancelled >= a.start - LATE_CANCEL_SECONDS
            )

    def slot(self, provider: int, start: int, minutes: int, blocked: bool, busy: bool) -> None:
        m = self._month(self.clock.local_date(start))
        if m is None or blocked:
            return
        cell = self.ratio["slot_utilization", m, provider]
        cell[1] += minutes
        cell[0] += minutes if busy else 0
        self.slot_count[m, provider] += 1

    def third_next_available(self, provider: int, snapshot: date, days: int) -> None:
        if self._month(snapshot) is not None:
            self.tna[provider, snapshot] = days

    def _third_next_available(self) -> None:
        """Place the snapshots taken by the last booking of the exports in their months."""
        last = max(self.last_booked.values(), default=0)
        for (provider, snapshot), days in self.tna.items():
            m = self._month(snapshot)
            if m is not None and self.clock.at(snapshot, SNAPSHOT_MINUTE) <= last:
                cell = self.mean["third_next_available", m, provider]
                cell[0] += days
                cell[1] += 1
        self.tna.clear()

    # -- visit flow ---------------------------------------------------------------------------

    def encounter(self, a: Appointment) -> None:
        enc = a.encounter
        if enc is None or a.telehealth:
            return
        m = self._month(self.clock.local_date(enc.checked_in))
        p = a.provider
        if m is not None:
            self.hist["cycle", m, p][(enc.checked_out - enc.checked_in) // 60] += 1
            if enc.roomed is not None:
                self.hist["checkin_to_roomed", m, p][(enc.roomed - enc.checked_in) // 60] += 1
            if enc.roomed is not None and enc.provider_start is not None:
                self.hist["roomed_to_provider", m, p][(enc.provider_start - enc.roomed) // 60] += 1
            if enc.provider_start is not None and enc.provider_end is not None:
                self.hist["provider_time", m, p][(enc.provider_end - enc.provider_start) // 60] += 1
            if enc.provider_end is not None:
                self.hist["provider_to_checkout", m, p][(enc.checked_out - enc.provider_end) // 60] += 1
            late = "runs_late" if self.practice.providers[p].runs_late else "on_time"
            self._real("cycle_minutes_by_provider_kind", late, (enc.checked_out - enc.checked_in) // 60)
        if enc.provider_end is not None and enc.chart_closed is not None and self._chart_counts(a):
            mc = self._month(self.clock.local_date(enc.provider_end))
            if mc is not None:
                self.hist["chart_minutes", mc, p][(enc.chart_closed - enc.provider_end) // 60] += 1

    def _chart_counts(self, a: Appointment) -> bool:
        """Chart closure is only exported (DocumentReference) by EHR locations."""
        return self.practice.locations[a.location].system == "ehr"

    # -- phones -------------------------------------------------------------------------------

    def calls(self, d: date, calls: list[Call]) -> None:
        """The calls that entered a queue on local day `d`."""
        m = self._month(d)
        if m is None or not calls:
            return
        midnight = self.clock.at(d, 0)  # calls come in office hours, where `at` is exact
        by_hour = self.realism["abandonment_by_hour"]
        by_weekday = self.realism["abandonment_by_weekday"][WEEKDAYS[d.weekday()]]
        abandonment = self.ratio["call_abandonment_rate", m, -1]
        level = self.ratio["service_level", m, -1]
        asa = self.mean["average_speed_of_answer", m, -1]
        for c in calls:
            if c.outcome == "exit_key":
                continue
            answered = c.outcome == "answered"
            if not answered and c.wait < SHORT_ABANDON_SECONDS:
                continue
            for cell in (by_hour[HOURS[(c.entered - midnight) // 3600]], by_weekday, abandonment):
                cell[0] += not answered
                cell[1] += 1
            level[1] += 1
            if answered:
                level[0] += c.wait <= SERVICE_LEVEL_SECONDS
                asa[0] += c.wait
                asa[1] += 1

    # -- revenue cycle ------------------------------------------------------------------------

    def claim(self, c: Claim) -> None:
        """Ledger entries (docs/contracts.md 'Derived ledger') and the claim-level KPIs.

        The entries of one event (a submission, a remittance with its adjustments, a patient
        payment) share their posting date, so each event is posted at once with its entry count.
        """
        p = c.appointment.provider
        aged = self._aged_from(c.service_date)
        per_line = self.practice.locations[c.appointment.location].system == "pms"
        previous = ZERO
        for s in c.submissions:
            billed = s.billed
            delta = billed if s.frequency == "1" else (billed - previous if s.frequency == "7" else -previous)
            charges = len(s.lines) if per_line else 1
            self._post(p, aged, self.clock.local_date(s.at), delta, charges, adjusted=delta, charges=charges)
            previous = billed
        for r in c.remittances:
            delta, entries, contractual, counted = -r.total_paid, 1, ZERO, 1
            for adj in r.adjustments:
                if adj.group in ("CO", "OA", "PI", "CR"):
                    delta -= adj.amount
                    entries += 1
                    if adj.group == "CO" and adj.reason == "45":
                        contractual += adj.amount
                        counted += 1
            if per_line:
                entries = counted = self._line_entries(r)
            self._post(p, aged, r.paid_date, delta, entries, paid=r.total_paid, adjusted=-contractual, counted=counted)
        for pay in c.patient_payments:
            self._post(p, aged, pay.posted, -pay.amount, 1, paid=pay.amount)
        for w in c.writeoffs:  # bad debt: out of A/R, never out of net collection's denominator
            self._post(p, aged, w.posted, -w.amount, 1, counted=0)
        if self.practice.locations[c.appointment.location].system == "ehr":
            self._claim_kpis(c)
        else:  # NORTH's claims.csv dates the claims (charge lag); its payments come without 835s
            first_day = self.clock.local_date(c.submissions[0].at)
            m = self._month(first_day)
            if m is not None:
                self.hist["charge_lag_days", m, p][(first_day - c.service_date).days] += 1

    @staticmethod
    def _line_entries(r: Remittance) -> int:
        """Ledger rows of one remittance in the PMS (Synthea-style) ledger: per claim line, a
        payment row when the line was paid and an adjustment row when it had CO amounts."""
        adjusted_lines = {adj.line for adj in r.adjustments if adj.group == "CO" and adj.amount}
        return sum(1 for paid in r.paid if paid) + len(adjusted_lines)

    def _aged_from(self, service: date) -> int:
        """The first month whose end is more than 90 days after `service` (months when none is)."""
        found = self._aging.get(service)
        if found is None:
            cutoff = service + timedelta(days=90)
            found = self._aging[service] = next(
                (m for m, end in enumerate(self.month_ends) if cutoff < end), self.months
            )
        return found

    def _post(
        self,
        p: int,
        aged: int,
        posted: date,
        delta: Decimal,
        entries: int,
        *,
        paid: Decimal = ZERO,
        adjusted: Decimal = ZERO,
        charges: int = 0,
        counted: int | None = None,
    ) -> None:
        """Ledger entries posted on one date: A/R changes by `delta` over `entries` entries; `paid`
        adds to collections, `adjusted` to adjusted charges (charges minus CO-45), `charges` counts
        charge entries, `counted` the entries net collection counts (charges, payments, CO-45;
        default: all of them)."""
        k = self._posting.get(posted)
        if k is None:
            k = self._posting[posted] = month_index(posted, self.start) if posted <= self.end else -1
        if k < 0:
            return
        key = (p, k)
        self.ar_delta[key] += delta
        self.ar_entries[key] += entries
        self.ar90_delta[key if k > aged else (p, aged)] += delta
        cell = self.collected[key]
        cell[0] += paid
        cell[1] += adjusted
        cell[2] += entries if counted is None else counted
        if adjusted or charges:
            self.adjusted_by_day[p, posted] += adjusted
            self.charges_by_day[p, posted] += charges

    def _claim_kpis(self, c: Claim) -> None:
        p = c.appointment.provider
        first = c.submissions[0]
        first_day = self.clock.local_date(first.at)
        if first_day > self.end:
            return
        m = self._month(first_day)
        remits = [r for r in c.remittances if r.paid_date <= self.end]
        known_subs = [s for s in c.submissions if self.clock.local_date(s.at) <= self.end]
        first_remit = next((r for r in remits if r.status != "22"), None)
        if m is not None:
            self.hist["charge_lag_days", m, p][(first_day - c.service_date).days] += 1
            clean = (
                first_remit is not None
                and not first_remit.is_denial
                and not any(
                    s.frequency in ("7", "8") and self.clock.local_date(s.at) < first_remit.paid_date
                    for s in known_subs
                )
            )
            cell = self.ratio["clean_claim_rate", m, p]
            cell[1] += 1
            cell[0] += clean
        if first_remit is not None and not any(a.reason == "18" for a in first_remit.adjustments):
            md = self._month(first_remit.paid_date)
            if md is not None:
                cell = self.ratio["denial_rate", md, p]
                cell[1] += 1
                cell[0] += first_remit.is_denial
                payer_class = self.practice.payers[c.payer].payer_class
                self._real("denial_by_payer_class", payer_class, first_remit.is_denial)
                self._real(
                    "days_to_first_remittance_by_payer_class", payer_class, (first_remit.paid_date - first_day).days
                )

    # -- referrals and portal -----------------------------------------------------------------

    def referral(self, r: Referral) -> None:
        m = self._month(self.clock.local_date(r.created))
        if m is None or r.cancelled is not None:
            return
        cell = self.ratio["referral_completion_rate", m, r.provider]
        cell[1] += 1
        cell[0] += r.report is not None and r.report <= r.created + REFERRAL_WINDOW_DAYS * 86_400

    def portal(self, msg: PortalMessage) -> None:
        m = self._month(self.clock.local_date(msg.received))
        if m is None or msg.staff_reply is None:
            return
        self.hist["portal_minutes", m, msg.provider][business_minutes(self.clock, msg.received, msg.staff_reply)] += 1

    def _real(self, section: str, key: str, value: int) -> None:
        cell = self.realism[section][key]
        cell[0] += value
        cell[1] += 1

    # -- output -------------------------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        self._third_next_available()
        practice = self.practice
        ehr = {i for i, loc in enumerate(practice.locations) if loc.system == "ehr"}
        out: list[dict[str, Any]] = []
        for kpi in KPI_ORDER:
            if kpi in PRACTICE_ONLY:
                groups = [(None, None, [-1])]
            else:
                locs = [i for i in range(len(practice.locations)) if kpi not in EHR_ONLY or i in ehr]
                provs = [pr.index for pr in practice.providers if pr.location in locs]
                groups = [(None, None, provs)]
                groups += [
                    ("location", practice.locations[i].code, [pr.index for pr in practice.providers_at(i)])
                    for i in locs
                ]
                groups += [("provider", practice.providers[i].npi, [i]) for i in provs]
            for m in range(self.months):
                period = add_months(self.start, m)
                for dimension, value, members in groups:
                    row = {
                        "kpi_id": kpi,
                        "period_start": period.isoformat(),
                        "grain": "month",
                        "dimension": dimension,
                        "dimension_value": value,
                        "complete": self._complete(kpi, m),
                    }
                    row.update(self._value(kpi, m, members))
                    out.append(row)
        return out

    def _complete(self, kpi: str, m: int) -> bool:
        if kpi == "referral_completion_rate":
            return self.month_ends[m] + timedelta(days=REFERRAL_WINDOW_DAYS) <= self.end
        return True

    def _value(self, kpi: str, m: int, members: list[int]) -> dict[str, Any]:
        if kpi in RATIO_KPIS:
            num = sum(self.ratio[kpi, m, p][0] for p in members if (kpi, m, p) in self.ratio)
            den = sum(self.ratio[kpi, m, p][1] for p in members if (kpi, m, p) in self.ratio)
            n = sum(self.slot_count[m, p] for p in members) if kpi == "slot_utilization" else den
            return {"numerator": num, "denominator": den, "value": num / den if den else None, "n": n}
        if kpi in MEAN_KPIS:
            total = sum(self.mean[kpi, m, p][0] for p in members if (kpi, m, p) in self.mean)
            n = sum(self.mean[kpi, m, p][1] for p in members if (kpi, m, p) in self.mean)
            return {"numerator": total, "denominator": n, "value": total / n if n else None, "n": n}
        if kpi in MEDIAN_KPIS:
            hist_name, q, divisor = MEDIAN_KPIS[kpi]
            merged: Counter[int] = Counter()
            for p in members:
                if (hist_name, m, p) in self.hist:
                    merged.update(self.hist[hist_name, m, p])
            value = quantile(merged, q)
            return {
                "numerator": None,
                "denominator": None,
                "n": sum(merged.values()),
                "value": None if value is None else value / divisor,
            }
        return self._money(kpi, m, members)

    def _money(self, kpi: str, m: int, members: list[int]) -> dict[str, Any]:
        end = self.month_ends[m]
        if kpi == "net_collection_rate":
            paid = sum((self.collected[p, m][0] for p in members if (p, m) in self.collected), ZERO)
            adjusted = sum((self.collected[p, m][1] for p in members if (p, m) in self.collected), ZERO)
            n = sum(self.collected[p, m][2] for p in members if (p, m) in self.collected)
            return {
                "numerator": float(paid),
                "denominator": float(adjusted),
                "n": n,
                "value": float(paid / adjusted) if adjusted > 0 else None,  # no rate over a sum that is not positive
            }
        ar = sum((self.ar_delta[p, k] for p in members for k in range(m + 1) if (p, k) in self.ar_delta), ZERO)
        if kpi == "ar_over_90_pct":
            old = sum((self.ar90_delta[p, k] for p in members for k in range(m + 1) if (p, k) in self.ar90_delta), ZERO)
            n = sum(self.ar_entries[p, k] for p in members for k in range(m + 1))
            value = float(old / ar) if ar > 0 else None
            return {"numerator": float(old), "denominator": float(ar), "n": n, "value": value}
        adjusted, n = ZERO, 0
        for p in members:
            amount, count = self._window(p, end - timedelta(days=365), end)
            adjusted += amount
            n += count
        daily = adjusted / 365  # average daily adjusted charges of the MGMA 365-day look-back
        return {
            "numerator": float(ar),
            "denominator": float(daily),
            "n": n,
            "value": float(ar / daily) if adjusted > 0 and ar >= 0 else None,
        }

    def _window(self, p: int, after: date, through: date) -> tuple[Decimal, int]:
        """Adjusted charges and charge entries of provider `p` posted in (after, through]."""
        if self._prefix is None:
            self._prefix = {}
            days_by_provider: defaultdict[int, list[date]] = defaultdict(list)
            for prov, day in self.adjusted_by_day:
                days_by_provider[prov].append(day)
            for prov, days in days_by_provider.items():
                days.sort()
                sums, counts = [ZERO], [0]
                for day in days:
                    sums.append(sums[-1] + self.adjusted_by_day[prov, day])
                    counts.append(counts[-1] + self.charges_by_day[prov, day])
                self._prefix[prov] = (days, sums, counts)
        if p not in self._prefix:
            return ZERO, 0
        days, sums, counts = self._prefix[p]
        lo, hi = bisect_right(days, after), bisect_right(days, through)
        return sums[hi] - sums[lo], counts[hi] - counts[lo]

    def realism_summary(self) -> dict[str, Any]:
        """Shares and means behind the realism claims of ASSUMPTIONS.md (for tests and readers)."""
        out: dict[str, Any] = {}
        for section, cells in sorted(self.realism.items()):
            out[section] = {
                key: {"numerator": num, "denominator": den, "value": num / den if den else None}
                for key, (num, den) in sorted(cells.items())
            }
        return out
