"""Fixtures for the dashboard tests: a populated and an empty warehouse, and the app under AppTest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpis import Warehouse
from kpis.config import ENV_DB
from tests.dashboards.seed import build_practice

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
TIMEOUT = 120  # generous: the first run of a page computes every KPI it shows


@pytest.fixture(scope="session")
def practice_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_practice(tmp_path_factory.mktemp("practice") / "practice.duckdb")


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
