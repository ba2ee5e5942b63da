"""Validity of the sampling-design options by seeded Monte Carlo (nominal 0.90).

Six designs, each simulated once (cached) and read by every test on it; every method
is fitted on the same replications:

(a) ``clustered``: cluster effects in the outcome, the covariate and the prediction
    error, clusters of 10-20 units; the 120 labeled clusters also hold unlabeled units.
    Cluster-robust PPI / PPI++ cover; the same fits without ``groups`` do not.
(b) ``label_prob``: every unit labeled with a known probability in [0.1, 0.6] that
    depends on the outcome's covariates, biased predictions. PPI / PPI++ with
    ``label_prob`` cover; naive pooling and the analyses that ignore ``label_prob``
    do not.
(c) ``stratified``: three strata with unequal labeling rates and prediction quality
    and bias varying by stratum. Stratified PPI / PPI++ cover; stratified PPI++ is
    compared with unstratified PPI++ with the equivalent weights.
(d) ``draws``: K = 5 synthetic draws (biased prediction plus independent noise).
    PPI / PPI++ cover with K = 5 and K = 1; K = 5 gives narrower PPI++ intervals.
(e) ``bootstrap``: percentile intervals of the PPI++ mean and OLS coefficients.
(f) ``survey``: both samples drawn with probabilities depending on the outcome's
    covariates; survey weights (inverse probabilities) define the target population.
    Weighted PPI / PPI++ cover that population's values; the unweighted fit does not.

The truths are closed forms of each simulation's population, never outputs of the
code under test. A coverage whose true value is ``p`` has Monte Carlo standard error
``sqrt(p (1 - p) / reps)``; the checks allow ``3.5`` of them around 0.90. Width
comparisons use the paired delta-method standard error of a ratio of mean widths.

Print every figure with::

    python tests/test_designs_validity.py
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import ppinfer
from ppinfer import PPIWarning

NOMINAL = 0.90
ALPHA = 1.0 - NOMINAL
TOLERANCE = 3.5  # Monte Carlo standard errors
#: also fit the methods that only the printed tables show, no test reads (set when run as a script)
REPORT = False

pytestmark = pytest.mark.montecarlo


@dataclass
class Runs:
    """Intervals of every (estimand, label) over the replications of one design."""

    design: str
    reps: int
    truth: dict[str, np.ndarray]
    names: dict[str, list[str]]
    lower: dict[tuple[str, str], np.ndarray]
    upper: dict[tuple[str, str], np.ndarray]
    params: dict[tuple[str, str], np.ndarray]
    cpu_seconds: float

    def mc_se(self, p: float = NOMINAL) -> float:
        return float(np.sqrt(p * (1.0 - p) / self.reps))

    def coverage(self, estimand: str, label: str) -> np.ndarray:
        truth = self.truth[estimand]
        key = (estimand, label)
        return np.mean((self.lower[key] <= truth) & (truth <= self.upper[key]), axis=0)

    def width(self, estimand: str, label: str) -> np.ndarray:
        key = (estimand, label)
        return self.upper[key] - self.lower[key]

    def width_ratio(self, estimand: str, label: str, reference: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean width of ``label`` over that of ``reference`` (same data) and its paired MC SE."""
        a, b = self.width(estimand, label), self.width(estimand, reference)
        ratio = a.mean(axis=0) / b.mean(axis=0)
        se = np.std(a - ratio * b, axis=0, ddof=1) / np.sqrt(self.reps) / b.mean(axis=0)
        return ratio, se

    def bias(self, estimand: str, label: str) -> np.ndarray:
        return self.params[(estimand, label)].mean(axis=0) - self.truth[estimand]

    def table(self) -> pd.DataFrame:
        rows = []
        for estimand, label in self.lower:
            coverage = self.coverage(estimand, label)
            width = self.width(estimand, label).mean(axis=0)
            bias = self.bias(estimand, label)
            for k, name in enumerate(self.names[estimand]):
                rows.append({"design": self.design, "estimand": estimand, "method": label, "parameter": name,
                             "coverage": coverage[k], "mc_se": self.mc_se(), "mean_width": width[k],
                             "bias": bias[k]})
        return pd.DataFrame(rows)


