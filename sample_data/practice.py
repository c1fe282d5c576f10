"""The simulated practice: its settings, locations, providers, payers and patient panel.

Everything here is fixed for a run (drawn once from the seed); what happens day to day lives
in the other modules.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from sample_data import fake
from sample_data.changes import InjectedChange, default_changes
from sample_data.clock import Clock, add_months, month_start

DEFAULT_TIMEZONE = "America/New_York"
PATIENTS_PER_PROVIDER = 600
SLOT_MINUTES = 20


class SampleError(Exception):
    """The sample command was asked for something it cannot simulate.

    Not a `kpis` error: sample_data imports nothing from kpis, so that its truth stays
    independent. The command line shows it as one line all the same (it is registered as a
    user error in pyproject.toml, `clinic_kpis.user_errors`).
    """


@dataclass(frozen=True)
class Params:
    """What the user asked for; every other number follows from these and the seed."""

    seed: int = 7
    months: int = 24
    locations: int = 3
    providers: int = 12
    scale: float = 1.0
    end: date = date(2026, 10, 31)
    timezone: str = DEFAULT_TIMEZONE
    changes: tuple[InjectedChange, ...] | None = None  # None: reminder calls at EAST and a placebo at WEST

    def __post_init__(self) -> None:
        if self.months < 1:
            raise SampleError(f"--months must be at least 1, got {self.months}")
        if self.locations < 1:
            raise SampleError(f"--locations must be at least 1, got {self.locations}")
        if self.scale <= 0:
            raise SampleError(f"--scale must be positive, got {self.scale}")
        if self.n_providers < self.locations:
            raise SampleError(
                f"--providers x --scale gives {self.n_providers} provider(s) for {self.locations} location(s); "
                "every location needs at least one provider"
            )

    @property
    def n_providers(self) -> int:
        return max(1, round(self.providers * self.scale))

    @property
    def start(self) -> date:
        """First day of the first simulated month."""
        return add_months(month_start(self.end), -(self.months - 1))

    @property
    def process_change(self) -> date:
        """The day reminder calls start at EAST: 2025-09-01 for the default range, the same share of any other."""
        return add_months(self.start, max(1, self.months * 10 // 24))


@dataclass(frozen=True)
class Location:
    code: str
    name: str
    system: str  # "ehr": FHIR + X12 exports; "pms": vendor appointment CSV + Synthea-style ledger
    billing_npi: str
    ein: str
    street: str
    city: str
    postal_code: str


@dataclass(frozen=True)
class Provider:
    index: int
    resource_id: str  # FHIR Practitioner.id
    npi: str
    given: str
    family: str
    location: int  # index into Practice.locations
    taxonomy: str
    specialty: str
    runs_late: bool
    day_off: int | None  # weekday (0 = Monday) without clinic, or None
    fill: float  # share of open template slots that routine demand (booked ahead) fills
    chart_hours: float  # median hours from visit end to signed note


@dataclass(frozen=True)
class Payer:
    payer_id: str
    name: str
    payer_class: str  # commercial | medicare | medicaid | self_pay
    sbr09: str  # 837 claim filing indicator
    clp06: str  # 835 claim filing indicator
    allowed_ratio: Decimal  # allowed amount as a share of billed charges
    denial_rate: float  # share of claims whose first remittance denies them
    lag_days: tuple[int, int]  # adjudication days after submission (min, max); paid by EFT the next business day
    share: float  # share of the patient panel


PAYERS = (
    Payer("60054", "Summit Mutual Health", "commercial", "CI", "12", Decimal("0.68"), 0.06, (6, 14), 0.24),
    Payer("87726", "Harborline Insurance", "commercial", "HM", "HM", Decimal("0.72"), 0.07, (7, 16), 0.17),
    Payer("39026", "Keystone Blue Plan", "commercial", "BL", "12", Decimal("0.70"), 0.06, (6, 14), 0.10),
    Payer("04402", "Medicare Part B", "medicare", "MB", "MB", Decimal("0.56"), 0.05, (14, 16), 0.24),
    Payer("MCD01", "Commonwealth Medicaid", "medicaid", "MC", "MC", Decimal("0.46"), 0.10, (14, 28), 0.17),
    Payer("SELF", "Self Pay", "self_pay", "09", "09", Decimal("0.70"), 0.0, (0, 0), 0.08),
)

_LOCATION_NAMES = {"EAST": "Eastside Family Medicine", "WEST": "Westbrook Primary Care", "NORTH": "Northgate Clinic"}
_SPECIALTIES = (
    ("207Q00000X", "Family Medicine"),
    ("207R00000X", "Internal Medicine"),
    ("208000000X", "Pediatrics"),
)


@dataclass
class Practice:
    """The fixed cast of a run."""

    params: Params
    clock: Clock
    locations: list[Location]
    providers: list[Provider]
    payers: tuple[Payer, ...] = PAYERS
    patient_payer: bytearray = field(default_factory=bytearray)  # payer index per patient
    patient_blocks: list[range] = field(default_factory=list)  # patient numbers of each location

    @property
    def n_patients(self) -> int:
        return len(self.patient_payer)

    @property
    def cutoff(self) -> int:
        """The export instant: local midnight after the last simulated day. Nothing later is known."""
        return self.clock.midnight(self.params.end + timedelta(days=1))

    @property
    def changes(self) -> tuple[InjectedChange, ...]:
        """The process changes of this run: `Params.changes`, else the default pair (changes.py)."""
        if self.params.changes is not None:
            return self.params.changes
        return default_changes(self.params.process_change, [loc.code for loc in self.locations])

    def providers_at(self, loc: int) -> list[Provider]:
        return [p for p in self.providers if p.location == loc]

    def patients_at(self, loc: int) -> range:
        """Patients are numbered in blocks, one block per location."""
        return self.patient_blocks[loc]

    def patient_id(self, i: int) -> str:
        return f"pat-{i:07d}"

    def patient_mrn(self, i: int) -> str:
        return f"{4_100_000 + i * 3}"

    def member_id(self, i: int) -> str:
        return f"W{(i * 7_919 + 104_729) % 1_000_000_000:09d}"

    def person(self, i: int) -> fake.Person:
        return _person(self.params.seed, i, self.params.end)


def location_tag(loc: int) -> str:
    """Two digits that make a location's sequential ids unique in the practice (EAST 01, WEST 02, ...)."""
    return f"{loc + 1:02d}"


