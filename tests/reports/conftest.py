"""Fixtures for the report tests: the known-answer practice, opened read-only as the CLI does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import load_config
from reports.build import documents, prepare
from reports.charts import ChartRenderer
from reports.context import ReportContext
from tests.conftest import require_tool
from tests.reports.practice import MONTH, build_practice


@dataclass(frozen=True)
class Practice:
    db: Path
    config: Path

    def open(self) -> Warehouse:
        return Warehouse.open(config=load_config(self.config, db=self.db), read_only=True)


@pytest.fixture(scope="session")
def practice(tmp_path_factory: pytest.TempPathFactory) -> Practice:
    directory = tmp_path_factory.mktemp("practice")
    db = build_practice(directory)
    return Practice(db=db, config=directory / "clinic-kpis.toml")


@pytest.fixture
def wh(practice: Practice) -> Iterator[Warehouse]:
    with practice.open() as warehouse:
        yield warehouse


@pytest.fixture(scope="session")
def renderer() -> Iterator[ChartRenderer]:
    """One Chromium for every test that draws charts (starting it takes seconds)."""
    require_tool("chromium")
    with ChartRenderer() as chart_renderer:
        yield chart_renderer


@dataclass(frozen=True)
class Built:
    ctx: ReportContext
    html: str
    pdf: bytes


@pytest.fixture(scope="session")
def practice_ctx(practice: Practice) -> ReportContext:
    """The whole-practice report of October 2026 (read once: computing every KPI takes seconds)."""
    with practice.open() as warehouse:
        return prepare(warehouse, MONTH, None)


@pytest.fixture(scope="session")
def practice_report(practice_ctx: ReportContext, renderer: ChartRenderer) -> Built:
    """The whole-practice report for October 2026, as HTML and PDF (Letter)."""
    files = documents(practice_ctx, renderer, ("html", "pdf"), "letter")
    return Built(ctx=practice_ctx, html=files["html"].decode("utf-8"), pdf=files["pdf"])
