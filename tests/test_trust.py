"""Regression tests: the silent wrong numbers of issue 8, one test each.

Each test failed on the code before the fixes (commit eaf9126): there the call went
through and printed a number (or a header) with nothing to say it was wrong. The
reference values are closed forms, hand computations with numpy and scipy, or the same
fit with the inputs prepared by hand.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppinfer


@pytest.fixture
def frames():
    """Labeled and unlabeled data with a positive outcome, a weight column (labeled only)
    and a categorical column."""
    rng = np.random.default_rng(8)
    n, N = 60, 300
    x = rng.normal(size=n + N)
    yhat = np.exp(1.0 + 0.5 * x + 0.3 * rng.normal(size=n + N))
    data = pd.DataFrame({
        "y": np.exp(1.0 + 0.5 * x[:n] + 0.3 * rng.normal(size=n)),
        "x": x[:n],
        "yhat": yhat[:n],
        "w": rng.uniform(1.0, 2.0, n),
        "g": rng.choice(["a", "b"], n),
    })
    unlabeled = pd.DataFrame({"x": x[n:], "yhat": yhat[n:], "g": rng.choice(["a", "b"], N)})
    return data, unlabeled


# -- a design column on one side only -----------------------------------------------------------------
def test_weights_column_missing_from_unlabeled_raises(frames):
    data, unlabeled = frames
    with pytest.raises(ValueError, match=r"weights='w' is a column of data but not of unlabeled.*weights_unlabeled"):
        ppinfer.ols("y ~ x", data=data, unlabeled=unlabeled, yhat="yhat", weights="w")


def test_weights_without_weights_unlabeled_raises(frames):
    data, unlabeled = frames
    X, X_unlabeled = data[["x"]].assign(Intercept=1.0), unlabeled[["x"]].assign(Intercept=1.0)
    with pytest.raises(ValueError, match="weights is given but weights_unlabeled is not"):
        ppinfer.OLS(data["y"], X, data["yhat"], X_unlabeled, unlabeled["yhat"], weights=data["w"].to_numpy())


# -- rows dropped by the formula ----------------------------------------------------------------------
def test_rows_dropped_by_patsy_are_counted_per_sample(frames):
    data, unlabeled = frames
    data, unlabeled = data.copy(), unlabeled.copy()
    data.loc[[1, 2], "x"] = np.nan  # dropped by patsy (a formula variable)
    data.loc[[5], "yhat"] = np.nan  # dropped with the predictions
    unlabeled.loc[[3, 4, 9], "x"] = np.nan
    model = ppinfer.ols("y ~ x", data=data, unlabeled=unlabeled, yhat="yhat", missing="drop")
    assert model.rows_dropped == (3, 3)
    assert (model.nobs, model.nobs_unlabeled) == (len(data) - 3, len(unlabeled) - 3)
    assert re.search(r"Rows dropped:\s+3 \+ 3", str(model.fit().summary()))


# -- a transformed outcome ----------------------------------------------------------------------------
def test_outcome_transformation_is_applied_to_the_predictions(frames):
    data, unlabeled = frames
    by_formula = ppinfer.ols("np.log(y) ~ x", data=data, unlabeled=unlabeled, yhat="yhat").fit(method="ppi")
    logged = data.assign(log_y=np.log(data["y"]), log_yhat=np.log(data["yhat"]))
    by_hand = ppinfer.ols("log_y ~ x", data=logged, unlabeled=unlabeled.assign(log_yhat=np.log(unlabeled["yhat"])),
                          yhat="log_yhat").fit(method="ppi")
    np.testing.assert_allclose(by_formula.params.to_numpy(), by_hand.params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(by_formula.bse.to_numpy(), by_hand.bse.to_numpy(), rtol=1e-12)


def test_outcome_transformation_of_two_columns_raises(frames):
    data, unlabeled = frames
    with pytest.raises(ValueError, match=r"function of 2 columns.*Compute the outcome and its prediction"):
        ppinfer.ols("I(y + x) ~ g", data=data, unlabeled=unlabeled, yhat="yhat")


# -- categorical levels ----------------------------------------------------------------------------------
def test_level_only_in_labeled_data_raises_naming_it(frames):
    data, unlabeled = frames
    data = data.copy()
    data.loc[:3, "g"] = "c"
    with pytest.raises(ValueError, match=r"level 'c' of C\(g\) occurs in data but not in unlabeled.*Merge the level"):
        ppinfer.ols("y ~ x + C(g)", data=data, unlabeled=unlabeled, yhat="yhat")


def test_unused_category_raises_naming_it(frames):
    data, unlabeled = frames
    levels = ["a", "b", "z"]
    data = data.assign(g=pd.Categorical(data["g"], categories=levels))
    unlabeled = unlabeled.assign(g=pd.Categorical(unlabeled["g"], categories=levels))
    with pytest.raises(ValueError, match=r"level 'z' of g has no rows in data.*remove_unused_categories"):
        ppinfer.ols("y ~ x + g", data=data, unlabeled=unlabeled, yhat="yhat")


# -- the statistic column ----------------------------------------------------------------------------------
def _statistic_header(summary) -> str:
    header = next(line for line in str(summary).splitlines() if "coef" in line and "std err" in line)
    return header.split()[3]  # coef, std, err, then the statistic


def test_multiple_imputation_statistic_is_coef_over_se_referred_to_t(frames):
    data, unlabeled = frames
    X, X_unlabeled = data[["x"]].assign(Intercept=1.0), unlabeled[["x"]].assign(Intercept=1.0)
    res = ppinfer.MultipleImputation(data["y"], data["yhat"], unlabeled["yhat"], X=X,
                                     X_unlabeled=X_unlabeled).fit(imputations=5, seed=0)
    statistic = res.params / res.bse
    np.testing.assert_allclose(res.tvalues.to_numpy(), statistic.to_numpy(), rtol=1e-12)
    # Barnard-Rubin df from the imputations' estimates and the total variance (Barnard & Rubin 1999)
    M, n_complete = 5, len(data) + len(unlabeled)
    between = np.var(res.estimates, axis=0, ddof=1)
    share = (1 + 1 / M) * between / res.bse.to_numpy() ** 2
    nu_old = (M - 1) / share**2
    nu_complete = n_complete - 2
    nu_obs = (nu_complete + 1) / (nu_complete + 3) * nu_complete * (1 - share)
    df = nu_old * nu_obs / (nu_old + nu_obs)
    np.testing.assert_allclose(res.pvalues.to_numpy(), 2 * stats.t.sf(np.abs(statistic.to_numpy()), df), rtol=1e-8)
    assert _statistic_header(res.summary()) == "t"


def test_summary_heads_the_statistic_t_or_z_by_use_t(frames):
    data, unlabeled = frames
    model = ppinfer.ols("y ~ x", data=data, unlabeled=unlabeled, yhat="yhat")
    t_fit, z_fit = model.fit(), model.fit(use_t=False)
    assert (_statistic_header(t_fit.summary()), _statistic_header(z_fit.summary())) == ("t", "z")
    # the p-values follow the header
    np.testing.assert_allclose(z_fit.pvalues, 2 * stats.norm.sf(np.abs(z_fit.params / z_fit.bse)), rtol=1e-10)
    np.testing.assert_allclose(t_fit.pvalues, 2 * stats.t.sf(np.abs(t_fit.params / t_fit.bse), t_fit.df), rtol=1e-10)


# -- small n -------------------------------------------------------------------------------------------
def test_mean_of_five_warns_and_gives_a_t_interval():
    rng = np.random.default_rng(5)
    y = rng.normal(3.0, 1.5, size=5)
    yhat_unlabeled = rng.normal(3.0, 1.5, size=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ppinfer.Mean(y, y + rng.normal(size=5), yhat_unlabeled).fit(method="classical")
    # named by class name, so that the test fails (rather than errors) where the class is missing
    assert "SmallSampleWarning" in {w.category.__name__ for w in caught}
    half = stats.t.isf(0.025, 4) * y.std(ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(res.conf_int().to_numpy()[0], [y.mean() - half, y.mean() + half], rtol=1e-12)
