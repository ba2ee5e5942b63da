"""The quantile interval as the inversion of a test of ``theta = t``, for tied outcomes.

The lower quantile ``theta = min{t : F(t) >= q}`` satisfies ``F(theta-) < q <= F(theta)``.
The test of ``theta = t`` rejects when ``F(t)`` is significantly below ``q`` or the left
limit ``F(t-)`` significantly above it; the interval is the set of ``t`` not rejected.
References here are computed from the definitions: indicator means at every breakpoint,
at a point inside every gap between breakpoints and outside the data, order statistics,
hand-computed z statistics, and the exact multinomial coverage of the classical interval
on a real table of earnings recorded in whole dollars (``fixtures/psid_earnings.csv``).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppinfer
import ppinfer.models.quantile

FIXTURES = Path(__file__).parent / "fixtures"
#: the references below use 1/n-normalised variances (HC0) and normal critical values
HC0 = dict(cov_type="HC0", use_t=False)
LEVELS = [0.1, 0.25, 0.5, 0.75, 0.9]


def rectified(y, f, fu, t, lam, strict=False):
    """F(t; lam) and its standard error from the indicators; ``strict`` gives F(t-)."""
    below = np.less if strict else np.less_equal
    iy, i_f, iu = below(y, t).astype(float), below(f, t).astype(float), below(fu, t).astype(float)
    value = lam * iu.mean() + (iy - lam * i_f).mean()
    return value, math.sqrt(lam**2 * iu.var() / fu.size + (iy - lam * i_f).var() / y.size)


def accepts(y, f, fu, t, q, lam, z, alternative, rule="new"):
    at, se = rectified(y, f, fu, t, lam)
    if rule == "old":  # the test of F(t) = q alone
        return {"two-sided": abs(at - q) <= z * se, "larger": at - q >= -z * se, "smaller": at - q <= z * se}[alternative]
    before, se_before = rectified(y, f, fu, t, lam, strict=True)
    not_low, not_high_before = at - q >= -z * se, before - q <= z * se_before
    return {"two-sided": not_low and not_high_before, "larger": not_low, "smaller": not_high_before}[alternative]


def interval_by_definition(y, f, fu, q, lam, alpha, alternative, rule="new"):
    """Infimum and supremum of the values the test accepts.

    ``F`` is constant between breakpoints, so testing every breakpoint, one point inside
    every gap and one point beyond each end of the data decides every real ``t``; an
    accepted gap ``(t_k, t_{k+1})`` contributes ``t_k`` and ``t_{k+1}`` (its infimum and
    supremum), an accepted breakpoint itself. The old rule's set is the union of
    ``[t_k, t_{k+1})`` over breakpoints with ``|F(t_k) - q| <= z s(t_k)``.
    """
    z = stats.norm.isf(alpha / 2 if alternative == "two-sided" else alpha)
    knots = np.unique(np.concatenate([y, f, fu]) if lam != 0 else y)
    ends = []
    for k, t in enumerate(knots):
        if accepts(y, f, fu, t, q, lam, z, alternative, rule):
            ends.append((t, knots[k + 1] if rule == "old" and k + 1 < knots.size else (np.inf if rule == "old" else t)))
    inside = [(knots[k], knots[k + 1], (knots[k] + knots[k + 1]) / 2) for k in range(knots.size - 1)]
    inside += [(-np.inf, knots[0], knots[0] - 1.0), (knots[-1], np.inf, knots[-1] + 1.0)]
    if rule == "new":
        ends += [(a, b) for a, b, t in inside if accepts(y, f, fu, t, q, lam, z, alternative)]
    if not ends:
        return np.nan, np.nan
    lower, upper = min(a for a, _ in ends), max(b for _, b in ends)
    if alternative == "larger":
        upper = np.inf
    elif alternative == "smaller":
        lower = -np.inf
    return lower, upper


def tied_data(seed, n=41, N=203, *, scale=2.0, anticorrelated=False):
    """Outcomes in whole units (``scale = 0.7``: five to seven distinct values, atoms
    larger than the standard error); predictions rounded to 0.5 units. With
    ``anticorrelated`` the predictions run against the outcome: F(t; lam) is far from
    monotone."""
    rng = np.random.default_rng(seed)
    y = np.round(rng.gamma(3.0, scale, n + N))
    sign = -1.0 if anticorrelated else 1.0
    f = np.round(2 * (6.0 + sign * (y - 6.0) + rng.normal(0.0, 1.5, n + N))) / 2
    return y[:n], f[:n], f[n:]


@pytest.mark.parametrize("chunk", [1, 5, ppinfer.models.quantile.SCAN_CHUNK], ids=["chunk1", "chunk5", "default"])
def test_interval_is_the_set_the_test_accepts(monkeypatch, chunk):
    monkeypatch.setattr(ppinfer.models.quantile, "SCAN_CHUNK", chunk)
    alpha, differs = 0.1, 0
    for data in (tied_data(3), tied_data(4, anticorrelated=True), tied_data(1, scale=0.7)):
        model = ppinfer.Quantile(*data, q=LEVELS)
        for lam in (0.0, 0.4, 1.0):
            result = model.fit(**HC0, lam=lam)
            for alternative in ("two-sided", "larger", "smaller"):
                interval = result.conf_int(alpha=alpha, alternative=alternative)
                for q in LEVELS:
                    expected = interval_by_definition(*data, q, lam, alpha, alternative)
                    actual = interval.loc[f"q={q:g}"].to_numpy()
                    assert np.array_equal(actual, expected, equal_nan=True), (lam, alternative, q, actual, expected)
                    differs += expected != interval_by_definition(*data, q, lam, alpha, alternative, rule="old")
    # the data exercise the left limit: there the test of F(t) = q alone accepts another set
    assert differs >= 5


def test_large_atom_gives_the_atom():
    """60% of the outcomes equal 2: F jumps from 20/101 to 80/101 at the median, and
    only t = 2 is accepted. The test of F(t) = q alone accepts nothing."""
    y = np.repeat([1.0, 2.0, 3.0], [20, 60, 21])
    model = ppinfer.Quantile(y, y, y, q=0.5)
    result = model.fit(**HC0, method="classical")
    assert result.params.iloc[0] == 2.0
    assert tuple(result.conf_int().iloc[0]) == (2.0, 2.0)
    # by hand: at t = 1, F = 20/101 is below 0.5 - 1.96 s; at t = 3, F(3-) = 80/101 above 0.5 + 1.96 s
    z = stats.norm.isf(0.025)
    for p, side in ((20 / 101, -1), (80 / 101, 1)):
        assert side * (p - 0.5) > z * math.sqrt(p * (1 - p) / 101)
    assert result.test(null=2.0)["pvalue"].iloc[0] == 1.0
    assert np.isnan(interval_by_definition(y, y, y, 0.5, 0.0, 0.05, "two-sided", rule="old")[0])


@pytest.mark.parametrize("q", [0.25, 0.5, 0.8])
def test_classical_interval_is_the_order_statistic_interval_with_ties(q):
    """lam = 0: lower = y_(a), a the first rank with k/n >= q - z sqrt(k/n (1 - k/n) / n),
    upper = y_(b+1), b the last rank with k/n <= q + z sqrt(...): both ends included."""
    y, f, fu = tied_data(7, n=57, N=300)
    n, order = y.size, np.sort(y)
    z = stats.norm.isf(0.025)
    ranks = np.arange(1, n + 1) / n
    half = z * np.sqrt(ranks * (1 - ranks) / n)
    a = np.flatnonzero(ranks >= q - half)[0] + 1
    b = np.flatnonzero(ranks <= q + half)[-1] + 1
    result = ppinfer.Quantile(y, f, fu, q=q).fit(**HC0, method="classical")
    lower, upper = result.conf_int().iloc[0]
    assert (lower, upper) == (order[a - 1], order[b])
    assert np.unique(y).size < n / 3, "heavily tied"
    # both ends are accepted by the test; values just outside are rejected
    pvalues = {t: result.test(null=t)["pvalue"].iloc[0] for t in (lower - 0.5, lower, upper, upper + 0.5)}
    assert pvalues[lower] > 0.05 and pvalues[upper] > 0.05, pvalues
    assert pvalues[lower - 0.5] <= 0.05 and pvalues[upper + 0.5] <= 0.05, pvalues


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_statistics_are_the_two_one_sided_z_scores(lam):
    y, f, fu = tied_data(9)
    q = 0.5
    result = ppinfer.Quantile(y, f, fu, q=q).fit(**HC0, lam=lam)
    inference = result._inference
    median = np.median(y)
    for t in (median, median + 0.25, median - 1.0, np.max(y) + 1.0, np.sort(f)[10]):
        at, se = rectified(y, f, fu, t, lam)
        before, se_before = rectified(y, f, fu, t, lam, strict=True)
        with np.errstate(divide="ignore"):  # beyond the data F is 1 with no variance: z = -inf
            above = (q - at) / se  # evidence that theta > t
            below = (before - q) / se_before  # evidence that theta < t
        two_sided = 0.0 if max(above, below) <= 0 else (above if above >= below else -below)
        tested = result.test(null=t).iloc[0]
        assert tested["statistic"] == pytest.approx(two_sided, rel=1e-9, abs=1e-12), t
        assert tested["pvalue"] == pytest.approx(min(1.0, 2 * stats.norm.sf(max(above, below))), rel=1e-8), t
        null = np.array([t])
        assert inference.statistic(null, "larger")[0] == pytest.approx(above, rel=1e-9)
        assert inference.statistic(null, "smaller")[0] == pytest.approx(-below, rel=1e-9)


# --------------------------------------------------------------------------------------
# Monte Carlo: a real outcome in whole dollars, and the same outcome made continuous
# --------------------------------------------------------------------------------------
NOMINAL, REPS, N_LABELED, N_UNLABELED = 0.90, 400, 300, 3000
TOLERANCE = 3.5 * math.sqrt(NOMINAL * (1 - NOMINAL) / REPS)
#: at 20,000 dollars F jumps from 0.5986 to 0.6246: q = 0.6 sits at the bottom of the atom
LEVEL = 0.6


@pytest.fixture(scope="module")
def psid():
    table = pd.read_csv(FIXTURES / "psid_earnings.csv")
    return np.log(table["earnings"].to_numpy(float)), table["prediction"].to_numpy()


def exact_classical_coverage(population, theta, q, n, z):
    """P(the classical test accepts theta): #{y < theta} and #{y = theta} are multinomial."""
    p_below, p_atom = np.mean(population < theta), np.mean(population == theta)
    below = np.arange(n + 1)
    total = 0.0
    for k0 in below:
        atom = np.arange(n - k0 + 1)
        k1 = k0 + atom
        ok_low = k1 / n >= q - z * np.sqrt(k1 / n * (1 - k1 / n) / n)
        ok_high = k0 / n <= q + z * math.sqrt(k0 / n * (1 - k0 / n) / n)
        weights = stats.binom.pmf(atom, n - k0, p_atom / (1 - p_below))
        total += stats.binom.pmf(k0, n, p_below) * ok_high * weights[ok_low].sum()
    return total


