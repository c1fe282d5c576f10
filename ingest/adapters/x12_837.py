"""X12 837P (005010X222A1; 004010X098A1 reads the same) -> claims, claim_lines and their references.

One claim (CLM loop 2300) is one record, at the segment number of its CLM. The claim's
context comes from the hierarchical loops above it, found by HL level code (20 billing
provider, 22 subscriber, 23 patient) rather than by HL numbering, which real files get wrong:

| canonical | from |
|---|---|
| submission_id | CLM01 \\| frequency \\| submitted_at (UTC) |
| claim_id, billed_amount | CLM01, CLM02 |
| frequency_code | CLM05-3 (1 original, 7 replacement, 8 void) |
| submitted_at | BHT04 + BHT05, local time of the practice |
| patient_key | HMAC("x12\\|" + subscriber member id, NM1*IL NM109) |
| payer_id | NM1*PR NM109 (loop 2010BB) |
| payer class | SBR09: CI, BL, HM, 12-16 commercial; MA, MB medicare; MC medicaid; 09 self-pay; else other |
| provider_id | rendering provider NM1*82 NM109 (2310B), else the billing provider NM1*85 |
| location_id | REF*LU of the service facility NM1*77 (2310C) |
| payer_claim_control_number | REF*F8 |
| lines | LX + SV1 (procedure:modifiers, charge, units) + DTP*472 (D8 or RD8 start) |
| service_date | the earliest line date, else the claim's DTP*472 |

A claim is loaded only if the loops it depends on are well formed. The structural rules
checked, each the reason of a reject when broken: segment identifiers are valid (else the
whole transaction set is rejected, as an X12 999 would); a billing provider loop has exactly
one NM1*85 with its N3 and N4; a subscriber loop has one NM1*IL and one NM1*PR; N3 precedes
N4 within a name loop; a claim has CLM05, an HI segment and at least one service line; every
SV1 follows an LX; DTP*472 is D8 or RD8. Identical repeats of a submission count as unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from ingest.adapters.x12_segments import Segment, TransactionSet
from ingest.batch import RecordError, Target, tuples_to_arrow
from ingest.context import ParseContext
from ingest.pseudonymize import MASK

SOURCE = "x12"
PAYER_CLASS = {
    **dict.fromkeys(["CI", "BL", "HM", "12", "13", "14", "15", "16"], "commercial"),
    "MA": "medicare",
    "MB": "medicare",
    "MC": "medicaid",
    "09": "self_pay",
}
PATIENT_ENTITIES = {"IL", "QC", "74"}
# addresses, birth data, contacts; diagnoses (HI) and free-text notes (NTE, K3) are clinical detail
MASKED_SEGMENTS = {"N3", "N4", "DMG", "PER", "HI", "NTE", "K3"}
MASKED_REFS = {"SY", "1W", "EA", "IG", "Y4"}
CLAIM_COLUMNS = [
    "_pos",
    "_version",
    "submission_id",
    "claim_id",
    "frequency_code",
    "submitted_at",
    "patient_key",
    "location_id",
    "provider_id",
    "payer_id",
    "service_date",
    "billed_amount",
    "payer_claim_control_number",
    "source",
]
LINE_COLUMNS = [
    "_pos",
    "_version",
    "submission_id",
    "line_no",
    "procedure_code",
    "modifiers",
    "units",
    "charge_amount",
    "service_date",
    "source",
]


class Problem(Exception):
    """A broken rule: (field, check, reason, value)."""

    def __init__(self, field: str | None, check: str, reason: str, value: str | None = None) -> None:
        super().__init__(reason)
        self.field, self.check, self.reason, self.value = field, check, reason, value


def amount(seg: Segment, i: int, name: str) -> Decimal | None:
    """Element `i` as money (None when empty); a Problem when it is not a 2-decimal amount."""
    text = seg[i]
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Problem(
            name, "unreadable_value", f"{name} {text!r} (segment {seg.number}) is not an amount", text
        ) from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise Problem(
            name, "unreadable_value", f"{name} {text!r} (segment {seg.number}) is not an amount in cents", text
        )
    return value.quantize(Decimal("0.01"))


def date8(text: str, name: str, seg: Segment) -> datetime | None:
    """CCYYMMDD as a date (a datetime at midnight); a Problem when it is not a real date."""
    day = _ccyymmdd(text)
    if day is None:
        raise Problem(name, "unreadable_value", f"{name} {text!r} (segment {seg.number}) is not a date CCYYMMDD", text)
    return day


@lru_cache(maxsize=4096)  # a file has a few hundred distinct dates, each on thousands of segments; strptime is slow
def _ccyymmdd(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return None


def service_date(seg: Segment, name: str) -> datetime | None:
    """DTP*472: D8 `CCYYMMDD` or RD8 `CCYYMMDD-CCYYMMDD` (the start)."""
    qualifier, value = seg[2], seg[3]
    if qualifier == "D8":
        return date8(value, name, seg)
    if qualifier == "RD8":
        return date8(value.split("-")[0], name, seg)
    raise Problem(
        name, "unreadable_value", f"{name} date format {qualifier!r} (segment {seg.number}) is not D8 or RD8", qualifier
    )


def masked_record(segments: list[Segment] | None) -> str | None:
    """A rejected record's segments as JSON, direct identifiers masked."""
    return json.dumps({"segments": [masked_segment(s) for s in segments]}) if segments else None


