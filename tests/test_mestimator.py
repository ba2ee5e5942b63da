"""ppinfer.MEstimator: prediction-powered inference from a user's estimating function.

Reference values: ppinfer's OLS and Logit (the same estimators through the GLM
core: every number must agree), statsmodels' ``RLM`` (Huber regression point
estimates), linearmodels' ``IV2SLS`` (instrumental variables: params, standard
errors, p-values), closed forms written in numpy in the tests (a ratio of
means, OLS with a predicted covariate, over-identified 2SLS as a stacked
system), and, for coverage, the known parameters of simulated models.
Intervals in the Monte Carlo tests are at nominal 0.90; the checks allow 3.5
Monte Carlo standard errors ``sqrt(0.9 * 0.1 / reps)``.
"""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

import ppinfer

NOMINAL = 0.90
MC_SE_TOLERANCE = 3.5
COLUMNS = ["const", "x1", "x2"]


# -- estimating functions ------------------------------------------------------------------------
def matrix(rows, names):
    """Columns of a data frame as a float matrix.

    The fits call the scores thousands of times on slices of a data frame: one conversion of
    the slice and a positional take is about ten times faster than selecting the columns in
    pandas (even column by column), and gives the same numbers.
    """
    position = rows.columns.get_loc
    return np.asarray(rows.to_numpy()[:, [position(name) for name in names]], dtype=float)


def column(rows, name):
    """One column of a data frame as a float vector (as :func:`matrix`)."""
    return matrix(rows, [name])[:, 0]


def ols_score(b, rows):
    X = matrix(rows, COLUMNS)
    return X * (column(rows, "y") - X @ b)[:, None]


def logit_score(b, rows):
    X = matrix(rows, COLUMNS)
    return X * (column(rows, "y") - expit(X @ b))[:, None]


def logit_jacobian(b, rows):
    X = matrix(rows, COLUMNS)
    mu = expit(X @ b)
    return -np.einsum("i,ij,ik->ijk", mu * (1 - mu), X, X)


def huber_score(scale, t=1.345):
    def score(b, rows):
        X = matrix(rows, COLUMNS)
        return X * np.clip((column(rows, "y") - X @ b) / scale, -t, t)[:, None]

    return score


def iv_score(b, rows):
    """Just-identified IV: instruments (const, z) for the regressors (const, d)."""
    Z, X = matrix(rows, ["const", "z"]), matrix(rows, ["const", "d"])
    return Z * (column(rows, "y") - X @ b)[:, None]


def regression_data(seed, n=300, N=3000, binary=False):
    rng = np.random.default_rng(seed)
    frames = []
    for size in (n, N):
        x = rng.normal(size=(size, 2))
        eta = 0.5 + x @ [1.0, -0.5]
        y = rng.binomial(1, expit(eta)).astype(float) if binary else eta + rng.standard_t(4, size)
        yhat = np.clip(0.5 * y + 0.4 * expit(1.3 * eta), 0, 1) if binary else 1.3 * eta + 0.3 + 0.5 * (y - eta)
        frames.append(pd.DataFrame({"const": 1.0, "x1": x[:, 0], "x2": x[:, 1], "y": y, "yhat": yhat,
                                    "g": np.arange(size) // 6, "s": (np.arange(size) // 6) % 3,
                                    "w": rng.uniform(0.5, 2.0, size)}))
    return frames[0], frames[1].drop(columns="y")


def assert_same_results(a, b, rtol=1e-8):
    np.testing.assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(a.bse.to_numpy(), b.bse.to_numpy(), rtol=rtol * 10)
    np.testing.assert_allclose(a.conf_int().to_numpy(), b.conf_int().to_numpy(), rtol=rtol * 10, atol=1e-10)
    np.testing.assert_allclose(np.atleast_1d(np.asarray(a.lam, dtype=float)),
                               np.atleast_1d(np.asarray(b.lam if b.lam is not None else np.nan, dtype=float))
                               if a.lam is not None else np.nan, rtol=rtol * 10)


# -- reproduces OLS and Logit ---------------------------------------------------------------------------
OLS_FITS = [
    (dict(method="classical"), ["HC0", "HC1", "HC2", "HC3"]),
    (dict(method="ppi"), ["HC0", "HC1", "HC2", "HC3"]),
    (dict(method="ppi++"), ["HC0", "HC1"]),
    (dict(method="ppi++", lam="per-coefficient"), ["HC0", "HC1"]),
    (dict(method="ppi++", lam=0.4), ["HC2", "HC3"]),
    (dict(method="naive"), ["HC0", "HC3"]),
]


