"""Equivalences of ppinfer's estimators with independent references.

Every expected number here is computed without ppinfer: by statsmodels (classical and
naive fits), by formulas of METHODS.md evaluated by hand with numpy (mean, regression
influence functions, the tuned lambdas), by a brute-force inversion of the rectified CDF
written in this file (quantiles), and by ppi-python's numbers stored in
``tests/fixtures/ppi_python_reference.json`` (made by the script beside it).

Variances use the 1/n normalisation throughout, as METHODS.md prescribes (HC0).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

import ppinfer

#: the references below are the plain sandwich (statsmodels' HC0) with normal quantiles, so
#: the fits ask for it explicitly (ppinfer's defaults add small-sample corrections)
HC0 = dict(cov_type="HC0", use_t=False)

FIXTURE = Path(__file__).parent / "fixtures" / "ppi_python_reference.json"

FAMILIES = ("ols", "logit", "poisson")
MODELS = {"ols": ppinfer.OLS, "logit": ppinfer.Logit, "poisson": ppinfer.Poisson}


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def glm_data(
    family: str, *, seed: int, n: int = 150, N: int = 600, intercept: bool = True, as_pandas: bool = False, noise: float = 1.0
):
    """Labeled and unlabeled samples from one population, with biased, noisy predictions.

    Returns a dict with y, X, yhat, X_unlabeled, yhat_unlabeled (the constructor's
    arguments). With ``as_pandas`` the arrays are pandas objects with names and
    non-default indexes (the labeled and unlabeled indexes differ from each other).
    ``noise`` scales the predictions' own noise (larger: worse predictions, smaller lambda).
    """
    rng = np.random.default_rng(seed)
    m = n + N
    covariates = np.column_stack([rng.normal(size=m), rng.uniform(-1.0, 1.0, m)])
    X = np.column_stack([np.ones(m), covariates]) if intercept else covariates + np.array([0.5, 0.0])
    beta = {"ols": [1.0, 0.8, -0.5], "logit": [-0.3, 0.9, -0.6], "poisson": [0.4, 0.3, -0.25]}[family]
    beta = np.array(beta if intercept else beta[1:])
    eta = X @ beta
    noise = noise * rng.normal(size=m)
    if family == "ols":
        y = eta + (0.5 + np.abs(covariates[:, 0])) * rng.standard_t(5, m)
        yhat = 0.8 * y + 0.3 + 0.6 * noise
    elif family == "logit":
        y = (rng.uniform(size=m) < expit(eta)).astype(float)
        yhat = expit(eta + 1.2 * (y - 0.5) + 0.3 + 0.5 * noise)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
        yhat = np.exp(0.3 + 0.7 * np.log1p(y) + 0.3 * noise)
    labeled, unlabeled = slice(0, n), slice(n, m)
    arrays = dict(y=y[labeled], X=X[labeled], yhat=yhat[labeled], X_unlabeled=X[unlabeled], yhat_unlabeled=yhat[unlabeled])
    if not as_pandas:
        return arrays
    columns = (["const"] if intercept else []) + ["age", "dose"]
    index, index_unlabeled = pd.RangeIndex(1000, 1000 + n), pd.Index(np.arange(N) * 3 + 7)
    return dict(
        y=pd.Series(arrays["y"], index=index, name="outcome"),
        X=pd.DataFrame(arrays["X"], index=index, columns=columns),
        yhat=pd.Series(arrays["yhat"], index=index, name="prediction"),
        X_unlabeled=pd.DataFrame(arrays["X_unlabeled"], index=index_unlabeled, columns=columns),
        yhat_unlabeled=pd.Series(arrays["yhat_unlabeled"], index=index_unlabeled, name="prediction"),
    )


# --------------------------------------------------------------------------------------
# statsmodels references and hand-built influence functions
# --------------------------------------------------------------------------------------
def sm_fit(family: str, v, X):
    """The statsmodels fit with HC0 standard errors (responses may be fractional / non-integer)."""
    if family == "ols":
        return sm.OLS(v, X).fit(cov_type="HC0")
    glm_family = sm.families.Binomial() if family == "logit" else sm.families.Poisson()
    return sm.GLM(v, X, family=glm_family).fit(cov_type="HC0", tol=1e-13, maxiter=200)


def inverse_link(family: str, eta):
    return {"ols": lambda e: e, "logit": expit, "poisson": np.exp}[family](eta)


def hand_influence(family: str, X, v):
    """psi_i = H^-1 x_i (v_i - mu(x_i' b)), H = mean(mu'(x_i' b) x_i x_i'), at statsmodels' b."""
    X, v = np.asarray(X, dtype=float), np.asarray(v, dtype=float)
    params = np.asarray(sm_fit(family, v, X).params)
    mu = inverse_link(family, X @ params)
    curvature = {"ols": np.ones_like(mu), "logit": mu * (1 - mu), "poisson": mu}[family]
    hessian = (X * curvature[:, None]).T @ X / len(v)
    return params, (X * (v - mu)[:, None]) @ np.linalg.inv(hessian)


def cov_n(a, b=None):
    """Sample covariance matrix with the 1/n normalisation."""
    a = np.asarray(a, dtype=float)
    b = a if b is None else np.asarray(b, dtype=float)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return a.T @ b / a.shape[0]


class HandPPI:
    """METHODS.md section 2 for a regression, built from statsmodels fits and numpy."""

    def __init__(self, family, data):
        self.b_y, self.psi_y = hand_influence(family, data["X"], data["y"])
        self.b_f, self.psi_f = hand_influence(family, data["X"], data["yhat"])
        self.b_fu, self.psi_fu = hand_influence(family, data["X_unlabeled"], data["yhat_unlabeled"])
        self.n, self.N = self.psi_y.shape[0], self.psi_fu.shape[0]

    def params(self, lam):
        return self.b_y + lam * (self.b_fu - self.b_f)

    def covariance(self, lam):
        lam = np.broadcast_to(np.asarray(lam, dtype=float), self.b_y.shape)
        labeled = cov_n(self.psi_y - self.psi_f * lam) / self.n
        return labeled + np.outer(lam, lam) * cov_n(self.psi_fu) / self.N

    def tuned(self, per_coefficient: bool):
        r = self.n / self.N
        numerator = np.diag(cov_n(self.psi_y, self.psi_f))
        denominator = np.diag(cov_n(self.psi_f)) + r * np.diag(cov_n(self.psi_fu))
        if per_coefficient:
            return np.clip(numerator / denominator, 0.0, 1.0)
        return float(np.clip(numerator.sum() / denominator.sum(), 0.0, 1.0))


def assert_covariance_close(actual, expected, rtol=1e-6):
    """Entry-wise, with an absolute tolerance scaled by the diagonal (off-diagonals may be ~0)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * np.abs(np.diag(expected)).max())


# --------------------------------------------------------------------------------------
# classical and naive fits against statsmodels
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_pandas", [False, True], ids=["numpy", "pandas"])
@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("family", FAMILIES)
def test_classical_equals_statsmodels_hc0(family, seed, intercept, as_pandas):
    data = glm_data(family, seed=seed, intercept=intercept, as_pandas=as_pandas)
    result = MODELS[family](**data).fit(**HC0, method="classical")
    reference = sm_fit(family, data["y"], data["X"])
    np.testing.assert_allclose(result.params.to_numpy(), np.asarray(reference.params), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.bse.to_numpy(), np.asarray(reference.bse), rtol=1e-6)
    assert_covariance_close(result.cov_params(), np.asarray(reference.cov_params()))
    if as_pandas:
        # statsmodels carries the DataFrame's column names; so must ppinfer
        assert list(result.params.index) == list(reference.params.index) == list(data["X"].columns)
    assert result.nobs == len(data["y"]) and result.lam == 0.0


@pytest.mark.parametrize("intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("family", FAMILIES)
def test_naive_equals_statsmodels_on_pooled_rows(family, intercept):
    data = glm_data(family, seed=2, intercept=intercept, as_pandas=True)
    result = MODELS[family](**data).fit(**HC0, method="naive")
    pooled_y = np.concatenate([data["y"].to_numpy(), data["yhat_unlabeled"].to_numpy()])
    pooled_X = pd.concat([data["X"], data["X_unlabeled"]], ignore_index=True)
    reference = sm_fit(family, pooled_y, pooled_X)
    np.testing.assert_allclose(result.params.to_numpy(), np.asarray(reference.params), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.bse.to_numpy(), np.asarray(reference.bse), rtol=1e-6)
    assert result.lam is None and result.method == "naive"


@pytest.mark.parametrize("lam", [1.0, 0.35])
def test_ols_fixed_lambda_point_estimate_is_two_least_squares_fits(lam):
    """theta(lam) = OLS(X_u, lam f_u) + OLS(X, y - lam f) (linearity of least squares)."""
    data = glm_data("ols", seed=3)
    method = {"method": "ppi"} if lam == 1.0 else {"lam": lam}
    result = ppinfer.OLS(**data).fit(**method)
    expected = (
        sm.OLS(lam * data["yhat_unlabeled"], data["X_unlabeled"]).fit().params
        + sm.OLS(data["y"] - lam * data["yhat"], data["X"]).fit().params
    )
    np.testing.assert_allclose(result.params.to_numpy(), expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------
# regression PPI variance and tuned lambdas against hand-built influence functions
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.3, 1.0, (0.2, 0.7, 1.0), (1.3, 0.0, 0.5)], ids=str)
@pytest.mark.parametrize("family", FAMILIES)
def test_regression_covariance_for_fixed_lambda(family, lam):
    data = glm_data(family, seed=4)
    hand = HandPPI(family, data)
    lam_array = np.broadcast_to(np.asarray(lam, dtype=float), (3,))
    result = MODELS[family](**data).fit(**HC0, lam=lam)
    np.testing.assert_allclose(result.params.to_numpy(), hand.params(lam_array), rtol=1e-6, atol=1e-9)
    assert_covariance_close(result.cov_params().to_numpy(), hand.covariance(lam_array))
    if np.ndim(lam) == 0:
        assert result.lam == pytest.approx(lam)
    else:
        np.testing.assert_allclose(np.asarray(result.lam, dtype=float), lam_array)


@pytest.mark.parametrize("tuning", ["overall", "per-coefficient"])
@pytest.mark.parametrize("family", FAMILIES)
def test_regression_tuned_lambda_closed_form(family, tuning):
    data = glm_data(family, seed=5, noise=2.5)
    hand = HandPPI(family, data)
    expected_lam = hand.tuned(per_coefficient=tuning == "per-coefficient")
    # the data must exercise the formula, not the clipping
    assert np.all((np.asarray(expected_lam) > 0.05) & (np.asarray(expected_lam) < 0.95))
    model = MODELS[family](**data)
    result = model.fit(**HC0) if tuning == "overall" else model.fit(**HC0, lam="per-coefficient")
    if tuning == "overall":
        assert isinstance(result.lam, float)
        assert result.lam == pytest.approx(expected_lam, rel=1e-6)
    else:
        assert isinstance(result.lam, pd.Series)
        assert list(result.lam.index) == result.param_names
        np.testing.assert_allclose(result.lam.to_numpy(), expected_lam, rtol=1e-6)
    lam_array = np.broadcast_to(expected_lam, (3,))
    np.testing.assert_allclose(result.params.to_numpy(), hand.params(lam_array), rtol=1e-6, atol=1e-9)
    assert_covariance_close(result.cov_params().to_numpy(), hand.covariance(lam_array))


@pytest.mark.parametrize("tuning", ["overall", "per-coefficient"])
@pytest.mark.parametrize(
    "scale, bound", [(0.4, 1.0), (-1.0, 0.0)], ids=["shrunk-predictions-clip-at-1", "anticorrelated-clip-at-0"]
)
def test_regression_tuned_lambda_is_clipped(scale, bound, tuning):
    """Predictions ``scale * y``: the unclipped minimiser is > 1 (scale 0.4) or < 0 (scale -1)."""
    rng = np.random.default_rng(6)
    data = glm_data("ols", seed=6)
    y, y_unlabeled = data["y"], data["X_unlabeled"] @ np.array([1.0, 0.8, -0.5]) + rng.normal(size=600)
    data["yhat"] = scale * y + 0.05 * rng.normal(size=y.size)
    data["yhat_unlabeled"] = scale * y_unlabeled + 0.05 * rng.normal(size=600)
    hand = HandPPI("ols", data)
    raw = np.diag(cov_n(hand.psi_y, hand.psi_f)) / (
        np.diag(cov_n(hand.psi_f)) + hand.n / hand.N * np.diag(cov_n(hand.psi_fu))
    )
    assert np.all(raw > 1.0) if bound == 1.0 else np.all(raw < 0.0)
    result = ppinfer.OLS(**data).fit(**HC0, lam=None if tuning == "overall" else tuning)
    np.testing.assert_array_equal(np.broadcast_to(np.asarray(result.lam, dtype=float), (3,)), bound)
    np.testing.assert_allclose(result.params.to_numpy(), hand.params(bound), rtol=1e-8, atol=1e-12)
    assert_covariance_close(result.cov_params().to_numpy(), hand.covariance(bound))


# --------------------------------------------------------------------------------------
# Mean against METHODS.md section 1 by hand
# --------------------------------------------------------------------------------------
def mean_data(seed: int, n: int = 120, N: int = 900, k: int | None = None):
    rng = np.random.default_rng(seed)
    shape = (n + N,) if k is None else (n + N, k)
    y = rng.gamma(2.0, 1.5, shape)
    quality = 0.9 if k is None else np.linspace(0.3, 0.95, k)
    yhat = quality * y + 0.8 + rng.normal(0.0, 1.0, shape)
    return y[:n], yhat[:n], yhat[n:]


def hand_mean(y, yhat, yhat_unlabeled, lam):
    """theta(lam) and V(lam) for one column (1/n normalised variances)."""
    n, N = len(y), len(yhat_unlabeled)
    theta = lam * yhat_unlabeled.mean() + (y - lam * yhat).mean()
    variance = lam**2 * np.var(yhat_unlabeled) / N + np.var(y - lam * yhat) / n
    return theta, variance


def hand_mean_lambda(y, yhat, yhat_unlabeled):
    r = len(y) / len(yhat_unlabeled)
    cov = np.mean((y - y.mean()) * (yhat - yhat.mean()))
    return float(np.clip(cov / (np.var(yhat) + r * np.var(yhat_unlabeled)), 0.0, 1.0))


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0, None], ids=["lam0", "lam0.4", "lam1", "tuned"])
def test_mean_matches_methods_formulas(lam):
    y, yhat, yhat_unlabeled = mean_data(7)
    expected_lam = hand_mean_lambda(y, yhat, yhat_unlabeled) if lam is None else lam
    if lam is None:
        assert 0.05 < expected_lam < 0.95
    theta, variance = hand_mean(y, yhat, yhat_unlabeled, expected_lam)
    result = ppinfer.Mean(y, yhat, yhat_unlabeled).fit(**HC0, lam=lam)
    assert result.lam == pytest.approx(expected_lam, rel=1e-10)
    assert result.params.iloc[0] == pytest.approx(theta, rel=1e-12)
    assert result.bse.iloc[0] == pytest.approx(math.sqrt(variance), rel=1e-10)


def test_mean_classical_and_naive_closed_forms():
    y, yhat, yhat_unlabeled = mean_data(8)
    model = ppinfer.Mean(y, yhat, yhat_unlabeled)
    classical = model.fit(**HC0, method="classical")
    assert classical.params.iloc[0] == pytest.approx(y.mean(), rel=1e-12)
    assert classical.bse.iloc[0] == pytest.approx(np.std(y) / math.sqrt(len(y)), rel=1e-10)
    pooled = np.concatenate([y, yhat_unlabeled])
    naive = model.fit(**HC0, method="naive")
    assert naive.params.iloc[0] == pytest.approx(pooled.mean(), rel=1e-12)
    assert naive.bse.iloc[0] == pytest.approx(np.std(pooled) / math.sqrt(len(pooled)), rel=1e-10)
    assert naive.nobs == len(y) and naive.nobs_unlabeled == len(yhat_unlabeled)


def test_mean_multicolumn_gets_per_column_lambdas_equal_to_single_column_fits():
    y, yhat, yhat_unlabeled = mean_data(9, k=3)
    names = ["income", "age", "score"]
    result = ppinfer.Mean(
        pd.DataFrame(y, columns=names), pd.DataFrame(yhat, columns=names), pd.DataFrame(yhat_unlabeled, columns=names)
    ).fit(**HC0)
    assert isinstance(result.lam, pd.Series) and list(result.lam.index) == names
    lams = result.lam.to_numpy()
    assert len(set(np.round(lams, 6))) == 3, "the columns should have distinct lambdas"
    for k, name in enumerate(names):
        single = ppinfer.Mean(y[:, k], yhat[:, k], yhat_unlabeled[:, k]).fit(**HC0)
        assert result.lam[name] == pytest.approx(single.lam, rel=1e-12)
        assert result.lam[name] == pytest.approx(hand_mean_lambda(y[:, k], yhat[:, k], yhat_unlabeled[:, k]), rel=1e-10)
        assert result.params[name] == pytest.approx(single.params.iloc[0], rel=1e-12)
        assert result.bse[name] == pytest.approx(single.bse.iloc[0], rel=1e-12)
    # covariances between columns: Cov(y_j - l_j f_j, y_k - l_k f_k)/n + l_j l_k Cov(fu_j, fu_k)/N
    expected = cov_n(y - lams * yhat) / len(y) + np.outer(lams, lams) * cov_n(yhat_unlabeled) / len(yhat_unlabeled)
    assert_covariance_close(result.cov_params().to_numpy(), expected, rtol=1e-10)


def test_mean_multicolumn_overall_lambda_is_the_trace_formula():
    y, yhat, yhat_unlabeled = mean_data(10, k=3)
    r = len(y) / len(yhat_unlabeled)
    numerator = sum(np.mean((y[:, k] - y[:, k].mean()) * (yhat[:, k] - yhat[:, k].mean())) for k in range(3))
    denominator = sum(np.var(yhat[:, k]) + r * np.var(yhat_unlabeled[:, k]) for k in range(3))
    expected = float(np.clip(numerator / denominator, 0.0, 1.0))
    result = ppinfer.Mean(y, yhat, yhat_unlabeled).fit(**HC0, lam="overall")
    assert result.lam == pytest.approx(expected, rel=1e-10)
    for k in range(3):
        theta, variance = hand_mean(y[:, k], yhat[:, k], yhat_unlabeled[:, k], expected)
        assert result.params.iloc[k] == pytest.approx(theta, rel=1e-12)
        assert result.bse.iloc[k] == pytest.approx(math.sqrt(variance), rel=1e-10)


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
def test_mean_intervals_and_pvalues_are_normal_closed_forms(alternative):
    y, yhat, yhat_unlabeled = mean_data(11)
    lam = 0.6
    theta, variance = hand_mean(y, yhat, yhat_unlabeled, lam)
    se, alpha, null = math.sqrt(variance), 0.1, theta - 0.07
    result = ppinfer.Mean(y, yhat, yhat_unlabeled).fit(**HC0, lam=lam)
    interval = result.conf_int(alpha=alpha, alternative=alternative).iloc[0]
    two_sided = alternative == "two-sided"
    z = stats.norm.ppf(1 - alpha / 2) if two_sided else stats.norm.ppf(1 - alpha)
    expected_lower = -np.inf if alternative == "smaller" else theta - z * se
    expected_upper = np.inf if alternative == "larger" else theta + z * se
    assert interval["lower"] == pytest.approx(expected_lower, rel=1e-10)
    assert interval["upper"] == pytest.approx(expected_upper, rel=1e-10)
    statistic = (theta - null) / se
    expected_p = {
        "two-sided": 2 * stats.norm.sf(abs(statistic)),
        "larger": stats.norm.sf(statistic),
        "smaller": stats.norm.cdf(statistic),
    }[alternative]
    tested = result.test(null=null, alternative=alternative).iloc[0]
    assert tested["statistic"] == pytest.approx(statistic, rel=1e-9)
    assert tested["pvalue"] == pytest.approx(expected_p, rel=1e-8)


# --------------------------------------------------------------------------------------
# Quantile against a brute-force inversion of the rectified CDF
# --------------------------------------------------------------------------------------
def quantile_data(seed: int, n: int, N: int, *, ties: bool):
    """Skewed outcomes with biased predictions; ``ties`` rounds everything to one decimal,
    so values repeat within and across y, yhat and yhat_unlabeled."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 1.0, n + N)
    yhat = 0.9 * y + 0.15 + rng.normal(0.0, 0.5, n + N)
    if ties:
        y, yhat = np.round(y, 1), np.round(yhat, 1)
    return y[:n], yhat[:n], yhat[n:]


def exact(value) -> Fraction:
    """The decimal a user typed (0.4 is 2/5), as an exact rational."""
    return Fraction(str(value))


def brute_force_quantile(y, yhat, yhat_unlabeled, q, lam, alpha, alternative):
    """Naive evaluation of METHODS.md section 3 at every breakpoint of F(.; lam).

    For each candidate t, count indicators with Python loops over the data. With a
    rational lambda, F(t; lam) is evaluated exactly (Fractions), so that the point
    estimate "smallest t with F >= q" does not depend on rounding. The candidates are
    the breakpoints of F(.; lam): the outcomes, and when lam != 0 also every labeled and
    unlabeled prediction (at lam = 0, F is the outcomes' empirical CDF).
    """
    n, N = len(y), len(yhat_unlabeled)
    values = list(y) + (list(yhat) + list(yhat_unlabeled) if lam != 0 else [])
    candidates = sorted(set(values))
    z = stats.norm.ppf(1 - alpha / 2) if alternative == "two-sided" else stats.norm.ppf(1 - alpha)
    rational = isinstance(lam, (int, Fraction))
    lam_value = lam if rational else float(lam)
    point, accepted = None, []
    for t in candidates:
        count_y = sum(1 for v in y if v <= t)
        count_f = sum(1 for v in yhat if v <= t)
        count_u = sum(1 for v in yhat_unlabeled if v <= t)
        if rational:
            cdf = lam_value * Fraction(count_u, N) + Fraction(count_y, n) - lam_value * Fraction(count_f, n)
            reached = cdf >= exact(q)
            cdf = float(cdf)
        else:
            cdf = lam_value * count_u / N + count_y / n - lam_value * count_f / n
            reached = cdf >= q
        if reached and point is None:
            point = t
        differences = [(1.0 if a <= t else 0.0) - float(lam_value) * (1.0 if b <= t else 0.0) for a, b in zip(y, yhat)]
        mean_difference = sum(differences) / n
        labeled_variance = sum((d - mean_difference) ** 2 for d in differences) / n
        unlabeled_cdf = count_u / N
        variance = float(lam_value) ** 2 * unlabeled_cdf * (1 - unlabeled_cdf) / N + labeled_variance / n
        gap, bound = cdf - q, z * math.sqrt(variance)
        if alternative == "two-sided":
            ok = abs(gap) <= bound
        elif alternative == "larger":  # H1: quantile > t, i.e. F(t) < q: reject when gap < -bound
            ok = gap >= -bound
        else:
            ok = gap <= bound
        if ok:
            accepted.append(t)
    # F is constant from the largest accepted breakpoint up to the next one, so the
    # accepted set's supremum is that next breakpoint (where F is non-decreasing, as on
    # these data, ppinfer's test accepts it too: its left limit is the accepted F)
    lower = min(accepted)
    following = [t for t in candidates if t > max(accepted)]
    upper = following[0] if following else np.inf
    if alternative == "larger":
        upper = np.inf
    elif alternative == "smaller":
        lower = -np.inf
    return point, lower, upper


def hand_quantile_lambda(y, yhat, yhat_unlabeled, t0):
    """METHODS.md: cov(1{Y<=t0}, 1{f<=t0}) / (s2(1{f<=t0}) + r s2(1{f~<=t0})), clipped."""
    iy, i_f, iu = (y <= t0).astype(float), (yhat <= t0).astype(float), (yhat_unlabeled <= t0).astype(float)
    r = len(y) / len(yhat_unlabeled)
    cov = np.mean((iy - iy.mean()) * (i_f - i_f.mean()))
    return float(np.clip(cov / (np.var(i_f) + r * np.var(iu)), 0.0, 1.0))


# n = 41 and N = 203: F(t; lam) for lam in {0, 2/5, 1} is a fraction whose reduced
# denominator is odd, so it never equals q in {0.1, 0.25, 0.5, 0.75, 0.9} exactly; the
# exact-tie case is tested on its own below.
QUANTILE_LEVELS = [0.1, 0.25, 0.5, 0.75, 0.9]


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller"])
@pytest.mark.parametrize("lam", [0, Fraction(2, 5), 1, "tuned"], ids=["lam0", "lam0.4", "lam1", "tuned"])
@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_quantile_matches_brute_force_inversion(ties, lam, alternative):
    y, yhat, yhat_unlabeled = quantile_data(12, 41, 203, ties=ties)
    alpha = 0.1
    if lam == "tuned":
        lams = []
        for q in QUANTILE_LEVELS:
            t0, _, _ = brute_force_quantile(y, yhat, yhat_unlabeled, q, 1, 0.05, "two-sided")
            lams.append(hand_quantile_lambda(y, yhat, yhat_unlabeled, t0))
        # the formula itself must be exercised (at q = 0.1 the lambda is clipped at 0 here)
        assert sum(0.0 < value < 1.0 for value in lams) >= 4
        results = [ppinfer.Quantile(y, yhat, yhat_unlabeled, q=q).fit(**HC0) for q in QUANTILE_LEVELS]
        np.testing.assert_allclose([result.lam for result in results], lams, rtol=1e-10)
        params = pd.concat([result.params for result in results])
        interval = pd.concat([result.conf_int(alpha=alpha, alternative=alternative) for result in results])
    else:
        lams = [lam] * len(QUANTILE_LEVELS)
        result = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=QUANTILE_LEVELS).fit(**HC0, lam=float(lam))
        params, interval = result.params, result.conf_int(alpha=alpha, alternative=alternative)
    for k, q in enumerate(QUANTILE_LEVELS):
        point, lower, upper = brute_force_quantile(y, yhat, yhat_unlabeled, q, lams[k], alpha, alternative)
        name = f"q={q:g}"
        assert params[name] == point, f"point estimate at {name}"
        assert (interval.loc[name, "lower"], interval.loc[name, "upper"]) == (lower, upper), f"interval at {name}"


def test_quantile_levels_fitted_together_equal_levels_fitted_alone():
    y, yhat, yhat_unlabeled = quantile_data(12, 41, 203, ties=False)
    joint = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=[0.1, 0.5]).fit(**HC0)
    alone = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=0.1).fit(**HC0)
    assert joint.lam["q=0.1"] == alone.lam == 0.0 and joint.lam["q=0.5"] > 0
    pd.testing.assert_frame_equal(joint.conf_int().loc[["q=0.1"]], alone.conf_int())


