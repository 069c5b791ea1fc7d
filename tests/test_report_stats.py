"""Wilson intervals and the one-sided exact drop tests against published / closed-form values."""

import math

import pytest

from vla_bench.report.stats import drop_pvalue, wilson_interval


@pytest.mark.parametrize(
    "successes, n, low, high",
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_table(successes, n, low, high):
    got_low, got_high = wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=5e-5)
    assert got_high == pytest.approx(high, abs=5e-5)


def test_wilson_edges_and_symmetry():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    low, high = wilson_interval(3, 17)
    mirror_low, mirror_high = wilson_interval(14, 17)
    assert low == pytest.approx(1 - mirror_high) and high == pytest.approx(1 - mirror_low)
    # Wider at 99% than at 95%, and the point estimate inside.
    low99, high99 = wilson_interval(3, 17, confidence=0.99)
    assert low99 < low < 3 / 17 < high < high99


@pytest.mark.parametrize("successes, n", [(0, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(successes, n):
    with pytest.raises(ValueError):
        wilson_interval(successes, n)


def test_fisher_known_values():
    # Lady tasting tea: 1 of 4 vs 3 of 4; one-sided p = 17/70.
    assert drop_pvalue(1, 4, 3, 4) == pytest.approx(17 / 70)
    # 0/10 vs 10/10: only the observed table is as extreme; p = 1 / C(20, 10).
    assert drop_pvalue(0, 10, 10, 10) == pytest.approx(1 / math.comb(20, 10))
    # The test is one-sided: a better run gives no evidence of a drop.
    assert drop_pvalue(10, 10, 0, 10) == pytest.approx(1.0)
    assert drop_pvalue(0, 2, 0, 2) == pytest.approx(1.0)


def test_fisher_hypergeometric_tail():
    # P(X <= 2) for X ~ Hypergeometric(total 20, 10 successes in all, 10 drawn for the run).
    tail = sum(math.comb(10, k) * math.comb(10, 10 - k) for k in range(3)) / math.comb(20, 10)
    assert drop_pvalue(2, 10, 8, 10) == pytest.approx(tail)


def test_boschloo_known_values_and_power():
    # 0/10 vs 10/10: the maximum over the nuisance parameter is at 1/2, giving 2^-20.
    assert drop_pvalue(0, 10, 10, 10, test="boschloo") == pytest.approx(0.5**20, rel=1e-6)
    assert drop_pvalue(0, 3, 0, 3, test="boschloo") == 1.0
    assert drop_pvalue(3, 3, 3, 3, test="boschloo") == 1.0
    # Boschloo's unconditional test is never less powerful than Fisher's (here: strictly more).
    for counts in [(0, 40, 5, 40), (20, 50, 30, 50), (40, 50, 45, 50)]:
        assert drop_pvalue(*counts, test="boschloo") < drop_pvalue(*counts, test="fisher")


def test_unknown_test_and_empty_samples():
    with pytest.raises(ValueError):
        drop_pvalue(1, 2, 1, 2, test="chi2")
    with pytest.raises(ValueError):
        drop_pvalue(0, 0, 1, 2)
