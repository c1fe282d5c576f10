"""835 transaction sets mapped in columns: the payments of many sets by array operations.

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

As for the 837 (`x12_837_columns`, which says why): numpy over segment indices and Arrow's string
kernels over one kind of segment at a time, no SQL.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.adapters import x12_835
from ingest.adapters.x12_837_columns import (
    AMOUNT,
    QUANTITY,
    as_numpy,
    dates,
    day_column,
    elements,
    equals,
    last,
    nullif_empty,
    padded,
    plain,
    spread,
)
from ingest.adapters.x12_runs import Run, Span
from ingest.adapters.x12_segments import Segment, TransactionSet

KNOWN = ("ST", "SE", "BPR", "TRN", "DTM", "N1", "N2", "N3", "N4", "REF", "PER", "LX", "TS3", "TS2")
KNOWN += ("CLP", "NM1", "SVC", "CAS", "AMT", "QTY", "LQ", "CUR", "RDM")
_KNOWN = pa.array(KNOWN)
_CODE = {k: i for i, k in enumerate(KNOWN)}
_TRIPLETS = 6  # CAS02-04, 05-07, ... 17-19: reason, amount, quantity
_PAID = sorted(x12_835.PAID)
_NO_DAY = np.iinfo(np.int64).max


def _money(values: pa.Array, scale: int = 2) -> pa.Array:
    return pc.cast(nullif_empty(values), pa.decimal128(38, scale))


class _Payments:
    """The candidate sets' segments (in file order, each set from its ST to its SE): the payment
    each belongs to, whether its set is vouched for, and the rows of those sets."""

    def __init__(
        self,
        numbers: np.ndarray,
        texts: pa.Array,
        ids: pa.Array,
        set_of: np.ndarray,
        sets: int,
        element: str,
        component: str,
    ) -> None:
        self.numbers, self.texts, self.set_of, self.element = numbers, texts, set_of, element
        self.code = as_numpy(pc.fill_null(pc.index_in(ids, value_set=_KNOWN), -1))
        n = self.n = len(self.code)
        self.at = at = {kind: np.flatnonzero(self.code == i) for kind, i in _CODE.items()}
        # the payment of each segment (index of its CLP, from a CLP to the next CLP, LX or SE: those
        # that end a payment are not in it, as `_walk` reads them; a PLB, which ends one too, sends
        # its set the Python way), its service line (count of SVC since the CLP) and that line's SVC
        st, clp, lx, se, svc = (self.mask(k) for k in ("ST", "CLP", "LX", "SE", "SVC"))
        ends = lx | se | st
        self.pay = pay = np.where(ends, -1, last(clp, ends))
        svc_count = np.cumsum(svc)
        self.line_k = np.where(pay >= 0, svc_count - svc_count[np.maximum(pay, 0)], 0)
        self.svc_at = last(svc, clp | ends)

        bad = self.code < 0
        bad |= as_numpy(pc.match_substring_regex(texts, padded(element, component)))
        self.cas = cas = self.of("CAS", 3 * _TRIPLETS + 1)
        readable = np.ones(len(at["CAS"]), bool)
        for i in range(2, 19, 3):
            readable &= equals(cas[i], "") | (plain(cas[i + 1], AMOUNT) & plain(cas[i + 2], QUANTITY))
        bad[at["CAS"]] |= (pay[at["CAS"]] >= 0) & ~readable
        dtm = self.of("DTM", 2)
        readable, self.days = dates(dtm[2])
        in_pay = pay[at["DTM"]] >= 0
        self.statement = in_pay & equals(dtm[1], "232")
        self.of_line = in_pay & (equals(dtm[1], "472") | equals(dtm[1], "150")) & (self.line_k[at["DTM"]] > 0)
        bad[at["DTM"]] |= (self.statement | self.of_line) & ~readable
        self.clp = clp_e = self.of("CLP", 7)
        bad[at["CLP"]] |= ~(plain(clp_e[3], AMOUNT) & plain(clp_e[4], AMOUNT) & plain(clp_e[5], AMOUNT))
        self.nm1 = nm1 = self.of("NM1", 9)
        in_pay = pay[at["NM1"]] >= 0
        self.il, self.qc = in_pay & equals(nm1[1], "IL"), in_pay & equals(nm1[1], "QC")
        clps = at["CLP"]
        for kind, where in (("NM1", self.il), ("NM1", self.qc), ("DTM", self.statement)):
            bad[clps] |= np.bincount(pay[at[kind][where]], minlength=n)[clps] > 1
        self.set_bad = np.bincount(set_of[bad], minlength=sets) > 0
        self.set_bad |= np.bincount(set_of[clps], minlength=sets) == 0

        # the payments of the sets vouched for, one row each, in file order
        self.good = ~self.set_bad[set_of]
        self.k = np.flatnonzero(self.good[clps])  # among the CLPs
        self.c = clps[self.k]
        self.rows = len(self.c)
        self.row_of = np.full(n, -1)
        self.row_of[self.c] = np.arange(self.rows)

    def mask(self, kind: str) -> np.ndarray:
        out = np.zeros(self.n, bool)
        out[self.at[kind]] = True
        return out

    def of(self, kind: str, upto: int) -> list[pa.Array]:
        """Elements 0..`upto` of the segments of `kind`."""
        return elements(self.texts.take(pa.array(self.at[kind], pa.int64())), self.element, upto)

    def _by_payment(self, kind: str, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(payment row, index among the kind's segments) of the kind's segments of vouched
        payments where `where` holds."""
        where = where & self.good[self.at[kind]]
        return self.row_of[self.pay[self.at[kind][where]]], np.flatnonzero(where)

    def _value(self, where: np.ndarray, values: pa.Array) -> pa.Array:
        """By payment: the value of its (at most one) NM1 where `where` holds."""
        row, i = self._by_payment("NM1", where)
        return spread(self.rows, row, values, i)

    def payments(self) -> pa.Table:
        """The payments, as `x12_835.Remittances._rows` reads each (its identity without the trace)."""
        rows, clp = self.rows, self.clp
        statement_day = np.full(rows, _NO_DAY)
        row, i = self._by_payment("DTM", self.statement)
        statement_day[row] = self.days[i]
        line_day = np.full(rows, _NO_DAY)
        row, i = self._by_payment("DTM", self.of_line)
        np.minimum.at(line_day, row, self.days[i])
        service_day = np.where(statement_day < _NO_DAY, statement_day, line_day)
        take = pa.array(self.k)
        claim_id, status_code, control = (clp[i].take(take) for i in (1, 2, 7))
        paid = _money(clp[4].take(take))
        codes = as_numpy(status_code)
        paying = np.isin(codes, _PAID)
        zero = as_numpy(pc.fill_null(pc.equal(paid, pa.scalar(Decimal(0), paid.type)), False))
        status = np.select(
            [codes == "22", codes == "4", paying & zero, paying], ["reversed", "denied", "zero_paid", "paid"], "other"
        )
        lq = self.of("LQ", 2)
        he = (self.pay[self.at["LQ"]] >= 0) & equals(lq[1], "HE") & ~equals(lq[2], "")
        remarks: list[dict[str, None]] = [{} for _ in range(rows)]
        row, i = self._by_payment("LQ", he)
        for r, text in zip(row.tolist(), lq[2].take(pa.array(i)).to_pylist(), strict=True):
            remarks[r][text] = None
        seen: Counter[tuple] = Counter()
        ident = []
        for key in zip(
            claim_id.to_pylist(), codes.tolist(), control.to_pylist(), self.set_of[self.c].tolist(), strict=True
        ):
            seen[key] += 1
            ident.append(f"{key[0]}|{key[1]}|{key[2]}|{seen[key]}")
        member = nullif_empty(self.nm1[9])
        return pa.table(
            {
                "ts": pa.array(self.set_of[self.c], pa.int32()),
                "_pos": pa.array(self.numbers[self.c], pa.int64()),
                "claim_id": nullif_empty(claim_id),
                "payer_claim_control_number": nullif_empty(control),
                "claim_status_code": nullif_empty(status_code),
                "status": pa.array(status, pa.string()),
                "billed_amount": _money(clp[3].take(take)),
                "paid_amount": paid,
                "patient_responsibility": _money(clp[5].take(take)),
                "remark_codes": pa.array([",".join(r) or None for r in remarks], pa.string()),
                "member_id": pc.coalesce(
                    self._value(self.il, member),
                    self._value(self.qc, member),
                ),
                "service_date": day_column(service_day, service_day < _NO_DAY),
                "ident": pa.array(ident, pa.string()),
            }
        )

    def adjustments(self, component: str) -> pa.Table:
        """Every CAS triplet with a reason of the vouched payments, in file order: its sequence in
        its payment, its line and procedure, and the LQ*HE remark codes of its line after it."""
        at, cas = self.at, self.cas
        cas_in = self.good[at["CAS"]] & (self.pay[at["CAS"]] >= 0)
        which, triplet = [], []
        for t in range(_TRIPLETS):
            found = np.flatnonzero(cas_in & ~equals(cas[2 + 3 * t], ""))
            which.append(found)
            triplet.append(np.full(len(found), t))
        order = np.lexsort((np.concatenate(triplet), np.concatenate(which)))
        which, triplet = np.concatenate(which)[order], np.concatenate(triplet)[order]

        def element(offset: int) -> pa.Array:
            """Element `offset + 3 * triplet` of each adjustment's CAS."""
            parts = [cas[offset + 3 * t].take(pa.array(which[triplet == t])) for t in range(_TRIPLETS)]
            grouped = np.concatenate([np.flatnonzero(triplet == t) for t in range(_TRIPLETS)])
            return pa.concat_arrays(parts).take(pa.array(np.argsort(grouped, kind="stable")))

        segment = at["CAS"][which]
        owner = self.pay[segment]
        start = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        seq = np.arange(len(owner)) - np.repeat(start, np.diff(np.r_[start, len(owner)])) + 1
        line = self.line_k[segment]
        svc = self.of("SVC", 1)
        procedure = elements(svc[1], component, 1)[1]
        has_procedure = as_numpy(pc.list_value_length(pc.split_pattern(svc[1], component))) > 1
        svc_of = np.full(self.n, -1)
        svc_of[at["SVC"]] = np.where(has_procedure, np.arange(len(at["SVC"])), -1)
        procedure_at = np.where(line > 0, svc_of[np.maximum(self.svc_at[segment], 0)], -1)
        # LQ*HE remark codes: each goes to the adjustments of its line before it (`_segment`); the
        # adjustments of a payment's line are neighbours in file order
        remarks: list[list[str]] = [[] for _ in range(len(segment))]
        lq = self.of("LQ", 2)
        lq_at = at["LQ"]
        he = self.good[lq_at] & (self.pay[lq_at] >= 0) & (self.line_k[lq_at] > 0) & equals(lq[1], "HE")
        he &= ~equals(lq[2], "")
        width = int(self.line_k.max(initial=0)) + 1
        key = owner * width + line
        for i, text in zip(np.flatnonzero(he).tolist(), lq[2].filter(pa.array(he)).to_pylist(), strict=True):
            s = lq_at[i]
            lo = np.searchsorted(key, self.pay[s] * width + self.line_k[s])
            for r in range(lo, np.searchsorted(segment, s)):
                remarks[r].append(text)
        return pa.table(
            {
                "ts": pa.array(self.set_of[segment], pa.int32()),
                "_pos": pa.array(self.numbers[owner], pa.int64()),
                "seq": pa.array(seq, pa.int64()),
                "line_no": pa.array(line, pa.int64(), mask=line == 0),
                "procedure_code": procedure.take(pa.array(procedure_at, mask=procedure_at < 0)),
                "group_code": cas[1].take(pa.array(which)),
                "reason_code": element(2),
                "amount": _money(element(3)),
                "quantity": _money(element(4), 3),
                "remark_codes": pa.array([",".join(r) or None for r in remarks], pa.string()),
            }
        )


def map_payments(remits: x12_835.Remittances, run: Run, spans: list[Span]) -> list[Span]:
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
    found = _Payments(numbers.to_numpy(), texts, ids, set_of.to_numpy(), len(candidates), run.element, run.component)
    bad = found.set_bad
    python += [c[0] for k, c in enumerate(candidates) if bad[k]]
    python.sort(key=lambda s: s.lo)
    for k, (_, header, label) in enumerate(candidates):
        if not bad[k] and header["paid"] is None and header["production"] is not None:
            remits.undated.append((label, header["production"]))
    if found.rows:
        _add(remits, found.payments(), found.adjustments(run.component), [c[1] for c in candidates])
    return python


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
