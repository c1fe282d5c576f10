"""835 transaction sets mapped in columns: the payments of many sets by one SQL statement each.

The rules are those of `x12_835` (the mapper of record, whose docstring says what each canonical
column comes from); this is a faster way to the same rows for the sets that hold nothing it might
read differently. A set is mapped here only when all of these hold, and is otherwise handed whole
to `x12_835.Remittances.add`, so that its rows, rejects, sentences and warnings are the Python
mapper's:

- its segments are among those listed in `KNOWN` (no PLB, no MOA), every identifier valid, no
  element or component padded with spaces;
- its header (before the first CLP) reads without a problem, and it has at least one payment;
- each payment has at most one NM1*IL, NM1*QC and DTM*232, and every amount, quantity and date
  it reads is in its plain form (`-123.45`, CCYYMMDD).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.adapters import x12_835
from ingest.adapters.x12_837_columns import AMOUNT, DATE, QUANTITY, last, numbered, padded
from ingest.adapters.x12_runs import Run, Span
from ingest.adapters.x12_segments import Segment, TransactionSet

KNOWN = ("ST", "SE", "BPR", "TRN", "DTM", "N1", "N2", "N3", "N4", "REF", "PER", "LX", "TS3", "TS2")
KNOWN += ("CLP", "NM1", "SVC", "CAS", "AMT", "QTY", "LQ", "CUR", "RDM")


def e(i: int) -> str:
    """Element `i` of the segment (the X12 numbering: 0 is the identifier), '' when absent."""
    return f"coalesce(e[{i + 1}], '')"


def _good_date(text: str) -> str:
    return f"(regexp_matches({text}, '{DATE}') AND try_strptime({text}, '%Y%m%d') IS NOT NULL)"


def _ok(i: int, pattern: str) -> str:
    return f"({e(i)} = '' OR regexp_matches({e(i)}, '{pattern}'))"


def _bad_sets_sql() -> str:
    known = ", ".join(f"'{k}'" for k in KNOWN)
    cas = " AND ".join(f"({e(i)} = '' OR ({_ok(i + 1, AMOUNT)} AND {_ok(i + 2, QUANTITY)}))" for i in range(2, 19, 3))
    return f"""
    SELECT DISTINCT ts FROM (
        SELECT ts, (
            id NOT IN ({known}) OR padded OR NOT regexp_matches(id, '^[A-Z][A-Z0-9]{{1,2}}$')
            OR (pay IS NOT NULL AND (
                (id = 'CAS' AND NOT ({cas}))
                OR (id = 'DTM' AND {e(1)} = '232' AND NOT {_good_date(e(2))})
                OR (id = 'DTM' AND {e(1)} IN ('472', '150') AND line_k > 0 AND NOT {_good_date(e(2))})
                OR (id = 'CLP' AND NOT ({_ok(3, AMOUNT)} AND {_ok(4, AMOUNT)} AND {_ok(5, AMOUNT)}))
            ))
        ) AS bad FROM r
        UNION ALL
        SELECT ts, (
            count(*) FILTER (id = 'NM1' AND {e(1)} = 'IL') > 1 OR count(*) FILTER (id = 'NM1' AND {e(1)} = 'QC') > 1
            OR count(*) FILTER (id = 'DTM' AND {e(1)} = '232') > 1
        ) FROM r WHERE pay IS NOT NULL GROUP BY ts, pay
        UNION ALL
        SELECT ts, count(*) FILTER (id = 'CLP') = 0 FROM r GROUP BY ts
    ) WHERE bad
    """


def _payments_sql(component: str) -> str:
    comp = component.replace("'", "''")
    date = "CAST(try_strptime({}, '%Y%m%d') AS DATE)"
    paid = f"CASE WHEN {' OR '.join(f'code = {c!r}' for c in sorted(x12_835.PAID))} THEN true ELSE false END"
    return f"""
    CREATE OR REPLACE TEMP TABLE pays AS
    WITH p AS (
        SELECT ts, pay,
            any_value(e) FILTER (id = 'CLP') AS clp,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} = 'IL') AS member_il,
            any_value(nullif({e(9)}, '')) FILTER (id = 'NM1' AND {e(1)} = 'QC') AS member_qc,
            any_value({date.format(e(2))}) FILTER (id = 'DTM' AND {e(1)} = '232') AS statement_date,
            min({date.format(e(2))}) FILTER (id = 'DTM' AND {e(1)} IN ('472', '150') AND line_k > 0) AS line_date
        FROM r WHERE pay IS NOT NULL AND ts NOT IN (SELECT ts FROM bad)
        GROUP BY ts, pay
    ), remarks AS (
        SELECT ts, pay, string_agg(code, ',' ORDER BY first_n) AS remark_codes FROM (
            SELECT ts, pay, {e(2)} AS code, min(n) AS first_n FROM r
            WHERE id = 'LQ' AND {e(1)} = 'HE' AND {e(2)} <> '' AND pay IS NOT NULL
            GROUP BY ts, pay, {e(2)}
        ) GROUP BY ts, pay
    ), q AS (
        SELECT p.*, coalesce(clp[2], '') AS c1, coalesce(clp[3], '') AS code, coalesce(clp[8], '') AS c7,
            CAST(nullif(coalesce(clp[4], ''), '') AS DECIMAL(38, 2)) AS billed_amount,
            CAST(nullif(coalesce(clp[5], ''), '') AS DECIMAL(38, 2)) AS paid_amount,
            CAST(nullif(coalesce(clp[6], ''), '') AS DECIMAL(38, 2)) AS patient_responsibility
        FROM p
    )
    SELECT q.ts, q.pay AS _pos, nullif(c1, '') AS claim_id, nullif(c7, '') AS payer_claim_control_number,
        nullif(code, '') AS claim_status_code,
        CASE WHEN code = '22' THEN 'reversed' WHEN code = '4' THEN 'denied'
            WHEN {paid} THEN CASE WHEN paid_amount = 0 THEN 'zero_paid' ELSE 'paid' END ELSE 'other' END AS status,
        billed_amount, paid_amount, patient_responsibility, m.remark_codes,
        coalesce(member_il, member_qc) AS member_id, coalesce(statement_date, line_date) AS service_date,
        c1 || '|' || code || '|' || c7 || '|'
            || CAST(row_number() OVER (PARTITION BY q.ts, c1, code, c7 ORDER BY q.pay) AS VARCHAR) AS ident
    FROM q LEFT JOIN remarks m ON m.ts = q.ts AND m.pay = q.pay
    ORDER BY q.pay;
    CREATE OR REPLACE TEMP TABLE adj AS
    WITH a AS (
        SELECT r.ts, r.pay, r.n, k, {e(1)} AS group_code, coalesce(e[3 + 3 * k], '') AS reason,
            CAST(nullif(coalesce(e[4 + 3 * k], ''), '') AS DECIMAL(38, 2)) AS amount,
            CAST(nullif(coalesce(e[5 + 3 * k], ''), '') AS DECIMAL(38, 3)) AS quantity,
            line_k, svc_n
        FROM (SELECT * FROM r WHERE id = 'CAS' AND pay IS NOT NULL AND ts NOT IN (SELECT ts FROM bad)) AS r,
            range(6) AS t(k)
        WHERE coalesce(e[3 + 3 * k], '') <> ''
    ), lq AS (
        SELECT a.ts, a.pay, a.n, a.k, string_agg(l.e[3], ',' ORDER BY l.n) AS remark_codes
        FROM a JOIN r l ON l.ts = a.ts AND l.pay = a.pay AND l.line_k = a.line_k AND l.n > a.n
        WHERE a.line_k > 0 AND l.id = 'LQ' AND coalesce(l.e[2], '') = 'HE' AND coalesce(l.e[3], '') <> ''
        GROUP BY a.ts, a.pay, a.n, a.k
    ), svc AS (
        SELECT ts, n, string_split({e(1)}, '{comp}') AS parts FROM r WHERE id = 'SVC'
    )
    SELECT a.ts, a.pay AS _pos,
        CAST(row_number() OVER (PARTITION BY a.ts, a.pay ORDER BY a.n, a.k) AS BIGINT) AS seq,
        CASE WHEN a.line_k > 0 THEN a.line_k END AS line_no,
        CASE WHEN a.line_k > 0 AND len(s.parts) > 1 THEN s.parts[2] END AS procedure_code,
        a.group_code, a.reason AS reason_code, a.amount, a.quantity, lq.remark_codes
    FROM a LEFT JOIN lq ON lq.ts = a.ts AND lq.pay = a.pay AND lq.n = a.n AND lq.k = a.k
    LEFT JOIN svc s ON s.ts = a.ts AND s.n = a.svc_n
    ORDER BY a.pay, seq
    """


def _structure(ids: pa.Array, numbers: pa.Array) -> dict[str, pa.Array]:
    """The payment each segment belongs to (number of its CLP, from a CLP to the next CLP, LX, SE
    or PLB), its service line (count of SVC since the CLP) and that line's SVC."""
    code = pc.fill_null(pc.index_in(ids, value_set=pa.array(["ST", "CLP", "LX", "SE", "PLB", "SVC"])), -1)
    code = code.to_numpy(zero_copy_only=False)
    st, clp, lx, se, plb, svc = (code == k for k in range(6))
    ends = lx | se | plb | st
    num = numbers.to_numpy()
    pay = last(clp, ends)
    svc_count = np.cumsum(svc)
    line_k = np.where(pay >= 0, svc_count - svc_count[np.maximum(pay, 0)], 0)
    # the segments that end a payment are not in it (`_walk`): LX, SE and PLB; the CLP starts its own
    pay = np.where(ends, -1, pay)
    return {
        "id": ids,
        "pay": numbered(pay, num),
        "line_k": pa.array(line_k, pa.int64()),
        "svc_n": numbered(last(svc, clp | ends), num),
    }


