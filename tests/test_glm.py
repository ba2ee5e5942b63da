"""ppinfer.GLM: every statsmodels family and link.

Reference values: statsmodels' ``GLM(...).fit(cov_type="HC0")`` (params and
standard errors; its sandwich uses the observed Hessian), statsmodels'
``GLM.score_obs`` and ``GLM.hessian(observed=False)`` for the expected-Hessian
sandwich, ppinfer's OLS / Logit / Poisson (the canonical-link special cases),
and, for coverage, the known coefficients of the simulated models. Intervals
in the Monte Carlo tests are at nominal 0.90; a coverage frequency has Monte
Carlo standard error ``sqrt(0.9 * 0.1 / reps)`` and the checks allow 3.5 of them.
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import ppinfer
from ppinfer.core.families import GLMFamily

links = sm.families.links
NOMINAL = 0.90
MC_SE_TOLERANCE = 3.5
BETA = np.array([0.3, 0.4, -0.3])


def design(rng, size):
    """Intercept and two standard normal covariates, clipped so that every link stays in range."""
    x = np.clip(rng.normal(size=(size, 2)), -3.0, 3.0)
    return pd.DataFrame({"const": 1.0, "x1": x[:, 0], "x2": x[:, 1]})


def gamma_outcome(rng, mu, shape=2.0):
    return rng.gamma(shape, mu / shape)


def negative_binomial_outcome(rng, mu, alpha=0.5):
    return rng.negative_binomial(1.0 / alpha, 1.0 / (1.0 + alpha * mu)).astype(float)


#: family, linear predictor coefficients, outcome draw given the mean
CASES = {
    "gaussian-identity": (sm.families.Gaussian(), [1.0, 0.5, -0.3], lambda rng, mu: mu + rng.normal(size=mu.size)),
    "gaussian-log": (sm.families.Gaussian(links.Log()), BETA, lambda rng, mu: mu + 0.5 * rng.normal(size=mu.size)),
    "binomial-logit": (sm.families.Binomial(), [-0.3, 0.8, -0.5], lambda rng, mu: rng.binomial(1, mu).astype(float)),
    "binomial-probit": (sm.families.Binomial(links.Probit()), [-0.2, 0.5, -0.3],
                        lambda rng, mu: rng.binomial(1, mu).astype(float)),
    "binomial-cloglog": (sm.families.Binomial(links.CLogLog()), [-0.5, 0.4, -0.3],
                         lambda rng, mu: rng.binomial(1, mu).astype(float)),
    "binomial-log": (sm.families.Binomial(links.Log()), [-1.5, 0.15, -0.1],
                     lambda rng, mu: rng.binomial(1, mu).astype(float)),
    "poisson-log": (sm.families.Poisson(), BETA, lambda rng, mu: rng.poisson(mu).astype(float)),
    "gamma-inverse": (sm.families.Gamma(), [1.0, 0.15, -0.1], gamma_outcome),
    "gamma-log": (sm.families.Gamma(links.Log()), BETA, gamma_outcome),
    "inverse_gaussian-inverse_squared": (sm.families.InverseGaussian(), [1.0, 0.15, -0.1],
                                         lambda rng, mu: rng.wald(mu, 4.0)),
    "inverse_gaussian-log": (sm.families.InverseGaussian(links.Log()), BETA, lambda rng, mu: rng.wald(mu, 4.0)),
    "negative_binomial-log": (sm.families.NegativeBinomial(alpha=0.5), BETA, negative_binomial_outcome),
    "tweedie-log": (sm.families.Tweedie(var_power=1.5), BETA,
                    lambda rng, mu: rng.poisson(mu) * rng.gamma(2.0, 0.5, mu.size)),
}


def simulate(case: str, n: int, N: int, seed, *, exposure: bool = False):
    """Labeled and unlabeled samples of one family/link case, with biased predictions in range."""
    rng = np.random.default_rng(seed)
    family, beta, draw = CASES[case]
    samples = []
    for size in (n, N):
        X = design(rng, size)
        days = rng.uniform(0.5, 2.0, size) if exposure else np.ones(size)
        mu = family.link.inverse(X.to_numpy() @ np.asarray(beta, dtype=float) + np.log(days))
        y = draw(rng, mu)
        yhat = 1.2 * mu + 0.2 * np.abs(y - mu)  # biased and informative, >= 0
        if isinstance(family, sm.families.Binomial):
            yhat = np.clip(0.5 * y + 0.5 * np.clip(1.3 * mu, 0.0, 1.0), 0.0, 1.0)
        elif isinstance(family, sm.families.Gaussian) and isinstance(family.link, links.Identity):
            yhat = 1.2 * y + 0.3
        samples.append((X, y, yhat + (1e-3 if case.startswith(("gamma", "inverse")) else 0.0), days))
    return samples


def statsmodels_glm(y, X, family, **options):
    """statsmodels' GLM fitted with a tight tolerance (its default stops at a relative deviance
    change of 1e-8, which leaves some params off by more than 1e-6)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' DomainWarning for links outside its default list
        model = sm.GLM(y, X, family=family, **options)
        return model, model.fit(cov_type="HC0", tol=1e-13, maxiter=1000)


