"""X12 files -> the 837P claim and 835 remittance mappers, through one segment reader.

A file may mix transaction sets; each is mapped by its ST01. Other transaction sets (999
acknowledgments, 277 claim status) are counted as ignored. What loads but deserves a look is a
warning (an 837 without claims, a claim billed before its service, a payment dated by DTM*405
for want of BPR16), and an envelope error in a UTF-16 file says so. After the rows are written, the
ledger entries the contract derives from claims and remittances are brought up to date for
every claim the file touched (`x12_ledger`).
"""

from __future__ import annotations

from collections import Counter

from ingest.adapters import x12_835, x12_837
from ingest.adapters.x12_837 import masked_record
from ingest.adapters.x12_ledger import ledger_derivations
from ingest.adapters.x12_segments import transaction_sets
from ingest.batch import Batch, Phase
from ingest.context import Lookup, ParseContext
from ingest.errors import IngestError
from ingest.sources import InputFile
from ingest.text import decode, sniff_encoding


class X12Adapter:
    """837P claims and 835 remittances, in any mix within a file."""

    name = "x12"
    rank = 5

    def parse(self, file: InputFile, ctx: ParseContext) -> Batch:
        data = file.read()
        text = decode(data, file.name)
        batch = Batch(adapter=self.name, position_kind="segment")
        claims, remits = x12_837.Claims(ctx), x12_835.Remittances(ctx)
        kinds: Counter[str] = Counter()
        try:
            for ts in transaction_sets(text, file.name):
                kinds[ts.kind] += 1
                if ts.kind == "837":
                    claims.add(ts)
                elif ts.kind == "835":
                    remits.add(ts)
                else:
                    batch.ignored[
                        f"X12 {ts.kind} transaction sets (only 837 claims and 835 remittances are loaded)"
                    ] += 1
        except IngestError as exc:
            raise IngestError(f"{exc}{_encoding_note(data)}") from None
        batch.adapter = {frozenset({"837"}): "x12_837", frozenset({"835"}): "x12_835"}.get(
            frozenset(k for k in kinds if k in ("837", "835")), "x12"
        )
        batch.warnings += claims.warnings() + remits.warnings()
        for part in (claims, remits):
            batch.errors += part.errors
            batch.ignored.update(part.ignored)
            batch.phases += [Phase(part.targets())] if part.rows else []
        records = {**claims.records, **remits.records}
        batch.records = lambda positions: {p: masked_record(records.get(p)) for p in positions}
        touched = claims.claim_ids() | remits.claim_ids()
        if touched:
            batch.derived += ledger_derivations(ctx.timezone, sorted(touched))
        if remits.rows:
            remitted = sorted(remits.claim_ids())
            batch.after_load.append(lambda lookup, run_id: _warn_unbilled(lookup, remitted, batch.warnings))
        return batch


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
    # runs after the ledger charges are derived, so a loaded 837 claim has its charge in the
    # ledger by now, as a ledger export's claim does: one semi-join of the ledger against this
    # file's claim ids
    charged = lookup.rows(
        "SELECT count(DISTINCT claim_id) FROM ledger "
        "WHERE entry_type = 'charge' AND claim_id IN (SELECT unnest(?::VARCHAR[]))",
        [claim_ids],
    )[0][0]
    missing = len(claim_ids) - charged
    if missing:
        warnings.append(
            f"{missing} of {len(claim_ids)} remitted claims have no claim or charge loaded: their payments lower "
            "A/R with no charge to offset until the 837 files (or the ledger export) for them are ingested"
        )
