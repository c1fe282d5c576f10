"""X12 files -> the 837P claim and 835 remittance mappers, through one segment reader.

A file may mix transaction sets; each is mapped by its ST01. Other transaction sets (999
acknowledgments, 277 claim status) are counted as ignored. What loads but deserves a look is a
warning (an 837 without claims, a claim billed before its service, a payment dated by DTM*405
for want of BPR16), and an envelope error in a UTF-16 file says so. After the rows are written, the
ledger entries the contract derives from claims are brought up to date for every claim the file's
837 sets touched (`x12_ledger`); an 835's own entries take their claim's details as they are staged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ingest.adapters import x12_835, x12_835_columns, x12_837, x12_837_columns
from ingest.adapters.x12_837 import masked_record
from ingest.adapters.x12_ledger import ledger_derivations
from ingest.adapters.x12_runs import Span, interchange_runs
from ingest.adapters.x12_segments import transaction_sets
from ingest.batch import Batch, Chunk, Phase
from ingest.context import Lookup, ParseContext
from ingest.errors import IngestError
from ingest.sources import InputFile
from ingest.text import sniff_encoding, text_blocks

# Claims and payments mapped before their rows are handed to the loader as one chunk: a few tens of
# megabytes of Python objects, whatever the size of the file.
CHUNK_RECORDS = 20_000


class X12Adapter:
    """837P claims and 835 remittances, in any mix within a file."""

    name = "x12"
    rank = 5

    def __init__(self, columnar: bool = True) -> None:
        # columnar: the 837 and 835 sets the columnar mappers vouch for are mapped in columns
        # (`x12_837_columns`, `x12_835_columns`), the rest by the Python mappers; False: every set the Python way
        self.columnar = columnar

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        """The file read block by block and mapped one transaction set at a time, its rows handed
        on in chunks of about CHUNK_RECORDS records: neither the file nor its rows are ever whole
        in memory. The segments of a rejected claim or payment are kept (or, for one the load
        path rejects, read again from the file)."""
        batch = Batch(adapter=self.name, position_kind="segment")
        claims, remits = x12_837.Claims(ctx), x12_835.Remittances(ctx)
        batch.records = lambda positions: _masked_records(file, ctx, claims, remits, positions)
        batch.chunks = self._chunks(file, ctx, batch, claims, remits)
        return batch

    def _chunks(
        self, file: InputFile, ctx: ParseContext, batch: Batch, claims: x12_837.Claims, remits: x12_835.Remittances
    ) -> Iterator[Chunk]:
        kinds: Counter[str] = Counter()
        try:
            for run in transaction_sets(_blocks(file), file.name, interchange_runs):
                by_kind: dict[str, list[Span]] = {}
                for span in run.sets:
                    kinds[span.kind] += 1
                    by_kind.setdefault(span.kind, []).append(span)
                python = set()
                if self.columnar and "837" in by_kind:
                    python.update(id(s) for s in x12_837_columns.map_claims(claims, run, by_kind["837"]))
                if self.columnar and "835" in by_kind:
                    python.update(id(s) for s in x12_835_columns.map_payments(remits, run, by_kind["835"]))
                for span in run.sets:
                    if span.kind == "837" and (id(span) in python or not self.columnar):
                        claims.add(run.python_set(span))
                    elif span.kind == "835" and (id(span) in python or not self.columnar):
                        remits.add(run.python_set(span))
                    elif span.kind not in ("837", "835"):
                        batch.ignored[
                            f"X12 {span.kind} transaction sets (only 837 claims and 835 remittances are loaded)"
                        ] += 1
                    if claims.pending() + remits.pending() >= CHUNK_RECORDS:
                        yield _chunk(claims, remits)
        except _Undecodable as exc:
            raise IngestError(str(exc)) from None
        except IngestError as exc:
            for _ in _blocks(file):  # a byte further on that is not text is the file's first error, as it was
                pass
            raise IngestError(f"{exc}{_encoding_note(file.head(64))}") from None
        yield _chunk(claims, remits)
        batch.adapter = {frozenset({"837"}): "x12_837", frozenset({"835"}): "x12_835"}.get(
            frozenset(k for k in kinds if k in ("837", "835")), "x12"
        )
        batch.warnings += claims.warnings() + remits.warnings()
        for part in (claims, remits):
            batch.ignored.update(part.ignored)
        # Only claims (837) change what the derivations compute: a claim's charges follow from its
        # submissions alone, and an 835's entries were given their claim's details when staged
        # (`CLAIM_DETAILS`), so for the claims an 835 names both would read the warehouse's claims
        # and ledger to write nothing (two scans of tables that grow with the warehouse, per file).
        billed = claims.claim_ids()
        if billed:
            batch.derived += ledger_derivations(ctx.timezone, sorted(billed))
        if remits.ids:
            remitted = sorted(remits.claim_ids())
            batch.after_load.append(lambda lookup, run_id: _warn_unbilled(lookup, remitted, batch.warnings))


class _Undecodable(IngestError):
    """A byte that is not text in the file's encoding (said as `decode` says it)."""