def glm_model(case, samples, **options):
    (X, y, yhat, _), (Xu, _, yhat_u, _) = samples
    return ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=CASES[case][0], **options)


# -- classical fits equal statsmodels -----------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_classical_equals_statsmodels_hc0(case):
    """Every family/link pair: params and HC0 standard errors equal statsmodels' to 1e-6."""
    samples = simulate(case, 400, 500, seed=list(CASES).index(case))
    (X, y, _, _) = samples[0]
    res = glm_model(case, samples).fit(method="classical", cov_type="HC0", use_t=False)
    _, reference = statsmodels_glm(y, X, CASES[case][0])
    np.testing.assert_allclose(res.params.to_numpy(), reference.params.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(res.pvalues.to_numpy(), reference.pvalues.to_numpy(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("case", ["gamma-log", "binomial-probit", "negative_binomial-log", "tweedie-log"])
def test_expected_hessian_equals_statsmodels_fisher_sandwich(case):
    """hessian="expected": the sandwich with statsmodels' expected Hessian as bread; it differs
    from the observed one (the default) for these non-canonical links."""
    samples = simulate(case, 400, 500, seed=11)
    (X, y, _, _) = samples[0]
    model = glm_model(case, samples, hessian="expected")
    res = model.fit(method="classical", cov_type="HC0", use_t=False)
    reference_model, reference = statsmodels_glm(y, X, CASES[case][0])
    params = reference.params.to_numpy()
    scores = reference_model.score_obs(params)
    bread = np.linalg.inv(-reference_model.hessian(params, observed=False))
    expected_bse = np.sqrt(np.diag(bread @ scores.T @ scores @ bread))
    np.testing.assert_allclose(res.params.to_numpy(), params, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.bse.to_numpy(), expected_bse, rtol=1e-6)
    observed = glm_model(case, samples).fit(method="classical", cov_type="HC0", use_t=False)
    assert np.max(np.abs(observed.bse.to_numpy() / expected_bse - 1.0)) > 1e-3


def test_offset_and_exposure_equal_statsmodels():
    """Poisson and negative binomial with exposure, and with an offset, equal statsmodels' fits."""
    for case in ("poisson-log", "negative_binomial-log"):
        (X, y, yhat, days), (Xu, _, yhat_u, days_u) = simulate(case, 400, 500, seed=3, exposure=True)
        family = CASES[case][0]
        _, reference = statsmodels_glm(y, X, family, exposure=days)
        for options in (dict(exposure=days, exposure_unlabeled=days_u),
                        dict(offset=np.log(days), offset_unlabeled=np.log(days_u))):
            res = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=family, **options).fit(
                method="classical", cov_type="HC0", use_t=False)
            np.testing.assert_allclose(res.params.to_numpy(), reference.params.to_numpy(), rtol=1e-6)
            np.testing.assert_allclose(res.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)
        # offset and exposure together add up
        half = np.log(days) / 2
        both = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=family, offset=half, offset_unlabeled=np.log(days_u) / 2,
                           exposure=np.sqrt(days), exposure_unlabeled=np.sqrt(days_u))
        np.testing.assert_allclose(both.fit(method="classical").params.to_numpy(), reference.params.to_numpy(),
                                   rtol=1e-6)


def test_weighted_fit_equals_statsmodels_var_weights():
    """Sampling weights: the classical weighted fit and its HC0 sandwich equal statsmodels' with var_weights."""
    (X, y, yhat, _), (Xu, _, yhat_u, _) = simulate("gamma-log", 400, 500, seed=5)
    rng = np.random.default_rng(5)
    w, wu = rng.uniform(0.5, 3.0, len(y)), rng.uniform(0.5, 3.0, len(yhat_u))
    family = CASES["gamma-log"][0]
    res = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=family, weights=w, weights_unlabeled=wu).fit(
        method="classical", cov_type="HC0", use_t=False)
    _, reference = statsmodels_glm(y, X, family, var_weights=w)
    np.testing.assert_allclose(res.params.to_numpy(), reference.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(res.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)


# -- the canonical-link models are GLMs ------------------------------------------------------------


@pytest.mark.parametrize("case, cls", [("gaussian-identity", ppinfer.OLS), ("binomial-logit", ppinfer.Logit),
                                       ("poisson-log", ppinfer.Poisson)])
def test_ols_logit_poisson_equal_glm(case, cls):
    """OLS, Logit and Poisson equal GLM with the matching family: every method, tuning and cov_type,
    and with clusters."""
    samples = simulate(case, 300, 3000, seed=7)
    (X, y, yhat, _), (Xu, _, yhat_u, _) = samples
    if case == "binomial-logit":
        yhat = np.clip(yhat, 0, 1)
    strata = {"strata": np.arange(len(y)) % 3, "strata_unlabeled": np.arange(len(yhat_u)) % 3}
    for options in ({}, {"clusters": np.arange(len(y)) // 5, "clusters_unlabeled": np.arange(len(yhat_u)) // 5},
                    strata):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppinfer.FewClustersWarning)
            special = cls(y, X, yhat, Xu, yhat_u, **options)
            general = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=CASES[case][0], **options)
        fits = [dict(method="ppi++"), dict(method="ppi++", lam="per-coefficient"), dict(method="ppi"),
                dict(method="classical"), dict(method="naive")]
        cov_types = ["CR2", "CR1"] if "clusters" in options else ["HC3", "HC2", "HC0"]
        if options is strata:
            fits = [dict(method="ppi++", lam="per-stratum"), dict(method="ppi++", ci="bootstrap", n_boot=20, seed=3)]
            cov_types = ["HC3"]
        for fit in fits:
            for cov_type in cov_types:
                a, b = special.fit(cov_type=cov_type, **fit), general.fit(cov_type=cov_type, **fit)
                np.testing.assert_allclose(b.params.to_numpy(), a.params.to_numpy(), rtol=1e-8, atol=1e-10)
                np.testing.assert_allclose(b.bse.to_numpy(), a.bse.to_numpy(), rtol=1e-7)
                np.testing.assert_allclose(b.conf_int().to_numpy(), a.conf_int().to_numpy(), rtol=1e-7, atol=1e-9)


