"""What a load touched, relation by relation: the fact rows a refresh recomputes, and the rows it reads.

Every row a load writes carries that load's `ingest_run_id` (the Loader sets it on insert and on
update), so the rows changed since the store was refreshed are those with a run id above the
store's watermark (rows written outside ingest make the refresh a full rebuild instead).

A relation row depends on more than its own canonical row; the joins and windows of its SQL
(`kpis/relations.py`) say on what, and each relation here says the same in two parts:

* `touched`: the record ids whose facts must be recomputed, from the changed canonical rows and
  from the facts' previous state (an appointment moved to another day or provider frees the
  slots it overlapped; a remittance moved to another claim reopens the old claim);
* `reads`: for each canonical table the relation reads, the rows needed to recompute those
  record ids (all the rows a window or aggregate of the relation sees for them), so a refresh
  evaluates the relation over a few rows, not the whole warehouse.

Both are SQL over `main.<table>`, the relation's previous facts (`{facts}`), the temp tables
its `find` made (what only the previous facts know, read once while finding what changed; the
appointments' `_appointments_previous` serves the slots and third next available too) and
`_keys(key)` (the touched record ids). `{changed}` stands for "the row changed since the
watermark", with the table alias `t`.

A new join in a relation needs its dependency here; the tests that compare an incremental
refresh with a full rebuild after every kind of load are what catch a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from kpis.custom.third_next_available import week_of

# Rows written outside ingest may carry no run id; such a write is untracked (Store.transaction)
# and makes the refresh a full rebuild, so here every changed row has a run id above the
# watermark, which DuckDB can test on each row group's statistics without reading it.
CHANGED = "t.ingest_run_id > {watermark}"
KEYS = "(SELECT key FROM _keys)"
# every part of a touched record id after a ':', its source's own id among them: a test on the bare
# id column before the `source || ':' || id` one spares building that text for every row of a table
IDS = "(SELECT substr(key, p + 1) FROM _keys, unnest(range(1, length(key) + 1)) AS r(p) WHERE substr(key, p, 1) = ':')"
# every relation row with a payer whose class changed: only when some payer changed
_PAYERS = (
    "UNION SELECT f._key FROM {facts} AS f WHERE f.payer IN (SELECT payer_id FROM main.payers AS t WHERE {changed})"
)
# the same rows with their row ids and claims (the ledger's `_ledger_previous`)
_PAYER_ROWS = (
    "UNION SELECT f.rowid, f._key, f._claim FROM {facts} AS f "
    "WHERE f.payer IN (SELECT payer_id FROM main.payers AS t WHERE {changed})"
)


@dataclass(frozen=True)
class Dependencies:
    """How one relation's rows depend on canonical rows (see the module docstring)."""

    touched: str
    reads: Mapping[str, str]
    keep: Mapping[str, str] = field(default_factory=dict)  # fact column -> relation column: previous state
    # temp tables the reads use, made once from the touched record ids before the relation is evaluated
    prepare: Mapping[str, str] = field(default_factory=dict)
    # temp tables made while finding what changed (before any fact row is replaced), in order, for
    # `touched`, `prepare` and `reads` to use: what only the previous facts know, read once
    find: Mapping[str, str] = field(default_factory=dict)
    # a `find` table holding (_row, _key) for the previous fact row of every touched record id: the
    # refresh deletes those rows by row id without scanning the fact table's keys again
    old_rows: str | None = None
    # the touched record ids hold every row of each A/R account a changed row is or was in (the ledger
    # touches whole claims), unless a payer changed
    whole_accounts: bool = False
    # a SELECT of every record id (one column, duplicates allowed) when a full build evaluates the
    # relation in parts of its record ids, each through `reads` as an incremental refresh does
    every: str | None = None
    # a SELECT of one text value summing up what every row of the relation reads beyond its record
    # id's rows (e.g. which sources send remittances at all): when it is not the last refresh's,
    # the group is rebuilt, since a change there can move rows no changed canonical row names
    state: str | None = None