def replicate(y, f, q, seed):
    """Coverage of the reported interval, the hand tests' acceptance at theta and the
    agreement of the package's p-value with the hand test, per method."""
    theta = float(np.quantile(y, q, method="inverted_cdf"))
    z = stats.norm.isf((1 - NOMINAL) / 2)
    counts = {m: np.zeros(4) for m in ("classical", "ppi", "ppi++")}
    for child in np.random.SeedSequence(seed).spawn(REPS):
        rng = np.random.default_rng(child)
        labeled, unlabeled = rng.integers(0, y.size, N_LABELED), rng.integers(0, y.size, N_UNLABELED)
        data = (y[labeled], f[labeled], f[unlabeled])
        model = ppinfer.Quantile(*data, q=q)
        for method in counts:
            result = model.fit(**HC0, method=method)
            lower, upper = result.conf_int(1 - NOMINAL).iloc[0]
            new = accepts(*data, theta, q, float(result.lam), z, "two-sided")
            old = accepts(*data, theta, q, float(result.lam), z, "two-sided", rule="old")
            agrees = (result.test(null=theta)["pvalue"].iloc[0] > 1 - NOMINAL) == new
            counts[method] += (lower <= theta <= upper, new, old, agrees)
    return theta, {m: c / REPS for m, c in counts.items()}


