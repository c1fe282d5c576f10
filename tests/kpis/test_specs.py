"""KPI specs: the shipped catalog is complete and documented; bad declarations fail precisely."""

from __future__ import annotations

from string import Template

import pytest

from kpis.catalog import shipped_specs
from kpis.config import Config
from kpis.custom import CUSTOM_QUERIES
from kpis.relations import DIMENSIONS, build_relations
from kpis.spec import DOMAINS, FORMATS, UNITS, SpecError, load_specs

ISSUE_KPIS = {
    "no_show_rate",
    "late_cancel_rate",
    "third_next_available",
    "slot_utilization",
    "visit_cycle_time",
    "visit_cycle_time_p90",
    "visit_segment_checkin_to_roomed",
    "visit_segment_roomed_to_provider",
    "visit_segment_provider_time",
    "visit_segment_provider_to_checkout",
    "chart_closure_lag",
    "call_abandonment_rate",
    "average_speed_of_answer",
    "service_level",
    "days_in_ar",
    "ar_over_90_pct",
    "denial_rate",
    "clean_claim_rate",
    "net_collection_rate",
    "charge_lag",
    "referral_completion_rate",
    "portal_response_time",
}


def test_catalog_has_every_kpi_of_the_issue_documented() -> None:
    specs = shipped_specs()
    assert set(specs) == ISSUE_KPIS
    for spec in specs.values():
        assert spec.title and spec.definition.endswith(".") and spec.formula and spec.authority, spec.id
        assert spec.unit in UNITS and spec.fmt in FORMATS and spec.domain in DOMAINS
        assert set(spec.dimensions) <= set(DIMENSIONS) and "location" in spec.dimensions
        assert (spec.target is None) == (spec.target_source == ""), spec.id
        for opt in spec.option_specs:
            assert opt.help, f"{spec.id}.{opt.name}"
    assert [s.domain for s in specs.values()] == sorted((s.domain for s in specs.values()), key=DOMAINS.index)


def test_benchmark_table_defaults() -> None:
    """Targets and red flags of ../shared/KPI-DEFINITIONS.md, as shipped."""
    specs = shipped_specs()
    expected = {
        "no_show_rate": (0.07, 0.10),
        "days_in_ar": (40, 50),
        "ar_over_90_pct": (0.08, 0.20),
        "denial_rate": (0.05, 0.10),
        "clean_claim_rate": (0.95, 0.90),
        "net_collection_rate": (0.95, 0.90),
        "call_abandonment_rate": (0.05, 0.08),
        "visit_cycle_time": (30, 60),
        "third_next_available": (10, 14),
        "referral_completion_rate": (0.80, 0.50),
        "chart_closure_lag": (24, 72),
    }
    assert {k: (specs[k].target, specs[k].red) for k in expected} == expected


VALID = Template("""
domain = "phones"

[fragments.long_wait]
sql = "wait_seconds >= {threshold}"
options.threshold = { default = 60, help = "Seconds." }

[kpis.long_waits]
title = "Long waits"
definition = "Share of calls that waited long."
formula = "long waits / calls"
unit = "$unit"
fmt = "pct1"
better = "$better"
relation = "$relation"
event_time = "$event_time"
dimensions = $dimensions
authority = "$authority"
numerator = { agg = "count", filter = "$numerator" }
denominator = { agg = "$den_agg", filter = "TRUE" }
$extra
""")
DEFAULTS = {
    "unit": "percent",
    "better": "lower",
    "relation": "calls",
    "event_time": "entered_at",
    "dimensions": '["location", "queue"]',
    "authority": "Call-center practice",
    "numerator": "{long_wait}",
    "den_agg": "count",
    "extra": "",
}


def load(**changes: str) -> dict:
    text = VALID.substitute({**DEFAULTS, **changes})
    return load_specs([("kpis/specs/test.toml", text)], build_relations(Config()), CUSTOM_QUERIES)


def test_the_template_is_valid_and_options_come_from_fragments() -> None:
    spec = load()["long_waits"]
    assert spec.options == {"threshold": 60}
    assert spec.definition_label({"threshold": 90}) == "long_waits[threshold=90]"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dimensions": '["location", "payor"]'}, r"long_waits.dimensions: unknown 'payor'"),
        ({"dimensions": '["provider"]'}, r"long_waits.dimensions: relation calls has no 'provider' column"),
        ({"unit": "percents"}, r"long_waits.unit: 'percents' is not one of percent, days"),
        ({"better": "up"}, r"long_waits.better: 'up' is not one of lower, higher"),
        ({"relation": "call"}, r"long_waits.relation: unknown 'call'"),
        ({"event_time": "answered_at"}, r"long_waits.event_time: 'answered_at' is not an event time of relation calls"),
        ({"authority": " "}, r"long_waits.authority: name the source"),
        ({"numerator": "wait_secs > 10"}, r"long_waits: unknown column 'wait_secs' in 'wait_secs > 10'"),
        ({"numerator": "wait_seconds > {limit}"}, r"long_waits: unknown placeholder \{limit\}"),
        ({"numerator": "wait_seconds > {{limit}}"}, r"long_waits: (unknown placeholder|stray)"),
        ({"numerator": "wait_seconds >"}, r"long_waits: cannot parse 'wait_seconds >'"),
        ({"den_agg": "median"}, r"long_waits.denominator.agg: 'median' is not one of count, sum"),
        ({"extra": 'custom = "ar_balance"'}, r"long_waits: a custom KPI has no numerator, denominator or value"),
        ({"extra": 'target = { target = 0.1, red = 0.05, source = "x" }'}, r"long_waits.target: lower is better"),
        ({"extra": "target = { target = 0.1 }"}, r"long_waits.target.source: cite where the target comes from"),
        (
            {"extra": 'options.mode = { default = "a", choices = ["b"], help = "h" }'},
            r"long_waits.options.mode.default: 'a' is not one of b",
        ),
        ({"extra": "options.mode = { default = 1 }"}, r"long_waits.options.mode.help: say what the option changes"),
        ({"extra": "colour = 'red'"}, r"long_waits: unknown key\(s\) colour"),
    ],
)
def test_bad_declarations_name_the_file_kpi_and_field(changes: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load(**changes)
    assert str(info.value).startswith("kpis/specs/test.toml: ")


def test_duplicate_ids_and_cycles_and_bad_toml() -> None:
    text = VALID.substitute(DEFAULTS)
    relations = build_relations(Config())
    with pytest.raises(SpecError, match=r"b.toml: KPI id 'long_waits' is already declared in a.toml"):
        load_specs([("a.toml", text), ("b.toml", text)], relations, CUSTOM_QUERIES)
    cyclic = (
        text.replace('sql = "wait_seconds >= {threshold}"', 'sql = "{loop_b}"')
        + '[fragments.loop_b]\nsql = "{long_wait}"\n'
    )
    cyclic = cyclic.replace("[kpis.long_waits]", '[fragments.x]\nsql = "TRUE"\n\n[kpis.long_waits]')
    with pytest.raises(SpecError, match=r"c.toml: fragments form a cycle: long_wait -> loop_b -> long_wait"):
        load_specs([("c.toml", cyclic)], relations, CUSTOM_QUERIES)
    with pytest.raises(SpecError, match=r"d.toml: not valid TOML"):
        load_specs([("d.toml", "[kpis\n")], relations, CUSTOM_QUERIES)
    with pytest.raises(SpecError, match=r"e.toml: unknown top-level key\(s\) metrics"):
        load_specs([("e.toml", text + "\n[metrics]\n")], relations, CUSTOM_QUERIES)
