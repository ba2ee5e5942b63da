"""Predicted covariates (predict-then-debias; Kluger et al. 2025) and the full-matrix lambda.

Labeled rows carry the measured ``(y, X)`` and the predicted ``(yhat, X_predicted)``;
unlabeled rows the predicted ``(yhat_unlabeled, X_unlabeled)`` only. References:

* point estimates: the three fits by numpy least squares and statsmodels' GLM;
* variances: the influence functions ``psi = H^-1 x (v - mu)`` of the three fits, by
  hand with numpy, combined as ``Cov(psi^Y - lam psi^f)/n + lam^2 Cov(psi^u)/N``; the
  leverage-adjusted (HC3) and cluster-robust (CR2, from its textbook definition
  ``(I - H_gg)^(-1/2)``) versions likewise, with the predicted fit's own hat matrix;
* the matrix lambda: ``C (V_f + V_fu)^-1`` by hand, and a check that it minimises the trace;
* the formula interface: the array interface on designs built by patsy by hand;
* Monte Carlo: coverage of the generating coefficients (a correctly specified model),
  with a predicted covariate that is biased and noisy; naive pooling and PPI that treats
  the predicted covariates of the unlabeled rows as measured are shown to fail.

``python tests/test_predicted_covariates.py [reps]`` prints the Monte Carlo figures.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

import ppinfer

HC0 = dict(cov_type="HC0", use_t=False)
NOMINAL = 0.90
BETA = {"ols": np.array([1.0, 0.8, -0.6]), "logit": np.array([-0.5, 0.8, -0.6])}


# --------------------------------------------------------------------------------------
# data: x2 measured on the labeled rows only; its prediction is biased and noisy
# --------------------------------------------------------------------------------------
def draw(rng: np.random.Generator, m: int, family: str = "ols") -> dict:
    """One sample: measured design and outcome, predicted design and outcome."""
    x1 = rng.normal(size=m)
    x2 = 0.5 * x1 + rng.normal(size=m)
    X = np.column_stack([np.ones(m), x1, x2])
    eta = X @ BETA[family]
    x2_pred = 0.4 + 1.3 * x2 + 0.7 * rng.normal(size=m)
    if family == "ols":
        y = eta + (0.5 + 0.5 * np.abs(x1)) * rng.standard_t(5, m)
        y_pred = y + 0.5 + 0.5 * x1 + 0.6 * rng.normal(size=m)
    else:
        y = (rng.uniform(size=m) < expit(eta)).astype(float)
        y_pred = expit(eta + 1.5 * (y - 0.5) + 0.4 + 0.6 * rng.normal(size=m))
    return dict(X=X, y=y, X_predicted=np.column_stack([np.ones(m), x1, x2_pred]), y_pred=y_pred)


def arrays(seed: int, n: int = 150, N: int = 600, family: str = "ols") -> dict:
    rng = np.random.default_rng(seed)
    lab, unl = draw(rng, n, family), draw(rng, N, family)
    return dict(y=lab["y"], X=lab["X"], yhat=lab["y_pred"], X_unlabeled=unl["X_predicted"],
                yhat_unlabeled=unl["y_pred"], X_predicted=lab["X_predicted"])


def least_squares(X, v):
    return np.linalg.lstsq(X, v, rcond=None)[0]


def influence(X, v, b):
    """OLS influence rows ``H^-1 x_i (v_i - x_i'b)`` with ``H = mean(x x')``."""
    return (X * (v - X @ b)[:, None]) @ np.linalg.inv(X.T @ X / X.shape[0])


def hand_variance(a: dict, lam) -> np.ndarray:
    """``Cov(psi^Y - L psi^f)/n + L Cov(psi^u) L'/N`` (1/n normalised) for a scalar, vector or matrix L."""
    n, N = len(a["y"]), len(a["yhat_unlabeled"])
    L = np.diag(np.broadcast_to(lam, 3)) if np.ndim(lam) < 2 else np.asarray(lam)
    psi_y = influence(a["X"], a["y"], least_squares(a["X"], a["y"]))
    psi_f = influence(a["X_predicted"], a["yhat"], least_squares(a["X_predicted"], a["yhat"]))
    psi_u = influence(a["X_unlabeled"], a["yhat_unlabeled"], least_squares(a["X_unlabeled"], a["yhat_unlabeled"]))
    labeled = psi_y - psi_f @ L.T
    return labeled.T @ labeled / n**2 + L @ (psi_u.T @ psi_u / N**2) @ L.T


