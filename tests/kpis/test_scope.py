"""A scoped Warehouse answers nothing outside its scope, through any public method.

`test_every_public_method_stays_in_its_scope` walks `dir(Warehouse)`: every public method must
have a case here (a new method without one fails the test), and each case proves, on the
simulated practice (EAST, WEST and NORTH), that the method opened for EAST only

* returns no row, id or name of another location (nor of a provider or payer seen only there),
* and, where it returns numbers, exactly the owner's numbers filtered to EAST (so the scope is a
  filter in SQL, not a page's afterthought), or refuses with AccessDenied (practice-wide views,
  records for a viewer, writes).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kpis import Warehouse
from kpis.changes import ChangeLogError
from kpis.config import load_config
from kpis.dimensions import DimensionError
from kpis.relations import DIMENSIONS
from kpis.scope import AccessDenied, Scope
from tests.conftest import SimulatedPractice
from tests.kpis.helpers import USED_IN, elsewhere_only, ids_of

OWNER = Scope(small_cells=False, label="the owner")
EAST = Scope(locations=frozenset({"EAST"}), records=True, small_cells=False, label="Eastside's manager")
EAST_FILTER = {"location": "EAST"}
KPIS = [
    "no_show_rate",
    "denial_rate",
    "days_in_ar",
    "third_next_available",
    "visit_cycle_time",
    "referral_completion_rate",
]
ID_COLUMNS = ("location", "provider", "payer", "segment")


@dataclass(frozen=True)
class Practice:
    owner: Warehouse
    east: Warehouse
    foreign: frozenset[str]  # ids and names only other locations' rows use
    east_ids: dict[str, frozenset[str]]  # dimension -> the ids EAST's rows use
    month: str
    changes: dict[str, int]


@pytest.fixture(scope="module")
def practice(simulated_practice: SimulatedPractice, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Practice]:
    """A copy of the simulated practice (its change log gets entries) opened by the owner and for EAST."""
    folder = tmp_path_factory.mktemp("scoped")
    db = folder / "clinic_kpis.duckdb"
    shutil.copy(simulated_practice.db, db)
    config = load_config(simulated_practice.config, db=db)
    with Warehouse.open(config=config) as wh:
        west_provider = sorted(ids_of(wh, "provider", "= 'WEST'") - ids_of(wh, "provider", "= 'EAST'"))[0]
        changes = {
            "east": wh.add_change("2026-03-01", "Reminder calls", ["no_show_rate"], ["location=EAST"]),
            "west": wh.add_change("2026-03-01", "Posters", ["no_show_rate"], ["location=WEST"]),
            "practice": wh.add_change("2026-02-01", "New phone menu", ["no_show_rate", "denial_rate"]),
            "west_provider": wh.add_change(
                "2026-04-01", "Longer slots", ["no_show_rate"], [f"provider={west_provider}"]
            ),
        }
        wh.evaluate_alerts(trigger="test")  # the default rules: the practice's and each location's alerts
    owner = Warehouse.open(config=config, read_only=True, scope=OWNER)
    east = Warehouse.open(config=config, read_only=True, scope=EAST)
    foreign = elsewhere_only(owner, "EAST")
    assert {"WEST", "NORTH", "Westside", "Northside"} <= foreign
    east_ids = {"location": frozenset({"EAST"})} | {d: ids_of(owner, d, "= 'EAST'") for d in USED_IN}
    month = owner.scorecard()["month"].iloc[0].date().isoformat()
    yield Practice(owner, east, foreign, east_ids, month, changes)
    east.close()
    owner.close()


# -- what a result may hold --------------------------------------------------------------------


def _text(result: Any) -> str:
    """Everything a result says, as text (frames whole, with their index)."""
    if isinstance(result, pd.DataFrame):
        return result.to_csv() + repr(result.attrs)
    if isinstance(result, dict):
        return "\n".join(f"{k}: {_text(v)}" for k, v in result.items())
    if isinstance(result, list | tuple):
        return "\n".join(_text(v) for v in result)
    return repr(result)


def assert_nothing_foreign(result: Any, p: Practice) -> None:
    text = _text(result)
    found = sorted(token for token in p.foreign if token in text)
    assert not found, f"another location's ids or names in a scoped answer: {found}"
    frames = [result] if isinstance(result, pd.DataFrame) else []
    frames += [v for v in result.values() if isinstance(v, pd.DataFrame)] if isinstance(result, dict) else []
    for frame in frames:
        if "location" in frame.columns:  # (a NULL location is a total over the scope, when rolled up)
            assert set(frame["location"].dropna()) <= {"EAST"}


def _restricted(frame: pd.DataFrame, p: Practice, by: str | None) -> pd.DataFrame:
    """The owner's frame without the rows of ids EAST's rows never use (each with nothing in it)."""
    keep = pd.Series(True, index=frame.index)
    for column in ID_COLUMNS:
        dim = by if column == "segment" else column
        if column in frame.columns and dim in p.east_ids:
            keep &= frame[column].isna() | frame[column].astype(str).isin(p.east_ids[dim])
    dropped = frame[~keep]
    for count in ("n", "denominator", "weight_before", "weight_after"):
        if count in dropped.columns:
            assert (dropped[count].fillna(0) == 0).all(), (
                f"the owner's EAST view has rows for ids EAST never uses:\n{dropped}"
            )
    return frame[keep].reset_index(drop=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = frame.apply(lambda column: column.map(repr)).apply(lambda row: "\x1f".join(row), axis=1)
    return frame.iloc[keys.argsort(kind="stable")].reset_index(drop=True)


def assert_same(scoped: Any, owners: Any, p: Practice, by: str | None = None) -> None:
    if isinstance(scoped, pd.DataFrame):  # in any row order (SQL's is not always fixed)
        pd.testing.assert_frame_equal(_sorted(scoped), _sorted(_restricted(owners, p, by)), check_dtype=False)
    elif isinstance(scoped, dict) and all(isinstance(v, pd.DataFrame) for v in scoped.values()):
        assert scoped.keys() == owners.keys()
        for key in scoped:
            assert_same(scoped[key], owners[key], p, key)
    else:
        assert scoped == owners


# -- the cases: each public method, scoped to EAST against the owner's view filtered to EAST ------

Case = Callable[[Practice], None]


def same_as_filtered(call: Callable[[Warehouse, dict | None], Any], by: str | None = None) -> Case:
    """The scoped call without filters equals the owner's call filtered to EAST, and shows nothing foreign."""

    def check(p: Practice) -> None:
        scoped = call(p.east, None)
        assert_nothing_foreign(scoped, p)
        assert_same(scoped, call(p.owner, EAST_FILTER), p, by)

    return check


