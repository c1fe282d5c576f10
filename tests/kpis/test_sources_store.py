"""Which exports a scope has, from the results store: the same answers as the raw tables' statements,
for every single value of each dimension, several values and combinations, and after loads that
bring a provider's first remittance or move a claim (and so its remittances) to another location."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import duckdb
import pytest

from kpis import Warehouse, sources
from kpis.serving.refresh import refresh
from kpis.serving.stored import SCOPES_TABLE
from tests.conftest import SimulatedPractice
from tests.kpis.test_serving_payments import _variant
from tests.test_serving_incremental import APRIL_837, MARCH_837, REMITS_835, load


def _scopes(wh: Warehouse) -> list[dict[str, tuple[str, ...]]]:
    """Every single value of each dimension (and one no row has), two values, and combinations of two and three."""
    ids = {d: [*wh.dimension_values(d)["id"].astype(str), "NOWHERE"] for d in ("location", "provider", "payer")}
    scopes: list[dict[str, tuple[str, ...]]] = [{}]
    scopes += [{d: (v,)} for d, values in ids.items() for v in values]
    scopes += [{d: tuple(values[:2])} for d, values in ids.items()]
    scopes += [{d: ("NOWHERE", values[-2])} for d, values in ids.items()]
    for a, b in itertools.combinations(ids, 2):
        scopes += [{a: (x,), b: (y,)} for x in ids[a] for y in ids[b]]
    scopes += [{d: (values[0],) for d, values in ids.items()}, {d: tuple(values[:2]) for d, values in ids.items()}]
    return scopes


def assert_store_answers_as_raw(wh: Warehouse) -> tuple[int, int]:
    """`sources.missing` from the store equals it from the raw tables for every scope of `_scopes`;
    returns (scopes with a missing table, scopes without)."""
    assert sources._store_answers(wh._store_state)  # the store path is the one compared
    specs = wh.catalog()
    counts = [0, 0]
    for scope in _scopes(wh):
        stored = sources.missing(wh.cursor, specs, scope, {}, wh._store_state)
        raw = sources.missing(wh.cursor, specs, scope, {})
        assert stored == raw, scope
        counts[not raw] += 1
    return counts[0], counts[1]


def test_the_store_answers_every_scope_as_the_raw_statements(simulated_practice: SimulatedPractice) -> None:
    with simulated_practice.open() as wh:
        with_missing, without = assert_store_answers_as_raw(wh)
        assert with_missing > 10 and without > 10  # both answers were compared, not only one
        asked: dict = {}
        sources.missing(wh.cursor, wh.catalog(), {"provider": ("NOWHERE",)}, asked, wh._store_state)
        assert asked and all(SCOPES_TABLE in sql for sql in asked)  # a lookup, not the raw table


def test_a_store_built_before_the_table_asks_the_raw_tables_and_the_next_refresh_builds_it(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(simulated_practice.db, db)
    with duckdb.connect(str(db)) as con:  # the store as older code left it
        con.execute(f"DROP TABLE {SCOPES_TABLE}")
        con.execute("DELETE FROM serving.meta WHERE key = 'scopes_version'")
    scope = {"provider": ("NOWHERE",)}
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        asked: dict = {}
        before = sources.missing(wh.cursor, wh.catalog(), scope, asked, wh._store_state)
        assert before and not any(SCOPES_TABLE in sql for sql in asked)
    with Warehouse.open(db, config=simulated_practice.config) as wh, wh.cursor() as cur:
        refresh(cur, wh.config, progress=False)  # nothing loaded since: not up to date all the same
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        assert sources.missing(wh.cursor, wh.catalog(), scope, {}, wh._store_state) == before
        assert_store_answers_as_raw(wh)


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full"])
def test_loads_that_bring_a_providers_first_remittance_keep_the_store_as_the_raw_tables(
    full: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    db = tmp_path / "clinic_kpis.duckdb"
    # the April claims corrected: C100 at WEST by a provider never seen before (a claims-only load
    # that gives WEST and that provider remittances, through C100's)
    moved = _variant(
        APRIL_837,
        tmp_path / "moved" / APRIL_837.name,
        ("REF|LU|EAST", "REF|LU|WEST"),
        ("CAREFUL|ADAM||||XX|1111111111", "NEWCOMER|NORA||||XX|2222222222"),
    )
    answers = []
    for paths, force in [([MARCH_837], False), ([REMITS_835], False), ([moved], True)]:
        load(tmp_path, paths, force=force)
        if full:
            with Warehouse.open(db, config=config) as wh, wh.cursor() as cur:
                refresh(cur, wh.config, full=True, progress=False)
        with Warehouse.open(db, config=config, read_only=True) as wh:
            assert_store_answers_as_raw(wh)
            denial = wh._spec("denial_rate")
            answers.append(
                [
                    sources.missing(wh.cursor, [denial], scope, {}, wh._store_state)
                    for scope in ({"provider": ("1111111111",)}, {"location": ("WEST",)}, {"provider": ("2222222222",)})
                ]
            )
    with duckdb.connect(
        str(db), read_only=True
    ) as con:  # C100's submissions: the March one and the corrected April one
        rows = con.execute("SELECT location_id, provider_id FROM claims WHERE claim_id = 'C100' ORDER BY 1").fetchall()
    assert rows == [("EAST", "1111111111"), ("WEST", "2222222222")]  # so a remittance of C100 is in EAST x 2222 too
    missing = {"denial_rate": "remittances"}
    assert answers[0] == [missing, missing, missing]  # claims without any 835
    assert answers[1] == [{}, missing, missing]  # the provider's first remittances
    assert answers[2] == [{}, {}, {}]  # C100 now also at WEST, by the new provider: its remittances with it
