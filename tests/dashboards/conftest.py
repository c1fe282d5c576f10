"""Fixtures for the dashboard tests: the shared simulated practice (also with staff who sign in), an empty
warehouse, and the app under AppTest."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards.filters import default_month
from kpis import Warehouse
from kpis.audit import AuditLog
from kpis.config import ENV_CONFIG, ENV_DB, load_config
from kpis.periods import add_months
from kpis.scope import Scope
from kpis.users import add_user
from tests.conftest import CHEAP_HASHER, SimulatedPractice

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
TIMEOUT = 120  # generous: the first run of a page computes every KPI it shows


@dataclass(frozen=True)
class Window:
    """The months the dashboard shows by default: 13, ending with the last month every current domain reaches."""

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
    return Window(default_month(coverage, date.today()).month)


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


@dataclass(frozen=True)
class Staff:
    """A copy of the simulated practice with users: its warehouse, config and the password of everyone."""

    db: Path
    config: Path
    password: str = "a long enough passphrase"

    def audit(self, since: datetime | None = None) -> pd.DataFrame:
        return AuditLog.beside(self.db).entries(since=since)

    def owner(self) -> Warehouse:
        """The owner's view, with the numbers the dashboard shows signed-in staff (small cells not withheld)."""
        return Warehouse.open(config=load_config(self.config, db=self.db), read_only=True, scope=OWNER)


OWNER = Scope(small_cells=False)
STAFF = {  # name -> (role, locations)
    "olivia": ("owner", ()),
    "ana": ("analyst", ()),
    "mark": ("manager", ("EAST",)),
    "vera": ("viewer", ("EAST",)),
}


def staffed(practice: SimulatedPractice, folder: Path) -> Staff:
    """The simulated practice copied to `folder`, with the users of STAFF."""
    folder.mkdir(parents=True, exist_ok=True)
    db, config = folder / "clinic_kpis.duckdb", folder / "clinic-kpis.toml"
    shutil.copy(practice.db, db)
    shutil.copy(practice.config, config)
    staff = Staff(db, config)
    with Warehouse.open(config=load_config(config, db=db)) as wh:
        for name, (role, locations) in STAFF.items():
            add_user(wh, name, role, locations, staff.password, hasher=CHEAP_HASHER)
    return staff


@pytest.fixture(scope="session")
def staff(simulated_practice: SimulatedPractice, tmp_path_factory: pytest.TempPathFactory) -> Staff:
    """The practice with an owner, an analyst, EAST's manager and EAST's viewer (shared: read only)."""
    return staffed(simulated_practice, tmp_path_factory.mktemp("staffed"))


@pytest.fixture(autouse=True)
def _fresh_throttle() -> None:
    """The sign-in throttle lives in the process (st.cache_resource): one test's failures must not slow the next."""
    st.cache_resource.clear()