def exact_point_estimates(y, yhat, yhat_unlabeled, levels, lam: Fraction):
    """Smallest breakpoint t with F(t; lam) >= q, in exact integer arithmetic.

    With counts c(t) = #{v <= t} (binary search in the sorted samples), lam = a/b and
    q = p/r: F(t; lam) >= q  <=>  r (b N c_y + a (n c_u - N c_f)) >= p n N b.
    """
    n, N = len(y), len(yhat_unlabeled)
    candidates = np.unique(np.concatenate([y, yhat, yhat_unlabeled]))
    c_y, c_f, c_u = (np.searchsorted(np.sort(v), candidates, side="right").astype(np.int64) for v in (y, yhat, yhat_unlabeled))
    a, b = lam.numerator, lam.denominator
    scaled = b * N * c_y + a * (n * c_u - N * c_f)
    points = []
    for q in levels:
        p, r = exact(q).numerator, exact(q).denominator
        points.append(candidates[np.argmax(r * scaled >= p * n * N * b)])
    return points


def test_quantile_point_estimate_when_rectified_cdf_equals_q_exactly():
    levels = [0.25, 0.5, 0.75]
    wrong = []
    for seed in range(24):
        rng = np.random.default_rng(seed)
        n, N = [(40, 200), (20, 100), (50, 250), (30, 120)][seed % 4]
        y = rng.normal(size=n)
        yhat = y + rng.normal(0.2, 0.5, n)
        yhat_unlabeled = rng.normal(0.2, 1.1, N)
        model = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=levels)
        for lam in (Fraction(1), Fraction(2, 5), Fraction(1, 2)):
            expected = exact_point_estimates(y, yhat, yhat_unlabeled, levels, lam)
            actual = model.fit(**HC0, lam=float(lam)).params.to_numpy()
            wrong += [(seed, str(lam), q) for q, a, e in zip(levels, actual, expected) if a != e]
    assert not wrong, f"point estimates off by a breakpoint at (seed, lambda, q) = {wrong}"


