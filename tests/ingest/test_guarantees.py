"""The guarantees: idempotent loads, a file loaded before is skipped, and one file is one transaction —
a failure or a kill in the middle of a file leaves the warehouse as it was before that file."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest import sources
from ingest.adapters.csv_profile import CsvProfileAdapter
from ingest.load import Loader
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, REPO_ROOT, SECRET, load, rows, snapshot

EXPORTS = [FIXTURES / d for d in ("fhir", "x12", "phones", "vendor", "billing", "portal", "referrals")]


def test_loading_everything_twice_changes_nothing(warehouse: Warehouse) -> None:
    first = load(warehouse, *EXPORTS)
    assert {r.status for r in first} == {"succeeded"}
    assert sum(r.inserted for r in first) > 0
    after_first = snapshot(warehouse)
    without_lineage = snapshot(warehouse, lineage=False)

    again = load(warehouse, *EXPORTS)
    assert {r.status for r in again} == {"skipped"}
    assert all(r.message.startswith("already loaded as run ") for r in again)
    assert snapshot(warehouse) == after_first

    forced = load(warehouse, *EXPORTS, force=True)
    assert {r.status for r in forced} == {"succeeded"}
    for r in forced:
        if r.path.endswith("north_appointments_2025.csv"):
            # the older yearly export is loaded again after the newer one: V2 and V4 keep their
            # 2026 state (stale, kept the newer), the others are unchanged
            assert (r.inserted, r.updated, r.unchanged, r.stale) == (0, 0, 2, 2), r
        else:
            assert (r.inserted, r.updated, r.unchanged, r.stale) == (0, 0, r.read - r.rejected - r.waiting, 0), r
    assert snapshot(warehouse, lineage=False) == without_lineage
    runs = rows(warehouse, "SELECT status, count(*) FROM ingest_runs GROUP BY 1 ORDER BY 1")
    assert runs == [("skipped", len(again)), ("succeeded", len(first) + len(forced))]


def test_loading_a_file_again_keeps_its_rows_and_their_lineage(warehouse: Warehouse) -> None:
    for path in (FIXTURES / "fhir", FIXTURES / "x12", FIXTURES / "vendor" / "north_appointments_2026.csv"):
        first = load(warehouse, path)
        before = snapshot(warehouse)
        forced = load(warehouse, path, force=True)
        assert [(r.inserted, r.updated, r.unchanged) for r in forced] == [
            (0, 0, r.read - r.rejected - r.waiting) for r in first
        ]
        assert snapshot(warehouse) == before  # lineage included: unchanged rows keep their run


def test_the_same_content_under_another_name_is_skipped(warehouse: Warehouse, tmp_path: Path) -> None:
    original = FIXTURES / "portal" / "portal_messages.csv"
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(original.read_bytes())
    (first,) = load(warehouse, original)
    (second,) = load(warehouse, copy)
    assert second.status == "skipped" and second.message.startswith(f"already loaded as run {first.run_id}")


def test_archives_load_like_their_files(warehouse: Warehouse, tmp_path: Path) -> None:
    import gzip
    import zipfile

    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((FIXTURES / "fhir").iterdir()):
            zf.write(path, f"fhir/{path.name}")
    gz = tmp_path / "queue_log.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "phones" / "queue_log").read_bytes()))
    results = load(warehouse, archive, gz)
    assert [r.path for r in results][:2] == [
        f"{archive}/fhir/Appointment.ndjson",
        f"{archive}/fhir/DocumentReference.ndjson",
    ]
    assert results[-1].path == str(tmp_path / "queue_log") and results[-1].inserted == 6
    from_archive = snapshot(warehouse, lineage=False)  # the names differ: a waiting update says where it came from

    plain = tmp_path / "plain"
    plain.mkdir()
    with Warehouse(plain / "w.duckdb") as other:
        load(other, FIXTURES / "fhir", FIXTURES / "phones")
        assert snapshot(other, lineage=False) == from_archive


def test_a_failure_in_the_middle_of_a_file_leaves_the_warehouse_as_before(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(warehouse, FIXTURES / "x12" / "claims_2025-03.837")
    before = snapshot(warehouse)
    runs_before = rows(warehouse, "SELECT * FROM ingest_runs")
    real_apply = Loader._apply
    applied: list[str] = []

    def apply_then_crash(self: Loader, target, n, run_id, outcomes):  # noqa: ANN001, ANN202
        real_apply(self, target, n, run_id, outcomes)
        applied.append(target.table)
        if len(applied) == 2:  # claims and lines of the new file are written; then the process "crashes"
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(Loader, "_apply", apply_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load(warehouse, FIXTURES / "x12" / "claims_2025-04.837")
    assert applied == ["claims", "claim_lines"]
    assert snapshot(warehouse) == before
    assert rows(warehouse, "SELECT * FROM ingest_runs") == runs_before


KILL_SCRIPT = """
import sys, time
from ingest.load import Loader
from ingest import ingest_paths
from kpis.warehouse import Warehouse

real_apply = Loader._apply
def apply_then_hang(self, target, n, run_id, outcomes):
    real_apply(self, target, n, run_id, outcomes)
    print("written", target.table, flush=True)
    time.sleep(120)

Loader._apply = apply_then_hang
with Warehouse(sys.argv[1]) as wh:
    ingest_paths(wh, [sys.argv[2]])
