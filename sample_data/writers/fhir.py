"""FHIR R4 Bulk Data NDJSON: one resource per line, one file per resource type.

Resources are plain dicts following docs/contracts.md section 1 (statuses, extensions, the
stage-time Task outputs); json.dumps with sorted keys and fixed separators makes the bytes a
function of the content alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from sample_data.clock import Clock
from sample_data.events import Appointment, Referral
from sample_data.practice import Location, Practice, Provider

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
MRN_SYSTEM = "http://clinic-kpis.org/fhir/sid/mrn"
NEW_PATIENT_URL = "http://clinic-kpis.org/fhir/StructureDefinition/new-patient"
PREVIOUS_APPOINTMENT_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.previousAppointment"
CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
APPOINTMENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0276"
REFERRAL_STAGE_SYSTEM = "http://clinic-kpis.org/fhir/CodeSystem/referral-stage"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# internal visit type -> (v2-0276 code, text)
APPOINTMENT_TYPES = {
    "new": ("ROUTINE", "New patient visit"),
    "followup": ("FOLLOWUP", "Follow-up visit"),
    "annual": ("CHECKUP", "Annual physical"),
    "sick": ("WALKIN", "Same-day sick visit"),
    "procedure": ("ROUTINE", "Office procedure"),
}
FHIR_STATUS = {
    "booked": "booked",
    "fulfilled": "fulfilled",
    "noshow": "noshow",
    "cancelled": "cancelled",
    "entered_in_error": "entered-in-error",
}
RESOURCE_TYPES = (
    "Organization",
    "Location",
    "Practitioner",
    "Patient",
    "Schedule",
    "Slot",
    "Appointment",
    "Encounter",
    "DocumentReference",
    "ServiceRequest",
    "Task",
)


def dumps(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


class FhirWriter:
    """Open NDJSON files under OUT/fhir, written as the simulation goes."""

    def __init__(self, out: Path, practice: Practice) -> None:
        self.dir = out / "fhir"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.practice = practice
        self.clock: Clock = practice.clock
        self._files: dict[str, IO[str]] = {
            t: open(self.dir / f"{t}.ndjson", "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - see close()
            for t in RESOURCE_TYPES
        }

    def write(self, kind: str, resource: dict[str, Any]) -> None:
        self._files[kind].write(dumps(resource) + "\n")

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()

    # -- directory resources ----------------------------------------------------------------

    def directory(self) -> None:
        """Organization, Location, Practitioner and Patient: the shared directory of every location."""
        p = self.practice
        self.write(
            "Organization",
            {"resourceType": "Organization", "id": "org-1", "active": True, "name": "Riverside Community Physicians"},
        )
        for loc in p.locations:
            self.write("Location", self.location(loc))
        for prov in p.providers:
            self.write("Practitioner", self.practitioner(prov))
        for i in range(p.n_patients):
            self.write("Patient", self.patient(i))

    def location(self, loc: Location) -> dict[str, Any]:
        return {
            "resourceType": "Location",
            "id": loc.code,
            "status": "active",
            "name": loc.name,
            "identifier": [{"system": NPI_SYSTEM, "value": loc.billing_npi}],
            "address": {"line": [loc.street], "city": loc.city, "state": "MA", "postalCode": loc.postal_code},
            "managingOrganization": ref("Organization", "org-1"),
        }

    def practitioner(self, prov: Provider) -> dict[str, Any]:
        return {
            "resourceType": "Practitioner",
            "id": prov.resource_id,
            "active": True,
            "identifier": [{"system": NPI_SYSTEM, "value": prov.npi}],
            "name": [{"family": prov.family, "given": [prov.given], "prefix": ["Dr."]}],
            "qualification": [{"code": {"text": prov.specialty}}],
        }

    def patient(self, i: int) -> dict[str, Any]:
        person = self.practice.person(i)
        return {
            "resourceType": "Patient",
            "id": self.practice.patient_id(i),
            "identifier": [{"system": MRN_SYSTEM, "value": self.practice.patient_mrn(i)}],
            "name": [{"family": person.family, "given": [person.given]}],
            "gender": person.gender,
            "birthDate": person.birth_date.isoformat(),
            "telecom": [{"system": "phone", "value": person.phone, "use": "home"}],
            "address": [
                {"line": [person.street], "city": person.city, "state": person.state, "postalCode": person.postal_code}
            ],
        }

    def schedules(self, start: int, end: int) -> None:
        for prov in self.practice.providers:
            if self.practice.locations[prov.location].system != "ehr":
                continue
            self.write(
                "Schedule",
                {
                    "resourceType": "Schedule",
                    "id": f"sch-{prov.resource_id}",
                    "active": True,
                    "actor": [
                        ref("Practitioner", prov.resource_id),
                        ref("Location", self.practice.locations[prov.location].code),
                    ],
                    "planningHorizon": {"start": self.clock.iso(start), "end": self.clock.iso(end)},
                },
            )

    def slot(self, slot_id: str, provider: int, start: int, minutes: int, status: str) -> None:
        self.write(
            "Slot",
            {
                "resourceType": "Slot",
                "id": slot_id,
                "schedule": ref("Schedule", f"sch-{self.practice.providers[provider].resource_id}"),
                "status": status,
                "start": self.clock.iso(start),
                "end": self.clock.iso(start + minutes * 60),
            },
        )

    # -- scheduling and visits ----------------------------------------------------------------

    def appointment(self, a: Appointment, *, status: str | None = None, drop_start: bool = False) -> dict[str, Any]:
        p = self.practice
        code, text = APPOINTMENT_TYPES[a.visit]
        res: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": a.appointment_id,
            "meta": {"lastUpdated": self.clock.iso(a.last_updated)},
            "status": FHIR_STATUS[status or a.status],
            "appointmentType": {"coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": code}], "text": text},
            "minutesDuration": a.minutes,
            "created": self.clock.iso(a.booked),
            "participant": [
                {"actor": ref("Patient", p.patient_id(a.patient)), "status": "accepted"},
                {"actor": ref("Practitioner", p.providers[a.provider].resource_id), "status": "accepted"},
                {"actor": ref("Location", p.locations[a.location].code), "status": "accepted"},
            ],
            "extension": [{"url": NEW_PATIENT_URL, "valueBoolean": a.is_new}],
        }
        if not drop_start:
            res["start"] = self.clock.iso(a.start)
            res["end"] = self.clock.iso(a.start + a.minutes * 60)
        if a.cancel_code is not None and (status or a.status) == "cancelled":
            res["cancelationReason"] = {"coding": [{"system": CANCEL_REASON_SYSTEM, "code": a.cancel_code}]}
        if a.rebooked_from is not None:
            res["extension"].append(
                {"url": PREVIOUS_APPOINTMENT_URL, "valueReference": ref("Appointment", a.rebooked_from)}
            )
        return res

    def encounter(self, a: Appointment) -> dict[str, Any] | None:
        enc = a.encounter
        if enc is None:
            return None
        p = self.practice
        iso = self.clock.iso
        res: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": enc.encounter_id,
            "status": "finished",
            "class": {
                "system": ACT_CODE_SYSTEM,
                "code": "VR" if a.telehealth else "AMB",
                "display": "virtual" if a.telehealth else "ambulatory",
            },
            "subject": ref("Patient", p.patient_id(a.patient)),
            "participant": [{"individual": ref("Practitioner", p.providers[a.provider].resource_id)}],
            "appointment": [ref("Appointment", a.appointment_id)],
            "period": {"start": iso(enc.checked_in), "end": iso(enc.checked_out)},
            "location": [{"location": ref("Location", p.locations[a.location].code)}],
        }
        if enc.roomed is not None and enc.provider_start is not None and enc.provider_end is not None:
            res["statusHistory"] = [
                {"status": "arrived", "period": {"start": iso(enc.checked_in), "end": iso(enc.roomed)}},
                {"status": "triaged", "period": {"start": iso(enc.roomed), "end": iso(enc.provider_start)}},
                {"status": "in-progress", "period": {"start": iso(enc.provider_start), "end": iso(enc.provider_end)}},
            ]
        return res

    def document(self, a: Appointment, doc_id: str) -> dict[str, Any] | None:
        enc = a.encounter
        if enc is None or enc.chart_closed is None:
            return None
        p = self.practice
        return {
            "resourceType": "DocumentReference",
            "id": doc_id,
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
            "subject": ref("Patient", p.patient_id(a.patient)),
            "date": self.clock.iso(enc.chart_closed),
            "author": [ref("Practitioner", p.providers[a.provider].resource_id)],
            "content": [{"attachment": {"contentType": "text/plain", "title": "Progress note"}}],
            "context": {"encounter": [ref("Encounter", enc.encounter_id)]},
        }

    # -- referrals ------------------------------------------------------------------------------

    def referral(self, r: Referral) -> None:
        p = self.practice
        iso = self.clock.iso
        stages = [
            (code, at)
            for code, at in (
                ("sent", r.sent),
                ("scheduled", r.scheduled),
                ("seen", r.seen),
                ("report-received", r.report),
            )
            if at is not None
        ]
        if r.cancelled is not None:
            sr_status, task_status, business, modified = "revoked", "cancelled", "cancelled", r.cancelled
        elif r.report is not None:
            sr_status, task_status, business, modified = "completed", "completed", "report-received", r.report
        else:
            latest = stages[-1] if stages else ("created", r.created)
            sr_status, task_status, business, modified = (
                "active",
                ("in-progress" if stages else "requested"),
                latest[0],
                latest[1],
            )
        self.write(
            "ServiceRequest",
            {
                "resourceType": "ServiceRequest",
                "id": r.referral_id,
                "status": sr_status,
                "intent": "order",
                "code": {"text": f"Referral to {r.specialty}"},
                "subject": ref("Patient", p.patient_id(r.patient)),
                "authoredOn": iso(r.created),
                "requester": ref("Practitioner", p.providers[r.provider].resource_id),
                "priority": r.priority,
                "performerType": {"text": r.specialty},
            },
        )
        task: dict[str, Any] = {
            "resourceType": "Task",
            "id": r.task_id,
            "status": task_status,
            "intent": "order",
            "focus": ref("ServiceRequest", r.referral_id),
            "for": ref("Patient", p.patient_id(r.patient)),
            "authoredOn": iso(r.created),
            "lastModified": iso(modified),
            "businessStatus": {"text": business},
            "location": ref("Location", p.locations[r.location].code),
        }
        if stages:  # FHIR forbids empty arrays
            task["output"] = [
                {"type": {"coding": [{"system": REFERRAL_STAGE_SYSTEM, "code": code}]}, "valueDateTime": iso(at)}
                for code, at in stages
            ]
        self.write("Task", task)
