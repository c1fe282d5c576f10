"""X12 005010 837P claim files and 835 remittance files.

Hand-written rather than built with an X12 library because the simulator needs exactly one
shape of each transaction, and a small explicit segment writer shows every element that
ingest will read (tests validate the result independently with pyx12). Separators: `*`
element, `:` component, `^` repetition, `~` + newline segment terminator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sample_data.clock import Clock
from sample_data.events import Claim, Remittance, Submission
from sample_data.practice import Payer, Practice

SUBMITTER_ID = "RCP0001"
CLEARINGHOUSE_ID = "CLEARWAYEDI"
DIAGNOSES = {"new": "Z0000", "followup": "I10", "annual": "Z0000", "sick": "J069", "procedure": "L821"}


def amount(x: Decimal) -> str:
    """X12 decimal: no trailing zeros, no '+', minus sign kept (e.g. 125, 12.5, -40.25)."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def seg(*elements: str) -> str:
    while elements and elements[-1] == "":
        elements = elements[:-1]
    return "*".join(elements) + "~\n"


@dataclass
class ControlNumbers:
    """Interchange/group control numbers, unique across every file of a run."""

    last: int = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _envelope(
    body: list[list[str]], *, kind: str, functional_id: str, version: str, when: datetime, control: int
) -> str:
    """ISA/GS around transaction bodies (segments without ST/SE), each wrapped in ST/SE with its count."""
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{SUBMITTER_ID:15}*ZZ*{CLEARINGHOUSE_ID:15}*"
        f"{when:%y%m%d}*{when:%H%M}*^*00501*{control:09d}*0*P*:~\n"
    )
    if kind == "835":
        isa = (
            f"ISA*00*{'':10}*00*{'':10}*ZZ*{CLEARINGHOUSE_ID:15}*ZZ*{SUBMITTER_ID:15}*"
            f"{when:%y%m%d}*{when:%H%M}*^*00501*{control:09d}*0*P*:~\n"
        )
    sender, receiver = (SUBMITTER_ID, CLEARINGHOUSE_ID) if kind == "837" else (CLEARINGHOUSE_ID, SUBMITTER_ID)
    parts = [
        isa,
        seg("GS", functional_id, sender, receiver, f"{when:%Y%m%d}", f"{when:%H%M}", str(control), "X", version),
    ]
    for n, segments in enumerate(body, start=1):
        st = f"{n:04d}"
        head = seg("ST", kind, st, version) if kind == "837" else seg("ST", kind, st)
        parts.append(head)
        parts.extend(segments)
        parts.append(seg("SE", str(len(segments) + 2), st))
    parts.append(seg("GE", str(len(body)), str(control)))
    parts.append(seg("IEA", "1", f"{control:09d}"))
    return "".join(parts)


