"""The CSV exports: NORTH's vendor appointment report, Synthea-layout ledgers, portal messages.

Written with the standard csv module (`\\r\\n` line ends, minimal quoting), as the systems
that produce such reports do.
"""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sample_data.clock import Clock
from sample_data.events import Appointment, Claim, PortalMessage
from sample_data.practice import Practice

VENDOR_COLUMNS = (
    "Appt ID",
    "Appt Date",
    "Appt Time",
    "Duration",
    "Provider",
    "Provider NPI",
    "Location",
    "Patient MRN",
    "Patient Name",
    "DOB",
    "Home Phone",
    "Visit Type",
    "Status",
    "Created",
    "Cancelled",
    "Cancel Reason",
    "Check In",
    "Roomed",
    "Provider In",
    "Provider Out",
    "Check Out",
    "Insurance",
    "Rebooked From",
)
VENDOR_STATUS = {
    "booked": "Scheduled",
    "fulfilled": "Checked Out",
    "noshow": "No Show",
    "cancelled": "Cxl",
    "entered_in_error": "Error",
}
VENDOR_VISIT = {
    "new": "New Patient",
    "followup": "Follow Up",
    "annual": "Annual",
    "sick": "Sick",
    "procedure": "Procedure",
}
VENDOR_CANCEL = {"patient": "Patient", "provider": "Provider", "practice": "Office"}
SYNTHEA_COLUMNS = (
    "ID",
    "CLAIMID",
    "CHARGEID",
    "PATIENTID",
    "TYPE",
    "AMOUNT",
    "METHOD",
    "FROMDATE",
    "TODATE",
    "PLACEOFSERVICE",
    "PROCEDURECODE",
    "MODIFIER1",
    "MODIFIER2",
    "DIAGNOSISREF1",
    "DIAGNOSISREF2",
    "DIAGNOSISREF3",
    "DIAGNOSISREF4",
    "UNITS",
    "DEPARTMENTID",
    "NOTES",
    "UNITAMOUNT",
    "TRANSFEROUTID",
    "TRANSFERTYPE",
    "PAYMENTS",
    "ADJUSTMENTS",
    "TRANSFERS",
    "OUTSTANDING",
    "APPOINTMENTID",
    "LINENOTE",
    "PATIENTINSURANCEID",
    "FEESCHEDULEID",
    "PROVIDERID",
    "SUPERVISINGPROVIDERID",
    "POSTDATE",
)
PORTAL_COLUMNS = (
    "message_id",
    "thread_id",
    "patient_mrn",
    "location",
    "provider_npi",
    "category",
    "received_at",
    "auto_reply_at",
    "first_staff_reply_at",
)
PROCEDURE_NAMES = {
    "99203": "Office visit, new patient, low",
    "99204": "Office visit, new patient, moderate",
    "99212": "Office visit, established, straightforward",
    "99213": "Office visit, established, low",
    "99214": "Office visit, established, moderate",
    "99396": "Preventive visit, 40-64 years",
    "17110": "Destruction of benign lesions",
}
ZERO = Decimal("0.00")


def _clock_time(local: datetime) -> str:
    return local.strftime("%I:%M %p").lstrip("0")


def _us_date(d: date) -> str:
    return d.strftime("%m/%d/%Y")


def open_csv(path: Path, columns: tuple[str, ...]) -> tuple[IO[str], Any]:
    """A CSV file open for streaming rows, its header written; the caller closes the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - streamed into for the whole run
    writer = csv.writer(fh)
    writer.writerow(columns)
    return fh, writer


class VendorRows:
    """Rows of the NORTH appointment report."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock

    def row(self, a: Appointment, *, status: str | None = None, as_of_export: bool = False) -> list[str]:
        """The row for `a`; `as_of_export` renders an upcoming appointment as still Scheduled."""
        p, clock = self.practice, self.clock
        prov = p.providers[a.provider]
        person = p.person(a.patient)
        start = clock.local(a.start)
        status = status or ("booked" if as_of_export else a.status)
        enc = a.encounter if status == "fulfilled" else None
        times = ["", "", "", "", ""]
        if enc is not None:
            times = [
                _clock_time(clock.local(t)) if t is not None else ""
                for t in (enc.checked_in, enc.roomed, enc.provider_start, enc.provider_end, enc.checked_out)
            ]
        cancelled = status == "cancelled"
        reason = ""
        if cancelled and a.initiator is not None:
            reason = "Rescheduled" if a.rescheduled else VENDOR_CANCEL[a.initiator]
        payer = p.payers[a.payer]
        return [
            a.appointment_id,
            _us_date(start.date()),
            _clock_time(start),
            str(a.minutes),
            f"{prov.family}, {prov.given} MD",
            prov.npi,
            "North Clinic Main",
            p.patient_mrn(a.patient),
            f"{person.family.upper()}, {person.given}",
            _us_date(person.birth_date),
            f"({person.phone[:3]}) {person.phone[3:6]}-{person.phone[6:]}",
            VENDOR_VISIT[a.visit],
            VENDOR_STATUS[status],
            self._stamp(a.booked),
            self._stamp(a.cancelled) if cancelled and a.cancelled is not None else "",
            reason,
            *times,
            "Self Pay" if payer.payer_class == "self_pay" else payer.name,
            a.rebooked_from or "",
        ]

    def _stamp(self, epoch: int) -> str:
        local = self.clock.local(epoch)
        return f"{_us_date(local.date())} {_clock_time(local)}"