def test_reproduces_ols_without_a_design():
    """Every method and covariance equals ppinfer.OLS (the leverage corrections in matrix form equal
    the scalar ones); with a tuned lambda, HC2/HC3 add a score-based tuning leverage, close to OLS's."""
    labeled, unlabeled = regression_data(1)
    general = ppinfer.MEstimator(ols_score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(3), param_names=COLUMNS)
    special = ppinfer.OLS(labeled["y"], labeled[COLUMNS], labeled["yhat"], unlabeled[COLUMNS], unlabeled["yhat"])
    assert general.symmetric and general.default_cov_type == special.default_cov_type == "HC3"
    for fit, cov_types in OLS_FITS:
        for cov_type in cov_types:
            assert_same_results(general.fit(cov_type=cov_type, **fit), special.fit(cov_type=cov_type, **fit))
    tuned_general, tuned_special = general.fit(), special.fit()
    np.testing.assert_allclose(tuned_general.params.to_numpy(), tuned_special.params.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(tuned_general.bse.to_numpy(), tuned_special.bse.to_numpy(), rtol=0.03)


@pytest.mark.parametrize("options", [
    dict(clusters="g"),
    dict(weights="w", strata="s"),
    dict(clusters="g", strata="s", weights="w"),
    dict(label_prob="w"),
])
def test_reproduces_ols_with_designs(options):
    """Clusters (CR0-CR2, Bell-McCaffrey df), weights with strata, two-phase labeling: column names of
    the data frames give the design, and every number equals ppinfer.OLS with the same design."""
    labeled, unlabeled = regression_data(2)
    if "label_prob" in options:
        labeled = labeled.assign(w=labeled["w"] / 2.0)
    arrays = {key: labeled[value].to_numpy() for key, value in options.items()}
    arrays.update({f"{key}_unlabeled": unlabeled[value].to_numpy() for key, value in options.items()
                   if key != "label_prob"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.PPIWarning)
        general = ppinfer.MEstimator(ols_score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(3), **options)
        special = ppinfer.OLS(labeled["y"], labeled[COLUMNS], labeled["yhat"], unlabeled[COLUMNS], unlabeled["yhat"],
                              **arrays)
        cov_types = ["CR2", "CR1", "CR0"] if "clusters" in options else ["HC0", "HC1"]
        for fit in (dict(method="ppi++"), dict(method="ppi"), dict(method="classical"), dict(method="naive")):
            for cov_type in cov_types:
                assert_same_results(general.fit(cov_type=cov_type, **fit), special.fit(cov_type=cov_type, **fit))
        if "strata" in options:
            assert_same_results(general.fit(lam="per-stratum", cov_type=cov_types[0]),
                                special.fit(lam="per-stratum", cov_type=cov_types[0]))


@pytest.mark.parametrize("jacobian", [None, "rows", "summed"])
def test_reproduces_logit(jacobian):
    """Logistic regression's estimating equations equal ppinfer.Logit, with a numerical, per-row or
    summed analytic Jacobian."""
    labeled, unlabeled = regression_data(3, binary=True)
    function = {None: None, "rows": logit_jacobian,
                "summed": lambda b, rows: logit_jacobian(b, rows).sum(axis=0)}[jacobian]
    general = ppinfer.MEstimator(logit_score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(3),
                                 jacobian=function, param_names=COLUMNS)
    special = ppinfer.Logit(labeled["y"], labeled[COLUMNS], labeled["yhat"], unlabeled[COLUMNS], unlabeled["yhat"])
    for fit, cov_types in OLS_FITS:
        for cov_type in cov_types:
            assert_same_results(general.fit(cov_type=cov_type, **fit), special.fit(cov_type=cov_type, **fit), rtol=1e-7)


def test_analytic_jacobians_save_score_calls():
    """Per-row analytic derivatives save the 2p calls per pass of central differences; a summed
    Jacobian saves them in all but the passes that feed the variance."""
    labeled, unlabeled = regression_data(3, binary=True)
    calls = {}
    for name, jacobian in (("numerical", None), ("rows", logit_jacobian),
                           ("summed", lambda b, rows: logit_jacobian(b, rows).sum(axis=0))):
        count = [0]

        def score(b, rows, count=count):
            count[0] += 1
            return logit_score(b, rows)

        ppinfer.MEstimator(score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(3), jacobian=jacobian).fit()
        calls[name] = count[0]
    assert calls["rows"] < calls["summed"] < calls["numerical"], calls


def test_bootstrap_equals_ols_bootstrap():
    """ci="bootstrap" resamples the data frames with the samples: the same seed gives OLS's replicates."""
    labeled, unlabeled = regression_data(4, n=120, N=600)
    general = ppinfer.MEstimator(ols_score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(3))
    special = ppinfer.OLS(labeled["y"], labeled[COLUMNS], labeled["yhat"], unlabeled[COLUMNS], unlabeled["yhat"])
    a = general.fit(ci="bootstrap", n_boot=40, seed=5)
    b = special.fit(ci="bootstrap", n_boot=40, seed=5)
    np.testing.assert_allclose(a.conf_int().to_numpy(), b.conf_int().to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(a.bse.to_numpy(), b.bse.to_numpy(), rtol=1e-8)


# -- robust regression and instrumental variables against other packages ---------------------------------


def test_huber_equals_statsmodels_rlm():
    """Huber regression (t = 1.345, scale fixed at RLM's MAD of the least-squares residuals) equals
    statsmodels' RLM point estimates, on the labeled rows with y and with yhat."""
    labeled, unlabeled = regression_data(5)
    X = labeled[COLUMNS].to_numpy()
    for column in ("y", "yhat"):
        reference = sm.RLM(labeled[column].to_numpy(), X, M=sm.robust.norms.HuberT(t=1.345)).fit(
            update_scale=False, conv="coefs", tol=1e-13, maxiter=1000)
        score = huber_score(reference.scale)
        model = ppinfer.MEstimator(score, labeled.assign(y=labeled[column]), unlabeled, {"y": "yhat"},
                                   start=np.linalg.lstsq(X, labeled["y"], rcond=None)[0])
        np.testing.assert_allclose(model.fit(method="classical").params.to_numpy(), reference.params, rtol=1e-8)


def iv_data(seed, n=400, N=4000):
    """y = 1 + 2 d + u + e with d = 0.8 z + u + v endogenous (u in both); z an instrument."""
    rng = np.random.default_rng(seed)
    frames = []
    for size in (n, N):
        z, z2, u = rng.normal(size=size), rng.normal(size=size), rng.normal(size=size)
        d = 0.8 * z + 0.4 * z2 + u + rng.normal(size=size)
        y = 1.0 + 2.0 * d + u + rng.normal(size=size)
        yhat = 0.7 * y + 0.6 * d + 0.5 + 0.5 * rng.normal(size=size)  # biased, informative
        frames.append(pd.DataFrame({"const": 1.0, "z": z, "z2": z2, "d": d, "y": y, "yhat": yhat}))
    return frames[0], frames[1].drop(columns="y")


def test_iv_equals_linearmodels_iv2sls():
    """Just-identified IV equals linearmodels' IV2SLS: params, robust standard errors (HC0, normal
    reference: debiased=False) and the small-sample version (HC1, t with n - k df: debiased=True).
    Its Jacobian is not symmetric: the default is HC1, and leverage corrections are refused."""
    from linearmodels.iv import IV2SLS

    labeled, unlabeled = iv_data(6)
    model = ppinfer.MEstimator(iv_score, labeled, unlabeled, {"y": "yhat"}, start=np.zeros(2),
                               param_names=["const", "d"])
    assert not model.symmetric and model.default_cov_type == "HC1"
    for debiased, options in ((False, dict(cov_type="HC0", use_t=False)), (True, {})):
        reference = IV2SLS(labeled["y"], labeled[["const"]], labeled[["d"]], labeled[["z"]]).fit(
            cov_type="robust", debiased=debiased)
        res = model.fit(method="classical", **options)
        np.testing.assert_allclose(res.params.to_numpy(), reference.params.to_numpy(), rtol=1e-8)
        np.testing.assert_allclose(res.bse.to_numpy(), reference.std_errors.to_numpy(), rtol=1e-8)
        np.testing.assert_allclose(res.tvalues.to_numpy(), reference.tstats.to_numpy(), rtol=1e-8)
    with pytest.raises(ValueError, match="symmetric Hessian.*'HC1'"):
        model.fit(cov_type="HC3")


def test_overidentified_2sls_as_a_stacked_system():
    """Two instruments for one endogenous regressor: the stacked equations (first stage, then the
    structural equation with the fitted regressor) give IV2SLS's coefficients exactly, and the
    stacked sandwich computed by hand in numpy."""
    from linearmodels.iv import IV2SLS

    labeled, unlabeled = iv_data(7)

    def stacked(theta, rows):
        b, pi = theta[:2], theta[2:]
        Z = matrix(rows, ["const", "z", "z2"])
        d = rows["d"].to_numpy()
        fitted = np.column_stack([np.ones(len(rows)), Z @ pi])
        structural = fitted * (rows["y"].to_numpy() - b[0] - b[1] * d)[:, None]
        return np.hstack([structural, Z * (d - Z @ pi)[:, None]])

    # at pi = 0 the fitted regressor vanishes and the Jacobian is singular: start the first stage elsewhere
    model = ppinfer.MEstimator(stacked, labeled, unlabeled, {"y": "yhat"}, start=[0.0, 0.0, 0.0, 1.0, 1.0])
    res = model.fit(method="classical", cov_type="HC0", use_t=False)
    reference = IV2SLS(labeled["y"], labeled[["const"]], labeled[["d"]], labeled[["z", "z2"]]).fit()
    np.testing.assert_allclose(res.params.to_numpy()[:2], reference.params.to_numpy(), rtol=1e-8)
    # the sandwich of the stacked system, by hand
    Z, d, y = labeled[["const", "z", "z2"]].to_numpy(), labeled["d"].to_numpy(), labeled["y"].to_numpy()
    pi = np.linalg.lstsq(Z, d, rcond=None)[0]
    b = reference.params.to_numpy()
    fitted = np.column_stack([np.ones(len(y)), Z @ pi])
    residual = y - b[0] - b[1] * d
    scores = np.hstack([fitted * residual[:, None], Z * (d - Z @ pi)[:, None]])
    H = np.zeros((5, 5))
    H[:2, :2] = fitted.T @ np.column_stack([np.ones(len(y)), d])
    H[1, 2:] = -(Z * residual[:, None]).sum(axis=0)  # the fitted regressor's dependence on pi
    H[2:, 2:] = Z.T @ Z
    bread = np.linalg.inv(H)
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(bread @ scores.T @ scores @ bread.T)), rtol=1e-6)


# -- closed forms ------------------------------------------------------------------------------------------


def test_ratio_of_means_closed_form():
    """theta = E[y] / E[x]: PPI (lam = 1) is sum(y)/sum(x) + sum(yhat_u)/sum(x_u) - sum(yhat)/sum(x);
    its HC0 variance is that of the delta method's influence rows; tuned lambda as in PPI++."""
    rng = np.random.default_rng(8)
    n, N = 200, 2000
    x, xu = rng.gamma(3.0, 1.0, n), rng.gamma(3.0, 1.0, N)
    y, yu = 2 * x + rng.normal(size=n), 2 * xu + rng.normal(size=N)
    f, fu = 1.2 * y + rng.normal(size=n), 1.2 * yu + rng.normal(size=N)
    labeled = pd.DataFrame({"x": x, "y": y, "f": f})
    unlabeled = pd.DataFrame({"x": xu, "f": fu})
    model = ppinfer.MEstimator(lambda t, rows: rows["y"] - t[0] * rows["x"], labeled, unlabeled, {"y": "f"},
                               start=[1.0], param_names=["ratio"])
    r_y, r_f, r_u = y.sum() / x.sum(), f.sum() / x.sum(), fu.sum() / xu.sum()
    u, v, w = (y - r_y * x) / x.sum(), (f - r_f * x) / x.sum(), (fu - r_u * xu) / xu.sum()
    res = model.fit(method="ppi", cov_type="HC0", use_t=False)
    assert res.params["ratio"] == pytest.approx(r_y + r_u - r_f, rel=1e-10)
    assert res.bse["ratio"] ** 2 == pytest.approx(np.sum((u - v) ** 2) + np.sum(w**2), rel=1e-8)
    tuned = model.fit(cov_type="HC0", use_t=False)
    lam = np.clip(np.sum(u * v) / (np.sum(v**2) + np.sum(w**2)), 0, 1)
    assert tuned.lam == pytest.approx(lam, rel=1e-8)
    assert tuned.params["ratio"] == pytest.approx(r_y + lam * (r_u - r_f), rel=1e-10)


def test_predicted_outcome_and_covariate_closed_form():
    """OLS with the outcome and a covariate both predicted (predict-then-debias with predicted
    covariates): params and the HC0 variance of PPI (lam = 1) by hand in numpy."""
    rng = np.random.default_rng(9)
    frames = []
    for size in (300, 3000):
        x1, x2 = rng.normal(size=size), rng.normal(size=size)
        y = 1 + x1 - x2 + rng.normal(size=size)
        frames.append(pd.DataFrame({"const": 1.0, "x1": x1, "x2": x2, "y": y,
                                    "x2_hat": 0.8 * x2 + 0.3 * rng.normal(size=size) + 0.2,
                                    "y_hat": y + 0.5 * rng.normal(size=size) + 0.3}))
    labeled, unlabeled = frames[0], frames[1].drop(columns=["y", "x2"])
    model = ppinfer.MEstimator(ols_score, labeled, unlabeled, {"y": "y_hat", "x2": "x2_hat"}, start=np.zeros(3))
    res = model.fit(method="ppi", cov_type="HC0", use_t=False)

    def ols_parts(X, v):
        b = np.linalg.lstsq(X, v, rcond=None)[0]
        return b, (X * (v - X @ b)[:, None]) @ np.linalg.inv(X.T @ X)

    b_y, u = ols_parts(labeled[COLUMNS].to_numpy(), labeled["y"].to_numpy())
    b_f, v = ols_parts(labeled[["const", "x1", "x2_hat"]].to_numpy(), labeled["y_hat"].to_numpy())
    b_u, w = ols_parts(unlabeled[["const", "x1", "x2_hat"]].to_numpy(), unlabeled["y_hat"].to_numpy())
    np.testing.assert_allclose(res.params.to_numpy(), b_y + b_u - b_f, rtol=1e-8)
    covariance = (u - v).T @ (u - v) + w.T @ w
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(covariance)), rtol=1e-7)
    assert model.endog_name == "y, x2"


