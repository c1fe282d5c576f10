"""Shared fixtures: where the external real files are, and a clean environment per test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def external_dir() -> Path:
    """`../shared/external` (real files written outside this project), or $CLINIC_KPIS_EXTERNAL."""
    return Path(os.environ.get("CLINIC_KPIS_EXTERNAL") or REPO.parent / "shared" / "external")


@pytest.fixture
def external() -> Path:
    path = external_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"external test files missing at {path}")
        pytest.skip(f"external test files not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may read the developer's config, warehouse or secret, or write into the repo."""
    for var in ("CLINIC_KPIS_CONFIG", "CLINIC_KPIS_DB", "CLINIC_KPIS_SECRET", "CLINIC_KPIS_SMTP_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def require_tool(name: str) -> str:
    """Path of a system tool (chromium, pdftoppm); skip without it unless CI demands it."""
    found = os.environ.get("CHROMIUM_PATH") if name == "chromium" else None
    found = found or shutil.which(name)
    if found:
        return found
    if os.environ.get("CLINIC_KPIS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{name} is required here (CLINIC_KPIS_REQUIRE_BROWSER=1) but not installed")
    pytest.skip(f"{name} not installed")
