"""The results API: statsmodels-style attributes, intervals, tests and the summary.

Reference values are closed forms with scipy.stats.norm, computed here from the
result's own ``params`` and ``bse`` (whose correctness tests/test_equivalence.py checks
against statsmodels and hand formulas), or from another fit (classical) of the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppinfer

NAMES = ["const", "age", "dose"]


def ols_model(seed: int = 0, n: int = 200, N: int = 1000, **options):
    rng = np.random.default_rng(seed)

    def draw(m, index):
        X = pd.DataFrame(
            {"const": np.ones(m), "age": rng.normal(size=m), "dose": rng.uniform(0, 2, m)}, index=index
        )
        y = X.to_numpy() @ np.array([1.0, 0.5, -0.8]) + rng.normal(size=m)
        yhat = pd.Series(0.9 * y + 0.2 + rng.normal(0.0, 0.6, m), index=index, name="yhat")
        return X, pd.Series(y, index=index, name="response"), yhat

    X, y, yhat = draw(n, pd.RangeIndex(n))
    X_unlabeled, _, yhat_unlabeled = draw(N, pd.RangeIndex(N))
    return ppinfer.OLS(y, X, yhat, X_unlabeled, yhat_unlabeled, **options)


def mean_model(seed: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.normal(2.0, 1.0, (150, 2))
    yhat = y + rng.normal(0.3, 0.8, (150, 2))
    yhat_unlabeled = rng.normal(2.0, 1.0, (900, 2)) + rng.normal(0.3, 0.8, (900, 2))
    columns = ["height", "weight"]
    return ppinfer.Mean(
        pd.DataFrame(y, columns=columns), pd.DataFrame(yhat, columns=columns), pd.DataFrame(yhat_unlabeled, columns=columns)
    )


@pytest.fixture(scope="module")
def model():
    return ols_model()


@pytest.fixture(scope="module")
def result(model):
    # normal reference distributions: the closed forms below use scipy.stats.norm
    return model.fit(use_t=False)


@pytest.fixture(scope="module")
def result_t(model):
    return model.fit(method="classical")


# --------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------
def test_attributes_are_named_pandas_objects(result):
    for series in (result.params, result.bse, result.tvalues, result.pvalues, result.effective_nobs):
        assert isinstance(series, pd.Series)
        assert list(series.index) == NAMES
        assert np.all(np.isfinite(series.to_numpy()))
    assert result.param_names == NAMES
    covariance = result.cov_params()
    assert isinstance(covariance, pd.DataFrame)
    assert list(covariance.index) == list(covariance.columns) == NAMES
    np.testing.assert_allclose(covariance.to_numpy(), covariance.to_numpy().T, rtol=1e-12)
    np.testing.assert_allclose(result.bse.to_numpy(), np.sqrt(np.diag(covariance)), rtol=1e-12)
    np.testing.assert_allclose(result.tvalues.to_numpy(), (result.params / result.bse).to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        result.pvalues.to_numpy(), 2 * stats.norm.sf(np.abs(result.tvalues.to_numpy())), rtol=1e-10
    )
    assert result.method == "ppi++"
    assert (result.nobs, result.nobs_unlabeled) == (200, 1000)


def test_params_cannot_be_changed_through_the_returned_series(result):
    before = result.params.copy()
    returned = result.params
    returned.iloc[0] = 1e6
    pd.testing.assert_series_equal(result.params, before)


@pytest.mark.parametrize(
    "method, lam, expected",
    [("ppi", None, 1.0), ("classical", None, 0.0), ("naive", None, None), ("ppi++", 0.3, 0.3)],
)
def test_lambda_reported_for_each_method(model, method, lam, expected):
    result = model.fit(method=method, lam=lam)
    assert result.method == method
    if expected is None:
        assert result.lam is None
    else:
        assert isinstance(result.lam, float) and result.lam == expected


def test_lambda_is_a_float_overall_and_a_series_per_coefficient(model):
    overall = model.fit()
    assert isinstance(overall.lam, float) and 0.0 < overall.lam < 1.0
    per_coefficient = model.fit(lam="per-coefficient")
    assert isinstance(per_coefficient.lam, pd.Series)
    assert list(per_coefficient.lam.index) == NAMES
    assert per_coefficient.lam.nunique() == 3
    # a fixed vector of lambdas is reported per coefficient too
    fixed = model.fit(lam=[0.2, 0.5, 0.9])
    assert isinstance(fixed.lam, pd.Series)
    np.testing.assert_array_equal(fixed.lam.to_numpy(), [0.2, 0.5, 0.9])
    # the per-coefficient tuning minimises each variance: never above the overall one's
    assert np.all(per_coefficient.bse.to_numpy() <= overall.bse.to_numpy() * (1 + 1e-12))


def test_method_aliases(model):
    reference = model.fit(method="ppi++")
    for alias in ("PPI++", "ppipp", "ppi_plusplus", " ppi++ "):
        pd.testing.assert_series_equal(model.fit(method=alias).params, reference.params)
    assert model.fit(method="Classical").method == "classical"


# --------------------------------------------------------------------------------------
# intervals
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.32])
def test_two_sided_interval(result, alpha):
    interval = result.conf_int(alpha)
    assert list(interval.columns) == ["lower", "upper"] and list(interval.index) == NAMES
    half = stats.norm.ppf(1 - alpha / 2) * result.bse
    np.testing.assert_allclose(interval["lower"], result.params - half, rtol=1e-12)
    np.testing.assert_allclose(interval["upper"], result.params + half, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_t_intervals_tests_and_degrees_of_freedom_of_a_classical_fit(result_t, alpha):
    """Default use_t: the classical OLS fit refers to t with n - p = 197 degrees of freedom."""
    assert result_t.use_t and list(result_t.df.to_numpy()) == [197.0] * 3
    half = stats.t.ppf(1 - alpha / 2, 197) * result_t.bse
    interval = result_t.conf_int(alpha)
    np.testing.assert_allclose(interval["lower"], result_t.params - half, rtol=1e-12)
    np.testing.assert_allclose(interval["upper"], result_t.params + half, rtol=1e-12)
    np.testing.assert_allclose(result_t.pvalues, 2 * stats.t.sf(np.abs(result_t.tvalues), 197), rtol=1e-10)
    one_sided = result_t.conf_int(alpha, alternative="larger")
    np.testing.assert_allclose(one_sided["lower"], result_t.params - stats.t.ppf(1 - alpha, 197) * result_t.bse,
                               rtol=1e-12)
    table = result_t.test(null=0.3, alternative="smaller")
    np.testing.assert_allclose(table["pvalue"], stats.t.cdf((result_t.params - 0.3) / result_t.bse, 197), rtol=1e-10)


def test_null_as_a_mapping_sets_the_named_parameters(result):
    table = result.test(null={"dose": -0.75, "age": 0.45})
    np.testing.assert_array_equal(table["null"].to_numpy(), [0.0, 0.45, -0.75])
    expected = (result.params.to_numpy() - [0.0, 0.45, -0.75]) / result.bse.to_numpy()
    np.testing.assert_allclose(table["statistic"].to_numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="'weight'"):
        result.test(null={"weight": 1.0})


@pytest.mark.parametrize("alternative, alias", [("larger", "greater"), ("smaller", "less")])
def test_one_sided_intervals_use_z_one_minus_alpha(result, alternative, alias):
    alpha = 0.1
    interval = result.conf_int(alpha=alpha, alternative=alternative)
    bound = stats.norm.ppf(1 - alpha) * result.bse
    if alternative == "larger":
        np.testing.assert_allclose(interval["lower"], result.params - bound, rtol=1e-12)
        assert np.all(interval["upper"] == np.inf)
    else:
        np.testing.assert_allclose(interval["upper"], result.params + bound, rtol=1e-12)
        assert np.all(interval["lower"] == -np.inf)
    pd.testing.assert_frame_equal(result.conf_int(alpha=alpha, alternative=alias), interval)
    pd.testing.assert_frame_equal(result.conf_int(alpha=alpha, alternative=alternative.upper()), interval)


def test_interval_bounds_are_where_the_test_has_pvalue_alpha(result):
    """Duality: testing at an interval's end gives p-value alpha (two-sided and one-sided)."""
    alpha = 0.07
    two_sided = result.conf_int(alpha)
    np.testing.assert_allclose(result.test(null=two_sided["lower"]).loc[:, "pvalue"], alpha, rtol=1e-9)
    np.testing.assert_allclose(result.test(null=two_sided["upper"]).loc[:, "pvalue"], alpha, rtol=1e-9)
    lower = result.conf_int(alpha, "larger")["lower"]
    np.testing.assert_allclose(result.test(null=lower, alternative="larger").loc[:, "pvalue"], alpha, rtol=1e-9)
    upper = result.conf_int(alpha, "smaller")["upper"]
    np.testing.assert_allclose(result.test(null=upper, alternative="smaller").loc[:, "pvalue"], alpha, rtol=1e-9)


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, np.nan])
def test_invalid_alpha_is_a_value_error(result, alpha):
    with pytest.raises(ValueError, match=r"^alpha must lie strictly between 0 and 1"):
        result.conf_int(alpha=alpha)
    with pytest.raises(ValueError, match=r"^alpha must lie strictly between 0 and 1"):
        result.summary(alpha=alpha)