# -- coverage with biased predictions ------------------------------------------------------------------------


def run_coverage(make_data, score, truth, start, reps, seed, columns_start=None):
    hits = {"ppi++": 0.0, "naive": 0.0}
    for child in np.random.SeedSequence(seed).spawn(reps):
        labeled, unlabeled = make_data(np.random.default_rng(child))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppinfer.PPIWarning)
            model = ppinfer.MEstimator(score, labeled, unlabeled, {"y": "yhat"}, start=start(labeled))
            for method in hits:
                interval = model.fit(method=method).conf_int(1 - NOMINAL).to_numpy()
                hits[method] = hits[method] + ((interval[:, 0] <= truth) & (truth <= interval[:, 1]))
    return {method: value / reps for method, value in hits.items()}


def huber_data(rng, n=150, N=1500):
    frames = []
    for size in (n, N):
        x = rng.normal(size=(size, 2))
        eta = 0.5 + x @ [1.0, -0.5]
        y = eta + rng.standard_t(3, size)  # symmetric errors: Huber's target is the regression line
        yhat = 1.3 * eta + 0.4 + 0.5 * (y - eta) + 0.3 * rng.normal(size=size)
        frames.append(pd.DataFrame({"const": 1.0, "x1": x[:, 0], "x2": x[:, 1], "y": y, "yhat": yhat}))
    return frames[0], frames[1].drop(columns="y")


