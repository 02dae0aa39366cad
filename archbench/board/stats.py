"""The board's statistics over seeds: intervals, paired differences, tie letters, rank stability, closest pair.

Pure functions of numbers and of one comparison group's per-seed rows: the rows of one (task, dataset,
preset, phi[, terms]) as :func:`archbench.board.aggregate._ok_rows` produces them (columns ``neck``,
``seed`` and metric columns; one row per neck and seed). Grouping is the caller's job, so that the group
keys keep their one home (``aggregate.GROUP_KEYS``). Metric values are in the metric's own units (AP,
AP50, mIoU: fractions in [0, 1]); differences and interval half-widths are in the same units. A missing
metric (NaN) is left out, never counted as zero.

The distributions and standard tests come from ``scipy.stats`` (Student t quantiles and tails, Welch's
interval, Kendall's tau-b); what is written here is the board's own design (the block model, Holm's
step-down, the letter display, seed splits). The per-pair paired tests, equivalence tests, power and the
agreement of two tiers live in :mod:`archbench.board.pairs` and :mod:`archbench.board.power`.

Method choices, each documented where it is made:

- intervals: Student t over seeds (:func:`mean_ci`) for a neck's mean; for differences of necks, the
  necks x seeds block model (:func:`block_fit`: paired by seed, noise pooled over the necks); Welch for
  unpaired differences (:func:`welch`, what pairing is compared with);
- tied necks: t-tests between every two necks on that model, Holm-corrected at 0.05, shown as a compact
  letter display built by Piepho's insert-absorb algorithm (:func:`tie_letters`);
- rank stability: Kendall tau-b between the neck rankings of two disjoint halves of the seeds, averaged over
  all balanced splits (:func:`rank_stability`);
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

#: The significance level of the tie test (family-wise, after Holm's correction).
ALPHA = 0.05
#: At most this many seed splits are averaged in :func:`rank_stability` (a fixed-seed sample beyond).
MAX_SPLITS = 2000


# ---------------------------------------------------------------------------------------------- t distribution


def t_critical(level: float, df: float) -> float:
    """The two-sided Student-t critical value t_{(1+level)/2, df} (``scipy.stats.t.ppf``; e.g. 4.303 for level
    0.95 and df 2). Dimensionless; NaN for df <= 0 or NaN."""
    return float(st.t.ppf((1.0 + level) / 2.0, df)) if df > 0 else math.nan


def t_half_width(sd: float, n: float, level: float = 0.95) -> float:
    """Half-width of the two-sided ``level`` Student-t interval of a mean: t_{(1+level)/2, n-1} * sd / sqrt(n).

    In the units of ``sd``; NaN for fewer than two values or a NaN ``sd``.
    """
    if not n >= 2 or math.isnan(sd):
        return math.nan
    return t_critical(level, n - 1.0) * sd / math.sqrt(n)


# ---------------------------------------------------------------------------------------------- one sample


def _finite(values: Iterable[float]) -> np.ndarray:
    """The values as a float array, NaNs (missing metrics) left out."""
    arr = np.asarray(list(values), dtype=float)
    return arr[~np.isnan(arr)]


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the two-sided Student-t ``level`` interval over seeds, in the values' units.

    NaNs are left out; the half-width is NaN for one value, and both are NaN for none.
    """
    x = _finite(values)
    if x.size == 0:
        return math.nan, math.nan
    sd = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return float(np.mean(x)), t_half_width(sd, x.size, level)


# ---------------------------------------------------------------------------------------------- paired data