# --------------------------------------------------------------------------------------
# exact checks
# --------------------------------------------------------------------------------------
def test_ols_lambda_one_is_the_three_least_squares_fits_combined():
    a = arrays(1)
    res = ppinfer.OLS(**a).fit(method="ppi")
    expected = (least_squares(a["X"], a["y"]) + least_squares(a["X_unlabeled"], a["yhat_unlabeled"])
                - least_squares(a["X_predicted"], a["yhat"]))
    np.testing.assert_allclose(res.params.to_numpy(), expected, rtol=0, atol=1e-10)


def test_logit_lambda_one_is_the_three_statsmodels_fits_combined():
    a = arrays(2, n=300, N=900, family="logit")
    res = ppinfer.Logit(**a).fit(method="ppi")
    binomial = sm.families.Binomial()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about non-integer binomial responses
        fits = [sm.GLM(v, X, family=binomial).fit(tol=1e-12).params for X, v in (
            (a["X"], a["y"]), (a["X_unlabeled"], a["yhat_unlabeled"]), (a["X_predicted"], a["yhat"]))]
    np.testing.assert_allclose(res.params.to_numpy(), fits[0] + fits[1] - fits[2], rtol=0, atol=1e-7)


def test_classical_ignores_the_predicted_design():
    a = arrays(3)
    res = ppinfer.OLS(**a).fit(method="classical", **HC0)
    reference = sm.OLS(a["y"], a["X"]).fit(cov_type="HC0")
    np.testing.assert_allclose(res.params.to_numpy(), reference.params, atol=1e-10)
    np.testing.assert_allclose(res.bse.to_numpy(), reference.bse, rtol=1e-8)


def test_without_predicted_covariates_x_predicted_equal_to_x_changes_nothing():
    a = arrays(4)
    a["X_predicted"] = a["X"]
    plain = {k: v for k, v in a.items() if k != "X_predicted"}
    for options in ({}, dict(lam="matrix"), dict(cov_type="HC0")):
        pd.testing.assert_series_equal(ppinfer.OLS(**a).fit(**options).bse, ppinfer.OLS(**plain).fit(**options).bse,
                                       rtol=1e-12)


@pytest.mark.parametrize("lam", [0.6, 1.0, [0.2, 0.5, 0.9]])
def test_fixed_lambda_variance_matches_the_influence_functions(lam):
    a = arrays(5)
    res = ppinfer.OLS(**a).fit(method="ppi++", lam=lam, **HC0)
    np.testing.assert_allclose(res.cov_params().to_numpy(), hand_variance(a, lam), rtol=1e-9, atol=1e-14)


