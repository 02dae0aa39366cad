"""Per-pair statistics of one comparison group: each pair of necks judged on its own per-seed differences.

The inputs are one comparison group's per-seed rows, as for :mod:`archbench.board.stats` (columns ``neck``,
``seed`` and the metric; one row per neck and seed). For a pair of necks a, b the data are the differences
d_s = a_s - b_s over the seeds s both ran (paired: one seed, one data order and initialisation), in the
metric's units. Unlike the block model of :func:`archbench.board.stats.block_fit`, nothing is pooled over
other necks: a noisy neck widens its own pairs' intervals and changes no other pair's t, p or interval. It
reaches another pair's verdict only through the multiplicity adjustment: under Holm its pairs' larger p-values
move the other pairs earlier in the step-down, which can remove a marginal verdict, never add one. The price
is degrees of freedom, n - 1 per pair for n shared seeds.

Which pairs are tested is the **family** (a list of (a, b) pairs; a - b is the difference tested): every
pair of the group (:func:`all_pairs`, the default), each neck against one reference neck (:func:`against`,
k - 1 tests), or against the best neck (``against(stats.verdict_order(rows, metric)[0], necks)``). The
p-values are adjusted over the family (Holm by default, :func:`archbench.board.stats.adjust_p`): a smaller
family costs less power per test, and the claims then cover that family only.

- :func:`paired_tests`: two-sided paired t-tests, the primary "different" verdicts; :func:`paired_letters`
  shows them as letters;
- :func:`equivalence_tests`: two one-sided tests (TOST) against a stated margin, the only "equal" verdict: a
  pair that is not different ("tied") is not thereby shown equal; it may just be unresolved;
- :func:`typical_diff_sd`: the sd of one per-seed difference typical of a family, for power statements
  (:mod:`archbench.board.power`);
- :func:`tier_agreement`: how well the neck ranking of one group (a quick tier) predicts another's (the
  headline tier): Kendall tau-b with a bootstrap interval over seeds, and the pairs whose verdict flips.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from archbench.board.stats import (
    ALPHA,
    adjust_p,
    block_fit,
    kendall_tau_b,
    letters_of,
    seed_table,
    t_half_width,
    verdict_order,
)

#: A pair of necks (a, b); its tests are on a - b.
Pair = tuple[str, str]
#: The columns of :func:`paired_tests`.
PAIR_COLUMNS = ["a", "b", "n_pairs", "diff_mean", "diff_sd", "t", "p", "diff_ci", "p_adj", "different"]
#: The columns of :func:`equivalence_tests`.
EQUIVALENCE_COLUMNS = [
    "a",
    "b",
    "n_pairs",
    "diff_mean",
    "diff_sd",
    "p_lower",
    "p_upper",
    "p_tost",
    "p_adj",
    "ci_low",
    "ci_high",
    "equivalent",
]


# ---------------------------------------------------------------------------------------------- families


def all_pairs(necks: Iterable[str]) -> list[Pair]:
    """Every pair of ``necks`` once, (a, b) with a before b by name: k (k - 1) / 2 pairs for k necks."""
    return list(itertools.combinations(sorted(set(necks)), 2))


def against(reference: str, necks: Iterable[str]) -> list[Pair]:
    """Each neck of ``necks`` but ``reference`` against it, (neck, reference) by neck name: k - 1 pairs whose
    differences are neck - reference."""
    return [(n, reference) for n in sorted(set(necks)) if n != reference]


def _family(table: pd.DataFrame, family: Sequence[Pair] | None) -> list[Pair]:
    """The pairs to test: ``family`` checked against the group's necks, or every pair when None."""
    necks = [str(c) for c in table.columns]
    if family is None:
        return all_pairs(necks)
    unknown = sorted({n for pair in family for n in pair} - set(necks))
    if unknown:
        raise ValueError(f"the family names necks without runs in this group: {unknown}")
    if any(a == b for a, b in family):
        raise ValueError("a pair of the family compares a neck with itself")
    return [(str(a), str(b)) for a, b in family]


def _differences(table: pd.DataFrame, a: str, b: str) -> np.ndarray:
    """The per-seed differences a - b over the seeds both have a value for (metric units)."""
    both = table[[a, b]].dropna()
    return (both[a] - both[b]).to_numpy(dtype=float)


