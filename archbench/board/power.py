"""Power of the paired t-test, exactly: what n paired seeds can detect, and what a stated effect needs.

A paired comparison of two necks over n seeds tests the mean of n per-seed differences a - b, whose sd is
``sd`` (metric units, e.g. AP), with a two-sided one-sample t-test on n - 1 degrees of freedom. When the true
mean difference is ``delta``, its t statistic follows the noncentral t distribution with n - 1 degrees of
freedom and noncentrality delta * sqrt(n) / sd (``scipy.stats.nct``), so the power, the chance that the test
rejects, is exact; no normal or central-t approximation.

A family of ``tests`` comparisons controlled by Holm's step-down correction at family-wise ``alpha`` tests its
first (smallest-p) pair at alpha / tests, Bonferroni's level, and later pairs at levels up to alpha. Every
statement here uses alpha / tests, so it holds for every pair of the family whatever its place in Holm's
order (for the first pair it is exact, for the others conservative).

Pure functions of numbers; differences and sds in the metric's units, power and alpha as probabilities.
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as st

#: Beyond this many seeds :func:`seeds_for_effect` says inf (no practical number).
MAX_SEEDS = 1_000_000


def paired_t_power(delta: float, sd: float, n: int, alpha: float, tests: int = 1) -> float:
    """The probability that a two-sided paired t-test on ``n`` seeds at level ``alpha`` / ``tests`` rejects when
    the true mean difference is ``delta`` and one per-seed difference has sd ``sd`` (both metric units).

    Power = P(T > c) + P(T < -c) with c = t_{1 - a/2, n-1}, a = alpha / tests, and T noncentral t on n - 1
    degrees of freedom with noncentrality nc = delta * sqrt(n) / sd. At delta = 0 it is the test's size a. NaN
    for n < 2 or a NaN input; with sd = 0, 1 for a non-zero delta (a difference without noise is always seen).
    The far tail P(T < -c) is taken as P(T' > c) for T' of noncentrality -nc: the same number, but scipy's
    ``nct.cdf`` returns NaN for some tiny lower tails (e.g. df 9, nc 6.24, c 5.10) while ``nct.sf`` does not.
    """
    if n < 2 or math.isnan(delta) or math.isnan(sd):
        return math.nan
    a = alpha / tests
    if sd == 0.0:
        return 1.0 if delta != 0.0 else a
    df = n - 1
    crit = float(st.t.ppf(1.0 - a / 2.0, df))
    nc = delta * math.sqrt(n) / sd
    return float(st.nct.sf(crit, df, nc) + st.nct.sf(crit, df, -nc))


def min_detectable_difference(sd: float, n: int, alpha: float, tests: int, power: float = 0.8) -> float:
    """The smallest true mean paired difference that a two-sided paired t-test on ``n`` seeds detects with
    probability ``power`` at level ``alpha`` / ``tests`` (see the module doc for why Bonferroni's level).

    Solves :func:`paired_t_power` (delta) = ``power`` for delta > 0 with ``scipy.optimize.brentq``. In the units of
    ``sd`` (the sd of one per-seed difference). NaN for n < 2 or a NaN ``sd``; 0 when ``sd`` is 0.
    """
    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0.0:
        return 0.0

    def shortfall(delta: float) -> float:
        return paired_t_power(delta, sd, n, alpha, tests) - power

    hi = sd
    while shortfall(hi) < 0.0:  # power rises with delta from alpha / tests (< power) towards 1
        hi *= 2.0
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-12 * sd, rtol=1e-12))


def seeds_for_effect(effect: float, sd: float, alpha: float, tests: int, power: float = 0.8) -> float:
    """The smallest number of paired seeds n >= 2 at which a two-sided paired t-test at level ``alpha`` /
    ``tests`` detects a true mean difference ``effect`` with probability at least ``power``
    (:func:`paired_t_power`); ``effect`` and ``sd`` (of one per-seed difference) in the same units.

    A count for a stated effect (e.g. 0.02 or 0.04 AP), not for an observed one. The power grows with n, so the
    answer is found by doubling n, then bisecting. inf when ``effect`` is 0 or more than ``MAX_SEEDS`` seeds would
    be needed; NaN when either input is NaN. Returned as a float so that inf and NaN fit.
    """
    if math.isnan(effect) or math.isnan(sd):
        return math.nan
    if effect == 0.0:
        return math.inf

    def enough(n: int) -> bool:
        return paired_t_power(abs(effect), sd, n, alpha, tests) >= power

    lo, hi = 1, 2  # enough(lo) is false (one seed has no sd), enough(hi) is to be found
    while not enough(hi):
        if hi >= MAX_SEEDS:
            return math.inf
        lo, hi = hi, min(2 * hi, MAX_SEEDS)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return float(hi)
