"""Validity of the core estimators: coverage, variance, widths and tests, by seeded Monte Carlo.

Every estimator (Mean, Quantile at q = 0.5 and 0.8, OLS, Logit, Poisson) is run
in three designs of :mod:`montecarlo` (``REPS`` replications, ``n = 300``
labeled and ``N = 3000`` unlabeled rows):

- ``informative``: unbiased predictions with correlation 0.8 with the outcome;
- ``biased``: the same predictions shifted by 0.5 outcome sd and with slope 1.5;
- ``useless``: predictions independent of the outcome.

The reference values are the simulation's known population values
(``SimulatedData.truth``) and closed forms; nothing is taken from the code under
test. Intervals are at nominal 0.90. A frequency whose true value is ``p`` has
Monte Carlo standard error ``sqrt(p (1 - p) / REPS)`` (0.017 at 300 replications);
the coverage checks allow 3.5 of them. Each (estimator, design) cell is
simulated once and shared by every test that reads it (:func:`montecarlo.replicate`
is cached). ``python tests/montecarlo.py`` prints every figure these tests check.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from ppinfer.datasets import COEFFICIENTS, simulate

try:  # tests collected as a package
    from . import montecarlo as mc
except ImportError:  # tests collected as rootdir modules (pytest's default)
    import montecarlo as mc

#: coverage and type I error may differ from nominal by this many Monte Carlo standard errors
MC_SE_TOLERANCE = 3.5
VALID_LABELS = ("classical", "ppi", "ppi++", "ppi++ per-coef")
TUNED_LABELS = ("ppi++", "ppi++ per-coef")
CELLS = [(estimand, design) for estimand in mc.ESTIMANDS for design in mc.DESIGNS]
#: the Wald estimators: variance formulas and per-dataset guarantees apply to them
WALD_ESTIMANDS = ("mean", *mc.REGRESSIONS)


def labels(run: mc.MonteCarlo, wanted) -> list[str]:
    """The labels of ``wanted`` that were fitted in this run."""
    return [label for label in wanted if label in run.draws]


def values_by_name(run: mc.MonteCarlo, values: np.ndarray) -> str:
    return ", ".join(f"{name}={value:.4f}" for name, value in zip(run.names, values))


def describe(run: mc.MonteCarlo, label: str, values: np.ndarray) -> str:
    return f"{run.estimand}/{run.design.name} {label}: {values_by_name(run, values)}"


def outcome_sd(estimand: str) -> float:
    """Standard deviation of the continuous outcome ``Y = x'beta + N(0, 1)``, x standard normal."""
    beta = COEFFICIENTS[estimand]
    return float(np.sqrt(1.0 + np.sum(beta[1:] ** 2)))


# -- 1. coverage of the valid methods ---------------------------------------------


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand, design", CELLS)
def test_two_sided_coverage_is_nominal(estimand, design):
    """Classical, PPI and PPI++ (both tunings) cover every parameter at 0.90 within MC error."""
    run = mc.replicate(estimand, design)
    bound = MC_SE_TOLERANCE * run.mc_se()
    failures = [
        describe(run, label, run.coverage(label))
        for label in labels(run, VALID_LABELS)
        if np.any(np.abs(run.coverage(label) - mc.NOMINAL) > bound)
    ]
    assert not failures, f"coverage outside {mc.NOMINAL} +/- {bound:.4f}:\n" + "\n".join(failures)


# -- 2. naive pooling fails -------------------------------------------------------


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", mc.ESTIMANDS)
def test_naive_pooling_undercovers_with_biased_predictions(estimand):
    """Pooling biased predictions as outcomes: coverage collapses for every parameter.

    0.5 is (0.90 - 0.5) / 0.017 = 23 Monte Carlo standard errors below nominal.
    """
    run = mc.replicate(estimand, "biased")
    coverage = run.coverage("naive")
    assert np.all(coverage < 0.5), describe(run, "naive", coverage)


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", mc.REGRESSIONS)
def test_naive_pooling_undercovers_slopes_with_useless_predictions(estimand):
    """Predictions unrelated to x pull the pooled slopes towards 0 (N = 10 n): coverage collapses."""
    run = mc.replicate(estimand, "useless")
    slopes = run.coverage("naive")[1:]
    assert np.all(slopes < 0.5), describe(run, "naive", run.coverage("naive"))


