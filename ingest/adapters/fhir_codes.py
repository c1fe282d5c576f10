"""The FHIR vocabulary both FHIR mappers read: the Python one (`fhir`) and DuckDB's (`fhir_sql`).

One place for the statuses, classes and extension URLs, so the fast path cannot drift from the
exact one.
"""

SOURCE = "fhir"  # the source name its rows and pseudonymized keys carry
NEW_PATIENT_URL = "http://clinic-kpis.org/fhir/StructureDefinition/new-patient"
PREVIOUS_APPOINTMENT_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.previousAppointment"
CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
APPOINTMENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0276"

APPOINTMENT_STATUS = {
    "proposed": "booked",
    "pending": "booked",
    "waitlist": "booked",
    "booked": "booked",
    "arrived": "arrived",
    "checked-in": "arrived",
    "fulfilled": "fulfilled",
    "noshow": "noshow",
    "cancelled": "cancelled",
    "entered-in-error": "entered_in_error",
}
ENCOUNTER_STATUS = {
    "planned": "planned",
    "arrived": "arrived",
    "triaged": "arrived",
    "in-progress": "in_progress",
    "onleave": "in_progress",
    "finished": "finished",
    "cancelled": "cancelled",
    "entered-in-error": "entered_in_error",
}
SLOT_STATUS = {"free": "free", "busy": "busy", "busy-unavailable": "blocked", "busy-tentative": "tentative"}
# Encounter.class of a clinic visit -> whether it is telehealth: HL7 v3 ActCode AMB and VR (R4's
# binding), and HL7 v2 table 0004 "O" (outpatient), which some EHRs export instead.
CLINIC_CLASSES = {"AMB": False, "VR": True}
V2_PATIENT_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
V2_CLINIC_CLASSES = {"O": False}