def masked_segment(seg: Segment) -> str:
    """The segment as text, with names, addresses, birth dates, contacts and member ids masked."""
    elements = list(seg.elements)
    if seg.id in MASKED_SEGMENTS:
        elements = [elements[0], *(MASK if e else e for e in elements[1:])]
    elif seg.id == "NM1" and seg[1] in PATIENT_ENTITIES:
        elements = [e if i < 3 else (MASK if e else e) for i, e in enumerate(elements)]
    elif seg.id == "REF" and seg[1] in MASKED_REFS:
        elements = [e if i < 2 else (MASK if e else e) for i, e in enumerate(elements)]
    return "*".join(elements)


@dataclass
class _Loop:
    """A hierarchical (HL) loop: what its segments said and what is wrong with them."""

    level: str
    start: int
    problems: list[Problem] = field(default_factory=list)
    names: Counter[str] = field(default_factory=Counter)
    npi: str | None = None
    member_id: str | None = None
    payer_id: str | None = None
    payer_name: str | None = None
    payer_class: str | None = None
    segments: list[Segment] = field(default_factory=list)


@dataclass
class _NameLoop:
    """The NM1 loop being read, for the N3-before-N4 rule."""

    entity: str | None = None
    n3: bool = False
    n4: bool = False


@dataclass
class _Claim:
    clm: Segment
    loops: list[_Loop]
    segments: list[Segment] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    has_hi: bool = False
    claim_date: datetime | None = None
    rendering_npi: str | None = None
    rendering_name: str | None = None
    location_id: str | None = None
    control_number: str | None = None
    entity: str | None = None
    open_line: dict | None = None