def refused(call: Callable[[Warehouse], Any], error: type[Exception] = AccessDenied) -> Case:
    def check(p: Practice) -> None:
        with pytest.raises(error):
            call(p.east)

    return check


def only_east_values(p: Practice) -> None:
    for dim in DIMENSIONS:
        values = p.east.dimension_values(dim)
        assert_nothing_foreign(values, p)
        if dim in p.east_ids:
            assert set(values["id"].astype(str)) == p.east_ids[dim], dim
            if dim == "queue":  # the queue_log names no location: EAST sees no calls, nor their queues
                assert values.empty
        else:  # a fixed vocabulary (payer class, denial reason, weekday, hour): not narrowed
            pd.testing.assert_frame_equal(values, p.owner.dimension_values(dim))


def east_coverage(p: Practice) -> None:
    cov = p.east.coverage()
    assert_nothing_foreign(cov, p)
    rows = cov.groupby("table_name")["rows"].sum()
    cur = p.owner.cursor()
    for table in ("appointments", "slots", "encounters", "claims", "ledger", "referrals", "portal_messages"):
        expected = cur.execute(f"SELECT count(*) FROM {table} WHERE location_id = 'EAST'").fetchone()[0]
        assert rows.get(table, 0) == expected, table
    remits = (
        "SELECT count(*) FROM remittances WHERE claim_id IN (SELECT claim_id FROM claims WHERE location_id = 'EAST')"
    )
    assert rows.get("remittances", 0) == cur.execute(remits).fetchone()[0]
    assert "calls" not in rows.index  # the queue_log names no location: practice-wide, not EAST's


def visible_changes(p: Practice) -> None:
    log = p.east.changes()
    assert set(log["change_id"]) == {p.changes["east"], p.changes["practice"]}
    assert_nothing_foreign(log, p)
    history = p.east.change_history()
    assert set(history["change_id"]) == {p.changes["east"], p.changes["practice"]}
    assert p.east.change(p.changes["east"]).title == "Reminder calls"
    for hidden in ("west", "west_provider"):
        with pytest.raises(ChangeLogError, match="no change with id"):
            p.east.change(p.changes[hidden])
        with pytest.raises(ChangeLogError, match="no change with id"):
            p.east.change_history(p.changes[hidden])