def _blocks(file: InputFile) -> Iterator[str]:
    try:
        yield from text_blocks(file)
    except IngestError as exc:
        raise _Undecodable(str(exc)) from None


def _chunk(claims: x12_837.Claims, remits: x12_835.Remittances) -> Chunk:
    """The rows and rejects mapped since the last chunk. Claims are one phase and payments the
    next (orders 0 and 1), in every chunk, as a whole file's claims load before its payments."""
    chunk = Chunk(errors=claims.errors + remits.errors)
    claims.errors, remits.errors = [], []
    if claims.rows or claims.fast:
        chunk.phases.append(Phase(claims.take(), order=0))
    if remits.rows or remits.fast:
        chunk.phases.append(Phase(remits.take(), order=1))
    return chunk


def _masked_records(
    file: InputFile, ctx: ParseContext, claims: x12_837.Claims, remits: x12_835.Remittances, positions: list[int]
) -> dict[int, str | None]:
    """The masked segments of the records at `positions`: kept for those the adapter rejected,
    read again from the file for those the load path rejected (a duplicate, a broken rule)."""
    found = {**claims.records, **remits.records}
    wanted = {p for p in positions if p not in found}
    if wanted:
        again = {"837": x12_837.Claims(ctx), "835": x12_835.Remittances(ctx)}
        for ts in transaction_sets(_blocks(file), file.name):
            if ts.start.number > max(wanted):
                break
            if ts.kind in again:
                segments = again[ts.kind].record_segments(ts)
                found.update((p, segments[p]) for p in wanted & segments.keys())
                wanted -= segments.keys()
            if not wanted:
                break
    return {p: masked_record(found.get(p)) for p in positions}


def _encoding_note(data: bytes) -> str:
    """What to add to an envelope error when the file is not in X12's usual single-byte encoding.

    A UTF-16 file (a Windows tool's "Unicode" save) decodes fine, but a structural error in it
    reads like a plain truncation; naming the encoding tells the reader where to look.
    """
    encoding, bom = sniff_encoding(data)
    if not encoding.startswith("utf-16"):
        return ""
    order = "little" if encoding.endswith("le") else "big"
    marked = "with" if bom else "without"
    return (
        f" [the file is UTF-16 text ({order}-endian, {marked} a byte-order mark), not the ASCII/UTF-8 "
        "X12 is sent in: if it was converted or saved as 'Unicode', export it again as ASCII]"
    )


def _warn_unbilled(lookup: Lookup, claim_ids: list[str], warnings: list[str]) -> None:
    """Say when payments arrive for claims the warehouse has no charge for: until their 837 (or
    ledger export) is loaded, those payments lower A/R with nothing to offset, and A/R can go negative."""
    # runs after the ledger charges are derived: a claim whose 837 is loaded has a charge entry of
    # each submission by now (`x12_ledger`), so the claims are asked first (a fraction of the
    # ledger's rows), and only the ids they lack are looked for among the charges a ledger export
    # wrote (DuckDB skips the ledger's row groups that hold X12 entries only, by `source`); an
    # anti-join hashes the file's claim ids, where NOT IN (a mark join) hashed every X12 claim id
    unbilled = [
        row[0]
        for row in lookup.rows(
            "SELECT u.claim_id FROM (SELECT unnest(?::VARCHAR[]) AS claim_id) u "
            "ANTI JOIN (SELECT claim_id FROM claims WHERE source = 'x12') c ON c.claim_id = u.claim_id",
            [claim_ids],
        )
    ]
    charged = 0
    if unbilled:
        charged = lookup.rows(
            "SELECT count(DISTINCT claim_id) FROM ledger WHERE entry_type = 'charge' AND source <> 'x12' "
            "AND claim_id IN (SELECT unnest(?::VARCHAR[]))",
            [unbilled],
        )[0][0]
    missing = len(unbilled) - charged
    if missing:
        warnings.append(
            f"{missing} of {len(claim_ids)} remitted claims have no claim or charge loaded: their payments lower "
            "A/R with no charge to offset until the 837 files (or the ledger export) for them are ingested"
        )
