"""The base relations KPI specs are written against: one SELECT per fact, over the canonical schema.

A spec never reads a canonical table directly. It names a relation here, which states the
facts in the words KPIs use: one row per appointment with `rescheduled` already worked out,
one row per claim with its first remittance, one row per ledger entry with its signed effect
on A/R, and so on. Every relation exposes the same conventions:

* `record_id` and `patient_key` (a pseudonym, or NULL) identify the row for `explain`;
* dimension columns carry the dimension's name (`location`, `provider`, `payer`, ...);
* derived facts that several KPIs share (a rescheduled appointment, a claim's first
  remittance, business hours to first reply) are computed here once.

Each relation also says how far its data reaches (`data_end`, a local date): periods after it
are flagged incomplete. The SQL is DuckDB's dialect; the engine parses it with SQLGlot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import sqlglot

from kpis.business_time import business_hours_between
from kpis.config import Config
from kpis.sql_literals import sql_literal

# Every dimension a KPI may be cut by, with the reference data that lists its values.
DIMENSIONS = (
    "location",
    "provider",
    "payer",
    "payer_class",
    "visit_type",
    "new_patient",
    "queue",
    "specialty",
    "denial_reason",
    "weekday",
    "hour_of_day",
)


INSTANT, DATE = "instant", "date"


@dataclass(frozen=True)
class Relation:
    name: str
    description: str
    sql: str  # a SELECT (optionally WITH ...) in DuckDB SQL
    data_end_sql: str  # a scalar SELECT: the last local date the data covers (NULL when empty)
    events: Mapping[str, str]  # columns that can place a row in a period: INSTANT or DATE
    # a scalar SELECT: the first local date the data cover, for KPIs that look back over a window
    data_start_sql: str | None = None
    # what a sum that should be positive (a denominator, an A/R balance) but is not usually means
    not_positive: str = ""

    @property
    def columns(self) -> frozenset[str]:
        return _output_columns(self.sql)

    @property
    def dimensions(self) -> frozenset[str]:
        return self.columns & frozenset(DIMENSIONS)


@cache
def _output_columns(sql: str) -> frozenset[str]:
    return frozenset(sqlglot.parse_one(sql, read="duckdb").named_selects)


def local(column: str, tz: str) -> str:
    """SQL: the local wall-clock timestamp of a TIMESTAMPTZ column (DuckDB's timezone(tz, ts))."""
    return f"({column} AT TIME ZONE {sql_literal(tz)})"


def local_date(column: str, tz: str) -> str:
    return f"CAST({local(column, tz)} AS DATE)"


def local_weekday(column: str, tz: str) -> str:
    """SQL: the ISO weekday (1 = Monday ... 7 = Sunday) of the local date of a TIMESTAMPTZ column.

    Counted from Monday 1900-01-01 with plain date arithmetic, because the engines' weekday
    functions disagree (Spark's DAYOFWEEK starts on Sunday) and transpile wrongly.
    """
    return f"CAST((DATE_DIFF('day', DATE '1900-01-01', {local_date(column, tz)}) % 7) + 1 AS INTEGER)"


def each_day(table: str, columns: str) -> str:
    """`columns` of `table` (which has start_day and end_day) under each day its span touches, as `day`.

    Why: overlap of slots and appointments is joined on provider and day (an equi-join, not a
    range join over every pair); a span that crosses midnight is listed under its second day too,
    and only then, so the common case costs one row.
    """
    return (
        f"SELECT {columns}, start_day AS day FROM {table} "
        f"UNION ALL SELECT {columns}, end_day FROM {table} WHERE end_day <> start_day"
    )


def build_relations(config: Config) -> dict[str, Relation]:
    """Every relation, with the practice time zone and business hours of `config` filled in."""
    tz = config.timezone
    hours = config.business_hours
    response_hours = business_hours_between(local("received_at", tz), local("first_response_at", tz), hours)
    resolved = "status IN ('fulfilled', 'arrived', 'noshow')"
    appointments_end = f"SELECT {local_date('MAX(scheduled_start)', tz)} FROM appointments WHERE {resolved}"
    relations = [
        Relation(
            "appointments",
            "One row per scheduled appointment, with whether it was rescheduled (a later booking names it).",
            """
            SELECT
                a.source || ':' || a.appointment_id AS record_id,
                a.patient_key,
                a.scheduled_start,
                a.scheduled_minutes,
                a.booked_at,
                a.cancelled_at,
                a.status,
                a.cancel_initiator,
                a.is_telehealth,
                r.rebooked_from_id IS NOT NULL AS rescheduled,
                a.source || ':' || a.rebooked_from_id AS rebooked_record_id,
                a.location_id AS location,
                a.provider_id AS provider,
                a.payer_id AS payer,
                p.payer_class,
                a.visit_type,
                a.is_new_patient AS new_patient
            FROM appointments AS a
            LEFT JOIN payers AS p ON p.payer_id = a.payer_id
            LEFT JOIN (
                SELECT DISTINCT source, rebooked_from_id FROM appointments WHERE rebooked_from_id IS NOT NULL
            ) AS r ON r.source = a.source AND r.rebooked_from_id = a.appointment_id
            """,
            appointments_end,
            {"scheduled_start": INSTANT, "booked_at": INSTANT, "cancelled_at": INSTANT},
        ),
        Relation(
            "encounters",
            "One row per encounter, with its appointment's scheduled start, visit type and payer.",
            """
            SELECT
                e.source || ':' || e.encounter_id AS record_id,
                e.patient_key,
                e.status,
                e.is_telehealth,
                e.checked_in_at,
                e.roomed_at,
                e.provider_start_at,
                e.provider_end_at,
                e.checked_out_at,
                e.chart_closed_at,
                a.scheduled_start,
                e.location_id AS location,
                e.provider_id AS provider,
                a.payer_id AS payer,
                p.payer_class,
                a.visit_type,
                a.is_new_patient AS new_patient
            FROM encounters AS e
            LEFT JOIN appointments AS a ON a.source = e.source AND a.appointment_id = e.appointment_id
            LEFT JOIN payers AS p ON p.payer_id = a.payer_id
            """,
            f"SELECT {local_date('MAX(checked_in_at)', tz)} FROM encounters",
            {"checked_in_at": INSTANT, "provider_end_at": INSTANT, "checked_out_at": INSTANT},
        ),
        Relation(
            "slots",
            "One row per schedule template slot, with whether a live appointment of its provider overlaps it.",
            f"""
            WITH slot_spans AS (
                SELECT source, slot_id, provider_id, start_at, end_at,
                       CAST(start_at AS DATE) AS start_day, CAST(end_at AS DATE) AS end_day
                FROM (SELECT *, start_at + minutes * INTERVAL 1 MINUTE AS end_at FROM slots) AS s
            ),
            slot_days AS ({each_day("slot_spans", "source, slot_id, provider_id, start_at, end_at")}),
            live_appointments AS (
                SELECT provider_id, start_at, end_at,
                       CAST(start_at AS DATE) AS start_day, CAST(end_at AS DATE) AS end_day
                FROM (
                    SELECT provider_id, scheduled_start AS start_at,
                           scheduled_start + COALESCE(scheduled_minutes, 1) * INTERVAL 1 MINUTE AS end_at
                    FROM appointments
                    WHERE status NOT IN ('cancelled', 'entered_in_error')
                ) AS a
            ),
            appointment_days AS ({each_day("live_appointments", "provider_id, start_at, end_at")}),
            booked_slots AS (
                SELECT DISTINCT s.source, s.slot_id
                FROM slot_days AS s
                JOIN appointment_days AS a ON a.provider_id = s.provider_id AND a.day = s.day
                WHERE a.start_at < s.end_at AND a.end_at > s.start_at
            )
            SELECT
                s.source || ':' || s.slot_id AS record_id,
                CAST(NULL AS VARCHAR) AS patient_key,
                s.start_at,
                s.minutes,
                s.status,
                b.slot_id IS NOT NULL AS booked,
                s.location_id AS location,
                s.provider_id AS provider,
                s.visit_type
            FROM slots AS s
            LEFT JOIN booked_slots AS b ON b.source = s.source AND b.slot_id = s.slot_id
            """,
            appointments_end,
            {"start_at": INSTANT},
        ),
        Relation(
            "calls",
            "One row per call that entered a phone queue.",
            f"""
            SELECT
                source || ':' || call_id AS record_id,
                CAST(NULL AS VARCHAR) AS patient_key,
                entered_at,
                outcome,
                wait_seconds,
                queue,
                location_id AS location,
                {local_weekday("entered_at", tz)} AS weekday,
                CAST(EXTRACT(HOUR FROM {local("entered_at", tz)}) AS INTEGER) AS hour_of_day
            FROM calls
            """,
            f"SELECT {local_date('MAX(entered_at)', tz)} FROM calls",
            {"entered_at": INSTANT},
        ),
        Relation(
            "claim_outcomes",
            "One row per claim: its first submission, first 7/8 resubmission and first non-reversal remittance.",
            f"""
            WITH claim_submissions AS (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY claim_id ORDER BY submitted_at, submission_id) AS k
                FROM claims
            ),
            claim_reworks AS (
                SELECT claim_id, MIN(submitted_at) AS first_rework_at
                FROM claims
                WHERE frequency_code IN ('7', '8')
                GROUP BY claim_id
            ),
            claim_remits AS (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY claim_id ORDER BY paid_date, remittance_id) AS k
                FROM remittances
                WHERE claim_status_code <> '22'
            ),
            remit_adjustments AS (
                SELECT
                    remittance_id,
                    BOOL_OR(group_code IN ('CO', 'PI', 'OA')) AS has_payer_adjustment,
                    BOOL_OR(group_code = 'PR') AS has_patient_responsibility,
                    BOOL_OR(reason_code = '18') AS has_carc18
                FROM remittance_adjustments
                GROUP BY remittance_id
            ),
            payer_reasons AS (
                -- the payer's principal reason on a remittance: its largest CO/PI/OA adjustment
                SELECT
                    remittance_id,
                    group_code || '-' || reason_code AS reason,
                    ROW_NUMBER() OVER (
                        PARTITION BY remittance_id ORDER BY ABS(amount) DESC, group_code, reason_code
                    ) AS k
                FROM remittance_adjustments
                WHERE group_code IN ('CO', 'PI', 'OA')
            ),
            first_submissions AS (SELECT * FROM claim_submissions WHERE k = 1),
            first_remits AS (SELECT * FROM claim_remits WHERE k = 1),
            first_outcomes AS (
                -- docs/contracts.md: a denial is CLP02 = 4, or nothing paid with a payer
                -- adjustment (CO/PI/OA) and no patient responsibility (PR never makes a denial)
                SELECT
                    f.*,
                    COALESCE(j.has_payer_adjustment, FALSE) AS has_payer_adjustment,
                    COALESCE(j.has_patient_responsibility, FALSE) AS has_patient_responsibility,
                    COALESCE(j.has_carc18, FALSE) AS has_carc18,
                    f.claim_status_code = '4'
                    OR (
                        f.paid_amount = 0
                        AND COALESCE(j.has_payer_adjustment, FALSE)
                        AND NOT COALESCE(j.has_patient_responsibility, FALSE)
                    ) AS is_denial,
                    r.reason AS payer_reason
                FROM first_remits AS f
                LEFT JOIN remit_adjustments AS j ON j.remittance_id = f.remittance_id
                LEFT JOIN payer_reasons AS r ON r.remittance_id = f.remittance_id AND r.k = 1
            )
            SELECT
                COALESCE(s.claim_id, f.claim_id) AS record_id,
                s.patient_key,
                s.submitted_at AS first_submitted_at,
                {local_date("s.submitted_at", tz)} AS first_submitted_date,
                s.service_date,
                s.billed_amount,
                {local_date("w.first_rework_at", tz)} AS first_rework_date,
                f.remittance_id AS first_remittance_id,
                f.paid_date AS first_paid_date,
                f.claim_status_code AS first_status_code,
                f.paid_amount AS first_paid_amount,
                f.billed_amount AS first_remit_billed_amount,
                f.has_carc18 AS first_has_carc18,
                f.is_denial AS first_is_denial,
                -- whether the system that sent the claim also sends its remittances: a practice-
                -- management claims export (Synthea claims.csv) has its payments in a ledger, not 835s
                COALESCE(s.source IN (SELECT DISTINCT source FROM remittances), FALSE) AS remits_loaded,
                CASE
                    WHEN f.remittance_id IS NULL THEN NULL
                    WHEN f.is_denial THEN COALESCE(f.payer_reason, 'CLP02-' || f.claim_status_code)
                    ELSE 'not denied'
                END AS denial_reason,
                s.location_id AS location,
                s.provider_id AS provider,
                COALESCE(s.payer_id, f.payer_id) AS payer,
                p.payer_class
            FROM first_submissions AS s
            FULL OUTER JOIN first_outcomes AS f ON f.claim_id = s.claim_id
            LEFT JOIN claim_reworks AS w ON w.claim_id = COALESCE(s.claim_id, f.claim_id)
            LEFT JOIN payers AS p ON p.payer_id = COALESCE(s.payer_id, f.payer_id)
            """,
            f"""
            SELECT GREATEST(
                (SELECT {local_date("MAX(submitted_at)", tz)} FROM claims),
                (SELECT MAX(paid_date) FROM remittances)
            )
            """,
            {"first_submitted_at": INSTANT, "first_paid_date": DATE, "service_date": DATE},
        ),
        Relation(
            "ledger",
            "One row per A/R transaction, with its signed effect on A/R and whether its claim is settled.",
            f"""
            WITH ledger_claims AS (
                -- a patient payment carries no payer: its A/R belongs to the claim's payer
                -- (claims keep their payer across resubmissions; MIN only makes the choice total)
                SELECT claim_id, MIN(submitted_at) AS first_billed_at, MIN(payer_id) AS claim_payer
                FROM claims GROUP BY claim_id
            )
            SELECT
                l.entry_id AS record_id,
                l.patient_key,
                l.claim_id,
                COALESCE(l.claim_id, 'entry:' || l.entry_id) AS account,
                l.posted_date,
                l.service_date,
                {local_date("c.first_billed_at", tz)} AS first_billed_date,
                l.entry_type,
                l.party,
                l.amount,
                l.group_code,
                l.reason_code,
                CASE WHEN l.entry_type IN ('charge', 'refund') THEN l.amount ELSE -l.amount END AS ar_amount,
                l.claim_id IS NOT NULL AND SUM(
                    CASE WHEN l.entry_type IN ('charge', 'refund') THEN l.amount ELSE -l.amount END
                ) OVER (PARTITION BY l.claim_id) = 0 AS claim_settled,
                l.location_id AS location,
                l.provider_id AS provider,
                COALESCE(l.payer_id, c.claim_payer) AS payer,
                p.payer_class
            FROM ledger AS l
            LEFT JOIN ledger_claims AS c ON c.claim_id = l.claim_id
            LEFT JOIN payers AS p ON p.payer_id = COALESCE(l.payer_id, c.claim_payer)
            """,
            "SELECT MAX(posted_date) FROM ledger",
            {"posted_date": DATE, "service_date": DATE},
            "SELECT MIN(posted_date) FROM ledger",
            "The ledger holds payments or adjustments whose charges are not loaded: load the claims "
            "(837s, or the transaction export) behind the remittances.",
        ),
        Relation(
            "referrals",
            "One row per outgoing referral, with the time it reached each stage.",
            """
            SELECT
                source || ':' || referral_id AS record_id,
                patient_key,
                created_at,
                status,
                scheduled_at,
                seen_at,
                report_received_at,
                location_id AS location,
                referring_provider_id AS provider,
                specialty
            FROM referrals
            """,
            f"""
            SELECT {local_date("MAX(GREATEST(created_at, sent_at, scheduled_at, seen_at, report_received_at))", tz)}
            FROM referrals
            """,
            {"created_at": INSTANT},
        ),
        Relation(
            "portal_messages",
            "One row per patient portal message, with business hours to the first staff reply.",
            f"""
            SELECT
                source || ':' || message_id AS record_id,
                patient_key,
                received_at,
                first_response_at,
                {response_hours} AS response_business_hours,
                category,
                location_id AS location,
                provider_id AS provider
            FROM portal_messages
            """,
            f"SELECT {local_date('MAX(GREATEST(received_at, first_response_at))', tz)} FROM portal_messages",
            {"received_at": INSTANT, "first_response_at": INSTANT},
        ),
    ]
    return {r.name: r for r in relations}