def east_change_effects(p: Practice) -> None:
    effects = p.east.change_effects()
    assert set(effects["change_id"]) == {p.changes["east"], p.changes["practice"]}
    assert_nothing_foreign(effects, p)
    # the practice-wide change is measured on EAST's numbers, and its verdict says so
    practice_row = effects[effects["change_id"] == p.changes["practice"]].iloc[0]
    assert "Eastside" in practice_row["verdict"]
    east = p.east.spc("no_show_rate", changes=[p.changes["practice"]])
    owners = p.owner.spc("no_show_rate", filters=EAST_FILTER, changes=[p.changes["practice"]])
    pd.testing.assert_frame_equal(east, owners)


def east_changes_for(p: Practice) -> None:
    """EAST's charts start phases at EAST's changes only (the owner's chart for EAST shows the same)."""
    scoped = p.east.changes_for("no_show_rate")
    assert list(scoped["change_id"]) == [p.changes["east"]]
    assert_nothing_foreign(scoped, p)
    assert_same(scoped, p.owner.changes_for("no_show_rate", EAST_FILTER), p)
    with pytest.raises(DimensionError, match="Eastside"):
        p.east.changes_for("no_show_rate", {"location": "WEST"})


def names_from_scope(p: Practice) -> None:
    frame = p.east.compute("no_show_rate", by="location")
    named = p.east.with_names(frame, ["location"])
    assert_nothing_foreign(named, p)
    assert named["location_name"].tolist() == [
        p.owner.dimension_values("location").set_index("id")["label"]["EAST"]
    ] * len(named)


def practice_dates(p: Practice) -> None:
    # the practice's data end, whatever the scope: a month is complete for every location at once
    assert p.east.data_end() == p.owner.data_end()


def same_catalog(p: Practice) -> None:
    # every KPI can be filtered by location, so EAST's manager sees them all
    assert [s.id for s in p.east.catalog()] == [s.id for s in p.owner.catalog()]


def import_refused(p: Practice) -> None:
    with pytest.raises(AccessDenied):
        p.east.import_changes(Path("no-such-file.csv"))


def east_alerts(p: Practice) -> None:
    """EAST's inbox: EAST's alerts only (no practice-wide, provider or other location's one)."""
    owners = p.owner.alerts(locations=["EAST"])
    assert not owners.empty and len(p.owner.alerts()) > len(owners)  # there is something to leave out
    for scoped in (p.east.alerts(), p.east.alerts(locations=["EAST", "WEST"])):
        assert_nothing_foreign(scoped, p)
        pd.testing.assert_frame_equal(scoped, owners)
    assert p.east.alerts(locations=["WEST"]).empty


def east_alert_events(p: Practice) -> None:
    mine = set(p.owner.alerts(locations=["EAST"])["alert_id"])
    owners = p.owner.alert_events()
    scoped = p.east.alert_events()
    assert set(scoped["alert_id"]) == mine
    pd.testing.assert_frame_equal(scoped, owners[owners["alert_id"].isin(mine)].reset_index(drop=True))


def east_alert_evaluations(p: Practice) -> None:
    """When the rules ran and on which data; not the practice's counts of alerts raised and open."""
    scoped = p.east.alert_evaluations()
    assert list(scoped.columns) == ["evaluation_id", "started_at", "finished_at", "trigger", "data_end"]
    pd.testing.assert_frame_equal(scoped, p.owner.alert_evaluations()[list(scoped.columns)])


def east_alerts_to_deliver(p: Practice) -> None:
    scoped = p.east.alerts_to_deliver("manager@east.example")
    assert not scoped.empty
    assert_nothing_foreign(scoped, p)
    pd.testing.assert_frame_equal(scoped, p.owner.alerts_to_deliver("manager@east.example", ["EAST"]))


def acknowledge_refused_elsewhere(p: Practice) -> None:
    """Another location's (or the practice's) alert is refused before anything is written."""
    others = p.owner.alerts()
    others = others[~((others["scope_dimension"] == "location") & (others["scope_value"] == "EAST"))]
    assert not others.empty
    for alert_id in others["alert_id"]:
        with pytest.raises(AccessDenied, match=f"alert {alert_id} is not one of EAST's alerts"):
            p.east.acknowledge_alert(int(alert_id), by="east manager")


