"""X12 005010 837P claim files and 835 remittance files.

Hand-written rather than built with an X12 library because the simulator needs exactly one
shape of each transaction, and a small explicit segment writer shows every element that
ingest will read (tests validate the result independently with pyx12). Separators: `*`
element, `:` component, `^` repetition, `~` + newline segment terminator.

Each location renders its own transaction sets (ST...SE, numbered with the location's tag so
they stay unique in a file); the interchange envelope around a file's sets (ISA/GS ... GE/IEA)
is written once the sets of every location are known (`interchange_header`/`_trailer`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache, partial

from sample_data.clock import Clock
from sample_data.events import Claim, Remittance, Submission
from sample_data.practice import Payer, Practice

SUBMITTER_ID = "RCP0001"
CLEARINGHOUSE_ID = "CLEARWAYEDI"
DIAGNOSES = {"new": "Z0000", "followup": "I10", "annual": "Z0000", "sick": "J069", "procedure": "L821"}
KINDS = {"837": ("HC", "005010X222A1"), "835": ("HP", "005010X221A1")}  # kind -> (functional id, version)
ZERO = Decimal("0.00")


@lru_cache(maxsize=8192)
def amount(x: Decimal) -> str:
    """X12 decimal: no trailing zeros, no '+', minus sign kept (e.g. 125, 12.5, -40.25)."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def seg(*elements: str) -> str:
    while elements and elements[-1] == "":
        elements = elements[:-1]
    return "*".join(elements) + "~\n"


def interchange_header(kind: str, when: datetime, control: int) -> str:
    """ISA and GS of a file of `kind` ("837" or "835"), dated `when` (local)."""
    sender, receiver = (SUBMITTER_ID, CLEARINGHOUSE_ID) if kind == "837" else (CLEARINGHOUSE_ID, SUBMITTER_ID)
    functional_id, version = KINDS[kind]
    isa = (
        f"ISA*00*{'':10}*00*{'':10}*ZZ*{sender:15}*ZZ*{receiver:15}*"
        f"{when:%y%m%d}*{when:%H%M}*^*00501*{control:09d}*0*P*:~\n"
    )
    gs = seg("GS", functional_id, sender, receiver, f"{when:%Y%m%d}", f"{when:%H%M}", str(control), "X", version)
    return isa + gs


def interchange_trailer(sets: int, control: int) -> str:
    """GE and IEA closing a file of `sets` transaction sets."""
    return seg("GE", str(sets), str(control)) + seg("IEA", "1", f"{control:09d}")


def transaction(kind: str, number: str, segments: list[str]) -> str:
    """ST, the body and SE (whose count includes ST and SE); an item of `segments` may hold several."""
    head = seg("ST", kind, number, KINDS[kind][1]) if kind == "837" else seg("ST", kind, number)
    body = "".join(segments)
    return head + body + seg("SE", str(body.count("~") + 2), number)


@lru_cache(maxsize=4096)
def _ccyymmdd(d: date) -> str:
    """An X12 D8 date (the same few hundred service dates recur on thousands of claims)."""
    return f"{d:%Y%m%d}"


def _procedure(procedure: str, modifier: str) -> str:
    return f"HC:{procedure}:{modifier}" if modifier else f"HC:{procedure}"


def _subscriber(practice: Practice, patient: int) -> str:
    """The 837 subscriber name, address and demographics (Loop 2010BA)."""
    person = practice.person(patient)
    return (
        f"NM1*IL*1*{person.family.upper()}*{person.given.upper()}****MI*{practice.member_id(patient)}~\n"
        f"N3*{person.street.upper()}~\nN4*{person.city.upper()}*{person.state}*{person.postal_code}~\n"
        f"DMG*D8*{person.birth_date:%Y%m%d}*{'F' if person.gender == 'female' else 'M'}~\n"
    )


def _patient(practice: Practice, patient: int) -> str:
    """The 835 patient name (NM1*QC)."""
    person = practice.person(patient)
    return f"NM1*QC*1*{person.family.upper()}*{person.given.upper()}****MI*{practice.member_id(patient)}~\n"


