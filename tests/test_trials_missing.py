"""Outcomes missing for some units: completely at random within arm, or at random given covariates.

References: the inverse-probability-weighted (Hajek) and augmented estimators and
their variances written out with NumPy, statsmodels' ``Logit`` for the fitted
observation probabilities (with its per-row scores and Hessian for the stacked
variance), and seeded simulations in which the outcomes' missingness depends on a
covariate that drives the outcome (tolerances 3.5 Monte Carlo standard errors).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from ppinfer import PPIWarning
from ppinfer.treatment import TreatmentEffect, treatment_effect

Z = stats.norm.isf(0.025)


def mar_trial(rng, n=400, effect=0.5, allocation=0.5):
    """Outcomes linear in two covariates; whether an outcome is observed depends on x1, in opposite
    directions in the two arms (missing at random given x1 and the arm): complete cases
    over-represent large x1 among the treated and small x1 among controls. The score is a biased
    prediction of the outcome."""
    X = rng.normal(size=(n, 2))
    n1 = int(round(n * allocation))
    A = rng.permutation(np.r_[np.ones(n1), np.zeros(n - n1)])
    y = 1.0 + X[:, 0] + 0.5 * X[:, 1] + effect * A + rng.normal(size=n)
    probability = expit(0.8 + 0.6 * X[:, 0] * (2 * A - 1))
    observed = rng.random(n) < probability
    score = 0.3 + 0.9 * (X[:, 0] + 0.5 * X[:, 1]) + 0.3 * rng.normal(size=n)
    return np.where(observed, y, np.nan), A, X, score, probability


def hajek_rows(v, weight, in_arm, n):
    """Hajek mean of v over an arm (weights 0 off the observed units) and its rows over all n units."""
    total = weight[in_arm].sum()
    mean = (weight * v)[in_arm].sum() / total
    return mean, np.where(in_arm, n * weight * (v - mean) / total, 0.0)


def test_covariates_are_used_when_outcomes_are_missing():
    # the trust issue: "y ~ A + age" and "y ~ A" gave the same estimate with missing outcomes
    rng = np.random.default_rng(0)
    y, A, X, score, _ = mar_trial(rng)
    data = pd.DataFrame({"y": y, "A": A.astype(int), "age": X[:, 0], "score": score})
    with_age = treatment_effect("y ~ A + age", data=data, prognostic="score")
    without = treatment_effect("y ~ A", data=data, prognostic="score")
    assert with_age.missingness == "mar" and without.missingness == "mcar"
    assert with_age.fit().params["ate"] != pytest.approx(without.fit().params["ate"], abs=1e-3)
    assert "logistic on X by arm" in with_age.fit().summary().as_text()


def test_known_probabilities_give_ipw_and_aipw():
    rng = np.random.default_rng(1)
    y, A, X, score, probability = mar_trial(rng)
    observed = ~np.isnan(y)
    te = TreatmentEffect(y, A, prognostic=score, observed_prob=probability)
    assert te.methods == ("dm", "ipw", "aipw", "ppi++", "naive")
    n = len(y)
    weight = np.where(observed, 1 / probability, 0.0)
    values = np.nan_to_num(y)
    parts = {}
    for arm in (0, 1):
        in_arm = A == arm
        ipw, ipw_rows = hajek_rows(values, weight, in_arm, n)
        weighted_score, score_rows = hajek_rows(score, weight, in_arm, n)
        everyone = score[in_arm].mean()
        everyone_rows = np.where(in_arm, n / in_arm.sum() * (score - everyone), 0.0)
        parts[arm] = {
            "ipw": (ipw, ipw_rows),
            # AIPW = IPW of y plus the score's mean over the arm minus its IPW mean
            "aipw": (ipw - (weighted_score - everyone), ipw_rows - (score_rows - everyone_rows)),
        }
    for method in ("ipw", "aipw"):
        res = te.fit(method=method)
        estimate = parts[1][method][0] - parts[0][method][0]
        rows = parts[1][method][1] - parts[0][method][1]
        assert res.params["ate"] == pytest.approx(estimate, abs=1e-12), method
        assert res.bse["ate"] ** 2 == pytest.approx(np.sum(rows**2) / n**2, rel=1e-10), method
    # the complete-case difference ignores the weights
    dm = te.fit(method="dm")
    assert dm.params["ate"] == pytest.approx(np.nanmean(y[A == 1]) - np.nanmean(y[A == 0]), abs=1e-12)
    assert "biased when missingness depends" in dm.summary().as_text()


def test_fitted_probabilities_enter_the_variance():
    rng = np.random.default_rng(2)
    y, A, X, score, _ = mar_trial(rng, allocation=0.6)
    observed = ~np.isnan(y)
    n = len(y)
    # one logistic regression per arm: arm indicators and their products with X
    with_intercept = np.column_stack([np.ones(n), X])
    design = np.hstack([(A == 0)[:, None] * with_intercept, (A == 1)[:, None] * with_intercept])
    logit = sm.Logit(observed.astype(float), design).fit(disp=0)
    probability = logit.predict(design)
    # the observation model's influence rows H^-1 x_i (R_i - pi_i), from statsmodels' scores and Hessian
    influence = logit.model.score_obs(logit.params) @ np.linalg.inv(-logit.model.hessian(logit.params) / n)
    te = TreatmentEffect(y, A, X=X, prognostic=score)
    np.testing.assert_allclose(te.observation_probability, probability, rtol=1e-8)
    weight = np.where(observed, 1 / probability, 0.0)
    values = np.nan_to_num(y)
    rows, estimates = [], []
    for arm in (0, 1):
        in_arm = A == arm
        mean, arm_rows = hajek_rows(values, weight, in_arm, n)
        # d/dg of the arm's weighted estimating equation: -mean_arm w (1 - pi)(y - b) x
        slope = (design * (weight * (1 - probability) * (values - mean))[:, None])[in_arm].sum(axis=0) / in_arm.sum()
        rows.append(arm_rows - influence @ slope / weight[in_arm].mean())
        estimates.append(mean)
    res = te.fit(method="ipw")
    assert res.params["ate"] == pytest.approx(estimates[1] - estimates[0], abs=1e-8)
    assert res.bse["ate"] ** 2 == pytest.approx(np.sum((rows[1] - rows[0]) ** 2) / n**2, rel=1e-6)
    # ignoring the estimation of the probabilities gives a different (here larger) variance
    known = TreatmentEffect(y, A, prognostic=score, observed_prob=probability).fit(method="ipw")
    assert known.params["ate"] == pytest.approx(res.params["ate"], abs=1e-8)
    assert known.bse["ate"] > res.bse["ate"]


def test_ppi_plus_plus_tunes_each_arm():
    rng = np.random.default_rng(3)
    y, A, X, score, probability = mar_trial(rng)
    te = TreatmentEffect(y, A, prognostic=score, observed_prob=probability)
    tuned = te.fit(method="ppi++")
    assert list(tuned.lam.index) == ["control", "treated"]
    assert np.all((tuned.lam >= 0) & (tuned.lam <= 1))
    # lambda 0 is IPW, 1 AIPW; the tuned one is at least as precise as either
    assert tuned.bse["ate"] <= min(te.fit(method="ipw").bse["ate"], te.fit(method="aipw").bse["ate"]) * (1 + 1e-10)
    fixed = te.fit(method="ppi++", lam=1.0)
    assert fixed.params["ate"] == pytest.approx(te.fit(method="aipw").params["ate"], abs=1e-12)


def test_missing_design_errors():
    rng = np.random.default_rng(4)
    y, A, X, score, probability = mar_trial(rng)
    complete = np.where(np.isnan(y), 0.0, y)
    with pytest.raises(ValueError, match="observed_prob is the probability that a unit's outcome is observed"):
        TreatmentEffect(complete, A, prognostic=score, observed_prob=probability)
    with pytest.raises(ValueError, match="observed_prob must lie in \\(0, 1\\]"):
        TreatmentEffect(y, A, prognostic=score, observed_prob=np.where(A == 1, 0.0, probability))
    te = TreatmentEffect(y, A, X=X, prognostic=score)
    with pytest.raises(ValueError, match="cov_type='HC2': the missing-outcome estimators"):
        te.fit(cov_type="HC2")
    with pytest.raises(ValueError, match="use_t=True applies to complete-outcome designs"):
        te.fit(use_t=True)
    with pytest.raises(ValueError, match="method='ppi' is not available.*other missing-outcome design"):
        te.fit(method="ppi")
    all_treated_observed = np.where(A == 1, complete, y)
    with pytest.raises(ValueError, match="every outcome of arm\\(s\\) \\['treated'\\] is observed"):
        TreatmentEffect(all_treated_observed, A, X=X, prognostic=score).fit()
    small = np.where(np.isnan(y), probability, 0.01)
    with pytest.warns(PPIWarning, match="observation probabilities as small as 0.01"):
        TreatmentEffect(y, A, prognostic=score, observed_prob=small)


# -- Monte Carlo ----------------------------------------------------------------------------------
REPS = 600
MAR_METHODS = ("dm", "naive", "ipw", "aipw", "ppi++")


@functools.cache
def mar_replications(seed=601):
    rng = np.random.default_rng(seed)
    draws = {}
    for r in range(REPS):
        y, A, X, score, probability = mar_trial(rng, allocation=2 / 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PPIWarning)
            fitted = TreatmentEffect(y, A, X=X, prognostic=score)
            known = TreatmentEffect(y, A, prognostic=score, observed_prob=probability)
            fits = {f"{m} (fitted prob.)": fitted.fit(method=m) for m in MAR_METHODS}
            fits.update({f"{m} (known prob.)": known.fit(method=m) for m in ("ipw", "aipw", "ppi++")})
        for name, res in fits.items():
            draws.setdefault(name, np.empty((REPS, 2)))[r] = res.params["ate"], res.bse["ate"]
    return draws


@pytest.mark.montecarlo
def test_missing_at_random_coverage():
    draws = mar_replications()
    tolerance = 3.5 * np.sqrt(0.05 * 0.95 / REPS)
    for name, values in draws.items():
        missed = np.mean(np.abs(values[:, 0] - 0.5) > Z * values[:, 1])
        if name.startswith(("dm", "naive")):
            # complete cases (and pooling predictions) are biased when missingness depends on x1
            assert missed > 0.05 + tolerance, (name, missed)
        else:
            assert abs(missed - 0.05) <= tolerance, (name, missed)
    # the score helps: PPI++ is more precise than IPW with known probabilities, and no less precise
    # with fitted ones (fitting the probabilities on x already recovers part of what the score
    # adds); paired variance ratios and their delta-method Monte Carlo SE
    for kind in ("fitted", "known"):
        a = draws[f"ipw ({kind} prob.)"][:, 0] - draws[f"ipw ({kind} prob.)"][:, 0].mean()
        b = draws[f"ppi++ ({kind} prob.)"][:, 0] - draws[f"ppi++ ({kind} prob.)"][:, 0].mean()
        ratio = np.mean(a**2) / np.mean(b**2)
        se = ratio * np.std(a**2 / np.mean(a**2) - b**2 / np.mean(b**2), ddof=1) / np.sqrt(REPS)
        assert ratio > (1 + 3.5 * se if kind == "known" else 1 - 3.5 * se), (kind, ratio, se)


if __name__ == "__main__":
    # every figure the Monte Carlo test checks: python tests/test_trials_missing.py
    print(f"missing at random given x1 and arm, 2:1, n = 400, effect 0.5 ({REPS} reps, "
          f"MC SE {np.sqrt(0.0475 / REPS):.4f})")
    for name, values in mar_replications().items():
        missed = np.mean(np.abs(values[:, 0] - 0.5) > Z * values[:, 1])
        print(f"  {name:22s} miss rate {missed:.4f}  bias {values[:, 0].mean() - 0.5:+.4f}  sd {values[:, 0].std():.4f}"
              f"  mean se {values[:, 1].mean():.4f}")
    draws = mar_replications()
    for kind in ("fitted", "known"):
        print(f"  Var_ipw / Var_ppi++ ({kind} prob.): "
              f"{np.var(draws[f'ipw ({kind} prob.)'][:, 0]) / np.var(draws[f'ppi++ ({kind} prob.)'][:, 0]):.3f}")
