"""Tests of ppinfer.power.trials: sample size and power of a randomised trial.

References: statsmodels' ``NormalIndPower`` (the two-sample z test with the
standardised effect ``effect / (sd sqrt(1 - rho^2))``), the textbook sample size of
63 per arm for a standardised effect of 0.5 (80% power, two-sided 5%), and seeded
simulations of trials analysed with :class:`ppinfer.TreatmentEffect`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from ppinfer.power import ate_power, ate_sample_size
from ppinfer.treatment import TreatmentEffect

SETTINGS = [
    dict(effect=0.5, sd=1.0, rho=0.0, alpha=0.05, allocation=0.5),
    dict(effect=0.3, sd=2.0, rho=0.6, alpha=0.05, allocation=2 / 3),
    dict(effect=-1.0, sd=3.0, rho=0.8, alpha=0.01, allocation=0.25),
]


def statsmodels_power(n, effect, sd, rho, alpha, allocation):
    standardised = abs(effect) / (sd * math.sqrt(1 - rho**2))
    n1 = n * allocation
    return NormalIndPower().power(standardised, nobs1=n1, alpha=alpha, ratio=(1 - allocation) / allocation)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("n", [20, 101, 500])
def test_power_equals_statsmodels(setting, n):
    assert ate_power(n, **setting) == pytest.approx(statsmodels_power(n, **setting), rel=1e-10)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("power", [0.8, 0.9])
def test_sample_size_is_the_smallest_reaching_power(setting, power):
    n = ate_sample_size(power=power, **setting)
    assert isinstance(n, int)
    assert statsmodels_power(n, **setting) >= power
    assert statsmodels_power(n - 1, **setting) < power


def test_textbook_sample_size():
    # 63 per arm: 2 (z_0.975 + z_0.8)^2 / 0.5^2 = 62.8 (e.g. Chow, Shao & Wang, Sample Size Calculations)
    assert ate_sample_size(effect=0.5, sd=1.0) == 126
    assert ate_sample_size(effect=5.0, sd=10.0) == 126


def test_adjusted_sample_size_is_one_minus_rho_squared():
    unadjusted = ate_sample_size(effect=0.1, sd=1.0)
    for rho in (0.3, 0.5, 0.7, -0.7):
        adjusted = ate_sample_size(effect=0.1, sd=1.0, rho=rho)
        assert adjusted == pytest.approx((1 - rho**2) * unadjusted, abs=1.0)


def test_power_at_zero_effect_is_alpha_and_power_grows_with_n():
    assert ate_power(100, effect=0.0, sd=1.0, alpha=0.05) == pytest.approx(0.05, abs=1e-15)
    powers = [ate_power(n, effect=0.3, sd=1.0, rho=0.5) for n in (50, 100, 200, 400)]
    assert all(a < b for a, b in zip(powers, powers[1:]))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: ate_sample_size(0.0, 1.0), ValueError, "effect must not be 0"),
        (lambda: ate_sample_size(0.5, 0.0), ValueError, "sd must be positive"),
        (lambda: ate_sample_size(0.5, 1.0, rho=1.0), ValueError, "rho must lie strictly between -1 and 1"),
        (lambda: ate_sample_size(0.5, 1.0, alpha=1.0), ValueError, "alpha must lie strictly between 0 and 1"),
        (lambda: ate_sample_size(0.5, 1.0, power=1.0), ValueError, "power must lie strictly between 0 and 1"),
        (lambda: ate_sample_size(0.5, 1.0, allocation=0.0), ValueError, "allocation must lie strictly"),
        (lambda: ate_sample_size(np.nan, 1.0), ValueError, "effect must be finite"),
        (lambda: ate_sample_size("big", 1.0), TypeError, "effect must be a number"),
        (lambda: ate_power(1, 0.5, 1.0), ValueError, "n must be at least 2"),
        (lambda: ate_power(True, 0.5, 1.0), TypeError, "n must be a number"),
        (lambda: ate_power(100, 0.5, -1.0), ValueError, "sd must be positive"),
        (lambda: ate_power(100, 0.5, 1.0, allocation=1.5), ValueError, "allocation must lie strictly"),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- simulated power ------------------------------------------------------------------------
REPS = 1500
Z = stats.norm.isf(0.025)
#: (effect, sd, rho, allocation); n is the size for 80% power of the adjusted analysis
POWER_SETTINGS = {
    "unadjusted design, 1:1": (0.4, 1.0, 0.0, 0.5),
    "rho 0.6, 1:1": (0.4, 1.5, 0.6, 0.5),
    "rho 0.8, 2:1": (0.3, 1.0, 0.8, 2 / 3),
}


@functools.cache
def simulated_power(setting: str) -> dict[str, tuple[float, float]]:
    """Simulated and formula power of dm, procova and ppct at the size :func:`ate_sample_size` gives."""
    effect, sd, rho, allocation = POWER_SETTINGS[setting]
    n = ate_sample_size(effect, sd, rho=rho, allocation=allocation)
    rng = np.random.default_rng(300 + list(POWER_SETTINGS).index(setting))
    n1 = int(round(n * allocation))
    methods = ("dm", "procova", "ppct")
    rejected = dict.fromkeys(methods, 0)
    for _ in range(REPS):
        score = rng.normal(size=n)
        A = rng.permutation(np.r_[np.ones(n1), np.zeros(n - n1)])
        y = 1.0 + effect * A + sd * (rho * score + math.sqrt(1 - rho**2) * rng.normal(size=n))
        te = TreatmentEffect(y, A, prognostic=score)
        for method in methods:
            res = te.fit(method=method)
            rejected[method] += abs(res.params["ate"] / res.bse["ate"]) > Z
    # dm at the same n has the power of rho = 0; the adjusted methods that of the score's rho
    return {
        method: (rejected[method] / REPS, ate_power(n, effect, sd, rho=0.0 if method == "dm" else rho,
                                                     allocation=allocation))
        for method in methods
    }


@pytest.mark.montecarlo
@pytest.mark.parametrize("setting", POWER_SETTINGS)
def test_power_formula_matches_simulated_power(setting):
    for method, (simulated, expected) in simulated_power(setting).items():
        tolerance = 3.5 * math.sqrt(expected * (1 - expected) / REPS)
        assert abs(simulated - expected) <= tolerance, (method, simulated, expected)


if __name__ == "__main__":
    # every figure the Monte Carlo test checks: python tests/test_power_trials.py
    for setting, (effect, sd, rho, allocation) in POWER_SETTINGS.items():
        n = ate_sample_size(effect, sd, rho=rho, allocation=allocation)
        print(f"{setting}: effect {effect}, sd {sd}, rho {rho}, allocation {allocation:.3g}, n = {n}")
        for method, (simulated, expected) in simulated_power(setting).items():
            se = math.sqrt(expected * (1 - expected) / REPS)
            print(f"  {method:8s} simulated {simulated:.4f}  formula {expected:.4f}  MC SE {se:.4f}")
