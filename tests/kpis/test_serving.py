"""The results store answers exactly what the raw engine answers, and says when it cannot.

On the simulated practice (loaded by the real `clinic-kpis ingest`, which refreshes the store
before publishing): every KPI x grain x grouping (total, each dimension, a few pairs) x a sample
of filters, once from the store (`via="store"`, which fails if the store cannot answer) and once
from the raw engine (`via="raw"`); values, numerators and denominators equal (ratios to 1e-12
relative: float sums may differ in the last bits), n and completeness exactly.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from kpis import Warehouse
from kpis.config import load_config
from kpis.errors import ClinicKpisError, ConfigError
from kpis.relations import DIMENSIONS
from kpis.scope import AccessDenied, Scope
from kpis.serving import answer
from kpis.serving import refresh as serving_refresh
from kpis.serving.answer import StoreUnavailable
from kpis.serving.facts import layout
from kpis.serving.refresh import _runs, bounded_memory, refresh, reopened_cursor
from tests.cli_helpers import run_cli
from tests.conftest import SimulatedPractice

# each grain over a range long enough to hold several periods and short enough to stay quick
RANGES = {
    "day": ("2026-08-25", "2026-09-10"),
    "week": ("2026-06-01", "2026-09-30"),
    "month": ("2025-09", "2026-09"),
    "quarter": ("2025-10", "2026-09"),
    "year": ("2025", "2026"),
}
PAIRS = [("location", "provider"), ("payer_class", "visit_type"), ("queue", "hour_of_day")]


def assert_same(store: pd.DataFrame, raw: pd.DataFrame) -> None:
    """Row for row: the same keys, n, completeness and labels; values within 1e-12 relative."""
    assert list(store.columns) == list(raw.columns)
    assert len(store) == len(raw) > 0
    for column in store.columns:
        a, b = store[column], raw[column]
        if column in ("value", "numerator", "denominator", "target"):
            a, b = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
            same = (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-12 * np.abs(b))
            assert same.all(), f"{column}: {store[~same].head(3).to_dict('records')} vs {raw[~same].head(3)}"
        else:
            pd.testing.assert_series_equal(a, b, check_dtype=False, obj=column)


@pytest.fixture(scope="module")
def wh(simulated_practice: SimulatedPractice) -> Warehouse:
    with simulated_practice.open() as opened:
        yield opened


def kpis_for(wh: Warehouse, dims: set[str]) -> list[str]:
    return [s.id for s in wh.catalog() if dims <= set(s.dimensions)]


@pytest.mark.parametrize("grain", list(RANGES))
def test_every_kpi_grouping_and_filter_from_the_store_equals_the_raw_engine(wh: Warehouse, grain: str) -> None:
    start, end = RANGES[grain]
    values = {dim: wh.dimension_values(dim)["id"].tolist() for dim in ("location", "provider", "payer")}
    requests: list[tuple[tuple[str, ...], dict]] = [((), {})]
    requests += [((dim,), {}) for dim in DIMENSIONS]
    requests += [(pair, {}) for pair in PAIRS]
    requests += [
        ((), {"location": values["location"][0]}),  # one value: a month result lookup
        (("provider",), {"location": values["location"][:2]}),  # two values: facts
        (("location",), {"payer": values["payer"][1], "provider": values["provider"][0]}),
        (("visit_type",), {"new_patient": True}),
    ]
    paths = set()
    for by, filters in requests:
        kpis = kpis_for(wh, set(by) | set(filters))
        if not kpis:
            continue
        args = dict(kpis=kpis, start=start, end=end, grain=grain, by=list(by) or None, filters=filters or None)
        store = wh.compute(**args, via="store")
        raw = wh.compute(**args, via="raw")
        assert set(raw.attrs["answered_from"].values()) == {"raw"}
        paths |= set(store.attrs["answered_from"].values())
        assert_same(store, raw)
    assert paths == ({"results", "facts"} if grain == "month" else {"facts"})


def test_several_groupings_at_once_equal_the_raw_engine(wh: Warehouse) -> None:
    """compute_groupings (the drivers' and the report's call): grouping ids and rows alike."""
    for filters in ({}, {"location": "EAST"}, {"payer": wh.dimension_values("payer")["id"].tolist()[:2]}):
        kpis = kpis_for(wh, {"location", "provider", *filters})
        args = dict(
            kpis=kpis,
            start="2026-01",
            end="2026-09",
            groupings=[(), ("location",), ("provider",)],
            filters=filters or None,
        )
        assert_same(wh.compute_groupings(**args, via="store"), wh.compute_groupings(**args, via="raw"))


def test_drivers_from_the_store_equal_the_raw_engine(wh: Warehouse) -> None:
    """drivers_by asks compute_groupings: the split of a move is the same whoever answers."""
    store = wh.drivers_by("no_show_rate", "2026-08", ["location", "provider", "payer"])
    assert all(
        p != "raw" for p in wh.compute("no_show_rate", start="2026-07", end="2026-08").attrs["answered_from"].values()
    )
    for dim, split in store.items():
        frame = wh.compute_groupings("no_show_rate", start="2026-07", end="2026-08", groupings=[(dim,)], via="raw")
        assert split["segment"].notna().any() and not frame.empty


def assert_each_payer_by_location_and_provider_from_results(wh: Warehouse, start: str, end: str) -> None:
    """Every KPI that records location, provider and payer, by location and by provider under each
    payer filter (what the Overview's movers ask after a payer change): a lookup of month results,
    equal to the raw engine's rows."""
    kpis = kpis_for(wh, {"location", "provider", "payer"})
    assert {"days_in_ar", "ar_over_90_pct", "net_collection_rate", "late_cancel_rate"} <= set(kpis)
    for payer in wh.dimension_values("payer")["id"]:
        args = dict(kpis=kpis, start=start, end=end, groupings=[("location",), ("provider",)], filters={"payer": payer})
        store = wh.compute_groupings(**args, via="store")
        assert store.attrs["answered_from"] == dict.fromkeys(kpis, "results"), payer
        assert_same(store, wh.compute_groupings(**args, via="raw"))


def test_each_payer_by_location_and_by_provider_is_a_lookup_equal_to_the_raw_engine(wh: Warehouse) -> None:
    assert_each_payer_by_location_and_provider_from_results(wh, "2025-10", "2026-09")


def test_the_movers_under_a_payer_filter_split_by_location_and_provider_from_month_results(
    simulated_practice: SimulatedPractice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Overview's first change to each payer (a new snapshot, nothing kept): its movers' driver
    rows are all looked up, no aggregate over the fact rows is run."""
    statements = []
    real = answer.statements

    def spied(items, ctx, chosen, layout):
        found = real(items, ctx, chosen, layout)
        statements.extend((dict(chosen), statement) for _, statement in found)
        return found

    monkeypatch.setattr(answer, "statements", spied)
    with simulated_practice.open() as wh:
        split = 0
        for payer in wh.dimension_values("payer")["id"]:
            moves = wh.movers("2026-09", filters={"payer": payer})
            split += sum(1 for m in moves if m.drivers and "payer" in wh._spec(m.kpi_id).dimensions)
    assert split >= 3  # moves of KPIs a payer narrows, each split by location and by provider
    assert any("grouping = 'provider,payer'" in statement for _, statement in statements)
    assert all(set(chosen.values()) == {"results"} for chosen, _ in statements)
    assert not any("serving.facts_" in statement for _, statement in statements)


def test_the_store_reads_its_rows_as_duckdb_gives_them_to_pandas(wh: Warehouse) -> None:
    """`answer.fetch` (through Arrow) = `execute(...).df()`, dtypes included, for every statement the
    store runs for each grain and grouping (results and facts, grouping sets with their NULLs), and
    for the column types that convert differently (NULL integers and booleans, text, decimals)."""
    cursor, state = wh.cursor(), wh._store_state()

    def same(statement: str) -> None:  # rows in any order: a statement without ORDER BY may give another
        fetched, df = answer.fetch(cursor, statement), cursor.execute(statement).df()
        pd.testing.assert_series_equal(fetched.dtypes, df.dtypes)
        order = list(df.columns)
        fetched, df = (f.sort_values(order, na_position="first").reset_index(drop=True) for f in (fetched, df))
        pd.testing.assert_frame_equal(fetched, df, check_exact=True)

    requests = [((), {}), *(((dim,), {}) for dim in DIMENSIONS), *((pair, {}) for pair in PAIRS)]
    requests += [(("provider",), {"location": "EAST"}), (("visit_type",), {"new_patient": True})]
    sets = [((), ("location",), ("new_patient",), ("location", "new_patient")), ((), ("weekday",))]
    compared = set()
    for grain, (start, end) in RANGES.items():
        asked = [(None, (by,), filters or None) for by, filters in requests]
        asked += [(kpis_for(wh, {d for s in group for d in s}), group, None) for group in sets]
        for kpis, groups, filters in asked:
            items, ctx = wh._prepare(kpis, start, end, grain, groups, filters, None)
            chosen = answer.paths(items, ctx, state, wh._layout, "store")
            for _, statement in answer.statements(items, ctx, chosen, wh._layout):
                same(statement)
            compared |= set(chosen.values())
    assert compared == {"results", "facts"}
    typed = (
        "SELECT * FROM (VALUES (1::INTEGER, 2::BIGINT, true, 'x', DATE '2026-01-01', 1.5::DOUBLE, NULL), "
        "(NULL, 3, NULL, NULL, NULL, NULL, NULL)) AS t(i, b, f, s, d, x, n)"
    )
    others = ["SELECT 1.25::DECIMAL(18, 2) AS amount, 'a' AS s", "SELECT NULL::VARCHAR AS s, 1 AS i FROM range(2)"]
    for statement in (typed, f"SELECT * FROM ({typed}) WHERE b = 3", f"SELECT * FROM ({typed}) WHERE b = 4", *others):
        same(statement)


def test_the_default_path_answers_from_the_store(wh: Warehouse) -> None:
    frame = wh.compute(start="2025-10", end="2026-09", by="provider")
    assert set(frame.attrs["answered_from"].values()) == {"results"}
    frame = wh.compute(start="2025-10", end="2026-09", grain="week", by="provider")
    assert set(frame.attrs["answered_from"].values()) == {"facts"}


def assert_same_aging(
    wh: Warehouse, month: str, by: tuple[str, ...], filters: dict, via: str = "store"
) -> pd.DataFrame:
    """ar_aging from the store (`via`) equals the raw engine's: the same cells and buckets, amounts, accounts."""
    args = dict(by=list(by) or None, filters=filters or None)
    store = wh.ar_aging(month, **args, via=via)
    raw = wh.ar_aging(month, **args, via="raw")
    assert via != "store" or store.attrs["answered_from"] == {"ar_over_90_pct": "results"}
    assert raw.attrs["answered_from"] == {"ar_over_90_pct": "raw"}
    keys = ["period_start", *by, "bucket"]
    store, raw = (f.sort_values(keys, key=lambda c: c.astype(str)).reset_index(drop=True) for f in (store, raw))
    pd.testing.assert_frame_equal(store, raw, check_exact=False, rtol=1e-12)
    return store


@pytest.mark.parametrize("month", ["2025-11", "2026-04", "2026-09"])
def test_ar_aging_from_the_store_equals_the_raw_engine(wh: Warehouse, month: str) -> None:
    """By month x breakdown x filters (one value, several, two dimensions): the Revenue page's chart and more."""
    values = {dim: wh.dimension_values(dim)["id"].tolist() for dim in ("location", "provider", "payer", "payer_class")}
    requests: list[tuple[tuple[str, ...], dict]] = [((), {}), (("payer_class",), {}), (("location", "provider"), {})]
    requests += [
        (("payer",), {}),
        (("payer_class",), {"location": values["location"][0]}),
        (("provider",), {"payer": values["payer"][:2]}),
        ((), {"payer_class": values["payer_class"][0], "location": values["location"][-1]}),
        (("location",), {"provider": values["provider"][:3]}),
    ]
    for by, filters in requests:
        aging = assert_same_aging(wh, month, by, filters)
        assert aging["accounts"].sum() > 0 or filters


def test_ar_aging_answers_from_the_raw_engine_where_the_store_keeps_nothing(wh: Warehouse) -> None:
    """Another grain, another option, a month past the data: the raw engine answers (the same numbers)."""
    assert wh.ar_aging().attrs["answered_from"] == {"ar_over_90_pct": "results"}
    assert wh.ar_aging("2026-07", grain="week").attrs["answered_from"] == {"ar_over_90_pct": "raw"}
    options = {"ar_over_90_pct": {"age_from": "first_bill"}}
    assert wh.ar_aging("2026-07", options=options).attrs["answered_from"] == {"ar_over_90_pct": "raw"}
    with pytest.raises(StoreUnavailable, match="A/R aging: .* from the date of service"):
        wh.ar_aging("2026-07", options=options, via="store")
    with pytest.raises(StoreUnavailable, match="month ends up to the data's last month"):
        wh.ar_aging("2030-01", via="store")


def test_another_option_variant_is_answered_by_the_raw_engine(wh: Warehouse) -> None:
    options = {"no_show_rate": {"denominator": "scheduled"}, "days_in_ar": {"preset": "hfma"}}
    frame = wh.compute(
        ["no_show_rate", "days_in_ar", "late_cancel_rate"], start="2026-06", end="2026-09", options=options
    )
    assert frame.attrs["answered_from"] == {"no_show_rate": "raw", "days_in_ar": "raw", "late_cancel_rate": "results"}
    with pytest.raises(StoreUnavailable, match=r"days_in_ar: .* keeps days_in_ar\[preset=mgma"):
        wh.compute("days_in_ar", options={"days_in_ar": {"preset": "hfma"}}, via="store")
    with pytest.raises(StoreUnavailable, match=r"keeps no_show_rate\[denominator=expected"):
        wh.compute("no_show_rate", options={"no_show_rate": {"denominator": "scheduled"}}, via="store")
    with pytest.raises(ClinicKpisError, match="unknown path 'cache'"):
        wh.compute("no_show_rate", via="cache")


def test_value_counts_from_the_store_equal_the_raw_engine_and_the_records(wh: Warehouse) -> None:
    """A distribution (the Phones page's waits): the store's fact rows and the raw relation counted
    by value give the same frame, with filters and through a limited scope; it is explain's
    numerator rows, month by month, counted by value."""
    queue = wh.dimension_values("queue")["id"].tolist()[1]
    cases = [
        ("average_speed_of_answer", {}),
        ("average_speed_of_answer", {"queue": queue, "hour_of_day": [9, 10, 11]}),
        ("visit_cycle_time", {"location": ["NORTH", "WEST"]}),
        ("visit_cycle_time", {"visit_type": "followup"}),
        ("charge_lag", {"payer": wh.dimension_values("payer")["id"].tolist()[:2]}),
    ]
    for kpi, filters in cases:
        store = wh.value_counts(kpi, "2026-01", "2026-09", filters=filters or None, via="store")
        raw = wh.value_counts(kpi, "2026-01", "2026-09", filters=filters or None, via="raw")
        assert store.attrs["answered_from"] == {kpi: "facts"} and raw.attrs["answered_from"] == {kpi: "raw"}
        assert len(store) > 1 and list(store.columns) == ["value", "records"]
        pd.testing.assert_frame_equal(store, raw)
    east = wh.narrowed(Scope(locations=frozenset({"EAST"}), label="Eastside's manager"))
    for kpi, filters in cases[3:]:  # calls rarely name a location: EAST's are next to none
        mine = east.value_counts(kpi, "2026-01", "2026-09", filters=filters, via="store")
        pd.testing.assert_frame_equal(mine, east.value_counts(kpi, "2026-01", "2026-09", filters=filters, via="raw"))
        expected = wh.value_counts(kpi, "2026-01", "2026-09", filters={**filters, "location": "EAST"}, via="raw")
        pd.testing.assert_frame_equal(mine, expected)
        assert 0 < mine["records"].sum() < wh.value_counts(kpi, "2026-01", "2026-09", filters=filters)["records"].sum()
    filters = {"queue": queue}
    records = pd.concat([wh.explain("average_speed_of_answer", f"2026-{m:02d}", filters=filters) for m in range(1, 10)])
    counted = records[records["side"] == "numerator"].groupby("value").size()
    frame = wh.value_counts("average_speed_of_answer", "2026-01", "2026-09", filters=filters)
    assert frame["value"].tolist() == counted.index.tolist() and frame["records"].tolist() == counted.tolist()
    with pytest.raises(AccessDenied, match="aggregates only"):
        wh.narrowed(Scope(records=False)).value_counts("average_speed_of_answer")
    with pytest.raises(ClinicKpisError, match="no value per record"):
        wh.value_counts("no_show_rate")


def test_movers_ask_their_drivers_together_and_name_what_each_alone_names(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Overview's movers: one grouped computation for the moving KPIs that share months,
    dimensions and filters, with the same drivers, dimension and note as each KPI asked alone."""
    asked = []
    real = Warehouse.compute_groupings

    def counted(self, kpis, *args, **kwargs):
        asked.append(kpis)
        return real(self, kpis, *args, **kwargs)

    monkeypatch.setattr(Warehouse, "compute_groupings", counted)
    moved = 0
    for month, filters in (
        ("2026-08", None),
        ("2026-09", {"location": "EAST"}),
        ("2026-07", {"location": ["EAST", "WEST"]}),
    ):
        asked.clear()
        moves = wh.movers(month, filters=filters, limit=20)
        resolved = wh.resolve_filters(filters)
        split = 0
        for move in moves:
            spec = wh._spec(move.kpi_id)
            own = {d: v for d, v in resolved.items() if d in spec.dimensions}
            dims = [d for d in spec.drivers if d in spec.dimensions and len(own.get(d, ())) != 1]
            split += bool(dims)
            asked_before = len(asked)
            frame = (  # the KPI's rows by each dimension, computed for it alone
                real(wh, spec.id, start=move.before, end=move.period, groupings=[(d,) for d in dims],
                     filters=dict(own) or None)
                if dims else None
            )  # fmt: skip
            alone = wh._drivers(spec, move.before, move.period, move.change, dims, frame)
            del asked[asked_before:]
            assert (move.dimension, move.drivers, move.note) == alone, move.kpi_id
        assert len(asked) < split  # fewer grouped computations than KPIs split
        moved += sum(1 for m in moves if m.drivers)
    assert moved >= 3


def test_a_snapshot_keeps_what_calls_derive_from_it_until_a_new_one_is_published(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """Dimension values, resolved filters and which tables have rows for a scope are read once per
    published snapshot (no query on the second call); a publication opens a new snapshot, which
    sees the new data."""
    shutil.copy(simulated_practice.config, tmp_path / "clinic-kpis.toml")
    shutil.copy(simulated_practice.db, tmp_path / "clinic_kpis.duckdb")
    config = tmp_path / "clinic-kpis.toml"
    old = Warehouse.open(config=config, read_only=True)
    try:

        def views(w: Warehouse) -> tuple:
            return (
                w.dimension_values("provider")["id"].tolist(),
                w.resolve_filters({"location": "Eastside", "payer": w.dimension_values("payer")["id"].tolist()[:2]}),
                w.missing_sources(filters={"location": "EAST"}).to_dict("records"),
            )

        first = views(old.narrowed(Scope()))
        opened = []
        real = old.cursor
        old.cursor = lambda: opened.append(1) or real()
        assert views(old.narrowed(Scope())) == views(old) == first
        assert not opened  # every answer kept from the first calls, through narrowed views too
        with Warehouse.writing(config=config) as writer, writer.transaction() as cur:
            cur.execute("INSERT INTO providers (provider_id, name, source) VALUES ('NEW1', 'New Doctor', 'test')")
        with Warehouse.open(config=config, read_only=True) as new:
            assert "NEW1" in views(new)[0]
        assert "NEW1" not in views(old)[0]  # the old snapshot stays what it was
    finally:
        old.close()


def test_the_sql_says_who_answers(wh: Warehouse) -> None:
    stored = wh.sql("no_show_rate", by="provider", start="2026-01", end="2026-03")
    assert stored.startswith("-- answered from the results store (month results, looked up)")
    assert "serving.results" in stored
    facts = wh.sql("visit_cycle_time", grain="week", start="2026-01", end="2026-03")
    assert facts.startswith("-- answered from the results store (an aggregate over its fact rows)")
    assert "serving.facts_encounters" in facts and "QUANTILE_CONT" in facts
    raw = wh.sql("no_show_rate", by="provider", start="2026-01", end="2026-03", via="raw")
    assert not raw.startswith("--") and "FROM appointments AS a" in raw
    spark = wh.sql("no_show_rate", dialect="spark", start="2026-01", end="2026-03")
    assert "serving." not in spark


def test_snapshot_views_come_from_the_store_and_match(wh: Warehouse, simulated_practice: SimulatedPractice) -> None:
    """Coverage, dimension values and data ends read from the store equal a stale warehouse's raw answers."""
    assert wh.snapshot_time() is not None
    raw = Warehouse.open(config=simulated_practice.config, read_only=True)
    try:
        raw.__dict__["_read_only_state"] = raw._store_state().__class__({}, frozenset(), False)  # as if stale
        for grain in ("month", "week"):
            pd.testing.assert_frame_equal(wh.coverage(grain), raw.coverage(grain), check_dtype=False)
        for dim in DIMENSIONS:
            pd.testing.assert_frame_equal(wh.dimension_values(dim), raw.dimension_values(dim))
        assert wh._data_ends() == raw._data_ends()
        assert wh.data_end() == raw.data_end()
    finally:
        raw.close()


def test_a_direct_write_makes_the_store_step_aside(simulated_practice: SimulatedPractice, tmp_path: Path) -> None:
    """A write outside a load (through Store.transaction) marks the store stale: the raw engine answers."""
    db = Path(shutil.copy(simulated_practice.db, tmp_path / "w.duckdb"))
    with Warehouse.open(db, config=simulated_practice.config) as wh:
        assert set(wh.compute("no_show_rate").attrs["answered_from"].values()) == {"results"}
        with wh.transaction() as cur:
            cur.execute("UPDATE appointments SET status = 'noshow' WHERE status = 'fulfilled'")
        frame = wh.compute("no_show_rate", start="2026-09", end="2026-09")
        assert frame.attrs["answered_from"] == {"no_show_rate": "raw"}
        assert frame["value"].iloc[0] > 0.9  # the raw engine sees the write
        with pytest.raises(StoreUnavailable, match="older than the warehouse's data"):
            wh.compute("no_show_rate", via="store")
        assert wh.snapshot_time() is None


def test_the_command_line_prints_the_same_values_from_the_store_and_the_raw_engine(
    simulated_practice: SimulatedPractice, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["kpis", "--config", str(simulated_practice.config), "--start", "2025-10", "--end", "2026-09"]
    outputs = {}
    for via in ("default", "store", "raw"):
        for by in ([], ["--by", "provider"]):
            extra = [] if via == "default" else ["--from", via]
            res = run_cli(capsys, *base, *by, *extra, "--format", "json")
            assert res.code == 0, res.err
            outputs[(via, tuple(by))] = pd.DataFrame(json.loads(res.out))
    for by in ([], ["--by", "provider"]):
        assert_same(outputs[("default", tuple(by))], outputs[("raw", tuple(by))])
        assert_same(outputs[("store", tuple(by))], outputs[("raw", tuple(by))])
    res = run_cli(capsys, *base, "--kpi", "charge_lag", "--grain", "week", "--show-sql")
    assert res.out.startswith("-- charge_lag\n-- answered from the results store (an aggregate over its fact rows)")
    res = run_cli(capsys, *base, "--kpi", "days_in_ar", "--option", "days_in_ar.preset=aafp", "--from", "store")
    assert res.code == 1 and res.err.startswith("error: days_in_ar: the results store cannot answer this request")


def test_refresh_rebuilds_what_other_definitions_change_and_nothing_else(
    simulated_practice: SimulatedPractice, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(simulated_practice.db, tmp_path / "clinic_kpis.duckdb")
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(simulated_practice.config.read_text(encoding="utf-8"), encoding="utf-8")
    res = run_cli(capsys, "refresh", "--config", str(config))
    assert res.code == 0 and "up to date" in res.out, res.err
    config.write_text(
        config.read_text(encoding="utf-8")
        + '\n[kpi_options]\nno_show_rate = { late_cancel = "as_noshow" }\ndays_in_ar = { preset = "hfma" }\n',
        encoding="utf-8",
    )
    with Warehouse.open(config=config, read_only=True) as wh:  # built for the old definitions: not used for these
        frame = wh.compute(
            ["no_show_rate", "late_cancel_rate", "call_abandonment_rate"], start="2026-09", end="2026-09"
        )
        assert frame.attrs["answered_from"] == {
            "no_show_rate": "raw",
            "late_cancel_rate": "raw",
            "call_abandonment_rate": "results",
        }
    res = run_cli(capsys, "refresh", "--config", str(config))
    assert res.code == 0, res.err
    # slots and third next available follow appointments: their changes are found from the
    # appointments' previous facts
    assert "rebuilt: appointments, slots, ledger, third_next_available, ar_aging)" in res.out
    with Warehouse.open(config=config, read_only=True) as wh:
        args = dict(kpis=["no_show_rate", "days_in_ar"], start="2025-10", end="2026-09", by="location")
        store = wh.compute(**args)
        assert store.attrs["answered_from"] == {"no_show_rate": "results", "days_in_ar": "raw"}
        assert store["definition"].str.contains("late_cancel=as_noshow").any()
        assert_same(store, wh.compute(**args, via="raw"))
        with pytest.raises(StoreUnavailable, match="keeps this KPI only with credit balances included"):
            wh.compute("days_in_ar", via="store")
    res = run_cli(capsys, "refresh", "--full", "--config", str(config))
    assert res.code == 0 and "rebuilt: appointments, slots, encounters, calls" in res.out, res.err


def test_month_results_kept_by_older_code_are_not_looked_up_until_a_refresh_recomputes_them(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """A store refreshed before (provider, payer) was kept: the facts answer (the same numbers), and
    the next refresh, with nothing loaded since, recomputes every month result as a full build has them."""
    db = tmp_path / "old.duckdb"
    shutil.copyfile(simulated_practice.db, db)
    with duckdb.connect(str(db)) as con:  # the store as older code left it
        (kept,) = con.execute("SELECT count(*) FROM serving.results WHERE grouping = 'provider,payer'").fetchone()
        for table in ("results", "cells"):
            con.execute(f"DELETE FROM serving.{table} WHERE grouping = 'provider,payer'")
        con.execute("DELETE FROM serving.meta WHERE key = 'results_version'")
    assert kept > 0
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        payer = wh.dimension_values("payer")["id"].iloc[0]
        for by, filters in (("provider", {"payer": payer}), ("location", None)):
            args = dict(start="2025-10", end="2026-09", by=by, filters=filters)
            store = wh.compute(**args)
            assert set(store.attrs["answered_from"].values()) == {"facts"}
            assert_same(store, wh.compute(**args, via="raw"))
    with Warehouse.open(db, config=simulated_practice.config) as wh, wh.cursor() as cur:
        summary = refresh(cur, wh.config, progress=False)
    assert not summary.rebuilt and summary.months["appointments"] > 0  # the facts kept, every month recomputed
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        assert_each_payer_by_location_and_provider_from_results(wh, "2025-10", "2026-09")
    con = duckdb.connect()
    con.execute(f"ATTACH '{simulated_practice.db}' AS built (READ_ONLY)")
    con.execute(f"ATTACH '{db}' AS refreshed (READ_ONLY)")
    for table in ("results", "cells"):
        a, b = f"refreshed.serving.{table}", f"built.serving.{table}"
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), table
    con.close()


def test_the_refresh_runs_under_its_memory_limit_and_restores_the_previous_one(tmp_path: Path) -> None:
    """`[refresh] memory_limit` bounds DuckDB while the store refreshes (default 1.2 GB); a bad size names the key."""
    config = tmp_path / "clinic-kpis.toml"
    con = duckdb.connect()
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    for text, during in (("", "1.1 GiB"), ('[refresh]\nmemory_limit = "300MB"\n', "286.1 MiB")):
        config.write_text(text, encoding="utf-8")
        with bounded_memory(con, load_config(config)):
            assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == during
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
    config.write_text('[refresh]\nmemory_limit = "lots"\n', encoding="utf-8")
    bad = load_config(config)
    with (
        pytest.raises(ConfigError, match=r"\[refresh\] memory_limit 'lots' is not a size DuckDB knows"),
        bounded_memory(con, bad),
    ):
        pass


def test_a_refresh_that_needs_more_than_its_memory_limit_runs_again_without_it(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    """A limit too low for a full build (some steps cannot spill) costs a second run, not a failed load."""
    shutil.copy(simulated_practice.db, tmp_path / "clinic_kpis.duckdb")
    config = tmp_path / "clinic-kpis.toml"
    text = simulated_practice.config.read_text(encoding="utf-8")
    config.write_text(text + '\n[refresh]\nmemory_limit = "1MB"\n', encoding="utf-8")
    with Warehouse.open(config=config) as wh, wh.cursor() as cur:
        before = cur.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        cursors = [cur]  # the rerun's is on the file opened afresh (DuckDB may keep a rolled-back table)

        def reopen() -> duckdb.DuckDBPyConnection:
            cursors.append(reopened_cursor(wh))
            return cursors[-1]

        summary = refresh(cur, wh.config, full=True, progress=False, reopen=reopen)
        assert summary.unbounded and "ar_aging" in summary.rebuilt
        assert summary.ran_out.startswith("facts of ")  # the first step that reads much
        assert len(cursors) == 2
        assert cursors[-1].execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
    with Warehouse.open(config=config, read_only=True) as wh:
        assert wh.ar_aging().attrs["answered_from"] == {"ar_over_90_pct": "results"}
        assert set(wh.compute("no_show_rate").attrs["answered_from"].values()) == {"results"}


def test_a_median_or_p90_is_recomputed_one_month_per_statement(simulated_practice: SimulatedPractice) -> None:
    """A quantile holds every value of its groups and cannot spill: over a full build's every month at
    once the encounters' medians and p90 (0.6 GB at 1 M rows) outgrew a 400 MB `[refresh] memory_limit`
    and the refresh ran again unbounded. Their months go one per statement; sums and counts by runs.
    (At the sample's scale a statement's fixed cost, not its months, sets the floor, so the limit
    itself is not what this asserts; the store = raw tests above hold the rows equal.)"""
    tables = {t.group: t for t in layout(load_config(simulated_practice.config)).tables}
    months = [date(2025, 8, 1), date(2025, 9, 1), date(2025, 10, 1), date(2025, 12, 1)]
    quantiles = [i for i in tables["encounters"].standard if i.spec.value is not None]
    assert {i.spec.value.agg for i in quantiles} >= {"median", "p90"}
    assert _runs(quantiles, months) == [(m, m) for m in months]
    assert _runs(list(tables["appointments"].standard), months) == [
        (date(2025, 8, 1), date(2025, 10, 1)),
        (date(2025, 12, 1), date(2025, 12, 1)),
    ]


def _claim_facts(cur: duckdb.DuckDBPyConnection) -> list[tuple]:
    return cur.execute("SELECT * FROM serving.facts_claim_outcomes ORDER BY ALL").fetchall()


def test_claim_outcomes_built_in_parts_equal_those_of_one_statement(
    simulated_practice: SimulatedPractice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full build evaluates the claim outcomes one part of the claims at a time (their windows do
    not spill together: at 10 M claims one statement outgrew 2 GB). With ties on every ordering the
    relation breaks (a second submission at the same instant, a second remittance on the same day,
    two adjustments of the same size) and a source whose only remittance falls in another part than
    its claim, three parts give the rows of one statement, row for row."""
    shutil.copy(simulated_practice.db, tmp_path / "clinic_kpis.duckdb")
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(simulated_practice.config.read_text(encoding="utf-8"), encoding="utf-8")
    with Warehouse.open(config=config) as wh, wh.cursor() as cur:
        claim, submission, remittance = cur.execute(
            "SELECT c.claim_id, min(c.submission_id), min(r.remittance_id) FROM claims AS c "
            "JOIN remittances AS r ON r.claim_id = c.claim_id AND r.claim_status_code = '1' "
            "GROUP BY c.claim_id ORDER BY c.claim_id LIMIT 1"
        ).fetchone()
        # '!' sorts before any id: the copies win the ties, on their ids
        cur.execute(
            "INSERT INTO claims BY NAME SELECT * REPLACE ('!' || submission_id AS submission_id, 'TIE' AS provider_id) "
            "FROM claims WHERE submission_id = ?",
            [submission],
        )
        cur.execute(
            "INSERT INTO remittances BY NAME SELECT * REPLACE ('!' || remittance_id AS remittance_id, "
            "'4' AS claim_status_code, 'denied' AS status, 0 AS paid_amount) FROM remittances WHERE remittance_id = ?",
            [remittance],
        )
        cur.execute(
            "INSERT INTO remittance_adjustments (remittance_id, seq, group_code, reason_code, amount, source) "
            "VALUES (?, 1, 'CO', '97', 50, 'x12'), (?, 2, 'CO', '16', -50, 'x12')",
            ["!" + remittance] * 2,
        )
        # a source with a claim and another claim's remittance, the two claims in different parts
        names = [f"OTHER-{i}" for i in range(10)]
        part = dict(cur.execute(f"SELECT n, hash(n) % 3 FROM unnest({names}) AS u(n)").fetchall())
        lone, paid = names[0], next(n for n in names if part[n] != part[names[0]])
        cur.execute(
            "INSERT INTO claims BY NAME SELECT * REPLACE (? AS submission_id, ? AS claim_id, 'pm-export' AS source) "
            "FROM claims WHERE submission_id = ?",
            [lone, lone, submission],
        )
        cur.execute(
            "INSERT INTO remittances BY NAME SELECT * REPLACE (? AS remittance_id, ? AS claim_id, "
            "'pm-export' AS source) FROM remittances WHERE remittance_id = ?",
            [paid, paid, remittance],
        )

        monkeypatch.setattr(serving_refresh, "PARTS", 1)
        assert refresh(cur, wh.config, full=True, progress=False).parts["claim_outcomes"] == 1
        one = _claim_facts(cur)
        monkeypatch.setattr(serving_refresh, "PARTS", 3)
        assert refresh(cur, wh.config, full=True, progress=False).parts["claim_outcomes"] == 3
        assert _claim_facts(cur) == one
        facts = "SELECT {} FROM serving.facts_claim_outcomes WHERE _key = ?"
        tied = cur.execute(facts.format("provider, _first_remittance, denial_reason"), [claim]).fetchall()
        assert tied == [("TIE", "!" + remittance, "CO-16")]
        assert cur.execute(facts.format("clean_claim_rate__den"), [lone]).fetchall() == [(True,)]  # remits_loaded
        assert cur.execute(facts.format("count(*)"), [paid]).fetchall() == [(1,)]