def simulate(design: str, scenario, truth: dict[str, np.ndarray], *, reps: int, seed: int) -> Runs:
    """Run ``scenario(rng) -> {(estimand, label): PPIResults}`` on ``reps`` seeded replications."""
    lower, upper, params, names = {}, {}, {}, {}
    start = time.process_time()
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(reps)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PPIWarning)
            fits = scenario(np.random.default_rng(child))
        for key, res in fits.items():
            if key not in lower:
                p = len(res.params)
                lower[key], upper[key], params[key] = (np.full((reps, p), np.nan) for _ in range(3))
                names[key[0]] = list(res.params.index)
            # columns (lower, upper) by position: selecting them by name in pandas took 7% of the time
            lower[key][r], upper[key][r] = res.conf_int(ALPHA).to_numpy().T
            params[key][r] = res.params.to_numpy()
    return Runs(design, reps, truth, names, lower, upper, params, time.process_time() - start)


def fit_all(fits: dict, estimand: str, suffix: str, model, methods=("classical", "ppi", "ppi++")) -> None:
    for method in methods:
        fits[(estimand, f"{method} {suffix}".strip())] = model.fit(method=method)


def with_intercept(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x])


# --------------------------------------------------------------------------------------
# (a) clustered data
# --------------------------------------------------------------------------------------
#: clusters; the first FULLY_LABELED are labeled whole, the next SHARED are split between the samples
CLUSTERS, FULLY_LABELED, SHARED, SHARED_RATE = 300, 0, 120, 0.2


def clustered_scenario(rng: np.random.Generator) -> dict:
    """300 clusters of 10-20 units: in clusters 0-119 each unit is labeled with
    probability 1/5, the other clusters are unlabeled: about 360 labeled units in 120
    clusters, every one shared with the unlabeled sample, and 4140 unlabeled units.

    ``x = a_g + z``, ``Y = 1 + x + u_g + e``, prediction ``f = 1.5 + 1.2 x + 0.8 (u_g + e) + v_g + 0.5 eta``
    (biased, with a cluster effect ``v_g`` in its error); all effects independent normals,
    so x and the outcome's residual both have intra-cluster correlation 1/2.

    Few effective labeled clusters make cluster-robust intervals too short, for the
    classical fit as much as for PPI: with 10 clusters labeled whole (which dominate the
    variance) and 60 split, 2000 replications gave coverage 0.879 (classical) and 0.867
    (PPI++) for the OLS slope. Here the 120 labeled clusters are of similar size.
    """
    sizes = rng.integers(10, 21, CLUSTERS)
    g = np.repeat(np.arange(CLUSTERS), sizes)
    a, u, v = rng.normal(size=CLUSTERS), rng.normal(size=CLUSTERS), 0.7 * rng.normal(size=CLUSTERS)
    x = a[g] + rng.normal(size=g.size)
    e = rng.normal(size=g.size)
    y = 1.0 + x + u[g] + e
    f = 1.5 + 1.2 * x + 0.8 * (u[g] + e) + v[g] + 0.5 * rng.normal(size=g.size)
    shared = (g >= FULLY_LABELED) & (g < FULLY_LABELED + SHARED)
    labeled = (g < FULLY_LABELED) | (shared & (rng.uniform(size=g.size) < SHARED_RATE))
    L, U = labeled, ~labeled
    fits = {}
    for suffix, groups in (("cluster", dict(groups=g[L], groups_unlabeled=g[U])), ("iid", {})):
        # classical with the clusters ignored: in the printed table only
        methods = ("classical", "ppi", "ppi++") if suffix == "cluster" or REPORT else ("ppi", "ppi++")
        fit_all(fits, "mean", suffix, ppinfer.Mean(y[L], f[L], f[U], **groups), methods)
        ols = ppinfer.OLS(y[L], with_intercept(x[L]), f[L], with_intercept(x[U]), f[U], **groups)
        fit_all(fits, "ols", suffix, ols, methods)
    return fits


@functools.cache
def clustered() -> Runs:
    truth = {"mean": np.array([1.0]), "ols": np.array([1.0, 1.0])}
    return simulate("clustered", clustered_scenario, truth, reps=400, seed=5_000_001)


# --------------------------------------------------------------------------------------
# (b) known labeling probabilities depending on the covariates
# --------------------------------------------------------------------------------------
UNITS = 1000