def same_snapshot_time(p: Practice) -> None:
    assert p.east.snapshot_time() == p.owner.snapshot_time()


def same_rules(p: Practice) -> None:
    assert p.east.alert_rules() == p.owner.alert_rules()  # the config's: no rows


CASES: dict[str, Case] = {
    "compute": same_as_filtered(lambda wh, f: wh.compute(KPIS, by="provider", filters=f, names=True)),
    "compute_groupings": same_as_filtered(
        lambda wh, f: wh.compute_groupings(KPIS, groupings=[(), ("location",), ("provider",)], filters=f)
    ),
    "sql": same_as_filtered(lambda wh, f: wh.sql("no_show_rate", by="provider", filters=f)),
    "explain": same_as_filtered(lambda wh, f: wh.explain("denial_rate", "2026-06", filters=f)),
    "value_counts": same_as_filtered(
        lambda wh, f: wh.value_counts("visit_cycle_time", "2026-01", "2026-06", filters=f)
    ),
    "drivers": same_as_filtered(
        lambda wh, f: wh.drivers("no_show_rate", "2026-06", by="provider", filters=f), "provider"
    ),
    "drivers_by": same_as_filtered(
        lambda wh, f: wh.drivers_by("denial_rate", "2026-06", ["provider", "payer"], filters=f)
    ),
    "ar_aging": same_as_filtered(lambda wh, f: wh.ar_aging("2026-06", by="payer", filters=f)),
    "scorecard": same_as_filtered(lambda wh, f: wh.scorecard(filters=f)),
    "trend": same_as_filtered(lambda wh, f: wh.trend(KPIS, filters=f)),
    "facts": same_as_filtered(lambda wh, f: wh.facts(KPIS, by="provider", filters=f)),
    "movers": same_as_filtered(lambda wh, f: wh.movers(filters=f, by=["provider", "payer"], limit=20)),
    "totals": same_as_filtered(
        lambda wh, f: wh.totals("no_show_rate", "2025-10-01", "2026-09-30", by="provider", filters=f)
    ),
    "parts": same_as_filtered(lambda wh, f: wh.parts("denial_rate", by="payer", filters=f)),
    "missing_sources": same_as_filtered(lambda wh, f: wh.missing_sources(filters=f)),
    "spc": same_as_filtered(lambda wh, f: wh.spc("no_show_rate", filters=f, changes=[])),
    "changes_for": east_changes_for,
    "friction_costs": same_as_filtered(lambda wh, f: wh.friction_costs("2026-06", filters=f)),
    "resolve_filters": same_as_filtered(lambda wh, f: wh.resolve_filters(f)),
    "dimension_values": only_east_values,
    "coverage": east_coverage,
    "catalog": same_catalog,
    "data_end": practice_dates,
    "with_names": names_from_scope,
    "changes": visible_changes,
    "change": visible_changes,
    "change_history": visible_changes,
    "change_effects": east_change_effects,
    "ingest_runs": refused(lambda wh: wh.ingest_runs()),
    "rejects": refused(lambda wh: wh.rejects()),
    "add_change": refused(lambda wh: wh.add_change("2026-05-01", "x", ["no_show_rate"], ["location=EAST"])),
    "edit_change": refused(lambda wh: wh.edit_change(1, title="x")),
    "remove_change": refused(lambda wh: wh.remove_change(1)),
    "import_changes": import_refused,
    "alerts": east_alerts,
    "alert_events": east_alert_events,
    "alert_evaluations": east_alert_evaluations,
    "alerts_to_deliver": east_alerts_to_deliver,
    "acknowledge_alert": acknowledge_refused_elsewhere,
    "alert_rules": same_rules,
    "check_alert_rules": refused(lambda wh: wh.check_alert_rules()),
    "evaluate_alerts": refused(lambda wh: wh.evaluate_alerts(record=False)),
    "record_delivery": refused(lambda wh: wh.record_delivery([1], "x@y.example", "EAST", sent=True)),
    "alert_deliveries": refused(lambda wh: wh.alert_deliveries()),
    "snapshot_time": same_snapshot_time,
}
# The storage layer under the KPI API: they hand out the file, not rows (pages never call them:
# tests/test_architecture.py keeps SQL out of dashboards/ and reports/).
STORAGE = {
    "open": "opens a warehouse with the scope it is given",
    "narrowed": "can only narrow (tested below)",
    "close": "closes the connection",
    "reopen": "the same file opened afresh (a writer's rerun after running out of memory): no rows",
    "cursor": "a DuckDB cursor for kpis' own queries",
    "transaction": "a write transaction (a scoped dashboard opens read-only)",
    "tables": "the names of the schema's tables, no rows",
    "schema_version": "a number",
    "writing": "a read-write copy of the whole practice's warehouse, as a load writes (narrowed by its caller)",
    "load_running": "who holds the write lock, since when: no rows",
}


