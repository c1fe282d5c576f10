"""A provider's clinic day: template slots, the appointments booked into them, and the visits.

Appointments are generated start-first (walk the day's slots, fill each with the demand that
booked it some lead time earlier), so a month can be simulated without simulating the months
before it. Reschedules and backfills are generated alongside the appointment they belong to.
The behavioural constants are the assumptions documented in ASSUMPTIONS.md.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from sample_data.changes import no_show_factor
from sample_data.clock import Clock
from sample_data.draws import Weighted, pick, randint
from sample_data.events import Appointment, Encounter
from sample_data.holidays import is_holiday
from sample_data.practice import SLOT_MINUTES, Practice, Provider

SESSIONS = ((8 * 60, 12 * 60), (13 * 60, 17 * 60))  # local minutes of day: morning and afternoon clinic
ADMIN_BLOCK = (2, 15 * 60 + 40)  # Wednesdays from 15:40: blocked for team meetings
VACATION_WEEKS_PER_YEAR = 3

# visit types booked ahead: (share of that demand, minutes). Routine demand exceeds what the
# template offers, so it is booked days to weeks ahead and fills nearly every slot (the backlog
# that third next available measures); acute ("sick") visits are booked the same or next day
# into what is left: slots no routine booking took, and slots freed by cancellations.
VISIT_TYPES = {
    "followup": (0.50, 20),
    "annual": (0.19, 40),
    "new": (0.18, 40),
    "procedure": (0.13, 40),
}
SAME_DAY_VISIT = "sick"  # 20 minutes
SAME_DAY_TAKE = 0.55  # of the slots routine demand left open, taken by acute visits (x season)
TELEHEALTH_SHARE = 0.10  # of follow-ups at EHR locations

BASE_NO_SHOW = 0.056
NO_SHOW_LEAD = ((1, 0.45), (7, 0.80), (30, 1.10), (10_000, 1.75))  # (max lead days, multiplier)
NO_SHOW_NEW_PATIENT = 1.45
NO_SHOW_MONDAY = 1.25
NO_SHOW_PAYER = {"commercial": 0.85, "medicare": 0.80, "medicaid": 1.60, "self_pay": 1.50}
NO_SHOW_TELEHEALTH = 0.70
NO_SHOW_WINTER = 1.10  # December-February

PATIENT_CANCEL = 0.065  # base; more for long lead times
PATIENT_CANCEL_LONG_LEAD = 0.05  # added when booked more than 30 days ahead
LATE_SHARE = 0.30  # of patient cancellations, within 24 h of the start
PRACTICE_CANCEL = 0.015
RESCHEDULE_SHARE = 0.12  # appointments that replace an earlier one the patient moved
# a slot a patient frees is rebooked by someone else (within a day or two) more often the more
# notice there is: (minimum days of notice, share rebooked)
BACKFILL_BY_NOTICE = ((3, 0.90), (1, 0.60), (0, 0.25))
BACKFILL_WITHIN_HOURS = 36
ENTERED_IN_ERROR = 0.004  # vendor system only

_VISIT = Weighted(list(VISIT_TYPES), [v[0] for v in VISIT_TYPES.values()])
_SICK_LEAD = Weighted((0, 1, 2), (0.60, 0.30, 0.10))

SEASON = {1: 1.06, 2: 1.05, 3: 1.0, 4: 0.98, 5: 0.97, 6: 0.95, 7: 0.90, 8: 0.92, 9: 1.02, 10: 1.03, 11: 1.0, 12: 1.04}

PATIENT_CANCEL_CODES = ("pat-crs", "pat-cpp", "pat-fb", "pat-lt", "pat-swl", "pat-mv")
PRACTICE_CANCEL_CODES = (
    ("provider", "prov"),
    ("provider", "prov-onc"),
    ("practice", "maint"),
    ("practice", "oth-room"),
)


@dataclass
class DaySlots:
    """One provider's template slots on one day: (start epoch, blocked) in time order."""

    provider: int
    day: date
    starts: list[int]
    blocked: list[bool]