def label_prob_scenario(rng: np.random.Generator) -> dict:
    """1000 units, ``Y = 1 + x + z + e``; unit labeled with ``pi = 0.1 + 0.5 expit(1.5 (x + z))``
    (mean about 0.35); biased prediction ``f = 0.5 + 1.5 x + 0.5 z + 0.5 e + 0.5 eta``.

    Labeling favours large ``x + z``, so the labeled mean of Y is too large, and within
    the labeled units x and the residual ``z + e`` are negatively correlated, so the
    unweighted OLS slope of Y on x is too small.
    """
    x, z, e = rng.normal(size=(3, UNITS))
    y = 1.0 + x + z + e
    f = 0.5 + 1.5 * x + 0.5 * z + 0.5 * e + 0.5 * rng.normal(size=UNITS)
    pi = 0.1 + 0.5 * expit(1.5 * (x + z))
    L = rng.uniform(size=UNITS) < pi
    U = ~L
    X = with_intercept(x)
    fits = {}
    weighted = ppinfer.Mean(y[L], f[L], f[U], label_prob=pi[L])
    fit_all(fits, "mean", "label_prob", weighted, ("classical", "ppi", "ppi++", "naive"))
    fit_all(fits, "mean", "ignoring label_prob", ppinfer.Mean(y[L], f[L], f[U]))
    weighted = ppinfer.OLS(y[L], X[L], f[L], X[U], f[U], label_prob=pi[L])
    fit_all(fits, "ols", "label_prob", weighted, ("classical", "ppi", "ppi++", "naive"))
    fit_all(fits, "ols", "ignoring label_prob", ppinfer.OLS(y[L], X[L], f[L], X[U], f[U]))
    return fits


@functools.cache
def label_prob() -> Runs:
    # population: E[Y] = 1; OLS of Y on (1, x) with z independent of x: (1, 1)
    truth = {"mean": np.array([1.0]), "ols": np.array([1.0, 1.0])}
    return simulate("label_prob", label_prob_scenario, truth, reps=400, seed=5_000_002)


# --------------------------------------------------------------------------------------
# (c) stratified sampling
# --------------------------------------------------------------------------------------
STRATA = {
    # name: (population share W_k, labeled n_k, unlabeled N_k, mean of x, intercept, slope, noise sd)
    "good": (0.5, 60, 1500, 0.0, 0.0, 1.0, 1.0),
    "biased": (0.3, 120, 900, 0.5, 1.0, 1.5, 1.0),
    "useless": (0.2, 120, 600, -0.5, 2.0, 0.5, 1.5),
}


def stratified_truth() -> dict[str, np.ndarray]:
    """Population mean of Y and OLS coefficients of Y on (1, x) over the strata mixture."""
    W = np.array([s[0] for s in STRATA.values()])
    m, a, b = (np.array([s[k] for s in STRATA.values()]) for k in (3, 4, 5))
    ex, exx = W @ m, W @ (1.0 + m**2)
    ey, exy = W @ (a + b * m), W @ (a * m + b * (1.0 + m**2))
    slope = (exy - ex * ey) / (exx - ex**2)
    return {"mean": np.array([ey]), "ols": np.array([ey - slope * ex, slope])}


def stratified_scenario(rng: np.random.Generator) -> dict:
    """Labeling rates 4%, 13% and 20%; within stratum ``Y = a_k + b_k x + sd_k e``; the
    prediction is good and unbiased in "good", biased (level 0.5, 1.2 times the mean
    function, half of the noise) in "biased", and independent of Y in "useless".
    Unlabeled stratum shares are the population shares, so the default stratum weights apply.
    """
    parts = {"y": [], "x": [], "f": [], "s": [], "xu": [], "fu": [], "su": []}
    for name, (W, n_k, N_k, mx, a, b, sd) in STRATA.items():
        for count, tag in ((n_k, ""), (N_k, "u")):
            x = mx + rng.normal(size=count)
            e = sd * rng.normal(size=count)
            y = a + b * x + e
            if name == "good":
                f = a + b * x + 0.8 * e + 0.4 * rng.normal(size=count)
            elif name == "biased":
                f = 0.5 + 1.2 * (a + b * x) + 0.5 * e + 0.5 * rng.normal(size=count)
            else:
                f = 1.0 + rng.normal(size=count)
            if tag == "":
                parts["y"].append(y)
            parts["x" + tag].append(x)
            parts["f" + tag].append(f)
            parts["s" + tag].append(np.full(count, name))
    y, x, f, s, xu, fu, su = (np.concatenate(parts[k]) for k in ("y", "x", "f", "s", "xu", "fu", "su"))
    n, N = y.size, fu.size
    # weights that make the unstratified weighted fits target the same population
    share = {name: spec[0] for name, spec in STRATA.items()}
    w = np.array([share[k] for k in s]) * n / pd.Series(s).map(pd.Series(s).value_counts()).to_numpy()
    wu = np.array([share[k] for k in su]) * N / pd.Series(su).map(pd.Series(su).value_counts()).to_numpy()
    X, Xu = with_intercept(x), with_intercept(xu)
    fits = {}
    # the tests compare with PPI++ of the unstratified weighted fits; classical and PPI of them
    # are in the printed table only
    weighted_methods = ("classical", "ppi", "ppi++") if REPORT else ("ppi++",)
    fit_all(fits, "mean", "stratified", ppinfer.Mean(y, f, fu, strata=s, strata_unlabeled=su))
    fit_all(fits, "mean", "weighted", ppinfer.Mean(y, f, fu, weights=w, weights_unlabeled=wu), weighted_methods)
    stratified_ols = ppinfer.OLS(y, X, f, Xu, fu, strata=s, strata_unlabeled=su)
    fit_all(fits, "ols", "stratified", stratified_ols)
    fits[("ols", "ppi++ per-coef stratified")] = stratified_ols.fit(lam="per-coefficient")
    fit_all(fits, "ols", "weighted", ppinfer.OLS(y, X, f, Xu, fu, weights=w, weights_unlabeled=wu), weighted_methods)
    return fits