class Claims:
    """Accumulates the claims of every 837 transaction set of a file."""

    def __init__(self, ctx: ParseContext) -> None:
        self.tz = ZoneInfo(ctx.timezone)
        self.key = ctx.pseudonymizer.key
        self.keys = ctx.pseudonymizer.keys
        # rows as tuples in the order of their columns (CLAIM_COLUMNS, ...): a chunk's columns are
        # then cut out of them at C speed (`tuples_to_arrow`), with no dict built per row
        self.rows: list[tuple] = []
        self.lines: list[tuple] = []
        self.payers: list[tuple] = []
        self.providers: list[tuple] = []
        self.locations: list[tuple] = []
        self.errors: list[RecordError] = []
        self.ignored: Counter[str] = Counter()
        self.records: dict[int, list[Segment]] = {}  # the segments of the claims rejected here
        self.empty: list[str] = []  # transaction sets without a claim
        self.ids: set[str] = set()  # of every claim loaded so far, over the chunks
        self.early: list[tuple[int, int, str]] = []  # (days, position, claim id) of claims billed before service
        self.fast: list[dict[str, pa.Table]] = []  # the same rows, mapped in columns (`x12_837_columns`)

    def claim_ids(self) -> set[str]:
        """The claims this file touched; a record without CLM01 is rejected by the load path and touches none."""
        return self.ids - {None}

    def take(self) -> list[tuple[Target, pa.Table]]:
        """The targets of the rows mapped since the last take (a chunk of the file), and forget them."""
        targets = self.targets()
        self.rows, self.lines, self.payers, self.providers, self.locations = [], [], [], [], []
        self.fast = []
        return targets

    def pending(self) -> int:
        """Records mapped (or rejected) since the last take."""
        return len(self.rows) + len(self.errors) + sum(t["claims"].num_rows for t in self.fast)

    def warnings(self) -> list[str]:
        """What a person should check although the rows loaded: 837s without claims, claims billed
        before their date of service (a negative charge lag: BHT04 or DTP*472 is wrong)."""
        out = []
        if self.empty:
            more = f" and {len(self.empty) - 1} more" if len(self.empty) > 1 else ""
            out.append(
                f"{len(self.empty)} 837 transaction set(s) hold no claim (no CLM segment): {self.empty[0]}{more}"
            )
        early = sorted(self.early)
        if early:
            days, pos, claim_id = early[-1]
            out.append(
                f"{len(early)} claim(s) were submitted before their date of service, by up to {days} days "
                f"(claim {claim_id}, segment {pos}): their charge lag is negative; check the submission date "
                "(BHT04) and the service dates (DTP*472)"
            )
        return out

    def targets(self) -> list[tuple[Target, pa.Table]]:
        fast = self.fast
        return [
            (Target("claims"), with_fast(tuples_to_arrow(self.rows, CLAIM_COLUMNS), fast, "claims")),
            (Target("claim_lines"), with_fast(tuples_to_arrow(self.lines, LINE_COLUMNS), fast, "claim_lines")),
            (
                Target("payers", mode="reference", counted=False),
                with_fast(_refs(self.payers, ["payer_id", "name", "payer_class"]), fast, "payers"),
            ),
            (
                Target("providers", mode="reference", counted=False),
                with_fast(_refs(self.providers, ["provider_id", "npi", "name"]), fast, "providers"),
            ),
            (
                Target("locations", mode="reference", counted=False),
                with_fast(_refs(self.locations, ["location_id"]), fast, "locations"),
            ),
        ]

    def add(self, ts: TransactionSet) -> None:
        submitted = self._submitted(ts)
        # the submission's time in UTC (in submission_id) and local date, the same for every claim of the set
        stamp = (
            None
            if isinstance(submitted, Problem)
            else (
                submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
                submitted.astimezone(self.tz).date(),
            )
        )
        claims = self._walk(ts)
        if not claims:
            self.empty.append(ts.label)
        for claim in claims:
            pos = claim.clm.number
            problems = []
            if ts.syntax_error:
                problems.append(
                    Problem(
                        None,
                        "malformed_transaction",
                        f"{ts.label} is malformed ({ts.syntax_error}), so none of its claims are loaded",
                    )
                )
            if isinstance(submitted, Problem):
                problems.append(submitted)
            problems += [p for loop in claim.loops for p in loop.problems] + claim.problems
            if problems:
                p = problems[0]
                self.errors.append(RecordError(pos, p.field, p.check, p.reason, p.value))
                self.records[pos] = _record(claim)
                continue
            try:
                self._rows(claim, submitted, stamp)
            except Problem as p:
                self.errors.append(RecordError(pos, p.field, p.check, p.reason, p.value))
                self.records[pos] = _record(claim)

    def record_segments(self, ts: TransactionSet) -> dict[int, list[Segment]]:
        """Each claim's segments (its loops' SBR and NM1, then its own), by position: read again
        for the claims the load path rejects."""
        return {claim.clm.number: _record(claim) for claim in self._walk(ts)}

    # -- walking the segments -------------------------------------------------------------------

    def _submitted(self, ts: TransactionSet) -> datetime | Problem:
        bht = next((s for s in ts.segments if s.id == "BHT"), None)
        if bht is None:
            return Problem("BHT", "no_bht", f"{ts.label} has no BHT segment, so the submission date is unknown")
        try:
            day = date8(bht[4], "BHT04", bht)
            clock = (bht[5] + "0000")[:4] if bht[5] else "0000"
            local = day.replace(hour=int(clock[:2]), minute=int(clock[2:4]), tzinfo=self.tz)
        except (Problem, ValueError) as exc:
            if isinstance(exc, Problem):
                return exc
            return Problem(
                "BHT05", "unreadable_value", f"BHT05 time {bht[5]!r} (segment {bht.number}) is not HHMM", bht[5]
            )
        return local.astimezone(UTC)

    def _walk(self, ts: TransactionSet) -> list[_Claim]:
        claims: list[_Claim] = []
        chain: list[_Loop] = []
        header = _Loop("header", ts.start.number)
        claim: _Claim | None = None
        name_loop = _NameLoop()
        for seg in ts.segments[1:-1]:
            if seg.id == "HL":
                claim = None
                level = seg[3]
                loop = _Loop(level, seg.number, segments=[seg])
                depth = {"20": 0, "22": 1, "23": 2}.get(level)
                chain = [*chain[:depth], loop] if depth is not None else [*chain, loop]
                name_loop = _NameLoop()
                continue
            if seg.id == "CLM":
                claim = _Claim(seg, list(chain), [seg])
                claims.append(claim)
                if not seg[5]:
                    claim.problems.append(
                        Problem(
                            "CLM05",
                            "required",
                            f"CLM05 (place of service : qualifier : frequency) is missing in segment {seg.number}",
                        )
                    )
                continue
            loop = chain[-1] if chain else header
            if claim is None:
                loop.segments.append(seg)
                name_loop = self._loop_segment(loop, seg, name_loop)
            else:
                claim.segments.append(seg)
                self._claim_segment(claim, seg)
        for loop in {id(lp): lp for c in claims for lp in c.loops}.values():
            self._close_loop(loop)
        for claim in claims:
            self._close_claim(claim)
        return claims

    def _loop_segment(self, loop: _Loop, seg: Segment, name_loop: _NameLoop) -> _NameLoop:
        """Note what a segment of an HL loop says; returns the name loop (NM1 ...) it belongs to."""
        if seg.id == "NM1":
            entity = seg[1]
            loop.names[entity] += 1
            if entity == "85" and seg[8] == "XX":
                loop.npi = seg[9] or None
            elif entity == "IL":
                loop.member_id = seg[9] or None
            elif entity in ("PR", "IN"):
                loop.payer_id, loop.payer_name = seg[9] or None, seg[3] or None
            elif not entity:
                loop.problems.append(_no_entity(seg))
            return _NameLoop(entity)
        if seg.id in ("N3", "N4"):
            if seg.id == "N3" and name_loop.n4:
                loop.problems.append(
                    Problem(
                        "N3",
                        "out_of_order",
                        f"segment {seg.number}: N3 (address) comes after N4 (city/state/ZIP) in the same name loop; "
                        "the segments are out of order",
                    )
                )
            name_loop.n3 = name_loop.n3 or seg.id == "N3"
            name_loop.n4 = name_loop.n4 or seg.id == "N4"
            if name_loop.entity == "85":
                loop.names[f"85.{seg.id}"] += 1
        elif seg.id == "SBR":
            loop.payer_class = PAYER_CLASS.get(seg[9], "other") if seg[9] else None
        return name_loop

    def _close_loop(self, loop: _Loop) -> None:
        where = f"the {{}} loop (HL at segment {loop.start})"
        if loop.level == "20":
            n = loop.names["85"]
            if n != 1:
                found = ", ".join(sorted(f"NM1*{e}" for e in loop.names if "." not in e)) or "no NM1"
                loop.problems.insert(
                    0,
                    Problem(
                        "NM1",
                        "billing_provider",
                        f"{where.format('billing provider')} must have exactly one NM1*85 billing provider name; "
                        f"it has {n} (found {found})",
                    ),
                )
            elif not (loop.names["85.N3"] and loop.names["85.N4"]):
                missing = "N3 address" if not loop.names["85.N3"] else "N4 city/state/ZIP"
                loop.problems.insert(
                    0,
                    Problem(
                        missing[:2],
                        "billing_provider",
                        f"{where.format('billing provider')} has no {missing} for NM1*85, which 837P requires",
                    ),
                )
        elif loop.level == "22":
            payers = loop.names["PR"] + loop.names["IN"]  # IN: the payer code of the first 4010 examples
            for entity, what, n in (("IL", "subscriber name", loop.names["IL"]), ("PR", "payer name", payers)):
                if n != 1:
                    loop.problems.insert(
                        0,
                        Problem(
                            "NM1",
                            "subscriber",
                            f"{where.format('subscriber')} must have exactly one NM1*{entity} {what}; it has {n}",
                        ),
                    )

    def _claim_segment(self, claim: _Claim, seg: Segment) -> None:
        try:
            if seg.id == "HI":
                claim.has_hi = True
            elif seg.id == "LX":
                claim.open_line = {"line_no": len(claim.lines) + 1, "lx": seg}
                claim.entity = None
            elif seg.id == "SV1":
                if claim.open_line is None or "sv1" in claim.open_line:
                    raise Problem(
                        "LX",
                        "missing_lx",
                        f"segment {seg.number}: the service line (SV1) is not preceded by an LX segment",
                    )
                parts = seg.parts(1)
                claim.open_line.update(
                    sv1=seg,
                    procedure_code=parts[1] if len(parts) > 1 else None,
                    modifiers=",".join(p for p in parts[2:] if p) or None,
                    charge_amount=amount(seg, 2, "SV102"),
                    units=_units(seg),
                )
                claim.lines.append(claim.open_line)
            elif seg.id == "DTP" and seg[1] == "472":
                date = service_date(seg, "DTP*472")
                if claim.open_line is not None:
                    claim.open_line["service_date"] = date
                else:
                    claim.claim_date = date
            elif seg.id == "REF" and seg[1] == "F8" and claim.open_line is None:
                claim.control_number = seg[2] or None
            elif seg.id == "NM1" and not seg[1]:
                raise _no_entity(seg)
            elif seg.id == "NM1" and claim.open_line is None:
                claim.entity = seg[1]
                if seg[1] == "82" and seg[8] == "XX":
                    claim.rendering_npi = seg[9] or None
                    claim.rendering_name = " ".join(p for p in (seg[4], seg[3]) if p) or None
            elif seg.id == "REF" and seg[1] == "LU" and claim.entity == "77":
                claim.location_id = seg[2] or None
        except Problem as p:
            claim.problems.append(p)

    def _close_claim(self, claim: _Claim) -> None:
        if not claim.has_hi:
            claim.problems.append(
                Problem(
                    "HI",
                    "required",
                    f"the claim at segment {claim.clm.number} has no HI (diagnosis) segment, which 837P requires",
                )
            )
        if not claim.lines:
            claim.problems.append(
                Problem(
                    "SV1",
                    "required",
                    f"the claim at segment {claim.clm.number} has no professional service line (LX + SV1)",
                )
            )

    # -- rows -----------------------------------------------------------------------------------

    def _rows(self, claim: _Claim, submitted: datetime, stamp: tuple[str, date]) -> None:
        clm = claim.clm
        pos = clm.number
        billing = next((lp for lp in claim.loops if lp.level == "20"), None)
        subscriber = next((lp for lp in claim.loops if lp.level == "22"), None)
        parts = clm.parts(5)
        frequency = parts[2] if len(parts) > 2 and parts[2] else None
        if frequency is None:
            raise Problem(
                "CLM05",
                "required",
                f"CLM05 {clm[5]!r} (segment {pos}) has no claim frequency code as its third part, "
                f"separated by {clm.component!r} as ISA16 declares",
                clm[5],
            )
        claim_id = clm[1] or None
        submission_id = f"{claim_id}|{frequency}|{stamp[0]}"
        dates = [ln["service_date"] for ln in claim.lines if ln.get("service_date")]
        first_date = min(dates) if dates else claim.claim_date
        provider = claim.rendering_npi or (billing.npi if billing else None)
        service = first_date.date() if first_date else None
        payer = subscriber.payer_id if subscriber else None
        member = subscriber.member_id if subscriber else None
        # CLAIM_COLUMNS; _version: the transaction set's own date (BHT04/BHT05)
        self.rows.append(
            (
                pos,
                submitted,
                submission_id,
                claim_id,
                frequency,
                submitted,
                self.key(SOURCE, member),
                claim.location_id,
                provider,
                payer,
                service,
                amount(clm, 2, "CLM02"),
                claim.control_number,
                SOURCE,
            )
        )
        if service is not None and stamp[1] < service:
            self.early.append(((service - stamp[1]).days, pos, claim_id))
        self.ids.add(claim_id)
        for line in claim.lines:
            day = line.get("service_date") or first_date
            self.lines.append(
                (
                    pos,
                    submitted,
                    submission_id,
                    line["line_no"],
                    line["procedure_code"],
                    line["modifiers"],
                    line["units"],
                    line["charge_amount"],
                    day.date() if day else None,
                    SOURCE,
                )
            )
        if payer:
            self.payers.append((pos, payer, subscriber.payer_name, subscriber.payer_class))
        if provider:
            name = claim.rendering_name if claim.rendering_npi else None
            self.providers.append((pos, provider, provider, name))
        if claim.location_id:
            self.locations.append((pos, claim.location_id))


