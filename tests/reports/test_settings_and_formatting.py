"""The [report] config table, the small-cell rule and how numbers are written."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kpis import privacy
from kpis.comparison import Driver, Move
from kpis.config import load_config
from kpis.errors import ConfigError
from reports import narrative
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
    # a rate over 11 or more records is withheld too when its numerator counts 1 to 10 records
    assert [privacy.withheld(45, num, True) for num in (0, 9, 11)] == [False, True, False]
    assert privacy.withheld(45, 9.5, False) is False  # a sum of amounts or durations is no count
    assert privacy.withheld(5, 0, True) is True


def test_the_small_cell_rule_over_arrays_withholds_what_it_withholds_one_value_at_a_time() -> None:
    edges = [0.0, 1.0, 9.5, 10.0, 10.5, 11.0, 45.0, float("nan")]
    pairs = [(n, num) for n in edges for num in edges]
    n, numerator = (np.array(column) for column in zip(*pairs, strict=True))
    for counts in (True, False):
        expected = [privacy.withheld(a, b, counts) for a, b in pairs]
        assert privacy.withheld_rows(n, numerator, counts).tolist() == expected
        mixed = np.array([counts, not counts] * (len(pairs) // 2))  # each row its own KPI's rule
        assert privacy.withheld_rows(n, numerator, mixed).tolist() == [
            privacy.withheld(a, b, bool(c)) for (a, b), c in zip(pairs, mixed, strict=True)
        ]
    assert sum(privacy.withheld_rows(n, numerator, True)) == 48  # n in 1-10.5 (4 x 8), else a numerator in it (4 x 4)


def test_a_driver_larger_than_the_whole_change_is_said_so() -> None:
    row = SimpleNamespace(id="no_show_rate", title="No-show rate", unit="percent", fmt="pct1", period=date(2026, 10, 1))
    west = Driver(
        dimension="location", segment="WEST", label="Westside", value_before=0.08, value_after=0.05, change=-0.03,
        contribution=-0.012, share=-0.012 / -0.007, outweighs=True,
    )  # fmt: skip
    move = Move(
        kpi_id="no_show_rate", title="No-show rate", period=date(2026, 10, 1), before=date(2026, 9, 1), value=0.060,
        previous=0.067, change=-0.007, effect="better", move=0.23, scale_basis="band", dimension="location",
        decomposable=True, drivers=(west,), note="",
    )  # fmt: skip
    ctx = SimpleNamespace(month=date(2026, 10, 1), row=lambda kpi_id: row)
    assert narrative._move(move, ctx) == (
        "No-show rate fell to 6.0%, down 0.7 points from September, "
        "driven by Westside (1.2 points, more than the whole change)."
    )


def test_a_driver_whose_part_rounds_to_nothing_is_given_as_its_share() -> None:
    """A 1-second rise driven 0.4 s by a queue was "0 of the 1 second": the share says it."""
    row = SimpleNamespace(id="average_speed_of_answer", title="Average speed of answer", unit="seconds", fmt="num0",
                          period=date(2026, 9, 1))  # fmt: skip
    queue = Driver(
        dimension="queue", segment="appointments", label="appointments", value_before=4.1, value_after=5.0, change=0.9,
        contribution=0.4, share=0.4 / 0.6, outweighs=False,
    )  # fmt: skip
    move = Move(
        kpi_id=row.id, title=row.title, period=date(2026, 9, 1), before=date(2026, 8, 1), value=5.2, previous=4.6,
        change=0.6, effect="worse", move=0.1, scale_basis="band", dimension="queue", decomposable=True,
        drivers=(queue,), note="",
    )  # fmt: skip
    ctx = SimpleNamespace(month=date(2026, 9, 1), row=lambda kpi_id: row)
    assert narrative._move(move, ctx) == (
        "Average speed of answer rose to 5 s, up 1 second from August, driven by the appointments queue "
        "(67% of the change)."
    )