@functools.cache
def stratified() -> Runs:
    return simulate("stratified", stratified_scenario, stratified_truth(), reps=400, seed=5_000_003)


# --------------------------------------------------------------------------------------
# (d) synthetic draws
# --------------------------------------------------------------------------------------
DRAWS = 5


def draws_scenario(rng: np.random.Generator) -> dict:
    """n = 300, N = 3000; ``Y = 1 + x + w + 0.5 e`` with ``w`` seen by the generator only;
    draws ``f_k = 1.3 + 1.2 x + 0.8 w + 1.5 eta_k`` (biased, independent noise per draw)."""
    n, N = 300, 3000
    x, w = rng.normal(size=(2, n + N))
    y = 1.0 + x + w + 0.5 * rng.normal(size=n + N)
    draws = 1.3 + 1.2 * x[:, None] + 0.8 * w[:, None] + 1.5 * rng.normal(size=(n + N, DRAWS))
    X = with_intercept(x)
    fits = {}
    for suffix, f in ((f"K={DRAWS}", draws), ("K=1", draws[:, :1])):
        fit_all(fits, "mean", suffix, ppinfer.Mean(y[:n], f[:n], f[n:]), ("ppi", "ppi++"))
        fit_all(fits, "ols", suffix, ppinfer.OLS(y[:n], X[:n], f[:n], X[n:], f[n:]), ("ppi", "ppi++"))
    if REPORT:  # classical: in the printed table only
        fits[("mean", "classical")] = ppinfer.Mean(y[:n], draws[:n, 0], draws[n:, 0]).fit(method="classical")
    return fits


@functools.cache
def synthetic_draws() -> Runs:
    truth = {"mean": np.array([1.0]), "ols": np.array([1.0, 1.0])}
    return simulate("draws", draws_scenario, truth, reps=400, seed=5_000_004)


# --------------------------------------------------------------------------------------
# (e) bootstrap percentile intervals
# --------------------------------------------------------------------------------------
BOOT_REPS, N_BOOT = 120, 120


def bootstrap_scenario(rng: np.random.Generator) -> dict:
    """n = 150, N = 750; ``Y = 1 + x + (0.5 + |x|) t_5 / sqrt(5/3)`` (heteroskedastic, heavy
    tails), biased prediction ``f = 0.3 + 1.2 x + 0.6 (Y - 1 - x) + 0.6 eta``."""
    n, N = 150, 750
    x = rng.normal(size=n + N)
    y = 1.0 + x + (0.5 + np.abs(x)) * rng.standard_t(5, n + N) / np.sqrt(5.0 / 3.0)
    f = 0.3 + 1.2 * x + 0.6 * (y - 1.0 - x) + 0.6 * rng.normal(size=n + N)
    X = with_intercept(x)
    seed = rng.integers(2**32)
    mean = ppinfer.Mean(y[:n], f[:n], f[n:])
    ols = ppinfer.OLS(y[:n], X[:n], f[:n], X[n:], f[n:])
    return {
        ("mean", "ppi++ bootstrap"): mean.fit(ci="bootstrap", n_boot=N_BOOT, seed=seed),
        ("mean", "ppi++ analytic"): mean.fit(),
        ("ols", "ppi++ bootstrap"): ols.fit(ci="bootstrap", n_boot=N_BOOT, seed=seed + 1),
        ("ols", "ppi++ analytic"): ols.fit(),
    }