# -- 3. the variance formula ------------------------------------------------------


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", WALD_ESTIMANDS)
def test_estimated_variance_matches_monte_carlo_variance(estimand):
    """Mean estimated variance / Monte Carlo variance of the estimates is 1 within 3.5 SE.

    The SE of the ratio (``MonteCarlo.variance_ratio``) is that of a sample
    variance of ``REPS`` draws, sqrt(2 / (REPS - 1) + excess kurtosis / REPS),
    about 0.082 at 300 replications, combined with that of the mean estimated variance.
    """
    run = mc.replicate(estimand, "biased")
    failures = []
    for label in labels(run, VALID_LABELS):
        ratio, se = run.variance_ratio(label)
        if np.any(np.abs(ratio - 1.0) > MC_SE_TOLERANCE * se):
            failures.append(describe(run, label, ratio) + f" (SE {values_by_name(run, se)})")
    assert not failures, "variance ratio away from 1:\n" + "\n".join(failures)


# -- 4. PPI++ is never meaningfully wider than classical or PPI ---------------------


@pytest.mark.parametrize("design", list(mc.DESIGNS))
@pytest.mark.parametrize("estimand", WALD_ESTIMANDS)
def test_tuned_variance_never_exceeds_classical_or_ppi(estimand, design):
    """On every dataset (deterministic): lambda minimises the estimated variance over [0, 1].

    With the plain sandwich (HC0), per-coefficient tuning: each variance <= min(classical,
    PPI); overall tuning (regressions' default): the trace <= the smaller of the two traces,
    up to 1e-12 relative rounding. With the default small-sample corrections a tuned lambda
    pays for its estimation (the prediction residual's leverage, see
    ``PPIModel._tuning_leverage``): here at most a factor 1 + 6 / n of the variance (observed
    up to 1.054 at n = 100).
    """
    spec = mc.DESIGNS[design]
    regression = estimand in mc.REGRESSIONS
    n = 100
    for options, slack in ((dict(cov_type="HC0", use_t=False), 1e-12), ({}, 6.0 / n)):
        for child in np.random.SeedSequence(mc.seed_for(estimand, design) + 50).spawn(25):
            data = simulate(estimand, n, 500, quality=spec.quality, bias=spec.bias, seed=np.random.default_rng(child))
            model = data.model()
            methods = [m for m in mc.methods_for(estimand, design) if m.label != "naive"]
            variance = {m.label: m.fit(model, **options).bse.to_numpy() ** 2 for m in methods}
            best = np.minimum(variance["classical"], variance["ppi"])
            per_coefficient = variance["ppi++ per-coef" if regression else "ppi++"]
            assert np.all(per_coefficient <= best * (1 + slack)), (options, variance, data.truth)
            if regression:
                trace = variance["ppi++"].sum()
                assert trace <= min(variance["classical"].sum(), variance["ppi"].sum()) * (1 + slack), variance


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand, design", CELLS)
def test_tuned_interval_not_wider_than_best_of_classical_and_ppi(estimand, design):
    """Mean PPI++ width <= 1.02 x min(mean classical width, mean PPI width), per parameter.

    Wald estimators: the per-dataset guarantee above makes this hold up to the
    2% slack (overall tuning may trade one coefficient against another). The
    quantile has no per-dataset guarantee (lambda is tuned for the variance of
    ``F`` at the PPI estimate, not for the width of the inverted interval), but
    asymptotically the width is proportional to that standard error, so the
    same 2% applies; measured ratios are at most 0.996.
    """
    run = mc.replicate(estimand, design)
    bound = 1.02 * np.minimum(run.mean_width("classical"), run.mean_width("ppi"))
    failures = [
        describe(run, label, run.mean_width(label)) + f"; bound {values_by_name(run, bound)}"
        for label in labels(run, TUNED_LABELS)
        if np.any(run.mean_width(label) > bound)
    ]
    assert not failures, "PPI++ wider than the better baseline:\n" + "\n".join(failures)


# -- 5. PPI++ gains when predictions are good -------------------------------------


