"""Run the simulation month by month, streaming every export to disk and feeding the truth.

Memory stays bounded whatever the scale: a month's events are written as they are made;
only what a later month can still change is held (the slot window for third-next-available,
and billing events dated after the month being simulated).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import IO, Any

from sample_data import phones, portal, referrals
from sample_data.access import LOOKAHEAD_MONTHS, AccessTracker, FinishedSlot
from sample_data.billing import Biller
from sample_data.clock import add_months, days, month_end
from sample_data.events import Appointment, Claim, Remittance, Submission
from sample_data.practice import Params, Practice, build_practice
from sample_data.schedule import SEASON, DaySimulator, Ids
from sample_data.truth import Truth
from sample_data.writers import csv_files
from sample_data.writers.fhir import FhirWriter
from sample_data.writers.queue_log import broken_call_lines, call_lines
from sample_data.writers.x12 import ControlNumbers, X12Writer

Progress = Callable[[str, int, int], None]
OVERLAP_DAYS = 14  # a yearly vendor export also lists the next year's first two weeks, as still Scheduled


@dataclass
class Summary:
    """What a run wrote, for the command's closing report."""

    out: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> records
    appointments: int = 0
    claims: int = 0
    calls: int = 0


class _Billing:
    """Billing events waiting for their month's 837/835 files."""

    def __init__(self) -> None:
        self.claims: defaultdict[date, defaultdict[tuple[int, int], list[tuple[Claim, Submission]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.remits: defaultdict[tuple[int, date], defaultdict[tuple[date, int], list[tuple[Claim, Remittance]]]] = (
            defaultdict(lambda: defaultdict(list))
        )
        self.payments: defaultdict[date, list[tuple[date, int, list[str]]]] = defaultdict(list)


class Simulation:
    def __init__(self, params: Params, out: Path) -> None:
        self.params = params
        self.out = out
        self.practice: Practice = build_practice(params)
        self.clock = self.practice.clock
        end = params.end + timedelta(days=1)
        self.cutoff = int(datetime(end.year, end.month, end.day, tzinfo=self.clock.tz).timestamp())
        self.ids = Ids()
        self.days = DaySimulator(self.practice, self.ids, self.cutoff)
        self.access = AccessTracker(self.practice)
        self.biller = Biller(self.practice)
        self.truth = Truth(self.practice)
        self.summary = Summary(out)
        self.rejects: dict[str, int] = {}
        self.updates: dict[str, int] = {}
        self._pending = _Billing()
        self._x12 = X12Writer(self.practice, ControlNumbers())
        self._counters = {"calls": [0], "portal": [0]}
        self._vendor_rows = csv_files.VendorRows(self.practice)
        self._synthea = csv_files.SyntheaRows(self.practice, params.seed)
        self._vendor: dict[int, tuple[IO[str], Any]] = {}
        self._vendor_sample: dict[int, Appointment] = {}  # a kept appointment per yearly file, to duplicate
        self._fhir_sample: Appointment | None = None
        self._slot_n = 0
        self._doc_n = 0
        self._referral_n = 0
        self._broken_call_day = add_months(params.start, params.months // 2)
        self._broken_call_written = False

    # -- run ------------------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> Summary:
        out, p = self.out, self.params
        self.fhir = FhirWriter(out, self.practice)
        self.fhir.directory()
        self.fhir.schedules(self.clock.at(p.start, 8 * 60), self.cutoff)
        (out / "billing").mkdir(parents=True, exist_ok=True)
        (out / "phones").mkdir(parents=True, exist_ok=True)
        self._north_fh, self._north = csv_files.open_csv(
            out / "billing" / "north_transactions.csv", csv_files.SYNTHEA_COLUMNS
        )
        self._payments_fh, self._payments = csv_files.open_csv(
            out / "billing" / "patient_payments.csv", csv_files.SYNTHEA_COLUMNS
        )
        self._portal_fh, self._portal = csv_files.open_csv(
            out / "portal" / "portal_messages.csv", csv_files.PORTAL_COLUMNS
        )
        self._queue_fh = open(out / "phones" / "queue_log", "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in run()
        try:
            for k in range(p.months):
                first = add_months(p.start, k)
                for d in days(first, min(month_end(first), p.end)):
                    self._day(d)
                self.access.generated_through = min(month_end(first), p.end)
                if k >= LOOKAHEAD_MONTHS:
                    self._finish_access(add_months(p.start, k - LOOKAHEAD_MONTHS))
                self._flush_billing(month_end(first))
                if progress is not None:
                    progress(f"{first:%Y-%m}", k + 1, p.months)
            for k in range(max(0, p.months - LOOKAHEAD_MONTHS), p.months):
                self._finish_access(add_months(p.start, k))
            self._flush_billing(date.max)
            self._dirty_records()
        finally:
            for fh in (self._north_fh, self._payments_fh, self._portal_fh, self._queue_fh):
                fh.close()
            for fh, _ in self._vendor.values():
                fh.close()
            self.fhir.close()
        self._count_files()
        self._write_truth()
        (out / "ASSUMPTIONS.md").write_text(
            resources.files("sample_data").joinpath("ASSUMPTIONS.md").read_text(encoding="utf-8"), encoding="utf-8"
        )
        return self.summary

    def _day(self, d: date) -> None:
        seed = self.params.seed
        for prov in self.practice.providers:
            slots = self.days.template(prov, d)
            if slots is None:
                continue
            ehr = self.practice.locations[prov.location].system == "ehr"
            if ehr:
                self.access.add_day(slots)
            rng = random.Random(f"{seed}:day:{prov.index}:{d.isoformat()}")
            appts = self.days.day(rng, prov, slots)
            side = random.Random(f"{seed}:after:{prov.index}:{d.isoformat()}")
            for a in appts:
                self._appointment(a, ehr, side)
        if d.weekday() < 5:
            rng = random.Random(f"{seed}:phones:{d.isoformat()}")
            calls = phones.simulate_day(
                rng, self.clock, d, self.params.n_providers, SEASON[d.month], self._counters["calls"]
            )
            self._calls(calls, d)
        for loc in range(len(self.practice.locations)):
            rng = random.Random(f"{seed}:portal:{loc}:{d.isoformat()}")
            provs = [(pr.index, pr.runs_late) for pr in self.practice.providers_at(loc)]
            for msg in portal.messages_for_day(
                rng, self.clock, d, loc, provs, self.practice.patients_at(loc), self._counters["portal"], self.cutoff
            ):
                self.truth.portal(msg)
                self._portal.writerow(csv_files.portal_row(self.practice, msg))

    def _appointment(self, a: Appointment, ehr: bool, rng: random.Random) -> None:
        self.summary.appointments += 1
        if ehr:
            self.access.add_appointment(a)
        self.truth.appointment(a)
        self.truth.encounter(a)
        if ehr:
            self.fhir.write("Appointment", self.fhir.appointment(a))
            enc = self.fhir.encounter(a)
            if enc is not None:
                self.fhir.write("Encounter", enc)
                self._doc_n += 1
                doc = self.fhir.document(a, f"doc{self._doc_n:08d}")
                if doc is not None:
                    self.fhir.write("DocumentReference", doc)
            if self._fhir_sample is None and a.status == "fulfilled" and not a.telehealth:
                self._fhir_sample = a
        else:
            self._vendor_appointment(a)
        if a.status != "fulfilled":
            return
        for claim in self.biller.claim(rng, a):
            self.summary.claims += 1
            self.truth.claim(claim)
            self._route(claim, ehr)
        self._referral_n += 1
        ref = referrals.refer(rng, a, self._referral_n, self.cutoff)
        if ref is not None and not a.telehealth:
            self.truth.referral(ref)
            self.fhir.referral(ref)

    def _vendor_appointment(self, a: Appointment) -> None:
        start = self.clock.local_date(a.start)
        self._vendor_writer(start.year).writerow(self._vendor_rows.row(a))
        if a.status == "fulfilled" and start.year not in self._vendor_sample:
            self._vendor_sample[start.year] = a
        previous = start.year - 1
        if start.month == 1 and start.day <= OVERLAP_DAYS and previous >= self.params.start.year:
            exported = self.clock.at(date(start.year, 1, 1), 6 * 60)
            if (
                a.booked < exported
                and a.status != "entered_in_error"
                and (a.cancelled is None or a.cancelled >= exported)
            ):
                self._vendor_writer(previous).writerow(self._vendor_rows.row(a, as_of_export=True))
                name = self._vendor_name(start.year)
                self.updates[name] = self.updates.get(name, 0) + 1

    def _vendor_name(self, year: int) -> str:
        return f"vendor/north_appointments_{year}.csv"

    def _vendor_writer(self, year: int) -> Any:
        if year not in self._vendor:
            self._vendor[year] = csv_files.open_csv(self.out / self._vendor_name(year), csv_files.VENDOR_COLUMNS)
        return self._vendor[year][1]

    def _route(self, claim: Claim, ehr: bool) -> None:
        end = self.params.end
        if not ehr:
            for row in self._synthea.rows(claim, end):
                self._north.writerow(row)
            return
        loc = claim.appointment.location
        for sub in claim.submissions:
            day = self.clock.local_date(sub.at)
            if day <= end:
                self._pending.claims[day.replace(day=1)][sub.at, loc].append((claim, sub))
        for r in claim.remittances:
            if r.paid_date <= end:
                self._pending.remits[claim.payer, r.paid_date.replace(day=1)][r.paid_date, loc].append((claim, r))
        if claim.patient_payments:
            for row, pay in zip(
                self._synthea.rows(claim, end, patient_only=True),
                [x for x in claim.patient_payments if x.posted <= end],
                strict=True,
            ):
                bucket = self._pending.payments[pay.posted.replace(day=1)]
                bucket.append((pay.posted, len(bucket), row))

    def _flush_billing(self, through: date) -> None:
        """Write the 837/835 files and patient payments of every month that can no longer change."""
        pending = self._pending
        for month in sorted(m for m in pending.claims if m <= through):
            batches = pending.claims.pop(month)
            ordered = [(at, loc, batches[at, loc]) for at, loc in sorted(batches)]
            path = self.out / "billing" / f"claims_{month:%Y-%m}.837"
            path.write_text(self._x12.claims_file(ordered), encoding="ascii", newline="")
        for payer, month in sorted(k for k in pending.remits if k[1] <= through):
            runs = pending.remits.pop((payer, month))
            ordered = [(paid, loc, runs[paid, loc]) for paid, loc in sorted(runs)]
            info = self.practice.payers[payer]
            path = self.out / "billing" / f"remits_{info.payer_id}_{month:%Y-%m}.835"
            path.write_text(self._x12.remits_file(info, ordered), encoding="ascii", newline="")
        for month in sorted(m for m in pending.payments if m <= through):
            for _, _, row in sorted(pending.payments.pop(month), key=lambda x: (x[0], x[1])):
                self._payments.writerow(row)

    def _finish_access(self, first: date) -> None:
        for provider, snapshot, days_to in self.access.finish_month(first, self.params.end, self._slot):
            self.truth.third_next_available(provider, snapshot, days_to)

    def _slot(self, s: FinishedSlot) -> None:
        self._slot_n += 1
        status = "busy-unavailable" if s.blocked else ("busy" if s.busy else "free")
        self.fhir.slot(f"sl{self._slot_n:09d}", s.provider, s.start, s.minutes, status)
        self.truth.slot(s.provider, s.start, s.minutes, s.blocked, s.busy)

    def _calls(self, calls: list[Any], d: date) -> None:
        lines: list[tuple[int, int, str]] = []
        for i, c in enumerate(calls):
            self.truth.call(c)
            self.summary.calls += 1
            for epoch, line in call_lines(c, complete_by_caller=i % 3 != 0):
                lines.append((epoch, len(lines), line))
        if not self._broken_call_written and d >= self._broken_call_day and calls:
            self._broken_call_written = True
            entered = calls[len(calls) // 2].entered + 7
            for epoch, line in broken_call_lines(f"{entered}.999999", "appointments", entered):
                lines.append((epoch, len(lines), line))
            self.rejects["phones/queue_log"] = 1
        lines.sort()
        self._queue_fh.writelines(line + "\n" for _, _, line in lines)

    # -- dirty records ----------------------------------------------------------------------------

    def _dirty_records(self) -> None:
        """The few broken records real exports carry, each a reject by a rule of docs/contracts.md."""
        sample = self._fhir_sample
        if sample is not None:
            missing = self.fhir.appointment(sample, drop_start=True)
            missing["id"] = "ap-err-0001"
            self.fhir.write("Appointment", missing)  # rule: appointment without start
            self.fhir.write(
                "Appointment", self.fhir.appointment(sample, status="noshow")
            )  # rule: conflicting duplicate
            self.rejects["fhir/Appointment.ndjson"] = 2
            enc = self.fhir.encounter(sample)
            assert enc is not None
            enc["id"] = "en-err-0001"
            del enc["appointment"]
            enc.pop("statusHistory", None)
            enc["period"] = {"start": enc["period"]["end"], "end": enc["period"]["start"]}
            self.fhir.write("Encounter", enc)  # rule: check-out before check-in
            self.rejects["fhir/Encounter.ndjson"] = 1
        for year, a in sorted(self._vendor_sample.items()):
            writer = self._vendor_writer(year)
            row = self._vendor_rows.row(a)
            no_start = list(row)
            no_start[0], no_start[1], no_start[2] = f"ERR{year}01", "", ""
            writer.writerow(no_start)  # rule: appointment without start
            backwards = list(row)
            backwards[0] = f"ERR{year}02"
            check_in, check_out = (
                csv_files.VENDOR_COLUMNS.index("Check In"),
                csv_files.VENDOR_COLUMNS.index("Check Out"),
            )
            backwards[check_in], backwards[check_out] = row[check_out], row[check_in]
            writer.writerow(backwards)  # rule: check-out before check-in
            writer.writerow(self._vendor_rows.row(a, status="noshow"))  # rule: conflicting duplicate id
            self.rejects[self._vendor_name(year)] = 3

    # -- output ---------------------------------------------------------------------------------

    def _count_files(self) -> None:
        for path in sorted(self.out.rglob("*")):
            if path.is_file():
                rel = path.relative_to(self.out).as_posix()
                with open(path, "rb") as fh:
                    self.summary.files[rel] = sum(1 for _ in fh)
                self.rejects.setdefault(rel, 0)

    def _write_truth(self) -> None:
        p = self.params
        truth = {
            "meta": {
                "seed": p.seed,
                "start": p.start.isoformat(),
                "end": p.end.isoformat(),
                "timezone": p.timezone,
                "months": p.months,
                "scale": p.scale,
                "providers": p.n_providers,
                "locations": [loc.code for loc in self.practice.locations],
                "process_change": {
                    "location": "EAST",
                    "date": p.process_change.isoformat(),
                    "what": "reminder calls start",
                },
                "notes": {
                    "days_in_ar": "value = 365 * numerator / denominator; numerator = A/R at month end, "
                    "denominator = adjusted charges posted in the 365 days ending that day",
                    "medians": "numerator and denominator are null; n counts the values",
                    "complete": "referral_completion_rate months whose end + 90 days is after meta.end are incomplete",
                },
            },
            "kpis": self.truth.rows(),
            "rejects": {k: self.rejects[k] for k in sorted(self.rejects) if k not in ("truth.json", "ASSUMPTIONS.md")},
            "updates": dict(sorted(self.updates.items())),
            "realism": self.truth.realism_summary(),
        }
        text = json.dumps(truth, sort_keys=True, indent=1, separators=(",", ": "))
        (self.out / "truth.json").write_text(text + "\n", encoding="utf-8")


def simulate(params: Params, out: Path, progress: Progress | None = None) -> Summary:
    """Simulate `params` into the directory `out` (created if missing) and return what was written."""
    out.mkdir(parents=True, exist_ok=True)
    return Simulation(params, out).run(progress)
