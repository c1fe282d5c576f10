"""Realistic-looking but invented people, phone numbers, addresses and identifiers.

The exports must carry what real ones carry (names, birth dates, phones, addresses) so that
tests can prove ingest drops them; none may belong to a real person, so everything is built
from syllables and number ranges reserved for fiction, never from a list of real names.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

from sample_data.draws import pick

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
_LINE_NUMBERS = range(100, 200)
_HOUSE_NUMBERS = range(10, 9900)
_POSTAL_CODES = range(1000, 2800)
_FRACTIONS = range(1 << 16)
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


Choose = Callable[[Sequence[Any]], Any]  # picks one item of a sequence, uniformly


def chooser(rng: random.Random) -> Choose:
    return partial(pick, rng)


class HashChoices:
    """Uniform choices taken from the bits of one hash of `key`: a pure function of the key.

    Patients are rebuilt from their number whenever an export needs their name (millions of
    times at scale); a hash and a few divisions cost a fraction of seeding a `random.Random`.
    128 bits cover every choice a person needs (about 90 bits) with negligible bias.
    """

    __slots__ = ("_bits",)

    def __init__(self, key: str) -> None:
        self._bits = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")

    def __call__(self, items: Sequence[Any]) -> Any:
        self._bits, i = divmod(self._bits, len(items))
        return items[i]


def family_name(choose: Choose) -> str:
    syllable = choose(_ONSETS) + choose(_VOWELS) + choose(_CODAS)
    return syllable.capitalize() + choose(_SURNAME_ENDINGS)


def given_name(choose: Choose, gender: str) -> str:
    endings = _FIRST_ENDINGS_F if gender == "female" else _FIRST_ENDINGS_M
    return (choose(_ONSETS) + choose(_VOWELS[:5]) + choose(_GIVEN_CODAS)).capitalize() + choose(endings)


def phone(choose: Choose) -> str:
    """A North American number in the 555-0100..0199 block, which is reserved for fictional use."""
    return f"{choose(_AREA_CODES)}5550{choose(_LINE_NUMBERS)}"


def person(choose: Choose, today: date) -> Person:
    gender = choose(("female", "male"))
    age_years = _triangular(choose(_FRACTIONS) / len(_FRACTIONS), 1, 90)
    return Person(
        given=given_name(choose, gender),
        family=family_name(choose),
        gender=gender,
        birth_date=today - timedelta(days=int(age_years * 365.25)),
        phone=phone(choose),
        street=f"{choose(_HOUSE_NUMBERS)} {choose(_STREETS)} {choose(_STREET_KINDS)}",
        city=choose(_TOWNS),
        state="MA",
        postal_code=f"0{choose(_POSTAL_CODES)}",
    )


def _triangular(u: float, low: float, high: float) -> float:
    """The symmetric triangular distribution on [low, high] at quantile `u` (as `random.triangular`)."""
    if u > 0.5:
        u, low, high = 1.0 - u, high, low
    return low + (high - low) * math.sqrt(u * 0.5)


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
