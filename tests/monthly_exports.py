"""A simulated practice's exports cut into monthly exports, as a practice that loads every month has them.

Each FHIR resource, CSV row and queue_log call goes to the month of its date (the directory
resources, Practitioner, Location, ..., into every month, as each month's bulk export holds them);
the 837/835 files are monthly already. The `monthly_practice` fixture
(tests/conftest.py) makes one; the tests of incremental refresh and of readers during a load use it.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("America/New_York")
MONTHS = ("2026-06", "2026-07", "2026-08", "2026-09")
SAMPLE = ("--months", "4", "--providers", "6", "--scale", "0.5", "--end", "2026-09-30", "--seed", "11")
DIRECTORY = {"Practitioner", "Location", "Organization", "Schedule", "Patient"}  # every month's export has them
FHIR_MONTH: dict[str, Callable[[dict], str]] = {
    "Appointment": lambda r: r["start"],
    "Encounter": lambda r: r["period"]["start"],
    "Slot": lambda r: r["start"],
    "ServiceRequest": lambda r: r["authoredOn"],
    "Task": lambda r: r["authoredOn"],
    "DocumentReference": lambda r: r["date"],
}
CSV_MONTH: dict[str, Callable[[dict], str]] = {
    "north_appointments": lambda r: datetime.strptime(r["Appt Date"], "%m/%d/%Y").strftime("%Y-%m"),
    "portal_messages": lambda r: r["received_at"][:7],
    "north_transactions": lambda r: r["POSTDATE"][:7],
    "patient_payments": lambda r: r["POSTDATE"][:7],
}


def month_of_instant(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(TZ).strftime("%Y-%m")


def month_of(find: Callable[[dict], str], record: dict, instant: bool) -> str:
    """The month a record is exported in; a record without a usable date (the simulator writes a few
    broken ones, which ingest rejects) goes with the first month."""
    try:
        text = find(record)
        return month_of_instant(text) if instant else text
    except (KeyError, ValueError, TypeError):
        return MONTHS[0]


def split_by_month(exports: Path, out: Path) -> dict[str, list[Path]]:
    """Monthly export folders out/<YYYY-MM>/... cut from whole-period exports."""
    files: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))  # month -> relative path -> lines
    for path in sorted(exports.rglob("*")):
        rel = path.relative_to(exports).as_posix()
        if not path.is_file() or path.suffix in (".json", ".md"):
            continue
        if path.suffix in (".837", ".835"):
            files[path.stem.rsplit("_", 1)[1]][rel] = [path.read_text(encoding="utf-8")]
        elif path.suffix == ".ndjson":
            for line in path.read_text(encoding="utf-8").splitlines():
                resource = json.loads(line)
                kind = resource["resourceType"]
                targets = MONTHS if kind in DIRECTORY else [month_of(FHIR_MONTH[kind], resource, instant=True)]
                for month in targets:
                    files[month][rel].append(line + "\n")
        elif path.name == "queue_log":
            calls: dict[str, str] = {}
            for line in path.read_text(encoding="utf-8").splitlines():
                epoch, call = line.split("|")[:2]
                month = calls.setdefault(call, datetime.fromtimestamp(int(epoch), UTC).astimezone(TZ).strftime("%Y-%m"))
                files[month][rel].append(line + "\n")
        elif path.suffix == ".csv":
            name = next(k for k in CSV_MONTH if path.stem.startswith(k))
            reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
            for row in reader:
                buffer = files[month_of(CSV_MONTH[name], row, instant=False)].setdefault(f"{rel}.rows", [])
                buffer.append(row)
            for month in MONTHS:
                rows = files[month].pop(f"{rel}.rows", [])
                if rows:
                    text = io.StringIO()
                    writer = csv.DictWriter(text, fieldnames=reader.fieldnames, lineterminator="\r\n")
                    writer.writeheader()
                    writer.writerows(rows)
                    files[month][rel] = [text.getvalue()]
    written: dict[str, list[Path]] = {}
    for month, contents in files.items():
        assert month in MONTHS, f"a record dated {month}, outside the simulated months"
        for rel, lines in contents.items():
            target = out / month / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(lines), encoding="utf-8")
            written.setdefault(month, []).append(target)
    return written
