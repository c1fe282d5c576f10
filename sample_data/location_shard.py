"""One location's practice over the whole run: schedules, visits, billing, referrals and portal.

A location depends on no other (its providers, patients, random streams and id sequences are
its own), so each is simulated as a shard, in this process or another. It advances one step
at a time (a month, then a final step), writing the step's exports into part files
(`parts.py`) and its events into its own Truth. Memory stays bounded: only what a later month
can still change is held (the slot window for third-next-available, and billing events dated
after the month being simulated).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date
from pathlib import Path

from sample_data import portal, referrals
from sample_data.access import LOOKAHEAD_MONTHS, AccessTracker
from sample_data.billing import Biller
from sample_data.clock import add_months, days, month_end
from sample_data.events import Appointment, Claim, Remittance, Submission
from sample_data.parts import PartInfo, Sink, StepParts, step_dir
from sample_data.practice import SLOT_MINUTES, Practice, location_tag
from sample_data.schedule import DaySimulator, Ids
from sample_data.shards import ShardResult
from sample_data.truth import Truth
from sample_data.writers import csv_files
from sample_data.writers.csv_files import vendor_path
from sample_data.writers.fhir import Fhir
from sample_data.writers.fhir import path as fhir_path
from sample_data.writers.x12 import X12Writer

OVERLAP_DAYS = 14  # a yearly vendor export also lists the next year's first two weeks, as still Scheduled
PAYMENTS = "billing/patient_payments.csv"
NORTH_LEDGER = "billing/north_transactions.csv"
NORTH_CLAIMS = "billing/north_claims.csv"  # Synthea claims.csv: the payer of each claim
PORTAL = "portal/portal_messages.csv"
FHIR_KINDS = ("Patient", "Slot", "Appointment", "Encounter", "DocumentReference", "ServiceRequest", "Task")


class _Billing:
    """Billing events waiting for their month's 837/835 files."""

    def __init__(self) -> None:
        self.claims: defaultdict[date, defaultdict[int, list[tuple[Claim, Submission]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.remits: defaultdict[tuple[int, date], defaultdict[date, list[tuple[Claim, Remittance]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.payments: defaultdict[date, list[tuple[date, int, str]]] = defaultdict(list)  # CSV lines


class LocationShard:
    """Simulates location `loc` step by step; `index` is its place in the assembly order."""

    def __init__(self, practice: Practice, loc: int, index: int, parts: Path) -> None:
        self.practice = practice
        self.params = practice.params
        self.clock = practice.clock
        self.loc = loc
        self.index = index  # the shard's place in the assembly order
        self.parts = parts
        self.ehr = practice.locations[loc].system == "ehr"
        self.providers = practice.providers_at(loc)
        self.tag = location_tag(loc)
        self.cutoff = practice.cutoff
        self.ids = Ids(self.tag)
        self.days = DaySimulator(practice, self.ids, self.cutoff)
        self.access = AccessTracker(practice) if self.ehr else None
        self.biller = Biller(practice, self.tag)
        self.truth = Truth(practice)
        self.result = ShardResult()
        self.fhir = Fhir(practice)
        self.x12 = X12Writer(practice, self.tag)
        self._pending = _Billing()
        self._portal_counter = [0]
        self._vendor_rows = csv_files.VendorRows(practice)
        self._synthea = csv_files.SyntheaRows(practice, self.params.seed, self.tag)
        self._vendor_sample: dict[int, Appointment] = {}  # a kept appointment per yearly file, to duplicate
        self._fhir_sample: Appointment | None = None
        self._numbers = {"slot": 0, "doc": 0, "referral": 0}
        self._out = StepParts(parts)
        self._fhir_out: dict[str, Sink] = {}

    # -- steps ----------------------------------------------------------------------------------

    def step(self, k: int) -> dict[str, PartInfo]:
        """Simulate month `k` (or, for k = months, finish the run) and return the step's parts."""
        p = self.params
        self._out = StepParts(step_dir(self.parts, k, self.index))
        self._fhir_out = {kind: self._out.sink(fhir_path(kind)) for kind in FHIR_KINDS}
        if k == 0:
            patients = self._fhir_out["Patient"]
            for i in self.practice.patients_at(self.loc):
                patients.write(self.fhir.patient(i))
        if k < p.months:
            first = add_months(p.start, k)
            for d in days(first, min(month_end(first), p.end)):
                self._day(d)
            if self.access is not None:
                self.access.generated_through = min(month_end(first), p.end)
                if k >= LOOKAHEAD_MONTHS:
                    self._finish_access(add_months(p.start, k - LOOKAHEAD_MONTHS))
            self._flush_billing(month_end(first))
        else:
            if self.access is not None:
                for month in range(max(0, p.months - LOOKAHEAD_MONTHS), p.months):
                    self._finish_access(add_months(p.start, month))
            self._flush_billing(date.max)
            self._dirty_records()
            self.result.tallies = self.truth.tallies()
        return self._out.close()

    def _row(self, rel: str, fields: list[str]) -> None:
        """One CSV row (fields quoted where needed, see `csv_files.line`)."""
        self._out.sink(rel).write(csv_files.line(fields))

    # -- a day ----------------------------------------------------------------------------------

    def _day(self, d: date) -> None:
        seed = self.params.seed
        for prov in self.providers:
            slots = self.days.template(prov, d)
            if slots is None:
                continue
            if self.access is not None:
                self.access.add_day(slots)
            rng = random.Random(f"{seed}:day:{prov.index}:{d.isoformat()}")
            appts = self.days.day(rng, prov, slots)
            side = random.Random(f"{seed}:after:{prov.index}:{d.isoformat()}")
            for a in appts:
                self._appointment(a, side)
        rng = random.Random(f"{seed}:portal:{self.loc}:{d.isoformat()}")
        provs = [(pr.index, pr.runs_late) for pr in self.providers]
        patients = self.practice.patients_at(self.loc)
        messages = portal.messages_for_day(
            rng, self.clock, d, self.loc, provs, patients, self._portal_counter, self.cutoff
        )
        for msg in messages:
            self.truth.portal(msg)
            self._row(PORTAL, csv_files.portal_row(self.practice, msg))

    def _appointment(self, a: Appointment, rng: random.Random) -> None:
        self.result.appointments += 1
        self.truth.appointment(a)
        self.truth.encounter(a)
        if self.ehr:
            assert self.access is not None
            self.access.add_appointment(a)
            self._fhir_out["Appointment"].write(self.fhir.appointment(a))
            enc = self.fhir.encounter(a)
            if enc is not None:
                self._fhir_out["Encounter"].write(enc)
                doc = self.fhir.document(a, f"doc{self.tag}{self._next('doc'):08d}")
                if doc is not None:
                    self._fhir_out["DocumentReference"].write(doc)
            if self._fhir_sample is None and a.status == "fulfilled" and not a.telehealth:
                self._fhir_sample = a
        else:
            self._vendor_appointment(a)
        if a.status != "fulfilled":
            return
        for claim in self.biller.claim(rng, a):
            self.result.claims += 1
            self.truth.claim(claim)
            self._route(claim)
        number = f"{self.tag}{self._next('referral'):08d}"
        ref = referrals.refer(rng, a, number, self.cutoff)
        if ref is not None and not a.telehealth:
            self.truth.referral(ref)
            service_request, task = self.fhir.referral(ref)
            self._fhir_out["ServiceRequest"].write(service_request)
            self._fhir_out["Task"].write(task)

    def _next(self, kind: str) -> int:
        self._numbers[kind] += 1
        return self._numbers[kind]

    def _vendor_appointment(self, a: Appointment) -> None:
        start = self.clock.local_date(a.start)
        self._row(vendor_path(start.year), self._vendor_rows.row(a))
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
                self._row(vendor_path(previous), self._vendor_rows.row(a, as_of_export=True))
                name = vendor_path(start.year)
                self.result.updates[name] = self.result.updates.get(name, 0) + 1

    # -- billing --------------------------------------------------------------------------------

    def _route(self, claim: Claim) -> None:
        end = self.params.end
        if not self.ehr:
            for row in self._synthea.rows(claim, end):
                self._row(NORTH_LEDGER, row)
            if self.clock.local_date(claim.submissions[0].at) <= end:
                self._row(NORTH_CLAIMS, self._synthea.claim_row(claim, end))
            return
        for sub in claim.submissions:
            day = self.clock.local_date(sub.at)
            if day <= end:
                self._pending.claims[day.replace(day=1)][sub.at].append((claim, sub))
        for r in claim.remittances:
            if r.paid_date <= end:
                self._pending.remits[claim.payer, r.paid_date.replace(day=1)][r.paid_date].append((claim, r))
        if claim.patient_payments or claim.writeoffs:
            for row in self._synthea.rows(claim, end, patient_only=True):
                posted = date.fromisoformat(row[csv_files.SYNTHEA_COLUMNS.index("POSTDATE")])
                bucket = self._pending.payments[posted.replace(day=1)]
                bucket.append((posted, len(bucket), csv_files.line(row)))

    def _flush_billing(self, through: date) -> None:
        """Write the 837/835 transactions and patient payments of every month that can no longer change."""
        pending = self._pending
        for month in sorted(m for m in pending.claims if m <= through):
            batches = pending.claims.pop(month)
            ordered = [(at, self.loc, batches[at]) for at in sorted(batches)]
            rel = f"billing/claims_{month:%Y-%m}.837"
            self._out.x12(rel, self.x12.claims(ordered), len(ordered), ordered[0][0])
        for payer, month in sorted(k for k in pending.remits if k[1] <= through):
            runs = pending.remits.pop((payer, month))
            ordered_runs = [(paid, self.loc, runs[paid]) for paid in sorted(runs)]
            info = self.practice.payers[payer]
            rel = f"billing/remits_{info.payer_id}_{month:%Y-%m}.835"
            dated = self.clock.at(ordered_runs[0][0], 6 * 60)
            self._out.x12(rel, self.x12.remits(info, ordered_runs), len(ordered_runs), dated)
        for month in sorted(m for m in pending.payments if m <= through):
            sink = self._out.sink(PAYMENTS)
            for _, _, text in sorted(pending.payments.pop(month), key=lambda x: (x[0], x[1])):
                sink.write(text)

    # -- access ---------------------------------------------------------------------------------

    def _finish_access(self, first: date) -> None:
        assert self.access is not None
        for provider, snapshot, days_to in self.access.finish_month(first, self.params.end, self._slot):
            self.truth.third_next_available(provider, snapshot, days_to)

    def _slot(self, provider: int, start: int, blocked: bool, busy: bool) -> None:
        status = "busy-unavailable" if blocked else ("busy" if busy else "free")
        slot_id = f"sl{self.tag}{self._next('slot'):09d}"
        self._fhir_out["Slot"].write(self.fhir.slot(slot_id, provider, start, SLOT_MINUTES, status))
        self.truth.slot(provider, start, SLOT_MINUTES, blocked, busy)

    # -- dirty records ----------------------------------------------------------------------------

    def _dirty_records(self) -> None:
        """The few broken records real exports carry, each a reject by a rule of docs/contracts.md.

        The FHIR ones come from the first location (EAST, always on the EHR), the vendor ones
        from NORTH's yearly files.
        """
        sample = self._fhir_sample
        if self.loc == 0 and sample is not None:
            appointments = self._fhir_out["Appointment"]
            appointments.write(self.fhir.appointment(sample, drop_start=True, resource_id="ap-err-0001"))
            appointments.write(self.fhir.appointment(sample, status="noshow"))  # conflicting duplicate
            self.result.rejects[fhir_path("Appointment")] = 2
            self._fhir_out["Encounter"].write(self.fhir.backwards_encounter(sample, "en-err-0001"))
            self.result.rejects[fhir_path("Encounter")] = 1
        for year, a in sorted(self._vendor_sample.items()):
            rel = vendor_path(year)
            row = self._vendor_rows.row(a)
            no_start = list(row)
            no_start[0], no_start[1], no_start[2] = f"ERR{year}01", "", ""
            self._row(rel, no_start)  # rule: appointment without start
            backwards = list(row)
            backwards[0] = f"ERR{year}02"
            check_in, check_out = (
                csv_files.VENDOR_COLUMNS.index("Check In"),
                csv_files.VENDOR_COLUMNS.index("Check Out"),
            )
            backwards[check_in], backwards[check_out] = row[check_out], row[check_in]
            self._row(rel, backwards)  # rule: check-out before check-in
            self._row(rel, self._vendor_rows.row(a, status="noshow"))  # rule: conflicting duplicate id
            self.result.rejects[vendor_path(year)] = 3