@pytest.mark.parametrize("q", [0.2, 0.5, 0.8])
def test_quantile_classical_is_textbook_inversion_of_the_empirical_cdf(q):
    """lam = 0: accept y_(k) when |k/n - q| <= z sqrt((k/n)(1 - k/n)/n); the interval
    runs from the smallest accepted order statistic to the one after the largest accepted
    (the empirical CDF is k/n on [y_(k), y_(k+1))); the estimate is y_(ceil(nq))."""
    y, yhat, yhat_unlabeled = quantile_data(13, 57, 300, ties=False)
    n, order = len(y), np.sort(y)
    z = stats.norm.ppf(0.975)
    accepted = [k for k in range(1, n + 1) if abs(k / n - q) <= z * math.sqrt(k / n * (1 - k / n) / n)]
    result = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=q).fit(**HC0, method="classical")
    assert result.params.iloc[0] == order[math.ceil(n * q) - 1]
    interval = result.conf_int().iloc[0]
    assert (interval["lower"], interval["upper"]) == (order[accepted[0] - 1], order[accepted[-1]])
    assert result.lam == 0.0


def test_quantile_naive_is_classical_on_pooled_data():
    y, yhat, yhat_unlabeled = quantile_data(14, 41, 203, ties=True)
    pooled = np.concatenate([y, yhat_unlabeled])
    levels = [0.25, 0.5, 0.9]
    naive = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=levels).fit(**HC0, method="naive")
    assert naive.lam is None
    for alternative in ("two-sided", "larger", "smaller"):
        interval = naive.conf_int(alpha=0.1, alternative=alternative)
        for q in levels:
            point, lower, upper = brute_force_quantile(pooled, pooled, pooled, q, 0, 0.1, alternative)
            assert naive.params[f"q={q:g}"] == point
            assert (interval.loc[f"q={q:g}", "lower"], interval.loc[f"q={q:g}", "upper"]) == (lower, upper)


