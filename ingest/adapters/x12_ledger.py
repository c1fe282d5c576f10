"""Ledger entries the contract derives from X12 claims, kept consistent whatever order files load in.

docs/contracts.md: one `charge` per original submission (billed amount, posted on the local
date of submission), a replacement (7) posts the difference to the charge in effect, a void
(8) posts minus the charge in effect. Put as one rule: walking a claim's submissions in
submission order, each posts (its billed amount, or 0 for a void) minus the amount in effect
before it. Recomputing that for every claim a file touches means a replacement that arrives
before its original (files loaded out of order) still ends with the right charges, and
loading a file twice changes nothing.

Remittance entries (payments, adjustments) come from the 835 and may arrive before the claim:
their missing service date, location and provider are taken from the claim's first submission
when the 835 loads (`CLAIM_DETAILS`), and filled in when the claim loads later.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingest.load import lit

# A remittance entry's claim details: its own when the 835 states them, else the claim's first
# submission's (evaluated over the merged ledger row `row`, see Target.derived). The claims are
# looked up by one join, aggregated over the submissions of the claims the file's entries name
# only (`s`: its staged rows), so the cost follows the file, not the warehouse's claims.
_DETAILS = ("service_date", "location_id", "provider_id")
CLAIM_DETAILS = tuple((column, f"coalesce(row.{column}, claim.{column})") for column in _DETAILS)
CLAIM_DETAILS_JOIN = (
    "LEFT JOIN (SELECT claim_id, "
    + ", ".join(f"arg_min({column}, submitted_at) AS {column}" for column in _DETAILS)
    + " FROM main.claims WHERE source = 'x12' AND claim_id IN (SELECT claim_id FROM s) GROUP BY claim_id) AS claim "
    "ON claim.claim_id = row.claim_id"
)

_LEDGER_COLUMNS = (
    "entry_id, claim_id, patient_key, location_id, provider_id, payer_id, service_date, posted_date, "
    "entry_type, party, amount, group_code, reason_code, source"
)

# What a charge entry takes from its claim, and so what changes when the claim does.
_CHARGE_FACTS = (
    "claim_id",
    "patient_key",
    "location_id",
    "provider_id",
    "payer_id",
    "service_date",
    "posted_date",
    "amount",
)


def derive_ledger(cur: duckdb.DuckDBPyConnection, run_id: int, timezone: str, claim_ids: list[str]) -> None:
    """Upsert the charge entries of `claim_ids` and fill the claim details of their remittance entries."""
    cur.register("_touched_in", pa.table({"claim_id": pa.array(claim_ids, pa.string())}))
    cur.execute("CREATE OR REPLACE TEMP TABLE _touched AS SELECT DISTINCT claim_id FROM _touched_in")
    cur.unregister("_touched_in")
    cur.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _charges AS
        WITH subs AS (
            SELECT c.*, CASE WHEN frequency_code = '8' THEN 0 ELSE billed_amount END AS in_effect
            FROM claims c JOIN _touched t USING (claim_id) WHERE c.source = 'x12'
        )
        SELECT 'x12:charge:' || submission_id AS entry_id, claim_id, patient_key, location_id, provider_id,
               payer_id, service_date, CAST(timezone({lit(timezone)}, submitted_at) AS DATE) AS posted_date,
               'charge' AS entry_type, CAST(NULL AS VARCHAR) AS party,
               CAST(in_effect - coalesce(lag(in_effect) OVER (PARTITION BY claim_id
                    ORDER BY submitted_at, submission_id), 0) AS DECIMAL(18,2)) AS amount,
               CAST(NULL AS VARCHAR) AS group_code, CAST(NULL AS VARCHAR) AS reason_code, 'x12' AS source
        FROM subs
        """
    )
    # One upsert through the ledger's primary key: a join would scan the whole ledger for every file.
    cur.execute(
        f"INSERT INTO ledger ({_LEDGER_COLUMNS}, ingest_run_id) SELECT {_LEDGER_COLUMNS}, {run_id} FROM _charges "
        "ON CONFLICT (entry_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _CHARGE_FACTS)
        + f", ingest_run_id = {run_id} WHERE "
        + " OR ".join(f"ledger.{c} IS DISTINCT FROM excluded.{c}" for c in _CHARGE_FACTS)
    )
    cur.execute(
        f"""
        UPDATE ledger AS l SET service_date = coalesce(l.service_date, f.service_date),
               location_id = coalesce(l.location_id, f.location_id),
               provider_id = coalesce(l.provider_id, f.provider_id), ingest_run_id = {run_id}
        FROM (
            SELECT claim_id, arg_min(service_date, submitted_at) AS service_date,
                   arg_min(location_id, submitted_at) AS location_id, arg_min(provider_id, submitted_at) AS provider_id
            FROM claims JOIN _touched USING (claim_id) WHERE source = 'x12' GROUP BY claim_id
        ) f
        WHERE l.claim_id = f.claim_id AND l.source = 'x12' AND l.entry_type <> 'charge'
          AND ((l.service_date IS NULL AND f.service_date IS NOT NULL)
            OR (l.location_id IS NULL AND f.location_id IS NOT NULL)
            OR (l.provider_id IS NULL AND f.provider_id IS NOT NULL))
        """
    )