@pytest.mark.parametrize("alpha", ["0.05x", None, [0.05, 0.1]])
def test_non_numeric_alpha_is_a_type_error(result, alpha):
    with pytest.raises(TypeError, match=r"^alpha must be a number in \(0, 1\)"):
        result.conf_int(alpha=alpha)


@pytest.mark.parametrize("bad, hint", [("large", "larger"), ("two-side", "two-sided"), ("lesser", None), (1, None)])
def test_unknown_alternative_lists_the_valid_ones(result, bad, hint):
    expected = r"alternative=.* is not valid; use one of 'two-sided', 'larger', 'smaller'\."
    if hint:
        expected += rf" Did you mean '{hint}'\?"
    with pytest.raises(ValueError, match=expected):
        result.conf_int(alternative=bad)
    with pytest.raises(ValueError, match=expected):
        result.test(alternative=bad)


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------
def expected_pvalues(statistic, alternative):
    return {
        "two-sided": 2 * stats.norm.sf(np.abs(statistic)),
        "larger": stats.norm.sf(statistic),
        "smaller": stats.norm.cdf(statistic),
    }[alternative]


@pytest.mark.parametrize("alternative", ["two-sided", "larger", "smaller", "greater", "less"])
@pytest.mark.parametrize("null_kind", ["scalar", "array", "series"])
def test_test_against_closed_forms(result, null_kind, alternative):
    null_values = np.array([1.0, 0.45, -0.75])
    null = {
        "scalar": 0.5,
        "array": null_values,
        # by name, in another order than the parameters
        "series": pd.Series(null_values[::-1], index=NAMES[::-1]),
    }[null_kind]
    expected_null = np.full(3, 0.5) if null_kind == "scalar" else null_values
    table = result.test(null=null, alternative=alternative)
    assert list(table.columns) == ["estimate", "null", "statistic", "pvalue"]
    assert list(table.index) == NAMES
    np.testing.assert_array_equal(table["null"].to_numpy(), expected_null)
    np.testing.assert_allclose(table["estimate"], result.params, rtol=1e-12)
    statistic = (result.params.to_numpy() - expected_null) / result.bse.to_numpy()
    np.testing.assert_allclose(table["statistic"], statistic, rtol=1e-10)
    canonical = {"greater": "larger", "less": "smaller"}.get(alternative, alternative)
    np.testing.assert_allclose(table["pvalue"], expected_pvalues(statistic, canonical), rtol=1e-9, atol=1e-300)