def seed_table(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One group's ``metric`` as a seed x neck table (NaN where a neck lacks a seed or the metric).

    Raises ``ValueError`` when a neck has two rows for one seed: pairing by seed is then undefined.
    """
    dup = rows.duplicated(["neck", "seed"], keep=False)
    if dup.any():
        pairs = sorted({(str(n), str(s)) for n, s in zip(rows.loc[dup, "neck"], rows.loc[dup, "seed"])})
        raise ValueError(f"several rows for one (neck, seed) in a comparison group: {pairs}")
    return rows.pivot(index="seed", columns="neck", values=metric).astype(float).sort_index()


def _sd(x: np.ndarray) -> float:
    """Sample standard deviation (ddof 1); NaN below two values."""
    return float(np.std(x, ddof=1)) if x.size > 1 else math.nan


def welch(a: Iterable[float], b: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """The unpaired difference mean(a) - mean(b): (difference, sd of one difference, Welch CI half-width).

    The sd of one difference of independent draws is sqrt(sd_a^2 + sd_b^2), comparable to the sd of paired
    differences; the half-width is that of Welch's interval (``scipy.stats.ttest_ind(equal_var=False)``:
    standard error sqrt(sd_a^2/n_a + sd_b^2/n_b) on the Welch-Satterthwaite degrees of freedom). Units of the
    values; NaN where a side has fewer than two values, and no width (0) when neither side varies.
    """
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan, math.nan
    diff = float(x.mean() - y.mean())
    sd = math.sqrt(_sd(x) ** 2 + _sd(y) ** 2)
    if math.isnan(sd) or sd == 0.0:
        return diff, sd, sd
    ci = st.ttest_ind(x, y, equal_var=False).confidence_interval(level)
    return diff, sd, float(ci.high - ci.low) / 2.0


@dataclass(frozen=True)
class BlockFit:
    """One group's runs as a block design: metric = neck effect + seed effect + error, fitted by least squares.

    The seeds are the blocks. Paired seeds give every neck of one seed the same data order, augmentation and
    backbone and head weights; what that shares is the seed effect, which the model removes from every
    difference of two necks. The fit uses every observed (neck, seed) value, so a neck that lacks a seed still
    counts; with every neck on the same n seeds (the usual board) it is the randomized complete block design,
    a difference of two necks is the difference of their means, and its standard error is
    sqrt(2 / n) * residual_sd on (k - 1)(n - 1) degrees of freedom for k necks. In general ``df`` is the number
    of values less the rank of the design (0: no interval).

    The residual is pooled over all necks: under the model every pair's per-seed differences have the same sd,
    ``diff_sd`` = sqrt(2) * residual_sd. With 13 necks and 3 seeds a difference's test then has 24 degrees of
    freedom, not the 2 of a paired t-test on that pair alone; with two necks the fit is exactly the paired
    t-test. ``necks`` / ``seeds``: the group's, in the seed table's order; the arrays are the least-squares
    solution of minimum norm (``beta``: k neck then s seed effects), ``cov`` = pinv(X) pinv(X)^T (a contrast's
    variance is residual_sd^2 c^T cov c) and ``projection`` = pinv(X) X (c is estimable iff c^T projection = c^T).
    Metric units.
    """

    necks: tuple[str, ...]
    seeds: tuple[Hashable, ...]
    beta: np.ndarray
    cov: np.ndarray
    projection: np.ndarray
    residual_sd: float
    df: int

    @property
    def diff_sd(self) -> float:
        """The sd of one per-seed difference of two necks (metric units)."""
        return math.sqrt(2.0) * self.residual_sd

    def _contrast(self, c: np.ndarray) -> tuple[float, float]:
        """(estimate, standard error) of the linear function c^T beta; (NaN, NaN) when the data cannot
        estimate it (a neck without values, necks on disjoint seeds); the error is NaN when df is 0."""
        if not np.allclose(c @ self.projection, c, atol=1e-8):
            return math.nan, math.nan
        se = self.residual_sd * math.sqrt(max(0.0, float(c @ self.cov @ c))) if self.df >= 1 else math.nan
        return float(c @ self.beta), se

    def _unit(self, neck: str) -> np.ndarray:
        c = np.zeros(self.beta.size)
        c[self.necks.index(neck)] = 1.0
        return c

    def difference(self, a: str, b: str) -> tuple[float, float]:
        """(a - b, its standard error): the seed-adjusted difference of the two necks (metric units)."""
        if a not in self.necks or b not in self.necks:
            return math.nan, math.nan
        return self._contrast(self._unit(a) - self._unit(b))

    def half_width(self, a: str, b: str, level: float = 0.95) -> float:
        """Half-width of the Student-t ``level`` interval of ``difference(a, b)`` (NaN without one)."""
        se = self.difference(a, b)[1]
        return math.nan if math.isnan(se) else t_critical(level, self.df) * se

    def t_test(self, a: str, b: str) -> tuple[float, float]:
        """(t, two-sided p) that necks ``a`` and ``b`` have the same effect; NaN when it cannot be tested.

        When the standard error is exactly 0, t is infinite (p = 0) unless the difference is 0 (t = 0, p = 1).
        """
        diff, se = self.difference(a, b)
        if math.isnan(se):
            return math.nan, math.nan
        if se == 0.0:
            return (0.0, 1.0) if diff == 0.0 else (math.copysign(math.inf, diff), 0.0)
        t = diff / se
        return t, float(2.0 * st.t.sf(abs(t), self.df))

    def adjusted_means(self) -> pd.Series:
        """Each neck's mean as if it had run every seed of the group (least-squares means: its effect plus the
        average seed effect); equal to its plain mean when every neck has the same seeds. NaN where the data
        cannot estimate it."""
        seeds = np.zeros(self.beta.size)
        seeds[len(self.necks) :] = 1.0 / max(1, len(self.seeds))
        return pd.Series({n: self._contrast(self._unit(n) + seeds)[0] for n in self.necks}, dtype=float)


def block_fit(rows: pd.DataFrame, metric: str) -> BlockFit:
    """The additive neck + seed model of one group's ``metric``, fitted on every value present (see
    :class:`BlockFit`)."""
    table = seed_table(rows, metric)
    values = table.to_numpy(dtype=float)  # [seeds, necks]
    seed_i, neck_i = np.nonzero(~np.isnan(values))
    k, s = values.shape[1], values.shape[0]
    design = np.zeros((seed_i.size, k + s))
    design[np.arange(seed_i.size), neck_i] = 1.0
    design[np.arange(seed_i.size), k + seed_i] = 1.0
    y = values[seed_i, neck_i]
    pinv = np.linalg.pinv(design)
    beta = pinv @ y
    df = int(y.size - (np.linalg.matrix_rank(design) if y.size else 0))
    residual_sd = math.sqrt(float(np.sum((y - design @ beta) ** 2)) / df) if df >= 1 else math.nan
    necks = tuple(str(c) for c in table.columns)
    return BlockFit(necks, tuple(table.index), beta, pinv @ pinv.T, pinv @ design, residual_sd, df)


def _common_seeds(table: pd.DataFrame, a: Hashable, b: Hashable) -> int:
    """How many seeds both necks have a value for."""
    return int((table[a].notna() & table[b].notna()).sum())


# ---------------------------------------------------------------------------------------------- tied necks


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order; NaNs stay NaN and are not counted.

    With m tests sorted ascending, p_adj(i) = max_{j <= i} min(1, (m - j + 1) * p(j)). Written here because
    scipy has no family-wise step-down correction (``scipy.stats.false_discovery_control`` adjusts for the
    false discovery rate only) and statsmodels, which has one, is not in the stack.
    """
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = order.size
    adjusted = np.full(p.shape, math.nan)
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def adjust_p(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """p-values adjusted over their family, in the input order; NaNs stay NaN and are not counted.

    ``method``: ``"holm"`` (:func:`holm`: family-wise error control, the board's default) or ``"bh"`` /
    ``"by"`` (false discovery rate control by Benjamini-Hochberg / Benjamini-Yekutieli,
    ``scipy.stats.false_discovery_control``). A test is significant at level alpha when its adjusted p < alpha.
    """
    if method == "holm":
        return holm(p_values)
    if method not in ("bh", "by"):
        raise ValueError(f"unknown p-value adjustment {method!r}: choose holm, bh or by")
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = st.false_discovery_control(p[valid], method=method)
    return [float(v) for v in adjusted]


def pairwise_tests(rows: pd.DataFrame, metric: str, alpha: float = ALPHA) -> pd.DataFrame:
    """t-tests between every two necks of a group on the block model (:func:`block_fit`), Holm-corrected.

    One row per pair (``a``, ``b`` in neck-name order): ``n_pairs`` (seeds both have), ``diff_mean`` (a - b,
    seed-adjusted) and ``diff_sd`` (sd of one per-seed difference; metric units), ``t``, ``p`` (on the fit's
    df), ``p_holm`` and ``different`` (p_holm < alpha). A pair the fit cannot test (no degrees of freedom, or
    necks not linked through shared seeds) has NaN p and counts as not different: the data cannot tell them
    apart.
    """
    table = seed_table(rows, metric)
    fit = block_fit(rows, metric)
    out = []
    for a, b in itertools.combinations(sorted(str(c) for c in table.columns), 2):
        t, p = fit.t_test(a, b)
        diff = fit.difference(a, b)[0]
        sd = math.nan if math.isnan(diff) else fit.diff_sd
        out.append({"a": a, "b": b, "n_pairs": _common_seeds(table, a, b), "diff_mean": diff, "diff_sd": sd})
        out[-1].update(t=t, p=p)
    tests = pd.DataFrame(out, columns=["a", "b", "n_pairs", "diff_mean", "diff_sd", "t", "p"])
    tests["p_holm"] = holm(tests["p"].tolist())
    tests["different"] = (tests["p_holm"] < alpha).astype(bool)
    return tests


def letter_display(items: Sequence[str], different: Iterable[tuple[str, str]], order: Sequence[str]) -> dict[str, str]:
    """A compact letter display: items sharing a letter are not significantly different.

    Piepho's insert-absorb algorithm (Piepho 2004, J. Comput. Graph. Stat. 13:456): start with one letter for
    all; for each different pair, split every letter holding both into a copy without one and a copy
    without the other, then drop letters whose items another letter already holds. Letters are named in
    ``order`` (best first): 'a' is the letter of the best item. Every different pair then shares no letter
    and every other pair shares at least one.
    """
    columns: list[frozenset[str]] = [frozenset(items)]
    for a, b in different:
        split: list[frozenset[str]] = []
        for col in columns:
            split.extend([col - {a}, col - {b}] if a in col and b in col else [col])
        unique = list(dict.fromkeys(c for c in split if c))
        columns = [c for c in unique if not any(c < other for other in unique)]
    rank = {item: i for i, item in enumerate(order)}
    columns.sort(key=lambda col: sorted(rank[i] for i in col))
    letters = {item: "" for item in items}
    for k, col in enumerate(columns):  # k ascending, so each item's letters come out in order
        for item in col:
            letters[item] += _letter(k)
    return letters


def _letter(k: int) -> str:
    """The k-th letter name: a..z, then A..Z, then a1, b1, ... (more than 52 letters needs more than 52 necks)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return alphabet[k % 52] + (str(k // 52) if k >= 52 else "")


def neck_means(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Each neck's mean ``metric`` over its seeds, best (highest) first, ties by neck name."""
    means = rows.groupby("neck")[metric].mean()
    frame = means.rename("mean").reset_index()
    frame["neg"] = -frame["mean"]
    frame = frame.sort_values(["neg", "neck"], na_position="last")
    return frame.set_index("neck")["mean"]


def verdict_order(rows: pd.DataFrame, metric: str) -> list[str]:
    """The necks best first as the tests see them: by seed-adjusted mean (:meth:`BlockFit.adjusted_means`,
    the plain mean when every neck has the same seeds), ties by name; by plain mean (:func:`neck_means`) when
    some neck's adjusted mean cannot be estimated (necks on disjoint seeds)."""
    adjusted = block_fit(rows, metric).adjusted_means()
    if adjusted.empty or adjusted.isna().any():
        return [str(n) for n in neck_means(rows, metric).index]
    frame = pd.DataFrame({"neck": adjusted.index, "neg": -adjusted.to_numpy()})
    return [str(n) for n in frame.sort_values(["neg", "neck"])["neck"]]


def tie_letters(rows: pd.DataFrame, metric: str, alpha: float = ALPHA) -> dict[str, str]:
    """Tie letters per neck: necks sharing a letter are statistically tied in ``metric``.

    Method: t-tests between every two necks on the block model of necks x seeds (:func:`block_fit`: each
    difference paired by seed, its noise pooled over all necks), Holm-corrected at family-wise ``alpha``
    (:func:`pairwise_tests`; in R, ``emmeans(lm(y ~ neck + seed), pairwise ~ neck, adjust = "holm")``),
    shown as a compact letter display (:func:`letter_display`), 'a' for the letter of the best neck by
    :func:`verdict_order`. Paired because seeds are paired across necks (one seed, one data order and
    initialisation); pooled because a pair's own 2 degrees of freedom at 3 seeds need t > 39 to pass Holm over
    78 pairs (R's ``pairwise.t.test(paired = TRUE)``), which almost no pair of runs reaches, while the pooled
    residual has (k - 1)(n - 1); Holm because it controls the family-wise error like Bonferroni and is uniformly more
    powerful; a letter display because "tied" is not transitive (a ~ b and b ~ c with a != c) and letters
    show that honestly. The pooling assumes every pair is equally noisy; the per-pair paired tests
    (:func:`archbench.board.pairs.paired_tests`, :func:`archbench.board.pairs.paired_letters`) do not, and
    are the primary verdicts, these letters the secondary view.
    """
    return letters_of(pairwise_tests(rows, metric, alpha), verdict_order(rows, metric))


def letters_of(tests: pd.DataFrame, order: Sequence[str]) -> dict[str, str]:
    """The letter display (:func:`letter_display`) of the necks in ``order`` (best first) from a frame of pair
    tests with columns ``a``, ``b`` and ``different`` (:func:`pairwise_tests`, or the per-pair paired tests of
    :func:`archbench.board.pairs.paired_tests`); pairs not in ``tests`` count as tied."""
    different = [(a, b) for a, b, diff in zip(tests["a"], tests["b"], tests["different"]) if diff]
    return letter_display(order, different, order)


# ---------------------------------------------------------------------------------------------- rankings


def kendall_tau_b(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between two paired score vectors (dimensionless, in [-1, 1]; ties handled).

    tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2)), with C / D the concordant / discordant pairs, n0 = n(n-1)/2,
    n1 / n2 the pairs tied in x / y (Kendall 1945; ``scipy.stats.kendalltau(variant="b")``). NaN when fewer
    than two items, one side is all tied, or a value is NaN. Raises ``ValueError`` for unequal lengths.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"kendall_tau_b needs equal lengths, got {a.size} and {b.size}")
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any():
        return math.nan  # scipy would say NaN too, with a warning for the short case
    return float(st.kendalltau(a, b, variant="b").statistic)


