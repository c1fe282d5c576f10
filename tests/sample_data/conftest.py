"""Simulated practices shared by the sample_data tests (generated once per session)."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sample_data.practice import Params
from sample_data.simulate import simulate

SMALL = Params(seed=11, months=3, locations=3, providers=4, end=date(2025, 2, 28))


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 months across a year boundary (so the yearly vendor exports overlap), 4 providers."""
    out = tmp_path_factory.mktemp("small")
    simulate(SMALL, out)
    return out


@pytest.fixture(scope="session")
def small_truth(small: Path) -> dict[str, Any]:
    return json.loads((small / "truth.json").read_text(encoding="utf-8"))


def truth_rows(truth: dict[str, Any], kpi: str, dimension: str | None = None, value: str | None = None) -> dict:
    """period_start -> row for one KPI and dimension value."""
    return {
        r["period_start"]: r
        for r in truth["kpis"]
        if r["kpi_id"] == kpi and r["dimension"] == dimension and r["dimension_value"] == value
    }


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file below `root`, by relative path: byte-identical output compares equal."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
