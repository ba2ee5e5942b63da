"""Joint and single linear hypotheses (ppinfer.core.hypothesis).

References: statsmodels' ``wald_test``, ``f_test`` and ``t_test`` on classical
OLS and GLM fits with HC0 covariances (statistic, df, p-value and intervals to
1e-8), constraint matrices written by hand, and scipy distributions applied by
hand. The Monte Carlo check measures the rejection rate of the joint test on
PPI++ fits under a true null, with biased predictions.
"""

from __future__ import annotations

import dataclasses
import doctest
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

import ppinfer
import ppinfer.core.hypothesis
from ppinfer.core.hypothesis import linear_constraints, null_vector, t_test, wald_test

NAMES = ["Intercept", "C(g)[T.b]", "C(g)[T.c]", "np.log(z)", "x1", "x2", "x1:x2"]
FORMULA = "C(g) + np.log(z) + x1 * x2"
JOINT = "C(g)[T.b] = C(g)[T.c], x1:x2 = 0, np.log(z) = 0.2"
SINGLE = "2*x1 - x2 = 0.1"
RTOL = 1e-8


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(20240611)
    n = 60
    frame = pd.DataFrame(
        {"g": rng.choice(list("abc"), n), "z": rng.uniform(1, 3, n), "x1": rng.normal(size=n), "x2": rng.normal(size=n)}
    )
    frame["y"] = 1 + 0.3 * frame.x1 + 0.2 * np.log(frame.z) + rng.standard_t(5, size=n)
    frame["count"] = rng.poisson(np.exp(0.5 + 0.2 * frame.x1))
    return frame