def _key_in(alias: str, column: str) -> str:
    """`alias.source || ':' || alias.column` is a touched record id (tested on the id column first)."""
    return f"({alias}.{column} IN {IDS} AND {alias}.source || ':' || {alias}.{column} IN {KEYS})"


def _own(table: str, column: str) -> Dependencies:
    """A relation row per canonical row (record id `source:<column>`), depending on nothing else."""
    return Dependencies(
        touched=f"SELECT t.source || ':' || t.{column} FROM main.{table} AS t WHERE {{changed}}",
        reads={table: _key_in("t", column)},
    )


_APPOINTMENT_KEY = "t.source || ':' || t.appointment_id"
_SPAN_END = "{start} + COALESCE({minutes}, 1) * INTERVAL 1 MINUTE"

DEPENDENCIES: dict[str, Dependencies] = {
    "appointments": Dependencies(
        # the changed appointments' previous facts, read once for what changed here, in the slots
        # and in third next available (each read of the 10 M facts' keys costs a quarter second)
        find={
            "_appointments_previous": f"""
                SELECT f._key, f._rebooked, f._provider, f._start, f._minutes, f._booked, f._cancelled
                FROM {{facts}} AS f
                WHERE f._key IN (SELECT {_APPOINTMENT_KEY} FROM main.appointments AS t WHERE {{changed}})
            """,
        },
        # an appointment is rescheduled when a later booking names it (rebooked_from_id)
        touched=f"""
            SELECT {_APPOINTMENT_KEY} FROM main.appointments AS t WHERE {{changed}}
            UNION SELECT t.source || ':' || t.rebooked_from_id FROM main.appointments AS t
                  WHERE {{changed}} AND t.rebooked_from_id IS NOT NULL
            UNION SELECT _rebooked FROM _appointments_previous WHERE _rebooked IS NOT NULL
            {{payers}}
        """,
        reads={
            # two ids OR-ed: the id-first test would add two joins, not spare the text (slower at 10 M)
            "appointments": f"{_APPOINTMENT_KEY} IN {KEYS} OR t.source || ':' || t.rebooked_from_id IN {KEYS}",
        },
        keep={
            "_rebooked": "rebooked_record_id",
            "_provider": "provider",
            "_start": "scheduled_start",
            "_minutes": "scheduled_minutes",
            "_booked": "booked_at",
            "_cancelled": "cancelled_at",
        },
    ),
    "encounters": Dependencies(
        # an encounter shows its appointment's scheduled start, payer, visit type and new/established
        touched="""
            SELECT t.source || ':' || t.encounter_id FROM main.encounters AS t WHERE {changed}
            UNION SELECT e.source || ':' || e.encounter_id
                  FROM main.encounters AS e
                  JOIN main.appointments AS t ON t.source = e.source AND t.appointment_id = e.appointment_id
                  WHERE {changed}
            {payers}
        """,
        reads={
            "encounters": _key_in("t", "encounter_id"),
            "appointments": f"""EXISTS (
                SELECT 1 FROM main.encounters AS e
                WHERE e.source = t.source AND e.appointment_id = t.appointment_id
                  AND {_key_in("e", "encounter_id")})""",
        },
    ),
    "slots": Dependencies(
        # a slot is booked while a live appointment of its provider overlaps it: a changed
        # appointment touches the slots its previous and its new span overlap
        touched=f"""
            WITH spans AS (
                SELECT t.provider_id AS provider, t.scheduled_start AS start_at,
                       {_SPAN_END.format(start="t.scheduled_start", minutes="t.scheduled_minutes")} AS end_at
                FROM main.appointments AS t WHERE {{changed}}
                UNION ALL
                SELECT f._provider, f._start, {_SPAN_END.format(start="f._start", minutes="f._minutes")}
                FROM _appointments_previous AS f  -- made with the appointments' changes (find)
            )
            SELECT t.source || ':' || t.slot_id FROM main.slots AS t WHERE {{changed}}
            UNION SELECT s.source || ':' || s.slot_id
                  FROM main.slots AS s
                  JOIN spans AS a ON a.provider = s.provider_id
                  WHERE a.start_at < s.start_at + s.minutes * INTERVAL 1 MINUTE AND a.end_at > s.start_at
                    AND s.start_at >= (SELECT min(start_at) - INTERVAL 1 DAY FROM spans)
                    AND s.start_at < (SELECT max(end_at) FROM spans)
        """,
        keep={"_start": "start_at"},
        # the relation pairs a slot and an appointment of one provider on a day of each (their start
        # and end days): only the appointments of the touched slots' providers on those days. Their
        # scheduled start lies within those days widened by a day each side (any time zone's cast)
        # and by the longest appointment (an end on one of the days): a range DuckDB checks against
        # each row group's bounds, so the 10 M appointments are not all read to find a day's
        prepare={
            "_slot_days": f"""
                SELECT DISTINCT provider_id, unnest([CAST(start_at AS DATE),
                                                     CAST(start_at + minutes * INTERVAL 1 MINUTE AS DATE)]) AS day
                FROM main.slots AS t WHERE {_key_in("t", "slot_id")}
            """,
            "_slot_span": """
                SELECT CAST(d.first AS TIMESTAMPTZ) - INTERVAL 2 DAY - a.longest * INTERVAL 1 MINUTE AS lo,
                       CAST(d.last AS TIMESTAMPTZ) + INTERVAL 3 DAY + a.backwards * INTERVAL 1 MINUTE AS hi
                FROM (SELECT min(day) AS first, max(day) AS last FROM _slot_days) AS d,
                     (SELECT GREATEST(max(COALESCE(scheduled_minutes, 1)), 0) AS longest,
                             GREATEST(-min(COALESCE(scheduled_minutes, 1)), 0) AS backwards
                      FROM main.appointments) AS a
            """,
        },
        reads={
            "slots": _key_in("t", "slot_id"),
            "appointments": f"""t.scheduled_start >= (SELECT lo FROM _slot_span)
                AND t.scheduled_start < (SELECT hi FROM _slot_span)
                AND t.provider_id IN (SELECT provider_id FROM _slot_days)
                AND (CAST(t.scheduled_start AS DATE) IN (SELECT day FROM _slot_days)
                     OR CAST({_SPAN_END.format(start="t.scheduled_start", minutes="t.scheduled_minutes")} AS DATE)
                        IN (SELECT day FROM _slot_days))""",
        },
    ),
    "calls": _own("calls", "call_id"),
    "claim_outcomes": Dependencies(
        # one row per claim: its submissions, its remittances (the first non-reversal one) and
        # that remittance's adjustments
        touched="""
            SELECT t.claim_id FROM main.claims AS t WHERE {changed}
            UNION SELECT t.claim_id FROM main.remittances AS t WHERE {changed}
            UNION SELECT r.claim_id FROM main.remittances AS r
                  JOIN main.remittance_adjustments AS t ON t.remittance_id = r.remittance_id WHERE {changed}
            UNION SELECT f._key FROM {facts} AS f
                  WHERE f._first_remittance IN (SELECT t.remittance_id FROM main.remittances AS t WHERE {changed})
            {payers}
        """,
        # whether the claim's source sends remittances at all (remits_loaded) reads every source of
        # remittances: one remittance of each is read beside the claims' own (the row it makes for its
        # own claim is not a touched record id's, so it is not kept)
        prepare={
            "_remittance_sources": "SELECT min(remittance_id) AS remittance_id FROM main.remittances GROUP BY source"
        },
        reads={
            "claims": f"t.claim_id IN {KEYS}",
            "remittances": f"t.claim_id IN {KEYS} OR t.remittance_id IN (SELECT * FROM _remittance_sources)",
            "remittance_adjustments": (
                f"t.remittance_id IN (SELECT remittance_id FROM main.remittances WHERE claim_id IN {KEYS})"
            ),
        },
        keep={"_first_remittance": "first_remittance_id"},
        every="SELECT claim_id FROM main.claims UNION ALL SELECT claim_id FROM main.remittances",
        # a source's first remittance (or its last one gone) flips remits_loaded for every claim of
        # that source, most of which no changed row names: the sources sending remittances, in order
        state="SELECT coalesce(string_agg(DISTINCT source, ',' ORDER BY source), '') FROM main.remittances",
    ),
    "ledger": Dependencies(
        # an entry's claim decides whether the claim is settled (all its entries), its first bill
        # and the payer of a patient payment; A/R ages an undated account from its first posting.
        # An unchanged entry's claim is its previous fact's `_claim`, so the facts are read for the
        # entries of the claims touched now (`_claim` alone); only a changed entry not among them
        # (new, or moved from another claim) is looked up by its key, and its previous claim's
        # entries are touched too. The row ids found are those the refresh replaces (`old_rows`),
        # and the touched entries' claims (`_ledger_claims`) say which canonical rows to read.
        find={
            "_ledger_changed": "SELECT t.entry_id, t.claim_id FROM main.ledger AS t WHERE {changed}",
            "_ledger_claims_now": """
                SELECT claim_id FROM _ledger_changed WHERE claim_id IS NOT NULL
                UNION SELECT t.claim_id FROM main.claims AS t WHERE {changed}
            """,
            "_ledger_of_claims": """
                SELECT f.rowid AS _row, f._key, f._claim FROM {facts} AS f
                WHERE f._claim IN (SELECT claim_id FROM _ledger_claims_now)
            """,
            "_ledger_moved": """
                SELECT f.rowid AS _row, f._key, f._claim FROM {facts} AS f
                WHERE f._key IN (SELECT entry_id FROM _ledger_changed
                                 WHERE entry_id NOT IN (SELECT _key FROM _ledger_of_claims))
            """,
            "_ledger_previous": """
                SELECT * FROM _ledger_of_claims
                UNION SELECT * FROM _ledger_moved
                UNION SELECT f.rowid, f._key, f._claim FROM {facts} AS f
                      WHERE f._claim IN (SELECT _claim FROM _ledger_moved WHERE _claim IS NOT NULL)
                {payer_rows}
            """,
            "_ledger_claims": """
                SELECT claim_id FROM _ledger_changed WHERE claim_id IS NOT NULL
                UNION SELECT _claim FROM _ledger_previous
                      WHERE _claim IS NOT NULL AND _key NOT IN (SELECT entry_id FROM _ledger_changed)
            """,
        },
        touched="SELECT entry_id FROM _ledger_changed UNION SELECT _key FROM _ledger_previous",
        old_rows="_ledger_previous",
        whole_accounts=True,
        # every entry of the touched entries' claims, and a touched entry without a claim: row ids
        # from the two id columns, then the rows by row id (one pass over every column of a 29 M-row
        # table to keep a few thousand rows costs several times as much)
        prepare={
            "_ledger_rows": f"""
                SELECT t.rowid AS _row FROM main.ledger AS t WHERE t.claim_id IN (SELECT claim_id FROM _ledger_claims)
                UNION ALL SELECT t.rowid FROM main.ledger AS t WHERE t.claim_id IS NULL AND t.entry_id IN {KEYS}
            """,
        },
        reads={
            "ledger": "t.rowid IN (SELECT _row FROM _ledger_rows)",
            "claims": "t.claim_id IN (SELECT claim_id FROM _ledger_claims)",
        },
        keep={"_claim": "claim_id"},
    ),
    "referrals": _own("referrals", "referral_id"),
    "portal_messages": _own("portal_messages", "message_id"),
}


