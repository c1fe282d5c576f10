"""The simulator's whole output (issue 3) ingests with exactly the rejects its truth.json lists,
the re-delivered appointments update, and loading it again leaves identical tables."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from kpis.warehouse import Warehouse
from tests.ingest.conftest import load, snapshot

simulate = pytest.importorskip("sample_data.simulate", reason="the simulator lands with issue 3")
practice = pytest.importorskip("sample_data.practice")


@pytest.mark.slow
def test_simulated_practice_loads_as_its_truth_says(warehouse: Warehouse, tmp_path: Path) -> None:
    out = tmp_path / "export"
    # three months across a new year, so two overlapping yearly vendor exports
    simulate.simulate(practice.Params(months=3, end=date(2026, 1, 31), scale=0.5), out)
    truth = json.loads((out / "truth.json").read_text())

    results = load(warehouse, out)
    by_file = {str(Path(r.path).relative_to(out)): r for r in results}
    assert {name: r.status for name, r in by_file.items() if r.status != "succeeded"} == {
        "ASSUMPTIONS.md": "skipped",
        "truth.json": "skipped",
        "change_log.csv": "skipped",  # the practice's change log: `clinic-kpis changes import` reads it
    }
    assert {name: by_file[name].rejected for name in truth["rejects"]} == truth["rejects"]
    for name, n in truth.get("updates", {}).items():
        assert by_file[name].updated == n, name
    loaded = snapshot(warehouse)

    again = load(warehouse, out)
    assert {r.status for r in again} == {"skipped"}
    assert snapshot(warehouse) == loaded