def _one_sample_t(d: np.ndarray, popmean: float, alternative: str) -> tuple[float, float]:
    """(t, p) of the one-sample t-test that the mean of ``d`` is ``popmean`` (``scipy.stats.ttest_1samp``,
    ``alternative`` 'two-sided', 'greater' or 'less'); needs two or more values.

    Differences without spread (all equal, up to rounding: a range below 1e-12 of the largest |difference|)
    give t = 0 when their mean equals ``popmean`` and t = +-inf otherwise, with the p-value of that t; scipy
    would return NaN there, or with rounding-level spread, an unreliable t and a warning.
    """
    if float(np.ptp(d)) > 1e-12 * float(np.abs(d).max()):
        res = st.ttest_1samp(d, popmean, alternative=alternative)
        return float(res.statistic), float(res.pvalue)
    gap = float(d.mean()) - popmean
    t = 0.0 if gap == 0.0 else math.copysign(math.inf, gap)
    df = d.size - 1
    tails = {"two-sided": 2.0 * st.t.sf(abs(t), df), "greater": st.t.sf(t, df), "less": st.t.cdf(t, df)}
    return t, float(min(1.0, tails[alternative]))


def _sd(d: np.ndarray) -> float:
    """The sample sd of the differences (ddof 1); NaN below two."""
    return float(np.std(d, ddof=1)) if d.size > 1 else math.nan


def _describe(a: str, b: str, d: np.ndarray) -> dict[str, object]:
    """A pair's row before its tests: the necks, ``n_pairs``, ``diff_mean`` (NaN without seeds), ``diff_sd``."""
    return {"a": a, "b": b, "n_pairs": d.size, "diff_mean": float(d.mean()) if d.size else math.nan, "diff_sd": _sd(d)}


# ---------------------------------------------------------------------------------------------- tests


def paired_tests(
    rows: pd.DataFrame,
    metric: str,
    family: Sequence[Pair] | None = None,
    alpha: float = ALPHA,
    level: float = 0.95,
    adjust: str = "holm",
) -> pd.DataFrame:
    """Each pair of the family tested on its own per-seed differences: the board's primary verdicts.

    One row per pair of ``family`` (None: :func:`all_pairs` of the group's necks), in the family's order, with
    ``PAIR_COLUMNS``: ``a``, ``b``; ``n_pairs``, the seeds both ran; ``diff_mean``, the mean of a - b over them,
    and ``diff_sd``, the sd of one per-seed difference (metric units); ``t`` and ``p``, the two-sided paired
    t-test on n_pairs - 1 degrees of freedom (``scipy.stats.ttest_1samp`` of the differences against 0: the
    same test as ``ttest_rel``); ``diff_ci``, the half-width of the pair's Student-t ``level`` interval of the
    mean difference, t_{(1+level)/2, n-1} * diff_sd / sqrt(n) (metric units; not adjusted for multiplicity);
    ``p_adj``, p adjusted over the family (``adjust``: :func:`archbench.board.stats.adjust_p`); ``different``,
    p_adj < ``alpha``. A pair with fewer than two shared seeds has NaN sd, t, p and interval (``diff_mean``
    is its one difference, or NaN with none), is not counted in the adjustment, and is not different.
    Raises ``ValueError`` when the family names a neck without runs in the group.
    """
    table = seed_table(rows, metric)
    out = []
    for a, b in _family(table, family):
        d = _differences(table, a, b)
        row = _describe(a, b, d)
        t, p = _one_sample_t(d, 0.0, "two-sided") if d.size >= 2 else (math.nan, math.nan)
        row.update(t=t, p=p, diff_ci=t_half_width(_sd(d), d.size, level))
        out.append(row)
    tests = pd.DataFrame(out, columns=PAIR_COLUMNS[:-2])
    tests["p_adj"] = adjust_p(tests["p"].tolist(), adjust)
    tests["different"] = (tests["p_adj"] < alpha).astype(bool)
    return tests


def paired_letters(rows: pd.DataFrame, metric: str, alpha: float = ALPHA, adjust: str = "holm") -> dict[str, str]:
    """Letters from the per-pair paired tests over every pair of the group (:func:`paired_tests`): necks
    sharing a letter are not told apart, 'a' for the best neck by :func:`archbench.board.stats.verdict_order`
    (:func:`archbench.board.stats.letter_display`). The pooled block-model letters
    (:func:`archbench.board.stats.tie_letters`) are the secondary view."""
    return letters_of(paired_tests(rows, metric, None, alpha, adjust=adjust), verdict_order(rows, metric))


