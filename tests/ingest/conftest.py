"""Shared helpers for the ingest tests: a fresh warehouse with a known secret, and the fixtures."""

from __future__ import annotations

import hashlib
import hmac
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest import FileResult, ingest_paths
from ingest import load as load_module
from kpis.warehouse import Warehouse

SECRET = "test-secret-not-for-production"
FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]


def key(system: str, patient_id: str) -> str:
    """The expected patient_key, computed here independently of ingest's own code."""
    return hmac.new(SECRET.encode(), f"{system}|{patient_id}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="session")
def empty_warehouse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated warehouse, made once and copied per test (migrating takes a while)."""
    path = tmp_path_factory.mktemp("template") / "empty.duckdb"
    Warehouse(path).close()
    return path


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_warehouse_file: Path) -> Iterator[Warehouse]:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    path = tmp_path / "w.duckdb"
    shutil.copyfile(empty_warehouse_file, path)
    with Warehouse(path) as wh:
        yield wh


def load(wh: Warehouse, *paths: str | Path, **options: object) -> list[FileResult]:
    results = ingest_paths(wh, list(paths), **options)
    for r in results:
        if r.status == "succeeded":
            assert r.read == r.inserted + r.updated + r.unchanged + r.stale + r.waiting + r.rejected, r
    return results


def load_one(wh: Warehouse, path: str | Path, **options: object) -> FileResult:
    (result,) = load(wh, path, **options)
    return result


def rows(wh: Warehouse, sql: str, *params: object) -> list[tuple]:
    return wh.cursor().execute(sql, list(params)).fetchall()


def records(wh: Warehouse, sql: str, *params: object) -> list[dict]:
    cur = wh.cursor().execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def rejects(wh: Warehouse, run_id: int) -> list[dict]:
    return records(
        wh,
        "SELECT position_kind, position, target_table, field, check_name, reason, value_masked, record_masked "
        "FROM rejects WHERE run_id = ? ORDER BY position, reject_id",
        run_id,
    )


# Columns that say which run or file wrote a row, not what the row says.
LINEAGE = {"ingest_run_id", "file_path", "position_kind", "position"}


def snapshot(wh: Warehouse, *, lineage: bool = True) -> dict[str, list[tuple]]:
    """Every table's rows but the run log's (and the key fingerprint's), sorted, for before/after
    comparisons (with or without the columns that record lineage). The results store (schema
    `serving`) is derived from these and compared with a rebuild in its own tests."""
    bookkeeping = ("ingest_runs", "rejects", "schema_migrations", "warehouse_settings", "change_versions", "table_keys")
    tables = [
        t
        for (t,) in rows(wh, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1")
        if t not in bookkeeping
    ]
    found = {}
    for t in tables:
        sql = "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ?"
        columns = [c for (c,) in rows(wh, sql, t)]
        kept = [c for c in columns if lineage or c not in LINEAGE]
        found[t] = sorted(rows(wh, f'SELECT {", ".join(kept)} FROM "{t}"'), key=repr)
    return found


def spy_on_duckdb_mapping(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each FHIR chunk mapped from now on: whether DuckDB mapped it (True) or it went the Python way."""
    from ingest.adapters import fhir_sql

    mapped: list[bool] = []
    original = fhir_sql.FhirSql.rows

    def spy(self, kind, items, columns):  # noqa: ANN001, ANN202
        rows = original(self, kind, items, columns)
        mapped.append(rows is not None)
        return rows

    monkeypatch.setattr(fhir_sql.FhirSql, "rows", spy)
    return mapped


def loader_statements(monkeypatch: pytest.MonkeyPatch, kept: Callable[[str], bool]) -> list[str]:
    """The SQL the loader runs that `kept` picks, from now on in this test, in order."""
    statements: list[str] = []
    init = load_module.Loader.__init__

    class Recording:
        def __init__(self, cur: object) -> None:
            self._cur = cur

        def execute(self, sql: str, *args: object) -> object:
            if kept(sql):
                statements.append(sql)
            return self._cur.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._cur, name)

    monkeypatch.setattr(load_module.Loader, "__init__", lambda self, cur, *a, **k: init(self, Recording(cur), *a, **k))
    return statements