def _tuned_ratio(A, B, C, *, overall: bool) -> np.ndarray:
    """Width ratio PPI++ / classical from population ``A = Var psi^Y``, ``B = Var psi^f``,
    ``C = Cov(psi^Y, psi^f)`` (per coefficient), with ``r = n / N``:
    ``Var(lam) / Var(0) = (A - 2 lam C + lam^2 (1 + r) B) / A`` at the lambda that
    minimises it (each coefficient's, or the sum's), clipped to [0, 1]."""
    r = mc.N_LABELED / mc.N_UNLABELED
    lam = np.sum(C) / ((1 + r) * np.sum(B)) if overall else C / ((1 + r) * B)
    lam = np.clip(lam, 0.0, 1.0)
    return np.sqrt((A - 2 * lam * C + lam**2 * (1 + r) * B) / A)


@functools.cache
def _glm_population_moments(estimand: str, quality: float, bias: float, size: int = 200_000):
    """``A, B, C`` of the influence functions from one very large sample, fitted by statsmodels.

    ``psi_i = H^-1 x_i (v_i - mu(x_i' b))`` for ``v = Y`` and ``v = yhat``; with
    200,000 rows the sampling error of the resulting ratio is about 0.003 (the largest change from
    400,000 rows), against the test's allowance of 2 p / n = 0.02 plus 3.5 Monte Carlo SE.
    """
    data = simulate(estimand, size, 10, quality=quality, bias=bias, seed=20_250_999)
    X = data.labeled[data.covariates].to_numpy()
    family = {"logit": sm.families.Binomial(), "poisson": sm.families.Poisson()}[estimand]
    influence = []
    for column in ("y", "yhat"):
        v = data.labeled[column].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-integer responses (the predictions) are intended
            fit = sm.GLM(v, X, family=family).fit()
        weight = family.link.inverse_deriv(X @ fit.params)
        hessian = (X * weight[:, None]).T @ X / size
        influence.append((X * (v - fit.fittedvalues)[:, None]) @ np.linalg.inv(hessian))
    psi_y, psi_f = influence
    return np.mean(psi_y**2, 0), np.mean(psi_f**2, 0), np.mean(psi_y * psi_f, 0)


def theoretical_width_ratio(estimand: str, label: str) -> np.ndarray:
    """Asymptotic ratio of PPI++ to classical interval widths in the informative design.

    With unbiased predictions of correlation ``rho`` with the score of the
    estimator, ``Var_ppi++ / Var_classical = 1 - rho^2 N / (n + N)`` (optimal lambda
    ``rho sd_Y / sd_f / (1 + n/N)``):

    - mean: ``rho = 0.8``;
    - quantile at level q: ``rho`` is the correlation of ``1{Y <= t_q}`` and
      ``1{yhat <= t_q}``; Y and yhat are bivariate normal with the same marginal
      and correlation 0.8, so ``rho = (Phi2(h, h; 0.8) - q^2) / (q (1 - q))``, ``h = Phi^-1(q)``;
    - OLS: the residuals are ``eps`` and ``0.8 eps + sd_Y 0.6 u`` with x standard normal
      independent of both, so ``rho = 0.8 / sqrt(0.8^2 + sd_Y^2 0.6^2)`` for every coefficient;
    - Logit, Poisson: no closed form; ``A, B, C`` from a very large sample
      fitted by statsmodels (:func:`_glm_population_moments`).
    """
    spec = mc.DESIGNS["informative"]
    share = mc.N_UNLABELED / (mc.N_LABELED + mc.N_UNLABELED)
    quality = spec.quality
    if estimand == "mean":
        rho = np.array([quality])
    elif estimand == "quantile":
        h = stats.norm.ppf(mc.QUANTILE_LEVELS)
        joint = stats.multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, quality], [quality, 1.0]])
        q = np.asarray(mc.QUANTILE_LEVELS)
        rho = (np.array([joint.cdf([t, t]) for t in h]) - q**2) / (q * (1 - q))
    elif estimand == "ols":
        sd = outcome_sd("ols")
        rho = np.full(3, quality / np.sqrt(quality**2 + sd**2 * (1 - quality**2)))
    else:
        A, B, C = _glm_population_moments(estimand, spec.quality, spec.bias)
        return _tuned_ratio(A, B, C, overall=label == "ppi++")
    return np.sqrt(1.0 - rho**2 * share)


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", mc.ESTIMANDS)
def test_tuned_interval_gains_with_informative_predictions(estimand):
    """PPI++ width / classical width matches the asymptotic ratio of :func:`theoretical_width_ratio`.

    Within 3.5 MC SE of the paired ratio plus ``2 p / n`` (p parameters), an
    allowance for the O(p / n) finite-sample biases of the variance estimates,
    which need not cancel between the two methods (0.0067 for one parameter,
    0.02 for three at n = 300).
    """
    run = mc.replicate(estimand, "informative")
    allowance = 2 * len(run.names) / mc.N_LABELED
    for label in labels(run, TUNED_LABELS):
        ratio, se = run.width_ratio(label, "classical")
        theory = theoretical_width_ratio(estimand, label)
        message = describe(run, label, ratio) + f"; theory {values_by_name(run, theory)}"
        assert np.all(np.abs(ratio - theory) <= MC_SE_TOLERANCE * se + allowance), message
        assert np.all(theory < 0.9)  # the design is one where the gain is large


