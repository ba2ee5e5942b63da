"""Stratified (permuted-block) randomisation: variances that account for the strata.

References: Bugni, Canay & Shaikh's (2018) closed-form variance of the difference
in means under randomisation balanced within strata, computed here with NumPy;
and seeded simulations of permuted-block designs, where the simulated variance of
the estimates is the truth the estimated variances are compared with
(tolerances 3.5 Monte Carlo standard errors).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from ppinfer.treatment import TreatmentEffect, treatment_effect

Z = stats.norm.isf(0.025)
STRATUM_EFFECTS = np.array([-1.5, -0.5, 0.5, 1.5])


def permuted_blocks(rng, strata, nstrata, block):
    """Assignment by permuted blocks (``block``, a 0/1 pattern) within each stratum."""
    A = np.empty(strata.shape[0])
    for stratum in range(nstrata):
        members = np.flatnonzero(strata == stratum)
        blocks = np.concatenate([rng.permutation(block) for _ in range(len(members) // len(block) + 1)])
        A[members] = blocks[: len(members)]
    return A


def stratified_trial(rng, n=200, effect=0.5, heterogeneity=0.0, balanced_strata=False):
    """Four strata with large outcome differences between them, a covariate x and a score that
    know nothing of the strata, 1:1 permuted blocks of 4 within strata."""
    strata = np.repeat(np.arange(4), n // 4) if balanced_strata else rng.integers(0, 4, size=n)
    x = rng.normal(size=n)
    A = permuted_blocks(rng, strata, 4, np.array([1.0, 1.0, 0.0, 0.0]))
    y = STRATUM_EFFECTS[strata] * (1 + heterogeneity * A) + x + effect * A + rng.normal(size=n)
    score = x + 0.5 * rng.normal(size=n)
    return y, A, x, score, strata


def test_difference_in_means_equals_bugni_canay_shaikh():
    # with exact balance within strata (8 per arm in each) the influence rows' variance is their
    # sigma~^2(1)/pi + sigma~^2(0)/(1 - pi) + sum_z p(z) (m_1(z) - m_0(z))^2, over n, with unbiased
    # within-stratum variances sigma~^2(a) = sum_z p(z) s^2_az
    rng = np.random.default_rng(0)
    strata = np.repeat(np.arange(4), 16)
    A = permuted_blocks(rng, strata, 4, np.array([1.0, 1.0, 0.0, 0.0]))
    y = STRATUM_EFFECTS[strata] * (1 + 0.8 * A) + rng.normal(size=64)
    n = len(y)
    within = {a: sum(np.mean(strata == z) * np.var(y[(A == a) & (strata == z)], ddof=1) for z in range(4))
              for a in (0, 1)}
    shift = {a: [y[(A == a) & (strata == z)].mean() - y[A == a].mean() for z in range(4)] for a in (0, 1)}
    gaps = [shift[1][z] - shift[0][z] for z in range(4)]
    bugni = (within[1] / 0.5 + within[0] / 0.5 + sum(np.mean(strata == z) * g**2 for z, g in enumerate(gaps))) / n
    res = TreatmentEffect(y, A, strata=strata).fit(method="dm", cov_type="HC0")
    assert res.params["ate"] == pytest.approx(y[A == 1].mean() - y[A == 0].mean(), abs=1e-12)
    assert res.bse["ate"] ** 2 == pytest.approx(bugni, rel=1e-12)
    simple = TreatmentEffect(y, A).fit(method="dm", cov_type="HC0")
    assert simple.bse["ate"] > 1.5 * res.bse["ate"]  # the simple-randomisation variance counts the strata
    assert "stratified by strata (4)" in res.summary().as_text()


def test_strata_through_the_formula_and_bad_strata():
    rng = np.random.default_rng(1)
    y, A, x, score, strata = stratified_trial(rng)
    data = pd.DataFrame({"y": y, "arm": A.astype(int), "x": x, "site": np.array(["a", "b", "c", "d"])[strata]})
    formula = treatment_effect("y ~ arm + x", data=data, strata="site").fit(method="ancova")
    arrays = TreatmentEffect(y, A, X=x, strata=data["site"].to_numpy()).fit(method="ancova")
    assert formula.bse["ate"] == pytest.approx(arrays.bse["ate"], rel=1e-12)
    assert "stratified by site (4)" in formula.summary().as_text()
    lonely = strata.copy()
    lonely[np.flatnonzero(A == 1)[0]] = 7  # one treated unit alone in its stratum
    with pytest.raises(ValueError, match="stratum 7 has 0 unit\\(s\\) in arm 'control'"):
        TreatmentEffect(y, A, strata=lonely).fit()
    with pytest.raises(ValueError, match="strata has 1 row"):
        TreatmentEffect(y, A, strata=np.where(np.arange(len(y)) == 3, None, strata))


# -- Monte Carlo ----------------------------------------------------------------------------------
#: 3.5 MC SE = 0.20 on a variance ratio: the simple variances of dm, ANCOVA and PPCT, which ignore
#: the strata, are 1.8-2.8 times the simulated one (with 800 replications as with these 600)
REPS = 600
CONTINUOUS_METHODS = ("dm", "ancova", "ppct", "anhecova")


@functools.cache
def continuous_replications(seed=501):
    """Estimates and standard errors with and without the strata, per method.

    ``anhecova`` is ``lin`` with the stratum indicators among its covariates (arm-specific
    stratum effects)."""
    rng = np.random.default_rng(seed)
    draws = {(m, s): np.empty((REPS, 2)) for m in CONTINUOUS_METHODS for s in (False, True)}
    for r in range(REPS):
        y, A, x, score, strata = stratified_trial(rng, heterogeneity=0.5)
        dummies = (strata[:, None] == np.arange(1, 4)).astype(float)
        models = {
            stratified: (TreatmentEffect(y, A, X=x, prognostic=score, strata=strata if stratified else None),
                         TreatmentEffect(y, A, X=np.column_stack([x, dummies]), strata=strata if stratified else None))
            for stratified in (False, True)
        }
        for stratified, (te, anhecova) in models.items():
            for method in CONTINUOUS_METHODS:
                res = anhecova.fit(method="lin") if method == "anhecova" else te.fit(method=method)
                draws[method, stratified][r] = res.params.iloc[0], res.bse.iloc[0]
    return draws


def variance_ratio(draws):
    """Mean estimated variance over the simulated variance of the estimates."""
    return np.mean(draws[:, 1] ** 2) / np.var(draws[:, 0], ddof=1)


@pytest.mark.montecarlo
def test_stratified_variance_is_accurate_where_the_simple_one_is_conservative():
    draws = continuous_replications()
    tolerance = 3.5 * np.sqrt(2.0 / REPS)  # Monte Carlo SE of a variance ratio, about sqrt(2 / reps)
    coverage_tolerance = 3.5 * np.sqrt(0.05 * 0.95 / REPS)
    for method in CONTINUOUS_METHODS:
        accurate = variance_ratio(draws[method, True])
        assert abs(accurate - 1.0) <= tolerance, (method, accurate)
        missed = np.mean(np.abs(draws[method, True][:, 0] - 0.5) > Z * draws[method, True][:, 1])
        assert abs(missed - 0.05) <= coverage_tolerance, (method, missed)
        simple = variance_ratio(draws[method, False])
        if method == "anhecova":
            # arm-specific stratum effects in the working model: the simple variance is right too
            assert abs(simple - 1.0) <= tolerance, (method, simple)
        else:
            assert simple > 1.0 + tolerance, (method, simple)


@functools.cache
def missing_outcome_replications(seed=503, reps=500):
    """Half the outcomes missing at random: per-arm PPI++ means (no covariates: MCAR within arm)
    and with x (fitted observation probabilities), with and without the strata."""
    rng = np.random.default_rng(seed)
    draws = {key: np.empty((reps, 2)) for key in ("mcar", "mcar stratified", "mar stratified")}
    for r in range(reps):
        y, A, x, score, strata = stratified_trial(rng, n=300, heterogeneity=0.5)
        y = np.where(rng.random(len(y)) < 0.5, y, np.nan)
        fits = {
            "mcar": TreatmentEffect(y, A, prognostic=score).fit(),
            "mcar stratified": TreatmentEffect(y, A, prognostic=score, strata=strata).fit(),
            "mar stratified": TreatmentEffect(y, A, X=x, prognostic=score, strata=strata).fit(),
        }
        for key, res in fits.items():
            draws[key][r] = res.params.iloc[0], res.bse.iloc[0]
    return draws


@pytest.mark.montecarlo
def test_stratified_variance_with_missing_outcomes():
    draws = missing_outcome_replications()
    reps = len(draws["mcar"])
    tolerance = 3.5 * np.sqrt(2.0 / reps)
    assert variance_ratio(draws["mcar"]) > 1.0 + tolerance
    for key in ("mcar stratified", "mar stratified"):
        assert abs(variance_ratio(draws[key]) - 1.0) <= tolerance, key
        missed = np.mean(np.abs(draws[key][:, 0] - 0.5) > Z * draws[key][:, 1])
        assert abs(missed - 0.05) <= 3.5 * np.sqrt(0.05 * 0.95 / reps), (key, missed)


BINARY_METHODS = ("dm", "ancova", "ppct")


@functools.cache
def binary_replications(seed=502, reps=500):
    """Logistic outcomes with strong stratum effects, 2:1 permuted blocks of 6 within 3 strata;
    the working model and the score ignore the strata."""
    rng = np.random.default_rng(seed)
    draws = {(m, s): np.empty((reps, 2)) for m in BINARY_METHODS for s in (False, True)}
    effects = np.array([-1.5, 0.0, 1.5])
    for r in range(reps):
        n = 300
        strata = rng.integers(0, 3, size=n)
        x = rng.normal(size=n)
        A = permuted_blocks(rng, strata, 3, np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))
        y = rng.binomial(1, expit(-0.5 + effects[strata] + 0.7 * x - 0.5 * A)).astype(float)
        score = expit(-0.5 + 0.7 * x)
        for stratified in (False, True):
            te = TreatmentEffect(y, A, X=x, prognostic=score, strata=strata if stratified else None)
            for method in BINARY_METHODS:
                res = te.fit(method=method, contrast="logor")
                draws[method, stratified][r] = res.params.iloc[0], res.bse.iloc[0]
    return draws


@functools.cache
def binary_truth():
    """The marginal log odds ratio of binary_replications, by Gauss-Hermite quadrature over x."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    effects = np.array([-1.5, 0.0, 1.5])
    risks = [np.mean([weights @ expit(-0.5 + e + 0.7 * nodes - 0.5 * arm) for e in effects]) for arm in (0, 1)]
    return np.log(risks[1] / (1 - risks[1])) - np.log(risks[0] / (1 - risks[0]))