def _public_methods() -> list[str]:
    return sorted(name for name in dir(Warehouse) if not name.startswith("_") and callable(getattr(Warehouse, name)))


def test_every_public_method_has_a_scope_case() -> None:
    missing = [m for m in _public_methods() if m not in CASES and m not in STORAGE]
    assert not missing, f"public Warehouse methods with no scope case in {__file__}: {missing}"
    assert not (set(CASES) | set(STORAGE)) - set(_public_methods()), "cases for methods that no longer exist"


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(CASES))
def test_every_public_method_stays_in_its_scope(practice: Practice, method: str) -> None:
    CASES[method](practice)


@pytest.mark.parametrize(
    "filters",
    [
        {"location": "WEST"},
        {"location": ["EAST", "WEST"]},
        {"location": "Westside"},  # another location's name
        {"location": "EAST' OR location_id <> 'EAST"},  # a crafted value
        {"location": "west"},
    ],
)
def test_a_location_outside_the_scope_is_unknown_and_named_nowhere(practice: Practice, filters: dict) -> None:
    for call in (
        lambda: practice.east.compute("no_show_rate", filters=filters),
        lambda: practice.east.scorecard(filters=filters),
        lambda: practice.east.explain("no_show_rate", "2026-06", filters=filters),
    ):
        with pytest.raises(DimensionError) as err:
            call()
        assert "Eastside" in str(err.value)  # the known values it lists are EAST's only
        assert_nothing_foreign(str(err.value).replace(repr(next(iter(_values(filters)), "")), ""), practice)


def _values(filters: dict) -> list[str]:
    value = filters["location"]
    return [v for v in ([value] if isinstance(value, str) else value) if v != "EAST"]


def test_a_provider_seen_only_elsewhere_is_unknown(practice: Practice) -> None:
    elsewhere = sorted(practice.foreign & set(practice.owner.dimension_values("provider")["id"].astype(str)))[0]
    practice.owner.compute("no_show_rate", filters={"provider": elsewhere})  # the owner may
    with pytest.raises(DimensionError, match="in the locations you may see"):
        practice.east.compute("no_show_rate", filters={"provider": elsewhere})


def test_a_scope_can_be_narrowed_but_never_widened(practice: Practice) -> None:
    wider = practice.east.narrowed(Scope(small_cells=False))
    assert wider.scope.locations == frozenset({"EAST"})
    assert practice.east.narrowed(Scope(small_cells=True)).scope.small_cells
    with pytest.raises(AccessDenied):
        practice.east.narrowed(Scope(locations=frozenset({"WEST"})))
    viewer = practice.owner.narrowed(Scope(locations=frozenset({"EAST"}), records=False))
    with pytest.raises(AccessDenied, match="aggregates only"):
        viewer.explain("no_show_rate", "2026-06")
    viewer.close()  # a narrowed warehouse leaves the connection to its owner
    assert not practice.owner.compute("no_show_rate", start="2026-06", end="2026-06").empty


def test_small_cells_are_a_property_of_the_scope(practice: Practice) -> None:
    """By provider and week, many values rest on fewer than 11 visits: withheld only where the scope says so."""
    args = {"kpis": "no_show_rate", "start": "2026-06-01", "end": "2026-06-30", "grain": "week", "by": "location"}
    withheld = practice.owner.narrowed(Scope(small_cells=True)).facts(**args)
    shown = practice.owner.facts(**args)
    small = withheld["state"] == "small"
    assert small.any()
    assert (shown.loc[small, "state"] == "final").all()
    pd.testing.assert_series_equal(shown.loc[small, "shown"], shown.loc[small, "value"], check_names=False)
    assert withheld.loc[small, "shown"].isna().all()
