"""Run the simulation: shards in parallel, their parts assembled into the exports, the truth merged.

The practice splits into shards that share no events (each location, and the phones;
`shards.py`). Every shard steps through the run month by month, streaming its exports into
part files that the assembler appends to the export files in a fixed order (`parts.py`),
and keeping its own ground-truth tallies, which are added together at the end. The output
is therefore byte-identical for a seed whatever the number of worker processes, and memory
stays bounded by a month's work per shard whatever the scale.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sample_data import shards
from sample_data.changes import CHANGE_LOG, write_change_log
from sample_data.clock import add_months
from sample_data.parts import Assembler, PartInfo
from sample_data.practice import Params, Practice, build_practice
from sample_data.truth import Truth
from sample_data.workers import run as run_shards
from sample_data.writers.csv_files import CSV_HEADERS
from sample_data.writers.fhir import RESOURCE_TYPES, Fhir
from sample_data.writers.fhir import path as fhir_path
from sample_data.writers.queue_log import PATH as QUEUE_LOG

Progress = Callable[[str, int, int], None]  # (label, steps done, steps in all)


@dataclass
class Summary:
    """What a run wrote, for the command's closing report."""

    out: Path
    files: dict[str, int] = field(default_factory=dict)  # relative path -> lines
    appointments: int = 0
    claims: int = 0
    calls: int = 0


def default_workers() -> int:
    return os.cpu_count() or 1


def simulate(params: Params, out: Path, progress: Progress | None = None, workers: int = 1) -> Summary:
    """Simulate `params` into the directory `out` (created if missing) and return what was written.

    `workers` processes share the work (1: all in this process); the files do not depend on it.
    Workers are spawned, so a script that asks for more than one must call this under
    `if __name__ == "__main__":` (the multiprocessing rule for every start method but fork).
    """
    out.mkdir(parents=True, exist_ok=True)
    practice = build_practice(params)
    assembler = Assembler(out, practice.clock)
    _start_exports(assembler, practice)
    steps = params.months + 1

    def on_step(k: int, parts: dict[int, dict[str, PartInfo]]) -> None:
        assembler.step(k, parts)
        if progress is not None:
            progress(f"{add_months(params.start, k):%Y-%m}" if k < params.months else "finishing", k + 1, steps)

    try:
        groups = shards.groups(shards.plan(practice), workers)
        results = run_shards(practice, assembler.parts, groups, on_step)
    finally:
        assembler.close()
    summary = Summary(out, files=dict(sorted(assembler.lines.items())))
    truth = Truth(practice)
    rejects = {rel: 0 for rel in summary.files}
    updates: dict[str, int] = {}
    for index in sorted(results):
        result = results[index]
        truth.add(result.tallies)
        for rel, n in result.rejects.items():
            rejects[rel] += n
        for rel, n in result.updates.items():
            updates[rel] = updates.get(rel, 0) + n
        summary.appointments += result.appointments
        summary.claims += result.claims
        summary.calls += result.calls
    _write_truth(out, practice, truth, rejects, updates)
    write_change_log(out, practice.changes)
    assumptions = resources.files("sample_data").joinpath("ASSUMPTIONS.md").read_text(encoding="utf-8")
    (out / "ASSUMPTIONS.md").write_text(assumptions, encoding="utf-8")
    for rel in ("truth.json", "ASSUMPTIONS.md", CHANGE_LOG):
        with open(out / rel, "rb") as fh:
            summary.files[rel] = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return summary


def _start_exports(assembler: Assembler, practice: Practice) -> None:
    """Create the files every run has (even when empty), and write the directory resources."""
    for kind in RESOURCE_TYPES:
        assembler.create(fhir_path(kind))
    for rel in [*(r for r in CSV_HEADERS if "*" not in r), QUEUE_LOG]:
        assembler.create(rel)
    for kind, lines in Fhir(practice).directory().items():
        assembler.write(fhir_path(kind), "".join(lines))


def _write_truth(out: Path, practice: Practice, truth: Truth, rejects: dict[str, int], updates: dict[str, int]) -> None:
    p = practice.params
    document = {
        "meta": {
            "seed": p.seed,
            "start": p.start.isoformat(),
            "end": p.end.isoformat(),
            "timezone": p.timezone,
            "months": p.months,
            "scale": p.scale,
            "providers": p.n_providers,
            "locations": [loc.code for loc in practice.locations],
            "process_change": {
                "location": "EAST",
                "date": p.process_change.isoformat(),
                "what": "reminder calls start",
            },
            "changes": [change.truth() for change in practice.changes],
            "notes": {
                "days_in_ar": "value = numerator / denominator; numerator = A/R at month end, "
                "denominator = average daily adjusted charges of the 365 days ending that day",
                "medians": "numerator and denominator are null; n counts the values",
                "complete": "referral_completion_rate months whose end + 90 days is after meta.end are incomplete",
            },
        },
        "kpis": truth.rows(),
        "rejects": dict(sorted(rejects.items())),
        "updates": dict(sorted(updates.items())),
        "realism": truth.realism_summary(),
    }
    text = json.dumps(document, sort_keys=True, indent=1, separators=(",", ": "))
    (out / "truth.json").write_text(text + "\n", encoding="utf-8")