"""


def test_a_killed_load_leaves_the_warehouse_as_before(
    tmp_path: Path, empty_warehouse_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `kill -9` while a file's rows are half written: the next open sees none of them."""
    monkeypatch.setenv("CLINIC_KPIS_SECRET", SECRET)
    db = tmp_path / "w.duckdb"
    db.write_bytes(empty_warehouse_file.read_bytes())
    env = {**os.environ, "CLINIC_KPIS_SECRET": SECRET, "PYTHONPATH": str(REPO_ROOT)}
    script = textwrap.dedent(KILL_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(FIXTURES / "vendor" / "north_appointments_2025.csv")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "written appointments", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with Warehouse(db) as wh:
        assert rows(wh, "SELECT count(*) FROM appointments") == [(0,)]
        assert rows(wh, "SELECT count(*) FROM ingest_runs") == [(0,)]
        assert (
            load(wh, FIXTURES / "vendor" / "north_appointments_2025.csv")[0].inserted
        ) == 4  # and it loads afterwards


class _Counted(io.RawIOBase):
    """A file opened for reading that counts in `whole` each time it is read to its end."""

    whole = 0

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed with this stream

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        if n is None or n < 0 or not data:
            type(self).whole += 1
        return data

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def test_a_new_file_is_read_once_for_its_rows_and_its_checksum(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why: the checksum was a read of its own before the parse (0.36 s CPU for a 497 MB FHIR file);
    a file whose size no loaded file has cannot have been loaded, so its parse's read gives it."""
    source = FIXTURES / "vendor" / "north_appointments_2025.csv"
    monkeypatch.setattr(sources, "open", lambda path, mode: _Counted(path), raising=False)
    _Counted.whole = 0
    (first,) = load(warehouse, source)
    assert first.status == "succeeded" and _Counted.whole == 1  # the parse's read alone
    assert rows(warehouse, "SELECT sha256, size_bytes FROM ingest_runs") == [
        (hashlib.sha256(source.read_bytes()).hexdigest(), source.stat().st_size)
    ]
    _Counted.whole = 0
    (again,) = load(warehouse, source)  # a file of that size was loaded: hashed first, skipped unparsed
    assert again.status == "skipped" and again.message.startswith(f"already loaded as run {first.run_id}")
    assert _Counted.whole == 1


def test_a_compressed_file_is_hashed_once_while_listed_and_read_once_to_load(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .gz (or archive member) is decompressed and hashed while the paths are listed, to find a
    corrupt one before anything loads; that checksum goes with the file, which was hashed again,
    decompressing it once more, before its parse."""
    data = (FIXTURES / "vendor" / "north_appointments_2025.csv").read_bytes()
    gz = tmp_path / "north_appointments_2025.csv.gz"
    gz.write_bytes(gzip.compress(data))
    whole = []

    class Counted(gzip.GzipFile):  # the decompressed content, each read of it to its end noted
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            if size is None or size < 0 or not data:
                whole.append(size)
            return data

    monkeypatch.setattr(sources.gzip, "GzipFile", Counted)
    (first,) = load(warehouse, gz)
    assert first.status == "succeeded" and len(whole) == 2  # listed (hashed), then parsed
    assert rows(warehouse, "SELECT sha256, size_bytes FROM ingest_runs") == [
        (hashlib.sha256(data).hexdigest(), len(data))
    ]
    whole.clear()
    (again,) = load(warehouse, gz)
    assert again.status == "skipped" and len(whole) == 1  # listed (hashed) only


def _changed_before_parse(monkeypatch: pytest.MonkeyPatch, path: Path, content: bytes) -> None:
    """`path` rewritten with `content` just before the first parse of a CSV file (after it was listed)."""
    parse = CsvProfileAdapter.parse

    def rewritten(self, file, ctx):  # noqa: ANN001, ANN202 - the adapter's own signature
        monkeypatch.setattr(CsvProfileAdapter, "parse", parse)
        path.write_bytes(content)
        return parse(self, file, ctx)

    monkeypatch.setattr(CsvProfileAdapter, "parse", rewritten)


def test_a_file_changed_before_its_parse_records_the_checksum_of_what_it_loaded(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checksum is of the bytes the parse read: a file listed with content B and parsed with A
    records A's, so B (never loaded) loads later rather than being skipped as loaded."""
    full = (FIXTURES / "portal" / "portal_messages.csv").read_bytes()
    shorter = full[: full.rstrip(b"\n").rfind(b"\n") + 1]  # the same file without its last message
    changing = tmp_path / "portal_messages.csv"
    changing.write_bytes(shorter)
    _changed_before_parse(monkeypatch, changing, full)
    (first,) = load(warehouse, changing)
    assert (first.status, first.read) == ("succeeded", full.count(b"\n") - 1)
    assert rows(warehouse, "SELECT sha256 FROM ingest_runs") == [(hashlib.sha256(full).hexdigest(),)]
    other = tmp_path / "shorter.csv"
    other.write_bytes(shorter)
    (second,) = load(warehouse, other)
    assert (second.status, second.read) == ("succeeded", first.read - 1)  # not skipped: B was never loaded


def test_a_file_changed_before_its_parse_to_content_loaded_before_is_skipped(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its size said it could not have been loaded, so it was parsed; its checksum (of what the parse
    read) then says it was: the file's transaction is rolled back and it is skipped, as a file
    hashed first is."""
    source = FIXTURES / "portal" / "portal_messages.csv"
    full = source.read_bytes()
    (first,) = load(warehouse, source)
    changing = tmp_path / "portal_messages.csv"
    changing.write_bytes(full[: full.rstrip(b"\n").rfind(b"\n") + 1])
    _changed_before_parse(monkeypatch, changing, full)
    before = snapshot(warehouse)
    (second,) = load(warehouse, changing)
    assert second.status == "skipped" and second.message.startswith(f"already loaded as run {first.run_id}")
    assert rows(warehouse, "SELECT status, count(*) FROM ingest_runs GROUP BY 1 ORDER BY 1") == [
        ("skipped", 1),
        ("succeeded", 1),
    ]
    assert snapshot(warehouse) == before