def tna_changes_sql(watermark: int, facts: Mapping[str, str], tna: str, tz: str, weeks: tuple[int, int]) -> str:
    """SELECT provider, first week, last week: the snapshots of third next available a change can move,
    one row per provider, clipped to `weeks` (the first and last snapshot the data allow; a
    provider none of whose moved snapshots fall inside is left out).

    One row per provider rather than per changed booking: a billing load can change millions of
    appointments (their payer filled in), and the refresh recomputes a span per provider.

    A snapshot's third open slot depends on the provider's open slots ahead of it and on the
    bookings holding them then. A booking holds its slots at the snapshots from its booking to its
    release (cancellation or the slot's start, before the visit's end): a changed appointment moves
    the snapshots of its previous and new hold, and when only its cancellation changed (the same
    booking, provider and time), just those between the two releases. A slot only matters to
    snapshots before it starts whose third open slot is at or after it (or that had none): a
    changed slot moves those, for its previous and new schedule. Week numbers as `week_of`.
    The changed appointments' previous facts are `_appointments_previous` (the appointments' `find`).
    """
    changed = CHANGED.format(watermark=int(watermark))
    end = "{start} + COALESCE({minutes}, 1) * INTERVAL 1 MINUTE"
    slots = facts["slots"]
    earliest_release = week_of("LEAST(COALESCE(cancelled, s - INTERVAL 1 DAY), s - INTERVAL 1 DAY)", tz)
    first, last = (int(w) for w in weeks)
    return f"""
        SELECT provider, min(greatest(first_week, {first})) AS first_week, max(least(last_week, {last})) AS last_week
        FROM (
        WITH versions AS (  -- the changed rows as they are now (read once: no join of every appointment by key)
            SELECT {_APPOINTMENT_KEY} AS key, t.provider_id AS provider, t.booked_at AS booked,
                   t.cancelled_at AS cancelled, t.scheduled_start AS s,
                   {end.format(start="t.scheduled_start", minutes="t.scheduled_minutes")} AS e
            FROM main.appointments AS t WHERE {changed}
            UNION ALL
            SELECT f._key, f._provider, f._booked, f._cancelled, f._start,
                   {end.format(start="f._start", minutes="f._minutes")}
            FROM _appointments_previous AS f  -- their previous facts, read with the appointments' changes
        ),
        holds AS (
            SELECT provider, booked, cancelled, s, e,
                   count(*) OVER w = 2
                   AND min(provider) OVER w IS NOT DISTINCT FROM max(provider) OVER w
                   AND min(booked) OVER w = max(booked) OVER w
                   AND min(s) OVER w = max(s) OVER w AND min(e) OVER w = max(e) OVER w AS same_hold
            FROM versions WHERE booked IS NOT NULL AND provider IS NOT NULL
            WINDOW w AS (PARTITION BY key)
        ),
        slot_versions AS (
            SELECT t.provider_id AS provider, t.location_id AS location, t.start_at AS at
            FROM main.slots AS t WHERE {changed}
            UNION ALL
            SELECT f.provider, f.location, f._start FROM {slots} AS f
            WHERE f._key IN (SELECT t.source || ':' || t.slot_id FROM main.slots AS t WHERE {changed})
        ),
        schedule_gaps AS (  -- each schedule's first week after which a snapshot has no third slot
            SELECT provider, location, min(week + 1) AS gap
            FROM (SELECT provider, location, week,
                         lead(week) OVER (PARTITION BY provider, location ORDER BY week) AS next_week
                  FROM {tna}) AS p
            WHERE next_week IS NULL OR next_week > week + 1
            GROUP BY provider, location
        )
        SELECT provider,
               CASE WHEN same_hold THEN {earliest_release} ELSE {week_of("booked", tz)} END AS first_week,
               {week_of("e", tz)} AS last_week
        FROM holds
        UNION ALL
        SELECT v.provider,
               LEAST({week_of("v.at", tz)},
                     coalesce((SELECT min(p.week) FROM {tna} AS p WHERE p.provider = v.provider
                               AND p.location IS NOT DISTINCT FROM v.location AND p.third_slot_start >= v.at),
                              {week_of("v.at", tz)}),
                     coalesce(g.gap, {week_of("v.at", tz)}),
                     CASE WHEN v.at <= (SELECT min(p.third_slot_start) FROM {tna} AS p WHERE p.provider = v.provider
                                        AND p.location IS NOT DISTINCT FROM v.location)
                          OR g.gap IS NULL THEN 0 END),
               {week_of("v.at", tz)}
        FROM slot_versions AS v
        LEFT JOIN schedule_gaps AS g ON g.provider = v.provider AND g.location IS NOT DISTINCT FROM v.location
        WHERE v.provider IS NOT NULL
        ) AS moved
        WHERE greatest(first_week, {first}) <= least(last_week, {last})
        GROUP BY provider
    """