class SyntheaRows:
    """Synthea `claims_transactions.csv` rows (plus POSTDATE) for a claim, up to the data's end."""

    def __init__(self, practice: Practice, seed: int) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        # UUID-shaped ids like Synthea's: a per-seed prefix and a sequence (uuid5 per row is too slow at scale)
        ns = uuid.uuid5(uuid.NAMESPACE_URL, f"clinic-kpis-sample:{seed}")
        self._row_prefix = str(uuid.uuid5(ns, "rows"))[:24]
        self._patient_prefix = str(uuid.uuid5(ns, "patients"))[:24]
        self._places = {loc.code: str(uuid.uuid5(ns, loc.code)) for loc in practice.locations}
        self._n = 0

    def _id(self) -> str:
        self._n += 1
        return f"{self._row_prefix}{self._n:012x}"

    def _patient_id(self, patient: int) -> str:
        return f"{self._patient_prefix}{patient:012x}"

    def rows(self, claim: Claim, end: date, *, patient_only: bool = False) -> list[list[str]]:
        p = self.practice
        a = claim.appointment
        prov = p.providers[a.provider]
        loc = p.locations[a.location]
        payer = p.payers[claim.payer]
        enc = a.encounter
        assert enc is not None
        frm = datetime.fromtimestamp(enc.checked_in, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = datetime.fromtimestamp(enc.checked_out, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = claim.submissions[0].lines
        self_pay = payer.payer_class == "self_pay"
        insurance = "" if self_pay else p.member_id(a.patient)

        def row(kind: str, line: int, posted: date, **money: str) -> list[str]:
            ln = lines[line]
            values = {
                "ID": self._id(),
                "CLAIMID": claim.claim_id,
                "CHARGEID": str(line + 1),
                "PATIENTID": self._patient_id(a.patient),
                "TYPE": kind,
                "FROMDATE": frm,
                "TODATE": to,
                "PLACEOFSERVICE": self._places[loc.code],
                "PROCEDURECODE": ln.procedure,
                "MODIFIER1": ln.modifier,
                "DIAGNOSISREF1": "1",
                "UNITS": "1",
                "DEPARTMENTID": loc.code,
                "NOTES": PROCEDURE_NAMES[ln.procedure],
                "UNITAMOUNT": f"{ln.charge:.2f}",
                "APPOINTMENTID": a.appointment_id,
                "FEESCHEDULEID": "1",
                "PROVIDERID": prov.npi,
                "SUPERVISINGPROVIDERID": prov.npi,
                "POSTDATE": posted.isoformat(),
                **money,
            }
            return [values.get(c, "") for c in SYNTHEA_COLUMNS]

        out: list[list[str]] = []
        if not patient_only:
            posted = self.clock.local_date(claim.submissions[0].at)
            if posted > end:
                return out
            for i, ln in enumerate(lines):
                out.append(
                    row(
                        "CHARGE",
                        i,
                        posted,
                        AMOUNT=f"{ln.charge:.2f}",
                        TRANSFERTYPE="p" if self_pay else "1",
                        PAYMENTS="0.00",
                        ADJUSTMENTS="0.00",
                        OUTSTANDING=f"{ln.charge:.2f}",
                    )
                )
            for r in claim.remittances:
                if r.paid_date > end:
                    continue
                for i, ln in enumerate(r.lines):
                    co = sum((x.amount for x in r.adjustments if x.line == i and x.group == "CO"), ZERO)
                    pr = sum((x.amount for x in r.adjustments if x.line == i and x.group == "PR"), ZERO)
                    out.append(
                        row(
                            "PAYMENT",
                            i,
                            r.paid_date,
                            METHOD="ECHECK",
                            PAYMENTS=f"{r.paid[i]:.2f}",
                            ADJUSTMENTS=f"{co:.2f}",
                            OUTSTANDING=f"{ln.charge - r.paid[i] - co:.2f}",
                            PATIENTINSURANCEID=insurance,
                        )
                    )
                    if pr > 0:
                        out.append(
                            row(
                                "TRANSFEROUT",
                                i,
                                r.paid_date,
                                TRANSFERTYPE="1",
                                TRANSFERS=f"{pr:.2f}",
                                OUTSTANDING="0.00",
                                PATIENTINSURANCEID=insurance,
                            )
                        )
                        out.append(
                            row(
                                "TRANSFERIN",
                                i,
                                r.paid_date,
                                AMOUNT=f"{pr:.2f}",
                                TRANSFERTYPE="p",
                                OUTSTANDING=f"{pr:.2f}",
                            )
                        )
        for pay in claim.patient_payments:
            if pay.posted <= end:
                out.append(
                    row("PAYMENT", 0, pay.posted, METHOD=pay.method, PAYMENTS=f"{pay.amount:.2f}", ADJUSTMENTS="0.00")
                )
        return out


def portal_row(practice: Practice, m: PortalMessage) -> list[str]:
    iso = practice.clock.iso
    return [
        m.message_id,
        m.thread_id,
        practice.patient_mrn(m.patient),
        practice.locations[m.location].code,
        practice.providers[m.provider].npi,
        m.category,
        iso(m.received),
        iso(m.auto_reply) if m.auto_reply is not None else "",
        iso(m.staff_reply) if m.staff_reply is not None else "",
    ]
