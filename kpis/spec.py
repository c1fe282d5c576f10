"""KPI specs: each KPI declared once, as data, and checked when it is loaded.

The declarations live in `kpis/specs/<domain>.toml`. A spec names a base relation (see
`kpis/relations.py`), the event time that places a row in a period, and either a ratio
(numerator and denominator, each an aggregate with a filter), an aggregate of a value (mean,
median, p90) or a custom query (`custom = "..."`) for the few KPIs that are neither.

SQL fragments in specs are DuckDB expressions over the relation's columns. Two kinds of
placeholder may appear in them, written `{name}`:

* an **option** of the KPI (`{late_cancel_hours}`), replaced by the value in use as a SQL
  literal; options are the named variants of a definition, with their defaults;
* a **fragment** of the same file (`{is_late_cancel}`), a shared expression such as "a late
  cancellation" that several KPIs use. A fragment may declare options of its own, which every
  KPI using it inherits.

After substitution the expression is simplified by SQLGlot, so a variant that is switched off
(`'separate' = 'as_noshow' AND ...`) disappears from the generated SQL.

Everything that can be checked without data is checked on load: unknown keys, units,
directions, dimensions, columns, placeholders, option values and target bands. Each problem is
reported with the file, the KPI and the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.optimizer.simplify import simplify

from kpis.errors import ClinicKpisError
from kpis.relations import DIMENSIONS, Relation
from kpis.sql_literals import sql_literal

UNITS = ("percent", "days", "minutes", "hours", "seconds", "currency", "count")
FORMATS = ("pct0", "pct1", "num0", "num1", "num2", "usd0", "usd2")
BETTER = ("lower", "higher")
DOMAINS = ("access", "visit_flow", "phones", "revenue_cycle", "referrals_portal")
AGGREGATES = ("count", "sum", "mean", "median", "p90")
QUANTILES = {"median": 0.5, "p90": 0.9}

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_BRACES = re.compile(r"[{}]")
_KPI_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_OPTION_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "list": list}


class SpecError(ClinicKpisError):
    """A KPI declaration, or an option or target given for one, is not valid."""


@dataclass(frozen=True)
class OptionSpec:
    """A named variant of a definition: its default, allowed values and what it changes."""

    name: str
    type: str
    default: Any
    choices: tuple[Any, ...] | None
    help: str


@dataclass(frozen=True)
class Fragment:
    name: str
    sql: str
    options: tuple[OptionSpec, ...]


@dataclass(frozen=True)
class Measure:
    """An aggregate over the rows of a relation that pass `filter`: count, sum, mean, median or p90 of `expr`."""

    agg: str
    filter: str
    expr: str | None = None


@dataclass(frozen=True)
class KpiSpec:
    """One KPI. The first fields are the public catalog entry; the rest say how to compute it."""

    id: str
    title: str
    definition: str
    formula: str
    unit: str
    fmt: str
    better: str
    event_time: str
    dimensions: tuple[str, ...]
    options: Mapping[str, Any]
    target: float | None
    watch: float | None
    red: float | None
    authority: str
    headline: bool
    domain: str
    target_source: str = ""
    domain_title: str = ""  # the domain's name to show ("Access & scheduling"), from its spec file
    drivers: tuple[str, ...] = ()  # the dimensions a move is explained by, in order of preference
    history_days: int = 0  # days of data before a period's end its value rests on (balances, lagged payments)
    part_of: str | None = None  # the KPI this one is a component of (a visit segment of the cycle time)
    patient_records: bool = True  # n counts records about patients or callers: small cells are withheld
    relation: str = ""
    kind: str = "ratio"  # ratio | aggregate | custom
    numerator: Measure | None = None
    denominator: Measure | None = None
    value: Measure | None = None
    population: str | None = None  # rows counted in n for a ratio (default: the denominator's)
    # rows whose side the export cannot decide (e.g. a cancellation without its initiator): when a
    # period holds any, its value is unknown; `unknown_reason` says what they are, for the note
    unknown: str | None = None
    unknown_reason: str = ""
    # for a percent KPI that a definition lets exceed 100% (timing): why, for the note
    over_100: str = ""
    custom: str | None = None
    event_time_option: str | None = None  # the option that chooses the event time, if any
    event_times: Mapping[str, str] = field(default_factory=dict)  # option value -> column
    complete_after_days: int | str = 0  # days a period stays open after it ends, or an option name
    option_specs: tuple[OptionSpec, ...] = ()
    fragments: Mapping[str, Fragment] = field(default_factory=dict)
    source_file: str = ""

    # -- options ----------------------------------------------------------------------------

    def resolve_options(self, *layers: tuple[str, Mapping[str, Any] | None]) -> dict[str, Any]:
        """The options in use: the defaults, overridden by each (origin, values) layer in turn.

        Layers are typically the config's `[kpi_options]` and then the caller's `options=`; the
        origin names the layer in error messages.
        """
        resolved = dict(self.options)
        for origin, layer in layers:
            for name, value in (layer or {}).items():
                resolved[name] = self.check_option(name, value, origin)
        return resolved

    def check_option(self, name: str, value: Any, origin: str) -> Any:
        by_name = {o.name: o for o in self.option_specs}
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise SpecError(f"{origin}: {self.id} has no option {name!r} (options: {known})")
        return _coerce_option(by_name[name], value, f"{origin}: {self.id}.{name}")

    def definition_label(self, options: Mapping[str, Any]) -> str:
        """The id plus the variant in use, e.g. `days_in_ar[preset=mgma]` (unset options are left out)."""
        parts = [f"{o.name}={_label(options[o.name])}" for o in self.option_specs if options.get(o.name) is not None]
        return f"{self.id}[{','.join(parts)}]" if parts else self.id

    def event_column(self, options: Mapping[str, Any]) -> str:
        if self.event_time_option:
            return self.event_times[options[self.event_time_option]]
        return self.event_time

    def complete_lag(self, options: Mapping[str, Any]) -> int:
        lag = self.complete_after_days
        return int(options[lag]) if isinstance(lag, str) else lag

    # -- SQL ------------------------------------------------------------------------------------

    def render(self, text: str, options: Mapping[str, Any]) -> str:
        """`text` with fragments and options substituted (DuckDB SQL)."""
        return render_template(text, self.fragments, options)

    def condition(self, text: str, options: Mapping[str, Any]) -> exp.Expression:
        """A filter or value expression, substituted, parsed and simplified (shared: do not modify)."""
        return _simplified(self.render(text, options))

    def condition_sql(self, text: str, options: Mapping[str, Any]) -> str:
        """`condition` as DuckDB SQL."""
        return _simplified_sql(self.render(text, options))


@lru_cache(maxsize=4096)
def _simplified(sql: str) -> exp.Expression:
    return simplify(sqlglot.parse_one(sql, read="duckdb"))


@lru_cache(maxsize=4096)
def _simplified_sql(sql: str) -> str:
    return _simplified(sql).sql(dialect="duckdb")


def render_template(text: str, fragments: Mapping[str, Fragment], options: Mapping[str, Any]) -> str:
    def fragment(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"({expand(fragments[name].sql)})" if name in fragments else m.group(0)

    def expand(sql: str) -> str:  # fragments may use fragments; cycles are refused on load
        return _PLACEHOLDER.sub(fragment, sql)

    def option(m: re.Match[str]) -> str:
        return sql_literal(options[m.group(1)])

    return _PLACEHOLDER.sub(option, expand(text))


def _fragments_used(texts: Iterable[str], fragments: Mapping[str, Fragment]) -> set[str]:
    """The fragments `texts` use, directly or through other fragments."""
    found: set[str] = set()
    todo = [p for text in texts for p in _PLACEHOLDER.findall(text) if p in fragments]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [p for p in _PLACEHOLDER.findall(fragments[name].sql) if p in fragments]
    return found


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    return str(value)


def _coerce_option(opt: OptionSpec, value: Any, where: str) -> Any:
    """Check (and, for text from the command line, convert) one option value."""
    if value is None:
        if opt.default is None:
            return None
        raise SpecError(f"{where}: a value is required")
    if isinstance(value, str) and opt.type != "str":
        value = _from_text(opt, value, where)
    expected = _OPTION_TYPES[opt.type]
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    if opt.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if opt.type == "list" and ok:
        ok = all(isinstance(v, str) for v in value)
        value = list(value)
    if not ok:
        raise SpecError(f"{where}: expected {opt.type}, got {value!r}")
    if opt.type in ("int", "float") and value < 0:
        raise SpecError(f"{where}: must not be negative, got {value!r}")
    if opt.choices is not None and value not in opt.choices:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(map(str, opt.choices))}")
    return value


def _from_text(opt: OptionSpec, text: str, where: str) -> Any:
    try:
        if opt.type == "bool":
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            raise ValueError
        if opt.type == "int":
            return int(text)
        if opt.type == "float":
            return float(text)
        if opt.type == "list":
            return [part.strip() for part in text.split(",") if part.strip()]
    except ValueError:
        pass
    raise SpecError(f"{where}: expected {opt.type}, got {text!r}")


# -- loading -------------------------------------------------------------------------------------

_FILE_KEYS = {"domain", "title", "fragments", "kpis"}
# What explains a move when a spec does not say: the practice's structure, then who pays.
DEFAULT_DRIVERS = ("location", "provider", "payer")
_KPI_KEYS = {
    "title",
    "definition",
    "formula",
    "unit",
    "fmt",
    "better",
    "relation",
    "event_time",
    "dimensions",
    "numerator",
    "denominator",
    "value",
    "population",
    "custom",
    "uses",
    "options",
    "target",
    "authority",
    "headline",
    "complete_after_days",
    "drivers",
    "history_days",
    "part_of",
    "patient_records",
    "unknown",
    "over_100",
}
_REQUIRED = ("title", "definition", "formula", "unit", "fmt", "better", "relation", "event_time", "dimensions")
_TARGET_KEYS = {"target", "watch", "red", "source"}


def spec_files() -> list[tuple[str, str]]:
    """(name, text) of every shipped spec file, in name order."""
    folder = resources.files("kpis.specs")
    return sorted(
        (f"kpis/specs/{entry.name}", entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def load_specs(
    files: Iterable[tuple[str, str]],
    relations: Mapping[str, Relation],
    custom_queries: Iterable[str],
) -> dict[str, KpiSpec]:
    """Parse and validate spec files given as (name, text); ids are unique across all files."""
    specs: dict[str, KpiSpec] = {}
    known_custom = frozenset(custom_queries)
    for name, text in files:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{name}: not valid TOML: {exc}") from None
        for spec in _load_file(name, data, relations, known_custom):
            if spec.id in specs:
                raise SpecError(f"{name}: KPI id {spec.id!r} is already declared in {specs[spec.id].source_file}")
            specs[spec.id] = spec
    # A domain's title is given once, by any of its files; a file that adds KPIs to it need not repeat it.
    titles: dict[str, str] = {}
    for spec in specs.values():
        if spec.domain_title:
            titles.setdefault(spec.domain, spec.domain_title)
    return {
        kpi_id: replace(spec, domain_title=titles.get(spec.domain, spec.domain.replace("_", " ").capitalize()))
        for kpi_id, spec in specs.items()
    }


def _load_file(
    name: str, data: dict[str, Any], relations: Mapping[str, Relation], known_custom: frozenset[str]
) -> list[KpiSpec]:
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise SpecError(
            f"{name}: unknown top-level key(s) {', '.join(unknown)}; expected domain, title, fragments, kpis"
        )
    domain = data.get("domain")
    if domain not in DOMAINS:
        raise SpecError(f"{name}: domain {domain!r} is not one of {', '.join(DOMAINS)}")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise SpecError(f'{name}: title is the domain\'s name to show, e.g. "Visit flow"')
    fragments = {}
    for frag_name, body in data.get("fragments", {}).items():
        where = f"{name}: fragments.{frag_name}"
        _expect_table(body, where)
        extra = sorted(set(body) - {"sql", "options"})
        if extra:
            raise SpecError(f"{where}: unknown key(s) {', '.join(extra)}; expected sql, options")
        sql = body.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise SpecError(f"{where}.sql: a SQL expression is required")
        fragments[frag_name] = Fragment(frag_name, sql, _options(body.get("options", {}), f"{where}.options"))
    for frag in fragments.values():
        _check_no_cycle(frag.name, fragments, [], name)
        allowed = {o.name for o in frag.options} | set(fragments)
        for placeholder in _PLACEHOLDER.findall(frag.sql):
            if placeholder not in allowed:
                raise SpecError(
                    f"{name}: fragments.{frag.name}: unknown placeholder {{{placeholder}}} "
                    "(declare it in the fragment's options)"
                )
    kpis = data.get("kpis")
    if not isinstance(kpis, dict) or not kpis:
        raise SpecError(f"{name}: no [kpis.<id>] tables")
    specs = [
        _load_kpi(name, kpi_id, body, domain, title.strip(), fragments, relations, known_custom)
        for kpi_id, body in kpis.items()
    ]
    for spec in specs:
        if spec.part_of is not None and spec.part_of not in {s.id for s in specs if s.id != spec.id}:
            raise SpecError(f"{name}: {spec.id}.part_of: {spec.part_of!r} is not another KPI of this file")
    return specs


def _check_no_cycle(frag: str, fragments: dict[str, Fragment], path: list[str], file: str) -> None:
    if frag in path:
        cycle = " -> ".join([*path[path.index(frag) :], frag])
        raise SpecError(f"{file}: fragments form a cycle: {cycle}")
    for used in _PLACEHOLDER.findall(fragments[frag].sql):
        if used in fragments:
            _check_no_cycle(used, fragments, [*path, frag], file)


def _load_kpi(
    file: str,
    kpi_id: str,
    body: Any,
    domain: str,
    domain_title: str,
    fragments: dict[str, Fragment],
    relations: Mapping[str, Relation],
    known_custom: frozenset[str],
) -> KpiSpec:
    where = f"{file}: {kpi_id}"
    if not _KPI_ID.match(kpi_id):
        raise SpecError(f"{where}: a KPI id is lower_snake_case")
    _expect_table(body, where)
    unknown = sorted(set(body) - _KPI_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in _REQUIRED:
        if key not in body:
            raise SpecError(f"{where}: {key} is required")
    for key in ("title", "definition", "formula"):
        if not isinstance(body[key], str) or not body[key].strip():
            raise SpecError(f"{where}.{key}: a non-empty text is required")
    _one_of(body["unit"], UNITS, f"{where}.unit")
    _one_of(body["fmt"], FORMATS, f"{where}.fmt")
    _one_of(body["better"], BETTER, f"{where}.better")
    relation = relations.get(body["relation"])
    if relation is None:
        raise SpecError(f"{where}.relation: unknown {body['relation']!r} (known: {', '.join(sorted(relations))})")
    authority = body.get("authority")
    if not isinstance(authority, str) or not authority.strip():
        raise SpecError(f"{where}.authority: name the source this definition follows")

    dims = body["dimensions"]
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        raise SpecError(f"{where}.dimensions: a list of dimension names is required")
    for dim in dims:
        if dim not in DIMENSIONS:
            raise SpecError(f"{where}.dimensions: unknown {dim!r} (known: {', '.join(DIMENSIONS)})")
        if dim not in relation.dimensions:
            raise SpecError(f"{where}.dimensions: relation {relation.name} has no {dim!r} column")

    own_options = _options(body.get("options", {}), f"{where}.options")
    texts = _measure_texts(body)
    uses = body.get("uses", [])
    if not isinstance(uses, list) or any(u not in fragments for u in uses):
        raise SpecError(f"{where}.uses: a list of fragment names of this file is required")
    used = _fragments_used([*texts, *(f"{{{u}}}" for u in uses)], fragments)
    option_specs = list(own_options)
    for frag_name in sorted(used):
        for opt in fragments[frag_name].options:
            if opt.name not in {o.name for o in option_specs}:
                option_specs.append(opt)
    option_names = {o.name for o in option_specs}
    if len(option_names) != len(option_specs):
        raise SpecError(f"{where}.options: an option is declared twice")
    for text in texts:
        for placeholder in _PLACEHOLDER.findall(text):
            if placeholder not in option_names and placeholder not in fragments:
                raise SpecError(f"{where}: unknown placeholder {{{placeholder}}} (not an option or fragment)")
        if _BRACES.search(_PLACEHOLDER.sub("", text)):
            raise SpecError(f"{where}: stray '{{' or '}}' in {text.strip()!r}; placeholders look like {{name}}")

    kind, numerator, denominator, value, custom = _computation(body, where, known_custom)
    population = body.get("population")
    if population is not None and (kind != "ratio" or not isinstance(population, str) or not population.strip()):
        raise SpecError(f"{where}.population: a SQL condition, for ratio KPIs only")
    unknown_filter, unknown_reason = _unknown(body.get("unknown"), kind, f"{where}.unknown")
    over_100 = body.get("over_100", "")
    if not isinstance(over_100, str) or (over_100 and body["unit"] != "percent"):
        raise SpecError(f"{where}.over_100: a sentence, for percent KPIs only")
    if kind == "custom":  # a custom query places rows itself; event_time only describes how
        if not isinstance(body["event_time"], str):
            raise SpecError(f"{where}.event_time: describe the event time of a custom KPI in words")
        event_time, event_option, event_times = body["event_time"], None, {}
    else:
        event_time, event_option, event_times = _event_time(body["event_time"], option_specs, relation, where)

    target, watch, red, target_source = _target(body.get("target"), body["better"], f"{where}.target")
    complete_after = body.get("complete_after_days", 0)
    if isinstance(complete_after, str):
        if complete_after not in option_names:
            raise SpecError(f"{where}.complete_after_days: {complete_after!r} is not an option of this KPI")
    elif not isinstance(complete_after, int) or isinstance(complete_after, bool) or complete_after < 0:
        raise SpecError(f"{where}.complete_after_days: a number of days or an option name is required")
    headline = body.get("headline", False)
    if not isinstance(headline, bool):
        raise SpecError(f"{where}.headline: true or false")
    drivers = body.get("drivers", [d for d in DEFAULT_DRIVERS if d in dims])
    if not isinstance(drivers, list) or any(d not in dims for d in drivers) or len(set(drivers)) != len(drivers):
        raise SpecError(f"{where}.drivers: a list of this KPI's dimensions ({', '.join(dims)}), each once")
    history = body.get("history_days", 0)
    if not isinstance(history, int) or isinstance(history, bool) or history < 0:
        raise SpecError(f"{where}.history_days: a number of days is required")
    patient_records = body.get("patient_records", True)
    if not isinstance(patient_records, bool):
        raise SpecError(f"{where}.patient_records: true or false")
    part_of = body.get("part_of")
    if part_of is not None and not isinstance(part_of, str):
        raise SpecError(f"{where}.part_of: the id of another KPI of this file")

    spec = KpiSpec(
        id=kpi_id,
        title=body["title"].strip(),
        definition=" ".join(body["definition"].split()),
        formula=" ".join(body["formula"].split()),
        unit=body["unit"],
        fmt=body["fmt"],
        better=body["better"],
        event_time=event_time,
        dimensions=tuple(dims),
        options={o.name: o.default for o in option_specs},
        target=target,
        watch=watch,
        red=red,
        authority=authority.strip(),
        headline=headline,
        domain=domain,
        target_source=target_source,
        domain_title=domain_title,
        drivers=tuple(drivers),
        history_days=history,
        part_of=part_of,
        patient_records=patient_records,
        relation=relation.name,
        kind=kind,
        numerator=numerator,
        denominator=denominator,
        value=value,
        population=" ".join(population.split()) if population else None,
        unknown=unknown_filter,
        unknown_reason=unknown_reason,
        over_100=" ".join(over_100.split()),
        custom=custom,
        event_time_option=event_option,
        event_times=event_times,
        complete_after_days=complete_after,
        option_specs=tuple(option_specs),
        fragments={name: fragments[name] for name in sorted(used)},
        source_file=file,
    )
    _check_columns(spec, relation, texts, where)
    return spec


def _expect_table(body: Any, where: str) -> None:
    if not isinstance(body, dict):
        raise SpecError(f"{where}: a table is required")


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(allowed)}")


def _options(table: Any, where: str) -> tuple[OptionSpec, ...]:
    _expect_table(table, where)
    found = []
    for name, decl in table.items():
        w = f"{where}.{name}"
        _expect_table(decl, w)
        extra = sorted(set(decl) - {"default", "choices", "help", "type"})
        if extra:
            raise SpecError(f"{w}: unknown key(s) {', '.join(extra)}; expected default, choices, help, type")
        if "help" not in decl:
            raise SpecError(f"{w}.help: say what the option changes")
        default = decl.get("default")
        type_name = decl.get("type") or _type_name(default)
        if type_name not in _OPTION_TYPES:
            raise SpecError(f"{w}: type must be one of {', '.join(_OPTION_TYPES)} (or give a default)")
        choices = decl.get("choices")
        if choices is not None and (not isinstance(choices, list) or not choices):
            raise SpecError(f"{w}.choices: a non-empty list is required")
        opt = OptionSpec(name, type_name, default, tuple(choices) if choices else None, str(decl["help"]))
        if default is not None:
            _coerce_option(opt, default, f"{w}.default")
        found.append(opt)
    return tuple(found)


def _type_name(default: Any) -> str | None:
    for name, typ in _OPTION_TYPES.items():
        if isinstance(default, typ) and not (typ is int and isinstance(default, bool)):
            return name
    return None


def _measure_texts(body: dict[str, Any]) -> list[str]:
    texts = []
    for side in ("numerator", "denominator", "value"):
        measure = body.get(side)
        if isinstance(measure, dict):
            texts += [v for k, v in measure.items() if k in ("filter", "expr") and isinstance(v, str)]
    if isinstance(body.get("population"), str):
        texts.append(body["population"])
    unknown = body.get("unknown")
    if isinstance(unknown, dict) and isinstance(unknown.get("filter"), str):
        texts.append(unknown["filter"])
    return texts


def _event_time(
    decl: Any, options: list[OptionSpec], relation: Relation, where: str
) -> tuple[str, str | None, dict[str, str]]:
    """The event time column, or a column per value of one option (e.g. net collection's `method`)."""
    if isinstance(decl, str):
        _check_event_column(decl, relation, f"{where}.event_time")
        return decl, None, {}
    _expect_table(decl, f"{where}.event_time")
    option_name = decl.get("option")
    by_name = {o.name: o for o in options}
    if option_name not in by_name or not by_name[option_name].choices:
        raise SpecError(f"{where}.event_time.option: name an option with choices")
    columns = {k: v for k, v in decl.items() if k != "option"}
    if set(columns) != set(by_name[option_name].choices):
        raise SpecError(f"{where}.event_time: give a column for each of {', '.join(by_name[option_name].choices)}")
    for value, column in columns.items():
        _check_event_column(column, relation, f"{where}.event_time.{value}")
    label = " or ".join(f"{column} ({option_name}={value})" for value, column in columns.items())
    return label, option_name, columns


def _check_event_column(column: Any, relation: Relation, where: str) -> None:
    if not isinstance(column, str) or column not in relation.events:
        raise SpecError(
            f"{where}: {column!r} is not an event time of relation {relation.name} "
            f"(one of {', '.join(relation.events)})"
        )


def _computation(
    body: dict[str, Any], where: str, known_custom: frozenset[str]
) -> tuple[str, Measure | None, Measure | None, Measure | None, str | None]:
    sides = [k for k in ("numerator", "denominator", "value", "custom") if k in body]
    if "custom" in body:
        if sides != ["custom"]:
            raise SpecError(f"{where}: a custom KPI has no numerator, denominator or value")
        if body["custom"] not in known_custom:
            raise SpecError(
                f"{where}.custom: unknown query {body['custom']!r} (known: {', '.join(sorted(known_custom))})"
            )
        return "custom", None, None, None, body["custom"]
    if sides == ["numerator", "denominator"]:
        num = _measure(body["numerator"], f"{where}.numerator", ("count", "sum"))
        den = _measure(body["denominator"], f"{where}.denominator", ("count", "sum"))
        return "ratio", num, den, None, None
    if sides == ["value"]:
        return "aggregate", None, None, _measure(body["value"], f"{where}.value", ("mean", "median", "p90")), None
    raise SpecError(f"{where}: give numerator and denominator, or value, or custom")


def _unknown(decl: Any, kind: str, where: str) -> tuple[str | None, str]:
    """The `unknown` table of a ratio KPI: {filter = SQL condition, reason = what those rows are}."""
    if decl is None:
        return None, ""
    _expect_table(decl, where)
    if kind != "ratio":
        raise SpecError(f"{where}: for ratio KPIs only")
    extra = sorted(set(decl) - {"filter", "reason"})
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(extra)}; expected filter, reason")
    for key in ("filter", "reason"):
        if not isinstance(decl.get(key), str) or not decl[key].strip():
            raise SpecError(f"{where}.{key}: a non-empty text is required")
    return " ".join(decl["filter"].split()), " ".join(decl["reason"].split())