def prepared(relation: str) -> dict[str, str]:
    """Temp table name -> SELECT: what the relation's reads use, made from `_keys` before they run."""
    return dict(DEPENDENCIES[relation].prepare)


def kept_columns(relation: str) -> dict[str, str]:
    """Fact column -> relation column: the previous state a refresh reads before replacing rows."""
    return dict(DEPENDENCIES[relation].keep)


def touched_sql(relation: str, watermark: int, facts: Mapping[str, str], payers_changed: bool) -> str:
    """SELECT of the record ids (one column) whose facts the changes since `watermark` touch.

    `facts` names the existing fact tables by relation (their previous state). It reads the
    relation's `find_sql` tables, made first.
    """
    return _placed(DEPENDENCIES[relation].touched, relation, watermark, facts, payers_changed)


def find_sql(relation: str, watermark: int, facts: Mapping[str, str], payers_changed: bool) -> dict[str, str]:
    """Temp table name -> SELECT, in order: what finding the touched record ids reads from the previous facts."""
    return {
        name: _placed(sql, relation, watermark, facts, payers_changed)
        for name, sql in DEPENDENCIES[relation].find.items()
    }


def old_rows(relation: str) -> str | None:
    """The `find` table of (_row, _key) naming the previous fact row of every touched record id, if any."""
    return DEPENDENCIES[relation].old_rows


