"""X12 835 (005010X221A1; 004010X091A1 reads the same) -> remittances, adjustments and payer ledger entries.

One claim payment (CLP loop 2100) is one record, at the segment number of its CLP:

| canonical | from |
|---|---|
| remittance_id | TRN02 trace \\| CLP01 \\| CLP02 \\| CLP07 \\| occurrence of that tuple in the transaction set |
| claim_id, claim_status_code | CLP01, CLP02 |
| status | CLP02 4 denied; 22 reversed; 1, 2, 3, 19, 20, 21 paid (zero_paid when CLP04 = 0); else other |
| billed, paid, patient responsibility | CLP03, CLP04, CLP05 |
| payer_claim_control_number | CLP07 |
| paid_date | BPR16, else DTM*405 |
| payer_id | REF*2U of the payer loop, else N1*PR N104, else TRN03 |
| patient_key | HMAC("x12\\|" + member id): NM1*IL NM109, else NM1*QC NM109 |
| remark_codes | MOA03-07 and the LQ*HE codes of its lines |
| adjustments | every CAS triplet (group, CARC, amount, quantity), claim level, then per SVC line |

Ledger (docs/contracts.md, source x12): one `payment` (party payer) per remittance of CLP04 at
paid_date (a reversal's negative amount as sent), and one `adjustment` per CAS triplet of group
CO, OA, PI or CR. PR amounts are not ledger entries: they stay in A/R as patient
responsibility until a patient payment arrives. Provider-level adjustments (PLB) belong to no
claim and are counted as ignored. Payers are not written from an 835, which does not say the
payer class: the 837 claims do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import pyarrow as pa

from ingest.adapters.x12_837 import Problem, amount, date8, with_fast
from ingest.adapters.x12_ledger import CLAIM_DETAILS, CLAIM_DETAILS_JOIN
from ingest.adapters.x12_segments import Segment, TransactionSet
from ingest.batch import RecordError, Target, tuples_to_arrow
from ingest.context import ParseContext

SOURCE = "x12"
PAID = {"1", "2", "3", "19", "20", "21"}
LEDGER_GROUPS = {"CO", "OA", "PI", "CR"}
REMIT_COLUMNS = [
    "_pos",
    "_version",
    "remittance_id",
    "claim_id",
    "payer_id",
    "payer_claim_control_number",
    "trace_number",
    "paid_date",
    "claim_status_code",
    "status",
    "billed_amount",
    "paid_amount",
    "patient_responsibility",
    "remark_codes",
    "source",
]
ADJ_COLUMNS = [
    "_pos",
    "_version",
    "remittance_id",
    "seq",
    "line_no",
    "procedure_code",
    "group_code",
    "reason_code",
    "amount",
    "quantity",
    "remark_codes",
    "source",
]
LEDGER_COLUMNS = [
    "_pos",
    "_version",
    "entry_id",
    "claim_id",
    "patient_key",
    "payer_id",
    "service_date",
    "posted_date",
    "entry_type",
    "party",
    "amount",
    "group_code",
    "reason_code",
    "source",
]


@dataclass
class _Payment:
    clp: Segment
    segments: list[Segment] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    member_il: str | None = None
    member_qc: str | None = None
    statement_date: datetime | None = None
    line_dates: list[datetime] = field(default_factory=list)
    lines: int = 0
    procedure: str | None = None


class Remittances:
    """Accumulates the claim payments of every 835 transaction set of a file."""

    def __init__(self, ctx: ParseContext) -> None:
        self.key = ctx.pseudonymizer.key
        self.keys = ctx.pseudonymizer.keys
        self.tz = ZoneInfo(ctx.timezone)
        self.rows: list[tuple] = []
        self.adjustments: list[tuple] = []
        self.ledger: list[tuple] = []
        self.errors: list[RecordError] = []
        self.ignored: Counter[str] = Counter()
        self.records: dict[int, list[Segment]] = {}  # the segments of the payments rejected here
        self.undated: list[tuple[str, datetime]] = []  # (transaction set, DTM*405) of payments without BPR16
        self.ids: set[str] = set()  # of every claim paid so far, over the chunks
        self.fast: list[dict[str, pa.Table]] = []  # the same rows, mapped in columns (`x12_835_columns`)

    def claim_ids(self) -> set[str]:
        """The claims this file touched; a record without CLP01 is rejected by the load path and touches none."""
        return self.ids - {None}

    def take(self) -> list[tuple[Target, pa.Table]]:
        """The targets of the rows mapped since the last take (a chunk of the file), and forget them."""
        targets = self.targets()
        self.rows, self.adjustments, self.ledger = [], [], []
        self.fast = []
        return targets

    def pending(self) -> int:
        """Records mapped (or rejected) since the last take."""
        return len(self.rows) + len(self.errors) + sum(t["remittances"].num_rows for t in self.fast)

    def record_segments(self, ts: TransactionSet) -> dict[int, list[Segment]]:
        """Each payment's segments by position: read again for the payments the load path rejects."""
        return {payment.clp.number: payment.segments for payment in self._walk(ts)}

    def warnings(self) -> list[str]:
        """What a person should check although every row loaded: payments dated by a fallback."""
        if not self.undated:
            return []
        label, production = self.undated[0]
        more = f" and {len(self.undated) - 1} more" if len(self.undated) > 1 else ""
        return [
            f"{len(self.undated)} 835 transaction set(s) have no BPR16 payment date: their payments are dated by "
            f"DTM*405, the production date ({label}: {production.date().isoformat()}{more}); denial rate and "
            "collections place them in that date's period"
        ]

    def targets(self) -> list[tuple[Target, pa.Table]]:
        fast = self.fast
        return [
            (Target("remittances"), with_fast(tuples_to_arrow(self.rows, REMIT_COLUMNS), fast, "remittances")),
            (
                Target("remittance_adjustments"),
                with_fast(tuples_to_arrow(self.adjustments, ADJ_COLUMNS), fast, "remittance_adjustments"),
            ),
            (
                Target("ledger", derived=CLAIM_DETAILS, join=CLAIM_DETAILS_JOIN, held_with="remittances"),
                with_fast(tuples_to_arrow(self.ledger, LEDGER_COLUMNS), fast, "ledger"),
            ),
        ]

    def add(self, ts: TransactionSet) -> None:
        header = self._header(ts)
        payments = self._walk(ts)
        if payments and isinstance(header, dict) and header["paid"] is None and header["production"] is not None:
            self.undated.append((ts.label, header["production"]))
        seen: Counter[tuple[str, ...]] = Counter()
        for payment in payments:
            pos = payment.clp.number
            problems = list(payment.problems)
            if ts.syntax_error:
                problems.insert(
                    0,
                    Problem(
                        None,
                        "malformed_transaction",
                        f"{ts.label} is malformed ({ts.syntax_error}), so none of its payments are loaded",
                    ),
                )
            if isinstance(header, Problem):
                problems.insert(0, header)
            if problems:
                p = problems[0]
                self.errors.append(RecordError(pos, p.field, p.check, p.reason, p.value))
                self.records[pos] = payment.segments
                continue
            clp = payment.clp
            ident = (header["trace"] or "", clp[1], clp[2], clp[7])
            seen[ident] += 1
            try:
                self._rows(payment, header, "|".join((*ident, str(seen[ident]))))
            except Problem as p:
                self.errors.append(RecordError(pos, p.field, p.check, p.reason, p.value))
                self.records[pos] = payment.segments
        plb = sum(1 for s in ts.segments if s.id == "PLB")
        if plb:
            self.ignored["provider-level adjustments (PLB), which belong to no claim"] += plb

    def _header(self, ts: TransactionSet) -> dict | Problem:
        """Payment date, trace number and payer of the transaction set."""
        found: dict = {"trace": None, "paid": None, "production": None, "payer": None}
        n1_payer, ref_2u, trn03, in_payer = None, None, None, False
        try:
            for seg in ts.segments:
                if seg.id == "CLP":
                    break
                if seg.id == "BPR" and seg[16]:
                    found["paid"] = date8(seg[16], "BPR16", seg)
                elif seg.id == "TRN":
                    found["trace"], trn03 = seg[2] or None, seg[3] or None
                elif seg.id == "DTM" and seg[1] == "405":
                    found["production"] = date8(seg[2], "DTM*405", seg)
                elif seg.id == "N1":
                    in_payer = seg[1] == "PR"
                    if in_payer:
                        n1_payer = seg[4] or None
                elif seg.id == "REF" and seg[1] == "2U" and in_payer:
                    ref_2u = seg[2] or None
        except Problem as p:
            return p
        found["payer"] = ref_2u or n1_payer or trn03
        return found

    def _walk(self, ts: TransactionSet) -> list[_Payment]:
        payments: list[_Payment] = []
        current: _Payment | None = None
        for seg in ts.segments:
            if seg.id == "CLP":
                current = _Payment(seg, [seg])
                payments.append(current)
                continue
            if current is None:
                continue
            if seg.id in ("LX", "SE", "PLB"):
                current = None
                continue
            current.segments.append(seg)
            try:
                self._segment(current, seg)
            except Problem as p:
                current.problems.append(p)
        return payments

    def _segment(self, p: _Payment, seg: Segment) -> None:
        if seg.id == "SVC":
            p.lines += 1
            parts = seg.parts(1)
            p.procedure = parts[1] if len(parts) > 1 else None
        elif seg.id == "CAS":
            for i in range(2, 19, 3):
                reason = seg[i]
                if not reason:
                    continue
                quantity = seg[i + 2]
                p.adjustments.append(
                    {
                        "line_no": p.lines or None,
                        "procedure_code": p.procedure if p.lines else None,
                        "group_code": seg[1],
                        "reason_code": reason,
                        "amount": amount(seg, i + 1, f"CAS{i + 1:02d}"),
                        "quantity": _quantity(quantity, seg),
                    }
                )
        elif seg.id == "NM1" and seg[1] in ("IL", "QC"):
            if seg[1] == "IL":
                p.member_il = seg[9] or None
            else:
                p.member_qc = seg[9] or None
        elif seg.id == "MOA":
            p.remarks += [seg[i] for i in range(3, 8) if seg[i]]
        elif seg.id == "LQ" and seg[1] == "HE" and seg[2]:
            p.remarks.append(seg[2])
            for adj in p.adjustments:
                if adj["line_no"] == p.lines and p.lines:
                    adj["remark_codes"] = ",".join(filter(None, [adj.get("remark_codes"), seg[2]]))
        elif seg.id == "DTM" and seg[1] == "232":
            p.statement_date = date8(seg[2], "DTM*232", seg)
        elif seg.id == "DTM" and seg[1] in ("472", "150") and p.lines:
            p.line_dates.append(date8(seg[2], f"DTM*{seg[1]}", seg))

    def _rows(self, p: _Payment, header: dict, remittance_id: str) -> None:
        clp = p.clp
        pos = clp.number
        paid = amount(clp, 4, "CLP04")
        code = clp[2]
        if code == "22":
            status = "reversed"
        elif code == "4":
            status = "denied"
        elif code in PAID:
            status = "zero_paid" if paid == 0 else "paid"
        else:
            status = "other"
        paid_date = header["paid"] or header["production"]
        # the transaction set's own date: when the payer produced it (DTM*405), else paid it
        dated = header["production"] or header["paid"]
        version = dated.replace(tzinfo=self.tz) if dated else None
        payer = header["payer"]
        patient = self.key(SOURCE, p.member_il or p.member_qc)
        dates = ([p.statement_date] if p.statement_date else []) or p.line_dates
        service = min(dates).date() if dates else None
        claim_id = clp[1] or None
        posted = paid_date.date() if paid_date else None
        # rows as tuples in the order of REMIT_COLUMNS, ADJ_COLUMNS and LEDGER_COLUMNS (`tuples_to_arrow`)
        self.rows.append(
            (
                pos,
                version,
                remittance_id,
                claim_id,
                payer,
                clp[7] or None,
                header["trace"],
                posted,
                code or None,
                status,
                amount(clp, 3, "CLP03"),
                paid,
                amount(clp, 5, "CLP05"),
                ",".join(dict.fromkeys(p.remarks)) or None,
                SOURCE,
            )
        )
        self.ids.add(claim_id)
        entry = (pos, version)
        of_claim = (claim_id, patient, payer, service, posted)
        self.ledger.append(
            (*entry, f"x12:payment:{remittance_id}", *of_claim, "payment", "payer", paid, None, None, SOURCE)
        )
        for seq, adj in enumerate(p.adjustments, start=1):
            group, reason, value = adj["group_code"], adj["reason_code"], adj["amount"]
            self.adjustments.append(
                (
                    *entry,
                    remittance_id,
                    seq,
                    adj["line_no"],
                    adj["procedure_code"],
                    group,
                    reason,
                    value,
                    adj["quantity"],
                    adj.get("remark_codes"),
                    SOURCE,
                )
            )
            if group in LEDGER_GROUPS:
                self.ledger.append(
                    (
                        *entry,
                        f"x12:adjustment:{remittance_id}:{seq}",
                        *of_claim,
                        "adjustment",
                        None,
                        value,
                        group,
                        reason,
                        SOURCE,
                    )
                )


def _quantity(text: str, seg: Segment) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text).quantize(Decimal("0.001"))
        if value.is_nan():  # Decimal reads "NaN" (and quantizes it): not a number a table can hold
            raise InvalidOperation
        return value
    except InvalidOperation:
        raise Problem(
            "CAS", "unreadable_value", f"CAS quantity {text!r} (segment {seg.number}) is not a number", text
        ) from None
