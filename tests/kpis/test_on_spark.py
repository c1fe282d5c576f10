"""The hand-computed KPI cases again, answered by Spark: the same fixtures, the same expected numbers.

Every test of the modules below is collected here a second time. While they run, each
`Fixture` (tests/kpis/builder.py) exports its warehouse as Parquet before every KPI call and
answers it with a `SparkLake` over the export, so the numbers each case asserts, worked out by
hand (or by the brute-force oracles), are asserted of Spark's results: time zones, DST, week
and month rules, medians, A/R balances and third next available included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings

from tests.kpis import (
    test_access,
    test_engine,
    test_explain_drivers,
    test_oracles,
    test_phones,
    test_referrals_portal,
    test_results,
    test_revenue_cycle,
    test_visit_flow,
)
from tests.kpis.builder import Fixture

MODULES = (
    test_access,
    test_visit_flow,
    test_phones,
    test_revenue_cycle,
    test_referrals_portal,
    test_oracles,
    test_engine,
    test_explain_drivers,
    test_results,
)

for _module in MODULES:
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and callable(_test):
            assert _name not in globals(), f"{_name} is defined in two of the modules run on Spark"
            globals()[_name] = _test

# The oracles draw random cases; on Spark, where each case costs an export and a few jobs, fewer.
_SPARK_ORACLE = settings(test_oracles.ORACLE_SETTINGS, max_examples=4)
test_third_next_available_matches_a_brute_force_count = _SPARK_ORACLE(
    given(*test_oracles.TNA_CASES)(
        test_oracles.test_third_next_available_matches_a_brute_force_count.hypothesis.inner_test
    )
)
test_ar_balances_match_a_brute_force_ledger = _SPARK_ORACLE(
    given(*test_oracles.AR_CASES)(test_oracles.test_ar_balances_match_a_brute_force_ledger.hypothesis.inner_test)
)


@pytest.fixture(autouse=True)
def _on_spark(spark: Any) -> Iterator[None]:
    Fixture.spark = spark
    yield
    Fixture.spark = None