# -- formula interface ----------------------------------------------------------------------------------


def test_formula_equals_arrays_with_offsets_and_dropped_rows():
    """ppinfer.glm with an exposure column: equal to GLM on arrays; rows with missing values (in a
    covariate or the exposure) dropped from both, consistently."""
    (X, y, yhat, days), (Xu, _, yhat_u, days_u) = simulate("negative_binomial-log", 300, 2000, seed=9, exposure=True)
    data = X.drop(columns="const").assign(y=y, yhat=yhat, days=days)
    unlabeled = Xu.drop(columns="const").assign(yhat=yhat_u, days=days_u)
    data.loc[3, "x1"] = np.nan
    data.loc[5, "days"] = np.nan
    unlabeled.loc[7, "days"] = np.nan
    family = sm.families.NegativeBinomial(alpha=0.5)
    with pytest.raises(ValueError, match="missing values|NaN"):
        ppinfer.glm("y ~ x1 + x2", data, unlabeled, "yhat", family=family, exposure="days")
    model = ppinfer.glm("y ~ x1 + x2", data, unlabeled, "yhat", family=family, exposure="days", missing="drop")
    assert model.rows_dropped == (2, 1)
    keep, keep_u = data.notna().all(axis=1).to_numpy(), unlabeled.notna().all(axis=1).to_numpy()
    arrays = ppinfer.GLM(y[keep], X[keep], yhat[keep], Xu[keep_u], yhat_u[keep_u], family=family,
                         exposure=days[keep], exposure_unlabeled=days_u[keep_u])
    a, b = model.fit(), arrays.fit()
    assert a.params.index.tolist() == ["Intercept", "x1", "x2"]
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(a.bse.to_numpy(), b.bse.to_numpy(), rtol=1e-10)
    # a column in data only needs its unlabeled counterpart
    with pytest.raises(ValueError, match="not of unlabeled"):
        ppinfer.glm("y ~ x1 + x2", data, unlabeled.drop(columns="days"), "yhat", family=family, exposure="days",
                    missing="drop")
    separate = ppinfer.glm("y ~ x1 + x2", data, unlabeled.drop(columns="days"), "yhat", family=family,
                           exposure="days", exposure_unlabeled=unlabeled["days"].to_numpy(), missing="drop")
    np.testing.assert_allclose(separate.fit().params.to_numpy(), b.params.to_numpy(), rtol=1e-10)


