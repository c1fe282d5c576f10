"""SPC math held to published values (each test cites its source) and to hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kpis import spc

# Anhøj & Olesen (2014), "Run charts revisited", PLoS ONE 9(11): e113825: a shift is signalled by
# a run longer than round(log2(n) + 3) and too few crossings by fewer than qbinom(0.05, n - 1, 0.5).
# The critical values below are the table "Critical values for longest run and number of
# crossings" (Appendix 2 of J. Anhøj's qicharts2 vignette "Quality Improvement Charts",
# anhoej.github.io/qicharts2/articles/qicharts2.html), copied for n = 10..60 and a few beyond.
ANHOEJ_TABLE = {
    # n: (upper limit for longest run, lower limit for number of crossings)
    10: (6, 2), 11: (6, 2), 12: (7, 3), 13: (7, 3), 14: (7, 4), 15: (7, 4), 16: (7, 4), 17: (7, 5),
    18: (7, 5), 19: (7, 6), 20: (7, 6), 21: (7, 6), 22: (7, 7), 23: (8, 7), 24: (8, 8), 25: (8, 8),
    26: (8, 8), 27: (8, 9), 28: (8, 9), 29: (8, 10), 30: (8, 10), 31: (8, 11), 32: (8, 11), 33: (8, 11),
    34: (8, 12), 35: (8, 12), 36: (8, 13), 37: (8, 13), 38: (8, 14), 39: (8, 14), 40: (8, 14),
    41: (8, 15), 42: (8, 15), 43: (8, 16), 44: (8, 16), 45: (8, 17), 46: (9, 17), 47: (9, 17),
    48: (9, 18), 49: (9, 18), 50: (9, 19), 51: (9, 19), 52: (9, 20), 53: (9, 20), 54: (9, 21),
    55: (9, 21), 56: (9, 21), 57: (9, 22), 58: (9, 22), 59: (9, 23), 60: (9, 23),
    72: (9, 29), 90: (9, 37), 91: (10, 37), 100: (10, 41),
}  # fmt: skip


@pytest.mark.parametrize("n", sorted(ANHOEJ_TABLE))
def test_runs_limits_reproduce_the_anhoej_table(n: int) -> None:
    assert spc.runs_limits(n) == ANHOEJ_TABLE[n]


def test_runs_reproduce_the_qicharts2_vignette_summary() -> None:
    """Same vignette: 24 useful points, a run of 13 and 4 crossings against limits 8 and 8: a signal."""
    # A sequence with that shape: five runs of 2, 2, 13, 3 and 4 points.
    signs = [1] * 2 + [-1] * 2 + [1] * 13 + [-1] * 3 + [1] * 4
    result = spc.runs(signs, 0.0)
    assert (result.n_useful, result.longest_run, result.longest_run_max) == (24, 13, 8)
    assert (result.crossings, result.crossings_min) == (4, 8)
    assert result.long_run and result.few_crossings and result.signal


def test_runs_skip_points_on_the_centre_line_and_missing_points() -> None:
    # "Data points that fall on the centre line neither break nor contribute to the run."
    result = spc.runs([1, 2, 5, 5, 6, 7, float("nan"), 8, 1], 5.0)
    assert result.n_useful == 6
    assert result.longest_run == 3  # 6, 7, 8 across the NaN and after the two 5s
    assert result.crossings == 2
    assert (result.below, result.above) == (3, 3)


def test_runs_mark_the_points_of_a_signalling_run() -> None:
    values = [1, -1] * 3 + [-1] * 8 + [1, -1]
    result = spc.runs(values, 0.0)
    assert result.long_run  # 9 below in a row (the -1 closing the alternation joins them) > 7
    marked = [i for i, m in enumerate(result.in_long_run) if m]
    assert marked == list(range(5, 14))


# NIST/SEMATECH e-Handbook of Statistical Methods, section 6.3.2.2 "Individuals Control Charts"
# (itl.nist.gov/div898/handbook/pmc/section3/pmc322.htm): flow rate of the first 10 batches of a
# new process; published x-bar = 50.81, MR-bar = 1.8778, UCL = 55.8041, LCL = 45.8159.
NIST_FLOWRATE = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]


def test_xmr_limits_reproduce_the_nist_handbook_example() -> None:
    base = spc.fit("i", NIST_FLOWRATE)
    assert base.centre == pytest.approx(50.81, abs=5e-5)
    assert base.sigma * spc.D2 == pytest.approx(1.8778, abs=5e-5)  # the average moving range
    lcl, ucl = base.limits([0.0])
    assert ucl[0] == pytest.approx(55.8041, abs=5e-4)
    assert lcl[0] == pytest.approx(45.8159, abs=5e-4)


# Laney (2002), "Improved control charts for attributes", Quality Engineering 14(4): 531-537:
# P' limits are p-bar +/- 3 sigma_pi sigma_z, with sigma_pi = sqrt(p-bar (1 - p-bar) / n_i),
# z_i = (p_i - p-bar) / sigma_pi and sigma_z = mean |z_i - z_(i-1)| / 1.128 (the formulas as
# restated in Anhøj's "Mastering SPC charts in healthcare", chapter "Prime charts for count data
# with very large subgroups"). The data: the first six weeks of the NHS emergency attendances seen
# within 4 hours used by Mohammed, Panesar, Laney & Wilson (2013), BMJ Qual Saf 22: 362-368, as
# printed by head(nhs_accidents) in the qicharts2 vignette. No numeric P' worked example with its
# published limits was available to the project, so every intermediate is recomputed below by
# hand from the formulas, step by step, not by calling the code under test.
NHS_SEEN = [266501, 264225, 276532, 281461, 269071, 261215]
NHS_ATTENDANCES = [280443, 276823, 291681, 296155, 282343, 275888]


def test_laney_p_prime_follows_the_published_procedure_on_the_nhs_data() -> None:
    p_bar = sum(NHS_SEEN) / sum(NHS_ATTENDANCES)
    sigma_i = [math.sqrt(p_bar * (1 - p_bar) / n) for n in NHS_ATTENDANCES]
    z = [(r / n - p_bar) / s for r, n, s in zip(NHS_SEEN, NHS_ATTENDANCES, sigma_i, strict=True)]
    sigma_z = sum(abs(b - a) for a, b in zip(z, z[1:], strict=False)) / (len(z) - 1) / 1.128
    base = spc.fit("pp", [r / n for r, n in zip(NHS_SEEN, NHS_ATTENDANCES, strict=True)], NHS_SEEN, NHS_ATTENDANCES)
    assert base.centre == pytest.approx(p_bar, rel=1e-12)
    assert base.sigma_z == pytest.approx(sigma_z, rel=1e-12)
    # These data are the textbook case of overdispersion: sigma_z far above 1.
    assert base.sigma_z > 5
    lcl, ucl = base.limits(NHS_ATTENDANCES)
    for i, s in enumerate(sigma_i):
        assert ucl[i] == pytest.approx(p_bar + 3 * s * sigma_z, rel=1e-12)
        assert lcl[i] == pytest.approx(p_bar - 3 * s * sigma_z, rel=1e-12)
    # The plain P chart of the same weeks: sigma_z = 1, limits 3 sigma_pi wide.
    p = spc.fit("p", [0.0] * 6, NHS_SEEN, NHS_ATTENDANCES)
    p_lcl, p_ucl = p.limits(NHS_ATTENDANCES)
    assert p_ucl[0] - p_bar == pytest.approx(3 * sigma_i[0], rel=1e-12)


def test_u_and_u_prime_use_poisson_within_subgroup_sigma() -> None:
    counts, exposure = [12, 7, 15, 9], [1000.0, 800.0, 1200.0, 1000.0]
    base = spc.fit("u", [c / e for c, e in zip(counts, exposure, strict=True)], counts, exposure)
    u_bar = 43 / 4000
    assert base.centre == pytest.approx(u_bar)
    lcl, ucl = base.limits([800.0])
    assert ucl[0] == pytest.approx(u_bar + 3 * math.sqrt(u_bar / 800))
    assert lcl[0] == pytest.approx(max(0.0, u_bar - 3 * math.sqrt(u_bar / 800)))
    prime = spc.fit("up", [c / e for c, e in zip(counts, exposure, strict=True)], counts, exposure)
    z = [(c / e - u_bar) / math.sqrt(u_bar / e) for c, e in zip(counts, exposure, strict=True)]
    assert prime.sigma_z == pytest.approx(np.mean(np.abs(np.diff(z))) / 1.128)


def test_chart_is_chosen_from_the_kind_and_the_subgroup_size() -> None:
    assert spc.choose_chart("proportion", [300, 320]) == "p"
    assert spc.choose_chart("proportion", [5000, 5200]) == "pp"
    assert spc.choose_chart("rate", [10]) == "u"
    assert spc.choose_chart("rate", [2000]) == "up"
    assert spc.choose_chart("measure") == "i"
    with pytest.raises(ValueError, match="unknown KPI kind"):
        spc.choose_chart("median")


def test_a_sustained_shift_after_a_change_is_a_signal_down() -> None:
    before = [0.089, 0.092, 0.085, 0.090, 0.088, 0.091, 0.087, 0.093]
    after = [0.062, 0.060, 0.064, 0.059, 0.063, 0.061, 0.066, 0.058]
    den = [1000.0] * 8
    effect = spc.evaluate("p", before, after, [v * 1000 for v in before], den, [v * 1000 for v in after], den)
    assert effect.status == "signal" and effect.signal
    assert "long_run" in effect.rules
    assert effect.direction == "down"
    assert effect.centre_before == pytest.approx(sum(before) / 8)
    assert effect.centre_after == pytest.approx(sum(after) / 8)


def test_noise_after_a_change_is_no_signal_and_few_points_are_too_early() -> None:
    rng = np.random.default_rng(3)
    before = list(50 + rng.normal(0, 2, 12))
    after = [51.0, 49.0, 50.5, 49.5, 50.2, 49.8, 50.4, 49.9, 50.1]
    effect = spc.evaluate("i", before, after)
    assert effect.status == "no_signal" and effect.rules == () and effect.direction is None
    early = spc.evaluate("i", before, after[:4])
    assert early.status == "too_early" and early.min_points == 7
    thin = spc.evaluate("i", before[:3], after)
    assert thin.status == "no_baseline"


def test_one_point_beyond_the_frozen_limits_is_a_shewhart_signal() -> None:
    before = NIST_FLOWRATE
    effect = spc.evaluate("i", before, [50.0, 51.0, 58.0])
    assert effect.rules == ("shewhart",)
    assert effect.outside_high == 1 and effect.direction == "up"
