"""One tiny run of the benchmark script, so it cannot rot; and the comparison it relies on.

The figures themselves are not asserted (benchmarks print figures, tests assert behaviour), but
the run must finish, write its JSON, and find the project and the pandas baseline equal on real
KPI values; and the comparison must catch a difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from duckdb.sqltypes import BIGINT

from benchmarks.compare import compare
from tests.conftest import REPO
from tests.ingest.conftest import FIXTURES, SECRET


@pytest.mark.slow
def test_tiny_benchmark_run_agrees_with_the_pandas_baseline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env["PYTHONPATH"] = str(REPO)
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "benchmarks", "--scale", "tiny", "--repeat", "1", "--workers", "1"]
    command += ["--workdir", str(tmp_path / "work"), "--json", str(out)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    figures = {f["figure"]: f for f in document["figures"]}
    assert figures["appointments"]["project"] > 1000
    assert figures["ingest FHIR NDJSON Appointment"]["unit"] in ("rows/s", "MB/s")
    for dimension in ("provider", "location"):
        for path in ("results store", "raw engine"):
            warm = figures[f"all KPIs by {dimension}, warm, {path}"]
            assert warm["project"] > 0 and warm["baseline"] > 0
            assert figures[f"all KPIs by {dimension}, warm, {path}, CPU"]["project"] > 0
        for key in ("comparison", "store_equals_raw"):  # store vs pandas, store vs raw engine
            comparison = document["scales"]["tiny"][key][dimension]
            assert comparison == {
                "rows": comparison["rows"],
                "kpis": comparison["kpis"],
                "equal": True,
                "differences": [],
            }
            assert comparison["rows"] > 50
    assert document["scales"]["tiny"]["comparison"]["location"]["kpis"] == 22
    assert document["scales"]["tiny"]["comparison"]["provider"]["kpis"] == 19
    for process in ("fresh process", "running server"):
        for figure in ("dashboard Overview first render", "dashboard filter change"):
            assert figures[f"{figure}, {process}"]["unit"] == "s" and figures[f"{figure}, {process}"]["project"] > 0
    assert figures["dashboard revenue_cycle first render, running server"]["project"] > 0
    assert figures["report build (HTML and PDF)"]["project"] > 0
    assert 0 < figures["results store size"]["project"] < figures["warehouse file with the store"]["project"]
    day = document["scales"]["tiny"]["day_load"]
    assert day["rows_read"] > 0 and day["recomputed_rows"]["appointments"] > 0 and day["to_publication"] > 0
    assert document["machine"]["cores"] >= 1
    assert "equal" in done.stdout and not (tmp_path / "work" / "tiny").exists()


def _frame(values: list[float], ns: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kpi_id": ["no_show_rate"] * len(values),
            "period_start": pd.to_datetime(["2026-01-01", "2026-02-01"][: len(values)]),
            "provider": ["1234567890"] * len(values),
            "numerator": [v * 10 for v in values],
            "denominator": [10.0] * len(values),
            "value": values,
            "n": ns,
        }
    )


def test_the_comparison_reports_a_different_value_and_a_missing_row() -> None:
    same = compare(_frame([0.1, 0.2], [10, 10]), _frame([0.1, 0.2], [10, 10]), "provider")
    assert same.equal and same.rows == 2
    changed = compare(_frame([0.1, 0.2], [10, 10]), _frame([0.1, 0.2001], [10, 10]), "provider")
    assert any("value project 0.2 != baseline 0.2001" in d for d in changed.differences)
    missing = compare(_frame([0.1, 0.2], [10, 10]), _frame([0.1], [10]), "provider")
    assert missing.differences == ["no_show_rate 2026-02 1234567890: only in the project"]
    empty_rows_ignored = compare(_frame([0.1, float("nan")], [10, 0]), _frame([0.1], [10]), "provider")
    assert empty_rows_ignored.equal


def test_scale_up_copies_every_row_with_its_own_identifiers(simulated_practice, tmp_path: Path) -> None:
    """Three copies of the simulated warehouse: every fact table has three times the rows, and a
    rate or a mean by location (custom KPIs included) is unchanged (each copy is the same practice again) while its n
    triples; the providers triple with it, and locations and payers stay shared."""
    from benchmarks.scale_up import scale_up
    from kpis import Warehouse
    from kpis.config import load_config

    counts = scale_up(simulated_practice.directory, tmp_path / "x3", copies=3)
    with simulated_practice.open() as wh:
        before = {t: wh.cursor().execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
        original = wh.compute(start="2025-09", end="2026-09", by="location")
        specs = {s.id: s for s in wh.catalog()}
    for table, n in counts.items():
        shared = table in ("locations", "payers", "ingest_runs", "rejects", "schema_migrations", "warehouse_settings")
        assert n == before[table] * (1 if shared else 3), table
    with Warehouse.open(config=load_config(tmp_path / "x3" / "clinic-kpis.toml"), read_only=True) as big:
        assert big.cursor().execute("SELECT count(DISTINCT patient_key) FROM appointments").fetchone()[0] > 0
        scaled = big.compute(start="2025-09", end="2026-09", by="location")
    additive = [k for k, s in specs.items() if not (s.kind == "aggregate" and s.value.agg != "mean")]  # not medians
    key = ["kpi_id", "period_start", "location"]
    both = original.merge(scaled, on=key, suffixes=("", "_x3"))
    both = both[both["kpi_id"].isin(additive) & both["value"].notna()]
    assert len(both) > 100
    pd.testing.assert_series_equal(both["value_x3"], both["value"], check_names=False, rtol=1e-9)
    assert (both["n_x3"] == 3 * both["n"]).all()


def test_the_spark_benchmark_compares_both_engines_value_by_value() -> None:
    from benchmarks.spark import differences

    rows = {
        "kpi_id": ["no_show_rate", "no_show_rate"],
        "period_start": pd.to_datetime(["2026-01-01", "2026-01-01"]),
        "dimension": [None, "location"],
        "dimension_value": [None, "EAST"],
        "numerator": [3.0, 1.0],
        "denominator": [30.0, 10.0],
        "value": [0.1, 0.1],
        "n": [30, 10],
    }
    duckdb = pd.DataFrame(rows)
    assert differences(duckdb, duckdb.copy()) == (2, [])
    spark = duckdb.copy()
    spark.loc[1, "value"] = 0.1 * (1 + 1e-11)  # beyond 1e-12: a difference
    spark.loc[0, "n"] = 31
    compared, found = differences(duckdb, spark)
    assert compared == 2 and len(found) == 2
    assert "n 30.0 (DuckDB) vs 31.0 (Spark)" in found[0] and "value" in found[1]
    alone = differences(duckdb, duckdb.iloc[:1])[1]
    assert len(alone) == 1 and alone[0].endswith("'location', 'EAST'): only in left_only")


def test_the_report_phases_script_times_the_report_it_builds(simulated_practice, tmp_path: Path) -> None:
    """`benchmarks.report_phases` runs the report's flow on a real warehouse (Chromium, WeasyPrint):
    every phase and KPI call timed, and the files it writes are the report of that month."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "benchmarks.report_phases", str(simulated_practice.config), "2026-08", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line[:44].strip(): line[44:].split() for line in done.stdout.splitlines()}
    for phase in ("the numbers (prepare)", "HTML and PDF (WeasyPrint)", "wh.friction_costs (1x)", "wh.movers (1x)"):
        assert all(float(figure) >= 0 for figure in lines[phase]), phase
    wall, cpu, main_thread = map(float, lines["total after the interpreter started"])
    assert wall > 0 and cpu >= main_thread > 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["clinic-kpis-report-2026-08-practice.html", "clinic-kpis-report-2026-08-practice.pdf"]
    assert "August 2026" in (out / names[0]).read_text(encoding="utf-8")
    assert (out / names[1]).read_bytes().startswith(b"%PDF")