def test_default_test_is_against_zero(result):
    table = result.test()
    np.testing.assert_array_equal(table["null"], 0.0)
    np.testing.assert_allclose(table["pvalue"], result.pvalues, rtol=1e-12)
    np.testing.assert_allclose(table["statistic"], result.tvalues, rtol=1e-12)


@pytest.mark.parametrize(
    "null, error, pattern",
    [
        ([1.0, 2.0], ValueError, r"^null must be a scalar or have one value per parameter \(3\); got shape \(2,\)"),
        (np.zeros((3, 1)), ValueError, r"^null must be a scalar or have one value per parameter"),
        (np.inf, ValueError, r"^null must be finite"),
        (pd.Series([0.0, 0.0, 0.0], index=["const", "age", "weight"]), ValueError, r"^null is a Series.*'weight'"),
        (pd.Series([0.0, 0.0], index=["const", "age"]), ValueError, r"^null is a Series"),
    ],
    ids=["short", "2d", "inf", "unknown-name", "missing-name"],
)
def test_bad_null_names_the_argument(result, null, error, pattern):
    with pytest.raises(error, match=pattern):
        result.test(null=null)


# --------------------------------------------------------------------------------------
# effective sample size
# --------------------------------------------------------------------------------------
def test_effective_nobs_is_n_times_variance_ratio(model):
    classical = model.fit(method="classical")
    np.testing.assert_allclose(classical.effective_nobs, classical.nobs, rtol=1e-12)
    for fit in (model.fit(), model.fit(method="ppi"), model.fit(lam="per-coefficient"), model.fit(method="naive")):
        expected = fit.nobs * (classical.bse / fit.bse) ** 2
        np.testing.assert_allclose(fit.effective_nobs, expected, rtol=1e-12)
        assert list(fit.effective_nobs.index) == NAMES
    # good predictions: PPI++ is worth more labeled rows than it has
    assert np.all(model.fit().effective_nobs > model.fit().nobs)


