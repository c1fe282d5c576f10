"""`python -m benchmarks.ingest_equal A.duckdb B.duckdb`: are two warehouses built from the same
exports equal, table by table?

For issue 22: the warehouse a changed ingest builds from the 1 M exports must equal the one
main builds. Every table of schema `main` in either file is compared with EXCEPT ALL both ways
(so duplicates count), over every column but those that are per-run by nature:

- `ingest_runs.started_at`, `ingest_runs.finished_at`: when each file was loaded;
- `schema_migrations.applied_at`, `warehouse_settings.set_at`: when the file was created.

Run ids, file paths, counts, rejects (with their sentences), record versions, waiting rows and
lineage (`ingest_run_id`) are compared: load the same files in the same order on both sides.
Prints one line per table; exit status 1 if any differs.

Building the two sides (the same secret on both, so that patient keys can agree):

    export CLINIC_KPIS_SECRET=<64 hex digits>
    git worktree add /tmp/main main   # or any copy of main's tree
    (cd /tmp/main && python -m benchmarks.ingest_profile EXPORTS /tmp/w-main --no-raw)
    python -m benchmarks.ingest_profile EXPORTS /tmp/w-branch --no-raw
    python -m benchmarks.ingest_equal /tmp/w-main/clinic_kpis.duckdb /tmp/w-branch/clinic_kpis.duckdb

(main's tree needs `benchmarks/ingest_profile.py`: copy it in if main predates it.)
"""

from __future__ import annotations

import argparse
import sys

import duckdb

PER_RUN = {
    ("ingest_runs", "started_at"),
    ("ingest_runs", "finished_at"),
    ("schema_migrations", "applied_at"),
    ("warehouse_settings", "set_at"),
}


def _columns(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name, ordinal_position",
        [db],
    ).fetchall():
        found.setdefault(table, []).append(column)
    return found


def compare(a: str, b: str) -> list[str]:
    """The differences between the warehouses at paths `a` and `b` (none: equal)."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    left, right = _columns(con, "a"), _columns(con, "b")
    problems = []
    for table in sorted(set(left) | set(right)):
        if left.get(table) != right.get(table):
            problems.append(f"{table}: columns differ ({left.get(table)} vs {right.get(table)})")
            print(problems[-1])
            continue
        cols = ", ".join(f'"{c}"' for c in left[table] if (table, c) not in PER_RUN)
        counts = []
        for x, y in (("a", "b"), ("b", "a")):
            only = f'SELECT {cols} FROM {x}.main."{table}" EXCEPT ALL SELECT {cols} FROM {y}.main."{table}"'
            sql = f"SELECT count(*) FROM ({only})"
            counts.append(con.execute(sql).fetchone()[0])
        (rows,) = con.execute(f'SELECT count(*) FROM a.main."{table}"').fetchone()
        line = f"{table}: {rows} rows, {counts[0]} only in A, {counts[1]} only in B"
        print(line)
        if any(counts):
            problems.append(line)
    con.close()
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(argv)
    problems = compare(args.a, args.b)
    print("equal" if not problems else f"{len(problems)} table(s) differ")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
