"""837P transaction sets mapped in columns: the claims of many sets by array operations.

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

Why arrays rather than SQL: a month's 837 has ~400,000 segments of which a few kinds carry what a
claim reads; DuckDB statements over every segment (each split into a list of elements, then
grouped several times) cost ~0.65 s CPU for 10 MB, while numpy over segment indices and Arrow's
string kernels over one kind of segment at a time cost a fraction of that. Every rule is a mask
over the segments (or a count per claim or loop, by `np.bincount` of the claim's or loop's
index), and every value is taken from its segment by index.
"""

from __future__ import annotations

import re
from datetime import datetime

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
_KNOWN = pa.array(KNOWN)
_CODE = {k: i for i, k in enumerate(KNOWN)}
NULL = pa.scalar(None, pa.string())
_YMD = ((0, 4), (4, 6), (6, 8))  # where CCYYMMDD holds the year, month and day


def padded(element: str, component: str) -> str:
    """An RE2 pattern for an element or component with spaces at either end."""
    seps = re.escape(element + component)
    return f"(^|[{seps}]){SPACE}|{SPACE}($|[{seps}])"


def last(mask: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """For each segment, the index of the last segment at or before it where `mask` holds, with no
    `reset` in between (a segment both mask and reset counts as mask); -1 where there is none."""
    at = np.arange(len(mask))
    acc = np.maximum.accumulate(np.where(mask | reset, at, -1))
    return np.where((acc >= 0) & mask[np.maximum(acc, 0)], acc, -1)


def elements(texts: pa.Array, separator: str, upto: int) -> list[pa.Array]:
    """Elements 0..`upto` of each text cut at `separator` (for a segment, 0 is its identifier),
    '' where the text has fewer: the separators appended first make every one present."""
    parts = pc.split_pattern(
        pc.binary_join_element_wise(texts, separator * (upto + 1), ""), separator, max_splits=upto + 1
    )
    return [pc.list_element(parts, i) for i in range(upto + 1)]


def as_numpy(values: pa.Array) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False)


def equals(values: pa.Array, text: str) -> np.ndarray:
    return as_numpy(pc.equal(values, text))


def plain(values: pa.Array, pattern: str) -> np.ndarray:
    """Empty or matching `pattern` (an amount or quantity in its plain form)."""
    return equals(values, "") | as_numpy(pc.match_substring_regex(values, pattern))


def nullif_empty(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), NULL, values)