@pytest.mark.montecarlo
def test_huber_coverage_with_biased_predictions():
    """Huber regression (scale fixed at 1.5) with t(3) errors, n = 150: PPI++ covers the regression
    coefficients at 0.90 within 3.5 MC SE; naive pooling does not."""
    reps = 200
    coverage = run_coverage(
        huber_data, huber_score(1.5), np.array([0.5, 1.0, -0.5]),
        lambda labeled: np.linalg.lstsq(labeled[COLUMNS], labeled["y"], rcond=None)[0], reps, seed=20_251_100,
    )
    bound = MC_SE_TOLERANCE * np.sqrt(NOMINAL * (1 - NOMINAL) / reps)
    assert np.all(np.abs(coverage["ppi++"] - NOMINAL) <= bound), coverage
    assert np.min(coverage["naive"]) < NOMINAL - bound, coverage


@pytest.mark.montecarlo
def test_iv_coverage_with_biased_predictions():
    """Just-identified IV with an endogenous regressor and biased predictions of y: PPI++ (HC1, t)
    covers (1, 2) at 0.90 within 3.5 MC SE; naive pooling does not."""
    reps = 200
    coverage = run_coverage(
        lambda rng: iv_data(rng, n=200, N=2000), iv_score, np.array([1.0, 2.0]), lambda labeled: np.zeros(2), reps,
        seed=20_251_200,
    )
    bound = MC_SE_TOLERANCE * np.sqrt(NOMINAL * (1 - NOMINAL) / reps)
    assert np.all(np.abs(coverage["ppi++"] - NOMINAL) <= bound), coverage
    assert np.min(coverage["naive"]) < NOMINAL - bound, coverage


