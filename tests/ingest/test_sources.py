"""Input files are lazy: listing them reads no content into memory, and each is read when it loads.

Why: a practice's exports can be gigabytes; holding every file's bytes for the whole run was
most of ingest's peak memory (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import pytest

from ingest.sources import InputFile, expand
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load, rows


def _held_bytes(file: InputFile) -> list[str]:
    """The attributes of `file` that hold content (bytes or a buffer)."""
    return [name for name, value in vars(file).items() if isinstance(value, bytes | bytearray | memoryview)]


def test_listing_files_reads_no_content(tmp_path: Path) -> None:
    files = list(expand([FIXTURES / "fhir", FIXTURES / "x12"]))
    assert files and all(not _held_bytes(f) for f in files)
    appointment = next(f for f in files if f.name.endswith("Appointment.ndjson"))
    data = (FIXTURES / "fhir" / "Appointment.ndjson").read_bytes()
    assert appointment.read() == data
    assert appointment.sha256 == hashlib.sha256(data).hexdigest()
    assert appointment.size == len(data)
    assert not _held_bytes(appointment)  # the checksum was streamed, and nothing kept


def test_archive_members_and_gzip_are_read_lazily_with_their_checksum(tmp_path: Path) -> None:
    data = (FIXTURES / "phones" / "queue_log").read_bytes()
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("phones/queue_log.gz", gzip.compress(data))
        zf.writestr("phones/plain_log", data)
    (plain_member, gz_member) = list(expand([archive]))  # members in sorted order
    assert gz_member.name == f"{archive}/phones/queue_log" and plain_member.name == f"{archive}/phones/plain_log"
    for member in (gz_member, plain_member):
        assert not _held_bytes(member)
        assert member.sha256 == hashlib.sha256(data).hexdigest() and member.size == len(data)
        assert member.head(10) == data[:10]
        assert b"".join(member.blocks()) == data


def test_a_corrupt_gzip_fails_on_its_own_and_the_other_files_load(warehouse: Warehouse, tmp_path: Path) -> None:
    good = gzip.compress((FIXTURES / "phones" / "queue_log").read_bytes())
    bad = tmp_path / "queue_log.gz"
    bad.write_bytes(good[: len(good) // 2])  # truncated: the stream ends early
    portal, broken = load(warehouse, FIXTURES / "portal" / "portal_messages.csv", bad)
    assert (portal.status, portal.inserted) == ("succeeded", 3)
    assert broken.status == "failed" and broken.message.startswith(f"{bad}: not a readable gzip file")
    assert rows(warehouse, "SELECT status, file_path FROM ingest_runs ORDER BY run_id") == [
        ("failed", str(bad)),
        ("succeeded", str(FIXTURES / "portal" / "portal_messages.csv")),
    ]


def test_a_file_loaded_from_a_gzip_in_a_zip_loads_like_the_file(warehouse: Warehouse, tmp_path: Path) -> None:
    source = FIXTURES / "vendor" / "north_appointments_2025.csv"
    archive = tmp_path / "vendor.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("north_appointments_2025.csv.gz", gzip.compress(source.read_bytes()))
    (result,) = load(warehouse, archive)
    assert result.status == "succeeded" and result.path == f"{archive}/north_appointments_2025.csv"
    assert (result.read, result.inserted, result.rejected) == (7, 4, 3)  # as the plain file loads alone
    (again,) = load(warehouse, source)
    assert again.status == "skipped"  # same content, same checksum


def test_duckdb_memory_is_bounded_while_files_load_and_restored_after(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's default is 80% of RAM; during ingest it spills past 1 GB instead of growing."""
    from ingest.load import Loader

    setting = "SELECT current_setting('memory_limit')"
    before = rows(warehouse, setting)[0][0]
    seen: list[str] = []
    real_load = Loader.load

    def load_and_look(self: Loader, batch, run_id, file_name):  # noqa: ANN001, ANN202
        seen.append(self.cur.execute(setting).fetchone()[0])
        return real_load(self, batch, run_id, file_name)

    monkeypatch.setattr(Loader, "load", load_and_look)
    load(warehouse, FIXTURES / "portal" / "portal_messages.csv")
    assert seen == ["953.6 MiB"]  # 1 GB
    assert rows(warehouse, setting)[0][0] == before


