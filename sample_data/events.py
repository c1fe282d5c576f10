"""What happened: the simulator's own event state, from which both exports and truth are made.

Instants are epoch seconds (int). These records are the single source of truth: writers
render them into export formats, `truth.py` aggregates them, neither reads the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

ZERO = Decimal("0.00")


@dataclass(slots=True)
class Encounter:
    """The in-clinic timeline of a kept appointment (telehealth visits have only check-in/out)."""

    encounter_id: str
    checked_in: int
    checked_out: int
    roomed: int | None = None
    provider_start: int | None = None
    provider_end: int | None = None
    chart_closed: int | None = None  # None: not signed by the time of the export


@dataclass(slots=True)
class Appointment:
    appointment_id: str
    location: int
    provider: int
    patient: int
    payer: int
    visit: str  # new | followup | annual | sick | procedure
    is_new: bool
    telehealth: bool
    start: int
    minutes: int
    booked: int
    status: str  # booked | fulfilled | noshow | cancelled | entered_in_error
    cancelled: int | None = None
    initiator: str | None = None  # patient | provider | practice
    cancel_code: str | None = None  # FHIR appointment-cancellation-reason code
    rescheduled: bool = False  # cancelled and replaced by a successor appointment
    rebooked_from: str | None = None
    lead_days: int = 0  # booking lead time in local calendar days
    encounter: Encounter | None = None
    last_updated: int = 0


@dataclass(frozen=True, slots=True)
class Line:
    procedure: str
    modifier: str
    charge: Decimal


@dataclass(slots=True)
class Adjustment:
    group: str  # CO | PR | OA | PI | CR
    reason: str  # CARC
    amount: Decimal
    line: int  # index into the claim's lines


@dataclass(slots=True)
class Submission:
    """One 837 claim submission (original 1, replacement 7 or void 8)."""

    frequency: str
    at: int  # submission instant (BHT04/BHT05)
    lines: list[Line]
    payer_icn: str | None = None  # REF*F8 on 7/8
    billed: Decimal = field(init=False)  # total charge (the records are never changed once made)

    def __post_init__(self) -> None:
        self.billed = sum((ln.charge for ln in self.lines), ZERO)


@dataclass(slots=True)
class Remittance:
    """One 835 CLP loop: a payer's decision on a claim, paid on a payment date."""

    paid_date: date
    status: str  # CLP02: 1 | 4 | 22
    lines: list[Line]
    paid: list[Decimal]  # per line
    adjustments: list[Adjustment]
    payer_icn: str
    remarks: tuple[str, ...] = ()
    # totals, computed once (the records are never changed once made)
    charge: Decimal = field(init=False)
    total_paid: Decimal = field(init=False)
    patient_responsibility: Decimal = field(init=False)

    def __post_init__(self) -> None:
        self.charge = sum((ln.charge for ln in self.lines), ZERO)
        self.total_paid = sum(self.paid, ZERO)
        self.patient_responsibility = sum((a.amount for a in self.adjustments if a.group == "PR"), ZERO)

    @property
    def is_denial(self) -> bool:
        """docs/contracts.md: CLP02 = 4, or paid 0 with a CO/PI/OA adjustment and no PR adjustment.

        A zero payment that the payer explains as patient responsibility (deductible) is not a
        denial: KPI-DEFINITIONS says PR adjustments are never denials.
        """
        groups = {a.group for a in self.adjustments}
        return self.status == "4" or (self.total_paid == 0 and bool(groups & {"CO", "PI", "OA"}) and "PR" not in groups)


@dataclass(slots=True)
class PatientPayment:
    posted: date
    amount: Decimal
    method: str  # CC | CASH | CHECK | COLLECTION (paid through the collection agency)


@dataclass(slots=True)
class WriteOff:
    """A patient balance the practice gives up on (bad debt), posted on a date."""

    posted: date
    amount: Decimal


@dataclass(slots=True)
class Claim:
    """A billed visit: its submissions, remittances and the patient's payments."""

    claim_id: str
    appointment: Appointment
    service_date: date
    payer: int
    submissions: list[Submission] = field(default_factory=list)
    remittances: list[Remittance] = field(default_factory=list)
    patient_payments: list[PatientPayment] = field(default_factory=list)
    writeoffs: list[WriteOff] = field(default_factory=list)


@dataclass(slots=True)
class Call:
    """One call that entered a phone queue, as the queue_log will tell it."""

    uniqueid: str
    queue: str
    entered: int
    outcome: str  # answered | abandoned | timeout | exit_key
    wait: int  # seconds in queue (holdtime / waittime)
    talk: int = 0
    agent: str = ""
    position: int = 1
    caller: str = ""
    ring_no_answer: str = ""  # an agent who let it ring first, or ""


@dataclass(slots=True)
class Referral:
    referral_id: str
    task_id: str
    location: int
    provider: int
    patient: int
    specialty: str
    priority: str
    created: int
    sent: int | None = None
    scheduled: int | None = None
    seen: int | None = None
    report: int | None = None
    cancelled: int | None = None


@dataclass(slots=True)
class PortalMessage:
    message_id: str
    thread_id: str
    location: int
    provider: int
    patient: int
    category: str
    received: int
    auto_reply: int | None
    staff_reply: int | None