# -- input errors --------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    labeled, unlabeled = regression_data(10, n=60, N=200)
    build = lambda **k: ppinfer.MEstimator(**{"score": ols_score, "data": labeled, "unlabeled": unlabeled,  # noqa: E731
                                              "predicted": {"y": "yhat"}, "start": np.zeros(3), **k})
    with pytest.raises(ValueError, match=r"returned shape \(3,\).*not their sum"):
        build(score=lambda b, rows: ols_score(b, rows).sum(axis=0))
    with pytest.raises(ValueError, match=r"jacobian\(params, rows\) returned shape \(3,\)"):
        build(jacobian=lambda b, rows: np.zeros(3)).fit()
    with pytest.raises(TypeError, match="predicted must map"):
        build(predicted="yhat")
    with pytest.raises(ValueError, match="'yy', which is not a column of data"):
        build(predicted={"yy": "yhat"})
    with pytest.raises(ValueError, match="'yhat' is not a column of unlabeled"):
        build(unlabeled=unlabeled.drop(columns="yhat"))
    with pytest.raises(ValueError, match="KeyError 'x2' on the rows of unlabeled"):
        build(unlabeled=unlabeled.drop(columns="x2"))
    with pytest.raises(TypeError, match="data column 'yhat' is not numeric"):
        build(data=labeled.assign(yhat="high"))
    with pytest.raises(TypeError, match="data must be a pandas DataFrame"):
        build(data=labeled.to_numpy())
    with pytest.raises(ValueError, match="start must be finite"):
        build(start=[0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="param_names has 2 names but start has 3"):
        build(param_names=["a", "b"])
    with pytest.raises(TypeError, match="start is required"):
        build(start=None)
    with pytest.raises(ValueError, match="NaN or infinite on every row of data"):
        build(score=lambda b, rows: ols_score(b, rows) * np.nan)
    with pytest.raises(ValueError, match=r"do not depend on the parameter\(s\) at position\(s\) \[2\]"):
        build(score=lambda b, rows: ols_score(np.r_[b[:2], 0.0], rows)).fit()
    with pytest.raises(ValueError, match="singular or nearly so"):
        build(data=labeled.assign(x2=2.0 * labeled["x1"])).fit()
    with pytest.raises(TypeError, match="Did you mean 'weights'"):
        build(weigths="w")
    # a dict of column arrays is a data frame
    assert build(data={c: labeled[c].to_numpy() for c in labeled}).fit().params.shape == (3,)


def test_missing_values_raise_or_are_dropped():
    """NaN in a predicted column, or in a column only the score uses: raise with the place, or drop
    those rows (equal to dropping them by hand)."""
    labeled, unlabeled = regression_data(11, n=100, N=500)
    holes, holes_u = labeled.copy(), unlabeled.copy()
    holes.loc[4, "yhat"] = np.nan
    holes.loc[7, "x1"] = np.nan
    holes_u.loc[2, "x2"] = np.nan
    with pytest.raises(ValueError, match=r"data\['yhat'\] has 1 row"):
        ppinfer.MEstimator(ols_score, holes, unlabeled, {"y": "yhat"}, start=np.zeros(3))
    with pytest.raises(ValueError, match=r"score\(start, data\) has 1 row.*position 7"):
        ppinfer.MEstimator(ols_score, holes.fillna({"yhat": 0.0}), unlabeled, {"y": "yhat"}, start=np.zeros(3))
    dropped = ppinfer.MEstimator(ols_score, holes, holes_u, {"y": "yhat"}, start=np.zeros(3), missing="drop")
    assert dropped.rows_dropped == (2, 1)
    by_hand = ppinfer.MEstimator(ols_score, labeled.drop(index=[4, 7]), unlabeled.drop(index=[2]), {"y": "yhat"},
                                 start=np.zeros(3))
    assert_same_results(dropped.fit(), by_hand.fit())


def test_docstring_examples_run():
    import ppinfer.models.mestimator

    failures, attempted = doctest.testmod(ppinfer.models.mestimator, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0