def _measure(decl: Any, where: str, aggs: tuple[str, ...]) -> Measure:
    _expect_table(decl, where)
    extra = sorted(set(decl) - {"agg", "expr", "filter"})
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(extra)}; expected agg, expr, filter")
    agg = decl.get("agg")
    if agg not in aggs:
        raise SpecError(f"{where}.agg: {agg!r} is not one of {', '.join(aggs)}")
    expr = decl.get("expr")
    if agg == "count" and expr is not None:
        raise SpecError(f"{where}.expr: count takes no expression (it counts the rows passing the filter)")
    if agg != "count" and not isinstance(expr, str):
        raise SpecError(f"{where}.expr: {agg} needs an expression")
    filt = decl.get("filter")
    if not isinstance(filt, str) or not filt.strip():
        raise SpecError(f"{where}.filter: a SQL condition is required (use 'TRUE' for every row)")
    return Measure(agg, " ".join(filt.split()), " ".join(expr.split()) if expr else None)


def _target(decl: Any, better: str, where: str) -> tuple[float | None, float | None, float | None, str]:
    if decl is None:
        return None, None, None, ""
    _expect_table(decl, where)
    extra = sorted(set(decl) - _TARGET_KEYS)
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(extra)}; expected target, watch, red, source")
    source = decl.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SpecError(f"{where}.source: cite where the target comes from")
    target, watch, red = check_bands(decl, better, where)
    return target, watch, red, source.strip()