def test_matrix_lambda_is_c_times_the_inverse_of_the_prediction_variance():
    a = arrays(6)
    n, N = len(a["y"]), len(a["yhat_unlabeled"])
    res = ppinfer.OLS(**a).fit(lam="matrix", **HC0)
    psi_y = influence(a["X"], a["y"], least_squares(a["X"], a["y"]))
    psi_f = influence(a["X_predicted"], a["yhat"], least_squares(a["X_predicted"], a["yhat"]))
    psi_u = influence(a["X_unlabeled"], a["yhat_unlabeled"], least_squares(a["X_unlabeled"], a["yhat_unlabeled"]))
    C = psi_y.T @ psi_f / n**2
    S = psi_f.T @ psi_f / n**2 + psi_u.T @ psi_u / N**2
    expected = C @ np.linalg.inv(S)
    assert isinstance(res.lam, pd.DataFrame) and list(res.lam.columns) == res.param_names
    np.testing.assert_allclose(res.lam.to_numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(res.cov_params().to_numpy(), hand_variance(a, expected), rtol=1e-9, atol=1e-14)
    params = (least_squares(a["X"], a["y"]) + expected @ (
        least_squares(a["X_unlabeled"], a["yhat_unlabeled"]) - least_squares(a["X_predicted"], a["yhat"])))
    np.testing.assert_allclose(res.params.to_numpy(), params, atol=1e-10)
    # the minimiser of the trace (and of the whole matrix): any perturbation adds variance
    rng = np.random.default_rng(0)
    best = np.trace(hand_variance(a, expected))
    for _ in range(20):
        assert np.trace(hand_variance(a, expected + 0.05 * rng.normal(size=(3, 3)))) > best
    scalar = ppinfer.OLS(**a).fit(**HC0)
    diagonal = ppinfer.OLS(**a).fit(lam="per-coefficient", **HC0)
    assert np.trace(res.cov_params()) <= min(np.trace(scalar.cov_params()), np.trace(diagonal.cov_params()))


def test_matrix_lambda_spends_p_degrees_of_freedom():
    """n = 6 rows and p = 3 parameters leave 3 degrees of freedom: one scalar lambda fits,
    a 3 x 3 matrix (3 coefficients per parameter) does not."""
    small = arrays(8, n=6, N=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ppinfer.OLS(**small)
        assert np.all(np.isfinite(model.fit().bse))
        with pytest.raises(ValueError, match="tuning uses 3 more"):
            model.fit(lam="matrix")
        assert np.all(np.isfinite(ppinfer.OLS(**arrays(8, n=7, N=40)).fit(lam="matrix").bse))


def test_matrix_lambda_falls_back_to_zero_without_prediction_variation():
    a = arrays(9)
    a["yhat"] = a["X_predicted"] @ np.array([1.0, 2.0, 3.0])
    a["yhat_unlabeled"] = a["X_unlabeled"] @ np.array([1.0, 2.0, 3.0])
    with pytest.warns(ppinfer.PPIWarning, match="no residual variation"):
        res = ppinfer.OLS(**a).fit(lam="matrix", **HC0)
    np.testing.assert_allclose(res.lam.to_numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(res.params.to_numpy(), least_squares(a["X"], a["y"]), atol=1e-6)


def test_hc3_uses_the_leverage_of_each_fits_own_design():
    """Fixed lambda: each labeled row's contribution to b_Y is scaled by 1/(1 - h_i(X)), to b_f by
    1/(1 - h_i(X_predicted)); unlabeled rows are not adjusted. Tuned lambda: both leverages grow by the
    prediction residual's share w_i z_i^2 / sum z^2, z the residual of yhat on X_predicted."""
    a = arrays(10, n=60, N=400)
    n, N = 60, 400

    def parts(X, v):
        b = least_squares(X, v)
        bread = np.linalg.inv(X.T @ X)
        return (X * (v - X @ b)[:, None]) @ bread, np.einsum("ij,jk,ik->i", X, bread, X), v - X @ b

    c_y, h_y, _ = parts(a["X"], a["y"])
    c_f, h_f, z = parts(a["X_predicted"], a["yhat"])
    c_u, _, _ = parts(a["X_unlabeled"], a["yhat_unlabeled"])

    def centred(rows):
        rows = rows - rows.mean(axis=0)
        return rows.T @ rows

    V_u = centred(c_u)
    lam = 0.7
    labeled = c_y / (1 - h_y)[:, None] - lam * c_f / (1 - h_f)[:, None]
    res = ppinfer.OLS(**a).fit(lam=lam, cov_type="HC3")
    # the adjusted labeled rows are not centred again (their unadjusted rows sum to zero)
    np.testing.assert_allclose(res.cov_params().to_numpy(), labeled.T @ labeled + lam**2 * V_u, rtol=1e-9)

    extra = z**2 / np.sum(z**2)
    u = c_y / (1 - h_y - extra)[:, None]
    v = c_f / (1 - h_f - extra)[:, None]
    C = u.T @ v
    S = v.T @ v + V_u
    tuned = np.clip(np.trace(C) / np.trace(S), 0, 1)
    res = ppinfer.OLS(**a).fit(cov_type="HC3")
    assert res.lam == pytest.approx(tuned, rel=1e-9)
    np.testing.assert_allclose(res.cov_params().to_numpy(), (u - tuned * v).T @ (u - tuned * v) + tuned**2 * V_u, rtol=1e-9)


def test_cr2_uses_each_fits_own_design():
    """CR2 from its definition: cluster g's residuals adjusted by (I - H_gg)^(-1/2), H_gg the
    cluster's block of the hat matrix of the fit's own design (X for b_Y, X_predicted for b_f)."""
    a = arrays(11, n=90, N=300)
    clusters = np.repeat(np.arange(30), 3)

    def cluster_totals(X, v):
        b = least_squares(X, v)
        bread = np.linalg.inv(X.T @ X)
        residual = v - X @ b
        totals = []
        for g in range(30):
            rows = clusters == g
            Xg = X[rows]
            values, vectors = np.linalg.eigh(np.eye(rows.sum()) - Xg @ bread @ Xg.T)
            adjust = (vectors / np.sqrt(values)) @ vectors.T
            totals.append(bread @ Xg.T @ adjust @ residual[rows])
        return np.array(totals)

    lam = 0.6
    t = cluster_totals(a["X"], a["y"]) - lam * cluster_totals(a["X_predicted"], a["yhat"])
    X_u, v_u = a["X_unlabeled"], a["yhat_unlabeled"]
    c_u = (X_u * (v_u - X_u @ least_squares(X_u, v_u))[:, None]) @ np.linalg.inv(X_u.T @ X_u)
    c_u = c_u - c_u.mean(axis=0)
    expected = t.T @ t + lam**2 * c_u.T @ c_u
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.FewClustersWarning)
        res = ppinfer.OLS(**a, clusters=clusters).fit(lam=lam, cov_type="CR2")
    np.testing.assert_allclose(res.cov_params().to_numpy(), expected, rtol=1e-8)


def test_two_phase_prediction_fit_runs_over_every_units_predicted_design():
    """With label_prob, b_f is weighted by 1 / pi on X_predicted and b_u pools every unit's
    predicted design (the labeled rows' X_predicted with the unlabeled rows' X_unlabeled)."""
    a = arrays(15)
    label_prob = np.random.default_rng(0).uniform(0.2, 0.8, 150)
    res = ppinfer.OLS(**a, label_prob=label_prob).fit(method="ppi")

    def weighted(X, v, w):
        root = np.sqrt(w)[:, None]
        return least_squares(X * root, v * root[:, 0])

    expected = (weighted(a["X"], a["y"], 1 / label_prob)
                + least_squares(np.vstack([a["X_predicted"], a["X_unlabeled"]]), np.r_[a["yhat"], a["yhat_unlabeled"]])
                - weighted(a["X_predicted"], a["yhat"], 1 / label_prob))
    np.testing.assert_allclose(res.params.to_numpy(), expected, atol=1e-10)


def test_naive_pools_measured_labeled_rows_with_predicted_unlabeled_rows():
    a = arrays(12)
    res = ppinfer.OLS(**a).fit(method="naive", **HC0)
    pooled = sm.OLS(np.r_[a["y"], a["yhat_unlabeled"]], np.vstack([a["X"], a["X_unlabeled"]])).fit(cov_type="HC0")
    np.testing.assert_allclose(res.params.to_numpy(), pooled.params, atol=1e-10)
    np.testing.assert_allclose(res.bse.to_numpy(), pooled.bse, rtol=1e-8)


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def test_x_predicted_errors_name_the_argument():
    a = arrays(13)
    with pytest.raises(ValueError, match="X_predicted has 2"):
        ppinfer.OLS(**{**a, "X_predicted": a["X_predicted"][:, :2]})
    with pytest.raises(ValueError, match="X_predicted has 149 rows"):
        ppinfer.OLS(**{**a, "X_predicted": a["X_predicted"][1:]})
    singular = a["X_predicted"].copy()
    singular[:, 2] = 2 * singular[:, 1]
    with pytest.raises(ValueError, match="X_predicted"):
        ppinfer.OLS(**{**a, "X_predicted": singular})
    frame = pd.DataFrame(a["X"], columns=["const", "x1", "x2"])
    with pytest.raises(ValueError, match="missing from X_predicted \\['x2'\\]"):
        ppinfer.OLS(a["y"], frame, a["yhat"], pd.DataFrame(a["X_unlabeled"], columns=frame.columns),
                    a["yhat_unlabeled"], X_predicted=pd.DataFrame(a["X_predicted"], columns=["const", "x1", "z"]))
    with pytest.raises(ValueError, match="Did you mean 'matrix'"):
        ppinfer.OLS(**a).fit(lam="matrx")


def test_x_predicted_columns_matched_by_name_and_missing_rows_dropped_together():
    a = arrays(14)
    names = ["const", "x1", "x2"]
    frames = dict(X=pd.DataFrame(a["X"], columns=names),
                  X_unlabeled=pd.DataFrame(a["X_unlabeled"], columns=names),
                  X_predicted=pd.DataFrame(a["X_predicted"], columns=names)[["x2", "const", "x1"]])
    res = ppinfer.OLS(**{**a, **frames}).fit(method="ppi")
    np.testing.assert_allclose(res.params.to_numpy(), ppinfer.OLS(**a).fit(method="ppi").params.to_numpy())
    holed = a["X_predicted"].copy()
    holed[[3, 7], 2] = np.nan
    model = ppinfer.OLS(**{**a, "X_predicted": holed}, missing="drop")
    kept = np.setdiff1d(np.arange(150), [3, 7])
    reference = ppinfer.OLS(**{k: (v[kept] if k in ("y", "X", "yhat", "X_predicted") else v) for k, v in a.items()})
    assert model.nobs == 148
    np.testing.assert_allclose(model.fit().params.to_numpy(), reference.fit().params.to_numpy())


# --------------------------------------------------------------------------------------
# formula interface
# --------------------------------------------------------------------------------------
def frames(seed: int, n: int = 200, N: int = 800):
    rng = np.random.default_rng(seed)

    def one(m):
        x1, x2 = rng.normal(size=m), rng.normal(size=m)
        group = rng.choice(["a", "b", "c"], m)
        y = 1 + x1 - 0.5 * x2 + (group == "b") + rng.normal(size=m)
        group_llm = np.where(rng.uniform(size=m) < 0.8, group, rng.choice(["a", "b", "c"], m))
        return pd.DataFrame(dict(y=y, x1=x1, x2=x2, group=group, y_llm=y + 0.3 + 0.5 * rng.normal(size=m),
                                 x2_llm=0.3 + 0.8 * x2 + 0.5 * rng.normal(size=m), group_llm=group_llm,
                                 w=rng.uniform(1, 2, m)))

    data, unlabeled = one(n), one(N)
    return data, unlabeled.drop(columns=["y", "x2", "group"])


def test_formula_predicted_equals_the_array_interface_on_patsy_designs():
    data, unlabeled = frames(20)
    mapping = {"y": "y_llm", "x2": "x2_llm", "group": "group_llm"}
    model = ppinfer.ols("y ~ x1 + x2 + C(group)", data, unlabeled, predicted=mapping)
    X = patsy.dmatrix("x1 + x2 + C(group)", data, return_type="dataframe")
    predicted = data.assign(x2=data["x2_llm"], group=data["group_llm"])
    X_predicted = patsy.dmatrix("x1 + x2 + C(group)", predicted, return_type="dataframe")
    X_unlabeled = patsy.dmatrix("x1 + x2 + C(group)", unlabeled.assign(x2=unlabeled["x2_llm"],
                                                                        group=unlabeled["group_llm"]),
                                return_type="dataframe")
    reference = ppinfer.OLS(data["y"], X, data["y_llm"], X_unlabeled, unlabeled["y_llm"], X_predicted=X_predicted)
    assert model.param_names == list(X.columns)
    for options in ({}, dict(lam="matrix"), dict(method="naive")):
        pd.testing.assert_series_equal(model.fit(**options).params, reference.fit(**options).params, rtol=1e-12)
        pd.testing.assert_series_equal(model.fit(**options).bse, reference.fit(**options).bse, rtol=1e-12)


def test_formula_predicted_model_predicts_from_measured_variables():
    data, unlabeled = frames(26)
    data.loc[3, "x2_llm"] = np.nan
    mapping = {"y": "y_llm", "x2": "x2_llm", "group": "group_llm"}
    res = ppinfer.ols("y ~ x1 + x2 + C(group)", data, unlabeled, predicted=mapping, missing="drop").fit()
    new = data.drop(columns=["y", "y_llm", "x2_llm", "group_llm"]).head(5)
    X = patsy.dmatrix("x1 + x2 + C(group)", data, return_type="dataframe").head(5)
    np.testing.assert_allclose(res.predict(new).to_numpy(), X.to_numpy() @ res.params.to_numpy())


def test_formula_outcome_only_mapping_equals_yhat():
    data, unlabeled = frames(21)
    unlabeled = unlabeled.assign(x2=unlabeled["x2_llm"])  # here x2 is measured on every unit
    by_mapping = ppinfer.ols("np.log(y + 10) ~ x1 + x2", data, unlabeled, predicted={"y": "y_llm"})
    by_yhat = ppinfer.ols("np.log(y + 10) ~ x1 + x2", data, unlabeled, yhat="y_llm")
    assert "X_predicted" not in by_mapping.labeled
    pd.testing.assert_series_equal(by_mapping.fit().params, by_yhat.fit().params, rtol=1e-12)
    # the outcome's transformation is applied to the predictions
    np.testing.assert_allclose(by_mapping.labeled["yhat"].ravel(), np.log(data["y_llm"] + 10))


def test_formula_measured_outcome_with_predicted_covariate():
    data, unlabeled = frames(22)
    data = data.assign(high=(data["y"] > 1).astype(float))
    unlabeled = unlabeled.assign(high=(unlabeled["y_llm"] > 1.3).astype(float))  # measured on every unit
    model = ppinfer.logit("high ~ x1 + x2", data, unlabeled, predicted={"x2": "x2_llm"})
    np.testing.assert_array_equal(model.labeled["yhat"].ravel(), data["high"])
    np.testing.assert_array_equal(model.unlabeled["yhat_unlabeled"].ravel(), unlabeled["high"])
    np.testing.assert_allclose(model.labeled["X_predicted"][:, 2], data["x2_llm"])
    np.testing.assert_allclose(model.labeled["X"][:, 2], data["x2"])


def test_formula_predicted_with_design_columns_and_missing_rows():
    data, unlabeled = frames(23)
    data.loc[[4, 9], "x2_llm"] = np.nan
    with pytest.raises(ValueError, match="data has 2 row\\(s\\) with missing values"):
        ppinfer.ols("y ~ x1 + x2", data, unlabeled, predicted={"y": "y_llm", "x2": "x2_llm"}, weights="w")
    model = ppinfer.ols("y ~ x1 + x2", data, unlabeled, predicted={"y": "y_llm", "x2": "x2_llm"}, weights="w",
                        missing="drop")
    assert model.nobs == 198 and model.rows_dropped == (2, 0)
    kept = data.drop(index=[4, 9])
    np.testing.assert_allclose(model.labeled["weights"], kept["w"])
    np.testing.assert_allclose(model.labeled["X_predicted"][:, 2], kept["x2_llm"])


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(predicted={"x3": "x2_llm"}), ValueError, "'x3', which is not a column of data"),
        (dict(predicted={"w": "x2_llm", "y": "y_llm"}), ValueError, "'w', which the formula does not use"),
        (dict(predicted={"x2": "nope", "y": "y_llm"}), ValueError, "'nope' is not a column of data"),
        (dict(predicted={"x2": "x2", "y": "y_llm"}), ValueError, "'x2' is not a column of unlabeled"),
        (dict(predicted={"x2": "x2_llm"}), ValueError, "\\['y'\\] used by the formula are not columns of unlabeled"),
        (dict(predicted={"y": "y_llm"}), ValueError, "\\['x2'\\] used by the formula are not columns of unlabeled"),
        (dict(predicted=["x2"]), TypeError, "non-empty mapping"),
        (dict(predicted={}), TypeError, "non-empty mapping"),
        (dict(predicted={"x2": 3}), TypeError, "column names to column names"),
        (dict(), ValueError, "give yhat= .* or predicted="),
        (dict(yhat="y_llm", predicted={"y": "y_llm"}), ValueError, "either yhat= or predicted="),
    ],
)
def test_formula_predicted_errors(options, error, message):
    data, unlabeled = frames(24)
    with pytest.raises(error, match=message):
        ppinfer.ols("y ~ x1 + x2", data, unlabeled, **options)


