"""`python -m benchmarks.ingest_equality A.duckdb B.duckdb`: are two warehouses built from the same exports equal?

Why: a faster ingest path must build exactly the warehouse the current one builds. Load the same
files, in the same order, into two fresh warehouses (one with `main`, one with the change; same
pseudonymization secret), then run this: every table of the canonical schema, the rejects and the
run log are compared with EXCEPT ALL both ways (duplicates count), leaving out only what differs by
nature between two runs (the run log's clock times, the reject ids drawn from a sequence). Prints
one line per table and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

# Tables whose rows are not the data: the schema's bookkeeping.
SKIPPED = {"schema_migrations", "warehouse_settings"}
# Columns that differ between two runs of the same load by nature.
VOLATILE = {
    "ingest_runs": {"started_at", "finished_at"},
    "rejects": {"reject_id"},
}


def compare(a: str, b: str, tables: list[str] | None = None) -> list[tuple[str, int, int, int, int]]:
    """(table, rows in A, rows in B, rows of A not in B, rows of B not in A) for each table."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    names = [
        t
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a' AND schema_name = 'main' ORDER BY 1"
        ).fetchall()
        if t not in SKIPPED and (not tables or t in tables)
    ]
    out = []
    for table in names:
        columns = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND schema_name = 'main' "
                "AND table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            if c not in VOLATILE.get(table, set())
        ]
        cols = ", ".join(f'"{c}"' for c in columns)
        count_a, count_b = (con.execute(f'SELECT count(*) FROM {db}.main."{table}"').fetchone()[0] for db in "ab")
        only_a, only_b = (
            con.execute(
                f'SELECT count(*) FROM (SELECT {cols} FROM {x}.main."{table}" EXCEPT ALL '
                f'SELECT {cols} FROM {y}.main."{table}")'
            ).fetchone()[0]
            for x, y in (("a", "b"), ("b", "a"))
        )
        out.append((table, count_a, count_b, only_a, only_b))
    con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ingest_equality", description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="the warehouse built by the current path (main)")
    parser.add_argument("b", help="the warehouse built by the change")
    parser.add_argument("--table", action="append", help="compare only these tables (repeatable)")
    args = parser.parse_args(argv)
    differ = 0
    for table, count_a, count_b, only_a, only_b in compare(args.a, args.b, args.table):
        same = only_a == 0 and only_b == 0
        differ += not same
        verdict = "equal " if same else "DIFFER"
        print(f"{verdict} {table:28} {count_a:>11,} {count_b:>11,}  A-B {only_a:,}  B-A {only_b:,}")
    print("all tables equal" if not differ else f"{differ} table(s) differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