class X12Writer:
    """Renders one location's claim batches and payment runs as transaction sets."""

    def __init__(self, practice: Practice, tag: str) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock
        self.tag = tag
        # the segments that depend only on a provider, a payer or a patient, rendered once
        self._rendering = {
            prov.index: f"NM1*82*1*{prov.family.upper()}*{prov.given.upper()}****XX*{prov.npi}~\n"
            for prov in practice.providers
        }
        self._subscriber_of = [f"SBR*P*18*******{payer.sbr09}~\n" for payer in practice.payers]
        self._payer_name = [f"NM1*PR*2*{payer.name.upper()}*****PI*{payer.payer_id}~\n" for payer in practice.payers]
        self._subscriber = lru_cache(maxsize=1 << 16)(partial(_subscriber, practice))
        self._patient = lru_cache(maxsize=1 << 16)(partial(_patient, practice))

    def _number(self, n: int) -> str:
        return f"{self.tag}{n:04d}"

    # -- 837P -------------------------------------------------------------------------------

    def claims(self, batches: list[tuple[int, int, list[tuple[Claim, Submission]]]]) -> str:
        """One transaction set per (submission instant, location) batch."""
        return "".join(
            transaction("837", self._number(n), self._claims_batch(at, loc, items))
            for n, (at, loc, items) in enumerate(batches, start=1)
        )

    def _claims_batch(self, at: int, loc_index: int, items: list[tuple[Claim, Submission]]) -> list[str]:
        p = self.practice
        loc = p.locations[loc_index]
        when = self.clock.local(at)
        name, city = loc.name.upper(), loc.city.upper()
        facility = (
            seg("N3", loc.street.upper()) + seg("N4", city, "MA", loc.postal_code + "1201") + seg("REF", "LU", loc.code)
        )
        out = [
            seg("BHT", "0019", "00", f"B{at}{loc_index}", f"{when:%Y%m%d}", f"{when:%H%M}", "CH"),
            seg("NM1", "41", "2", "RIVERSIDE COMMUNITY PHYSICIANS", "", "", "", "", "46", SUBMITTER_ID),
            seg("PER", "IC", "BILLING OFFICE", "TE", "4135550100"),
            seg("NM1", "40", "2", "CLEARWAY EDI", "", "", "", "", "46", CLEARINGHOUSE_ID),
            seg("HL", "1", "", "20", "1"),
            seg("NM1", "85", "2", name, "", "", "", "", "XX", loc.billing_npi),
            seg("N3", loc.street.upper()),
            seg("N4", city, "MA", loc.postal_code + "1201"),
            seg("REF", "EI", loc.ein),
        ]
        for hl, (claim, sub) in enumerate(items, start=2):
            appt = claim.appointment
            prov = p.providers[appt.provider]
            pos = "10" if appt.telehealth else "11"
            out.append(
                f"HL*{hl}*1*22*0~\n{self._subscriber_of[claim.payer]}{self._subscriber(appt.patient)}"
                f"{self._payer_name[claim.payer]}CLM*{claim.claim_id}*{amount(sub.billed)}***{pos}:B:{sub.frequency}*Y*A*Y*Y~\n"
            )
            if sub.frequency in ("7", "8"):
                out.append(seg("REF", "F8", sub.payer_icn or ""))
            out.append(
                f"HI*ABK:{DIAGNOSES[appt.visit]}~\n{self._rendering[prov.index]}"
                f"PRV*PE*PXC*{prov.taxonomy}~\nNM1*77*2*{name}*****XX*{loc.billing_npi}~\n{facility}"
            )
            served = _ccyymmdd(claim.service_date)
            for n, line in enumerate(sub.lines, start=1):
                out.append(
                    f"LX*{n}~\nSV1*{_procedure(line.procedure, line.modifier)}*{amount(line.charge)}*UN*1***1~\n"
                    f"DTP*472*D8*{served}~\n"
                )
        return out

    # -- 835 --------------------------------------------------------------------------------

    def remits(self, payer: Payer, runs: list[tuple[date, int, list[tuple[Claim, Remittance]]]]) -> str:
        """One transaction set per payment (paid date, payee location)."""
        return "".join(
            transaction("835", self._number(n), self._payment(payer, paid, loc, items))
            for n, (paid, loc, items) in enumerate(runs, start=1)
        )

    def _payment(self, payer: Payer, paid: date, loc_index: int, items: list[tuple[Claim, Remittance]]) -> list[str]:
        p = self.practice
        loc = p.locations[loc_index]
        total = sum((r.total_paid for _, r in items), ZERO)
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
            served = _ccyymmdd(claim.service_date)
            out.append(
                f"CLP*{claim.claim_id}*{r.status}*{amount(r.charge)}*{amount(r.total_paid)}*"
                f"{amount(r.patient_responsibility)}*{payer.clp06}*{r.payer_icn}*11*1~\n"
                f"{self._patient(appt.patient)}{self._rendering[appt.provider]}DTM*232*{served}~\n"
            )
            for i, line in enumerate(r.lines):
                out.append(
                    f"SVC*{_procedure(line.procedure, line.modifier)}*{amount(line.charge)}*{amount(r.paid[i])}**1~\n"
                    f"DTM*472*{served}~\n"
                )
                contractual = ZERO
                for a in r.adjustments:
                    if a.line == i:
                        out.append(f"CAS*{a.group}*{a.reason}*{amount(a.amount)}~\n")
                        if a.group == "CO":
                            contractual += a.amount
                if r.status != "4":
                    out.append(f"AMT*B6*{amount(line.charge - contractual)}~\n")
                out += [f"LQ*HE*{code}~\n" for code in r.remarks]
        return out
