"""A cached `data.*` answer is kept per Source: another snapshot or another scope never shares its entry."""

from __future__ import annotations

import streamlit as st

from dashboards import data
from kpis.scope import EVERYTHING, Scope


def test_sources_differing_only_in_snapshot_or_scope_get_their_own_cache_entries() -> None:
    asked: list[data.Source] = []

    @data.cached
    def answer(src: data.Source, month: str) -> int:  # what a data.* call does: a value per Source
        asked.append(src)
        return len(asked)

    base = data.Source("/w/clinic_kpis.duckdb", "/w/clinic-kpis.toml", 1_000, EVERYTHING)
    eastside = Scope.of_locations(["east", "north"], label="Eastside's manager")
    others = [
        base._replace(version=1_001),  # the next published snapshot
        base._replace(db="/v/clinic_kpis.duckdb"),
        base._replace(config=None),
        base._replace(scope=eastside),
        base._replace(scope=Scope.of_locations(["east"], label="Eastside's manager")),
        base._replace(scope=Scope(small_cells=False)),  # a viewer: small cells withheld
        base._replace(scope=Scope(records=False)),
        base._replace(scope=Scope(label="another reader")),
    ]
    try:
        first = answer(base, "2026-11")
        assert [answer(src, "2026-11") for src in others] == list(range(2, 2 + len(others)))
        assert asked == [base, *others]
        again = base._replace(scope=Scope.of_locations(["north", "east"], label="Eastside's manager"))
        assert answer(base, "2026-11") == first and answer(again, "2026-11") == others.index(again) + 2
        assert answer(base, "2026-10") == len(others) + 2  # the other arguments still count
    finally:
        st.cache_data.clear()