def _positions(ranking: Sequence[str | Sequence[str]]) -> dict[str, int]:
    """Item -> position (0 = first) of a ranking given best first; an entry that is a list of items is a tie."""
    pos: dict[str, int] = {}
    for k, entry in enumerate(ranking):
        for item in [entry] if isinstance(entry, str) else entry:
            if item in pos:
                raise ValueError(f"{item!r} appears twice in the ranking {list(ranking)}")
            pos[item] = k
    return pos


@dataclass(frozen=True)
class Agreement:
    """How two rankings of the same items agree.

    ``tau``: Kendall tau-b over the common items (1 = same order, -1 = reversed); ``direction``: the fraction
    of pairs ordered strictly in both rankings that are ordered the same way; ``n_pairs``: those pairs;
    ``items``: the common items, in the first ranking's order.
    """

    tau: float
    direction: float
    n_pairs: int
    items: tuple[str, ...]


def ranking_agreement(first: Sequence[str | Sequence[str]], second: Sequence[str | Sequence[str]]) -> Agreement:
    """Kendall tau-b and agreement of direction between two rankings given best first (e.g. board vs paper).

    Each entry is an item, or a list of items tied at that place. Only items in both rankings count.
    """
    p, q = _positions(first), _positions(second)
    items = tuple(sorted((i for i in p if i in q), key=lambda i: (p[i], i)))
    x, y = [-p[i] for i in items], [-q[i] for i in items]
    sx, sy = (np.sign(np.subtract.outer(v, v))[np.triu_indices(len(v), k=1)] for v in (x, y))
    strict = (sx != 0) & (sy != 0)
    n = int(strict.sum())
    direction = float(np.mean(sx[strict] == sy[strict])) if n else math.nan
    return Agreement(kendall_tau_b(x, y), direction, n, items)