@pytest.mark.montecarlo
def test_stratified_variance_for_binary_endpoints():
    draws = binary_replications()
    reps = len(draws["dm", True])
    tolerance = 3.5 * np.sqrt(2.0 / reps)
    for method in BINARY_METHODS:
        assert abs(variance_ratio(draws[method, True]) - 1.0) <= tolerance, method
        assert variance_ratio(draws[method, False]) > 1.0 + tolerance, method
        missed = np.mean(np.abs(draws[method, True][:, 0] - binary_truth()) > Z * draws[method, True][:, 1])
        assert abs(missed - 0.05) <= 3.5 * np.sqrt(0.05 * 0.95 / reps), (method, missed)


if __name__ == "__main__":
    # every figure the Monte Carlo tests check: python tests/test_trials_strata.py
    for title, draws in (("continuous, 1:1 blocks of 4 in 4 strata, effect 0.5", continuous_replications()),
                         ("binary, 2:1 blocks of 6 in 3 strata, log odds ratio", binary_replications())):
        truth = 0.5 if title.startswith("continuous") else binary_truth()
        reps = len(next(iter(draws.values())))
        print(f"{title} ({reps} reps; MC SE of a variance ratio ~ {np.sqrt(2 / reps):.3f}, of a rate "
              f"{np.sqrt(0.0475 / reps):.4f})")
        for method in sorted({m for m, _ in draws}, key=list(dict.fromkeys(m for m, _ in draws)).index):
            simple, stratified = draws[method, False], draws[method, True]
            missed = np.mean(np.abs(stratified[:, 0] - truth) > Z * stratified[:, 1])
            print(f"  {method:9s} estimated / simulated variance: simple {variance_ratio(simple):.3f}, "
                  f"stratified {variance_ratio(stratified):.3f}; stratified miss rate {missed:.4f}")
    print("missing outcomes (half at random), PPI++ (500 reps): estimated / simulated variance and miss rate")
    for key, values in missing_outcome_replications().items():
        missed = np.mean(np.abs(values[:, 0] - 0.5) > Z * values[:, 1])
        print(f"  {key:16s} {variance_ratio(values):.3f}  miss rate {missed:.4f}")
