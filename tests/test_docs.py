"""Docs that cannot drift: the API guide runs, and the README names every command and every KPI.

- Every `python` block of docs/api.md is executed, in order and in one namespace, against the
  session's simulated practice (its folder is the working directory, as for a user who ran
  `clinic-kpis init` there).
- Every command of the CLI (read from the typer app behind `clinic-kpis --help`) appears in
  README.md as `clinic-kpis COMMAND`.
- Every relative link and image of the README and of docs/ points to a file that exists.
- README's KPI table is generated from the catalog, the one source of truth: when a spec changes,
  the test fails and prints the table to paste between the README's kpi-table markers.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer

from kpis.catalog import shipped_specs
from kpis.cli import app
from kpis.formatting import value_text
from kpis.spec import KpiSpec
from tests.conftest import REPO, SimulatedPractice

API_DOC = REPO / "docs" / "api.md"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- kpi-table:start -->", "<!-- kpi-table:end -->"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def test_api_guide_examples_run_against_the_simulated_practice(
    simulated_practice: SimulatedPractice, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(simulated_practice.directory)
    blocks = python_blocks(API_DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 15
    namespace: dict[str, object] = {}
    try:
        for number, block in enumerate(blocks, start=1):
            exec(compile(block, f"docs/api.md python block {number}", "exec"), namespace)
    finally:
        namespace["wh"].close()
    out = capsys.readouterr().out
    assert "Riverbend Family Medicine" in out  # the first block opened the practice's warehouse
    assert "unknown column 'is_new'" in out  # the spec error example printed its message


def cli_commands() -> list[str]:
    """Every command path under `clinic-kpis`, e.g. `ingest`, `report build`."""

    def walk(group: Any, prefix: str) -> list[str]:  # typer's own click: a group has `commands`
        found = []
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                found += walk(command, f"{prefix}{name} ")
            else:
                found.append(f"{prefix}{name}")
        return found

    return walk(typer.main.get_command(app), "")


def test_every_cli_command_is_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    commands = cli_commands()
    assert {"init", "sample", "ingest", "kpis", "report build", "report send", "dashboard", "demo"} <= set(commands)
    missing = [c for c in commands if f"clinic-kpis {c}" not in readme]
    assert missing == [], f"README.md does not document: {', '.join(missing)}"


def kpi_table(specs: list[KpiSpec]) -> str:
    """The README's KPI table: area, KPI, id, one-line definition and default target."""
    lines = ["| area | KPI | id | definition | default target |", "|---|---|---|---|---|"]
    for spec in specs:
        if spec.target is None:
            target = ""
        else:
            target = ("≤ " if spec.better == "lower" else "≥ ") + value_text(spec.target, spec)
        definition = spec.definition.replace("|", "\\|")
        lines.append(f"| {spec.domain_title} | {spec.title} | `{spec.id}` | {definition} | {target} |")
    return "\n".join(lines)


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md"))]
)
def test_relative_links_of_the_docs_resolve(doc: str) -> None:
    path = REPO / doc
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    if doc == "README.md":
        assert len(local) > 10, "the pattern no longer finds the README's links"
    missing = [t for t in local if not (path.parent / t).exists()]
    assert missing == [], f"{doc} links to missing files: {missing}"


def test_readme_kpi_table_is_generated_from_the_catalog() -> None:
    readme = README.read_text(encoding="utf-8")
    assert TABLE_START in readme and TABLE_END in readme, f"README.md needs {TABLE_START} ... {TABLE_END}"
    found = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    expected = kpi_table(list(shipped_specs().values()))
    assert found == expected, f"README's KPI table is out of date; paste this between the markers:\n\n{expected}\n"
