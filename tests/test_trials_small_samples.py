"""Small trials: t reference distributions (``fit(use_t=True)``).

References: scipy's Welch t-test (``ttest_ind(equal_var=False)``) for the difference
in means, statsmodels' OLS with ``use_t=True`` (t with ``n - p`` degrees of freedom
and the same HC covariance) for ANCOVA, and a seeded simulation of a twelve-patient
trial (tolerances 3.5 Monte Carlo standard errors).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from ppinfer.treatment import TreatmentEffect


def small_trial(rng, n_per_arm=6):
    A = np.repeat([0.0, 1.0], n_per_arm)
    x = rng.normal(size=2 * n_per_arm)
    y = 0.5 * x + 0.4 * A + np.where(A == 1, 2.0, 0.7) * rng.normal(size=2 * n_per_arm)
    return y, A, x


def test_difference_in_means_with_t_is_welchs_test():
    rng = np.random.default_rng(0)
    y, A, _ = small_trial(rng, 9)
    welch = stats.ttest_ind(y[A == 1], y[A == 0], equal_var=False)
    res = TreatmentEffect(y, A).fit(method="dm", use_t=True)
    assert res.pvalues["ate"] == pytest.approx(welch.pvalue, rel=1e-10)
    interval = welch.confidence_interval(0.9)
    np.testing.assert_allclose(res.conf_int(alpha=0.1).loc["ate"], [interval.low, interval.high], rtol=1e-10)
    assert res.df["ate"] == pytest.approx(welch.df, rel=1e-10)
    assert "t distribution" in res.summary().as_text()


def test_ancova_with_t_equals_statsmodels():
    rng = np.random.default_rng(1)
    y, A, x = small_trial(rng, 10)
    reference = sm.OLS(y, np.column_stack([np.ones_like(y), A, x])).fit(cov_type="HC2", use_t=True)
    res = TreatmentEffect(y, A, X=x).fit(method="ancova", use_t=True)
    assert res.df["ate"] == reference.df_resid
    np.testing.assert_allclose(res.conf_int().loc["ate"], reference.conf_int()[1], rtol=1e-10)
    assert res.pvalues["ate"] == pytest.approx(reference.pvalues[1], rel=1e-8)
    with pytest.raises(TypeError, match="use_t must be True or False"):
        TreatmentEffect(y, A, X=x).fit(use_t="yes")


REPS = 1500


@functools.cache
def small_trial_replications(seed=701):
    rng = np.random.default_rng(seed)
    misses = {"z": 0, "t": 0}
    for _ in range(REPS):
        y, A, _ = small_trial(rng)
        te = TreatmentEffect(y, A)
        for reference, use_t in (("z", False), ("t", True)):
            lower, upper = te.fit(method="dm", use_t=use_t).conf_int().loc["ate"]
            misses[reference] += not lower <= 0.4 <= upper
    return {key: value / REPS for key, value in misses.items()}


@pytest.mark.montecarlo
def test_t_intervals_cover_in_a_twelve_patient_trial():
    # six patients per arm, unequal variances: the normal interval misses too often, Welch's does not
    misses = small_trial_replications()
    tolerance = 3.5 * np.sqrt(0.05 * 0.95 / REPS)
    assert abs(misses["t"] - 0.05) <= tolerance, misses
    assert misses["z"] > 0.05 + tolerance, misses


if __name__ == "__main__":
    # the figures the Monte Carlo test checks: python tests/test_trials_small_samples.py
    print(f"6 + 6 patients, {REPS} reps (MC SE {np.sqrt(0.0475 / REPS):.4f}): miss rates {small_trial_replications()}")