def map_payments(
    remits: x12_835.Remittances, run: Run, spans: list[Span], con: duckdb.DuckDBPyConnection
) -> list[Span]:
    """Map the 835 sets `spans` of `run` into `remits` (its `fast` tables); returns the spans left
    for the Python mapper."""
    clp_at = np.flatnonzero(pc.equal(run.ids, "CLP").to_numpy(zero_copy_only=False))
    candidates: list[tuple[Span, dict, str]] = []
    python: list[Span] = []
    for span in spans:
        k = np.searchsorted(clp_at, span.lo)
        first = int(clp_at[k]) if k < len(clp_at) and clp_at[k] <= span.hi else span.hi
        if span.skip:
            python.append(span)
            continue
        numbers = run.numbers.slice(span.lo, first - span.lo).to_pylist()
        texts = run.texts.slice(span.lo, first - span.lo).to_pylist()
        head = [Segment(n, t.split(run.element), run.component) for n, t in zip(numbers, texts, strict=True)]
        header = remits._header(TransactionSet("835", head[0], head))
        if isinstance(header, x12_835.Problem):
            python.append(span)
            continue
        candidates.append((span, header, span.label))
    if not candidates:
        return python
    numbers, texts, ids, set_of = run.of_sets([s for s, _, _ in candidates])
    segs = pa.table({"n": numbers, "ts": set_of, "seg": texts, **_structure(ids, numbers)})
    el = _quote(run.element)
    con.register("segs", segs)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE r AS SELECT n, ts, id, pay, line_k, svc_n, string_split(seg, '{el}') AS e, "
            f"regexp_matches(seg, '{_quote(padded(run.element, run.component))}') AS padded FROM segs"
        )
        bad = {row[0] for row in con.sql(_bad_sets_sql()).fetchall()}
        con.execute("CREATE OR REPLACE TEMP TABLE bad AS SELECT unnest(?::INTEGER[]) AS ts", [sorted(bad)])
        con.execute(_payments_sql(run.component))
        pays = con.sql("SELECT * FROM pays").to_arrow_table()
        adjustments = con.sql("SELECT * FROM adj").to_arrow_table()
    finally:
        con.unregister("segs")
    python += [c[0] for k, c in enumerate(candidates) if k in bad]
    python.sort(key=lambda s: s.lo)
    for k, (_, header, label) in enumerate(candidates):
        if k not in bad and header["paid"] is None and header["production"] is not None:
            remits.undated.append((label, header["production"]))
    if pays.num_rows:
        _add(remits, pays, adjustments, [c[1] for c in candidates])
    return python


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _add(remits: x12_835.Remittances, pays: pa.Table, adjustments: pa.Table, headers: list[dict]) -> None:
    source = "x12"
    ts = pa.array(pays["ts"].to_numpy())
    versions, posted, traces, payers = [], [], [], []
    for h in headers:
        dated = h["production"] or h["paid"]
        versions.append(dated.replace(tzinfo=remits.tz) if dated else None)
        paid_date = h["paid"] or h["production"]
        posted.append(paid_date.date() if paid_date else None)
        traces.append(h["trace"])
        payers.append(h["payer"])
    version = pa.array(versions).take(ts)
    posted_date = pa.array(posted, pa.date32()).take(ts)
    trace = pa.array(traces, pa.string()).take(ts)
    payer = pa.array(payers, pa.string()).take(ts)
    rid = pc.binary_join_element_wise(pc.fill_null(trace, ""), pays["ident"], "|")
    n = pays.num_rows
    src = pa.array([source] * n, pa.string())
    pos = pays["_pos"].cast(pa.int64())
    claim_id = pays["claim_id"]
    remits_table = pa.table(
        {
            "_pos": pos,
            "_version": version,
            "remittance_id": rid,
            "claim_id": claim_id,
            "payer_id": payer,
            "payer_claim_control_number": pays["payer_claim_control_number"],
            "trace_number": trace,
            "paid_date": posted_date,
            "claim_status_code": pays["claim_status_code"],
            "status": pays["status"],
            "billed_amount": pays["billed_amount"],
            "paid_amount": pays["paid_amount"],
            "patient_responsibility": pays["patient_responsibility"],
            "remark_codes": pays["remark_codes"],
            "source": src,
        }
    )
    patients = pa.array(remits.keys(source, pays["member_id"].to_pylist()), pa.string())
    # adjustments: their payment's values, found by position
    at = pc.index_in(adjustments["_pos"], value_set=pays["_pos"])
    apos = adjustments["_pos"].cast(pa.int64())
    m = adjustments.num_rows
    adj_table = pa.table(
        {
            "_pos": apos,
            "_version": version.take(at),
            "remittance_id": rid.take(at),
            "seq": adjustments["seq"],
            "line_no": adjustments["line_no"].cast(pa.int64()),
            "procedure_code": adjustments["procedure_code"],
            "group_code": adjustments["group_code"],
            "reason_code": adjustments["reason_code"],
            "amount": adjustments["amount"],
            "quantity": adjustments["quantity"],
            "remark_codes": adjustments["remark_codes"],
            "source": pa.array([source] * m, pa.string()),
        }
    )
    of_claim = {
        "claim_id": claim_id,
        "patient_key": patients,
        "payer_id": payer,
        "service_date": pays["service_date"],
        "posted_date": posted_date,
    }
    payments = pa.table(
        {
            "_pos": pos,
            "_version": version,
            "entry_id": pc.binary_join_element_wise("x12:payment:", rid, ""),
            **of_claim,
            "entry_type": pa.array(["payment"] * n, pa.string()),
            "party": pa.array(["payer"] * n, pa.string()),
            "amount": pays["paid_amount"],
            "group_code": pa.nulls(n, pa.string()),
            "reason_code": pa.nulls(n, pa.string()),
            "source": src,
            "_seq": pa.array(np.zeros(n, dtype=np.int64)),
        }
    )
    ledger = pc.is_in(adjustments["group_code"], value_set=pa.array(sorted(x12_835.LEDGER_GROUPS)))
    la = adj_table.filter(ledger)
    lat = at.filter(ledger)
    k = la.num_rows
    entries = pa.table(
        {
            "_pos": la["_pos"],
            "_version": la["_version"],
            "entry_id": pc.binary_join_element_wise(
                "x12:adjustment:", la["remittance_id"], ":", la["seq"].cast(pa.string()), ""
            ),
            **{c: v.take(lat) for c, v in of_claim.items()},
            "entry_type": pa.array(["adjustment"] * k, pa.string()),
            "party": pa.nulls(k, pa.string()),
            "amount": la["amount"],
            "group_code": la["group_code"],
            "reason_code": la["reason_code"],
            "source": pa.array([source] * k, pa.string()),
            "_seq": la["seq"].cast(pa.int64()),
        }
    )
    both = pa.concat_tables([payments, entries], promote_options="permissive")
    both = both.take(pc.sort_indices(both, [("_pos", "ascending"), ("_seq", "ascending")])).drop_columns(["_seq"])
    remits.fast.append({"remittances": remits_table, "remittance_adjustments": adj_table, "ledger": both})
    remits.ids.update(claim_id.to_pylist())