def _splits(seeds: Sequence[Hashable], max_splits: int) -> list[tuple[list[Hashable], list[Hashable]]]:
    """The balanced splits of ``seeds`` into two disjoint halves (sizes floor(n/2) and ceil(n/2)), each
    unordered split once; ``max_splits`` random ones (fixed generator seed 0) when there are more."""
    n, half = len(seeds), len(seeds) // 2
    if n < 2:
        return []
    ordered = list(seeds)
    count = math.comb(n, half) // (2 if 2 * half == n else 1)
    if count > max_splits:
        rng = random.Random(0)
        halves = [rng.sample(ordered, half) for _ in range(max_splits)]
    else:
        # for even n, keep the halves holding the first seed: each unordered split once
        halves = [list(c) for c in itertools.combinations(ordered, half) if 2 * half < n or ordered[0] in c]
    return [(h, [s for s in ordered if s not in h]) for h in halves]


def rank_stability(rows: pd.DataFrame, metric: str, max_splits: int = MAX_SPLITS) -> float:
    """Kendall tau-b between the neck rankings of two disjoint halves of the seeds (dimensionless).

    Each half ranks the necks by their mean ``metric`` over that half's seeds; tau-b compares the two
    rankings over the necks present in both. With 2 seeds this is seed 0 against seed 1. With more, one
    split would depend on which seeds land where, so the tau is averaged over every balanced split (halves
    of floor(n/2) and ceil(n/2) seeds; at most ``max_splits`` of them, a fixed sample beyond). Halves are of
    seed ids, so every neck's half uses the same seeds (paired). NaN with fewer than 2 seeds or 2 necks.
    """
    table = seed_table(rows, metric)
    taus = []
    for a, b in _splits(list(table.index), max_splits):
        ma, mb = table.loc[a].mean(), table.loc[b].mean()
        both = ma.notna() & mb.notna()
        if both.sum() >= 2:
            taus.append(kendall_tau_b(ma[both].to_numpy(), mb[both].to_numpy()))
    taus = [t for t in taus if not math.isnan(t)]
    return float(np.mean(taus)) if taus else math.nan