@functools.cache
def bootstrap() -> Runs:
    truth = {"mean": np.array([1.0]), "ols": np.array([1.0, 1.0])}
    return simulate("bootstrap", bootstrap_scenario, truth, reps=BOOT_REPS, seed=5_000_005)


# --------------------------------------------------------------------------------------
# (f) survey weights
# --------------------------------------------------------------------------------------
def survey_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
    """``size`` units drawn from the population x, z, e ~ N(0, 1) independent, each
    population unit kept with probability ``p = 0.15 + 0.7 expit(1.5 (x + z))``;
    returns x, z, e and the survey weight ``1 / p`` (between 1.2 and 6.7)."""
    kept = []
    while sum(len(k) for k in kept) < size:
        x, z, e = rng.normal(size=(3, 2 * size))
        p = 0.15 + 0.7 * expit(1.5 * (x + z))
        keep = rng.uniform(size=2 * size) < p
        kept.append(np.column_stack([x[keep], z[keep], e[keep], 1.0 / p[keep]]))
    return tuple(np.concatenate(kept)[:size].T)


def survey_scenario(rng: np.random.Generator) -> dict:
    """Both samples (n = 300, N = 3000) drawn by :func:`survey_sample`; ``Y = 1 + x + z + e``,
    biased prediction ``f = 0.5 + 1.5 x + 0.5 z + 0.5 e + 0.5 eta``. In the samples x + z
    is shifted up and x and z are negatively correlated, so the unweighted mean of Y is
    too large and the unweighted slope of Y on x too small; the weights undo both."""
    n, N = 300, 3000
    x, z, e, w = survey_sample(rng, n + N)
    y = 1.0 + x + z + e
    f = 0.5 + 1.5 * x + 0.5 * z + 0.5 * e + 0.5 * rng.normal(size=n + N)
    X = with_intercept(x)
    fits = {}
    design = dict(weights=w[:n], weights_unlabeled=w[n:])
    fit_all(fits, "mean", "weighted", ppinfer.Mean(y[:n], f[:n], f[n:], **design))
    fit_all(fits, "ols", "weighted", ppinfer.OLS(y[:n], X[:n], f[:n], X[n:], f[n:], **design))
    fits[("mean", "ppi++ unweighted")] = ppinfer.Mean(y[:n], f[:n], f[n:]).fit()
    fits[("ols", "ppi++ unweighted")] = ppinfer.OLS(y[:n], X[:n], f[:n], X[n:], f[n:]).fit()
    return fits


@functools.cache
def survey() -> Runs:
    # population: E[Y] = 1; OLS of Y on (1, x) with z independent of x: (1, 1)
    truth = {"mean": np.array([1.0]), "ols": np.array([1.0, 1.0])}
    return simulate("survey", survey_scenario, truth, reps=400, seed=5_000_006)


DESIGNS = {
    "clustered": clustered,
    "label_prob": label_prob,
    "stratified": stratified,
    "draws": synthetic_draws,
    "bootstrap": bootstrap,
    "survey": survey,
}


# --------------------------------------------------------------------------------------
# assertions
# --------------------------------------------------------------------------------------
def assert_covers(runs: Runs, estimand: str, label: str) -> None:
    coverage = runs.coverage(estimand, label)
    allowed = TOLERANCE * runs.mc_se()
    assert np.all(np.abs(coverage - NOMINAL) <= allowed), (
        f"{runs.design} {estimand} {label}: coverage {np.round(coverage, 4)} not within "
        f"{NOMINAL} +/- {allowed:.4f} ({runs.reps} reps)"
    )


def assert_undercovers(runs: Runs, estimand: str, label: str, index=slice(None)) -> None:
    coverage = runs.coverage(estimand, label)[index]
    limit = NOMINAL - TOLERANCE * runs.mc_se()
    assert np.all(coverage < limit), f"{runs.design} {estimand} {label}: coverage {np.round(coverage, 4)} >= {limit:.4f}"


ESTIMANDS = ("mean", "ols")


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi cluster", "ppi++ cluster", "classical cluster"])
def test_cluster_robust_intervals_cover(estimand, label):
    assert_covers(clustered(), estimand, label)


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi iid", "ppi++ iid"])
def test_iid_intervals_undercover_clustered_data(estimand, label):
    assert_undercovers(clustered(), estimand, label)


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi label_prob", "ppi++ label_prob", "classical label_prob"])
def test_label_prob_intervals_cover(estimand, label):
    assert_covers(label_prob(), estimand, label)


