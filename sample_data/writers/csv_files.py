"""The CSV exports: NORTH's vendor appointment report, Synthea-layout ledgers, portal messages.

Lines follow the standard csv module's defaults (`\\r\\n` line ends, minimal quoting), as the
systems that produce such reports do. Rows are joined here rather than by `csv.writer`, which
costs ten times as much per row: the row builders quote the few free-text fields that can hold
a comma (`quote`), every other field is a code, number, id or date. The format tests check that
every line equals what `csv.writer` would write.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from decimal import Decimal

from sample_data.clock import Clock, utc_text
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
# the columns a Synthea transaction sets (the others are the claim line's)
_ID, _TYPE, _AMOUNT, _METHOD, _TRANSFERTYPE, _PAYMENTS = (
    SYNTHEA_COLUMNS.index(c) for c in ("ID", "TYPE", "AMOUNT", "METHOD", "TRANSFERTYPE", "PAYMENTS")
)
_ADJUSTMENTS, _TRANSFERS, _OUTSTANDING, _INSURANCE, _POSTDATE, _LINENOTE = (
    SYNTHEA_COLUMNS.index(c)
    for c in ("ADJUSTMENTS", "TRANSFERS", "OUTSTANDING", "PATIENTINSURANCEID", "POSTDATE", "LINENOTE")
)
# Synthea claims.csv: one row per claim, with its payer (PRIMARYPATIENTINSURANCEID holds the payer's
# id, as in Synthea's own files); the amounts are the claim's charges in the transactions file.
SYNTHEA_CLAIM_COLUMNS = (
    "Id",
    "PATIENTID",
    "PROVIDERID",
    "PRIMARYPATIENTINSURANCEID",
    "SECONDARYPATIENTINSURANCEID",
    "DEPARTMENTID",
    "PATIENTDEPARTMENTID",
    *(f"DIAGNOSIS{i}" for i in range(1, 9)),
    "REFERRINGPROVIDERID",
    "APPOINTMENTID",
    "CURRENTILLNESSDATE",
    "SERVICEDATE",
    "SUPERVISINGPROVIDERID",
    "STATUS1",
    "STATUS2",
    "STATUSP",
    "OUTSTANDING1",
    "OUTSTANDING2",
    "OUTSTANDINGP",
    "LASTBILLEDDATE1",
    "LASTBILLEDDATE2",
    "LASTBILLEDDATEP",
    "HEALTHCARECLAIMTYPEID1",
    "HEALTHCARECLAIMTYPEID2",
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
CSV_HEADERS = {  # export file (relative path, `*` for the year) -> columns
    "vendor/north_appointments_*.csv": VENDOR_COLUMNS,
    "billing/north_transactions.csv": SYNTHEA_COLUMNS,
    "billing/patient_payments.csv": SYNTHEA_COLUMNS,
    "billing/north_claims.csv": SYNTHEA_CLAIM_COLUMNS,
    "portal/portal_messages.csv": PORTAL_COLUMNS,
}
# "h:mm AM" for every minute of a day, as the vendor system prints times
_CLOCK_TIMES = tuple(f"{(m // 60 - 1) % 12 + 1}:{m % 60:02d} {'AM' if m < 720 else 'PM'}" for m in range(24 * 60))


def quote(field: str) -> str:
    """A field as `csv.writer` (QUOTE_MINIMAL) writes it."""
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def line(fields: list[str]) -> str:
    """One CSV line of fields that are already quoted where they need it."""
    return ",".join(fields) + "\r\n"


_NOTES = {code: quote(name) for code, name in PROCEDURE_NAMES.items()}  # Synthea NOTES, quoted


def vendor_path(year: int) -> str:
    return f"vendor/north_appointments_{year}.csv"


def header(columns: tuple[str, ...]) -> str:
    """The header line of a CSV export, quoted as the csv module quotes every row."""
    text = io.StringIO()
    csv.writer(text).writerow(columns)
    return text.getvalue()


def _us_date(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


class VendorRows:
    """Rows of the NORTH appointment report."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock

    def row(self, a: Appointment, *, status: str | None = None, as_of_export: bool = False) -> list[str]:
        """The row for `a`; `as_of_export` renders an upcoming appointment as still Scheduled."""
        p = self.practice
        prov = p.providers[a.provider]
        person = p.person(a.patient)
        start_date, start_minute = self.clock.local_minute(a.start)
        status = status or ("booked" if as_of_export else a.status)
        enc = a.encounter if status == "fulfilled" else None
        times = ["", "", "", "", ""]
        if enc is not None:
            times = [
                _CLOCK_TIMES[self.clock.local_minute(t)[1]] if t is not None else ""
                for t in (enc.checked_in, enc.roomed, enc.provider_start, enc.provider_end, enc.checked_out)
            ]
        cancelled = status == "cancelled"
        reason = ""
        if cancelled and a.initiator is not None:
            reason = "Rescheduled" if a.rescheduled else VENDOR_CANCEL[a.initiator]
        payer = p.payers[a.payer]
        return [
            a.appointment_id,
            _us_date(start_date),
            _CLOCK_TIMES[start_minute],
            str(a.minutes),
            quote(f"{prov.family}, {prov.given} MD"),
            prov.npi,
            "North Clinic Main",
            p.patient_mrn(a.patient),
            quote(f"{person.family.upper()}, {person.given}"),
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
        day, minute = self.clock.local_minute(epoch)
        return f"{_us_date(day)} {_CLOCK_TIMES[minute]}"


class SyntheaRows:
    """Synthea `claims_transactions.csv` rows (plus POSTDATE) for a claim, up to the data's end."""

    def __init__(self, practice: Practice, seed: int, tag: str) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        # UUID-shaped ids like Synthea's: a per-seed prefix, the location's tag and a sequence
        # (uuid5 per row is too slow at scale)
        ns = uuid.uuid5(uuid.NAMESPACE_URL, f"clinic-kpis-sample:{seed}")
        self._row_prefix = str(uuid.uuid5(ns, "rows"))[:24] + tag
        self._patient_prefix = str(uuid.uuid5(ns, "patients"))[:24]
        self._places = {loc.code: str(uuid.uuid5(ns, loc.code)) for loc in practice.locations}
        self._n = 0

    def _patient_id(self, patient: int) -> str:
        return f"{self._patient_prefix}{patient:012x}"

    def claim_row(self, claim: Claim, end: date) -> list[str]:
        """The claims.csv row of a claim: billed to its payer (to the patient when self-pay)."""
        p = self.practice
        a = claim.appointment
        assert a.encounter is not None
        npi, code = p.providers[a.provider].npi, p.locations[a.location].code
        payer = p.payers[claim.payer]
        billed = utc_text(claim.submissions[0].at)
        self_pay = payer.payer_class == "self_pay"
        settled = any(r.paid_date <= end for r in claim.remittances) or self_pay
        service = utc_text(a.encounter.checked_in)
        return [
            claim.claim_id,
            self._patient_id(a.patient),
            npi,
            payer.name if self_pay else payer.payer_id,  # the vendor export's "Self Pay" payer, or the 837 id
            "",
            code,
            code,
            *([""] * 8),
            "",
            a.appointment_id,
            service,
            service,
            npi,
            "" if self_pay else ("CLOSED" if settled else "BILLED"),
            "",
            "BILLED",
            "0",
            "0",
            "0",
            "" if self_pay else billed,
            "",
            billed if self_pay else "",
            "1",
            "",
        ]

    def rows(self, claim: Claim, end: date, *, patient_only: bool = False) -> list[list[str]]:
        p = self.practice
        a = claim.appointment
        prov = p.providers[a.provider]
        loc = p.locations[a.location]
        enc = a.encounter
        assert enc is not None
        lines = claim.submissions[0].lines
        self_pay = p.payers[claim.payer].payer_class == "self_pay"
        insurance = "" if self_pay else p.member_id(a.patient)
        # one template per claim line, every column filled but those a transaction sets
        claim_id, patient = claim.claim_id, self._patient_id(a.patient)
        start, end_text, place = utc_text(enc.checked_in), utc_text(enc.checked_out), self._places[loc.code]
        bases = [
            [
                "",  # ID
                claim_id,  # CLAIMID
                str(i + 1),  # CHARGEID
                patient,  # PATIENTID
                "",  # TYPE
                "",  # AMOUNT
                "",  # METHOD
                start,  # FROMDATE
                end_text,  # TODATE
                place,  # PLACEOFSERVICE
                ln.procedure,  # PROCEDURECODE
                ln.modifier,  # MODIFIER1
                "",  # MODIFIER2
                "1",  # DIAGNOSISREF1
                "",  # DIAGNOSISREF2
                "",  # DIAGNOSISREF3
                "",  # DIAGNOSISREF4
                "1",  # UNITS
                loc.code,  # DEPARTMENTID
                _NOTES[ln.procedure],  # NOTES
                f"{ln.charge:.2f}",  # UNITAMOUNT
                "",  # TRANSFEROUTID
                "",  # TRANSFERTYPE
                "",  # PAYMENTS
                "",  # ADJUSTMENTS
                "",  # TRANSFERS
                "",  # OUTSTANDING
                a.appointment_id,  # APPOINTMENTID
                "",  # LINENOTE
                "",  # PATIENTINSURANCEID
                "1",  # FEESCHEDULEID
                prov.npi,  # PROVIDERID
                prov.npi,  # SUPERVISINGPROVIDERID
                "",  # POSTDATE
            ]
            for i, ln in enumerate(lines)
        ]

        def row(kind: str, line: int, posted: date) -> list[str]:
            self._n += 1
            out = bases[line].copy()
            out[_ID], out[_TYPE], out[_POSTDATE] = f"{self._row_prefix}{self._n:010x}", kind, posted.isoformat()
            return out

        out: list[list[str]] = []
        if not patient_only:
            posted = self.clock.local_date(claim.submissions[0].at)
            for i, ln in enumerate(lines if posted <= end else ()):  # a desk payment may come before the charge
                r = row("CHARGE", i, posted)
                r[_AMOUNT] = r[_OUTSTANDING] = f"{ln.charge:.2f}"
                r[_TRANSFERTYPE] = "p" if self_pay else "1"
                r[_PAYMENTS] = r[_ADJUSTMENTS] = "0.00"
                out.append(r)
            for rem in claim.remittances:
                if rem.paid_date > end:
                    continue
                for i, ln in enumerate(rem.lines):
                    co = sum((x.amount for x in rem.adjustments if x.line == i and x.group == "CO"), ZERO)
                    pr = sum((x.amount for x in rem.adjustments if x.line == i and x.group == "PR"), ZERO)
                    r = row("PAYMENT", i, rem.paid_date)
                    r[_METHOD], r[_PAYMENTS], r[_ADJUSTMENTS] = "ECHECK", f"{rem.paid[i]:.2f}", f"{co:.2f}"
                    r[_OUTSTANDING], r[_INSURANCE] = f"{ln.charge - rem.paid[i] - co:.2f}", insurance
                    out.append(r)
                    if pr > 0:
                        r = row("TRANSFEROUT", i, rem.paid_date)
                        r[_TRANSFERTYPE], r[_TRANSFERS], r[_OUTSTANDING] = "1", f"{pr:.2f}", "0.00"
                        r[_INSURANCE] = insurance
                        out.append(r)
                        r = row("TRANSFERIN", i, rem.paid_date)
                        r[_AMOUNT], r[_TRANSFERTYPE], r[_OUTSTANDING] = f"{pr:.2f}", "p", f"{pr:.2f}"
                        out.append(r)
        for pay in claim.patient_payments:
            if pay.posted <= end:
                r = row("PAYMENT", 0, pay.posted)
                method = "CHECK" if pay.method == "COLLECTION" else pay.method
                r[_METHOD], r[_PAYMENTS], r[_ADJUSTMENTS] = method, f"{pay.amount:.2f}", "0.00"
                if pay.method == "COLLECTION":
                    r[_LINENOTE] = "paid through the collection agency"
                out.append(r)
        for w in claim.writeoffs:
            if w.posted <= end:
                # a patient balance adjusted off without payment (Synthea's ADJUSTMENT, method SYSTEM)
                r = row("ADJUSTMENT", 0, w.posted)
                r[_METHOD], r[_TRANSFERTYPE] = "SYSTEM", "p"
                r[_PAYMENTS], r[_ADJUSTMENTS], r[_OUTSTANDING] = "0.00", f"{w.amount:.2f}", "0.00"
                r[_LINENOTE] = "bad debt write-off"
                out.append(r)
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
