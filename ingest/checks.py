"""The sentences a practice manager reads when a record is quarantined.

The rules themselves live in one place, the canonical schema (`kpis/schema/`): every NOT NULL
and CHECK constraint is evaluated on the incoming rows before anything is written, so a bad
record is quarantined instead of aborting the file. This module only says, for each rule, what
went wrong in words, with the offending values filled in (instants in the practice's local
time). Rules without an entry get a sentence generated from the constraint.
"""

from __future__ import annotations

# (table, column) -> what it means when a required column is empty.
REQUIRED: dict[tuple[str, str], str] = {
    ("appointments", "scheduled_start"): "the appointment has no start time, so it cannot be placed in a period",
    ("appointments", "appointment_id"): "the appointment has no id",
    ("appointments", "status"): "the appointment has no status",
    ("encounters", "encounter_id"): "the visit has no id",
    ("encounters", "status"): "the visit has no status",
    ("claims", "submitted_at"): "the claim submission has no date",
    ("claims", "service_date"): "the claim has no date of service",
    ("claims", "billed_amount"): "the claim has no billed amount",
    ("remittances", "paid_date"): "the remittance has no payment date (BPR16 or DTM*405)",
    ("remittances", "paid_amount"): "the remittance has no paid amount (CLP04)",
    ("ledger", "posted_date"): "the transaction has no posting date",
    ("ledger", "amount"): "the transaction has no amount",
    ("calls", "entered_at"): "the call has no queue entry time",
    ("calls", "wait_seconds"): "the call's wait time is unknown",
    ("referrals", "created_at"): "the referral has no creation date",
    ("portal_messages", "received_at"): "the message has no received time",
    ("slots", "start_at"): "the slot has no start time",
    ("slots", "minutes"): "the slot has no length",
}

# (table, first column of a CHECK constraint) -> what it means when the rule is broken.
BROKEN: dict[tuple[str, str], str] = {
    (
        "appointments",
        "scheduled_minutes",
    ): "the appointment is {scheduled_minutes} minutes long; it must be longer than 0",
    ("encounters", "roomed_at"): "roomed at {roomed_at}, before check-in at {checked_in_at}",
    ("encounters", "provider_start_at"): "the provider started at {provider_start_at}, before rooming at {roomed_at}",
    (
        "encounters",
        "provider_end_at",
    ): "the provider finished at {provider_end_at}, before starting at {provider_start_at}",
    ("encounters", "checked_out_at"): "check-out at {checked_out_at} is before check-in at {checked_in_at}",
    ("encounters", "chart_closed_at"): (
        "the chart was closed at {chart_closed_at}, before the provider started the visit at {provider_start_at}"
    ),
    ("claims", "billed_amount"): "the billed amount {billed_amount} is negative",
    ("claim_lines", "line_no"): "line number {line_no} must be 1 or more",
    ("claim_lines", "charge_amount"): "the line charge {charge_amount} is negative",
    ("calls", "wait_seconds"): "the wait time {wait_seconds} s is negative",
    ("calls", "talk_seconds"): "the talk time {talk_seconds} s is negative",
    ("calls", "answered_at"): "the call was answered at {answered_at}, before it entered the queue at {entered_at}",
    ("calls", "ended_at"): "the call ends at {ended_at}, before it entered the queue at {entered_at}",
    ("referrals", "sent_at"): "the referral was sent at {sent_at}, before it was created at {created_at}",
    ("referrals", "report_received_at"): (
        "the consult report arrived at {report_received_at}, before the referral was created at {created_at}"
    ),
    ("portal_messages", "first_response_at"): (
        "the first staff reply at {first_response_at} is before the message was received at {received_at}"
    ),
    ("slots", "minutes"): "the slot is {minutes} minutes long; it must be longer than 0",
}

DUPLICATE = (
    "{what} appears earlier in this file ({kind} {first}) with different values ({diff}); "
    "the later occurrence is not loaded"
)
IMPLAUSIBLE_DATE = (
    "{field} {value} is outside the plausible range {earliest} to {latest}; check the export "
    "(the range is [ingest] earliest_date and latest_years_ahead)"
)
