"""The average payment from the results store (`serving.payments`) equals the raw statement, for
every window month and the practice, every location, provider and payer; loads in any order, a
late 835, a --force reload that moves a paid date and a corrected claim location keep it equal
to a full rebuild; a store built before the table existed falls back to the raw statement and
the next refresh builds it."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from kpis import Warehouse, costs
from kpis.periods import next_period
from kpis.serving import payments
from kpis.serving import refresh as serving_refresh
from kpis.serving.refresh import refresh
from kpis.sql_literals import sql_literal
from tests.conftest import SimulatedPractice
from tests.kpis.builder import P1, P2, Fixture
from tests.test_serving_incremental import APRIL_837, MARCH_837, REMITS_835, load

# the statement `costs.average_payment` runs on the raw tables, grouped by each segment at once
RAW = """
    SELECT GROUPING(c.location_id, c.provider_id, r.payer_id) AS g, c.location_id, c.provider_id, r.payer_id,
           SUM(r.paid_amount), COUNT(DISTINCT r.claim_id) FILTER (WHERE r.status = 'paid')
    FROM remittances r LEFT JOIN (  -- each claim's first submission
        SELECT claim_id, location_id, provider_id FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY claim_id ORDER BY submitted_at, submission_id) AS k FROM claims
        ) WHERE k = 1
    ) c USING (claim_id)
    WHERE r.paid_date >= ? AND r.paid_date < ?
    GROUP BY GROUPING SETS ((), (c.location_id), (c.provider_id), (r.payer_id))