class X12Writer:
    """Renders claim batches and payment runs into interchange text."""

    def __init__(self, practice: Practice, controls: ControlNumbers) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        self.controls = controls

    # -- 837P -------------------------------------------------------------------------------

    def claims_file(self, batches: list[tuple[int, int, list[tuple[Claim, Submission]]]]) -> str:
        """One interchange; one transaction per (submission instant, location) batch."""
        bodies = [self._claims_batch(at, loc, items) for at, loc, items in batches]
        return _envelope(
            bodies,
            kind="837",
            functional_id="HC",
            version="005010X222A1",
            when=self.clock.local(batches[0][0]),
            control=self.controls.next(),
        )

    def _claims_batch(self, at: int, loc_index: int, items: list[tuple[Claim, Submission]]) -> list[str]:
        p = self.practice
        loc = p.locations[loc_index]
        when = self.clock.local(at)
        out = [
            seg("BHT", "0019", "00", f"B{at}{loc_index}", f"{when:%Y%m%d}", f"{when:%H%M}", "CH"),
            seg("NM1", "41", "2", "RIVERSIDE COMMUNITY PHYSICIANS", "", "", "", "", "46", SUBMITTER_ID),
            seg("PER", "IC", "BILLING OFFICE", "TE", "4135550100"),
            seg("NM1", "40", "2", "CLEARWAY EDI", "", "", "", "", "46", CLEARINGHOUSE_ID),
            seg("HL", "1", "", "20", "1"),
            seg("NM1", "85", "2", loc.name.upper(), "", "", "", "", "XX", loc.billing_npi),
            seg("N3", loc.street.upper()),
            seg("N4", loc.city.upper(), "MA", loc.postal_code + "1201"),
            seg("REF", "EI", loc.ein),
        ]
        for hl, (claim, sub) in enumerate(items, start=2):
            appt = claim.appointment
            payer = p.payers[claim.payer]
            person = p.person(appt.patient)
            prov = p.providers[appt.provider]
            pos = "10" if appt.telehealth else "11"
            out += [
                seg("HL", str(hl), "1", "22", "0"),
                seg("SBR", "P", "18", "", "", "", "", "", "", payer.sbr09),
                seg(
                    "NM1",
                    "IL",
                    "1",
                    person.family.upper(),
                    person.given.upper(),
                    "",
                    "",
                    "",
                    "MI",
                    p.member_id(appt.patient),
                ),
                seg("N3", person.street.upper()),
                seg("N4", person.city.upper(), person.state, person.postal_code),
                seg("DMG", "D8", f"{person.birth_date:%Y%m%d}", "F" if person.gender == "female" else "M"),
                seg("NM1", "PR", "2", payer.name.upper(), "", "", "", "", "PI", payer.payer_id),
                seg("CLM", claim.claim_id, amount(sub.billed), "", "", f"{pos}:B:{sub.frequency}", "Y", "A", "Y", "Y"),
            ]
            if sub.frequency in ("7", "8"):
                out.append(seg("REF", "F8", sub.payer_icn or ""))
            out += [
                seg("HI", f"ABK:{DIAGNOSES[appt.visit]}"),
                seg("NM1", "82", "1", prov.family.upper(), prov.given.upper(), "", "", "", "XX", prov.npi),
                seg("PRV", "PE", "PXC", prov.taxonomy),
                seg("NM1", "77", "2", loc.name.upper(), "", "", "", "", "XX", loc.billing_npi),
                seg("N3", loc.street.upper()),
                seg("N4", loc.city.upper(), "MA", loc.postal_code + "1201"),
                seg("REF", "LU", loc.code),
            ]
            for n, line in enumerate(sub.lines, start=1):
                code = f"HC:{line.procedure}" + (f":{line.modifier}" if line.modifier else "")
                out += [
                    seg("LX", str(n)),
                    seg("SV1", code, amount(line.charge), "UN", "1", "", "", "1"),
                    seg("DTP", "472", "D8", f"{claim.service_date:%Y%m%d}"),
                ]
        return out

    # -- 835 --------------------------------------------------------------------------------

    def remits_file(self, payer: Payer, runs: list[tuple[date, int, list[tuple[Claim, Remittance]]]]) -> str:
        """One interchange per payer and month; one transaction per payment (paid date, payee location)."""
        bodies = [self._payment(payer, paid, loc, items) for paid, loc, items in runs]
        first = runs[0][0]
        return _envelope(
            bodies,
            kind="835",
            functional_id="HP",
            version="005010X221A1",
            when=datetime(first.year, first.month, first.day, 6, 0),
            control=self.controls.next(),
        )

    def _payment(self, payer: Payer, paid: date, loc_index: int, items: list[tuple[Claim, Remittance]]) -> list[str]:
        p = self.practice
        loc = p.locations[loc_index]
        total = sum((r.total_paid for _, r in items), Decimal("0.00"))
        tin = f"1{int(payer.payer_id, 36) % 1_000_000_000:09d}"
        if total > 0:
            bpr = seg(
                "BPR",
                "I",
                amount(total),
                "C",
                "ACH",
                "CCP",
                "01",
                "011000015",
                "DA",
                "44556677",
                tin,
                "",
                "01",
                "021000021",
                "DA",
                "99887766",
                f"{paid:%Y%m%d}",
            )
        else:
            bpr = seg(
                "BPR", "H", amount(total), "C", "NON", "", "", "", "", "", "", "", "", "", "", "", f"{paid:%Y%m%d}"
            )
        out = [
            bpr,
            seg("TRN", "1", f"{payer.payer_id}{paid:%Y%m%d}{loc_index}", tin),
            seg("DTM", "405", f"{paid:%Y%m%d}"),
            seg("N1", "PR", payer.name.upper()),
            seg("N3", "PO BOX 7000"),
            seg("N4", "HARTFORD", "CT", "061017000"),
            seg("REF", "2U", payer.payer_id),
            seg("PER", "BL", "PROVIDER SERVICES", "TE", "8005550199"),
            seg("N1", "PE", loc.name.upper(), "XX", loc.billing_npi),
            seg("REF", "TJ", loc.ein),
            seg("LX", "1"),
        ]
        for claim, r in items:
            appt = claim.appointment
            person = p.person(appt.patient)
            prov = p.providers[appt.provider]
            out += [
                seg(
                    "CLP",
                    claim.claim_id,
                    r.status,
                    amount(r.charge),
                    amount(r.total_paid),
                    amount(r.patient_responsibility),
                    payer.clp06,
                    r.payer_icn,
                    "11",
                    "1",
                ),
                seg(
                    "NM1",
                    "QC",
                    "1",
                    person.family.upper(),
                    person.given.upper(),
                    "",
                    "",
                    "",
                    "MI",
                    p.member_id(appt.patient),
                ),
                seg("NM1", "82", "1", prov.family.upper(), prov.given.upper(), "", "", "", "XX", prov.npi),
                seg("DTM", "232", f"{claim.service_date:%Y%m%d}"),
            ]
            for i, line in enumerate(r.lines):
                code = f"HC:{line.procedure}" + (f":{line.modifier}" if line.modifier else "")
                out += [
                    seg("SVC", code, amount(line.charge), amount(r.paid[i]), "", "1"),
                    seg("DTM", "472", f"{claim.service_date:%Y%m%d}"),
                ]
                out += [seg("CAS", a.group, a.reason, amount(a.amount)) for a in r.adjustments if a.line == i]
                if r.status != "4":
                    allowed = line.charge - sum(
                        (a.amount for a in r.adjustments if a.line == i and a.group == "CO"), Decimal("0.00")
                    )
                    out.append(seg("AMT", "B6", amount(allowed)))
                out += [seg("LQ", "HE", code) for code in r.remarks]
        return out
