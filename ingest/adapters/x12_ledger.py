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

import pyarrow as pa

from ingest.batch import Derivation, Target
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

# A charge entry of each submission of the touched claims (`_touched`, the claim ids a file's
# claims name): what is in effect after it minus what was before. The submissions are found by
# their claim ids first and then read by row id: the scan reads two columns of `claims`, not all.
_CHARGES = """
    WITH subs AS (
        SELECT c.*, CASE WHEN frequency_code = '8' THEN 0 ELSE billed_amount END AS in_effect
        FROM main.claims c WHERE rowid IN (
            SELECT rowid FROM main.claims WHERE source = 'x12' AND claim_id IN (SELECT claim_id FROM _touched))
    )
    SELECT 'x12:charge:' || submission_id AS entry_id, claim_id, patient_key, location_id, provider_id,
           payer_id, service_date, CAST(timezone({timezone}, submitted_at) AS DATE) AS posted_date,
           'charge' AS entry_type, CAST(NULL AS VARCHAR) AS party,
           CAST(in_effect - coalesce(lag(in_effect) OVER (PARTITION BY claim_id
                ORDER BY submitted_at, submission_id), 0) AS DECIMAL(18,2)) AS amount,
           CAST(NULL AS VARCHAR) AS group_code, CAST(NULL AS VARCHAR) AS reason_code, 'x12' AS source
    FROM subs
"""

# The payment and adjustment entries of the touched claims still missing a claim detail (an 835
# loaded before the claim): the ledger target fills them from the claim's first submission
# (`CLAIM_DETAILS`).
_DETAILS_MISSING = (
    "SELECT entry_id, claim_id FROM main.ledger WHERE source = 'x12' AND entry_type <> 'charge' "
    "AND claim_id IN (SELECT claim_id FROM _touched) "
    "AND (service_date IS NULL OR location_id IS NULL OR provider_id IS NULL)"
)


def ledger_derivations(timezone: str, claim_ids: list[str]) -> list[Derivation]:
    """The charge entries of `claim_ids` (inserted or brought up to date) and the claim details
    of their remittance entries, written through the load path after the file's rows."""
    touched = {"_touched": pa.table({"claim_id": pa.array(sorted(set(claim_ids)), pa.string())})}
    return [
        Derivation(Target("ledger", counted=False, writer="charge"), _CHARGES.format(timezone=lit(timezone)), touched),
        Derivation(
            Target("ledger", mode="update", counted=False, derived=CLAIM_DETAILS, join=CLAIM_DETAILS_JOIN),
            _DETAILS_MISSING,
            touched,
        ),
    ]