@pytest.mark.montecarlo
def test_coverage_for_earnings_in_whole_dollars(psid):
    y, f = psid
    theta, rates = replicate(y, f, LEVEL, seed=11)
    assert np.mean(y < theta) < LEVEL < np.mean(y <= theta) - 0.02, "q sits inside an atom of 2.6%"
    exact = exact_classical_coverage(y, theta, LEVEL, N_LABELED, stats.norm.isf((1 - NOMINAL) / 2))
    exact_tolerance = 3.5 * math.sqrt(exact * (1 - exact) / REPS)
    coverage, new, old, agrees = rates["classical"]
    assert abs(coverage - exact) <= exact_tolerance, (coverage, exact)
    assert coverage == new  # classical: the interval is exactly the accepted set
    for method, (coverage, new, old, agrees) in rates.items():
        assert agrees == 1.0, method  # p-value and interval invert the same test
        assert coverage >= new  # the interval holds every accepted value
        assert new >= NOMINAL - TOLERANCE, (method, rates)
        # the test of F(t) = q alone rejects the true quantile far too often here
        assert old < NOMINAL - TOLERANCE, (method, rates)


@pytest.mark.montecarlo
def test_coverage_for_the_same_earnings_without_ties(psid):
    y, f = psid
    # move every value within its dollar once: the same shape, no ties
    jittered = np.log(np.exp(y) + np.random.default_rng(5).uniform(-0.5, 0.5, y.size))
    assert np.unique(jittered).size == y.size
    _, rates = replicate(jittered, f, LEVEL, seed=12)
    for method, (coverage, new, old, agrees) in rates.items():
        assert agrees == 1.0, method
        assert new == old  # without ties the two tests agree at theta
        assert abs(coverage - NOMINAL) <= TOLERANCE, (method, rates)
