"""The analyst notebooks run clean, top to bottom, against the session's simulated practice.

Each notebook's key cells assert what they show (by-provider numerators add up to the practice,
reminder calls lower EAST's no-show rate, the A/R buckets add up to the A/R of the KPI ...), so
a notebook that runs is also a notebook whose numbers agree with each other. Notebooks are
stored without outputs and use only the public API.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, SimulatedPractice

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-getting-started.ipynb",
        "02-why-did-no-shows-rise.ipynb",
        "03-revenue-cycle.ipynb",
        "04-improvement-loop.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean_and_uses_the_public_api(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), "stored with outputs"
    source = "\n".join(cell.source for cell in code)
    assert "from kpis import Warehouse" in source
    for private in ("import duckdb", ".cursor(", "wh._", "wh.sql("):
        assert private not in source, f"{path.name} reaches past the API: {private}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_the_simulated_practice(
    path: Path, simulated_practice: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_DB", str(simulated_practice.db))
    nb = nbformat.read(path, as_version=4)
    # Run in tmp_path (the kernel's working directory), so exports never land in the repository.
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert errors == []


def test_the_improvement_loop_notebook_finds_what_the_simulator_injected(
    practice_with_changes: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook asserts nothing about any one practice (it runs on any warehouse, with or without
    a change log); on the simulated practice with its log, what it shows is what truth.json injected."""
    monkeypatch.setenv("CLINIC_KPIS_DB", str(practice_with_changes.db))
    nb = nbformat.read(REPO / "notebooks" / "04-improvement-loop.ipynb", as_version=4)
    report = "import json; print(json.dumps({'effects': effects[['title', 'where', 'signal', 'direction']]"
    report += ".to_dict(orient='records'), 'chart': chart.attrs['chart'], 'costs': costs['kpi_id'].tolist(), "
    report += "'money': costs['money'].tolist(), 'kpi': KPI, 'filters': FILTERS}))"
    nb.cells.append(nbformat.v4.new_code_cell(report))
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = json.loads(nb.cells[-1].outputs[0]["text"])
    truth = {c["title"]: c for c in practice_with_changes.truth["meta"]["changes"]}
    assert {e["title"] for e in shown["effects"]} == set(truth)
    for effect in shown["effects"]:
        injected = truth[effect["title"]]
        assert effect["signal"] is not injected["placebo"]
        direction = effect["direction"] if isinstance(effect["direction"], str) else None  # NaN in a frame
        assert direction == (None if injected["placebo"] else "down")
    # the chart drawn is the first change's: the reminder calls' no-show rate at EAST, a P chart
    assert (shown["kpi"], shown["filters"], shown["chart"]) == ("no_show_rate", {"location": ["EAST"]}, "p")
    with practice_with_changes.open() as wh:
        costs = wh.friction_costs()
    assert shown["costs"] == costs["kpi_id"].tolist()
    assert shown["money"] == pytest.approx(costs["money"].tolist())