@pytest.fixture(scope="module", params=["ols", "glm"])
def fits(request, data):
    """A statsmodels fit with HC0 covariance, for use_t False and True."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if request.param == "ols":
            model = smf.ols(f"y ~ {FORMULA}", data)
        else:
            model = smf.glm(f"count ~ {FORMULA}", data, family=sm.families.Poisson())
        return {use_t: model.fit(cov_type="HC0", use_t=use_t) for use_t in (False, True)}


def _reference_wald(result, constraint, use_f):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' FutureWarning about scalar
        return result.wald_test(constraint, use_f=use_f, scalar=True)


# --------------------------------------------------------------------------- against statsmodels


@pytest.mark.parametrize("use_t", [False, True])
@pytest.mark.parametrize("use_f", [False, True])
@pytest.mark.parametrize("constraint", [JOINT, SINGLE])
def test_wald_test_equals_statsmodels(fits, use_t, use_f, constraint):
    result = fits[use_t]
    assert result.model.exog_names == NAMES
    R, q = linear_constraints(constraint, NAMES)
    ours = wald_test(result.params, result.cov_params(), R, q, df=result.df_resid, use_f=use_f)
    reference = _reference_wald(result, constraint, use_f)
    np.testing.assert_allclose(ours.statistic, reference.statistic, rtol=RTOL)
    np.testing.assert_allclose(ours.pvalue, reference.pvalue, rtol=RTOL)
    assert ours.df_num == R.shape[0] == (3 if constraint == JOINT else 1)
    if use_f:
        assert ours.distribution == "F" and ours.df_denom == reference.df_denom == result.df_resid
        assert ours.df_num == reference.df_num
    else:
        # statsmodels stores the chi2 degrees of freedom as df_denom
        assert ours.distribution == "chi2" and ours.df_denom is None and ours.df_num == reference.df_denom


def test_f_test_equals_statsmodels(fits):
    result = fits[True]
    R, q = linear_constraints(JOINT, NAMES)
    ours = wald_test(result.params, result.cov_params(), R, q, df=result.df_resid, use_f=True)
    reference = result.f_test(JOINT)
    np.testing.assert_allclose(ours.statistic, np.squeeze(reference.fvalue), rtol=RTOL)
    np.testing.assert_allclose(ours.pvalue, reference.pvalue, rtol=RTOL)
    assert (ours.df_num, ours.df_denom) == (reference.df_num, reference.df_denom)


@pytest.mark.parametrize("use_t", [False, True])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_t_test_equals_statsmodels(fits, use_t, alpha):
    result = fits[use_t]
    R, q = linear_constraints(JOINT, NAMES)
    ours = t_test(result.params, result.cov_params(), R, q, df=result.df_resid if use_t else None)
    reference = result.t_test(JOINT).summary_frame(alpha=alpha)
    frame = ours.summary_frame(alpha=alpha)
    letter = "t" if use_t else "z"
    assert list(frame.columns) == ["coef", "std err", letter, f"P>|{letter}|", "lower", "upper"]
    assert list(frame.index) == ["C(g)[T.b] - C(g)[T.c] = 0", "x1:x2 = 0", "np.log(z) = 0.2"]
    np.testing.assert_allclose(frame.to_numpy(), reference.to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ours.conf_int(alpha).to_numpy(), reference.iloc[:, 4:].to_numpy(), rtol=RTOL)
    assert ours.distribution == ("t" if use_t else "norm")


def test_mapping_and_array_forms_equal_statsmodels(fits):
    result = fits[False]
    mapping = {"x1": 0.3, "C(g)[T.b]": 0.0}
    R_hand = np.zeros((2, 7))
    R_hand[0, 4] = R_hand[1, 1] = 1.0
    R, q = linear_constraints(mapping, NAMES)
    np.testing.assert_array_equal(R, R_hand)
    np.testing.assert_array_equal(q, [0.3, 0.0])
    ours = wald_test(result.params, result.cov_params(), R, q)
    reference = _reference_wald(result, (R_hand, np.array([0.3, 0.0])), use_f=False)
    np.testing.assert_allclose(ours.statistic, reference.statistic, rtol=RTOL)
    np.testing.assert_allclose(ours.pvalue, reference.pvalue, rtol=RTOL)
    assert ours.constraints == ("x1 = 0.3", "C(g)[T.b] = 0")


# --------------------------------------------------------------------------- constraint forms


def _row(names, coefficients):
    row = np.zeros(len(names))
    for name, value in coefficients.items():
        row[names.index(name)] = value
    return row


@pytest.mark.parametrize(
    "names, text, coefficients, value",
    [
        (NAMES, "Intercept = 1", {"Intercept": 1}, 1.0),
        (NAMES, "C(g)[T.b] - C(g)[T.c]", {"C(g)[T.b]": 1, "C(g)[T.c]": -1}, 0.0),
        (NAMES, "np.log(z) = 0.5", {"np.log(z)": 1}, 0.5),
        (NAMES, "x1:x2 = x1", {"x1:x2": 1, "x1": -1}, 0.0),
        (NAMES, "2*(x1 - x2) + x1:x2 = -1", {"x1": 2, "x2": -2, "x1:x2": 1}, -1.0),
        (NAMES, "x1/4 = 1e-3", {"x1": 0.25}, 0.001),
        (["q=0.25", "q=0.5", "q=0.75"], "q=0.75 - q=0.25 = 0.5", {"q=0.75": 1, "q=0.25": -1}, 0.5),
        (["q=0.25", "q=0.5"], "q=0.5=1", {"q=0.5": 1}, 1.0),
        (["(Intercept)", "x"], "(Intercept) = 2*x", {"(Intercept)": 1, "x": -2}, 0.0),
        (["Intercept", "C(g, Treatment('b'))[T.a]"], "C(g, Treatment('b'))[T.a] = 1",
         {"C(g, Treatment('b'))[T.a]": 1}, 1.0),
        (["Intercept", "C(city)[T.New York]"], "C(city)[T.New York] = Intercept",
         {"C(city)[T.New York]": 1, "Intercept": -1}, 0.0),
        (["x1", "x10", "1x"], "x10 - x1 + 1x = 3", {"x10": 1, "x1": -1, "1x": 1}, 3.0),
        (["x-1", "x"], "x - x-1 = 0", {"x": 1, "x-1": -1}, 0.0),
        (["log(x)", "I(x ** 2)"], "I(x ** 2) = 0", {"I(x ** 2)": 1}, 0.0),
    ],
)
def test_every_name_shape(names, text, coefficients, value):
    R, q = linear_constraints(text, names)
    np.testing.assert_array_equal(R, [_row(names, coefficients)])
    np.testing.assert_array_equal(q, [value])


def test_text_list_and_array_forms_agree():
    names = ["const", "x1", "x2", "x3"]
    R_hand = np.array([[0.0, 1, -1, 0], [0.0, 0, 0, 1]])
    for form in ["x1 = x2, x3 = 0", ["x1 = x2", "x3"], ("x1 - x2 = 0", "x3 = 0"), (R_hand, 0.0),
                 (R_hand, [0.0, 0.0]), (R_hand, np.zeros((2, 1))), R_hand,
                 pd.DataFrame(R_hand[:, ::-1], columns=names[::-1])]:
        R, q = linear_constraints(form, names)
        np.testing.assert_array_equal(R, R_hand)
        np.testing.assert_array_equal(q, [0.0, 0.0])
    R, q = linear_constraints(np.array([0.0, 2, 1, 0]), names)
    np.testing.assert_array_equal(R, [[0.0, 2, 1, 0]])
    R, q = linear_constraints("2*x1 + x2 = 1", names)
    np.testing.assert_array_equal(R, [[0.0, 2, 1, 0]])
    np.testing.assert_array_equal(q, [1.0])
    R, q = linear_constraints(pd.Series({"x2": 1.0, "x1": -1.0}), names)
    np.testing.assert_array_equal(R, [[0.0, -1, 1, 0]])


def test_dependent_rows_allowed_for_t_tests():
    names = ["a", "b", "c"]
    pairwise = "a - b = 0, a - c = 0, b - c = 0"
    with pytest.raises(ValueError, match="linearly dependent .* constraint 2 \\(b - c\\)"):
        linear_constraints(pairwise, names)
    R, q = linear_constraints(pairwise, names, independent=False)
    assert R.shape == (3, 3)
    cov = np.diag([1.0, 2.0, 3.0])
    result = t_test([0.0, 1.0, 3.0], cov, R, q, param_names=names)
    np.testing.assert_allclose(result.sd, np.sqrt([3.0, 4.0, 5.0]), rtol=1e-12)
    np.testing.assert_allclose(result.statistic, [-1 / np.sqrt(3), -3 / 2, -2 / np.sqrt(5)], rtol=1e-12)


# --------------------------------------------------------------------------- hand-computed values


def test_t_test_per_row_df_and_defaults():
    params = pd.Series([1.0, 0.5, -0.2], index=["a", "b", "c"])
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.0], [0.0, 0.0, 0.01]])
    R = np.array([[1.0, -1, 0], [0, 0, 1]])
    result = t_test(params, cov, R, [0.0, 0.1], df=[10, 25])
    se = np.sqrt([0.04 + 0.09 - 0.02, 0.01])
    statistic = np.array([0.5, -0.3]) / se
    np.testing.assert_allclose(result.statistic, statistic, rtol=1e-12)
    np.testing.assert_allclose(result.pvalue, 2 * stats.t.sf(np.abs(statistic), [10, 25]), rtol=1e-12)
    lower = np.array([0.5, -0.2]) - stats.t.isf(0.05, [10, 25]) * se
    np.testing.assert_allclose(result.conf_int(0.1)["lower"], lower, rtol=1e-12)
    assert list(result.summary_frame().index) == ["a - b = 0", "c = 0.1"]  # names from the Series
    unnamed = wald_test(params.to_numpy(), cov, R)
    assert unnamed.constraints == ("theta[0] - theta[1] = 0", "theta[2] = 0")


def test_nan_covariances_work_for_one_parameter_and_fail_jointly():
    """A quantile model leaves the covariances between quantile levels unestimated."""
    names = ["q=0.25", "q=0.5", "q=0.75"]
    params = np.array([-0.6, 0.1, 0.7])
    variances = np.array([0.04, 0.03, 0.05])
    cov = np.full((3, 3), np.nan)
    np.fill_diagonal(cov, variances)
    R, q = linear_constraints("q=0.5 = 0.2, q=0.75 = 1", names)
    result = t_test(params, cov, R, q, param_names=names)
    z = (np.array([0.1, 0.7]) - [0.2, 1.0]) / np.sqrt(variances[1:])
    np.testing.assert_allclose(result.statistic, z, rtol=1e-12)
    np.testing.assert_allclose(result.pvalue, 2 * stats.norm.sf(np.abs(z)), rtol=1e-12)
    single = wald_test(params, cov, *linear_constraints({"q=0.5": 0.2}, names), param_names=names)
    np.testing.assert_allclose(single.statistic, z[0] ** 2, rtol=1e-12)
    np.testing.assert_allclose(single.pvalue, stats.chi2.sf(z[0] ** 2, 1), rtol=1e-12)
    with pytest.raises(ValueError, match="covariance of 'q=0.5' and 'q=0.75', which the constraint"):
        wald_test(params, cov, R, q, param_names=names)
    with pytest.raises(ValueError, match="'-q=0.25 \\+ q=0.75 = 0' needs"):
        t_test(params, cov, *linear_constraints("q=0.75 = q=0.25", names), param_names=names)
    cov[1, 1] = np.nan
    with pytest.raises(ValueError, match="variance of 'q=0.5'"):
        t_test(params, cov, R, q, param_names=names)


def test_null_vector():
    names = ["Intercept", "x1", "x2"]
    np.testing.assert_array_equal(null_vector(0.5, names), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(null_vector([1, 2, 3], names), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(null_vector({"x1": 0.5}, names), [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(null_vector(pd.Series({"x2": 1.0, "x1": -1.0}), names), [0.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="null: 'x3' is not a parameter name. Did you mean 'x2'"):
        null_vector({"x3": 1.0}, names)
    with pytest.raises(ValueError, match="one value per parameter \\(3\\); got shape \\(2,\\)"):
        null_vector([1.0, 2.0], names)
    with pytest.raises(ValueError, match="null contains NaN"):
        null_vector({"x1": np.nan}, names)
    with pytest.raises(TypeError, match="null must be a number"):
        null_vector("x1", names)
    with pytest.raises(TypeError, match="null\\['x1'\\] must be a number"):
        null_vector({"x1": "a"}, names)
    with pytest.raises(ValueError, match="repeated labels"):
        null_vector(pd.Series([1.0, 2.0], index=["x1", "x1"]), names)


def test_results_are_read_only_and_print():
    names = ["a", "b"]
    cov = [[0.04, 0.0], [0.0, 0.01]]
    wald = wald_test([1.0, 0.5], cov, [[1.0, 0], [0, 1]], [0.0, 0.0], df=20, use_f=True, param_names=names)
    W = 1.0 / 0.04 + 0.25 / 0.01
    np.testing.assert_allclose(wald.statistic, W / 2, rtol=1e-12)
    np.testing.assert_allclose(wald.pvalue, stats.f.sf(W / 2, 2, 20), rtol=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        wald.statistic = 0.0
    assert repr(wald) == f"<WaldTestResults: F(2, 20) = 25, p-value = {wald.pvalue:.4g}>"
    assert str(wald).splitlines() == [
        "Wald test (F) of 2 constraints:", "    a = 0", "    b = 0", f"F(2, 20) = 25, p-value = {wald.pvalue:.4g}"
    ]
    frame = wald.summary_frame()
    assert list(frame.columns) == ["statistic", "df_num", "df_denom", "pvalue", "distribution"]
    assert frame.index[0] == "a = 0, b = 0" and frame["df_denom"].iloc[0] == 20
    contrast = t_test([1.0, 0.5], cov, [1.0, 1.0], param_names=names)
    with pytest.raises(ValueError, match="read-only"):
        contrast.effect[0] = 0.0
    assert "a + b = 0" in str(contrast) and "a + b = 0: p=" in repr(contrast)


def test_docstring_examples_run():
    failures, attempted = doctest.testmod(ppinfer.core.hypothesis, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failures == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "constraints, names, error, message",
    [
        ("x3 = 0", ["x1", "x2"], ValueError, "'x3' is not a parameter name. Did you mean 'x2'"),
        ("C(g)[T.d] = 0", NAMES, ValueError, "'C\\(g\\)\\[T.d\\]' is not a parameter name. Did you mean 'C\\(g\\)\\[T.c\\]'"),
        ("x12 - x1", ["x1", "x2"], ValueError, "'x12' is not a parameter name"),
        ({"x3": 1.0}, ["x1", "x2"], ValueError, "constraints: 'x3' is not a parameter name. Did you mean"),
        ({"x1": "one"}, ["x1", "x2"], TypeError, "constraints\\['x1'\\] must be a number"),
        ({}, ["x1"], ValueError, "empty mapping"),
        ("", ["x1"], ValueError, "empty string"),
        ("x1 = ", ["x1"], ValueError, "cannot read 'x1 = '"),
        ("x1*x2 = 0", ["x1", "x2"], ValueError, "cannot read 'x1\\*x2 = 0': Can't multiply one variable by another"),
        ("x1 = 1, x1 = 2", ["x1", "x2"], ValueError, "linearly dependent \\(rank 1\\)"),
        ("0 = 1", ["const", "0", "1"], ValueError, "'0' is both a parameter name and a number"),
        (np.ones((1, 3)), ["x1", "x2"], ValueError, "R has 3 columns but there are 2 parameters"),
        (np.array([[1.0, np.nan]]), ["x1", "x2"], ValueError, "R contains NaN"),
        ((np.eye(2), [0.0, np.inf]), ["x1", "x2"], ValueError, "q contains NaN or infinite"),
        ((np.eye(2), [0.0, 1.0, 2.0]), ["x1", "x2"], ValueError, "one value per constraint \\(2\\); got 3"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), ["x1", "x2"], ValueError, "R row 1 is all zeros"),
        (np.array([[1.0, 1.0], [2.0, 2.0]]), ["x1", "x2"], ValueError, "linearly dependent"),
        (pd.DataFrame([[1.0, 0.0]], columns=["x1", "z"]), ["x1", "x2"], ValueError, "R: 'z' is not a parameter"),
        (pd.DataFrame([[1.0, 2.0]], columns=["x1", "x1"]), ["x1", "x2"], ValueError, "R names a parameter twice"),
        (pd.DataFrame([[1.0, 0.0, 0.0]]), ["x1", "x2"], ValueError, "R has 3 columns but there are 2"),
        (object(), ["x1"], TypeError, "constraints must be a string, a list of strings, a mapping"),
        ("x1 = 0", ["x1", "x1"], ValueError, "param_names must be unique; repeated: \\['x1'\\]"),
        ("x1 = 0", "x1", TypeError, "param_names must be a sequence"),
    ],
)
def test_linear_constraints_errors(constraints, names, error, message):
    with pytest.raises(error, match=message):
        linear_constraints(constraints, names)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"use_f": True}, ValueError, "use_f=True needs df"),
        ({"use_f": "yes", "df": 10}, TypeError, "use_f must be True or False"),
        ({"use_f": True, "df": -1}, ValueError, "df must be positive"),
        ({"use_f": True, "df": [10, 20]}, ValueError, "df must be a single number"),
        ({"params": [1.0, np.nan]}, ValueError, "params contains NaN"),
        ({"cov": np.eye(3)}, ValueError, "cov must have shape \\(2, 2\\)"),
        ({"cov": [[1.0, 0.5], [0.0, 1.0]]}, ValueError, "cov must be symmetric"),
        ({"cov": [[np.inf, 0.0], [0.0, 1.0]]}, ValueError, "cov contains infinite"),
        ({"cov": [[1.0, 1.0], [1.0, 1.0]]}, ValueError, "R cov R', is singular"),
        ({"param_names": ["a", "b", "c"]}, ValueError, "param_names has 3 names but params has 2"),
        ({"cov": pd.DataFrame(np.eye(2), index=["a", "z"], columns=["a", "z"]), "param_names": ["a", "b"]},
         ValueError, "cov is labeled 'a', 'z' but the parameters are 'a', 'b'"),
    ],
)
def test_wald_test_errors(kwargs, error, message):
    arguments = {"params": [1.0, 0.5], "cov": np.eye(2), "R": np.eye(2), "q": None} | kwargs
    with pytest.raises(error, match=message):
        wald_test(arguments.pop("params"), arguments.pop("cov"), arguments.pop("R"), arguments.pop("q"), **arguments)


def test_t_test_errors():
    with pytest.raises(ValueError, match="one number per constraint \\(2\\)"):
        t_test([1.0, 0.5], np.eye(2), np.eye(2), df=[10, 20, 30])
    with pytest.raises(ValueError, match="standard error of constraint 'theta\\[0\\] - theta\\[1\\] = 0' is zero"):
        t_test([1.0, 0.5], np.ones((2, 2)), [1.0, -1.0])
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        t_test([1.0, 0.5], np.eye(2), np.eye(2)).conf_int(alpha=1.5)


def test_labeled_covariance_is_aligned_by_name():
    names = ["a", "b"]
    cov = pd.DataFrame([[0.09, 0.0], [0.0, 0.04]], index=["b", "a"], columns=["b", "a"])
    result = t_test(pd.Series([1.0, 0.5], index=names), cov, np.eye(2))
    np.testing.assert_allclose(result.sd, [0.2, 0.3], rtol=1e-12)


# --------------------------------------------------------------------------- Monte Carlo


@pytest.mark.montecarlo
def test_joint_test_keeps_its_level_on_ppi_fits_and_naive_pooling_fails():
    """Rejection rate of x2 = 0, x3 = 0 (true) at 5%, with biased predictions that carry a spurious x2 effect.

    PPI++ must stay within 3.5 Monte Carlo standard errors of 0.05; naive pooling
    treats the predictions as outcomes and rejects almost always.
    """
    rng = np.random.default_rng(8)
    reps, n, N, alpha = 800, 300, 3000, 0.05
    names = ["const", "x1", "x2", "x3"]
    R, q = linear_constraints("x2 = 0, x3 = 0", names)
    contrast_R, _ = linear_constraints("x2 - x3 = 0", names)
    rejected = {"ppi++": [], "naive": [], "contrast": []}
    for _ in range(reps):
        X, X_unlabeled = (np.column_stack([np.ones(m), rng.normal(size=(m, 3))]) for m in (n, N))
        y = X @ [1.0, 1.0, 0.0, 0.0] + rng.normal(size=n)
        yhat, yhat_unlabeled = (
            design @ [1.5, 0.8, 0.6, 0.0] + 0.5 * rng.normal(size=len(design)) for design in (X, X_unlabeled)
        )
        yhat = yhat + 0.7 * (y - X @ [1.0, 1.0, 0.0, 0.0])  # predictions correlated with the outcome
        model = ppinfer.OLS(y, pd.DataFrame(X, columns=names), yhat,
                            pd.DataFrame(X_unlabeled, columns=names), yhat_unlabeled)
        for method in ("ppi++", "naive"):
            fit = model.fit(method=method)
            test = wald_test(fit.params, fit.cov_params(), R, q)
            rejected[method].append(test.pvalue < alpha)
            if method == "ppi++":
                rejected["contrast"].append(t_test(fit.params, fit.cov_params(), contrast_R).pvalue[0] < alpha)
    se = np.sqrt(alpha * (1 - alpha) / reps)
    for key in ("ppi++", "contrast"):
        assert abs(np.mean(rejected[key]) - alpha) < 3.5 * se, (key, np.mean(rejected[key]))
    assert np.mean(rejected["naive"]) > 0.9
