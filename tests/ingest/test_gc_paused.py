"""Ingest pauses CPython's cyclic garbage collector for each file, and always resumes it.

Why: the pause roughly halves the parse time of large files (ingest/run.py says why), but a
collector left off after a failed file would make every later allocation-heavy step of the
process (a dashboard, a notebook) grow without bound.
"""

from __future__ import annotations

import gc

import pytest

from ingest.load import Loader
from kpis.warehouse import Warehouse
from tests.ingest.conftest import FIXTURES, load


def test_the_collector_is_paused_while_a_file_loads_and_resumed_after_a_crash(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply = Loader._apply
    enabled_while_loading: list[bool] = []

    def apply_then_crash(self: Loader, target, n, run_id, outcomes):  # noqa: ANN001, ANN202
        enabled_while_loading.append(gc.isenabled())
        real_apply(self, target, n, run_id, outcomes)
        if target.table == "claim_lines":
            raise RuntimeError("simulated crash")

    assert gc.isenabled()
    monkeypatch.setattr(Loader, "_apply", apply_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        load(warehouse, FIXTURES / "x12" / "claims_2025-03.837")
    assert enabled_while_loading == [False, False]
    assert gc.isenabled()
    monkeypatch.setattr(Loader, "_apply", real_apply)
    assert load(warehouse, FIXTURES / "x12" / "claims_2025-03.837")[0].status == "succeeded"
    assert gc.isenabled()
