"""The analyst notebooks run clean, top to bottom, against the session's simulated practice.

Each notebook's key cells assert what they show (by-provider numerators add up to the practice,
reminder calls lower EAST's no-show rate, the A/R buckets add up to the A/R of the KPI ...), so
a notebook that runs is also a notebook whose numbers agree with each other. Notebooks are
stored without outputs and use only the public API.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, SimulatedPractice

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_the_three_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-getting-started.ipynb",
        "02-why-did-no-shows-rise.ipynb",
        "03-revenue-cycle.ipynb",
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
