"""Friction costs: every figure recomputed by hand from the numbers the ranking prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpis import Warehouse
from kpis.config import COST_SETTINGS, load_config
from kpis.errors import ConfigError
from tests.conftest import SIMULATED_CONFIG, SimulatedPractice


def _assumption(row, name: str) -> float:
    return next(a["value"] for a in row["assumptions"] if a["name"] == name)


def test_every_figure_of_the_ranking_is_reproducible_by_hand(simulated_practice: SimulatedPractice) -> None:
    with simulated_practice.open() as wh:
        costs = wh.friction_costs()
        month = costs["period_start"].iloc[0].date()
        computed = {kpi: wh.compute(kpi, start=month, end=month).iloc[0] for kpi in costs["kpi_id"]}
        paid = (
            wh.cursor()
            .execute(
                "SELECT SUM(paid_amount) / COUNT(DISTINCT claim_id) FILTER (WHERE status = 'paid') FROM remittances "
                "WHERE paid_date >= ? - INTERVAL 11 MONTH AND paid_date < ? + INTERVAL 1 MONTH",
                [month, month],
            )
            .fetchone()[0]
        )
    assert set(costs["kpi_id"]) == {
        "no_show_rate",
        "denial_rate",
        "call_abandonment_rate",
        "days_in_ar",
        "visit_cycle_time",
    }
    money = costs["money"].astype(float).fillna(-1).tolist()
    assert money == sorted(money, reverse=True)  # costliest first
    for row in costs.to_dict(orient="records"):
        kpi, result = row["kpi_id"], computed[row["kpi_id"]]
        assert row["value"] == pytest.approx(result["value"]) and row["target"] == pytest.approx(result["target"])
        if not row["complete"]:
            assert row["money"] is None and "not complete" in row["note"]
            continue
        assert row["gap"] == pytest.approx(max(row["value"] - row["target"], 0.0))  # all five: lower is better
        volume = result["n"] if kpi == "visit_cycle_time" else result["denominator"]
        assert row["volume"] == pytest.approx(volume)
        assert row["excess"] == pytest.approx(row["gap"] * row["volume"])
        assert (row["note"] == "on target: its gap costs nothing") == (row["gap"] == 0)
        if kpi == "no_show_rate":
            assert _assumption(row, "visit_value") == pytest.approx(float(paid))
            assert row["money"] == pytest.approx(row["excess"] * _assumption(row, "visit_value"))
            assert row["staff_hours"] == pytest.approx(row["excess"] * 10 / 60)
        elif kpi == "denial_rate":
            assert row["money"] == pytest.approx(row["excess"] * 118.0)
            assert row["staff_hours"] == pytest.approx(row["excess"] * 30 / 60)
        elif kpi == "call_abandonment_rate":
            share = _assumption(row, "booking_share")
            assert 0 < share <= 1
            assert row["money"] == pytest.approx(row["excess"] * share * _assumption(row, "visit_value"))
        elif kpi == "days_in_ar":
            assert row["money"] == pytest.approx(row["excess"] * 0.075 / 12)
        else:
            assert row["staff_hours"] == pytest.approx(row["excess"] / 60)
            assert row["money"] == pytest.approx(row["staff_hours"] * 20.84)
        assert f"{row['volume']:,.0f}" in row["formula"] or f"${row['volume']:,.2f}" in row["formula"]
        assert f"${row['money']:,.2f}" in row["formula"]
        for assumption in row["assumptions"]:
            assert assumption["source"] and assumption["unit"]


def test_the_practice_overrides_an_assumption_in_its_config(
    simulated_practice: SimulatedPractice, tmp_path: Path
) -> None:
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(SIMULATED_CONFIG + "\n[costs]\nvisit_value = 100\ndenial_rework_cost = 25.5\n", encoding="utf-8")
    cfg = load_config(config, db=simulated_practice.db)
    with Warehouse.open(config=cfg, read_only=True) as wh:
        costs = wh.friction_costs().set_index("kpi_id")
    no_show = costs.loc["no_show_rate"]
    value = next(a for a in no_show["assumptions"] if a["name"] == "visit_value")
    assert value["value"] == 100 and value["source"] == "the practice's config [costs]"
    if no_show["complete"]:
        assert no_show["money"] == pytest.approx(no_show["excess"] * 100)
    denial = costs.loc["denial_rate"]
    assert next(a for a in denial["assumptions"] if a["name"] == "denial_rework_cost")["value"] == 25.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("visit_valu = 3", "unknown key(s) visit_valu"),
        ("booking_share = 1.5", "booking_share is a share between 0 and 1"),
        ("cost_of_capital = -0.1", "cost_of_capital must be a number >= 0"),
        ('booking_queues = "appointments"', "booking_queues must be a list of queue names"),
    ],
)
def test_bad_cost_settings_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "clinic-kpis.toml"
    config.write_text(f"[costs]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config)


def test_every_default_names_its_source() -> None:
    for name, setting in COST_SETTINGS.items():
        assert setting.source and setting.unit, name