def test_formula_predicted_level_unseen_in_data_is_named():
    data, unlabeled = frames(25)
    unlabeled.loc[0, "group_llm"] = "d"
    with pytest.raises(ValueError, match="categorical level a prediction takes"):
        ppinfer.ols("y ~ C(group)", data, unlabeled, predicted={"y": "y_llm", "group": "group_llm"})


# --------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------
def coverage_study(family: str, reps: int, n: int, N: int, seed: int, cov_type=None) -> dict:
    """Coverage of the generating coefficients and mean widths, per method, at level NOMINAL."""
    model_class = {"ols": ppinfer.OLS, "logit": ppinfer.Logit}[family]
    methods = {
        "ppi++": dict(), "ppi++ matrix": dict(lam="matrix"), "classical": dict(method="classical"),
        "naive": dict(method="naive"),
    }
    covered = {label: np.zeros(3) for label in [*methods, "x treated as measured"]}
    widths = {label: np.zeros(3) for label in covered}
    rng = np.random.default_rng(seed)
    beta = BETA[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.PPIWarning)
        for _ in range(reps):
            lab, unl = draw(rng, n, family), draw(rng, N, family)
            data = (lab["y"], lab["X"], lab["y_pred"], unl["X_predicted"], unl["y_pred"])
            model = model_class(*data, X_predicted=lab["X_predicted"])
            fits = {label: model.fit(cov_type=cov_type, **options) for label, options in methods.items()}
            # PPI as if the unlabeled rows' predicted covariates were measured
            fits["x treated as measured"] = model_class(*data).fit(cov_type=cov_type)
            for label, res in fits.items():
                interval = res.conf_int(alpha=1 - NOMINAL).to_numpy()
                covered[label] += (interval[:, 0] <= beta) & (beta <= interval[:, 1])
                widths[label] += interval[:, 1] - interval[:, 0]
    return {label: (covered[label] / reps, widths[label] / reps) for label in covered}