def test_summary_names_family_and_hessian():
    samples = simulate("gamma-log", 200, 1000, seed=2)
    text = str(glm_model("gamma-log", samples).fit().summary())
    assert "Gamma (Log link)" in text and "observed" in text


# -- coverage with biased predictions -------------------------------------------------------------------


def coverage_run(case, n, N, reps, seed, predict):
    """Coverage of PPI++ and naive pooling at 0.90 over ``reps`` seeded replications."""
    family, beta, draw = CASES[case]
    beta = np.asarray(beta, dtype=float)
    hits = {"ppi++": np.zeros(3), "naive": np.zeros(3)}
    widths = {"ppi++": np.zeros(3), "classical": np.zeros(3)}
    for child in np.random.SeedSequence(seed).spawn(reps):
        rng = np.random.default_rng(child)
        samples = []
        for size in (n, N):
            X = design(rng, size).to_numpy()
            mu = family.link.inverse(X @ beta)
            y = draw(rng, mu)
            samples.append((X, y, predict(rng, y, mu)))
        (X, y, yhat), (Xu, _, yhat_u) = samples
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppinfer.PPIWarning)
            model = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=family)
            for method in ("ppi++", "naive", "classical"):
                interval = model.fit(method=method).conf_int(1 - NOMINAL).to_numpy()
                if method in hits:
                    hits[method] += (interval[:, 0] <= beta) & (beta <= interval[:, 1])
                if method in widths:
                    widths[method] += interval[:, 1] - interval[:, 0]
    return {k: v / reps for k, v in hits.items()}, {k: v / reps for k, v in widths.items()}


COVERAGE_CASES = {
    # Gamma outcomes (log link); predictions inflated by 30% and shrunk towards a power of y
    "gamma-log": (300, 3000, lambda rng, y, mu: 1.3 * y**0.8 * rng.lognormal(0.0, 0.2, y.size)),
    # binary outcomes (probit link), probability predictions that lean on the outcome but are biased upwards
    "binomial-probit": (300, 3000, lambda rng, y, mu: np.clip(0.4 * y + 0.6 * np.clip(mu + 0.15, 0, 1), 0, 1)),
    # overdispersed counts; predictions biased upwards and noisy; a small labeled sample
    "negative_binomial-log": (120, 2000, lambda rng, y, mu: 1.25 * y + rng.poisson(1.0, y.size)),
}


@pytest.mark.montecarlo
@pytest.mark.parametrize("case", list(COVERAGE_CASES))
def test_coverage_with_biased_predictions(case):
    """PPI++ covers each coefficient at 0.90 within 3.5 MC SE with biased predictions (the truth is the
    outcome model's coefficients); naive pooling, which treats predictions as outcomes, does not;
    the predictions make PPI++ narrower than the classical interval."""
    reps = 300
    n, N, predict = COVERAGE_CASES[case]
    coverage, widths = coverage_run(case, n, N, reps, seed=20_251_000 + list(COVERAGE_CASES).index(case), predict=predict)
    bound = MC_SE_TOLERANCE * np.sqrt(NOMINAL * (1 - NOMINAL) / reps)
    assert np.all(np.abs(coverage["ppi++"] - NOMINAL) <= bound), (case, coverage)
    assert np.min(coverage["naive"]) < NOMINAL - bound, (case, coverage)
    assert np.all(widths["ppi++"] < widths["classical"]), (case, widths)


# -- input errors ------------------------------------------------------------------------------------------


