"""The table of numbers behind a KPI's charts, as a page shows it and its CSV download gives it."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa

from dashboards.components import numbers_table
from kpis.catalog import shipped_specs

SPEC = shipped_specs()["portal_response_time"]


def _rows(n: list[int], state: list[str], **dims: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period_start": pd.to_datetime(["2026-01-01", "2026-02-01"][: len(n)]),
            "grain": "month",
            "value": [12.5, 30.0][: len(n)],
            "numerator": [250.0, 90.0][: len(n)],
            "denominator": [20.0, 3.0][: len(n)],
            "n": n,
            "state": state,
            "status": "ok",
            "definition": "median",
            "note": "",
            **dims,
        }
    )


def test_a_withheld_count_makes_the_counts_text_that_arrow_takes_and_the_csv_keeps() -> None:
    total = _rows([20, 23], ["final", "final"])
    split = _rows([17, 3], ["final", "small"], location=["EAST", "WEST"])
    table = numbers_table(total, split, SPEC, "location", {"EAST": "East clinic", "WEST": "West clinic"})
    # Streamlit shows a frame through Arrow: a column of numbers and "<11" was refused (a traceback in the log)
    shown = pa.Table.from_pandas(table)
    assert shown.column("n").to_pylist() == ["20", "23", "17", "<11"]
    assert table["value"].tolist()[-1] == "n < 11"
    assert table[["numerator", "denominator"]].iloc[-1].isna().all()  # the counts that give the value back
    download = pd.read_csv(io.StringIO(table.to_csv(index=False)), dtype=str)
    assert download["n"].tolist() == ["20", "23", "17", "<11"]


def test_counts_stay_numbers_when_none_is_withheld() -> None:
    total = _rows([20, 23], ["final", "final"])
    split = _rows([17, 6], ["final", "final"], location=["EAST", "WEST"])
    table = numbers_table(total, split, SPEC, "location", {})
    assert pa.Table.from_pandas(table).column("n").type == pa.int64()
    assert table["n"].tolist() == [20, 23, 17, 6]
