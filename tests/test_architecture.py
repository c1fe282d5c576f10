"""The import rules that keep the one-way flow: ingest -> kpis -> dashboards, reports; sample_data apart.

Every module of the five packages is parsed (`ast`), and every import counts, including imports
inside functions and under `if TYPE_CHECKING:`: a local import is still a dependency, only a late one.

The rules, and why each allow-list is what it is:

* kpis/ imports none of ingest, dashboards, reports, sample_data. The command line reaches their
  commands through entry points (`clinic_kpis.commands` in pyproject.toml), never by import.
* ingest/ knows formats, not KPIs. It may use from kpis only
  - `kpis.storage`: the warehouse file it writes to (open, migrate, cursor, transaction),
  - `kpis.publication`: the copy it writes on and publishes (the results store's refresh before
    publishing is reached through an entry point, so it imports nothing of the engine),
  - `kpis.config`: the practice's settings (time zone, secret, CSV profiles),
  - `kpis.errors`: so its errors print as one line like every other command's,
  - `kpis.cli_options`: the --db/--config options every command shares,
  and these reach no other kpis module (checked below, and at run time: importing ingest does
  not load `kpis.engine`).
* dashboards/ and reports/ never import each other, open no SQL connection (no duckdb, no
  sqlglot) and reach data through the kpis API only: the package (`Warehouse`), its config,
  errors, spec type, the one vocabulary (formatting, palette, month arithmetic, the small-cell
  rule), the comparison records, results and CLI options. The dashboard may import ingest:
  its upload box writes through `ingest_paths`, the one write path.
* sample_data/ imports nothing from kpis (nor ingest, dashboards, reports): its ground truth
  must not follow from the code it checks.
* The modules of kpis import each other without a cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kpis", "ingest", "dashboards", "reports", "sample_data")

INGEST_MAY_USE = frozenset({"kpis.storage", "kpis.publication", "kpis.config", "kpis.errors", "kpis.cli_options"})
KPIS_API = frozenset(
    {
        "kpis",
        "kpis.config",
        "kpis.errors",
        "kpis.spec",
        "kpis.formatting",
        "kpis.results",
        "kpis.cli_options",
        "kpis.comparison",  # the Move and Driver records `Warehouse.movers` returns
        "kpis.periods",  # the one month arithmetic
        "kpis.privacy",  # the small-cell rule every surface shares
        "kpis.palette",  # the one set of colours
        "kpis.scope",  # who sees what: the scope a warehouse is opened with
        "kpis.users",  # the users and roles who may sign in
        "kpis.access",  # the [access] settings, an identity provider's claims to a user
        "kpis.audit",  # the audit log beside the warehouse
        "kpis.throttle",  # failed sign-ins slowed
    }
)
# Known exceptions, each with the change that removes it (none today: the report's movers read
# `Warehouse.movers` since issue 14).
NOT_YET: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a submodule when `from package import submodule`)
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = module_files()


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import statement of one module, anywhere in it, as the modules it names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield Import(name, candidate if candidate in MODULES else base, where)


ALL_IMPORTS = [imp for name, path in MODULES.items() for imp in imports_of(name, path)]


def top(module: str) -> str:
    return module.split(".")[0]


def imports_from(package: str) -> list[Import]:
    return [imp for imp in ALL_IMPORTS if top(imp.importer) == package]


def broken(imports: list[Import]) -> str:
    return "forbidden imports:\n  " + "\n  ".join(str(imp) for imp in imports)


def test_the_parser_sees_every_kind_of_import() -> None:
    """The rules below mean something only if the parser finds imports where they are."""
    seen = {(imp.importer, imp.imported) for imp in ALL_IMPORTS}
    assert ("kpis.api", "kpis.engine") in seen  # from kpis import engine (a submodule)
    assert ("ingest.cli", "ingest.lock") in seen  # inside a function
    assert ("kpis.commands", "kpis.warehouse") in seen  # under if TYPE_CHECKING
    assert ("dashboards.data", "ingest") in seen  # from package import name
    assert len(MODULES) > 100


def test_kpis_imports_none_of_the_packages_built_on_it() -> None:
    built_on_kpis = {"ingest", "dashboards", "reports", "sample_data"}
    bad = [imp for imp in imports_from("kpis") if top(imp.imported) in built_on_kpis]
    assert not bad, broken(bad)


def test_ingest_uses_only_the_storage_side_of_kpis() -> None:
    bad = [
        imp
        for imp in imports_from("ingest")
        if (top(imp.imported) == "kpis" and imp.imported not in INGEST_MAY_USE)
        or top(imp.imported) in {"dashboards", "reports", "sample_data"}
    ]
    assert not bad, broken(bad)
    # and what ingest may use reaches nothing else in kpis, even through a local import
    beyond = [
        imp
        for imp in ALL_IMPORTS
        if imp.importer in INGEST_MAY_USE and top(imp.imported) == "kpis" and imp.imported not in INGEST_MAY_USE
    ]
    assert not beyond, broken(beyond)


def test_importing_ingest_does_not_load_the_kpi_engine() -> None:
    """At run time too: `kpis/__init__` imports `Warehouse` (and with it the engine) only on first use."""
    code = "import json, sys, ingest.run, ingest.cli; print(json.dumps([m for m in sys.modules if m[:4] == 'kpis']))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert loaded <= INGEST_MAY_USE | {"kpis"}, loaded
    assert "kpis.storage" in loaded


@pytest.mark.parametrize("package", ["dashboards", "reports"])
def test_presentation_reaches_data_through_the_kpis_api(package: str) -> None:
    other = "reports" if package == "dashboards" else "dashboards"
    allowed = KPIS_API | NOT_YET.get(package, frozenset())
    bad = [
        imp
        for imp in imports_from(package)
        if (top(imp.imported) == "kpis" and imp.imported not in allowed)
        or top(imp.imported) in {other, "sample_data", "duckdb", "sqlglot"}
        or (top(imp.imported) == "ingest" and package == "reports")
    ]
    assert not bad, broken(bad)


def test_the_known_exceptions_are_still_needed() -> None:
    """An exception nobody uses any more is removed from NOT_YET, so it cannot hide a new import."""
    for package, modules in NOT_YET.items():
        used = {imp.imported for imp in imports_from(package)}
        assert modules <= used, f"{package}: {sorted(modules - used)} no longer imported: drop from NOT_YET"


def test_sample_data_imports_nothing_of_the_code_it_checks() -> None:
    bad = [
        imp for imp in imports_from("sample_data") if top(imp.imported) in {"kpis", "ingest", "dashboards", "reports"}
    ]
    assert not bad, broken(bad)


def test_kpis_modules_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES if top(name) == "kpis"}
    for imp in imports_from("kpis"):
        if imp.imported in graph and imp.imported != imp.importer:
            graph[imp.importer].add(imp.imported)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in kpis: {' -> '.join(exc.args[1])}")