def dates(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(readable, days since 1970) of CCYYMMDD texts: 8 digits, not starting with 0, a real day
    (`datetime.strptime` reads exactly these); a null is not readable."""
    ok = as_numpy(pc.fill_null(pc.match_substring_regex(values, DATE), False))
    digits = pc.if_else(pa.array(ok), values, "19700101")
    y, m, d = (as_numpy(pc.cast(pc.utf8_slice_codeunits(digits, a, b), pa.int64())) for a, b in _YMD)
    month = ((y - 1970) * 12 + m - 1).astype("datetime64[M]")
    first = month.astype("datetime64[D]").astype(np.int64)
    length = (month + 1).astype("datetime64[D]").astype(np.int64) - first
    ok &= (m >= 1) & (m <= 12) & (d >= 1) & (d <= length)
    return ok, first + d - 1


def spread(size: int, rows: np.ndarray, values: pa.Array, at: np.ndarray) -> pa.Array:
    """A column of `size` rows holding `values[at[k]]` in row `rows[k]`, null elsewhere."""
    take = np.full(size, -1, np.int64)
    take[rows] = at
    return values.take(pa.array(take, mask=take < 0))


def day_column(days: np.ndarray, known: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.date32(), mask=~known)


class _Segments:
    """The candidate sets' segments (in file order, each set from its ST to its SE): their kind,
    where each belongs, and the elements of the kinds a claim reads."""

    def __init__(
        self, numbers: np.ndarray, texts: pa.Array, ids: pa.Array, set_of: np.ndarray, element: str, component: str
    ) -> None:
        self.numbers, self.texts, self.set_of = numbers, texts, set_of
        self.element, self.component = element, component
        self.code = as_numpy(pc.fill_null(pc.index_in(ids, value_set=_KNOWN), -1))
        self.n = len(self.code)
        code, n = self.code, self.n
        self.at = {kind: np.flatnonzero(code == i) for kind, i in _CODE.items()}
        st, hl, clm, lx, nm1, n4 = (self.mask(k) for k in ("ST", "HL", "CLM", "LX", "NM1", "N4"))
        self.nm1 = self.of("NM1", 9)
        self.hl = self.of("HL", 3)
        # where each segment belongs (file order, each set starting with its ST): the claim (index of
        # its CLM, from a CLM to the next HL), else the HL loop; the line (LX count since the CLM)
        self.claim = last(clm, hl | st)
        self.hl_at = last(hl, st)
        self.loop = np.where(self.claim < 0, self.hl_at, -1)
        lx_count = np.cumsum(lx)
        self.lx_k = np.where(self.claim >= 0, lx_count - lx_count[np.maximum(self.claim, 0)], 0)
        self.lx_at = last(lx, clm | hl | st)
        # the HL level codes (20, 22; 0 for any other) and the level of each segment's HL loop
        self.level_hl = np.where(equals(self.hl[3], "20"), 20, np.where(equals(self.hl[3], "22"), 22, 0))
        level = np.full(n, -1)
        level[self.at["HL"]] = self.level_hl
        self.level = np.where(self.hl_at >= 0, level[np.maximum(self.hl_at, 0)], -1)
        self.billing = last(hl & (level == 20), st)
        # the entity of the name loop each segment is in (last NM1 since the HL or CLM)
        entity_at = last(nm1, hl | clm | st)
        self.entity = {}
        for code_ in ("85", "77"):
            mark = np.zeros(n, bool)
            mark[self.at["NM1"]] = equals(self.nm1[1], code_)
            self.entity[code_] = (entity_at >= 0) & mark[np.maximum(entity_at, 0)]
        self.n4_before = last(n4, nm1 | hl | clm | st) >= 0

    def mask(self, kind: str, where: np.ndarray | None = None) -> np.ndarray:
        """Over all segments: those of `kind` (and, given `where` over that kind's segments, where it holds)."""
        out = np.zeros(self.n, bool)
        out[self.at[kind] if where is None else self.at[kind][where]] = True
        return out

    def of(self, kind: str, upto: int) -> list[pa.Array]:
        """Elements 0..`upto` of the segments of `kind`."""
        return elements(self.texts.take(pa.array(self.at[kind], pa.int64())), self.element, upto)

    def count(self, mask: np.ndarray, group: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The segments of `mask` in each group (`group`: the index of the segment that opens it),
        for the groups opened at `at`."""
        keep = mask & (group >= 0)
        return np.bincount(group[keep], minlength=self.n)[at]


def _columns(s: _Segments, sets: int) -> tuple[np.ndarray, pa.Table, pa.Table]:
    """(whether each candidate set is vouched for, the claims of those sets, their lines), as
    `x12_837.Claims.add` would read them."""
    at, claim, nm1, n = s.at, s.claim, s.nm1, s.n
    bad = s.code < 0
    bad |= as_numpy(pc.match_substring_regex(s.texts, padded(s.element, s.component)))
    bad[at["NM1"]] |= equals(nm1[1], "")
    bad[at["HL"]] |= s.level_hl == 0

    clm = s.of("CLM", 5)
    frequency = elements(clm[5], s.component, 2)[2]
    bad[at["CLM"]] |= (s.level[at["CLM"]] != 22) | equals(clm[1], "") | equals(clm[5], "") | equals(frequency, "")
    bad[at["CLM"]] |= ~plain(clm[2], AMOUNT)
    following = np.append(s.code[1:], -1)
    preceding = np.insert(s.code[:-1], 0, -1)
    bad[at["LX"]] |= (claim[at["LX"]] < 0) | (following[at["LX"]] != _CODE["SV1"])
    sv1 = s.of("SV1", 4)
    bad[at["SV1"]] |= (claim[at["SV1"]] < 0) | (preceding[at["SV1"]] != _CODE["LX"])
    bad[at["SV1"]] |= ~plain(sv1[2], AMOUNT) | ~plain(sv1[4], QUANTITY)
    dtp = s.of("DTP", 3)
    service = (equals(dtp[1], "472")) & (claim[at["DTP"]] >= 0)  # DTP*472 of a claim or line
    d8, rd8 = equals(dtp[2], "D8"), equals(dtp[2], "RD8")
    value = pc.if_else(pa.array(d8), dtp[3], pc.if_else(pa.array(rd8), elements(dtp[3], "-", 0)[0], NULL))
    readable, days = dates(value)
    bad[at["DTP"]] |= service & ~readable
    bad[at["N3"]] |= (claim[at["N3"]] < 0) & s.n4_before[at["N3"]]

    # per claim (counted from the CLM to the next HL)
    ref = s.of("REF", 2)
    head = s.lx_k == 0  # before the claim's first line
    clms = at["CLM"]
    bad[clms] |= (s.count(s.mask("HI"), claim, clms) == 0) | (s.count(s.mask("LX"), claim, clms) == 0)
    bad[clms] |= s.count(s.mask("NM1", equals(nm1[1], "82")) & head, claim, clms) > 1
    bad[clms] |= s.count(s.mask("REF", equals(ref[1], "F8")) & head, claim, clms) > 1
    bad[clms] |= s.count(s.mask("REF", equals(ref[1], "LU")) & head & s.entity["77"], claim, clms) > 1
    dated = at["DTP"][service]  # in file order, so two of one line or claim are neighbours
    twice = (claim[dated][1:] == claim[dated][:-1]) & (s.lx_k[dated][1:] == s.lx_k[dated][:-1])
    bad[dated[1:][twice]] = True

    # per HL loop (from the HL to the next CLM or HL)
    hls, loop = at["HL"], s.loop
    entity_is = {k: s.mask("NM1", equals(nm1[1], k)) for k in ("85", "IL", "PR", "IN")}
    billing = (
        (s.count(entity_is["85"], loop, hls) != 1)
        | (s.count(s.mask("N3") & s.entity["85"], loop, hls) == 0)
        | (s.count(s.mask("N4") & s.entity["85"], loop, hls) == 0)
    )
    subscriber = (
        (s.count(entity_is["IL"], loop, hls) != 1)
        | (s.count(entity_is["PR"] | entity_is["IN"], loop, hls) != 1)
        | (s.count(s.mask("SBR"), loop, hls) > 1)
    )
    bad[hls] |= np.where(s.level_hl == 20, billing, subscriber)

    set_bad = np.bincount(s.set_of[bad], minlength=sets) > 0
    set_bad |= np.bincount(s.set_of[hls], minlength=sets) == 0
    set_bad |= np.bincount(s.set_of[clms], minlength=sets) == 0
    with_hl, first = np.unique(s.set_of[hls], return_index=True)
    set_bad[with_hl[s.level_hl[first] != 20]] = True

    # the claims of the sets vouched for, one row each, in file order
    good = ~set_bad[s.set_of]
    k = pa.array(np.flatnonzero(good[clms]))  # among the CLMs
    c = clms[k.to_numpy()]
    rows = len(c)
    row_of = np.full(n, -1)
    row_of[c] = np.arange(rows)

    def claim_value(kind: str, mask: np.ndarray, values: pa.Array) -> pa.Array:
        """The value of the (at most one) segment of `kind` of each claim where `mask` holds."""
        return spread(rows, row_of[claim[at[kind][mask]]], values, np.flatnonzero(mask))

    in_claim = {kind: good[at[kind]] & (claim[at[kind]] >= 0) & head[at[kind]] for kind in ("REF", "NM1")}
    control = claim_value("REF", in_claim["REF"] & equals(ref[1], "F8"), nullif_empty(ref[2]))
    lu = in_claim["REF"] & equals(ref[1], "LU") & s.entity["77"][at["REF"]]
    location = claim_value("REF", lu, nullif_empty(ref[2]))
    rendering = in_claim["NM1"] & equals(nm1[1], "82") & equals(nm1[8], "XX")
    rendering_npi = claim_value("NM1", rendering, nullif_empty(nm1[9]))
    last_name, first_name = nm1[3], nm1[4]
    name = pc.if_else(
        pc.equal(first_name, ""),
        nullif_empty(last_name),
        pc.if_else(pc.equal(last_name, ""), first_name, pc.binary_join_element_wise(first_name, last_name, " ")),
    )
    rendering_name = claim_value("NM1", rendering, name)
    no_day = np.iinfo(np.int64).max
    claim_dated = good[at["DTP"]] & service & (s.lx_k[at["DTP"]] == 0)
    claim_day = np.full(rows, no_day)
    claim_day[row_of[claim[at["DTP"][claim_dated]]]] = days[claim_dated]

    # lines: an SV1 each (right after its LX), dated by the DTP*472 of its line
    sv_k = np.flatnonzero(good[at["SV1"]])  # among the SV1s
    sv = at["SV1"][sv_k]
    line_of = np.full(n, -1)  # by the index of the line's LX
    line_of[sv - 1] = np.arange(len(sv))
    line_dated = good[at["DTP"]] & service & (s.lx_k[at["DTP"]] > 0)
    line_day = np.full(len(sv), no_day)
    line_day[line_of[s.lx_at[at["DTP"][line_dated]]]] = days[line_dated]
    line_claim = row_of[claim[sv]]
    first_day = np.full(rows, no_day)
    np.minimum.at(first_day, line_claim, line_day)
    service_day = np.where(first_day < no_day, first_day, claim_day)
    line_day = np.where(line_day < no_day, line_day, service_day[line_claim])

    # the claim's billing provider and subscriber loops (their values by the index of their HL)
    loop_of = np.full(n, -1)
    loop_of[hls] = np.arange(len(hls))

    def loop_value(kind: str, mask: np.ndarray, values: pa.Array) -> pa.Array:
        """The value of the segment of `kind` of each loop where `mask` holds (over the kind's segments)."""
        mask = mask & (loop[at[kind]] >= 0)
        return spread(len(hls), loop_of[loop[at[kind][mask]]], values, np.flatnonzero(mask))

    npi = loop_value("NM1", equals(nm1[1], "85") & equals(nm1[8], "XX"), nullif_empty(nm1[9]))
    payer = equals(nm1[1], "PR") | equals(nm1[1], "IN")
    sbr = s.of("SBR", 9)
    classes = pc.index_in(sbr[9], value_set=pa.array(list(x12_837.PAYER_CLASS)))
    payer_class = pc.fill_null(pa.array(list(x12_837.PAYER_CLASS.values())).take(classes), "other")
    payer_class = pc.if_else(pc.equal(sbr[9], ""), NULL, payer_class)
    subscriber_of = pa.array(loop_of[s.hl_at[c]])
    rendered = pc.is_valid(rendering_npi)

    claims = pa.table(
        {
            "ts": pa.array(s.set_of[c], pa.int32()),
            "_pos": pa.array(s.numbers[c], pa.int64()),
            "claim_id": clm[1].take(k),
            "frequency_code": frequency.take(k),
            "member_id": loop_value("NM1", equals(nm1[1], "IL"), nullif_empty(nm1[9])).take(subscriber_of),
            "location_id": location,
            "provider_id": pc.coalesce(rendering_npi, npi.take(pa.array(loop_of[s.billing[c]]))),
            "payer_id": loop_value("NM1", payer, nullif_empty(nm1[9])).take(subscriber_of),
            "payer_name": loop_value("NM1", payer, nullif_empty(nm1[3])).take(subscriber_of),
            "payer_class": loop_value("SBR", np.ones(len(at["SBR"]), bool), payer_class).take(subscriber_of),
            "provider_name": pc.if_else(rendered, rendering_name, NULL),
            "service_date": day_column(service_day, service_day < no_day),
            "billed_amount": pc.cast(nullif_empty(clm[2].take(k)), pa.decimal128(38, 2)),
            "control_number": control,
        }
    )
    taken = pa.array(sv_k)
    parts = pc.split_pattern(sv1[1].take(taken), s.component)
    count = as_numpy(pc.list_value_length(parts))
    procedure = pc.if_else(pa.array(count > 1), elements(sv1[1].take(taken), s.component, 1)[1], NULL)
    modifiers = pa.nulls(len(sv), pa.string()).to_pylist()
    for i in np.flatnonzero(count > 2).tolist():  # the few lines with modifiers
        modifiers[i] = ",".join(p for p in parts[i].as_py()[2:] if p) or None
    lines = pa.table(
        {
            "_pos": pa.array(s.numbers[c][line_claim], pa.int64()),
            "ts": pa.array(s.set_of[sv], pa.int32()),
            "line_no": pa.array(s.lx_k[sv], pa.int64()),
            "procedure_code": procedure,
            "modifiers": pa.array(modifiers, pa.string()),
            "units": pc.cast(nullif_empty(sv1[4].take(taken)), pa.decimal128(38, 3)),
            "charge_amount": pc.cast(nullif_empty(sv1[2].take(taken)), pa.decimal128(38, 2)),
            "service_date": day_column(line_day, line_day < no_day),
        }
    )
    return set_bad, claims, lines


def map_claims(claims: x12_837.Claims, run: Run, spans: list[Span]) -> list[Span]:
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
    segments = _Segments(numbers.to_numpy(), texts, ids, set_of.to_numpy(), run.element, run.component)
    bad, rows, lines = _columns(segments, len(candidates))
    python += [c[0] for k, c in enumerate(candidates) if bad[k]]
    python.sort(key=lambda s: s.lo)
    if rows.num_rows:
        _add(claims, rows, lines, [c[1] for c in candidates], [c[2] for c in candidates])
    return python


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