def every_sql(relation: str) -> str | None:
    """SELECT of every record id of the relation (duplicates allowed), if it is built in parts."""
    return DEPENDENCIES[relation].every


def state_sql(relation: str) -> str | None:
    """SELECT of the one value whose change since the last refresh rebuilds the relation's facts."""
    dependencies = DEPENDENCIES.get(relation)
    return dependencies.state if dependencies is not None else None


def whole_accounts(relation: str) -> bool:
    """Whether the touched record ids hold every row of each A/R account a changed row is or was in."""
    return DEPENDENCIES[relation].whole_accounts


def _placed(text: str, relation: str, watermark: int, facts: Mapping[str, str], payers_changed: bool) -> str:
    text = text.replace("{payers}", _PAYERS if payers_changed else "")
    text = text.replace("{payer_rows}", _PAYER_ROWS if payers_changed else "")
    text = text.replace("{changed}", CHANGED.format(watermark=int(watermark)))
    return text.replace("{facts}", facts[relation])


def changed_anywhere_sql(tables: tuple[str, ...], watermark: int) -> str:
    """SELECT true when any row of `tables` changed since `watermark` (for third next available)."""
    changed = CHANGED.format(watermark=int(watermark))
    return "SELECT " + " OR ".join(f"EXISTS (SELECT 1 FROM main.{t} AS t WHERE {changed})" for t in tables)


def restricted(sql: str, relation: str) -> str:
    """The relation's SQL reading only the rows its `reads` name (for the record ids in `_keys`).

    Every reference to a canonical table listed in `reads` becomes a filtered subquery with the
    same alias; the rest of the statement (joins, windows, aggregates) is unchanged.
    """
    reads = DEPENDENCIES[relation].reads
    tree = sqlglot.parse_one(sql, read="duckdb")

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name in reads:
            inner = sqlglot.parse_one(f"SELECT * FROM main.{node.name} AS t WHERE {reads[node.name]}", read="duckdb")
            return inner.subquery(node.alias or node.name)
        return node

    return tree.transform(swap).sql(dialect="duckdb")