@pytest.mark.parametrize("estimand, label, index", [
    ("mean", "naive label_prob", slice(None)),
    ("mean", "ppi ignoring label_prob", slice(None)),
    ("mean", "ppi++ ignoring label_prob", slice(None)),
    ("mean", "classical ignoring label_prob", slice(None)),
    ("ols", "naive label_prob", slice(None)),
    # selection on x + z biases the slope (and the intercept) of the labeled-only fits
    ("ols", "classical ignoring label_prob", slice(None)),
    ("ols", "ppi ignoring label_prob", 1),
    ("ols", "ppi++ ignoring label_prob", 1),
])
def test_analyses_ignoring_label_prob_undercover(estimand, label, index):
    assert_undercovers(label_prob(), estimand, label, index)


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi stratified", "ppi++ stratified", "classical stratified", "ppi++ weighted"])
def test_stratified_intervals_cover(estimand, label):
    assert_covers(stratified(), estimand, label)


def test_stratified_per_coefficient_ppi_pp_covers():
    assert_covers(stratified(), "ols", "ppi++ per-coef stratified")


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_stratified_ppi_pp_is_narrower_than_unstratified_weighted_ppi_pp(estimand):
    ratio, se = stratified().width_ratio(estimand, "ppi++ stratified", "ppi++ weighted")
    assert np.all(ratio < 1.0 - TOLERANCE * se), f"{estimand}: width ratio {ratio} (se {se})"


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", [f"ppi K={DRAWS}", f"ppi++ K={DRAWS}", "ppi K=1", "ppi++ K=1"])
def test_synthetic_draws_intervals_cover(estimand, label):
    assert_covers(synthetic_draws(), estimand, label)


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_more_draws_give_narrower_ppi_pp_intervals(estimand):
    ratio, se = synthetic_draws().width_ratio(estimand, f"ppi++ K={DRAWS}", "ppi++ K=1")
    assert np.all(ratio < 1.0 - TOLERANCE * se), f"{estimand}: width ratio K=5 / K=1 {ratio} (se {se})"


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi++ bootstrap", "ppi++ analytic"])
def test_bootstrap_percentile_intervals_cover(estimand, label):
    assert_covers(bootstrap(), estimand, label)


def test_bootstrap_widths_near_analytic_widths():
    """Mean widths of percentile and Wald intervals agree within 10% (about 8 paired MC SEs here)."""
    for estimand in ESTIMANDS:
        ratio, se = bootstrap().width_ratio(estimand, "ppi++ bootstrap", "ppi++ analytic")
        assert np.all(np.abs(ratio - 1.0) < 0.10), f"{estimand}: bootstrap / analytic width {ratio} (se {se})"


@pytest.mark.parametrize("estimand", ESTIMANDS)
@pytest.mark.parametrize("label", ["ppi++ weighted", "ppi weighted", "classical weighted"])
def test_survey_weighted_intervals_cover_the_population_values(estimand, label):
    assert_covers(survey(), estimand, label)


@pytest.mark.parametrize("estimand", ESTIMANDS)
def test_unweighted_fit_misses_the_weighted_population(estimand):
    assert_undercovers(survey(), estimand, "ppi++ unweighted")


if __name__ == "__main__":
    REPORT = True
    pd.set_option("display.width", 200, "display.max_rows", 500)
    for name, make in DESIGNS.items():
        runs = make()
        print(f"\n== {name}: {runs.reps} reps, {runs.cpu_seconds:.1f} s CPU; MC SE {runs.mc_se():.4f}")
        print(runs.table().drop(columns=["design"]).round(4).to_string(index=False))
    for name, estimand, label, reference in [
        ("stratified", "mean", "ppi++ stratified", "ppi++ weighted"),
        ("stratified", "ols", "ppi++ stratified", "ppi++ weighted"),
        ("draws", "mean", f"ppi++ K={DRAWS}", "ppi++ K=1"),
        ("draws", "ols", f"ppi++ K={DRAWS}", "ppi++ K=1"),
        ("bootstrap", "mean", "ppi++ bootstrap", "ppi++ analytic"),
        ("bootstrap", "ols", "ppi++ bootstrap", "ppi++ analytic"),
    ]:
        ratio, se = DESIGNS[name]().width_ratio(estimand, label, reference)
        print(f"{name} {estimand}: width {label} / {reference} = {np.round(ratio, 4)} (MC SE {np.round(se, 4)})")
