"""837P transaction sets mapped in columns: the claims of many sets by one SQL statement each.

The rules are those of `x12_837` (the mapper of record, whose docstring says what each canonical
column comes from); this is a faster way to the same rows for the sets that hold nothing it might
read differently. A set is mapped here only when every one of these holds, and is otherwise
handed whole to `x12_837.Claims.add`, so that its rows, rejects, sentences and warnings are the
Python mapper's:

- its segments are among those listed in `KNOWN`, every identifier valid, no element or
  component padded with spaces, no NM1 without an entity code;
- it has a readable BHT, at least one claim, HL levels 20 then 22 only, every CLM in a
  subscriber (22) loop; each billing provider loop has one NM1*85 with its N3 and N4, each
  subscriber loop one NM1*IL, one payer (NM1*PR or *IN) and at most one SBR, no N3 after an N4
  within a name loop;
- each claim has CLM01, a CLM05 with a frequency code, an HI, at most one NM1*82, REF*F8,
  REF*LU and claim-level DTP*472, and lines made of LX directly followed by SV1 (at most one
  DTP*472 each); every amount, quantity and date is in its plain form (`-123.45`, CCYYMMDD).

Whatever else a set holds (a patient loop, a PAT or NTE segment, an odd amount) only means it goes
the Python way: nothing is guessed here.
"""

from __future__ import annotations

import re
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.adapters import x12_837
from ingest.adapters.x12_runs import Run, Span
from ingest.adapters.x12_segments import Segment, TransactionSet

KNOWN = ("ST", "SE", "BHT", "NM1", "PER", "HL", "N3", "N4", "REF", "SBR", "DMG", "CLM", "HI", "PRV", "LX", "SV1", "DTP")
# the characters `str.strip` removes (str.isspace), as an RE2 class
SPACE = r"[\t-\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
AMOUNT = r"^-?[0-9]{1,15}(\.[0-9]{1,2})?$"
QUANTITY = r"^-?[0-9]{1,15}(\.[0-9]{1,3})?$"
DATE = r"^[1-9][0-9]{7}$"
PAYER_CLASS_SQL = "CASE " + " ".join(f"WHEN {{}} = '{k}' THEN '{v}'" for k, v in x12_837.PAYER_CLASS.items())


def e(i: int) -> str:
    """Element `i` of the segment (the X12 numbering: 0 is the identifier), '' when absent."""
    return f"coalesce(e[{i + 1}], '')"


def _date(text: str) -> str:
    return f"CAST(try_strptime({text}, '%Y%m%d') AS DATE)"


def _good_date(text: str) -> str:
    return f"(regexp_matches({text}, '{DATE}') AND try_strptime({text}, '%Y%m%d') IS NOT NULL)"


def _dtp_value() -> str:
    return f"CASE {e(2)} WHEN 'D8' THEN {e(3)} WHEN 'RD8' THEN split_part({e(3)}, '-', 1) END"


def _segments_sql(element: str, component: str) -> str:
    """Every segment of the candidate sets, its elements split, with the loop, claim and line it
    belongs to (`_structure`)."""
    padded = _padded(element, component)
    el = element.replace("'", "''")
    return f"""
    CREATE OR REPLACE TEMP TABLE t AS
    SELECT n, ts, id, claim, loop, lx_k, entity, n4_before, next_sv1, prev_lx, hl_level, billing_n, hl_n,
        string_split(seg, '{el}') AS e, regexp_matches(seg, '{padded}') AS padded
    FROM segs
    """


def _padded(element: str, component: str) -> str:
    """An RE2 pattern (quoted for SQL) for an element or component with spaces at either end."""
    seps = re.escape(element + component)
    return f"(^|[{seps}]){SPACE}|{SPACE}($|[{seps}])".replace("'", "''")


