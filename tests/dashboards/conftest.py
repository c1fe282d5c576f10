"""Fixtures for the dashboard tests: a populated and an empty warehouse, and the app under AppTest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest import ingest_paths
from kpis import Warehouse
from kpis.config import ENV_DB, Config
from sample_data.practice import Params
from sample_data.simulate import simulate

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
TIMEOUT = 120  # generous: the first run of a page computes every KPI it shows


@pytest.fixture(scope="session")
def practice_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's practice (14 months, 4 providers) loaded through ingest, as a user's demo holds it.

    Its exports stay beside the warehouse (`exports/`), for tests that upload one of them.
    """
    root = tmp_path_factory.mktemp("practice")
    simulate(Params(months=14, providers=4), root / "exports")
    secret = root / "secret"
    secret.write_text("dashboard-tests\n", encoding="utf-8")
    db = root / "practice.duckdb"
    with Warehouse(db, config=Config(db_path=db, secret_file=secret)) as wh:
        results = ingest_paths(wh, [root / "exports"])
    failed = [f"{r.path}: {r.message}" for r in results if r.status == "failed"]
    assert not failed, failed
    return db


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "empty.duckdb"
    Warehouse(path).close()
    return path


@pytest.fixture
def open_app(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], AppTest]:
    """A function that points the app at a warehouse (as `clinic-kpis dashboard --db` does) and runs it."""

    def run(db: Path) -> AppTest:
        monkeypatch.setenv(ENV_DB, str(db))
        return AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()

    return run
