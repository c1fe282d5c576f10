"""Realistic-looking but invented people, phone numbers, addresses and identifiers.

The exports must carry what real ones carry (names, birth dates, phones, addresses) so that
tests can prove ingest drops them; none may belong to a real person, so everything is built
from syllables and number ranges reserved for fiction, never from a list of real names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sample_data.draws import pick, randint

_ONSETS = (
    "B",
    "C",
    "D",
    "F",
    "G",
    "H",
    "J",
    "K",
    "L",
    "M",
    "N",
    "P",
    "R",
    "S",
    "T",
    "V",
    "W",
    "Br",
    "Ch",
    "Cl",
    "Dr",
    "Gr",
    "St",
    "Th",
    "Tr",
    "Sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "n", "r", "l", "s", "m", "nd", "rt", "ck")
_SURNAME_ENDINGS = ("son", "man", "ford", "ton", "wood", "by", "er", "ridge", "field", "ham", "worth", "stead")
_FIRST_ENDINGS_F = ("a", "ie", "elle", "ina", "ia", "ette", "y")
_FIRST_ENDINGS_M = ("o", "an", "el", "us", "er", "on", "ik")
_GIVEN_CODAS = ("", "", "n", "r", "l", "m")
_AREA_CODES = (413, 508, 617, 781, 978)
_STREETS = ("Maple", "Cedar", "Willow", "Juniper", "Aspen", "Hawthorn", "Linden", "Sycamore", "Alder", "Birch")
_STREET_KINDS = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Way")
# Invented towns in one invented-looking corner of Massachusetts-style zip space.
_TOWNS = ("Millbrook", "Ashfield Falls", "Cranston Hollow", "Pine Harbor", "Eastvale")


@dataclass(frozen=True, slots=True)
class Person:
    """A fake patient's direct identifiers, present in exports only."""

    given: str
    family: str
    gender: str  # "female" | "male"
    birth_date: date
    phone: str  # 10 digits, 555-01xx exchange reserved for fiction
    street: str
    city: str
    state: str
    postal_code: str


def family_name(rng: random.Random) -> str:
    syllable = pick(rng, _ONSETS) + pick(rng, _VOWELS) + pick(rng, _CODAS)
    return syllable.capitalize() + pick(rng, _SURNAME_ENDINGS)


def given_name(rng: random.Random, gender: str) -> str:
    endings = _FIRST_ENDINGS_F if gender == "female" else _FIRST_ENDINGS_M
    return (pick(rng, _ONSETS) + pick(rng, _VOWELS[:5]) + pick(rng, _GIVEN_CODAS)).capitalize() + pick(rng, endings)


def phone(rng: random.Random) -> str:
    """A North American number in the 555-0100..0199 block, which is reserved for fictional use."""
    return f"{pick(rng, _AREA_CODES)}5550{randint(rng, 100, 199)}"


def person(rng: random.Random, today: date) -> Person:
    gender = pick(rng, ("female", "male"))
    age_days = int(rng.triangular(1, 90, 45) * 365.25)
    return Person(
        given=given_name(rng, gender),
        family=family_name(rng),
        gender=gender,
        birth_date=today - timedelta(days=age_days),
        phone=phone(rng),
        street=f"{randint(rng, 10, 9899)} {pick(rng, _STREETS)} {pick(rng, _STREET_KINDS)}",
        city=pick(rng, _TOWNS),
        state="MA",
        postal_code=f"0{randint(rng, 1000, 2799)}",
    )


def npi(rng: random.Random) -> str:
    """A 10-digit NPI with a valid check digit (Luhn over the '80840' prefix, as CMS specifies)."""
    base = f"1{rng.randint(0, 99_999_999):08d}"
    return base + str(_npi_check_digit(base))


def _npi_check_digit(base9: str) -> int:
    total = 24  # the constant for the 80840 prefix
    for i, ch in enumerate(reversed(base9)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


def npi_is_valid(value: str) -> bool:
    """True if `value` is 10 digits whose last is the NPI check digit of the first nine."""
    return len(value) == 10 and value.isdigit() and _npi_check_digit(value[:9]) == int(value[9])
