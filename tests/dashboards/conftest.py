"""Fixtures for the dashboard tests: the shared simulated practice, an empty warehouse, and the app under AppTest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kpis import Warehouse
from kpis.config import ENV_CONFIG, ENV_DB
from kpis.periods import add_months
from tests.conftest import SimulatedPractice

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
TIMEOUT = 120  # generous: the first run of a page computes every KPI it shows


@dataclass(frozen=True)
class Window:
    """The months the dashboard shows by default: 13, ending with the last month every domain reaches."""

    month: date

    @property
    def first(self) -> date:
        return add_months(self.month, -12)

    @property
    def before(self) -> date:
        return add_months(self.month, -1)

    @property
    def end(self) -> date:
        return add_months(self.month, 1) - timedelta(days=1)


@pytest.fixture
def practice(simulated_practice: SimulatedPractice) -> SimulatedPractice:
    """The practice `clinic-kpis sample` simulates and `clinic-kpis ingest` loads (shared by the session)."""
    return simulated_practice


@pytest.fixture
def window(practice: SimulatedPractice) -> Window:
    with practice.open() as wh:
        coverage = wh.coverage()
    return Window(coverage.groupby("domain")["period_start"].max().min().date())


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("empty") / "empty.duckdb"
    Warehouse(path).close()
    return path


@pytest.fixture
def open_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Point the app at a warehouse and config (as `clinic-kpis dashboard --db --config` does); run it."""

    def start(db: Path, config: Path | None = None, *, run: bool = True) -> AppTest:
        monkeypatch.setenv(ENV_DB, str(db))
        if config is not None:
            monkeypatch.setenv(ENV_CONFIG, str(config))
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        return at.run() if run else at

    return start


@pytest.fixture
def at(open_app: Callable[..., AppTest], practice: SimulatedPractice) -> AppTest:
    """The app on the simulated practice, after its first run (the Overview)."""
    return open_app(practice.db, practice.config)
