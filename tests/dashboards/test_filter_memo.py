"""What the dashboard keeps between filter changes is its published snapshot's: a publish shows the new data.

A filter change is answered from what the open snapshot keeps (the scorecard and the movers' rows
per filter, which claims have remittances, the sidebar's option labels): all of it must go with
the snapshot when a load publishes the next one, or a filter asked before would show old values.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dashboards.filters import option_labels
from kpis.config import load_config
from kpis.formatting import format_value
from tests.conftest import SimulatedPractice
from tests.dashboards.conftest import Window
from tests.dashboards.test_pages import expected_tiles, no_errors, shown_tiles, what_changed


def test_a_filter_asked_before_a_publish_shows_the_published_data(
    open_app: Callable, practice: SimulatedPractice, window: Window, tmp_path: Path
) -> None:
    shutil.copy(practice.db, tmp_path / "clinic_kpis.duckdb")
    shutil.copy(practice.config, tmp_path / "clinic-kpis.toml")
    config = load_config(tmp_path / "clinic-kpis.toml")
    copy = dataclasses.replace(practice, db=config.db_path, config=config.path)
    with copy.open() as wh:
        busiest = wh.compute("no_show_rate", start=window.month, end=window.end, by="provider")
        provider, other = busiest.sort_values(["denominator", "provider"], ascending=False)["provider"].iloc[:2]
        labels = option_labels(wh.dimension_values("provider"))  # id -> what the sidebar shows
    at = open_app(config.db_path, config.path)
    at.multiselect(key="provider").set_value([labels[provider]]).run()
    at.multiselect(key="provider").set_value([labels[other]]).run()
    at.multiselect(key="provider").set_value([labels[provider]]).run()  # asked twice: kept by the snapshot
    no_errors(at)
    before = shown_tiles(at)
    assert before == expected_tiles(copy, window, {"provider": (provider,)})

    writer = (
        "import sys; from kpis import Warehouse\n"
        "with Warehouse.writing(config=sys.argv[1]) as store, store.transaction() as cur:\n"
        "    cur.execute(\"UPDATE appointments SET status = 'noshow' WHERE status IN ('fulfilled', 'arrived') \"\n"
        '                "AND provider_id = ?", [sys.argv[2]])\n'
    )
    command = [sys.executable, "-c", writer, str(config.path), provider]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    at.multiselect(key="provider").set_value([labels[other]]).run()
    at.multiselect(key="provider").set_value([labels[provider]]).run()
    no_errors(at)
    after = shown_tiles(at)
    assert after["No-show rate"][0] == format_value(1.0, "pct1") != before["No-show rate"][0]
    assert after == expected_tiles(copy, window, {"provider": (provider,)})
    assert list(at.multiselect(key="provider").options) == list(labels.values())
    with copy.open() as wh:
        moves = wh.movers(window.month, filters={"provider": (provider,)})
    assert [bullet.split("**")[1] for bullet in what_changed(at)] == [move.title for move in moves]


def test_after_a_first_render_the_warm_objects_are_frozen_out_of_full_collections(
    open_app: Callable, practice: SimulatedPractice
) -> None:
    """A warm server's millions of long-lived objects are moved out of the cyclic collector's
    walks once the app has rendered (dashboards.data.freeze_warm_objects): at 10 M appointments a
    full collection during a filter change cost 0.05-0.2 s of it."""
    at = open_app(practice.db, practice.config)
    no_errors(at)
    assert gc.get_freeze_count() > 100_000
