"""The public no-show dataset through its profile: all 110,527 rows, and the no-show rate over all
of it equals the share of rows marked No-show = Yes, counted here with the csv module."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from kpis.warehouse import Warehouse
from tests.ingest.conftest import load_one, rows

NAME = "noshow-brazil-kaggle/KaggleV2-May-2016.csv"


def test_kaggle_noshow_rate(warehouse: Warehouse, external: Path) -> None:
    path = external / NAME
    with path.open(newline="", encoding="utf-8") as fh:
        flags = [row["No-show"] for row in csv.DictReader(fh)]
    assert len(flags) == 110_527  # SOURCES.md
    yes = flags.count("Yes")

    result = load_one(warehouse, path)
    assert (result.adapter, result.read, result.inserted, result.rejected) == ("csv:kaggle_noshow", 110_527, 110_527, 0)

    # the contract's no_show_rate: noshow / (fulfilled + arrived + noshow), over the whole dataset
    ((noshow, population),) = rows(
        warehouse,
        "SELECT count(*) FILTER (status = 'noshow'), count(*) FILTER (status IN ('fulfilled', 'arrived', 'noshow')) "
        "FROM appointments WHERE source = 'csv:kaggle_noshow'",
    )
    assert (noshow, population) == (yes, len(flags))
    assert noshow / population == yes / len(flags)
    assert round(noshow / population, 4) == 0.2019  # the dataset's documented 20.19 %

    # each appointment keeps its calendar day in the practice's zone (AppointmentDay is a date)
    assert rows(
        warehouse,
        "SELECT min(CAST(timezone('America/New_York', scheduled_start) AS DATE)), "
        "max(CAST(timezone('America/New_York', scheduled_start) AS DATE)), count(DISTINCT patient_key) "
        "FROM appointments",
    ) == [(date(2016, 4, 29), date(2016, 6, 8), len({row for row in _patient_ids(path)}))]


def _patient_ids(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row["PatientId"] for row in csv.DictReader(fh)]
