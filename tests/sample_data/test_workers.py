"""The work splits over processes without changing a byte, and the split itself is sound."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from sample_data.parts import PARTS_DIR
from sample_data.practice import Params, build_practice
from sample_data.shards import groups, plan
from sample_data.simulate import simulate
from sample_data.workers import run_group
from tests.cli_helpers import run_cli
from tests.sample_data.conftest import SMALL, digests


def test_two_workers_write_the_same_bytes_as_one(small: Path, tmp_path: Path) -> None:
    summary = simulate(SMALL, tmp_path / "two", workers=2)
    assert not (tmp_path / "two" / PARTS_DIR).exists()
    ours, reference = digests(tmp_path / "two"), digests(small)
    assert len(ours) > 20 and ours == reference
    assert summary.files == {rel: len((small / rel).read_bytes().splitlines()) for rel in reference}


def test_shards_are_dealt_by_cost_and_cover_the_practice_once() -> None:
    practice = build_practice(Params(scale=10))
    specs = plan(practice)
    assert [s.kind for s in specs] == ["location", "location", "location", "phones"]
    for count in (1, 2, 3, 8):
        dealt = groups(specs, count)
        assert len(dealt) == min(count, len(specs))
        assert sorted(s.index for group in dealt for s in group) == [s.index for s in specs]
    two = groups(specs, 2)
    loads = sorted(sum(s.cost for s in group) for group in two)
    assert loads[1] <= 0.6 * sum(s.cost for s in specs)  # neither process carries much more than half


def test_records_form_no_reference_cycles(tmp_path: Path) -> None:
    """Steps run with the cyclic collector paused; that is only safe while refcounting frees everything."""
    params = Params(seed=3, months=2, providers=3)
    practice = build_practice(params)
    gc.collect()
    gc.disable()
    try:
        run_group(practice, tmp_path, plan(practice), lambda k, parts: None)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_workers_option_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "sample", "--out", str(tmp_path / "x"), "--workers", "0")
    assert res.code == 1 and "--workers must be at least 1" in res.err and res.err.count("\n") == 1
