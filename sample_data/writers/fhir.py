"""FHIR R4 Bulk Data NDJSON: one resource per line, one file per resource type.

Resources follow docs/contracts.md section 1 (statuses, extensions, the stage-time Task
outputs). The few directory resources are dicts rendered by `dumps`; the high-volume ones
(Patient, Slot, Appointment, Encounter, DocumentReference, ServiceRequest, Task) are written
from templates that give exactly what `dumps` gives for the same dict (sorted keys, no spaces),
because building and encoding a dict per resource was the largest cost of a run. Every value
put into a template is a number, an instant or text from the simulator's fixed ASCII tables,
so none needs JSON escaping; the format tests parse every line.
"""

from __future__ import annotations

import json
from typing import Any

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
ORGANIZATION = "Riverside Community Physicians"

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
_TYPE_JSON = {
    visit: f'"appointmentType":{{"coding":[{{"code":"{code}","system":"{APPOINTMENT_TYPE_SYSTEM}"}}],"text":"{text}"}}'
    for visit, (code, text) in APPOINTMENT_TYPES.items()
}
_BOOL = {True: "true", False: "false"}
_ENCOUNTER_CLASS = {True: ("VR", "virtual"), False: ("AMB", "ambulatory")}  # by telehealth


def dumps(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def path(kind: str) -> str:
    """The export file of a resource type, relative to the output directory."""
    return f"fhir/{kind}.ndjson"


class Fhir:
    """Renders the practice's resources as NDJSON lines (each ending in a newline)."""

    def __init__(self, practice: Practice) -> None:
        self.practice = practice
        self.clock: Clock = practice.clock

    # -- directory resources ----------------------------------------------------------------

    def directory(self) -> dict[str, list[str]]:
        """Organization, Location, Practitioner and Schedule lines, by resource type."""
        p = self.practice
        organization = {"resourceType": "Organization", "id": "org-1", "active": True, "name": ORGANIZATION}
        return {
            "Organization": [dumps(organization) + "\n"],
            "Location": [dumps(self.location(loc)) + "\n" for loc in p.locations],
            "Practitioner": [dumps(self.practitioner(prov)) + "\n" for prov in p.providers],
            "Schedule": [
                dumps(self.schedule(prov)) + "\n" for prov in p.providers if p.locations[prov.location].system == "ehr"
            ],
        }

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

    def schedule(self, prov: Provider) -> dict[str, Any]:
        p = self.practice
        return {
            "resourceType": "Schedule",
            "id": f"sch-{prov.resource_id}",
            "active": True,
            "actor": [ref("Practitioner", prov.resource_id), ref("Location", p.locations[prov.location].code)],
            "planningHorizon": {
                "start": self.clock.iso(self.clock.at(p.params.start, 8 * 60)),
                "end": self.clock.iso(p.cutoff),
            },
        }

    def patient(self, i: int) -> str:
        p = self.practice
        person = p.person(i)
        return (
            f'{{"address":[{{"city":"{person.city}","line":["{person.street}"],"postalCode":"{person.postal_code}",'
            f'"state":"{person.state}"}}],"birthDate":"{person.birth_date.isoformat()}","gender":"{person.gender}",'
            f'"id":"{p.patient_id(i)}","identifier":[{{"system":"{MRN_SYSTEM}","value":"{p.patient_mrn(i)}"}}],'
            f'"name":[{{"family":"{person.family}","given":["{person.given}"]}}],"resourceType":"Patient",'
            f'"telecom":[{{"system":"phone","use":"home","value":"{person.phone}"}}]}}\n'
        )

    def slot(self, slot_id: str, provider: int, start: int, minutes: int, status: str) -> str:
        iso = self.clock.iso
        schedule = f"sch-{self.practice.providers[provider].resource_id}"
        return (
            f'{{"end":"{iso(start + minutes * 60)}","id":"{slot_id}","resourceType":"Slot",'
            f'"schedule":{{"reference":"Schedule/{schedule}"}},"start":"{iso(start)}","status":"{status}"}}\n'
        )

    # -- scheduling and visits ----------------------------------------------------------------

    def appointment(
        self, a: Appointment, *, status: str | None = None, drop_start: bool = False, resource_id: str | None = None
    ) -> str:
        """The Appointment line; `status`, `drop_start` and `resource_id` make the dirty variants."""
        p, iso = self.practice, self.clock.iso
        status = status or a.status
        cancel = ""
        if a.cancel_code is not None and status == "cancelled":
            cancel = (
                f'"cancelationReason":{{"coding":[{{"code":"{a.cancel_code}","system":"{CANCEL_REASON_SYSTEM}"}}]}},'
            )
        end = "" if drop_start else f'"end":"{iso(a.start + a.minutes * 60)}",'
        previous = ""
        if a.rebooked_from is not None:
            previous = (
                f',{{"url":"{PREVIOUS_APPOINTMENT_URL}",'
                f'"valueReference":{{"reference":"Appointment/{a.rebooked_from}"}}}}'
            )
        start = "" if drop_start else f',"start":"{iso(a.start)}"'
        return (
            f'{{{_TYPE_JSON[a.visit]},{cancel}"created":"{iso(a.booked)}",{end}'
            f'"extension":[{{"url":"{NEW_PATIENT_URL}","valueBoolean":{_BOOL[a.is_new]}}}{previous}],'
            f'"id":"{resource_id or a.appointment_id}","meta":{{"lastUpdated":"{iso(a.last_updated)}"}},'
            f'"minutesDuration":{a.minutes},"participant":['
            f'{{"actor":{{"reference":"Patient/{p.patient_id(a.patient)}"}},"status":"accepted"}},'
            f'{{"actor":{{"reference":"Practitioner/{p.providers[a.provider].resource_id}"}},"status":"accepted"}},'
            f'{{"actor":{{"reference":"Location/{p.locations[a.location].code}"}},"status":"accepted"}}],'
            f'"resourceType":"Appointment"{start},"status":"{FHIR_STATUS[status]}"}}\n'
        )

    def encounter(self, a: Appointment) -> str | None:
        enc = a.encounter
        if enc is None:
            return None
        p, iso = self.practice, self.clock.iso
        code, display = _ENCOUNTER_CLASS[a.telehealth]
        history = ""
        checked_in = iso(enc.checked_in)
        if enc.roomed is not None and enc.provider_start is not None and enc.provider_end is not None:
            roomed = iso(enc.roomed)
            started, ended = iso(enc.provider_start), iso(enc.provider_end)
            history = (
                f',"statusHistory":[{{"period":{{"end":"{roomed}","start":"{checked_in}"}},"status":"arrived"}},'
                f'{{"period":{{"end":"{started}","start":"{roomed}"}},"status":"triaged"}},'
                f'{{"period":{{"end":"{ended}","start":"{started}"}},"status":"in-progress"}}]'
            )
        return (
            f'{{"appointment":[{{"reference":"Appointment/{a.appointment_id}"}}],'
            f'"class":{{"code":"{code}","display":"{display}","system":"{ACT_CODE_SYSTEM}"}},'
            f'"id":"{enc.encounter_id}","location":[{{"location":{{"reference":"Location/{p.locations[a.location].code}"}}}}],'
            f'"participant":[{{"individual":{{"reference":"Practitioner/{p.providers[a.provider].resource_id}"}}}}],'
            f'"period":{{"end":"{iso(enc.checked_out)}","start":"{checked_in}"}},'
            f'"resourceType":"Encounter","status":"finished"{history},'
            f'"subject":{{"reference":"Patient/{p.patient_id(a.patient)}"}}}}\n'
        )

    def backwards_encounter(self, a: Appointment, resource_id: str) -> str:
        """A dirty Encounter: no appointment link, checked out before it checked in (a reject)."""
        enc = a.encounter
        assert enc is not None
        p, iso = self.practice, self.clock.iso
        code, display = _ENCOUNTER_CLASS[a.telehealth]
        return (
            dumps(
                {
                    "resourceType": "Encounter",
                    "id": resource_id,
                    "status": "finished",
                    "class": {"system": ACT_CODE_SYSTEM, "code": code, "display": display},
                    "subject": ref("Patient", p.patient_id(a.patient)),
                    "participant": [{"individual": ref("Practitioner", p.providers[a.provider].resource_id)}],
                    "period": {"start": iso(enc.checked_out), "end": iso(enc.checked_in)},
                    "location": [{"location": ref("Location", p.locations[a.location].code)}],
                }
            )
            + "\n"
        )

    def document(self, a: Appointment, doc_id: str) -> str | None:
        enc = a.encounter
        if enc is None or enc.chart_closed is None:
            return None
        p = self.practice
        return (
            f'{{"author":[{{"reference":"Practitioner/{p.providers[a.provider].resource_id}"}}],'
            '"content":[{"attachment":{"contentType":"text/plain","title":"Progress note"}}],'
            f'"context":{{"encounter":[{{"reference":"Encounter/{enc.encounter_id}"}}]}},'
            f'"date":"{self.clock.iso(enc.chart_closed)}","docStatus":"final","id":"{doc_id}",'
            f'"resourceType":"DocumentReference","status":"current",'
            f'"subject":{{"reference":"Patient/{p.patient_id(a.patient)}"}},'
            '"type":{"coding":[{"code":"11506-3","display":"Progress note","system":"http://loinc.org"}]}}\n'
        )

    # -- referrals ------------------------------------------------------------------------------

    def referral(self, r: Referral) -> tuple[str, str]:
        """The ServiceRequest and Task lines of a referral."""
        p, iso = self.practice, self.clock.iso
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
        created, patient = iso(r.created), p.patient_id(r.patient)
        service_request = (
            f'{{"authoredOn":"{created}","code":{{"text":"Referral to {r.specialty}"}},"id":"{r.referral_id}",'
            f'"intent":"order","performerType":{{"text":"{r.specialty}"}},"priority":"{r.priority}",'
            f'"requester":{{"reference":"Practitioner/{p.providers[r.provider].resource_id}"}},'
            f'"resourceType":"ServiceRequest","status":"{sr_status}","subject":{{"reference":"Patient/{patient}"}}}}\n'
        )
        output = ""
        if stages:  # FHIR forbids empty arrays
            output = (
                ',"output":['
                + ",".join(
                    f'{{"type":{{"coding":[{{"code":"{code}","system":"{REFERRAL_STAGE_SYSTEM}"}}]}},"valueDateTime":"{iso(at)}"}}'
                    for code, at in stages
                )
                + "]"
            )
        task = (
            f'{{"authoredOn":"{created}","businessStatus":{{"text":"{business}"}},'
            f'"focus":{{"reference":"ServiceRequest/{r.referral_id}"}},"for":{{"reference":"Patient/{patient}"}},'
            f'"id":"{r.task_id}","intent":"order","lastModified":"{iso(modified)}",'
            f'"location":{{"reference":"Location/{p.locations[r.location].code}"}}{output},'
            f'"resourceType":"Task","status":"{task_status}"}}\n'
        )
        return service_request, task
