"""Outgoing referrals and their loop: sent, scheduled, seen, report received.

A share of visits ends in a referral; each stage is reached with a probability and after a
delay, so leakage (referrals that never get scheduled, seen or reported back) emerges the way
it does in practice. Stages after the export instant are not known yet.
"""

from __future__ import annotations

import random

from sample_data.draws import pick, randint
from sample_data.events import Appointment, Referral

REFERRAL_SHARE = 0.07  # of in-person visits
SPECIALTIES = (
    "Cardiology",
    "Dermatology",
    "Orthopedics",
    "Gastroenterology",
    "Neurology",
    "Endocrinology",
    "Physical Therapy",
    "Ophthalmology",
)
CANCELLED = 0.05
SENT = 0.96  # within 0-3 days
SCHEDULED = 0.78  # of sent: the patient books with the specialist (leakage otherwise)
SEEN = 0.88  # of scheduled
REPORTED = 0.80  # of seen: the consult note comes back
HOUR = 3600
DAY = 86_400


def refer(rng: random.Random, appt: Appointment, number: str, cutoff: int) -> Referral | None:
    """The referral a visit produced, if any, with the stages reached before `cutoff`.

    `number` is the text that makes its ServiceRequest and Task ids (`sr<number>`, `tk<number>`).
    """
    enc = appt.encounter
    if enc is None or enc.provider_end is None or rng.random() >= REFERRAL_SHARE:
        return None
    created = enc.provider_end + randint(rng, 1, 30) * 60
    ref = Referral(
        referral_id=f"sr{number}",
        task_id=f"tk{number}",
        location=appt.location,
        provider=appt.provider,
        patient=appt.patient,
        specialty=pick(rng, SPECIALTIES),
        priority="urgent" if rng.random() < 0.12 else "routine",
        created=created,
    )
    urgent = ref.priority == "urgent"
    if rng.random() < CANCELLED:
        ref.cancelled = created + randint(rng, 1, 20) * DAY
    elif rng.random() < SENT:
        ref.sent = created + randint(rng, 0, 72) * HOUR
        if rng.random() < SCHEDULED:
            ref.scheduled = ref.sent + randint(rng, 1, 7 if urgent else 30) * DAY + randint(rng, 0, 8) * HOUR
            if rng.random() < SEEN:
                ref.seen = ref.scheduled + randint(rng, 1, 10 if urgent else 55) * DAY
                if rng.random() < REPORTED:
                    ref.report = ref.seen + int(rng.lognormvariate(1.6, 0.9) * DAY)
    _forget_after(ref, cutoff)
    return ref


def _forget_after(ref: Referral, cutoff: int) -> None:
    """Drop every stage that had not happened by the export."""
    for name in ("sent", "scheduled", "seen", "report", "cancelled"):
        value = getattr(ref, name)
        if value is not None and value >= cutoff:
            setattr(ref, name, None)
    if ref.sent is None:
        ref.scheduled = None
    if ref.scheduled is None:
        ref.seen = None
    if ref.seen is None:
        ref.report = None