def test_the_filter_change_script_times_each_page_and_change(simulated_practice, tmp_path: Path) -> None:
    """`benchmarks.filter_change` runs the app under AppTest on a practice: a first render and the
    filter changes on each page asked, each with its CPU and wall seconds, to values the page was not shown."""
    out = tmp_path / "figures.json"
    command = [sys.executable, "-m", "benchmarks.filter_change", str(simulated_practice.config), "provider"]
    command += ["--changes", "2", "--pages", "overview,phones", "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [(r["page"], r["step"].split(" ")[0]) for r in rows] == [
        ("overview", "first"), ("overview", "provider"), ("overview", "provider"),
        ("phones", "first"), ("phones", "provider"), ("phones", "provider"),
    ]  # fmt: skip
    for page in ("overview", "phones"):  # each change to a value the page was not shown before
        changes = [r["step"] for r in rows if r["page"] == page and r["step"].startswith("provider = ")]
        assert len(set(changes)) == 2 and not any("cached" in c for c in changes)
    assert all(r["cpu"] > 0 and r["wall"] > 0 for r in rows)
    assert all(f"{r['cpu']:7.3f} {r['wall']:7.3f}" in done.stdout for r in rows)


def test_the_filter_sequence_script_times_each_change_and_writes_the_audit_log_aside(
    simulated_practice, tmp_path: Path
) -> None:
    """`benchmarks.filter_sequence`: the Overview's first render, then a location, another, back; a
    provider, another, back; a payer, another, back; the grain and back, each with CPU and wall
    seconds; the page views audited in the file asked, none beside the warehouse."""
    out, audit = tmp_path / "figures.json", tmp_path / "audit.jsonl"
    beside = simulated_practice.db.with_name(simulated_practice.db.name + ".audit.jsonl")
    before = beside.read_bytes() if beside.exists() else None
    command = [sys.executable, "-m", "benchmarks.filter_sequence", str(simulated_practice.config), "--rounds", "1"]
    command += ["--audit-log", str(audit), "--json", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    steps = [r["step"].split(" ")[0].rstrip(":") for r in rows]
    assert steps == ["first", *[k for k in ("location", "provider", "payer") for _ in range(3)], "grain", "grain"]
    assert [r["step"].endswith("(back)") for r in rows].count(True) == 4
    assert all(r["cpu"] > 0 and r["wall"] > 0 for r in rows)
    views = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(views) == len(rows) and {v["event"] for v in views} == {"view"}
    assert (beside.read_bytes() if beside.exists() else None) == before


def test_the_movers_filter_script_times_the_movers_under_each_payer(simulated_practice, tmp_path: Path) -> None:
    """`benchmarks.movers_filter`: a line per payer with CPU and wall seconds and the statements the
    movers ran, all lookups of month results (none over the fact rows)."""
    command = [sys.executable, "-m", "benchmarks.movers_filter", str(simulated_practice.config), "payer"]
    command += ["--month", "2026-09"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    payers = int(lines[0].split(", ")[-1].split(" ")[0])
    rows = [line.rsplit(maxsplit=4) for line in lines[2:-1]]  # a value may hold spaces (Self Pay)
    assert payers > 3 and len(rows) == payers
    assert all(float(cpu) > 0 and float(wall) > 0 and int(lookups) > 0 for _, cpu, wall, lookups, _ in rows)
    assert all(facts == "0" for *_, facts in rows)


def test_the_refresh_steps_script_times_a_full_build_and_rolls_it_back(simulated_practice, tmp_path: Path) -> None:
    """`benchmarks.refresh_steps` runs a full store build step by step (the claim outcomes in two
    parts), names a step that runs out of memory, and leaves the warehouse as it was."""
    directory = tmp_path / "practice"
    directory.mkdir()
    for name in ("clinic-kpis.toml", "clinic_kpis.duckdb"):
        (directory / name).write_bytes((simulated_practice.directory / name).read_bytes())
    refreshed = "SELECT value FROM serving.meta WHERE key = 'refreshed_at'"
    with duckdb.connect(str(directory / "clinic_kpis.duckdb"), read_only=True) as con:
        before = con.execute(refreshed).fetchall()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")} | {"PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.refresh_steps", str(directory), "--parts", "2"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line[:40].strip(): line[40:].split() for line in done.stdout.splitlines()}
    wall, cpu, peak = map(float, lines["facts of claim_outcomes"])
    assert wall > 0 and cpu >= 0 and peak > 0 and "data ends" in lines
    assert "'claim_outcomes': 2" in done.stdout
    done = subprocess.run([*command, "--limit", "1MB"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "ran out of memory" in done.stdout, done.stdout + done.stderr
    with duckdb.connect(str(directory / "clinic_kpis.duckdb"), read_only=True) as con:
        assert con.execute(refreshed).fetchall() == before != []  # rolled back


def test_the_ingest_rss_script_samples_an_ingests_memory_by_phase(tmp_path: Path) -> None:
    """`benchmarks.ingest_rss` loads a folder as `clinic-kpis ingest` does (its refresh and publication
    included) and prints each phase's peak sample: the file loads, the refresh's start and steps."""
    (tmp_path / "clinic-kpis.toml").write_text('[warehouse]\npath = "w.duckdb"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_KPIS_")}
    env |= {"PYTHONPATH": str(REPO), "CLINIC_KPIS_SECRET": SECRET}
    samples = tmp_path / "samples.csv"
    command = [sys.executable, "-m", "benchmarks.ingest_rss", str(tmp_path), str(FIXTURES / "portal")]
    command += ["--interval", "0.01", "--csv", str(samples)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    phases = [line.split()[0] for line in done.stdout.splitlines()]
    assert "refresh" in phases and "load" in phases and phases[-1] == "wall", done.stdout
    rows = samples.read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("t,phase,rss_mb,anon_mb,cpu_s,") and any(",refresh starts," in r for r in rows)
    assert (tmp_path / "w.duckdb").exists()  # published


def test_the_ingest_rss_sampler_lets_a_refreshs_rerun_reopen_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that ran out of memory runs again on the file opened afresh (`Store.reopen`), which
    closes the store's connection: DuckDB refuses that while the sampler's question runs on a cursor
    of it, and the benchmark's ingest failed. The reopen waits for the question instead."""
    from benchmarks import ingest_rss
    from ingest import run as ingest_run
    from kpis.config import load_config
    from kpis.serving import refresh as serving_refresh
    from kpis.storage import Store

    hooked = [(ingest_run, "_load_file"), (ingest_run, "_ingest"), (serving_refresh, "_run")]
    for owner, name in [*hooked, (serving_refresh, "before_publish"), (Store, "reopen")]:
        monkeypatch.setattr(owner, name, getattr(owner, name))  # `_hook` replaces them: back after the test
    sampler = ingest_rss.Sampler(interval=60)
    ingest_rss._hook(sampler)
    db = tmp_path / "w.duckdb"
    (tmp_path / "clinic-kpis.toml").write_text("", encoding="utf-8")
    asking = threading.Event()

    def slow_question(row: dict) -> None:  # the sample's question to DuckDB, running for half a second
        with sampler.store.cursor() as cur:
            cur.create_function("waiting", lambda x: asking.set() or time.sleep(0.5) or x, [BIGINT], BIGINT)
            row["duckdb_mb"] = cur.execute("SELECT waiting(1)").fetchall()[0][0]

    monkeypatch.setattr(sampler, "_ask_duckdb", slow_question)
    with Store(db, config=load_config(tmp_path / "clinic-kpis.toml", db=db)) as store:
        sampler.store = store
        samples = []
        question = threading.Thread(target=lambda: samples.append(sampler.sample()))
        question.start()
        assert asking.wait(10)
        store.reopen()  # the rerun's (`reopened_cursor`), while the question runs
        question.join()
        assert samples[0]["duckdb_mb"] == 1
        assert store.cursor().execute("SELECT count(*) FROM ingest_runs").fetchall() == [(0,)]
