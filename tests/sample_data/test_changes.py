"""The simulator's injected process changes: a real one and a placebo, logged and in the truth."""

from __future__ import annotations

import ast
import csv
from datetime import date
from pathlib import Path
from typing import Any

from sample_data import changes
from sample_data.changes import InjectedChange, default_changes, no_show_factor


def test_truth_records_the_real_change_and_the_placebo(small: Path, small_truth: dict[str, Any]) -> None:
    meta = small_truth["meta"]
    real, placebo = meta["changes"]
    assert real == {
        "title": "Reminder calls 48 h ahead",
        "kpi": "no_show_rate",
        "location": "EAST",
        "date": meta["process_change"]["date"],
        "no_show_probability_factor": 0.55,
        "placebo": False,
    }
    assert placebo["location"] == "WEST" and placebo["placebo"] is True
    assert placebo["no_show_probability_factor"] == 1.0
    assert date.fromisoformat(placebo["date"]) > date.fromisoformat(real["date"])


def test_the_practice_logs_both_changes_in_the_import_layout(small: Path, small_truth: dict[str, Any]) -> None:
    with open(small / "change_log.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["title"] for r in rows] == [c["title"] for c in small_truth["meta"]["changes"]]
    assert [r["scope"] for r in rows] == ["location=EAST", "location=WEST"]
    assert [r["date"] for r in rows] == [c["date"] for c in small_truth["meta"]["changes"]]
    assert {r["kpis"] for r in rows} == {"no_show_rate"}


def test_factors_apply_from_the_day_at_the_location_only() -> None:
    reminder = InjectedChange("Reminders", "EAST", date(2025, 3, 1), 0.75)
    texts = InjectedChange("Texts", "EAST", date(2025, 5, 1), 0.8)
    placebo = InjectedChange("Posters", "WEST", date(2025, 3, 1), 1.0)
    log = (reminder, texts, placebo)
    assert no_show_factor(log, "EAST", date(2025, 2, 28)) == 1.0
    assert no_show_factor(log, "EAST", date(2025, 3, 1)) == 0.75
    assert no_show_factor(log, "EAST", date(2025, 6, 1)) == 0.75 * 0.8
    assert no_show_factor(log, "WEST", date(2025, 6, 1)) == 1.0
    assert placebo.placebo and not reminder.placebo


def test_default_changes_follow_the_locations_that_exist() -> None:
    assert [c.location for c in default_changes(date(2025, 9, 1), ["EAST", "WEST", "NORTH"])] == ["EAST", "WEST"]
    assert [c.location for c in default_changes(date(2025, 9, 1), ["EAST"])] == ["EAST"]


def test_the_simulator_module_does_not_import_kpis() -> None:
    tree = ast.parse(Path(changes.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(name and name.split(".")[0] == "kpis" for name in imported)
