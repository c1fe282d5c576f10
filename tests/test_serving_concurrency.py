"""Readers are never blocked: the API and the dashboard keep answering through a whole load in another process.

Three months of a practice are loaded; then `clinic-kpis ingest` loads the fourth in a child
process (the real command: it writes a copy, refreshes the results store, publishes it by rename
and copies it for the next load) while this process reads in a loop, through the Python API and
through the dashboard under Streamlit's AppTest. No read may fail, and every answer must be the
state before the load or the state after it, never a mix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ingest import ingest_paths
from kpis import Warehouse
from kpis.config import ENV_CONFIG, ENV_DB, load_config
from tests.dashboards.conftest import APP
from tests.kpis.test_serving import assert_same
from tests.monthly_exports import MONTHS

ARGS = dict(start="2026-06", end="2026-09", by="location")


def api_answer(db: Path, config: Path) -> pd.DataFrame:
    with Warehouse.open(db, config=config, read_only=True) as wh:
        return wh.compute([s.id for s in wh.catalog() if s.headline], **ARGS)


def dashboard_tiles(monkeypatch: pytest.MonkeyPatch, db: Path, config: Path) -> dict:
    monkeypatch.setenv(ENV_DB, str(db))
    monkeypatch.setenv(ENV_CONFIG, str(config))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception and not at.error, [e.value for e in at.error] or at.exception
    return {m.label: (m.value, m.delta) for m in at.metric}


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return False
    return True


@pytest.mark.slow
def test_api_and_dashboard_answer_through_a_load_in_another_process(
    monthly_practice: tuple[Path, dict[str, list[Path]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, months = monthly_practice
    directory = tmp_path / "practice"
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("exports", "monthly"))
    config = directory / "clinic-kpis.toml"
    cfg = load_config(config)
    db = cfg.db_path
    for month in MONTHS[:3]:
        with Warehouse.writing(config=cfg) as store:
            ingest_paths(store, months[month])
    before = api_answer(db, config)
    tiles_before = dashboard_tiles(monkeypatch, db, config)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    command = [sys.executable, "-c", "from kpis.cli import main; main()", "ingest", *map(str, months[MONTHS[3]])]
    load = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answers, tiles, during = [], [], 0
    deadline = time.monotonic() + 600
    while load.poll() is None and time.monotonic() < deadline:
        running = Warehouse.load_running(db) is not None
        answers.append(api_answer(db, config))
        if running and not tiles:  # the dashboard, from first to last query, while the load writes
            tiles.append(dashboard_tiles(monkeypatch, db, config))
        during += running
    out, err = load.communicate(timeout=60)
    assert load.returncode == 0, err
    after = api_answer(db, config)
    tiles_after = dashboard_tiles(monkeypatch, db, config)

    assert not same(before, after) and tiles_before != tiles_after  # the load changed what is shown
    assert during >= 3 and len(tiles) == 1  # reads really happened while the load held the warehouse
    assert all(same(a, before) or same(a, after) for a in answers)
    assert all(t in (tiles_before, tiles_after) for t in tiles)