"""
ROLLED_UP = {7: None, 3: "location", 5: "provider", 6: "payer"}  # GROUPING() bits -> the segment kept


def raw_windows(cur: duckdb.DuckDBPyConnection, month: date) -> dict[tuple[str | None, str | None], tuple]:
    """(dimension, id) -> (paid, claims) of the window ending with `month`, by the raw statement."""
    end = next_period(month, "month")
    out = {}
    rows = cur.execute(RAW, [date(end.year - 1, end.month, 1), end]).fetchall()
    for g, location, provider, payer, paid, claims in rows:
        dimension = ROLLED_UP[g]
        value = {None: None, "location": location, "provider": provider, "payer": payer}[dimension]
        if dimension is not None and value is None:
            continue  # a segment without an id is in no filter's segment
        if claims:
            out[(dimension, value)] = (paid, claims)
    return out


def assert_store_equals_raw(db: Path, config: Path) -> int:
    """Every window month the store keeps, and the one after: each segment's (paid, claims) as the raw
    statement's, and the average payment equal to the filtered raw statement's for a sample. Returns
    the number of windows with a paid claim compared."""
    compared = 0
    with Warehouse.open(db, config=config, read_only=True) as wh:
        cur = wh.cursor()
        state = wh._store_state()
        assert state.fresh and payments.built(dict(state.meta))
        (first,) = cur.execute("SELECT CAST(DATE_TRUNC('month', MIN(paid_date)) AS DATE) FROM remittances").fetchone()
        last = date.fromisoformat(state.meta["payments_last"])
        if first is None:  # claims without remittances: no payment in any window
            assert cur.execute(f"SELECT count(*) FROM {payments.TABLE}").fetchone() == (0,)
            assert payments.stored(wh, last, None, None) == (None, 0)
            return 0
        assert first <= last
        month = date(first.year - 1, first.month, 1)
        while month <= last:
            kept = {(d, i): (paid, claims) for d, i, paid, claims in cur.execute(
                f"SELECT dimension, id, paid, claims FROM {payments.TABLE} WHERE period_start = ?", [month]
            ).fetchall()}  # fmt: skip
            raw = raw_windows(cur, month)
            assert kept == raw, month
            for (dimension, value), figures in raw.items():
                assert payments.stored(wh, month, dimension, value) == figures
            assert payments.stored(wh, month, "provider", "NOBODY") == (None, 0)
            compared += len(raw)
            month = next_period(month, "month")
        assert payments.stored(wh, next_period(last, "month"), None, None) is None  # after the data: raw
        for dimension, value in [(None, None), *sorted(k for k in raw_windows(cur, last) if k[0])][:8]:
            filters = {} if dimension is None else {dimension: value}
            column = costs._PAYMENT_COLUMNS.get(dimension or "")
            where = f" AND {column} IN ({sql_literal(value)})" if column else ""
            end = next_period(last, "month")
            paid, claims = cur.execute(
                f"SELECT {costs._PAYMENTS} {costs._PAID_CLAIMS} WHERE r.paid_date >= ? AND r.paid_date < ?{where}",
                [date(end.year - 1, end.month, 1), end],
            ).fetchone()
            expected = None if not claims or paid is None else float(paid) / int(claims)
            assert costs.average_payment(wh, last, filters) == expected
    return compared


def test_the_stored_average_payment_equals_the_raw_statement_in_every_window_and_segment(
    simulated_practice: SimulatedPractice,
) -> None:
    compared = assert_store_equals_raw(simulated_practice.db, simulated_practice.config)
    assert compared > 100  # real figures compared: months x locations, providers, payers
    with simulated_practice.open() as wh:
        last = date.fromisoformat(wh._store_state().meta["payments_last"])
        provider = wh.dimension_values("provider")["id"].iloc[0]
        # one provider or one payer is a lookup, not a year of remittances joined to the claims
        assert payments.stored(wh, last, "provider", provider) not in (None, (None, 0))


def test_both_fills_give_the_same_windows_over_any_run_of_months(simulated_practice: SimulatedPractice) -> None:
    """The refresh fills short runs of windows with the grouped raw statement, long ones with the
    spans (`payments.SHORT_RUN`): the same rows either way, for one window, two, and every one."""
    with simulated_practice.open() as wh:
        cur = wh.cursor()
        first, last = cur.execute(
            "SELECT CAST(DATE_TRUNC('month', MIN(paid_date)) AS DATE), "
            "CAST(DATE_TRUNC('month', MAX(paid_date)) AS DATE) FROM remittances"
        ).fetchone()
        middle = date(first.year + (first.month > 6), (first.month + 5) % 12 + 1, 1)
        for a, b in [(last, last), (middle, next_period(middle, "month")), (first, last), (middle, last)]:
            spans, grouped = payments.windows_sql(a, b), payments.grouped_sql(a, b)
            (rows,) = cur.execute(f"SELECT count(*) FROM ({grouped})").fetchone()
            both_ways = f"(({spans}) EXCEPT ALL ({grouped})) UNION ALL (({grouped}) EXCEPT ALL ({spans}))"
            (differ,) = cur.execute(f"SELECT count(*) FROM ({both_ways}) AS d").fetchone()
            assert rows > 0 and differ == 0, (a, b)


def _tables_equal_a_rebuild(db: Path, config: Path, tmp_path: Path) -> None:
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copyfile(db, rebuilt)
    with Warehouse.open(rebuilt, config=config) as wh, wh.cursor() as cur:
        refresh(cur, wh.config, full=True, progress=False)
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS incremental (READ_ONLY)")
    con.execute(f"ATTACH '{rebuilt}' AS full_rebuild (READ_ONLY)")
    meta = "(SELECT * FROM {}.serving.meta WHERE key LIKE 'payments%')"
    pairs = [(f"incremental.{t}", f"full_rebuild.{t}") for t in (payments.TABLE, payments.MONTHS_TABLE)]
    for a, b in [*pairs, (meta.format("incremental"), meta.format("full_rebuild"))]:
        (extra,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()
        (missing,) = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()
        assert (extra, missing) == (0, 0), f"{a}: {extra} rows only incremental, {missing} only rebuilt"
    con.close()
    rebuilt.unlink()


def _variant(source: Path, target: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of a fixture export with some text replaced (each replacement must apply)."""
    text = source.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


