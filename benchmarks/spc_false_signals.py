"""How often does a change that did nothing look like a signal? Measured over many simulated seeds.

For each seed, a small practice (3 providers at 3 locations, 24 months) is simulated with its
two injected changes (sample_data/changes.py): reminder calls at EAST that cut the no-show
probability by 45%, and a placebo at WEST that changes nothing. Each change is judged as
`Warehouse.change_effects` judges it (`kpis.spc`: the chart chosen for the KPI, limits frozen
on the complete months before the change, the Shewhart and Anhøj rules on the months after),
on the monthly no-show rate of its location from the simulator's own `truth.json`: the same
numbers the warehouse computes (tests/kpis/test_against_truth.py), without loading each seed.

    python -m benchmarks.spc_false_signals --seeds 100
    python -m benchmarks.spc_false_signals --seeds 100 --chart pp    # Laney's P′ for every month

Prints the false-signal rate of the placebo and the detection rate of the real change, each with
a 95% Wilson interval, and the rules that fired. The figures are written in docs/api.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from kpis import spc
from sample_data.practice import Params
from sample_data.simulate import simulate

END = date(2026, 9, 30)


def judge(truth: dict, change: dict, chart: str = "auto") -> spc.Effect:
    """The effect of one injected change on its location's monthly no-show rate.

    `chart`: auto (the chart `change_effects` chooses), or p, pp (Laney's P′), i, to compare them.
    """
    rows = sorted(
        (r for r in truth["kpis"] if r["kpi_id"] == change["kpi"] and r["dimension_value"] == change["location"]),
        key=lambda r: r["period_start"],
    )
    rows = [r for r in rows if r["dimension"] == "location" and r["n"]]
    day = date.fromisoformat(change["date"])
    before = [r for r in rows if date.fromisoformat(r["period_start"]) < day]
    after = [r for r in rows if date.fromisoformat(r["period_start"]) >= day]
    if chart == "auto":
        chart = spc.choose_chart("proportion", [r["denominator"] for r in rows])
    return spc.evaluate(
        chart,
        [r["value"] for r in before],
        [r["value"] for r in after],
        [r["numerator"] for r in before],
        [r["denominator"] for r in before],
        [r["numerator"] for r in after],
        [r["denominator"] for r in after],
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="number of seeds (1..N)")
    parser.add_argument("--first", type=int, default=1, help="first seed")
    parser.add_argument("--json", type=Path, help="also write the per-seed results here")
    parser.add_argument(
        "--chart",
        choices=("auto", "p", "pp", "i"),
        default="auto",
        help="the control chart (default: as change_effects)",
    )
    args = parser.parse_args(argv)
    results = []
    rules: dict[str, Counter[str]] = {"placebo": Counter(), "real": Counter()}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first, args.first + args.seeds):
            out = Path(tmp) / f"seed{seed}"
            simulate(Params(seed=seed, months=24, providers=6, scale=0.5, end=END), out, workers=1)
            truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
            row = {"seed": seed}
            for change in truth["meta"]["changes"]:
                kind = "placebo" if change["placebo"] else "real"
                effect = judge(truth, change, args.chart)
                row[kind] = {"signal": effect.signal, "direction": effect.direction, "rules": list(effect.rules)}
                rules[kind].update(effect.rules)
            results.append(row)
            if sys.stderr.isatty():
                print(f"seed {seed}: {row}", file=sys.stderr)
            shutil.rmtree(out)
    n = len(results)
    false = sum(r["placebo"]["signal"] for r in results)
    found = sum(r["real"]["signal"] and r["real"]["direction"] == "down" for r in results)
    lo, hi = wilson(false, n)
    print(f"placebo (no effect) at WEST: {false} of {n} seeds signal: {false / n:.1%} (95% CI {lo:.1%} to {hi:.1%})")
    print(f"  rules fired: {dict(rules['placebo']) or 'none'}")
    lo, hi = wilson(found, n)
    rate = f"{found / n:.1%} (95% CI {lo:.1%} to {hi:.1%})"
    print(f"reminder calls at EAST (-45%): found downwards at {found} of {n} seeds: {rate}")
    print(f"  rules fired: {dict(rules['real'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
