"""Tests of ppinfer.multiplicity: adjusted p-values and simultaneous intervals.

References: statsmodels' ``multipletests`` (Bonferroni, Holm); Dunnett's (1964)
published critical values (two decimals) for infinite and 20 degrees of freedom;
Sidak's closed form for independent estimates; and, for equicorrelated estimates,
the one-dimensional integral ``P(max |Z_k| <= c) = int phi(w) prod_k [Phi((c - sqrt(r) w) /
sqrt(1 - r)) - Phi((-c - sqrt(r) w) / sqrt(1 - r))] dw`` evaluated with scipy's quad.
The simultaneous coverage of trial contrasts is checked by simulation in
tests/test_trials_arms.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests

from ppinfer.multiplicity import (
    adjusted_pvalues,
    bonferroni,
    holm,
    max_z_coverage,
    max_z_critical_value,
    max_z_pvalues,
    simultaneous_conf_int,
)
from ppinfer.treatment import TreatmentEffect


def equicorrelated(count: int, rho: float) -> np.ndarray:
    return np.full((count, count), rho) + (1.0 - rho) * np.eye(count)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_and_bonferroni_equal_statsmodels(seed):
    rng = np.random.default_rng(seed)
    pvalues = np.r_[rng.uniform(0, 0.1, 5), rng.uniform(0, 1, 5), 0.02, 0.02]  # with a tie
    for method, ours in (("holm", holm), ("bonferroni", bonferroni)):
        np.testing.assert_allclose(ours(pvalues), multipletests(pvalues, method=method)[1], rtol=1e-12)


# Dunnett (1964), Biometrics 20, 482-491: critical values for k arms against one control
# with equal arm sizes (correlation 1/2), two decimals.
DUNNETT_TWO_SIDED = {2: 2.21, 3: 2.35, 4: 2.44, 5: 2.51}
DUNNETT_ONE_SIDED = {2: 1.92, 3: 2.06, 4: 2.16, 5: 2.23}


@pytest.mark.parametrize("count", [2, 3, 4, 5])
def test_critical_values_equal_dunnetts_tables(count):
    R = equicorrelated(count, 0.5)
    assert max_z_critical_value(R, alpha=0.05) == pytest.approx(DUNNETT_TWO_SIDED[count], abs=0.006)
    assert max_z_critical_value(R, alpha=0.05, alternative="larger") == pytest.approx(
        DUNNETT_ONE_SIDED[count], abs=0.006
    )


def test_t_critical_value_equals_dunnetts_table():
    # Dunnett (1964), two-sided 5%, 20 degrees of freedom, 3 arms against control
    assert max_z_critical_value(equicorrelated(3, 0.5), alpha=0.05, df=20) == pytest.approx(2.54, abs=0.006)


def test_independent_estimates_give_sidak():
    for count in (2, 4):
        sidak = stats.norm.isf((1 - 0.95 ** (1 / count)) / 2)
        assert max_z_critical_value(np.eye(count), alpha=0.05) == pytest.approx(sidak, abs=2e-4)
    assert max_z_critical_value(np.eye(1), alpha=0.1) == pytest.approx(stats.norm.isf(0.05), abs=1e-12)


@pytest.mark.parametrize("rho, bound", [(0.3, 2.4), (0.7, 2.1)])
def test_coverage_equals_one_dimensional_integral(rho, bound):
    count = 4

    def integrand(w):
        centre = np.sqrt(rho) * w
        scale = np.sqrt(1 - rho)
        inside = stats.norm.cdf((bound - centre) / scale) - stats.norm.cdf((-bound - centre) / scale)
        return stats.norm.pdf(w) * inside**count

    reference = integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-12)[0]
    assert max_z_coverage(bound, equicorrelated(count, rho)) == pytest.approx(reference, abs=3e-5)


def test_max_z_pvalues_are_bounded_and_match_the_critical_value():
    R = equicorrelated(3, 0.5)
    critical = max_z_critical_value(R, alpha=0.05)
    # at the critical value the adjusted p-value is alpha
    assert max_z_pvalues([critical, 0.0, 0.0], R)[0] == pytest.approx(0.05, abs=2e-4)
    z = np.array([2.3, 0.5, -1.0])
    adjusted = max_z_pvalues(z, R)
    raw = 2 * stats.norm.sf(np.abs(z))
    assert np.all(adjusted >= raw) and np.all(adjusted <= np.minimum(1, 3 * raw))
    # one number: the ordinary p-value
    assert max_z_pvalues([1.5], np.eye(1))[0] == pytest.approx(2 * stats.norm.sf(1.5), rel=1e-12)
    # one-sided: only the direction of the alternative counts
    larger = max_z_pvalues(z, R, alternative="larger")
    assert larger[2] > larger[1] > larger[0]


def three_arm_fit(seed=0, effect=0.5):
    rng = np.random.default_rng(seed)
    arm = np.repeat(["placebo", "low", "high"], [60, 50, 40])
    y = rng.normal(size=150) + effect * (arm == "high")
    return TreatmentEffect(y, arm, control="placebo").fit(method="dm")


def test_results_adjustments_equal_hand_computations():
    res = three_arm_fit()
    assert res.param_names == ["high - placebo", "low - placebo"]
    z = (res.params / res.bse).to_numpy()
    R = res.cov_params().to_numpy() / np.outer(res.bse, res.bse)
    raw = 2 * stats.norm.sf(np.abs(z))
    np.testing.assert_allclose(adjusted_pvalues(res, "holm"), multipletests(raw, method="holm")[1], rtol=1e-10)
    np.testing.assert_allclose(adjusted_pvalues(res, "bonferroni"), np.minimum(1, 2 * raw), rtol=1e-10)
    np.testing.assert_allclose(res.adjusted_pvalues("max-z"), max_z_pvalues(z, R), rtol=1e-10)
    intervals = res.simultaneous_conf_int(alpha=0.1)
    critical = max_z_critical_value(R, alpha=0.1)
    assert intervals.attrs["critical_value"] == pytest.approx(critical)
    np.testing.assert_allclose(intervals["lower"], res.params - critical * res.bse, rtol=1e-12)
    np.testing.assert_allclose(intervals["upper"], res.params + critical * res.bse, rtol=1e-12)
    bonferroni_intervals = simultaneous_conf_int(res, alpha=0.1, method="bonferroni")
    np.testing.assert_allclose(bonferroni_intervals["upper"], res.params + stats.norm.isf(0.025) * res.bse)
    one_sided = simultaneous_conf_int(res, alpha=0.1, alternative="larger")
    assert np.all(np.isinf(one_sided["upper"]))
    critical_one_sided = max_z_critical_value(R, alpha=0.1, alternative="larger")
    np.testing.assert_allclose(one_sided["lower"], res.params - critical_one_sided * res.bse, rtol=1e-12)


def test_ratio_contrasts_are_tested_against_one():
    rng = np.random.default_rng(3)
    arm = np.repeat([0, 1, 2], 80)
    y = rng.binomial(1, 0.3, size=240)
    res = TreatmentEffect(y, arm, control=0).fit(method="dm", contrast="rr")
    z = ((res.params - 1.0) / res.bse).to_numpy()
    np.testing.assert_allclose(res.adjusted_pvalues("bonferroni"), np.minimum(1, 4 * stats.norm.sf(np.abs(z))))


def test_t_based_fits_use_the_t_distribution():
    rng = np.random.default_rng(4)
    arm = np.repeat(["a", "b", "c"], 8)
    res = TreatmentEffect(rng.normal(size=24), arm, control="a").fit(method="dm", use_t=True)
    df = float(res.df.min())
    R = res.cov_params().to_numpy() / np.outer(res.bse, res.bse)
    critical = max_z_critical_value(R, alpha=0.05, df=df)
    assert critical > max_z_critical_value(R, alpha=0.05)
    np.testing.assert_allclose(res.simultaneous_conf_int()["upper"], res.params + critical * res.bse)


def test_bad_input():
    res = three_arm_fit()
    with pytest.raises(ValueError, match="step-down test with no simultaneous intervals"):
        simultaneous_conf_int(res, method="holm")
    with pytest.raises(ValueError, match="method='sidak' is not valid"):
        adjusted_pvalues(res, method="sidak")
    with pytest.raises(ValueError, match="alpha must lie strictly between 0 and 1"):
        simultaneous_conf_int(res, alpha=1.5)
    with pytest.raises(ValueError, match="pvalues must lie in"):
        holm([0.2, 1.2])
    with pytest.raises(ValueError, match="one-dimensional array of p-values"):
        bonferroni([[0.1, 0.2]])
    with pytest.raises(ValueError, match="positive, finite variances"):
        simultaneous_conf_int(
            type("Fit", (), {"params": pd.Series([1.0, 2.0]), "bse": pd.Series([1.0, 0.0]), "df": None,
                             "cov_params": lambda self: np.diag([1.0, 0.0])})()
        )