@pytest.mark.parametrize("first_835", [True, False], ids=["835 first", "claims first"])
def test_loads_late_835s_moved_paid_dates_and_corrected_locations_keep_the_store_as_a_rebuild(
    first_835: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINIC_KPIS_SECRET", "test-secret-not-for-production")
    monkeypatch.setattr(serving_refresh, "REBUILD_SHARE", float("inf"))  # each file touches most of the facts
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(
        '[practice]\ntimezone = "America/New_York"\n\n[warehouse]\npath = "clinic_kpis.duckdb"\n', encoding="utf-8"
    )
    db = tmp_path / "clinic_kpis.duckdb"
    # months later, the payer pays C100 again and reverses it (another trace number): C100 is a paid
    # claim of windows from April and from August, counted once where they overlap
    late = _variant(
        REMITS_835,
        tmp_path / "late" / "remits_ACME01_2025-08.835",
        ("TRACE001", "TRACE002"),
        ("654321*20250415", "654321*20250815"),
        ("DTM*405*20250414", "DTM*405*20250814"),
        ("CLP*C100*22*-170*-95*-20*12*PCN100", "CLP*C101*1*80*70**12*PCN101"),
    )
    # the April 835 corrected: paid a month later (BPR16), a newer version
    moved = _variant(
        REMITS_835,
        tmp_path / "corrected" / REMITS_835.name,
        ("654321*20250415", "654321*20250520"),
        ("DTM*405*20250414", "DTM*405*20250519"),
    )
    # the April claims corrected: C100 at WEST, not EAST
    relocated = _variant(APRIL_837, tmp_path / "relocated" / APRIL_837.name, ("REF|LU|EAST", "REF|LU|WEST"))
    order = [REMITS_835, MARCH_837, APRIL_837] if first_835 else [MARCH_837, APRIL_837, REMITS_835]
    windows = []
    for paths, force in [*[([p], False) for p in order], ([late], False), ([moved], True), ([relocated], True)]:
        load(tmp_path, paths, force=force)
        windows.append(assert_store_equals_raw(db, config))
    with duckdb.connect(str(db), read_only=True) as con:
        paid_dates = {d for (d,) in con.execute("SELECT DISTINCT paid_date FROM remittances").fetchall()}
        c100 = "SELECT DISTINCT location_id FROM claims WHERE claim_id = 'C100'"
        locations = {x for (x,) in con.execute(c100).fetchall()}
    assert paid_dates == {date(2025, 5, 20), date(2025, 8, 15)}  # the April payments moved to May
    assert "WEST" in locations
    assert windows[-1] > 0
    _tables_equal_a_rebuild(db, config, tmp_path)


def test_a_store_built_before_the_table_falls_back_to_the_raw_statement_and_the_next_refresh_builds_it(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(simulated_practice.db, db)
    with duckdb.connect(str(db)) as con:  # the store as older code left it
        con.execute(f"DROP TABLE {payments.TABLE}")
        con.execute(f"DROP TABLE {payments.MONTHS_TABLE}")
        con.execute("DELETE FROM serving.meta WHERE key LIKE 'payments%'")
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        month = date.fromisoformat(wh._store_state().meta["results_last"])
        provider = wh.dimension_values("provider")["id"].iloc[0]
        assert payments.stored(wh, month, "provider", provider) is None
        before = costs.average_payment(wh, month, {"provider": provider})
        assert before is not None and not wh.friction_costs(month).empty
    with Warehouse.open(db, config=simulated_practice.config) as wh, wh.cursor() as cur:
        summary = refresh(cur, wh.config, progress=False)  # nothing loaded since: not up to date all the same
        assert summary.seconds > 0
    with Warehouse.open(db, config=simulated_practice.config, read_only=True) as wh:
        assert payments.stored(wh, month, "provider", provider) is not None
        assert costs.average_payment(wh, month, {"provider": provider}) == before


def test_a_claim_resubmitted_at_another_location_counts_its_payment_once_under_its_first_submission(
    tmp_path: Path,
) -> None:
    """A replacement 837 may bill a claim under another location or provider: its payments count
    once for the practice, in the segment of its first submission (as claim outcomes take it),
    from the raw statement and from the store alike. Joining every distinct (location, provider)
    of a claim counted C1's 100.00 twice: (100 + 100 + 50) / 2 = 125.00 for the practice."""
    fx = Fixture(tmp_path)
    claim = {"service_date": "2026-01-02", "billed_amount": 120.0}
    fx.add(
        "claims",
        {**claim, "claim_id": "C1", "submitted_at": "2026-01-05 09:00", "location_id": "EAST"},
        {**claim, "claim_id": "C1", "submitted_at": "2026-01-20 09:00", "frequency_code": "7",
         "location_id": "WEST", "provider_id": P2},
        {**claim, "claim_id": "C2", "submitted_at": "2026-01-06 09:00", "location_id": "EAST"},
    )  # fmt: skip
    fx.add(
        "remittances",
        {"claim_id": "C1", "paid_date": "2026-02-10", "paid_amount": 100.0},
        {"claim_id": "C2", "paid_date": "2026-02-11", "paid_amount": 50.0},
    )
    month = date(2026, 2, 1)
    expected = {
        None: 75.0, ("location", "EAST"): 75.0, ("location", "WEST"): None,
        ("provider", P1): 75.0, ("provider", P2): None, ("payer", "PAY1"): 75.0,
    }  # fmt: skip
    for segment, value in expected.items():  # no store yet: the raw statement
        assert costs.average_payment(fx.wh, month, dict([segment]) if segment else {}) == value, segment
    with fx.wh.cursor() as cur:
        refresh(cur, fx.wh.config, full=True, progress=False)
    assert payments.stored(fx.wh, month, None, None) == (Decimal("150.00"), 2)
    assert payments.stored(fx.wh, month, "location", "EAST") == (Decimal("150.00"), 2)
    assert payments.stored(fx.wh, month, "location", "WEST") == (None, 0)
    assert payments.stored(fx.wh, month, "provider", P2) == (None, 0)
    fx.close()