@lru_cache(maxsize=1 << 18)
def _person(seed: int, i: int, today: date) -> fake.Person:
    """A patient's fake identity, rebuilt on demand from a hash of its number.

    The cache (about 120 MB when full) holds a location's whole panel up to about scale 100,
    so claims and remittances rarely rebuild a person; beyond, memory stays at that bound.
    """
    return fake.person(fake.HashChoices(f"{seed}:person:{i}"), today)


def build_practice(params: Params) -> Practice:
    """Draw the locations, providers and patient panel for `params`."""
    rng = random.Random(f"{params.seed}:practice")
    clock = Clock(params.timezone)
    codes = ["EAST", "WEST", "NORTH"][: params.locations] + [f"LOC{i}" for i in range(4, params.locations + 1)]
    locations = [
        Location(
            code=code,
            name=_LOCATION_NAMES.get(code, f"Clinic {code}"),
            system="pms" if code == "NORTH" else "ehr",
            billing_npi=fake.npi(rng),
            ein=f"{rng.randint(10, 99)}{rng.randint(1_000_000, 9_999_999)}",
            street=f"{rng.randint(100, 999)} {rng.choice(('Main', 'Center', 'Church', 'Market'))} St",
            city=rng.choice(("Millbrook", "Pine Harbor", "Eastvale")),
            postal_code=f"0{rng.randint(1000, 2799):04d}",
        )
        for code in codes
    ]
    n = params.n_providers
    late = set(rng.sample(range(n), max(1, n // 6)))
    providers = []
    seen_npis: set[str] = set()
    for i in range(n):
        npi = fake.npi(rng)
        while npi in seen_npis:
            npi = fake.npi(rng)
        seen_npis.add(npi)
        gender = rng.choice(("female", "male"))
        taxonomy, specialty = _SPECIALTIES[0] if rng.random() < 0.6 else rng.choice(_SPECIALTIES)
        providers.append(
            Provider(
                index=i,
                resource_id=f"pr-{i + 101:05d}",
                npi=npi,
                given=fake.given_name(fake.chooser(rng), gender),
                family=fake.family_name(fake.chooser(rng)),
                location=i % len(locations),
                taxonomy=taxonomy,
                specialty=specialty,
                runs_late=i in late,
                day_off=rng.choice((None, None, 0, 2, 4)) if i not in late else None,
                fill=rng.uniform(0.975, 0.99),
                chart_hours=rng.uniform(14.0, 30.0) if i in late else rng.uniform(2.0, 7.0),
            )
        )
    practice = Practice(params=params, clock=clock, locations=locations, providers=providers)
    weights = [p.share for p in PAYERS]
    start = 0
    for loc in range(len(locations)):
        count = PATIENTS_PER_PROVIDER * len(practice.providers_at(loc))
        practice.patient_blocks.append(range(start, start + count))
        practice.patient_payer.extend(rng.choices(range(len(PAYERS)), weights=weights, k=count))
        start += count
    return practice
