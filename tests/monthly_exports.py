"""A simulated practice's exports cut into monthly exports (benchmarks.cut_exports), with the months used.

The `monthly_practice` fixture (tests/conftest.py) makes one; the tests of incremental refresh and of
readers during a load use it.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.cut_exports import by_month, cut_exports

MONTHS = ("2026-06", "2026-07", "2026-08", "2026-09")
SAMPLE = ("--months", "4", "--providers", "6", "--scale", "0.5", "--end", "2026-09-30", "--seed", "11")


def split_by_month(exports: Path, out: Path) -> dict[str, list[Path]]:
    """Monthly export folders out/<YYYY-MM>/... cut from whole-period exports."""
    written = cut_exports(exports, out, by_month(MONTHS), MONTHS, "America/New_York")
    assert set(written) == set(MONTHS)
    return written