# -- 6. one-sided intervals and z tests ---------------------------------------------


@pytest.mark.montecarlo
@pytest.mark.parametrize("estimand", mc.ESTIMANDS)
def test_one_sided_intervals_and_tests_with_biased_predictions(estimand):
    """PPI++ one-sided 0.90 intervals cover, and z tests at the truth reject at rate 0.10.

    ``alternative="larger"`` gives ``(lower, inf)``, ``"smaller"`` ``(-inf, upper)``;
    ``res.test(null=truth, alternative=...)`` is checked two-sided and one-sided
    at alpha = 0.10, within 3.5 Monte Carlo standard errors.
    """
    run = mc.replicate(estimand, "biased")
    bound = MC_SE_TOLERANCE * run.mc_se()
    failures = []
    for alternative in ("larger", "smaller"):
        coverage = run.one_sided_coverage("ppi++", alternative)
        if np.any(np.abs(coverage - mc.NOMINAL) > bound):
            failures.append(describe(run, f"ppi++ one-sided {alternative} coverage", coverage))
    for alternative in ("two-sided", "larger", "smaller"):
        rejection = run.rejection_rate("ppi++", alternative)
        if np.any(np.abs(rejection - mc.ALPHA) > bound):
            failures.append(describe(run, f"ppi++ type I error {alternative}", rejection))
    assert not failures, f"outside nominal +/- {bound:.4f}:\n" + "\n".join(failures)


# -- interval and test agree (quantile) ---------------------------------------------


@pytest.mark.parametrize("method", ["classical", "ppi", "ppi++"])
def test_quantile_interval_ends_match_its_test(method):
    """Interval/test duality at the ends of a quantile interval (level 0.90, alpha 0.10).

    ``F`` is a right-continuous step function and the test of ``theta = t`` reads
    ``F(t)`` and its left limit ``F(t-)``, so the accepted values form
    ``[lower, upper]``: the test accepts both ends and rejects values just below
    ``lower`` and just above ``upper``. (Reporting the largest accepted breakpoint as
    ``upper`` instead dropped the last step: exact classical coverage 0.879 at
    q = 0.8, n = 300, by binomial probabilities.)
    """
    data = simulate("quantile", 300, 3000, quality=0.8, bias=0.0, q=0.8, seed=1)
    res = data.model().fit(method=method)
    lower, upper = res.conf_int(mc.ALPHA).iloc[0]
    nudge = 1e-9 * max(1.0, abs(lower), abs(upper))
    pvalue = {t: res.test(null=t)["pvalue"].iloc[0] for t in (lower - nudge, lower, upper - nudge, upper, upper + nudge)}
    assert pvalue[lower] > mc.ALPHA and pvalue[upper - nudge] > mc.ALPHA and pvalue[upper] > mc.ALPHA, pvalue
    assert pvalue[lower - nudge] <= mc.ALPHA and pvalue[upper + nudge] <= mc.ALPHA, pvalue