@pytest.mark.parametrize("lam", [0.0, 0.4, 1.0])
def test_quantile_test_statistic_is_the_rectified_cdf_z_score(lam):
    """test(null=t): between breakpoints, (q - F(t; lam)) / s(t; lam); at a breakpoint the
    larger of that and (F(t-; lam) - q) / s(t-; lam) (the left limit), signed."""
    y, yhat, yhat_unlabeled = quantile_data(15, 41, 203, ties=False)
    q = 0.5
    result = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=q).fit(**HC0, lam=lam)
    n, N = len(y), len(yhat_unlabeled)

    def z_score(t, below):
        iy, i_f, iu = (below(values, t).astype(float) for values in (y, yhat, yhat_unlabeled))
        cdf = lam * iu.mean() + (iy - lam * i_f).mean()
        return (q - cdf) / math.sqrt(lam**2 * np.var(iu) / N + np.var(iy - lam * i_f) / n)

    # at breakpoints (an outcome, a prediction) and between them; all inside the data's range
    for t in (np.quantile(y, 0.3), np.median(y), np.median(y) + 0.05, np.sort(y)[25], np.median(yhat_unlabeled)):
        above, below = z_score(t, np.less_equal), -z_score(t, np.less)
        expected = 0.0 if max(above, below) <= 0 else (above if above >= below else -below)
        tested = result.test(null=t).iloc[0]
        assert tested["statistic"] == pytest.approx(expected, rel=1e-9)
        assert tested["pvalue"] == pytest.approx(min(1.0, 2 * stats.norm.sf(max(above, below))), rel=1e-8)


