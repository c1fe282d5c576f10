"""Property tests: whatever CSV or queue_log text arrives, ingest either loads it with balanced
counts (every record inserted, updated, unchanged or rejected — and each reject stored) or fails
the file with its one documented error; it never raises anything else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import FileResult, IngestError, ingest_paths
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, rows

VENDOR = FIXTURES / "vendor" / "north_appointments_2025.csv"
HEADER = VENDOR.read_text().splitlines()[0].split(",")
SAMPLE = VENDOR.read_text().splitlines()[1].split(",")
QUEUE_EVENTS = [
    "ENTERQUEUE",
    "CONNECT",
    "COMPLETECALLER",
    "COMPLETEAGENT",
    "ABANDON",
    "EXITWITHTIMEOUT",
    "EXITWITHKEY",
    "EXITEMPTY",
    "TRANSFER",
    "RINGNOANSWER",
    "QUEUESTART",
    "AGENTLOGIN",
    "DID",
]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
field = st.one_of(
    text,
    st.sampled_from(SAMPLE),
    st.sampled_from(["", " ", '"', '""', ",", "\n", "\r\n", "02/30/2025", "13:00 PM", "-5", "1e9", "Cxl", "No Show"]),
)


def check(result: FileResult | None, wh: Warehouse) -> None:
    if result is None:  # ingest raised its documented error type
        return
    if result.status == "failed":
        assert result.message and result.message.startswith(result.path)
        return
    assert result.status == "succeeded"
    assert result.read == result.inserted + result.updated + result.unchanged + result.rejected
    stored = rows(wh, "SELECT rows_read, rows_rejected, status FROM ingest_runs WHERE run_id = ?", result.run_id)
    assert stored == [(result.read, result.rejected, "succeeded")]
    assert rows(wh, "SELECT count(*) FROM rejects WHERE run_id = ?", result.run_id) == [(result.rejected,)]


def ingest(wh: Warehouse, path: Path, fmt: str) -> FileResult | None:
    """The file's result; None if ingest raised IngestError. Any other exception fails the test."""
    try:
        (result,) = ingest_paths(wh, [path], fmt=fmt, force=True)
    except IngestError:
        return None
    return result


@FUZZ
@given(
    columns=st.permutations(HEADER).flatmap(
        lambda h: st.lists(st.sampled_from(h), min_size=1, max_size=len(h), unique=True)
    ),
    body=st.lists(st.lists(field, min_size=0, max_size=26), max_size=8),
    delimiter=st.sampled_from([",", ",", ";"]),
)
def test_fuzzed_vendor_csv(
    warehouse: Warehouse, tmp_path: Path, columns: list[str], body: list[list[str]], delimiter: str
) -> None:
    lines = [delimiter.join(columns)] + [delimiter.join(r) for r in body]
    path = tmp_path / "fuzz.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    check(ingest(warehouse, path, "csv:vendor_appointments"), warehouse)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzzed_bytes_as_csv(warehouse: Warehouse, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bytes.csv"
    path.write_bytes(",".join(HEADER).encode() + b"\n" + data)
    check(ingest(warehouse, path, "csv:vendor_appointments"), warehouse)


queue_line = st.one_of(
    st.builds(
        lambda epoch, uid, queue, agent, event, data: "|".join([str(epoch), uid, queue, agent, event, *data]),
        epoch=st.integers(min_value=-10, max_value=2_000_000_000),
        uid=st.sampled_from(["1.1", "1.2", "2.1", "NONE", ""]),
        queue=st.sampled_from(["appointments", "billing", "NONE", ""]),
        agent=st.sampled_from(["Agent/1", "NONE", ""]),
        event=st.sampled_from(QUEUE_EVENTS),
        data=st.lists(st.one_of(st.integers(min_value=-100, max_value=10**6).map(str), text), max_size=5),
    ),
    text,
)


@FUZZ
@given(lines=st.lists(queue_line, max_size=20))
def test_fuzzed_queue_log(warehouse: Warehouse, tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "queue_log"
    path.write_text("\n".join(lines), encoding="utf-8")
    check(ingest(warehouse, path, "queue-log"), warehouse)