class Ids:
    """Sequential ids per kind within one location, whose `tag` makes them unique in the practice.

    Each location is simulated on its own (possibly in another process), so ids depend only
    on the seed, the settings and the location, never on how the work was scheduled.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._next: dict[str, int] = {}

    def next(self, kind: str) -> int:
        n = self._next.get(kind, 0) + 1
        self._next[kind] = n
        return n


def vacation_weeks(seed: int, provider: int, year: int) -> set[int]:
    rng = random.Random(f"{seed}:vacation:{provider}:{year}")
    return set(rng.sample(range(2, 51), VACATION_WEEKS_PER_YEAR))


class DaySimulator:
    """Generates one provider-day at a time; holds what every day needs."""

    def __init__(self, practice: Practice, ids: Ids, cutoff: int) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        self.ids = ids
        self.cutoff = cutoff
        self.params = practice.params
        self.first_day = practice.params.start
        self.changes = practice.changes
        self._vacations: dict[tuple[int, int], set[int]] = {}

    def template(self, prov: Provider, d: date) -> DaySlots | None:
        """The day's slots, or None if the provider holds no clinic that day (weekends, a day off, holidays)."""
        if d.weekday() >= 5 or d.weekday() == prov.day_off or is_holiday(d):
            return None
        iso_year, iso_week, _ = d.isocalendar()
        key = (prov.index, iso_year)
        if key not in self._vacations:
            self._vacations[key] = vacation_weeks(self.params.seed, prov.index, iso_year)
        on_vacation = iso_week in self._vacations[key]
        starts, blocked = [], []
        for first, last in SESSIONS:
            for m in range(first, last, SLOT_MINUTES):
                starts.append(self.clock.at(d, m))
                blocked.append(on_vacation or (d.weekday() == ADMIN_BLOCK[0] and m >= ADMIN_BLOCK[1]))
        return DaySlots(prov.index, d, starts, blocked)

    def day(self, rng: random.Random, prov: Provider, slots: DaySlots) -> list[Appointment]:
        """Fill the day's slots with appointments (plus moved and backfilled ones) and run the visits.

        Routine demand, booked ahead, takes a slot with the provider's `fill`; a slot it leaves
        open goes to an acute visit booked the same or the day before with `SAME_DAY_TAKE`
        (more in winter), or stays empty.
        """
        d = slots.day
        fill = min(0.995, prov.fill * (1.01 if d.weekday() == 0 else 1.0))
        same_day = min(1.0, SAME_DAY_TAKE * SEASON[d.month])
        taken = [False] * len(slots.starts)
        session_of = [0 if (slots.starts[i] - slots.starts[0]) < 4 * 3600 else 1 for i in range(len(slots.starts))]
        out: list[Appointment] = []
        per_slot = SLOT_MINUTES * 60
        for i, start in enumerate(slots.starts):
            if taken[i] or slots.blocked[i]:
                continue
            r = rng.random()
            if r < fill:
                visit = _VISIT(rng)
            elif r < fill + (1 - fill) * same_day:
                visit = SAME_DAY_VISIT
            else:
                continue
            k = VISIT_TYPES[visit][1] // SLOT_MINUTES if visit in VISIT_TYPES else 1
            if any(
                j >= len(slots.starts) or taken[j] or slots.blocked[j] or session_of[j] != session_of[i]
                for j in range(i, i + k)
            ):
                visit, k = "followup", 1
            for j in range(i, i + k):
                taken[j] = True
            appt = self._booking(rng, prov, d, start, visit, k * SLOT_MINUTES)
            out.append(appt)
            if appt.status != "cancelled" and appt.lead_days >= 3 and rng.random() < RESCHEDULE_SHARE:
                moved = self._moved_from(rng, appt, per_slot)
                if moved is not None:
                    out.append(moved)
            if appt.status == "cancelled" and appt.initiator == "patient":
                filler = self._backfill(rng, prov, appt)
                if filler is not None:
                    out.append(filler)
        self._visits(rng, prov, out)
        return out

    # -- bookings ---------------------------------------------------------------------------

    def _new_id(self, loc: int) -> str:
        n = self.ids.next("appointment")
        return f"ap{self.ids.tag}{n:08d}" if self.practice.locations[loc].system == "ehr" else str(700_000 + n)

    def _lead_days(self, rng: random.Random, visit: str) -> int:
        """Days between booking and visit: routine visits wait for the backlog (new patients longest)."""
        if visit == SAME_DAY_VISIT:
            return _SICK_LEAD(rng)
        if visit == "followup":
            return randint(rng, 6, 14) if rng.random() < 0.4 else randint(rng, 15, 45)
        if visit == "annual":
            return randint(rng, 14, 90)
        if visit == "new":
            return randint(rng, 8, 45)
        return randint(rng, 7, 30)

    def _booked_at(self, rng: random.Random, d: date, start: int, lead: int) -> int:
        """A booking instant `lead` days before `d`, in office hours, at least 30 minutes before start."""
        if lead == 0:
            latest = (start - self.clock.at(d, 7 * 60)) // 60 - 30
            return self.clock.at(d, 7 * 60 + randint(rng, 0, max(0, latest)))
        return self.clock.at(d - timedelta(days=lead), randint(rng, 7 * 60 + 30, 18 * 60))

    def _booking(
        self, rng: random.Random, prov: Provider, d: date, start: int, visit: str, minutes: int
    ) -> Appointment:
        practice = self.practice
        loc = prov.location
        patients = practice.patients_at(loc)
        patient = pick(rng, patients)
        payer = practice.patient_payer[patient]
        lead = self._lead_days(rng, visit)
        if lead == 0 and start < self.clock.at(d, 8 * 60 + 40):
            lead = 1
        booked = self._booked_at(rng, d, start, lead)
        ehr = practice.locations[loc].system == "ehr"
        appt = Appointment(
            appointment_id=self._new_id(loc),
            location=loc,
            provider=prov.index,
            patient=patient,
            payer=payer,
            visit=visit,
            is_new=visit == "new",
            telehealth=ehr and visit == "followup" and rng.random() < TELEHEALTH_SHARE,
            start=start,
            minutes=minutes,
            booked=booked,
            status="booked",
            lead_days=lead,
        )
        self._outcome(rng, appt, d, allow_cancel=True)
        return appt

    def _outcome(self, rng: random.Random, appt: Appointment, d: date, *, allow_cancel: bool) -> None:
        ehr = self.practice.locations[appt.location].system == "ehr"
        if not ehr and rng.random() < ENTERED_IN_ERROR:
            appt.status = "entered_in_error"
            appt.last_updated = appt.booked + 600
            return
        if allow_cancel:
            p_patient = PATIENT_CANCEL + (PATIENT_CANCEL_LONG_LEAD if appt.lead_days > 30 else 0.0)
            r = rng.random()
            if r < p_patient:
                if self._cancel(rng, appt, d, late=rng.random() < LATE_SHARE):
                    appt.initiator = "patient"
                    appt.cancel_code = pick(rng, PATIENT_CANCEL_CODES)
                    return
            elif r < p_patient + PRACTICE_CANCEL and self._cancel(rng, appt, d, late=False):
                appt.initiator, appt.cancel_code = pick(rng, PRACTICE_CANCEL_CODES)
                return
        appt.status = "noshow" if rng.random() < self._no_show_probability(appt, d) else "fulfilled"
        appt.last_updated = appt.start + appt.minutes * 60

    def _no_show_probability(self, appt: Appointment, d: date) -> float:
        p = BASE_NO_SHOW
        p *= next(mult for limit, mult in NO_SHOW_LEAD if appt.lead_days <= limit)
        if appt.is_new:
            p *= NO_SHOW_NEW_PATIENT
        if d.weekday() == 0:
            p *= NO_SHOW_MONDAY
        p *= NO_SHOW_PAYER[self.practice.payers[appt.payer].payer_class]
        if appt.telehealth:
            p *= NO_SHOW_TELEHEALTH
        p *= no_show_factor(self.changes, self.practice.locations[appt.location].code, d)  # process changes
        if d.month in (12, 1, 2):
            p *= NO_SHOW_WINTER
        return min(p, 0.6)

    def _cancel(self, rng: random.Random, appt: Appointment, d: date, *, late: bool) -> bool:
        """Cancel `appt` at an office-hours instant between booking and start; False if none fits."""
        day_count = (d - self.clock.local_date(appt.booked)).days
        for _ in range(12):
            back = pick(rng, (0, 1)) if late else randint(rng, 1, max(1, day_count))
            at = self.clock.at(d - timedelta(days=back), randint(rng, 7 * 60, 21 * 60))
            if appt.booked + 600 <= at <= appt.start - 900 and (not late or at >= appt.start - 24 * 3600):
                appt.status = "cancelled"
                appt.cancelled = at
                appt.last_updated = at
                return True
        return False

    def _moved_from(self, rng: random.Random, appt: Appointment, per_slot: int) -> Appointment | None:
        """The appointment the patient had before moving to `appt` (cancelled when `appt` was booked)."""
        moved_days = randint(rng, 1, 21)
        start = appt.start - moved_days * 86_400
        start_day = self.clock.local_date(start)
        if (
            start_day.weekday() >= 5
            or is_holiday(start_day)
            or start_day < self.first_day
            or start <= appt.booked + 3600
        ):
            return None
        start = self.clock.at(start_day, (self.clock.local(appt.start).hour * 60 + self.clock.local(appt.start).minute))
        lead = randint(rng, 2, 30)
        booked = self.clock.at(self.clock.local_date(appt.booked) - timedelta(days=lead), randint(rng, 450, 1080))
        old = Appointment(
            appointment_id=self._new_id(appt.location),
            location=appt.location,
            provider=appt.provider,
            patient=appt.patient,
            payer=appt.payer,
            visit=appt.visit,
            is_new=appt.is_new,
            telehealth=appt.telehealth,
            start=start,
            minutes=appt.minutes,
            booked=booked,
            status="cancelled",
            cancelled=appt.booked,
            initiator="patient",
            cancel_code="pat-crs",
            rescheduled=True,
            lead_days=(start_day - self.clock.local_date(booked)).days,
            last_updated=appt.booked,
        )
        appt.rebooked_from = old.appointment_id
        return old

    def _backfill(self, rng: random.Random, prov: Provider, cancelled: Appointment) -> Appointment | None:
        """Someone else booked into the slot freed by a cancellation, within a day or two of it
        (the more notice, the likelier: `BACKFILL_BY_NOTICE`)."""
        assert cancelled.cancelled is not None
        notice = cancelled.start - cancelled.cancelled
        share = next(s for days_, s in BACKFILL_BY_NOTICE if notice >= days_ * 86_400)
        if rng.random() >= share:
            return None
        latest = min(cancelled.cancelled + BACKFILL_WITHIN_HOURS * 3600, cancelled.start - 1800)
        if latest < cancelled.cancelled + 300:
            return None
        at = cancelled.cancelled + 300 + int(rng.random() * (latest - cancelled.cancelled - 300))
        d = self.clock.local_date(cancelled.start)
        day = self.clock.local_date(at)
        visit = SAME_DAY_VISIT if cancelled.minutes == SLOT_MINUTES else pick(rng, ("new", "annual", "procedure"))
        patients = self.practice.patients_at(prov.location)
        patient = pick(rng, patients)
        appt = Appointment(
            appointment_id=self._new_id(prov.location),
            location=prov.location,
            provider=prov.index,
            patient=patient,
            payer=self.practice.patient_payer[patient],
            visit=visit,
            is_new=visit == "new",
            telehealth=False,
            start=cancelled.start,
            minutes=cancelled.minutes,
            booked=at,
            status="booked",
            lead_days=(d - day).days,
        )
        self._outcome(rng, appt, d, allow_cancel=False)
        return appt

    # -- visits -----------------------------------------------------------------------------

    def _visits(self, rng: random.Random, prov: Provider, appts: list[Appointment]) -> None:
        """Run the kept appointments in start order: waiting room, rooming, the provider's queue, checkout."""
        free_at = 0  # minute the provider is free (epoch minutes)
        for appt in sorted((a for a in appts if a.status == "fulfilled"), key=lambda a: (a.start, a.appointment_id)):
            start_min = appt.start // 60
            enc_id = f"en{self.ids.tag}{self.ids.next('encounter'):08d}"
            if appt.telehealth:
                checkin = start_min - randint(rng, 0, 3)
                checkout = start_min + max(5, round(appt.minutes * rng.uniform(0.5, 0.95)))
                appt.encounter = Encounter(enc_id, checkin * 60, checkout * 60)
                appt.last_updated = checkout * 60
                continue
            checkin = start_min + round(max(-25.0, min(15.0, rng.gauss(-9, 7))))
            roomed = checkin + round(rng.lognormvariate(math.log(11), 0.5))
            ready = roomed + randint(rng, 4, 9)
            pstart = max(ready, free_at + 1)
            stretch = rng.uniform(0.85, 1.35) if prov.runs_late else rng.uniform(0.5, 0.9)
            pend = pstart + max(6, round(appt.minutes * stretch))
            free_at = pend
            checkout = pend + randint(rng, 3, 12)
            closed_min = pend + round(rng.lognormvariate(math.log(prov.chart_hours * 60), 0.9))
            closed = closed_min * 60 if closed_min * 60 < self.cutoff else None
            appt.encounter = Encounter(enc_id, checkin * 60, checkout * 60, roomed * 60, pstart * 60, pend * 60, closed)
            appt.last_updated = checkout * 60
