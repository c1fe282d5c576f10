"""References that resolve whenever their target arrives, in this run or any later one.

Exports refer to each other: a FHIR Appointment names `Practitioner/abc` (the warehouse keys
providers by NPI), a Slot names its `Schedule`, a vendor CSV names a payer by its plan name
(the 837 claims introduce the payer id). Files arrive in any order and in separate runs, so a
reference cannot be resolved once, in memory, while its file is parsed. Instead:

- the row keeps the reference as the export wrote it (`provider_ref`, `schedule_ref`,
  `payer_ref`), and the id it resolves to is a derived column of its target (`Target.derived`),
  computed in SQL against what the warehouse holds when the row is written;
- a `Reference` says which rows may change when the tables it reads change; after every file,
  the rows whose resolution now differs are written again through the load path, so a
  Practitioner export loaded a month after the appointments fills in their provider.

Updates whose row is not loaded yet (a chart note before its visit) wait in `waiting_rows`
and are applied the same way when the row arrives (`waiting_derivations`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ingest.batch import Derivation, Target
from ingest.context import Lookup
from ingest.load import KEY_SEPARATOR, TableMeta, lit, q


@dataclass(frozen=True)
class Reference:
    """Derived columns of `target.table` that follow from other tables (`reads`).

    `target` is an update target whose `derived` (and `join`) compute the columns; `where`
    selects the rows of `source` that may need them again (SQL over the table, `{run}` standing
    for the run that changed what they read). `ref_column` holds the reference as written, for
    the warning about references not resolved yet: they name `what`, resolved when `waits_for`
    (e.g. "the Practitioner export is loaded").
    """

    target: Target
    source: str
    reads: frozenset[str]
    where: str = "TRUE"
    ref_column: str | None = None
    what: str = ""
    waits_for: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column for column, _ in self.target.derived)

    def derivation(self, schema: dict[str, TableMeta], run_id: int) -> Derivation:
        """The rows to resolve again: their keys, through the target (the derived columns are
        recomputed over the stored row, and only changed rows are written)."""
        keys = ", ".join(q(k) for k in schema[self.target.table].key)
        where = self.where.replace("{run}", str(run_id))
        return Derivation(
            self.target,
            f"SELECT {keys} FROM main.{q(self.target.table)} WHERE source = {lit(self.source)} AND ({where})",
        )

    def unresolved(self, lookup: Lookup, run_id: int) -> str | None:
        """A warning when rows this run wrote name a reference that does not resolve yet."""
        if self.ref_column is None:
            return None
        ref, column = q(self.ref_column), q(self.columns[0])
        n, example = lookup.rows(
            f"SELECT count(*), min({ref}) FROM main.{q(self.target.table)} WHERE source = ? AND ingest_run_id = ? "
            f"AND {ref} IS NOT NULL AND {column} IS NULL",
            [self.source, run_id],
        )[0]
        if not n:
            return None
        return (
            f"{n} row(s) of {self.target.table} refer to {self.what} not loaded yet (e.g. {example}): their "
            f"{' and '.join(self.columns)} {'are' if len(self.columns) > 1 else 'is'} filled in when {self.waits_for}, "
            "in this or any later run; nothing needs loading again"
        )


def affected(references: Iterable[Reference], changed: Iterable[str]) -> list[Reference]:
    """The references that read any of the `changed` tables."""
    tables = set(changed)
    return [ref for ref in references if ref.reads & tables]


def waiting_derivations(
    lookup: Lookup, schema: dict[str, TableMeta], targets: dict[tuple[str, str], Target], changed: Iterable[str]
) -> list[tuple[Derivation, str, str]]:
    """For each kind of waiting update whose table received rows: the derivation that applies
    those whose row is now loaded, with (table, writer) to clear them afterwards."""
    found = []
    tables = set(changed)
    for table, writer in lookup.rows("SELECT DISTINCT table_name, writer FROM main.waiting_rows ORDER BY 1, 2"):
        if table not in tables or (table, writer) not in targets:
            continue
        target = targets[(table, writer)]
        meta = schema[table]
        names = lookup.rows(
            "SELECT json_keys(row_json::JSON) FROM main.waiting_rows WHERE table_name = ? AND writer = ? LIMIT 1",
            [table, writer],
        )[0][0]
        columns = ", ".join(
            f"CAST(json_extract_string(w.row_json, {lit('$.' + c)}) AS {meta.columns[c].type}) AS {q(c)}" for c in names
        )
        key_text = f"concat_ws({KEY_SEPARATOR}, {', '.join(f'CAST(t.{q(k)} AS VARCHAR)' for k in meta.key)})"
        sql = (
            f"SELECT {columns}, w.version_at AS _version, w.ingest_run_id AS _origin_run, w.file_path AS _origin_file, "
            "w.position_kind AS _origin_kind, w.position AS _origin_pos "
            f"FROM main.waiting_rows w JOIN main.{q(table)} t ON w.record_key = {key_text} "
            f"WHERE w.table_name = {lit(table)} AND w.writer = {lit(writer)}"
        )
        found.append((Derivation(target, sql), table, writer))
    return found