def _record(claim: _Claim) -> list[Segment]:
    context = [s for loop in claim.loops for s in loop.segments if s.id in ("SBR", "NM1")]
    return context + claim.segments


def _no_entity(seg: Segment) -> Problem:
    return Problem("NM101", "required", f"segment {seg.number}: NM1 has no entity identifier code (NM101)")


def _units(seg: Segment) -> Decimal | None:
    text = seg[4]
    if not text:
        return None
    try:
        value = Decimal(text).quantize(Decimal("0.001"))
        if value.is_nan():  # Decimal reads "NaN" (and quantizes it): not a number a table can hold
            raise InvalidOperation
        return value
    except InvalidOperation:
        raise Problem(
            "SV104", "unreadable_value", f"SV104 units {text!r} (segment {seg.number}) is not a number", text
        ) from None


def with_fast(table: pa.Table, fast: list[dict[str, pa.Table]], name: str) -> pa.Table:
    """`table` (rows mapped in Python) with the rows of `name` mapped in columns, in the order of
    their positions, as one file read in Python would list them."""
    parts = [t[name] for t in fast if t[name].num_rows]
    if not parts:
        return table
    if table.num_rows:
        parts.insert(0, table.select(parts[0].column_names))
    whole = pa.concat_tables(parts, promote_options="permissive")
    return whole.take(pc.sort_indices(whole, [("_pos", "ascending")]))


def _refs(rows: list[tuple], columns: list[str]) -> pa.Table:
    """Reference rows, one per claim that implies them (the loader keeps the first accepted one)."""
    return tuples_to_arrow([(*r, SOURCE) for r in rows], ["_pos", *columns, "source"])