def test_effective_nobs_for_quantiles():
    rng = np.random.default_rng(3)
    y = rng.gamma(2.0, 1.0, 300)
    yhat = y + rng.normal(0.0, 0.3, 300)
    yhat_unlabeled = rng.gamma(2.0, 1.0, 3000) + rng.normal(0.0, 0.3, 3000)
    model = ppinfer.Quantile(y, yhat, yhat_unlabeled, q=[0.25, 0.5])
    classical, tuned = model.fit(method="classical"), model.fit()
    np.testing.assert_allclose(tuned.effective_nobs, 300 * (classical.bse / tuned.bse) ** 2, rtol=1e-12)
    # interval-implied standard errors: 95% width / (2 t_0.975(df)), the critical value used
    interval = tuned.conf_int(0.05)
    critical = stats.t.ppf(0.975, tuned.df)
    np.testing.assert_allclose(tuned.bse, (interval["upper"] - interval["lower"]) / (2 * critical), rtol=1e-12)
    covariance = tuned.cov_params()
    assert list(covariance.index) == ["q=0.25", "q=0.5"]
    np.testing.assert_allclose(np.diag(covariance), tuned.bse**2, rtol=1e-12)
    assert np.isnan(covariance.iloc[0, 1]), "covariances between quantiles are not estimated"


# --------------------------------------------------------------------------------------
# summary and display
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_t, statistic", [(True, "P>|t|"), (False, "P>|z|")])
def test_summary_contents(model, use_t, statistic):
    result = model.fit(use_t=use_t)
    text = str(result.summary())
    for expected in (
        "Prediction-powered inference: OLS", "response", "PPI++", f"{result.lam:.4g}",
        "No. labeled (n):", "200", "No. unlabeled (N):", "1000", "eff. n", "std err", statistic,
        "[0.025", "0.975]", "Covariance Type:", "HC3", *NAMES,
    ):
        assert expected in text, expected
    assert ("Df (t):" in text) == use_t
    for name in NAMES:
        assert f"{result.effective_nobs[name]:.0f}" in text
    assert "naive pooling treats predictions" not in text
    assert "[0.05" in str(result.summary(alpha=0.1)) and "0.95]" in str(result.summary(alpha=0.1))


@pytest.mark.parametrize(
    "method, label, lam_text",
    [("classical", "Classical", "0"), ("ppi", "PPI", "1"), ("naive", "Naive pooling", "none")],
)
def test_summary_method_and_lambda(model, method, label, lam_text):
    text = str(model.fit(method=method).summary())
    assert f"Method: {label}" in " ".join(text.split())
    assert f"Lambda: {lam_text}" in " ".join(text.split())
    has_warning = "naive pooling treats predictions as if they were observed outcomes" in " ".join(text.split())
    assert has_warning == (method == "naive")


def test_summary_per_coefficient_lambda_column(model):
    result = model.fit(lam="per-coefficient")
    text = str(result.summary())
    assert "per parameter" in text and "lambda" in text
    for name in NAMES:
        line = next(row for row in text.splitlines() if row.startswith(name))
        assert line.split()[-1] == f"{result.lam[name]:.4f}"


def test_summary_reports_dropped_rows():
    model = ols_model(seed=4)
    y = model.labeled["y"].copy()
    y[[2, 5]] = np.nan
    X = pd.DataFrame(model.labeled["X"], columns=NAMES)
    Xu = pd.DataFrame(model.unlabeled["X_unlabeled"], columns=NAMES)
    yhat_unlabeled = model.unlabeled["yhat_unlabeled"].copy()
    yhat_unlabeled[7] = np.inf
    result = ppinfer.OLS(y, X, model.labeled["yhat"], Xu, yhat_unlabeled, missing="drop").fit()
    assert (result.nobs, result.nobs_unlabeled) == (198, 999)
    assert "Rows dropped: 2 + 1" in " ".join(str(result.summary()).split())


def test_html_and_repr(model):
    result = model.fit(method="naive")
    html = result._repr_html_()
    assert "<table" in html and "Naive pooling" in html and "age" in html
    text = repr(model.fit())
    assert text.startswith("<PPIResults OLS, method='ppi++', n=200, N=1000:") and "age=" in text


def test_mean_results_carry_column_names():
    result = mean_model().fit()
    assert result.param_names == ["height", "weight"]
    assert isinstance(result.lam, pd.Series) and list(result.lam.index) == ["height", "weight"]
    assert "height, weight" in str(result.summary())


def test_non_numeric_null_names_the_argument(result):
    with pytest.raises((TypeError, ValueError), match=r"^null\b"):
        result.test(null="zero")