def check_bands(decl: Mapping[str, Any], better: str, where: str) -> tuple[float, float, float | None]:
    """Validate target / watch / red; watch defaults to the target, red may be absent."""
    values = {}
    for key in ("target", "watch", "red"):
        v = decl.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise SpecError(f"{where}.{key}: a number is required, got {v!r}")
        values[key] = None if v is None else float(v)
    if values["target"] is None:
        raise SpecError(f"{where}.target: a number is required")
    target = values["target"]
    watch = values["watch"] if values["watch"] is not None else target
    red = values["red"]
    ordered = [target, watch] + ([red] if red is not None else [])
    if ordered != (sorted(ordered) if better == "lower" else sorted(ordered, reverse=True)):
        direction = "target <= watch <= red" if better == "lower" else "target >= watch >= red"
        raise SpecError(f"{where}: lower is {'better' if better == 'lower' else 'worse'}, so {direction} is required")
    return target, watch, red


def _check_columns(spec: KpiSpec, relation: Relation, texts: list[str], where: str) -> None:
    """Every expression parses and names only columns of the relation, for every option choice."""
    variants = [dict(spec.options)]
    for opt in spec.option_specs:
        for choice in opt.choices or ():
            variants.append({**spec.options, opt.name: choice})
    for text in texts:
        for options in variants:
            try:
                parsed = spec.condition(text, options)
            except ParseError as exc:
                raise SpecError(f"{where}: cannot parse {text.strip()!r}: {exc}") from None
            for column in parsed.find_all(exp.Column):
                if column.name not in relation.columns:
                    raise SpecError(
                        f"{where}: unknown column {column.name!r} in {text.strip()!r} "
                        f"(relation {relation.name} has {', '.join(sorted(relation.columns))})"
                    )