def equivalence_tests(
    rows: pd.DataFrame,
    metric: str,
    margin: float = 0.02,
    alpha: float = ALPHA,
    family: Sequence[Pair] | None = None,
    adjust: str = "holm",
) -> pd.DataFrame:
    """Two one-sided tests (TOST, Schuirmann 1987) per pair that its true mean difference lies within
    +-``margin`` (metric units, e.g. 0.02 AP), each pair on its own per-seed differences.

    One row per pair of ``family`` (None: every pair), in its order, with ``EQUIVALENCE_COLUMNS``: ``a``, ``b``,
    ``n_pairs``, ``diff_mean``, ``diff_sd`` as in :func:`paired_tests`; ``p_lower``, the one-sided t-test that the
    mean exceeds -margin (``scipy.stats.ttest_1samp(d, -margin, alternative="greater")``), ``p_upper``, that it
    is below +margin (``ttest_1samp(d, margin, alternative="less")``), ``p_tost`` = max of the two; ``p_adj``,
    p_tost adjusted over the family (``adjust``, Holm by default); ``equivalent``, p_adj < ``alpha``: the
    pair is shown equal within the margin. ``ci_low`` / ``ci_high``: the (1 - 2 alpha) Student-t interval of the
    mean difference (90 % at alpha 0.05), which lies inside +-margin exactly when the unadjusted p_tost < alpha;
    the adjusted verdict is stricter. A pair with fewer than two shared seeds is NaN and not equivalent.

    Only this test says "equal": a pair that :func:`paired_tests` leaves not different may differ by more than
    the margin and simply be unresolved at these seeds.
    """
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    table = seed_table(rows, metric)
    out = []
    for a, b in _family(table, family):
        d = _differences(table, a, b)
        row = _describe(a, b, d)
        if d.size >= 2:
            lower = _one_sample_t(d, -margin, "greater")[1]
            upper = _one_sample_t(d, margin, "less")[1]
            half = t_half_width(_sd(d), d.size, 1.0 - 2.0 * alpha)
            mean = float(row["diff_mean"])  # type: ignore[arg-type]
            row.update(p_lower=lower, p_upper=upper, p_tost=max(lower, upper), ci_low=mean - half, ci_high=mean + half)
        out.append(row)
    tests = pd.DataFrame(out, columns=EQUIVALENCE_COLUMNS[:-3] + ["ci_low", "ci_high"])
    tests["p_adj"] = adjust_p(tests["p_tost"].tolist(), adjust)
    tests["equivalent"] = (tests["p_adj"] < alpha).astype(bool)
    return tests[EQUIVALENCE_COLUMNS]


# ---------------------------------------------------------------------------------------------- power


@dataclass(frozen=True)
class DiffSd:
    """The sd of one per-seed difference typical of a family of pairs (metric units).

    ``typical``: the root mean square of the pairs' own sds, sqrt(mean of s_ab^2), each pair with two or more
    shared seeds weighted equally; ``pairs``: how many pairs it averages. ``pooled``: the block model's
    estimate for the whole group (:attr:`archbench.board.stats.BlockFit.diff_sd`), for comparison. When every
    neck ran the same seeds and the family is every pair, the two are equal (the block model's residual sum of
    squares is the pairs' sums of squares over k), so they part only for a smaller family or missing runs.
    """

    typical: float
    pooled: float
    pairs: int


def typical_diff_sd(rows: pd.DataFrame, metric: str, family: Sequence[Pair] | None = None) -> DiffSd:
    """The sd of one per-seed difference typical of ``family`` (None: every pair), see :class:`DiffSd`.

    Root mean square, not mean or median of the sds: power depends on the variance, and the mean of sample
    variances is unbiased for the mean variance while sample sds are biased low. Equal weights: each pair is
    one test of the family, and with every neck on the same seeds they are equal degrees-of-freedom weights
    too. For :func:`archbench.board.power.min_detectable_difference`, with the family's size as ``tests``.
    NaN ``typical`` with no pair of two or more shared seeds.
    """
    table = seed_table(rows, metric)
    variances = [s**2 for a, b in _family(table, family) if not math.isnan(s := _sd(_differences(table, a, b)))]
    typical = math.sqrt(float(np.mean(variances))) if variances else math.nan
    return DiffSd(typical, block_fit(rows, metric).diff_sd, len(variances))


# ---------------------------------------------------------------------------------------------- two tiers


@dataclass(frozen=True)
class TierAgreement:
    """How well one group's neck ranking (the first tier, e.g. 8 epochs) predicts another's (the second, e.g.
    24 epochs) over the necks both ran.

    ``tau``: Kendall tau-b between the necks' mean metric in the two tiers (dimensionless; 1 = same order);
    ``low`` / ``high``: its percentile bootstrap interval over seeds, from ``n_boot`` resamples with a defined
    tau; ``necks``: the common necks, best first by the first tier's mean. ``pairs``: one row per pair of them
    (``a``, ``b`` by name) with each tier's per-pair verdict (``first``, ``second``: ``"a>b"``, ``"b>a"`` or
    ``"unresolved"``, from :func:`paired_tests` over all pairs of the common necks), each tier's mean
    difference a - b (``first_diff``, ``second_diff``; metric units) and ``flip``, True where the verdicts
    differ. A pair resolved in one tier and unresolved in the other is a flip, as is a reversal.
    """

    tau: float
    low: float
    high: float
    n_boot: int
    necks: tuple[str, ...]
    pairs: pd.DataFrame

    @property
    def flips(self) -> pd.DataFrame:
        """The rows of ``pairs`` whose verdict differs between the tiers."""
        return self.pairs[self.pairs["flip"]]


