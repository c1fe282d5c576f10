"""The audit log beside the warehouse: appended in order, private, readable, pruned only by retention."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kpis.audit import AuditError, AuditLog, audit_path
from tests.conftest import REPO


def test_entries_are_appended_in_order_with_user_and_filters(tmp_path: Path) -> None:
    log = AuditLog.beside(tmp_path / "clinic_kpis.duckdb")
    assert log.path == tmp_path / "clinic_kpis.duckdb.audit.jsonl" == audit_path(tmp_path / "clinic_kpis.duckdb")
    assert log.entries().empty
    log.record("sign_in", "cat", role="manager", outcome="success", client="10.0.0.7")
    log.record("view", "cat", role="manager", page="phones", filters={"location": ("EAST",), "grain": "month"})
    log.record("records", "cat", role="manager", kpi="no_show_rate", period="2026-06-01", rows=212)
    entries = log.entries()
    assert entries["event"].tolist() == ["sign_in", "view", "records"]
    assert entries["user"].tolist() == ["cat"] * 3
    assert json.loads(entries["filters"].iloc[1]) == {"grain": "month", "location": ["EAST"]}
    assert json.loads(entries["detail"].iloc[2]) == {"rows": 212}
    assert entries["at"].is_monotonic_increasing and str(entries["at"].dt.tz) == "UTC"
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600  # practice staff activity: the owner's file only


def test_unknown_events_and_damaged_lines_are_clear_errors(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.audit.jsonl")
    with pytest.raises(AuditError, match="unknown audit event 'viewed'"):
        log.record("viewed", "cat")
    log.record("view", "cat", page="overview")
    with log.path.open("a", encoding="utf-8") as f:
        f.write("{not json\n")
    with pytest.raises(AuditError, match=r"a\.audit\.jsonl, line 2: not a JSON audit entry"):
        log.entries()


def test_entries_past_the_retention_are_dropped_by_the_next_append(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.audit.jsonl", retention_days=30)
    old = {"at": (datetime.now(UTC) - timedelta(days=31)).isoformat(), "event": "view", "user": "gone"}
    recent = {"at": (datetime.now(UTC) - timedelta(days=29)).isoformat(), "event": "view", "user": "kept"}
    log.path.write_text(json.dumps(old) + "\n" + json.dumps(recent) + "\n", encoding="utf-8")
    log.record("sign_out", "cat")
    assert log.entries()["user"].tolist() == ["kept", "cat"]
    since = datetime.now(UTC) - timedelta(days=1)
    assert log.entries(since=since)["user"].tolist() == ["cat"]


def _append_many(path: str, who: str, count: int) -> None:
    log = AuditLog(path)
    for i in range(count):
        log.record("view", who, page=f"page-{i}")


def test_threads_and_processes_append_whole_lines(tmp_path: Path) -> None:
    """The dashboard's sessions (threads) and the command line (processes) write at once: no line is lost or torn."""
    path = str(tmp_path / "a.audit.jsonl")
    code = f"from tests.kpis.test_audit_log import _append_many as a; import sys; a({path!r}, sys.argv[1], 100)"
    procs = [subprocess.Popen([sys.executable, "-c", code, f"p{i}"], cwd=REPO) for i in range(2)]
    threads = [threading.Thread(target=_append_many, args=(path, f"t{i}", 100)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    entries = AuditLog(path).entries()
    assert len(entries) == 600
    for who in ["t0", "t1", "t2", "t3", "p0", "p1"]:
        assert entries.loc[entries["user"] == who, "page"].tolist() == [f"page-{i}" for i in range(100)]
