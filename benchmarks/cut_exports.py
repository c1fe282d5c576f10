"""`python -m benchmarks.cut_exports`: cut a simulated practice's exports by date, as practices receive them.

The simulator writes whole-period exports (one FHIR file per resource type, one queue_log, yearly
vendor CSVs) and monthly X12 files. A practice that loads every month, or every day, has an
export per month or per day. This cuts them: each FHIR resource, CSV row and queue_log call goes
to the bucket of its local date (a call by its first event), the directory resources
(Practitioner, Location, ...) to every bucket, as each bulk export holds them, and each 837/835
file to the bucket of its month's first day. A record without a usable date (the simulator
writes a few broken ones, which ingest rejects) goes to the first bucket. The practice's
`change_log.csv` is not an export ingest loads (`clinic-kpis changes import` reads it): it is
left out.

    python -m benchmarks.cut_exports bench-work/1m/exports bench-work/1m-cut --day 2026-10-30

writes `base/` (everything before the day) and `day/` (that day): the benchmark loads the first,
then times loading the second (`--day`). The tests cut months (`by_month`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

Bucket = Callable[[date], str | None]  # a local date -> the bucket it goes to (None: left out)

DIRECTORY = {"Practitioner", "Location", "Organization", "Schedule"}  # Patient: ignored by ingest
NOT_EXPORTS = {"change_log.csv"}  # the practice's log of process changes, read by `changes import`
FHIR_DATE: dict[str, Callable[[dict], str]] = {
    "Appointment": lambda r: r["start"],
    "Encounter": lambda r: r["period"]["start"],
    "Slot": lambda r: r["start"],
    "ServiceRequest": lambda r: r["authoredOn"],
    "Task": lambda r: r["authoredOn"],
    "DocumentReference": lambda r: r["date"],
}
CSV_DATE: dict[str, Callable[[dict], date]] = {
    "north_appointments": lambda r: datetime.strptime(r["Appt Date"], "%m/%d/%Y").date(),
    "portal_messages": lambda r: datetime.fromisoformat(r["received_at"]).date(),
    "north_transactions": lambda r: date.fromisoformat(r["POSTDATE"]),
    "north_claims": lambda r: datetime.fromisoformat(r["SERVICEDATE"]).date(),  # Synthea claims.csv
    "patient_payments": lambda r: date.fromisoformat(r["POSTDATE"]),
}


def by_month(months: Sequence[str]) -> Bucket:
    """Buckets named YYYY-MM."""
    return lambda day: day.strftime("%Y-%m") if day.strftime("%Y-%m") in months else None


def at_day(cut: date) -> Bucket:
    """`base` before the day, `day` on it, nothing after it."""
    return lambda day: "base" if day < cut else "day" if day == cut else None


def cut_exports(
    exports: Path, out: Path, bucket: Bucket, buckets: Sequence[str], timezone: str
) -> dict[str, list[Path]]:
    """Write out/<bucket>/<the export's own relative path> for every bucket; the files written, by bucket."""
    tz = ZoneInfo(timezone)
    written: dict[str, list[Path]] = {}
    with ExitStack() as stack:
        handles: dict[tuple[str, str], IO[str]] = {}

        def target(name: str, rel: str, header: str = "") -> IO[str]:
            if (name, rel) not in handles:
                path = out / name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                handles[(name, rel)] = stack.enter_context(open(path, "w", encoding="utf-8", newline=""))
                handles[(name, rel)].write(header)
                written.setdefault(name, []).append(path)
            return handles[(name, rel)]

        def local(text: str) -> date:
            return datetime.fromisoformat(text).astimezone(tz).date()

        fhir_day = {kind: (lambda r, find=find: local(find(r))) for kind, find in FHIR_DATE.items()}

        exported = (p for p in exports.rglob("*") if p.is_file() and p.suffix not in (".json", ".md"))
        for path in sorted(p for p in exported if p.name not in NOT_EXPORTS):
            rel = path.relative_to(exports).as_posix()
            if path.suffix in (".837", ".835"):
                name = bucket(date.fromisoformat(path.stem.rsplit("_", 1)[1] + "-01"))
                if name is not None:
                    target(name, rel).write(path.read_text(encoding="utf-8"))
            elif path.suffix == ".ndjson":
                for line in _lines(path):
                    resource = json.loads(line)
                    kind = resource["resourceType"]
                    if kind in DIRECTORY:
                        names = buckets
                    elif kind in fhir_day:
                        names = [_dated(bucket, buckets, fhir_day[kind], resource)]
                    else:  # Patient: ingest ignores it; the first export holds it
                        names = [buckets[0]]
                    for name in names:
                        if name is not None:
                            target(name, rel).write(line)
            elif path.name == "queue_log":
                calls: dict[str, str | None] = {}
                for line in _lines(path):
                    epoch, call = line.split("|")[:2]
                    if call not in calls:
                        day = datetime.fromtimestamp(int(epoch), UTC).astimezone(tz).date()
                        calls[call] = bucket(day)
                    if calls[call] is not None:
                        target(calls[call], rel).write(line)
            elif path.suffix == ".csv":
                find = next(f for prefix, f in CSV_DATE.items() if path.stem.startswith(prefix))
                with open(path, encoding="utf-8", newline="") as source:
                    header = source.readline()
                    for row in csv.DictReader(source, fieldnames=next(csv.reader([header]))):
                        name = _dated(bucket, buckets, find, row)
                        if name is not None:
                            csv.writer(target(name, rel, header), lineterminator="\r\n").writerow(row.values())
    return written


def _dated(bucket: Bucket, buckets: Sequence[str], find: Callable[[dict], date], record: dict) -> str | None:
    try:
        return bucket(find(record))
    except (KeyError, ValueError, TypeError):
        return buckets[0]


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as source:
        for line in source:
            yield line if line.endswith("\n") else line + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cut_exports", description=__doc__.split("\n\n")[0])
    parser.add_argument("exports", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--day", type=date.fromisoformat, required=True, help="The day to cut out (YYYY-MM-DD).")
    parser.add_argument("--timezone", default="America/New_York")
    args = parser.parse_args(argv)
    written = cut_exports(args.exports, args.out, at_day(args.day), ("base", "day"), args.timezone)
    for name, files in written.items():
        print(f"{name}: {len(files)} files", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
