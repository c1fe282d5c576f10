"""all_results: every KPI for the practice, each location and each provider, in truth.json's shape."""

from __future__ import annotations

import pandas as pd

from kpis.results import COLUMNS, all_results
from tests.kpis.builder import P1, P2, Fixture
from tests.kpis.test_phones import calls


def test_all_results_match_separate_computations(fx: Fixture) -> None:
    fx.add(
        "appointments",
        {"scheduled_start": "2026-10-05 09:00", "status": "noshow"},
        {"scheduled_start": "2026-10-06 09:00", "status": "fulfilled", "provider_id": P2, "location_id": "WEST"},
        {"scheduled_start": "2026-10-07 09:00", "status": "fulfilled"},
    )
    calls(fx)
    frame = all_results(fx.wh, start="2026-10", end="2026-10")
    assert list(frame.columns) == COLUMNS
    assert set(frame["kpi_id"]) == {s.id for s in fx.wh.catalog()}
    no_show = frame[frame["kpi_id"] == "no_show_rate"].set_index(["dimension", "dimension_value"], drop=False)
    assert no_show.loc[(None, None), "value"].item() == 1 / 3
    assert no_show.loc[("location", "EAST"), "value"].item() == 0.5
    assert no_show.loc[("provider", P2), "value"].item() == 0
    assert no_show.loc[("provider", P1), "n"].item() == 2
    phones = frame[frame["kpi_id"] == "call_abandonment_rate"]
    assert set(phones["dimension"].dropna()) == {"location"}  # phones are not cut by provider
    total = phones[phones["dimension"].isna()]
    assert (total["numerator"].item(), total["denominator"].item()) == (3, 6)
    separate = fx.wh.compute("denial_rate", start="2026-10", end="2026-10", by="provider")
    mine = frame[(frame["kpi_id"] == "denial_rate") & (frame["dimension"] == "provider")]
    assert sorted(mine["dimension_value"]) == sorted(separate["provider"])
    assert pd.api.types.is_datetime64_any_dtype(frame["period_start"])
