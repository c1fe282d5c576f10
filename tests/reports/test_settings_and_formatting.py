"""The [report] config table, the small-cell rule and how numbers are written."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from kpis import privacy
from kpis.config import load_config
from kpis.errors import ConfigError
from reports import formatting, narrative
from reports.context import Driver, KpiRow, Mover
from reports.settings import ReportSettings, report_settings


def settings(tmp_path: Path, text: str) -> ReportSettings:
    path = tmp_path / "clinic-kpis.toml"
    path.write_text(text, encoding="utf-8")
    return report_settings(load_config(path))


def test_recipients_per_scope_and_paper(tmp_path: Path) -> None:
    got = settings(
        tmp_path, '[report]\nrecipients = { practice = ["a@x.org", "b@x.org"], EAST = "e@x.org" }\npaper = "A4"\n'
    )
    assert got == ReportSettings(recipients={"practice": ("a@x.org", "b@x.org"), "EAST": ("e@x.org",)}, paper="a4")
    assert settings(tmp_path, "") == ReportSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[report]\nrecipent = ["a@x.org"]\n', r"\[report\]: unknown key\(s\) recipent; known: recipients, paper"),
        ('[report]\npaper = "legal"\n', r"\[report\] paper must be one of letter, a4, got 'legal'"),
        ('[report]\nrecipients = ["a@x.org"]\n', r"\[report\] recipients must be a table"),
        ('[report]\nrecipients = { practice = ["Ann <a@x.org>"] }\n', r"recipients.practice: 'Ann <a@x.org>' is not"),
        ("[report]\nrecipients = { EAST = 3 }\n", r"recipients.EAST must be a list of email addresses"),
    ],
)
def test_config_mistakes_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        settings(tmp_path, text)
    assert str(tmp_path / "clinic-kpis.toml") in str(caught.value)


def test_counts_from_one_to_ten_are_withheld() -> None:
    assert [privacy.count(n) for n in (0, 1, 10, 11, 12_345)] == [0, "<11", "<11", 11, 12_345]
    assert privacy.count(float("nan")) is None and privacy.count(None) is None
    assert [privacy.is_small(n) for n in (0, 1, 10, 11, None)] == [False, True, True, False, False]
    assert [formatting.count(c) for c in (0, "<11", 12_345, None)] == ["0", "<11", "12,345", "—"]


def test_values_and_changes_in_the_kpis_units() -> None:
    assert formatting.value(0.1423, "pct1", "percent") == "14.2%"
    assert formatting.value(46.26, "num1", "days") == "46.3 days"
    assert formatting.value(None, "pct1", "percent") == "—"
    assert formatting.value(31.0, "num0", "minutes") == "31 min"
    assert formatting.change(0.021, "pct1", "percent") == "+2.1 pts"
    assert formatting.change(-0.021, "pct1", "percent") == "−2.1 pts"
    assert formatting.change(0.0004, "pct1", "percent") == "±0.0 pts"
    assert formatting.change(0.021, "pct1", "percent", words=True) == "2.1 points"
    assert formatting.change(-1.0, "num0", "seconds", words=True) == "1 second"
    assert formatting.change(2.0, "num0", "seconds", words=True) == "2 seconds"
    assert formatting.change(-1234.6, "usd0", "currency") == "−$1,235"


def test_a_driver_larger_than_the_whole_change_is_said_so() -> None:
    row = KpiRow(
        id="no_show_rate", title="No-show rate", domain="access", unit="percent", fmt="pct1", better="lower",
        headline=True, period=date(2026, 10, 1), value=0.060, suppressed=False, provisional=False, previous=0.067,
        change_month=-0.007, change_year=None, month_effect="better", year_effect=None, target=0.07,
        status="on_target", definition="no_show_rate",
    )  # fmt: skip
    west = Driver(segment="Westside", value_before=0.08, value_after=0.05, change=-0.03, contribution=-0.012)
    mover = Mover(row=row, before=date(2026, 9, 1), relative=0.1, dimension="location", drivers=(west,))
    ctx = SimpleNamespace(month=date(2026, 10, 1))
    assert narrative._move(mover, ctx) == (
        "No-show rate fell to 6.0%, down 0.7 points from September, "
        "driven by Westside (1.2 points, more than the whole change)."
    )