def tolerance(reps: int) -> float:
    return 3.5 * np.sqrt(NOMINAL * (1 - NOMINAL) / reps)


CASES = {
    # (family, reps, n, N, seed)
    "ols": ("ols", 500, 200, 2000, 101),
    "ols small": ("ols", 500, 40, 400, 102),
    "logit": ("logit", 300, 400, 4000, 103),
}


@pytest.mark.montecarlo
@pytest.mark.parametrize("case", list(CASES))
def test_predicted_covariate_coverage(case):
    family, reps, n, N, seed = CASES[case]
    study = coverage_study(family, reps, n, N, seed)
    for label in ("ppi++", "ppi++ matrix", "classical"):
        coverage, _ = study[label]
        assert np.all(np.abs(coverage - NOMINAL) <= tolerance(reps)), (label, coverage)
    # the biased, noisy covariate prediction ruins the analyses that use it as if measured
    assert study["naive"][0].min() < NOMINAL - 10 * tolerance(reps)
    assert study["x treated as measured"][0].min() < NOMINAL - 5 * tolerance(reps)
    # and PPI++ is narrower than the classical fit on the labeled rows
    assert np.all(study["ppi++"][1] < study["classical"][1])


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for case, (family, reps, n, N, seed) in CASES.items():
        reps = int(reps * scale)
        study = coverage_study(family, reps, n, N, seed)
        print(f"\n{case}: n={n}, N={N}, {reps} reps, nominal {NOMINAL}, MC tolerance +-{tolerance(reps):.3f}")
        classical_width = study["classical"][1]
        for label, (coverage, width) in study.items():
            ratio = np.round(width / classical_width, 3)
            print(f"  {label:22s} coverage {np.round(coverage, 3)}  width/classical {ratio}")
