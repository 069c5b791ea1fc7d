"""Binomial statistics for success rates: Wilson score intervals and one-sided exact drop tests."""

from __future__ import annotations

import math

from scipy import stats

DROP_TESTS = {
    "fisher": "one-sided Fisher's exact test (conditional on the total successes; conservative)",
    "boschloo": "one-sided Boschloo's exact test (unconditional; never less powerful than Fisher's; slow on large counts)",
}
# Barnard's test (Wald statistic) is not offered: on LIBERO-like counts it is sometimes less powerful
# than Fisher's (0/40 vs 5/40: p 0.056 vs 0.027), whereas Boschloo's is uniformly at least as powerful.


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction).

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is not degenerate at 0/n or n/n,
    which matters for the 5-50 episode counts typical of LIBERO evaluations.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} outside 0..{n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1; floating point gives 1 - 1e-16, so pin it.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def drop_pvalue(run_successes: int, run_n: int, ref_successes: int, ref_n: int, test: str = "fisher") -> float:
    """p-value of H0 "the run's success probability is not below the reference's" against
    H1 "it is below", from two binomial samples (successes out of n each)."""
    if test not in DROP_TESTS:
        raise ValueError(f"unknown test {test!r}; known: {', '.join(DROP_TESTS)}")
    if run_n <= 0 or ref_n <= 0:
        raise ValueError("drop_pvalue needs at least one trial on each side")
    # Rows: run, reference; columns: successes, failures. "less" = the run's odds of success are lower.
    table = [[run_successes, run_n - run_successes], [ref_successes, ref_n - ref_successes]]
    if test == "fisher":
        return float(stats.fisher_exact(table, alternative="less").pvalue)
    if run_successes + ref_successes in (0, run_n + ref_n):
        return 1.0  # all failures or all successes on both sides: no evidence of a drop (scipy gives NaN)
    return float(stats.boschloo_exact(table, alternative="less").pvalue)
