"""Same seed, same bytes; another seed, other data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sample_data.simulate import simulate
from tests.sample_data.conftest import SMALL, digests


def test_same_seed_gives_identical_files(small: Path, tmp_path: Path) -> None:
    simulate(SMALL, tmp_path / "again")
    first, second = digests(small), digests(tmp_path / "again")
    assert len(first) > 20
    assert first == second


def test_other_seed_gives_other_data(small: Path, tmp_path: Path) -> None:
    simulate(replace(SMALL, seed=SMALL.seed + 1), tmp_path / "other")
    first, other = digests(small), digests(tmp_path / "other")
    for name in (
        "fhir/Appointment.ndjson",
        "fhir/Patient.ndjson",
        "phones/queue_log",
        "truth.json",
        "billing/north_transactions.csv",
    ):
        assert first[name] != other[name], name
