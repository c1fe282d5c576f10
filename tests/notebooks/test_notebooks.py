"""The analyst notebooks run clean, top to bottom, on the simulated practice and on another practice.

A notebook must answer on any warehouse, so it asserts nothing about the data it is given: the
checks of what each shows on the simulated practice (by-provider numerators add up to the
practice, reminder calls lower EAST's no-show rate, the A/R buckets add up to the A/R of the
KPI ...) live here, as cells run after the notebook's own in the same kernel. A second practice
(one location, half a year, no simulator's truth beside it, like a real practice's warehouse)
runs every notebook without those checks. Notebooks are stored without outputs and use only
the public API.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO, SimulatedPractice, clinic_kpis

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

# Notebook 04's figures agree with each other on any practice, with a change log or without.
IMPROVEMENT_CHECKS = """
for row in rates.itertuples():  # each price times each excess, as printed
    assert abs(row.gap * row.volume - row.excess) < 1e-6
    assert abs(row.excess * row.assumptions[0]["value"] - row.money) < 1e-6
assert [e["verdict"] for e in chart.attrs["effects"]] == mine["verdict"].tolist()
"""

# What each notebook shows on the simulated practice, checked in its kernel after it ran.
CHECKS = {
    "01-getting-started": """
assert (monthly["value"] - monthly["numerator"] / monthly["denominator"]).abs().max() < 1e-12
pd.testing.assert_frame_equal(summed, practice)
pd.testing.assert_frame_equal(back, by_provider, check_dtype=False)
assert back["period_start"].dtype.kind == "M" and back["n"].dtype.kind == "i"
assert sorted(p.name for p in out.iterdir()) == ["no_show_rate_by_provider.csv", "no_show_rate_by_provider.parquet"]
""",
    "02-why-did-no-shows-rise": """
assert abs(by_location["contribution"].sum() - by_location.attrs["change"]) < 1e-12
month_row = trend.set_index("period_start").loc[MONTH]
assert (records["side"] == "numerator").sum() == month_row["numerator"]
assert records["side"].isin(["numerator", "denominator"]).sum() == month_row["denominator"]
assert (CHANGE_LOCATION, CHANGE_WHAT) == ("EAST", "reminder calls start")  # the simulator's change, from truth.json
assert table.loc[CHANGE_LOCATION, "after"] < table.loc[CHANGE_LOCATION, "before"]
assert "other locations" in table.index and effect < 0
assert z < -2
""",
    "03-revenue-cycle": """
assert abs(aging["amount"].sum() - over_90["denominator"]) < 0.01
share = aging.loc[aging["bucket"].isin(["91-120", "120+"]), "amount"].sum() / aging["amount"].sum()
assert abs(share - over_90["value"]) < 1e-9
assert claims["numerator"].sum() == practice["numerator"].sum()
assert claims["denominator"].sum() == practice["denominator"].sum()
assert (counts.sum(axis=1) == denials["numerator"].reindex(counts.index)).all()
assert len(lags) > 0 and (lags["days"] >= 0).all()
for preset, row in presets.iterrows():
    assert abs(row["days"] - row["A/R"] / row["per day"]) < 1e-9, preset
assert presets.loc["hfma", "A/R"] == presets.loc["aafp", "A/R"]
assert presets.loc["mgma", "A/R"] <= presets.loc["hfma", "A/R"]
assert presets.loc["aafp", "per day"] > presets.loc["hfma", "per day"]
assert presets.loc["aafp", "days"] < presets.loc["hfma", "days"]
""",
    "04-improvement-loop": IMPROVEMENT_CHECKS
    + """
assert log.empty and effects.empty  # the session's practice has no change log (tested with one below)
assert costs["money"].notna().any() and (costs["money"].dropna() >= 0).all()
assert set(by_location["location"]) == set(locations["label"])
""",
}

# Another practice: one location over half a year, its exports not beside its config (no truth.json
# for the notebooks to find), as an analyst's own warehouse would be.
OTHER_PRACTICE = (
    "--locations", "1", "--providers", "4", "--scale", "0.5", "--months", "6", "--end", "2026-06-30", "--seed", "11",
)  # fmt: skip


def run_notebook(path: Path, workdir: Path, checks: str | None = None) -> nbformat.NotebookNode:
    """Execute the notebook (and `checks` after it, in its kernel) in `workdir`; any error fails."""
    nb = nbformat.read(path, as_version=4)
    if checks is not None:
        nb.cells.append(nbformat.v4.new_code_cell(checks))
    # Run in workdir (the kernel's working directory), so exports never land in the repository.
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    return nb


@pytest.fixture(scope="module")
def other_practice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config of a practice that is not the demo's: `init`, `sample` elsewhere, `ingest`."""
    directory = tmp_path_factory.mktemp("other")
    for args in (["init"], ["sample", "--out", "feeds", *OTHER_PRACTICE], ["ingest", "feeds"]):
        done = clinic_kpis(*args, cwd=directory)
        assert done.returncode == 0, f"clinic-kpis {' '.join(args)}: {done.stderr}"
    return directory / "clinic-kpis.toml"


def test_there_are_the_four_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-getting-started.ipynb",
        "02-why-did-no-shows-rise.ipynb",
        "03-revenue-cycle.ipynb",
        "04-improvement-loop.ipynb",
    ]
    assert set(CHECKS) == {p.stem for p in NOTEBOOKS}


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
    # it answers on any practice's data: checks of what it finds belong in CHECKS above
    assert "assert" not in source, f"{path.name} asserts; move the check to this test"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shows_the_simulated_practice_right(
    path: Path, simulated_practice: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_CONFIG", str(simulated_practice.config))
    run_notebook(path, tmp_path, CHECKS[path.stem])


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_answers_on_another_practice(
    path: Path, other_practice: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_CONFIG", str(other_practice))
    monkeypatch.setenv("CLINIC_KPIS_DB", str(other_practice.with_name("clinic_kpis.duckdb")))  # either names it
    run_notebook(path, tmp_path)


def test_the_improvement_loop_notebook_finds_what_the_simulator_injected(
    practice_with_changes: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook asserts nothing about any one practice (it runs on any warehouse, with or without
    a change log); on the simulated practice with its log, what it shows is what truth.json injected."""
    monkeypatch.setenv("CLINIC_KPIS_CONFIG", str(practice_with_changes.config))
    report = "import json; print(json.dumps({'effects': effects[['title', 'where', 'signal', 'direction']]"
    report += ".to_dict(orient='records'), 'chart': chart.attrs['chart'], 'costs': costs['kpi_id'].tolist(), "
    report += "'money': costs['money'].tolist(), 'kpi': KPI, 'filters': FILTERS}))"
    nb = run_notebook(REPO / "notebooks" / "04-improvement-loop.ipynb", tmp_path, IMPROVEMENT_CHECKS + report)
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