# --------------------------------------------------------------------------------------
# ppi-python (stored reference numbers, see tests/fixtures/make_ppi_python_reference.py)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ppi_python():
    return json.loads(FIXTURE.read_text())


def arrays(section):
    return {key: np.asarray(value, dtype=float) for key, value in section["data"].items()}


def test_mean_fixed_lambda_matches_ppi_python(ppi_python):
    data = arrays(ppi_python["mean"])
    model = ppinfer.Mean(data["y"], data["yhat"], data["yhat_unlabeled"])
    for case in ppi_python["mean"]["intervals"]:
        result = model.fit(**HC0, lam=case["lam"])
        assert result.params.iloc[0] == pytest.approx(case["estimate"], rel=1e-12)
        interval = result.conf_int(alpha=case["alpha"], alternative=case["alternative"]).iloc[0]
        assert interval["lower"] == pytest.approx(case["lower"], rel=1e-10)
        assert interval["upper"] == pytest.approx(case["upper"], rel=1e-10)
    for case in ppi_python["mean"]["pvalues"]:
        tested = model.fit(**HC0, lam=case["lam"]).test(null=case["null"], alternative=case["alternative"]).iloc[0]
        assert tested["pvalue"] == pytest.approx(case["pvalue"], rel=1e-8)


def test_ols_point_estimate_matches_ppi_python(ppi_python):
    data = arrays(ppi_python["ols"])
    model = ppinfer.OLS(data["y"], data["X"], data["yhat"], data["X_unlabeled"], data["yhat_unlabeled"])
    for case in ppi_python["ols"]["estimates"]:
        np.testing.assert_allclose(model.fit(**HC0, lam=case["lam"]).params.to_numpy(), case["params"], rtol=1e-10)


def test_quantile_ppi_interval_matches_ppi_python(ppi_python):
    data = arrays(ppi_python["quantile"])
    for case in ppi_python["quantile"]["intervals"]:
        model = ppinfer.Quantile(data["y"], data["yhat"], data["yhat_unlabeled"], q=case["q"])
        interval = model.fit(**HC0, method="ppi").conf_int(alpha=case["alpha"]).iloc[0]
        assert interval["lower"] == case["lower"]
        # ppi-python reports the largest accepted breakpoint; ppinfer the supremum of the
        # accepted values, the next breakpoint of F (constant in between)
        breakpoints = np.unique(np.concatenate([data["y"], data["yhat"], data["yhat_unlabeled"]]))
        assert interval["upper"] == breakpoints[np.searchsorted(breakpoints, case["upper"], side="right")]
