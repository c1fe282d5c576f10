"""The KPI catalog of a practice: the shipped specs with the config's targets and option checks.

Specs are loaded and validated once per process. A practice overrides targets in `[targets]`
(`no_show_rate = { target = 0.06, red = 0.09 }`) and definition variants in `[kpi_options]`
(`days_in_ar = { preset = "hfma" }`); both are checked against the specs, and a mistake names
the config file, the KPI and the key.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from kpis.config import Config
from kpis.custom import CUSTOM_QUERIES
from kpis.errors import ConfigError
from kpis.relations import build_relations
from kpis.spec import DOMAINS, KpiSpec, SpecError, check_bands, load_specs, spec_files


@cache
def shipped_specs() -> dict[str, KpiSpec]:
    """Every KPI shipped in kpis/specs/, validated (raises SpecError on a bad declaration)."""
    specs = load_specs(spec_files(), build_relations(Config()), CUSTOM_QUERIES)
    return dict(sorted(specs.items(), key=lambda item: DOMAINS.index(item[1].domain)))


def practice_catalog(config: Config) -> dict[str, KpiSpec]:
    """The shipped specs with `[targets]` applied; `[kpi_options]` is checked here too."""
    specs = shipped_specs()
    where = str(config.path) if config.path else "config"
    for section, table in (("targets", config.targets), ("kpi_options", config.kpi_options)):
        unknown = sorted(set(table) - set(specs))
        if unknown:
            raise ConfigError(f"{where}: [{section}] names unknown KPI(s) {', '.join(unknown)}")
    for kpi_id, options in config.kpi_options.items():
        if not isinstance(options, dict):
            raise ConfigError(f'{where}: [kpi_options] {kpi_id} must be a table, e.g. {{ preset = "mgma" }}')
        specs[kpi_id].resolve_options((f"{where}: [kpi_options]", options))
    return {kpi_id: _with_targets(spec, config.targets.get(kpi_id), where) for kpi_id, spec in specs.items()}


def _with_targets(spec: KpiSpec, override: Any, where: str) -> KpiSpec:
    if override is None:
        return spec
    label = f"{where}: [targets] {spec.id}"
    if not isinstance(override, dict):
        raise ConfigError(f"{label} must be a table, e.g. {{ target = 0.07, red = 0.10 }}")
    unknown = sorted(set(override) - {"target", "watch", "red", "source"})
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}; use target, watch, red")
    merged = {
        "target": override.get("target", spec.target),
        "watch": override.get("watch", override.get("target", spec.watch)),
        "red": override.get("red", spec.red),
    }
    try:
        target, watch, red = check_bands(merged, spec.better, label)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    source = str(override.get("source", "practice config"))
    return dataclasses.replace(spec, target=target, watch=watch, red=red, target_source=source)