def last(mask: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """For each segment, the index of the last segment at or before it where `mask` holds, with no
    `reset` in between (a segment both mask and reset counts as mask); -1 where there is none."""
    at = np.arange(len(mask))
    acc = np.maximum.accumulate(np.where(mask | reset, at, -1))
    return np.where((acc >= 0) & mask[np.maximum(acc, 0)], acc, -1)


def numbered(index: np.ndarray, numbers: np.ndarray) -> pa.Array:
    """The segment numbers at `index` (null where -1)."""
    return pa.array(numbers[np.maximum(index, 0)], pa.int64(), mask=index < 0)


def _structure(ids: pa.Array, numbers: pa.Array, element: str, texts: pa.Array) -> dict[str, pa.Array]:
    """Where each segment belongs, by running maxima and sums over the segments in file order
    (each candidate set starts with its ST): the claim (number of its CLM, from a CLM to the
    next HL), else the HL loop (number of its HL), the line (count of LX since the CLM), the
    entity of the name loop (last NM1 since the HL or CLM), whether an N4 came before an N3 in
    its name loop; the level of the last HL and the number of the last billing provider HL."""
    code = pc.fill_null(pc.index_in(ids, value_set=pa.array(["ST", "HL", "CLM", "LX", "NM1", "N4", "SV1"])), -1)
    code = code.to_numpy(zero_copy_only=False)
    st, hl, clm, lx, nm1, n4, sv1 = (code == k for k in range(7))
    parts = pc.split_pattern(pc.binary_join_element_wise(texts, element * 4, ""), element, max_splits=4)
    e1, e3 = pc.list_element(parts, 1), pc.list_element(parts, 3)
    num = numbers.to_numpy()

    def taken(values: pa.Array, index: np.ndarray) -> pa.Array:
        return values.take(pa.array(np.maximum(index, 0), pa.int64(), mask=index < 0))

    claim = last(clm, hl | st)
    loop = np.where(claim < 0, last(hl, st), -1)
    hl_at = last(hl, st)
    lx_count = np.cumsum(lx)
    lx_k = np.where(claim >= 0, lx_count - lx_count[np.maximum(claim, 0)], 0)
    billing = last(hl & pc.equal(e3, "20").to_numpy(zero_copy_only=False), st)
    n4_before = last(n4, nm1 | hl | clm | st) >= 0
    following = np.append(code[1:], -1)
    preceding = np.insert(code[:-1], 0, -1)
    return {
        "id": ids,
        "claim": numbered(claim, num),
        "loop": numbered(loop, num),
        "lx_k": pa.array(lx_k, pa.int64()),
        "entity": taken(e1, last(nm1, hl | clm | st)),
        "n4_before": pa.array(n4_before),
        "next_sv1": pa.array(following == 6),
        "prev_lx": pa.array(preceding == 3),
        "hl_level": taken(e3, hl_at),
        "billing_n": numbered(billing, num),
        "hl_n": numbered(hl_at, num),
    }


def _bad_sets_sql() -> str:
    """The candidate sets holding anything the columnar mapping does not vouch for."""
    known = ", ".join(f"'{k}'" for k in KNOWN)
    amount = lambda i: f"({e(i)} = '' OR regexp_matches({e(i)}, '{AMOUNT}'))"  # noqa: E731
    return f"""
    WITH per_segment AS (
        SELECT ts, (
            id NOT IN ({known}) OR padded OR NOT regexp_matches(id, '^[A-Z][A-Z0-9]{{1,2}}$')
            OR (id = 'NM1' AND {e(1)} = '')
            OR (id = 'HL' AND {e(3)} NOT IN ('20', '22'))
            OR (id = 'CLM' AND (hl_level IS DISTINCT FROM '22' OR {e(1)} = '' OR {e(5)} = ''
                OR coalesce(string_split({e(5)}, '{{component}}')[3], '') = '' OR NOT {amount(2)}))
            OR (id = 'LX' AND (claim IS NULL OR NOT next_sv1))
            OR (id = 'SV1' AND (claim IS NULL OR NOT prev_lx OR NOT {amount(2)}
                OR NOT ({e(4)} = '' OR regexp_matches({e(4)}, '{QUANTITY}'))))
            OR (id = 'DTP' AND {e(1)} = '472' AND claim IS NOT NULL AND NOT coalesce({_good_date(_dtp_value())}, false))
            OR (id = 'N3' AND claim IS NULL AND n4_before)
        ) AS bad
        FROM t
    ), per_claim AS (
        SELECT ts, (
            NOT bool_or(id = 'HI') OR count(*) FILTER (id = 'LX') = 0
            OR count(*) FILTER (id = 'NM1' AND {e(1)} = '82' AND lx_k = 0) > 1
            OR count(*) FILTER (id = 'REF' AND {e(1)} = 'F8' AND lx_k = 0) > 1
            OR count(*) FILTER (id = 'REF' AND {e(1)} = 'LU' AND lx_k = 0 AND entity = '77') > 1
            OR coalesce(max(k), 0) > 1
        ) AS bad
        FROM t LEFT JOIN (
            SELECT ts AS d_ts, claim AS d_claim, max(k) AS k FROM (
                SELECT ts, claim, count(*) AS k FROM t WHERE claim IS NOT NULL AND id = 'DTP' AND {e(1)} = '472'
                GROUP BY ts, claim, lx_k)
            GROUP BY ts, claim
        ) ON d_ts = ts AND d_claim = claim
        WHERE claim IS NOT NULL
        GROUP BY ts, claim
    ), per_loop AS (
        SELECT ts, (
            CASE any_value(level)
                WHEN '20' THEN count(*) FILTER (id = 'NM1' AND {e(1)} = '85') <> 1
                    OR count(*) FILTER (id = 'N3' AND entity = '85') = 0
                    OR count(*) FILTER (id = 'N4' AND entity = '85') = 0
                ELSE count(*) FILTER (id = 'NM1' AND {e(1)} = 'IL') <> 1
                    OR count(*) FILTER (id = 'NM1' AND {e(1)} IN ('PR', 'IN')) <> 1
                    OR count(*) FILTER (id = 'SBR') > 1
            END
        ) AS bad
        FROM (SELECT *, hl_level AS level FROM t WHERE loop IS NOT NULL)
        GROUP BY ts, loop
    ), firsts AS (
        SELECT ts, arg_min({e(3)}, n) IS DISTINCT FROM '20' AS bad FROM t WHERE id = 'HL' GROUP BY ts
    )
    SELECT DISTINCT ts FROM (
        SELECT ts, bad FROM per_segment UNION ALL SELECT ts, bad FROM per_claim
        UNION ALL SELECT ts, bad FROM per_loop UNION ALL SELECT ts, bad FROM firsts
        UNION ALL SELECT ts, true FROM t GROUP BY ts HAVING count(*) FILTER (id = 'CLM') = 0
        UNION ALL SELECT ts, true FROM t GROUP BY ts HAVING count(*) FILTER (id = 'HL') = 0
    ) WHERE bad
    """


def _claims_sql() -> str:
    payer_class = PAYER_CLASS_SQL.format(*[e(9)] * len(x12_837.PAYER_CLASS))
    return f"""
    CREATE OR REPLACE TEMP TABLE lines AS
    WITH line_dates AS (
        SELECT ts, claim, lx_k, any_value({_date(_dtp_value())}) AS day
        FROM t WHERE id = 'DTP' AND {e(1)} = '472' AND lx_k > 0 AND claim IS NOT NULL
        GROUP BY ts, claim, lx_k
    ), lines AS (
        SELECT t.ts, t.claim, t.lx_k AS line_no, t.n,
            string_split({e(1)}, '{{component}}') AS parts,
            {e(2)} AS charge, {e(4)} AS units, d.day
        FROM t LEFT JOIN line_dates d ON d.ts = t.ts AND d.claim = t.claim AND d.lx_k = t.lx_k
        WHERE t.id = 'SV1' AND t.ts NOT IN (SELECT ts FROM bad)
    )
    SELECT * FROM lines;
    CREATE OR REPLACE TEMP TABLE claim_rows AS
    WITH line_min AS (
        SELECT ts, claim, min(day) AS day FROM lines GROUP BY ts, claim
    ), claim_info AS (
        SELECT ts, claim,
            any_value(e) FILTER (id = 'CLM') AS clm,
            any_value(nullif({e(2)}, '')) FILTER (id = 'REF' AND {e(1)} = 'F8' AND lx_k = 0) AS control_number,
            any_value(nullif({e(2)}, '')) FILTER (id = 'REF' AND {e(1)} = 'LU' AND lx_k = 0 AND entity = '77')
                AS location_id,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} = '82' AND lx_k = 0 AND {e(8)} = 'XX')
                AS rendering_npi,
            any_value(nullif(concat_ws(' ', nullif({e(4)}, ''), nullif({e(3)}, '')), ''))
                FILTER (id = 'NM1' AND {e(1)} = '82' AND lx_k = 0 AND {e(8)} = 'XX') AS rendering_name,
            any_value({_date(_dtp_value())}) FILTER (id = 'DTP' AND {e(1)} = '472' AND lx_k = 0) AS claim_date,
            any_value(billing_n) FILTER (id = 'CLM') AS billing_n,
            any_value(hl_n) FILTER (id = 'CLM') AS subscriber_n
        FROM t WHERE claim IS NOT NULL AND ts NOT IN (SELECT ts FROM bad)
        GROUP BY ts, claim
    ), loops AS (
        SELECT ts, loop,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} = '85' AND {e(8)} = 'XX') AS npi,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} = 'IL') AS member_id,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} IN ('PR', 'IN')) AS payer_id,
            any_value(nullif({e(3)}, '')) FILTER (id = 'NM1' AND {e(1)} IN ('PR', 'IN')) AS payer_name,
            any_value(CASE WHEN {e(9)} = '' THEN NULL ELSE coalesce({payer_class} END, 'other') END)
                FILTER (id = 'SBR') AS payer_class
        FROM t WHERE loop IS NOT NULL AND ts NOT IN (SELECT ts FROM bad)
        GROUP BY ts, loop
    ), claim_rows AS (
        SELECT c.ts, c.claim AS _pos, c.clm[2] AS claim_id,
            string_split(c.clm[6], '{{component}}')[3] AS frequency_code,
            s.member_id, c.location_id, coalesce(c.rendering_npi, b.npi) AS provider_id,
            s.payer_id, s.payer_name, s.payer_class,
            CASE WHEN c.rendering_npi IS NOT NULL THEN c.rendering_name END AS provider_name,
            coalesce(m.day, c.claim_date) AS service_date,
            CAST(nullif(coalesce(c.clm[3], ''), '') AS DECIMAL(38, 2)) AS billed_amount,
            c.control_number
        FROM claim_info c
        LEFT JOIN loops b ON b.ts = c.ts AND b.loop = c.billing_n
        LEFT JOIN loops s ON s.ts = c.ts AND s.loop = c.subscriber_n
        LEFT JOIN line_min m ON m.ts = c.ts AND m.claim = c.claim
    )
    SELECT * FROM claim_rows
    """


def _lines_sql() -> str:
    return """
    SELECT l.claim AS _pos, l.ts, l.line_no,
        CASE WHEN len(l.parts) > 1 THEN l.parts[2] END AS procedure_code,
        nullif(array_to_string(list_filter(list_slice(l.parts, 3, len(l.parts)), lambda x: x <> ''), ','), '')
            AS modifiers,
        CAST(nullif(l.units, '') AS DECIMAL(38, 3)) AS units,
        CAST(nullif(l.charge, '') AS DECIMAL(38, 2)) AS charge_amount,
        coalesce(l.day, c.service_date) AS service_date
    FROM lines l JOIN claim_rows c ON c.ts = l.ts AND c._pos = l.claim
    ORDER BY l.claim, l.line_no
    """


def map_claims(claims: x12_837.Claims, run: Run, spans: list[Span], con: duckdb.DuckDBPyConnection) -> list[Span]:
    """Map the 837 sets `spans` of `run` into `claims` (its `fast` tables); returns the spans left
    for the Python mapper (in file order)."""
    candidates: list[tuple[Span, datetime, tuple[str, object]]] = []
    python: list[Span] = []
    bht_at = np.flatnonzero(pc.equal(run.ids, "BHT").to_numpy(zero_copy_only=False))
    for span in spans:
        k = np.searchsorted(bht_at, span.lo)
        if span.skip or k >= len(bht_at) or bht_at[k] > span.hi:
            python.append(span)
            continue
        i = int(bht_at[k])
        bht = Segment(run.numbers[i].as_py(), run.texts[i].as_py().split(run.element), run.component)
        submitted = claims._submitted(TransactionSet("837", bht, [bht]))
        if isinstance(submitted, x12_837.Problem):
            python.append(span)
            continue
        stamp = (submitted.strftime("%Y-%m-%dT%H:%M:%SZ"), submitted.astimezone(claims.tz).date())
        candidates.append((span, submitted, stamp))
    if not candidates:
        return python
    numbers, texts, ids, set_of = run.of_sets([s for s, _, _ in candidates])
    segs = pa.table({"n": numbers, "ts": set_of, "seg": texts, **_structure(ids, numbers, run.element, texts)})
    con.register("segs", segs)
    try:
        con.execute(_segments_sql(run.element, run.component))
        bad = {r[0] for r in con.sql(_bad_sets_sql().replace("{component}", _quote(run.component))).fetchall()}
        con.execute(
            "CREATE OR REPLACE TEMP TABLE bad AS SELECT unnest(?::INTEGER[]) AS ts",
            [sorted(bad)],
        )
        con.execute(_claims_sql().replace("{component}", _quote(run.component)))
        rows = _table(con, "SELECT * FROM claim_rows ORDER BY _pos")
        lines = _table(con, _lines_sql())
    finally:
        con.unregister("segs")
    python += [c[0] for k, c in enumerate(candidates) if k in bad]
    python.sort(key=lambda s: s.lo)
    if rows.num_rows:
        _add(claims, rows, lines, [c[1] for c in candidates], [c[2] for c in candidates])
    return python


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


def _add(
    claims: x12_837.Claims, rows: pa.Table, lines: pa.Table, submitted: list[datetime], stamps: list[tuple]
) -> None:
    """The mapped rows as the tables (and the warnings, claim ids) `Claims.add` would have given."""
    source = "x12"
    ts = rows["ts"].to_numpy()
    version = pa.array(submitted).take(pa.array(ts))
    stamp = pa.array([s[0] for s in stamps], pa.string()).take(pa.array(ts))
    claim_id = rows["claim_id"]
    submission_id = pc.binary_join_element_wise(claim_id, rows["frequency_code"], stamp, "|")
    patients = pa.array(claims.keys(source, rows["member_id"].to_pylist()), pa.string())
    n = rows.num_rows
    src = pa.array([source] * n, pa.string())
    claim_table = pa.table(
        {
            "_pos": rows["_pos"].cast(pa.int64()),
            "_version": version,
            "submission_id": submission_id,
            "claim_id": claim_id,
            "frequency_code": rows["frequency_code"],
            "submitted_at": version,
            "patient_key": patients,
            "location_id": rows["location_id"],
            "provider_id": rows["provider_id"],
            "payer_id": rows["payer_id"],
            "service_date": rows["service_date"],
            "billed_amount": rows["billed_amount"],
            "payer_claim_control_number": rows["control_number"],
            "source": src,
        }
    )
    # lines: the submission of their claim, found by position
    order = pc.index_in(lines["_pos"], value_set=rows["_pos"])
    line_table = pa.table(
        {
            "_pos": lines["_pos"].cast(pa.int64()),
            "_version": version.take(order),
            "submission_id": submission_id.take(order),
            "line_no": lines["line_no"].cast(pa.int64()),
            "procedure_code": lines["procedure_code"],
            "modifiers": lines["modifiers"],
            "units": lines["units"],
            "charge_amount": lines["charge_amount"],
            "service_date": lines["service_date"],
            "source": pa.array([source] * lines.num_rows, pa.string()),
        }
    )
    payer = pc.is_valid(rows["payer_id"])
    provider = pc.is_valid(rows["provider_id"])
    location = pc.is_valid(rows["location_id"])
    refs = {
        "payers": pa.table(
            {
                "_pos": claim_table["_pos"],
                "payer_id": rows["payer_id"],
                "name": rows["payer_name"],
                "payer_class": rows["payer_class"],
                "source": src,
            }
        ).filter(payer),
        "providers": pa.table(
            {
                "_pos": claim_table["_pos"],
                "provider_id": rows["provider_id"],
                "npi": rows["provider_id"],
                "name": rows["provider_name"],
                "source": src,
            }
        ).filter(provider),
        "locations": pa.table({"_pos": claim_table["_pos"], "location_id": rows["location_id"], "source": src}).filter(
            location
        ),
    }
    claims.fast.append({"claims": claim_table, "claim_lines": line_table, **refs})
    claims.ids.update(claim_id.to_pylist())
    local = pa.array([s[1] for s in stamps], pa.date32()).take(pa.array(ts))
    early = pc.fill_null(pc.less(local, rows["service_date"]), False)
    if pc.any(early).as_py():
        for pos, cid, day, sent in zip(
            *(col.filter(early).to_pylist() for col in (claim_table["_pos"], claim_id, rows["service_date"], local)),
            strict=True,
        ):
            claims.early.append(((day - sent).days, pos, cid))
