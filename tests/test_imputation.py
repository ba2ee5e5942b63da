"""Tests of ppinfer.imputation: Rubin's rules and multiple imputation of unlabeled outcomes.

Rubin's rules are checked against arithmetic written out by hand (Rubin 1987;
Barnard & Rubin 1999). Monte Carlo replications (seeded, tolerance 3.5 Monte
Carlo standard errors) show multiple imputation valid when the imputation model
is congenial with the analysis model, and failing when it omits an interaction
that the analysis model estimates, where naive pooling fails too and the GMM
estimator does not. Run as a script to print the Monte Carlo figures.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import ppinfer
from ppinfer.imputation import MultipleImputation, rubin_combine
from ppinfer.synthetic import SyntheticGMM

NOMINAL = 0.90
ALPHA = 1 - NOMINAL


# -- Rubin's rules by hand ------------------------------------------------------------------------


def test_rubin_rules_one_parameter_by_hand():
    # three imputations: estimates 1, 2, 3 with completed-data variances 0.5, 0.6, 0.7
    combined = rubin_combine([[1.0], [2.0], [3.0]], [[[0.5]], [[0.6]], [[0.7]]], df_complete=10)
    # Qbar = 2, Ubar = 0.6, B = ((1-2)^2 + 0 + (3-2)^2) / 2 = 1, T = 0.6 + (4/3) * 1
    assert combined.params[0] == pytest.approx(2.0)
    assert combined.within[0, 0] == pytest.approx(0.6)
    assert combined.between[0, 0] == pytest.approx(1.0)
    assert combined.covariance[0, 0] == pytest.approx(0.6 + 4 / 3)
    lam = (4 / 3) / (0.6 + 4 / 3)  # 0.689655...
    nu_old = 2 / lam**2  # 4.205...
    nu_obs = 11 / 13 * 10 * (1 - lam)  # 2.6259...
    assert combined.df[0] == pytest.approx(nu_old * nu_obs / (nu_old + nu_obs), rel=1e-12)
    assert combined.df[0] == pytest.approx(1.6166, abs=5e-4)
    riv = (4 / 3) / 0.6
    assert combined.riv[0] == pytest.approx(riv)
    assert combined.fmi[0] == pytest.approx((riv + 2 / (combined.df[0] + 3)) / (riv + 1))
    # without a complete-data df: Rubin's (1987) nu = (M - 1) (1 + 1/riv)^2
    large = rubin_combine([[1.0], [2.0], [3.0]], [[[0.5]], [[0.6]], [[0.7]]])
    assert large.df[0] == pytest.approx(2 * (1 + 1 / riv) ** 2)


def test_rubin_rules_two_parameters_and_no_between_variance():
    estimates = np.array([[1.0, 0.0], [3.0, 1.0]])
    covariances = np.array([[[1.0, 0.2], [0.2, 2.0]], [[3.0, 0.4], [0.4, 4.0]]])
    combined = rubin_combine(estimates, covariances)
    # B = sum (Q - Qbar)(Q - Qbar)' / (M - 1) with deviations (-1, -0.5) and (1, 0.5)
    between = np.array([[2.0, 1.0], [1.0, 0.5]])
    np.testing.assert_allclose(combined.between, between)
    np.testing.assert_allclose(combined.covariance, np.array([[2.0, 0.3], [0.3, 3.0]]) + 1.5 * between)
    same = rubin_combine([[1.0], [1.0]], [[[0.5]], [[0.7]]], df_complete=50)
    assert same.between[0, 0] == 0 and same.df[0] == pytest.approx(51 / 53 * 50)
    with pytest.raises(ValueError, match="at least 2 imputations"):
        rubin_combine([[1.0]], [[[1.0]]])
    with pytest.raises(ValueError, match="covariances must have shape"):
        rubin_combine([[1.0], [2.0]], [[1.0], [1.0]])


# -- the estimator --------------------------------------------------------------------------------

BETA = np.array([1.0, 1.0, 0.5, 0.5])  # Intercept, x1, x2, x1:x2


def sample(rng, size):
    """y with an x1:x2 interaction; yhat from a generator that ignores the interaction
    (shifted level, slopes x1.5) but knows part of the residual."""
    x = rng.normal(size=(size, 2))
    X = np.column_stack([np.ones(size), x, x[:, 0] * x[:, 1]])
    e = rng.normal(size=size)
    y = X @ BETA + e
    yhat = 0.5 + 1.5 * (X[:, :3] @ BETA[:3]) + 0.8 * e + 0.6 * rng.normal(size=size)
    return X, y, yhat


def test_intervals_and_p_values_use_barnard_rubin_t():
    rng = np.random.default_rng(11)
    X, y, f = sample(rng, 150)
    Xu, _, fu = sample(rng, 600)
    res = MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu).fit(imputations=5, seed=3)
    recombined = rubin_combine(res.estimates.to_numpy(), np.zeros((5, 4, 4)) + res.within.to_numpy())
    np.testing.assert_allclose(res.params, recombined.params)
    np.testing.assert_allclose(res.between, recombined.between)
    bse = np.sqrt(np.diag(res.within.to_numpy() + 1.2 * res.between.to_numpy()))
    np.testing.assert_allclose(res.bse, bse)
    assert np.all(res.df < 150 + 600 - 4)
    half = stats.t.isf(ALPHA / 2, res.df) * bse
    interval = res.conf_int(ALPHA)
    np.testing.assert_allclose(interval["upper"] - interval["lower"], 2 * half, rtol=1e-12)
    t = res.params / bse
    np.testing.assert_allclose(res.pvalues, 2 * stats.t.sf(np.abs(t), res.df), rtol=1e-8)
    one_sided = res.test(null=1.0, alternative="larger")["pvalue"]
    np.testing.assert_allclose(one_sided, stats.t.sf((res.params - 1.0) / bse, res.df), rtol=1e-8)
    normal = MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu).fit(imputations=5, seed=3, df="z")
    np.testing.assert_allclose(normal.params, res.params)
    np.testing.assert_allclose(normal.conf_int()["upper"] - normal.params, stats.norm.isf(0.025) * bse)


def test_same_seed_same_imputations_and_labeled_outcomes_kept():
    rng = np.random.default_rng(12)
    X, y, f = sample(rng, 100)
    Xu, _, fu = sample(rng, 300)
    model = MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu)
    a, b = model.fit(imputations=4, seed=5), model.fit(imputations=4, seed=5)
    np.testing.assert_array_equal(a.estimates, b.estimates)
    assert not np.allclose(a.estimates, model.fit(imputations=4, seed=6).estimates)
    # a completed dataset is the labeled outcomes plus one imputation: refit by hand
    imputed = model.impute(np.random.default_rng(9))
    reference = sm.OLS(np.r_[y, imputed], np.r_[X, Xu]).fit(cov_type="HC0")
    assert imputed.shape == (300,) and np.isfinite(reference.params).all()


def test_normal_imputation_draws_match_the_posterior_predictive():
    """Intercept-only normal imputation: y~ = b* + s* e has mean ybar and variance
    s^2 (n - 1)/(n - 3) (1 + 1/n) (the Student-t predictive of the noninformative prior)."""
    rng = np.random.default_rng(13)
    y = rng.normal(2.0, 3.0, size=40)
    # no predictions; one unlabeled unit, given through an imputation design of ones
    model = MultipleImputation(y, imputation_X=np.ones(40), imputation_X_unlabeled=np.ones(1))
    draws = np.array([model.impute(rng)[0] for _ in range(20_000)])
    s2 = y.var(ddof=1)
    expected_var = s2 * (40 - 1) / (40 - 3) * (1 + 1 / 40)
    assert abs(draws.mean() - y.mean()) <= 3.5 * np.sqrt(expected_var / draws.size)
    # SE of a sample variance of a t(39) draw: sqrt((2 + kurtosis) / R) relative; kurtosis 6/(39-4)
    assert abs(draws.var() / expected_var - 1) <= 3.5 * np.sqrt((2 + 6 / 35) / draws.size)


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(yhat_unlabeled=None), ValueError, "both yhat and yhat_unlabeled"),
        (dict(imputation_X=np.ones((80, 1))), ValueError, "both imputation_X and imputation_X_unlabeled"),
        (dict(imputation_X=np.ones((80, 2)), imputation_X_unlabeled=np.ones((200, 2))), ValueError,
         "imputation design"),
        (dict(imputation_X=np.ones((79, 2)), imputation_X_unlabeled=np.ones((200, 2))), ValueError, "rows"),
        (dict(estimand="poisson"), ValueError, "non-negative counts"),
    ],
)
def test_bad_input_is_named(arguments, error, match):
    rng = np.random.default_rng(14)
    X, y, f = sample(rng, 80)
    Xu, _, fu = sample(rng, 200)
    kwargs = dict(yhat=f, yhat_unlabeled=fu, X=X, X_unlabeled=Xu)
    kwargs.update(arguments)
    with pytest.raises(error, match=match):
        MultipleImputation(y, **kwargs)


def test_bad_fit_options():
    rng = np.random.default_rng(15)
    X, y, f = sample(rng, 80)
    Xu, _, fu = sample(rng, 200)
    model = MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu)
    with pytest.raises(ValueError, match="at least 2"):
        model.fit(imputations=1)
    with pytest.raises(ValueError, match="Did you mean 'barnard-rubin'"):
        model.fit(df="barnard-rubn")
    with pytest.raises(TypeError, match="Accepted keywords: imputations, seed, df"):
        model.fit(m=5)


def test_logit_imputation_recovers_the_coefficients():
    rng = np.random.default_rng(16)
    beta = np.array([-0.5, 1.0, 0.5])

    def draw(size):
        X = np.column_stack([np.ones(size), rng.normal(size=(size, 2))])
        eps = rng.logistic(size=size)
        y = (X @ beta + eps > 0).astype(float)
        return X, y, stats.logistic.cdf(X @ beta + 0.7 * eps)  # an informative probability

    X, y, f = draw(1500)
    Xu, _, fu = draw(6000)
    res = MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu, estimand="logit").fit(imputations=10, seed=1)
    # the imputation model (logit on X and the prediction) is misspecified here, so only a
    # loose check that the combined estimate is near the truth with its own standard error
    assert np.all(np.abs(res.params - beta) <= 4 * res.bse), (res.params, res.bse)
    assert res.fmi.between(0, 1).all()


# -- Monte Carlo: congenial (fine) and an omitted interaction (fails) -----------------------------

N_LABELED, N_UNLABELED, REPS, IMPUTATIONS = 300, 2000, 400, 10
SEED = 2025_0801


@functools.cache
def replicate() -> dict:
    """Coverage of every method on the same replications (analysis: y ~ x1 + x2 + x1:x2)."""
    start = time.perf_counter()
    covered = {label: [] for label in ("mi congenial", "mi omits interaction", "naive", "gmm", "classical")}
    for child in np.random.SeedSequence(SEED).spawn(REPS):
        rng = np.random.default_rng(child)
        X, y, f = sample(rng, N_LABELED)
        Xu, _, fu = sample(rng, N_UNLABELED)
        gmm = SyntheticGMM(y, f, fu, X=X, X_unlabeled=Xu)  # one model for its two fits
        fits = {
            "mi congenial": MultipleImputation(y, f, fu, X=X, X_unlabeled=Xu).fit(imputations=IMPUTATIONS, seed=rng),
            "mi omits interaction": MultipleImputation(
                y, f, fu, X=X, X_unlabeled=Xu, imputation_X=X[:, :3], imputation_X_unlabeled=Xu[:, :3]
            ).fit(imputations=IMPUTATIONS, seed=rng),
            "naive": ppinfer.OLS(y, X, f, Xu, fu).fit(method="naive"),
            "gmm": gmm.fit(),
            "classical": gmm.fit(method="classical"),
        }
        for label, res in fits.items():
            lower, upper = res.conf_int(ALPHA).to_numpy().T  # columns lower, upper
            covered[label].append((lower <= BETA) & (BETA <= upper))
    out = {label: np.mean(values, axis=0) for label, values in covered.items()}
    out["seconds"] = time.perf_counter() - start
    return out


@pytest.mark.montecarlo
def test_multiple_imputation_valid_when_congenial():
    coverage = replicate()["mi congenial"]
    tolerance = 3.5 * np.sqrt(NOMINAL * (1 - NOMINAL) / REPS)
    assert np.all(np.abs(coverage - NOMINAL) <= tolerance), coverage


@pytest.mark.montecarlo
def test_multiple_imputation_fails_when_the_imputation_model_omits_an_interaction():
    mc = replicate()
    tolerance = 3.5 * np.sqrt(NOMINAL * (1 - NOMINAL) / REPS)
    # the interaction (last coefficient) is attenuated by the imputations: intervals miss it
    assert mc["mi omits interaction"][3] < 0.5
    assert mc["naive"][3] < 0.5
    # on the same data the GMM estimator, which needs no imputation model, covers
    assert np.all(np.abs(mc["gmm"] - NOMINAL) <= tolerance), mc["gmm"]


if __name__ == "__main__":
    mc = replicate()
    print(f"analysis y ~ x1 + x2 + x1:x2, n={N_LABELED}, N={N_UNLABELED}, {REPS} reps, "
          f"M={IMPUTATIONS} imputations, {mc.pop('seconds'):.1f} s; coverage at nominal {NOMINAL}")
    for label, coverage in mc.items():
        print(f"  {label:22s} {np.round(coverage, 3)}")
