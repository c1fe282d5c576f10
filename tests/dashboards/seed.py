"""A small, seeded practice written straight into the canonical tables of a real warehouse file.

The dashboard tests need every domain populated (appointments, slots, visits, calls, claims,
remittances, ledger, referrals, portal messages, ingest lineage) over 14 months, with
location-dependent rates so that filters visibly change the numbers. Rows are generated with a
fixed seed and bulk-inserted; nothing here computes a KPI: the tests ask the `kpis` API for the
expected values.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from kpis import Warehouse

TZ = ZoneInfo("America/New_York")
FIRST_MONTH = date(2025, 9, 1)
LAST_DAY = date(2026, 10, 31)
LOCATIONS = {"EAST": "Eastside Family Medicine", "WEST": "Westside Clinic", "NORTH": "North Health Center"}
PROVIDERS = {  # npi -> (name, home location)
    "1000000001": ("Dr. Avery Lane", "EAST"),
    "1000000002": ("Dr. Blake Moss", "EAST"),
    "1000000003": ("Dr. Casey Reed", "WEST"),
    "1000000004": ("Dr. Drew Hart", "NORTH"),
}
PAYERS = {"AETNA": ("Aetna", "commercial"), "MCARE": ("Medicare", "medicare"), "SELF": ("Self pay", "self_pay")}
NO_SHOW = {"EAST": 0.12, "WEST": 0.05, "NORTH": 0.08}
ABANDON = {"EAST": 0.09, "WEST": 0.03, "NORTH": 0.05}


def build_practice(path: Path, seed: int = 7) -> Path:
    """Create the warehouse at `path` holding the seeded practice; returns `path`."""
    rng = random.Random(seed)
    tables = _generate(rng)
    with Warehouse(path) as wh, wh.transaction() as cur:
        for table, rows in tables.items():
            frame = pd.DataFrame(rows)
            cur.register("batch", frame)
            cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
            cur.unregister("batch")
    return path


def _at(day: date, minutes: int) -> datetime:
    """A local wall-clock time on `day` (minutes after midnight) as an aware instant."""
    return datetime(day.year, day.month, day.day, tzinfo=TZ) + timedelta(minutes=minutes)


def _days() -> list[date]:
    days, d = [], FIRST_MONTH
    while d <= LAST_DAY:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def _generate(rng: random.Random) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {
        "locations": [{"location_id": k, "name": v, "source": "seed"} for k, v in LOCATIONS.items()],
        "providers": [
            {"provider_id": npi, "name": name, "npi": npi, "location_id": loc, "source": "seed"}
            for npi, (name, loc) in PROVIDERS.items()
        ],
        "payers": [{"payer_id": k, "name": n, "payer_class": c, "source": "seed"} for k, (n, c) in PAYERS.items()],
    }
    for name in ("slots", "appointments", "encounters", "claims", "remittances", "remittance_adjustments", "ledger"):
        out[name] = []
    for name in ("calls", "referrals", "portal_messages", "ingest_runs", "rejects"):
        out[name] = []
    for day in _days():
        for npi, (_, loc) in PROVIDERS.items():
            for slot_no in range(8):
                _slot_and_visit(rng, out, day, npi, loc, slot_no)
        for n in range(6):
            _call(rng, out, day, n)
        if rng.random() < 0.6:
            _referral(rng, out, day)
        _portal_message(rng, out, day)
    _lineage(out)
    return out


def _slot_and_visit(rng: random.Random, out: dict, day: date, npi: str, loc: str, slot_no: int) -> None:
    start = _at(day, 9 * 60 + slot_no * 40)
    slot_id = f"S-{npi}-{day.isoformat()}-{slot_no}"
    blocked = rng.random() < 0.05
    out["slots"].append(
        {
            "source": "fhir",
            "slot_id": slot_id,
            "provider_id": npi,
            "location_id": loc,
            "start_at": start,
            "minutes": 40,
            "status": "blocked" if blocked else "free",
        }
    )
    if blocked or rng.random() < 0.3:
        return
    appt_id = f"A-{slot_id}"
    payer = rng.choice(list(PAYERS))
    roll = rng.random()
    if roll < 0.08:
        status = "cancelled"
    elif roll < 0.08 + NO_SHOW[loc]:
        status = "noshow"
    else:
        status = "fulfilled"
    cancelled_at = start - timedelta(hours=rng.choice([2, 12, 48, 96])) if status == "cancelled" else None
    out["appointments"].append(
        {
            "source": "fhir",
            "appointment_id": appt_id,
            "location_id": loc,
            "provider_id": npi,
            "patient_key": f"pk{rng.randrange(10**6):06d}",
            "payer_id": payer,
            "visit_type": rng.choice(["routine", "followup", "checkup"]),
            "is_new_patient": rng.random() < 0.2,
            "booked_at": start - timedelta(days=rng.randint(1, 40)),
            "scheduled_start": start,
            "scheduled_minutes": 40,
            "status": status,
            "cancelled_at": cancelled_at,
            "cancel_initiator": "patient" if status == "cancelled" else None,
        }
    )
    if status == "fulfilled":
        _encounter(rng, out, appt_id, start, loc, npi)
        if loc != "NORTH":
            _claim(rng, out, appt_id, day, loc, npi, payer)


def _encounter(rng: random.Random, out: dict, appt_id: str, start: datetime, loc: str, npi: str) -> None:
    checked_in = start - timedelta(minutes=rng.randint(0, 15))
    roomed = checked_in + timedelta(minutes=rng.randint(3, 25 if loc == "EAST" else 12))
    provider_start = roomed + timedelta(minutes=rng.randint(2, 15))
    provider_end = provider_start + timedelta(minutes=rng.randint(8, 25))
    out["encounters"].append(
        {
            "source": "fhir",
            "encounter_id": f"E-{appt_id}",
            "appointment_id": appt_id,
            "location_id": loc,
            "provider_id": npi,
            "status": "finished",
            "checked_in_at": checked_in,
            "roomed_at": roomed,
            "provider_start_at": provider_start,
            "provider_end_at": provider_end,
            "checked_out_at": provider_end + timedelta(minutes=rng.randint(2, 10)),
            "chart_closed_at": provider_end + timedelta(hours=rng.randint(1, 60)),
        }
    )


def _claim(rng: random.Random, out: dict, appt_id: str, day: date, loc: str, npi: str, payer: str) -> None:
    claim_id = f"C-{appt_id}"
    submitted = _at(day + timedelta(days=rng.randint(1, 6)), 17 * 60)
    billed = Decimal("150.00")
    out["claims"].append(
        {
            "submission_id": f"{claim_id}|1|{submitted.isoformat()}",
            "claim_id": claim_id,
            "frequency_code": "1",
            "submitted_at": submitted,
            "location_id": loc,
            "provider_id": npi,
            "payer_id": payer,
            "service_date": day,
            "billed_amount": billed,
            "source": "x12",
        }
    )
    ledger = out["ledger"]
    common = {"claim_id": claim_id, "location_id": loc, "provider_id": npi, "payer_id": payer, "service_date": day}
    ledger.append({**common, "entry_id": f"L-{claim_id}-c", "posted_date": submitted.date(), "entry_type": "charge",
                   "amount": billed, "source": "x12"})  # fmt: skip
    paid_date = submitted.date() + timedelta(days=rng.randint(15, 70))
    if paid_date > LAST_DAY:
        return
    denied = rng.random() < (0.12 if payer == "SELF" else 0.05)
    paid = Decimal("0.00") if denied else Decimal("100.00")
    remit_id = f"R-{claim_id}"
    out["remittances"].append(
        {
            "remittance_id": remit_id,
            "claim_id": claim_id,
            "payer_id": payer,
            "paid_date": paid_date,
            "claim_status_code": "4" if denied else "1",
            "status": "denied" if denied else "paid",
            "billed_amount": billed,
            "paid_amount": paid,
            "source": "x12",
        }
    )
    carc, amount = ("97", billed) if denied else ("45", Decimal("50.00"))
    out["remittance_adjustments"].append(
        {
            "remittance_id": remit_id,
            "seq": 1,
            "group_code": "CO",
            "reason_code": carc,
            "amount": amount,
            "source": "x12",
        }
    )
    ledger.append({**common, "entry_id": f"L-{claim_id}-a", "posted_date": paid_date, "entry_type": "adjustment",
                   "amount": amount, "group_code": "CO", "reason_code": carc, "source": "x12"})  # fmt: skip
    if not denied:
        ledger.append({**common, "entry_id": f"L-{claim_id}-p", "posted_date": paid_date, "entry_type": "payment",
                       "party": "payer", "amount": paid, "source": "x12"})  # fmt: skip


def _call(rng: random.Random, out: dict, day: date, n: int) -> None:
    loc = rng.choice(list(LOCATIONS))
    entered = _at(day, rng.randint(8 * 60, 17 * 60 - 1)) + timedelta(seconds=rng.randint(0, 59))
    wait = int(rng.expovariate(1 / 40))
    outcome = "abandoned" if rng.random() < ABANDON[loc] * (2 if entered.hour < 10 else 1) else "answered"
    answered = entered + timedelta(seconds=wait) if outcome == "answered" else None
    out["calls"].append(
        {
            "source": "asterisk",
            "call_id": f"Q-{day.isoformat()}-{n}",
            "queue": rng.choice(["appointments", "billing", "nurse"]),
            "location_id": loc,
            "entered_at": entered,
            "answered_at": answered,
            "ended_at": entered + timedelta(seconds=wait + (240 if answered else 0)),
            "outcome": outcome,
            "wait_seconds": max(wait, 12) if outcome == "abandoned" else wait,
            "talk_seconds": 240 if answered else None,
        }
    )


def _referral(rng: random.Random, out: dict, day: date) -> None:
    npi = rng.choice(list(PROVIDERS))
    created = _at(day, 11 * 60)
    stages: dict[str, datetime | None] = {"sent_at": created + timedelta(days=1)}
    reach = rng.random()
    stages["scheduled_at"] = created + timedelta(days=rng.randint(5, 20)) if reach < 0.85 else None
    stages["seen_at"] = created + timedelta(days=rng.randint(25, 45)) if reach < 0.7 else None
    stages["report_received_at"] = created + timedelta(days=rng.randint(50, 80)) if reach < 0.55 else None
    reached = [k for k, v in stages.items() if v is not None and v.date() <= LAST_DAY]
    status = {"sent_at": "sent", "scheduled_at": "scheduled", "seen_at": "seen", "report_received_at": "closed"}
    out["referrals"].append(
        {
            "source": "fhir",
            "referral_id": f"RF-{day.isoformat()}",
            "referring_provider_id": npi,
            "location_id": PROVIDERS[npi][1],
            "specialty": rng.choice(["cardiology", "dermatology", "orthopedics"]),
            "priority": "routine",
            "created_at": created,
            **{k: (v if k in reached else None) for k, v in stages.items()},
            "status": status[reached[-1]],
        }
    )


def _portal_message(rng: random.Random, out: dict, day: date) -> None:
    npi = rng.choice(list(PROVIDERS))
    received = _at(day, rng.randint(7 * 60, 19 * 60))
    replied = received + timedelta(hours=rng.randint(1, 30)) if rng.random() < 0.9 else None
    out["portal_messages"].append(
        {
            "source": "csv",
            "message_id": f"M-{day.isoformat()}",
            "location_id": PROVIDERS[npi][1],
            "provider_id": npi,
            "category": "clinical",
            "received_at": received,
            "first_response_at": replied,
        }
    )


def _lineage(out: dict) -> None:
    loaded = datetime(2026, 11, 2, 8, 0, tzinfo=TZ)
    for run_id, (name, table, rejected) in enumerate(
        [("fhir/Appointment.ndjson", "appointments", 2), ("phones/queue_log", "calls", 1)], start=1
    ):
        rows = len(out[table])
        out["ingest_runs"].append(
            {
                "run_id": run_id,
                "started_at": loaded,
                "finished_at": loaded + timedelta(seconds=3),
                "file_path": name,
                "adapter": table,
                "rows_read": rows + rejected,
                "rows_inserted": rows,
                "rows_rejected": rejected,
                "status": "succeeded",
            }
        )
        for i in range(rejected):
            out["rejects"].append(
                {
                    "reject_id": len(out["rejects"]) + 1,
                    "run_id": run_id,
                    "file_path": name,
                    "position_kind": "line",
                    "position": 10 + i,
                    "target_table": table,
                    "field": "checked_out_at",
                    "check_name": "time_order",
                    "reason": "checked_out_at is before checked_in_at",
                }
            )