def _corrupt_member(archive: Path, member: str) -> None:
    """Flip bytes inside `member`'s compressed data, so reading it fails its CRC or inflate."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    data = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 5, start + 40):
        data[i] ^= 0xFF
    archive.write_bytes(bytes(data))


def test_every_archive_member_left_out_says_why_and_a_corrupt_one_fails_alone(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Issue 19 item 10: members named `../...` or starting with a dot were skipped with no note,
    and one corrupt member aborted the command, the other paths given included."""
    archive = tmp_path / "exports.zip"
    portal = (FIXTURES / "portal" / "portal_messages.csv").read_bytes()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../outside.csv", portal)
        zf.writestr(".hidden.csv", portal)
        zf.writestr("__MACOSX/._portal.csv", b"\x00\x05\x16\x07")
        zf.writestr("broken/queue_log", (FIXTURES / "phones" / "queue_log").read_bytes() * 20)
        zf.writestr("portal/portal_messages.csv", portal)
    _corrupt_member(archive, "broken/queue_log")
    results = {r.path.removeprefix(f"{archive}/"): r for r in load(warehouse, archive, FIXTURES / "referrals")}
    assert {name: (r.status, r.message) for name, r in results.items() if r.status != "succeeded"} == {
        "../outside.csv": ("skipped", "the member's name points outside the archive: not loaded"),
        ".hidden.csv": ("skipped", "hidden file (its name starts with a dot): not loaded"),
        "__MACOSX/": ("skipped", "1 macOS resource-fork member(s): not exports"),
        "broken/queue_log": ("failed", results["broken/queue_log"].message),
    }
    assert results["broken/queue_log"].message.startswith(f"{archive}/broken/queue_log: not a readable archive member")
    assert results["portal/portal_messages.csv"].inserted == 3
    assert any(r.status == "succeeded" and "referrals" in name for name, r in results.items())


def test_hidden_files_in_a_folder_are_noted(warehouse: Warehouse, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    (folder / ".cache").mkdir(parents=True)
    (folder / ".cache" / "old.csv").write_bytes((FIXTURES / "portal" / "portal_messages.csv").read_bytes())
    (folder / ".DS_Store").write_bytes(b"\x00\x00")
    (folder / "portal_messages.csv").write_bytes((FIXTURES / "portal" / "portal_messages.csv").read_bytes())
    results = {Path(r.path).name: (r.status, r.message) for r in load(warehouse, folder)}
    assert results == {
        ".cache": ("skipped", "hidden folder (its name starts with a dot): not loaded"),
        ".DS_Store": ("skipped", "hidden file (its name starts with a dot): not loaded"),
        "portal_messages.csv": ("succeeded", None),
    }


def test_a_file_name_with_control_characters_stays_one_line(warehouse: Warehouse, tmp_path: Path) -> None:
    odd = tmp_path / "notes\nfor\tQ3\x1b.txt"
    odd.write_text("nothing an ingest knows\n")
    (result,) = load(warehouse, odd)
    assert result.status == "failed"
    assert result.path == f"{tmp_path}/notes\\nfor\\tQ3\\x1b.txt"
    assert "\n" not in result.message and result.message.startswith(result.path + ": not a recognized export")
    assert rows(warehouse, "SELECT file_path FROM ingest_runs") == [(result.path,)]


def test_a_csv_whose_first_column_is_named_st_is_not_taken_for_x12(warehouse: Warehouse, tmp_path: Path) -> None:
    lines = (FIXTURES / "portal" / "portal_messages.csv").read_text().splitlines()
    export = tmp_path / "portal_by_state.csv"
    export.write_text("\n".join(["ST," + lines[0], *("NY," + line for line in lines[1:])]) + "\n")
    (result,) = load(warehouse, export)
    assert (result.status, result.adapter, result.inserted) == ("succeeded", "csv:portal_messages", 3)


def test_loading_a_file_again_replaces_its_rejects(warehouse: Warehouse) -> None:
    """`--force` used to add a second copy of every reject of the file."""
    vendor = FIXTURES / "vendor" / "north_appointments_2025.csv"
    first = load(warehouse, vendor)[0]
    before = rows(warehouse, "SELECT position, check_name, reason FROM rejects ORDER BY 1, 2")
    again = load(warehouse, vendor, force=True)[0]
    assert rows(warehouse, "SELECT position, check_name, reason FROM rejects ORDER BY 1, 2") == before
    assert rows(warehouse, "SELECT DISTINCT run_id FROM rejects") == [(again.run_id,)] != [(first.run_id,)]