def _mean_tau(first: np.ndarray, second: np.ndarray) -> float:
    """Kendall tau-b between the column means of two [seeds, necks] arrays, NaNs left out, over the necks with
    a mean in both; NaN with fewer than two such necks."""
    means = []
    for values in (first, second):
        count = np.sum(~np.isnan(values), axis=0)
        total = np.nansum(values, axis=0)
        means.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    both = ~np.isnan(means[0]) & ~np.isnan(means[1])
    return kendall_tau_b(means[0][both], means[1][both]) if both.sum() >= 2 else math.nan


def _verdicts(tests: pd.DataFrame) -> pd.Series:
    """'a>b' / 'b>a' for the different pairs of a :func:`paired_tests` frame by the sign of the difference,
    'unresolved' for the rest."""
    verdict = np.where(tests["diff_mean"] > 0, "a>b", "b>a")
    return pd.Series(np.where(tests["different"], verdict, "unresolved"), index=tests.index)


def tier_agreement(
    rows_a: pd.DataFrame,
    rows_b: pd.DataFrame,
    metric: str,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    alpha: float = ALPHA,
) -> TierAgreement:
    """Kendall tau-b between the neck rankings (by mean ``metric``) of two groups of the same necks, with a
    percentile bootstrap ``level`` interval over seeds and the pairs whose verdict differs (see
    :class:`TierAgreement`). ``rows_a`` / ``rows_b``: the two groups' per-seed rows (e.g. one phi's 8-epoch
    and 24-epoch runs); only necks with a value in both count.

    The bootstrap resamples seed ids with replacement, keeping each tier's number of seeds, stratified: the
    seeds both tiers ran are drawn once and used in both (seed s of the two tiers shares initialisation and
    data order, so their errors may be correlated and must move together), the seeds of one tier only are
    drawn within that tier. Each resample ranks the necks by their mean over the drawn seeds in each tier (a
    neck that lacks a drawn seed averages over the drawn seeds it has) and takes tau-b; resamples with an
    undefined tau are dropped (``n_boot`` counts those kept). ``seed`` fixes the generator
    (``numpy.random.default_rng``), so the interval is reproducible. Hand-written rather than
    ``scipy.stats.bootstrap``, which resamples one set of observations, not two tables with a shared stratum.
    With few seeds the percentile interval is too narrow (3 seeds have 10 distinct resamples), read it as a
    lower bound on the uncertainty. The verdicts: :func:`paired_tests` over every pair of the common necks in
    each tier, Holm at ``alpha``, the same family in both so that a flip is not an artefact of the correction.
    """
    ta, tb = seed_table(rows_a, metric), seed_table(rows_b, metric)
    common = [n for n in ta.columns if n in tb.columns and ta[n].notna().any() and tb[n].notna().any()]
    means = ta[common].mean()
    necks = tuple(sorted((str(n) for n in common), key=lambda n: (-means[n], n)))
    va, vb = ta[list(necks)].to_numpy(dtype=float), tb[list(necks)].to_numpy(dtype=float)
    shared = [s for s in ta.index if s in tb.index]
    shared_a = np.array([ta.index.get_loc(s) for s in shared], dtype=int)
    shared_b = np.array([tb.index.get_loc(s) for s in shared], dtype=int)
    only_a = np.array([i for i, s in enumerate(ta.index) if s not in tb.index], dtype=int)
    only_b = np.array([i for i, s in enumerate(tb.index) if s not in ta.index], dtype=int)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        draw = rng.integers(0, max(1, shared_a.size), shared_a.size)  # one draw of the shared seeds, both tiers
        pick_a = np.concatenate([shared_a[draw], rng.choice(only_a, only_a.size)])
        pick_b = np.concatenate([shared_b[draw], rng.choice(only_b, only_b.size)])
        taus.append(_mean_tau(va[pick_a], vb[pick_b]))
    kept = np.array([t for t in taus if not math.isnan(t)])
    low, high = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2]) if kept.size else (math.nan, math.nan)
    family = all_pairs(necks)
    first, second = paired_tests(rows_a, metric, family, alpha), paired_tests(rows_b, metric, family, alpha)
    pairs = pd.DataFrame(
        {
            "a": first["a"],
            "b": first["b"],
            "first": _verdicts(first),
            "second": _verdicts(second),
            "first_diff": first["diff_mean"],
            "second_diff": second["diff_mean"],
        }
    )
    pairs["flip"] = pairs["first"] != pairs["second"]
    return TierAgreement(_mean_tau(va, vb), float(low), float(high), int(kept.size), necks, pairs)