def test_ranges_of_outcomes_and_predictions_are_checked():
    samples = simulate("gamma-log", 100, 200, seed=1)
    (X, y, yhat, _), (Xu, _, yhat_u, _) = samples
    gamma = CASES["gamma-log"][0]
    with pytest.raises(ValueError, match=r"^y must be positive"):
        ppinfer.GLM(np.r_[0.0, y[1:]], X, yhat, Xu, yhat_u, family=gamma)
    with pytest.raises(ValueError, match=r"^yhat_unlabeled must be positive"):
        ppinfer.GLM(y, X, yhat, Xu, np.r_[-1.0, yhat_u[1:]], family=gamma)
    binomial = sm.families.Binomial(links.Probit())
    with pytest.raises(ValueError, match=r"^y must be proportions in \[0, 1\]"):
        ppinfer.GLM(y + 1.0, X, np.full(len(y), 0.5), Xu, np.full(len(yhat_u), 0.5), family=binomial)
    with pytest.raises(ValueError, match=r"^yhat must be proportions in \[0, 1\]"):
        ppinfer.GLM((y > 1).astype(float), X, yhat + 1.0, Xu, np.full(len(yhat_u), 0.5), family=binomial)
    with pytest.raises(ValueError, match=r"^y must be non-negative"):
        ppinfer.GLM(y - 5.0, X, yhat, Xu, yhat_u, family=sm.families.NegativeBinomial())
    # Gaussian outcomes may be anything
    ppinfer.GLM(y - 5.0, X, yhat - 5.0, Xu, yhat_u - 5.0, family=sm.families.Gaussian())


def test_bad_options_raise_clear_errors():
    (X, y, yhat, days), (Xu, _, yhat_u, days_u) = simulate("poisson-log", 100, 200, seed=1, exposure=True)
    with pytest.raises(TypeError, match="statsmodels family"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family="poisson")
    with pytest.raises(ValueError, match="Did you mean 'observed'"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), hessian="observd")
    with pytest.raises(ValueError, match="offset is given but offset_unlabeled is not"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), offset=np.log(days))
    with pytest.raises(ValueError, match="exposure needs the log link"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(links.Sqrt()), exposure=days,
                    exposure_unlabeled=days_u)
    with pytest.raises(ValueError, match="exposure_unlabeled must be positive"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), exposure=days,
                    exposure_unlabeled=np.r_[0.0, days_u[1:]])
    with pytest.raises(ValueError, match="offset has 1 row"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), offset=np.r_[np.nan, np.log(days[1:])],
                    offset_unlabeled=np.log(days_u))
    with pytest.raises(ValueError, match="offset_unlabeled has 3 rows but X_unlabeled has 200"):
        ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), offset=np.log(days),
                    offset_unlabeled=np.zeros(3))


def test_nan_offset_rows_dropped_with_their_data():
    (X, y, yhat, days), (Xu, _, yhat_u, days_u) = simulate("poisson-log", 200, 400, seed=4, exposure=True)
    offset = np.log(days)
    offset[[2, 9]] = np.nan
    model = ppinfer.GLM(y, X, yhat, Xu, yhat_u, family=sm.families.Poisson(), offset=offset,
                        offset_unlabeled=np.log(days_u), missing="drop")
    keep = np.isfinite(offset)
    _, reference = statsmodels_glm(y[keep], X[keep], sm.families.Poisson(), offset=offset[keep])
    assert model.rows_dropped == (2, 0)
    res = model.fit(method="classical", cov_type="HC0", use_t=False)
    np.testing.assert_allclose(res.bse.to_numpy(), reference.bse.to_numpy(), rtol=1e-6)


def test_start_outside_the_mean_range_recovers():
    """Gamma with its inverse link: a warm start from the labeled predictions' fit that would give a
    negative mean on an unlabeled row falls back to the family's own start."""
    family = GLMFamily(sm.families.Gamma())
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(200), rng.uniform(0, 1, 200)])
    y = rng.gamma(2.0, 1.0 / (1.0 + X[:, 1]) / 2.0)
    from ppinfer.core.fitting import fit_glm

    good = fit_glm(family, [(X, y)])
    shifted = fit_glm(family, [(X, y)], start=np.array([-5.0, 0.0]))
    np.testing.assert_allclose(shifted.params, good.params, rtol=1e-8)
    reference = sm.GLM(y, X, family=sm.families.Gamma()).fit()
    np.testing.assert_allclose(good.params, reference.params, rtol=1e-6)


def test_docstring_examples_run():
    import ppinfer.formula
    import ppinfer.models.regression

    for module in (ppinfer.models.regression, ppinfer.formula):
        failures, attempted = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert attempted > 0 and failures == 0, module.__name__
