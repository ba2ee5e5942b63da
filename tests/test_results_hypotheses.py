"""Joint and single linear hypotheses on fitted models: ``res.wald_test``, ``f_test``, ``t_test``.

References are statsmodels' tests of the same classical fits (``cov_type="HC0"``, with and
without t reference distributions), which use the same estimates and covariance: equal to 1e-8.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import ppinfer


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(17)
    size = 900
    frame = pd.DataFrame({
        "x1": rng.normal(size=size),
        "x2": rng.normal(size=size),
        "g": rng.choice(["a", "b", "c"], size),
    })
    frame["y"] = 1 + frame.x1 + frame.x1 + 0.3 * frame.x2 + (frame.g == "b") + rng.normal(size=size)
    frame["pred"] = frame.y + rng.normal(0.4, 0.8, size)
    return frame.iloc[:300].copy(), frame.iloc[300:].copy()


FORMULA = "y ~ x1 + x2 + C(g)"
CONSTRAINTS = ["x1 = 2 * x2, C(g)[T.c] = 0", "x1 - x2 = 1", "C(g)[T.b] + C(g)[T.c] = 1"]


@pytest.mark.parametrize("use_t", [False, True])
@pytest.mark.parametrize("constraints", CONSTRAINTS)
def test_wald_and_f_tests_equal_statsmodels_on_classical_fits(frames, constraints, use_t):
    labeled, unlabeled = frames
    res = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="pred").fit(method="classical", cov_type="HC0", use_t=use_t)
    reference = smf.ols(FORMULA, labeled).fit(cov_type="HC0", use_t=use_t)
    if use_t:
        # statsmodels' df_resid is n - p, ppinfer's classical df too
        assert res.df_resid == pytest.approx(reference.df_resid)
    ours = res.wald_test(constraints)
    theirs = reference.wald_test(constraints, scalar=True, use_f=use_t)
    assert ours.statistic == pytest.approx(float(theirs.statistic), rel=1e-8)
    assert ours.pvalue == pytest.approx(float(theirs.pvalue), rel=1e-8)
    if use_t:
        f = res.f_test(constraints)
        f_reference = reference.f_test(constraints)
        assert f.statistic == pytest.approx(float(f_reference.fvalue), rel=1e-8)
        assert f.df_denom == pytest.approx(f_reference.df_denom)


@pytest.mark.parametrize("use_t", [False, True])
def test_t_test_equals_statsmodels_on_a_classical_fit(frames, use_t):
    labeled, unlabeled = frames
    res = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="pred").fit(method="classical", cov_type="HC0", use_t=use_t)
    reference = smf.ols(FORMULA, labeled).fit(cov_type="HC0", use_t=use_t)
    ours = res.t_test("x1 - x2 = 1").summary_frame()
    theirs = reference.t_test("x1 - x2 = 1").summary_frame()
    np.testing.assert_allclose(ours.iloc[0, :4].to_numpy(dtype=float), theirs.iloc[0, :4].to_numpy(dtype=float),
                               rtol=1e-8)
    np.testing.assert_allclose(ours.iloc[0, 4:6].to_numpy(dtype=float), theirs.iloc[0, 4:6].to_numpy(dtype=float),
                               rtol=1e-8)


def test_tests_of_a_ppi_fit_use_its_covariance_and_degrees_of_freedom(frames):
    labeled, unlabeled = frames
    res = ppinfer.ols(FORMULA, labeled, unlabeled, yhat="pred").fit()
    R = np.zeros((1, len(res.params)))
    R[0, res.param_names.index("x1")], R[0, res.param_names.index("x2")] = 1.0, -1.0
    by_hand = (R @ res.params.to_numpy() - 1.0) / np.sqrt(R @ res.cov_params().to_numpy() @ R.T).ravel()
    table = res.t_test("x1 - x2 = 1").summary_frame()
    assert table.iloc[0]["t"] == pytest.approx(float(by_hand[0]), rel=1e-10)
    # the smallest df of the two parameters involved
    expected_df = min(res.df["x1"], res.df["x2"])
    from scipy import stats

    assert table.iloc[0]["P>|t|"] == pytest.approx(2 * stats.t.sf(abs(by_hand[0]), expected_df), rel=1e-8)
    # a mapping: x1 = 1 and x2 = 0.3
    joint = res.wald_test({"x1": 1.0, "x2": 0.3})
    assert joint.df_num == 2


def test_quantile_covariances_between_levels_are_not_estimated():
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    model = ppinfer.Quantile(y, y + rng.normal(size=300), rng.normal(size=3000) * 1.4, q=[0.25, 0.75])
    res = model.fit()
    with pytest.raises(ValueError):
        res.wald_test("q=0.25 = q=0.75")
