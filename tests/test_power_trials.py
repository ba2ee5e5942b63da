"""Tests of ppinfer.power.trials: sample size and power of a randomised trial.

References: statsmodels' ``NormalIndPower`` (the two-sample z test with the
standardised effect ``effect / (sd sqrt(1 - rho^2))``) and ``normal_power_het``
(a z test with a given standard deviation), the textbook sample sizes of 63 per arm
for a standardised effect of 0.5 and of 70 per arm for risks 0.65 and 0.85 (80%
power, two-sided 5%; Chow, Shao & Wang, Sample Size Calculations in Clinical
Research, sec. 4.2), the textbook unpooled variances of a risk difference, log
odds ratio (Woolf) and log risk ratio (Katz), and seeded simulations of trials
analysed with :class:`ppinfer.TreatmentEffect`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, normal_power_het

from ppinfer.power import ate_power, ate_sample_size, binary_power, binary_sample_size
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
REPS = 800
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


# -- binary endpoints ---------------------------------------------------------------------------
def unpooled_unit_variance(contrast, p0, p1, allocation):
    """n x the Wald variance of the unadjusted estimate: textbook closed forms."""
    n1, n0 = allocation, 1 - allocation
    return {
        "diff": p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0,
        "or": 1 / (n1 * p1 * (1 - p1)) + 1 / (n0 * p0 * (1 - p0)),  # Woolf
        "rr": (1 - p1) / (n1 * p1) + (1 - p0) / (n0 * p0),  # Katz
    }[contrast]


def effect_on_tested_scale(contrast, p0, p1):
    return {"diff": p1 - p0, "or": np.log(p1 / (1 - p1) * (1 - p0) / p0), "rr": np.log(p1 / p0)}[contrast]


@pytest.mark.parametrize("contrast", ["diff", "or", "rr"])
@pytest.mark.parametrize("p0, p1, allocation", [(0.17, 0.09, 0.5), (0.4, 0.55, 2 / 3)])
def test_unadjusted_binary_power_equals_statsmodels(contrast, p0, p1, allocation):
    sd = math.sqrt(unpooled_unit_variance(contrast, p0, p1, allocation))
    effect = abs(effect_on_tested_scale(contrast, p0, p1))
    for n in (100, 600):
        reference = normal_power_het(effect, n, 0.05, std_null=sd, std_alternative=sd)
        assert binary_power(n, p0, p1, allocation=allocation, contrast=contrast) == pytest.approx(reference, rel=1e-10)
        size = binary_sample_size(p0, p1, allocation=allocation, contrast=contrast)
        assert binary_power(size, p0, p1, allocation=allocation, contrast=contrast) >= 0.8
        assert binary_power(size - 1, p0, p1, allocation=allocation, contrast=contrast) < 0.8


def test_textbook_binary_sample_size():
    # Chow, Shao & Wang (2008), sec. 4.2: risks 0.65 and 0.85, 80% power, two-sided 5%: 70 per arm
    assert binary_sample_size(0.65, 0.85) == 140


def test_adjusted_binary_variance():
    # with equal risks' spreads the score removes the share rho^2; otherwise the arms' spreads
    # differ and rho^2 (s1 - s0)^2 remains (the covariates' variation of the risk difference)
    p0, p1, rho = 0.3, 0.2, 0.5
    s0, s1 = math.sqrt(p0 * (1 - p0)), math.sqrt(p1 * (1 - p1))
    adjusted = (1 - rho**2) * (s1**2 / 0.5 + s0**2 / 0.5) + rho**2 * (s1 - s0) ** 2
    effect = p0 - p1
    for n in (200, 800):
        reference = normal_power_het(effect, n, 0.05, std_null=math.sqrt(adjusted), std_alternative=math.sqrt(adjusted))
        assert binary_power(n, p0, p1, rho=rho) == pytest.approx(reference, rel=1e-10)
    assert binary_sample_size(p0, p1, rho=0.6) < binary_sample_size(p0, p1, rho=0.3) < binary_sample_size(p0, p1)
    assert binary_power(500, 0.3, 0.3) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: binary_sample_size(0.3, 0.3), ValueError, "p_treated must differ from p_control"),
        (lambda: binary_sample_size(0.0, 0.3), ValueError, "p_control must lie strictly between 0 and 1"),
        (lambda: binary_sample_size(0.3, 1.2), ValueError, "p_treated must lie strictly between 0 and 1"),
        (lambda: binary_sample_size(0.3, 0.2, rho=-1.0), ValueError, "rho must lie strictly between -1 and 1"),
        (lambda: binary_sample_size(0.3, 0.2, contrast="hazard"), ValueError, "contrast='hazard' is not valid"),
        (lambda: binary_power(1, 0.3, 0.2), ValueError, "n must be at least 2"),
        (lambda: binary_power(100, "x", 0.2), TypeError, "p_control must be a number"),
    ],
)
def test_binary_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


BINARY_REPS = 800
#: (p_control, p_treated, rho, allocation, contrast analysed, contrast sized)
BINARY_SETTINGS = {
    "risk difference, rho 0.5, 1:1": (0.45, 0.30, 0.5, 0.5, "diff", "diff"),
    "log odds ratio, rho 0.4, 2:1": (0.50, 0.35, 0.4, 2 / 3, "logor", "or"),
}


def adjusted_unit_variance(contrast, p0, p1, rho, allocation):
    """n x the variance of the risks' contrast standardised over a saturated model in the score: the
    residual variance s_a^2 (1 - rho^2) / pi_a per arm plus the variance of the score's contribution
    (mu_1(s) - mu_0(s) on the contrast's scale), written out for the difference and the log odds ratio."""
    s0, s1 = math.sqrt(p0 * (1 - p0)), math.sqrt(p1 * (1 - p1))
    if contrast == "diff":
        return (1 - rho**2) * (s1**2 / allocation + s0**2 / (1 - allocation)) + rho**2 * (s1 - s0) ** 2
    return (1 - rho**2) * (1 / (allocation * s1**2) + 1 / ((1 - allocation) * s0**2)) + rho**2 * (1 / s1 - 1 / s0) ** 2


def binary_prognostic_trial(rng, n, p0, p1, rho, allocation):
    """A binary prognostic factor s = +-1 shifts each arm's risk by rho s_a s (s_a^2 = p_a (1 - p_a)), so
    that the score m = the control risk given s correlates rho with the outcome in both arms."""
    s = rng.choice([-1.0, 1.0], size=n)
    n1 = int(round(n * allocation))
    A = rng.permutation(np.r_[np.ones(n1), np.zeros(n - n1)])
    risk = {a: p + rho * math.sqrt(p * (1 - p)) * s for a, p in ((0, p0), (1, p1))}
    y = rng.binomial(1, np.where(A == 1, risk[1], risk[0])).astype(float)
    return y, A, risk[0]


@functools.cache
def simulated_binary_power(setting: str):
    """Rejections and estimates of dm and of standardisation over the saturated working model in the
    arm and the score (a linear one: saturated, it has the logistic model's cell means, without its
    failure when a cell has no events), at the size binary_sample_size gives for the adjusted analysis."""
    p0, p1, rho, allocation, contrast, sized = BINARY_SETTINGS[setting]
    n = binary_sample_size(p0, p1, rho=rho, allocation=allocation, contrast=sized)
    rng = np.random.default_rng(400 + list(BINARY_SETTINGS).index(setting))
    estimates = np.empty((BINARY_REPS, 2))
    rejected = np.zeros(2)
    for r in range(BINARY_REPS):
        y, A, m = binary_prognostic_trial(rng, n, p0, p1, rho, allocation)
        te = TreatmentEffect(y, A, X=m[:, None], family="gaussian")
        for k, method in enumerate(("dm", "lin")):
            res = te.fit(method=method, contrast=contrast)
            estimates[r, k] = res.params.iloc[0]
            rejected[k] += res.pvalues.iloc[0] < 0.05
    expected = [binary_power(n, p0, p1, rho=value, allocation=allocation, contrast=sized) for value in (0.0, rho)]
    return n, rejected / BINARY_REPS, np.array(expected), estimates


@pytest.mark.montecarlo
@pytest.mark.parametrize("setting", BINARY_SETTINGS)
def test_binary_power_matches_simulated_power(setting):
    n, simulated, expected, estimates = simulated_binary_power(setting)
    tolerance = 3.5 * np.sqrt(expected * (1 - expected) / BINARY_REPS)
    assert np.all(np.abs(simulated - expected) <= tolerance), (simulated, expected, tolerance)
    # the score's variance reduction: Var_dm / Var_adjusted against the formula's
    p0, p1, rho, allocation, _, sized = BINARY_SETTINGS[setting]
    a, b = estimates[:, 0] - estimates[:, 0].mean(), estimates[:, 1] - estimates[:, 1].mean()
    ratio = np.mean(a**2) / np.mean(b**2)
    se = ratio * np.std(a**2 / np.mean(a**2) - b**2 / np.mean(b**2), ddof=1) / np.sqrt(len(a))
    theory = unpooled_unit_variance(sized, p0, p1, allocation) / adjusted_unit_variance(sized, p0, p1, rho, allocation)
    assert abs(ratio - theory) <= 3.5 * se + 2 * theory / n, (ratio, theory, se)


def test_adjusted_binary_power_uses_the_saturated_model_variance():
    for setting, (p0, p1, rho, allocation, _, sized) in BINARY_SETTINGS.items():
        sd = math.sqrt(adjusted_unit_variance(sized, p0, p1, rho, allocation))
        effect = abs(effect_on_tested_scale(sized, p0, p1))
        reference = normal_power_het(effect, 500, 0.05, std_null=sd, std_alternative=sd)
        assert binary_power(500, p0, p1, rho=rho, allocation=allocation, contrast=sized) == pytest.approx(reference)


if __name__ == "__main__":
    # every figure the Monte Carlo test checks: python tests/test_power_trials.py
    for setting, (effect, sd, rho, allocation) in POWER_SETTINGS.items():
        n = ate_sample_size(effect, sd, rho=rho, allocation=allocation)
        print(f"{setting}: effect {effect}, sd {sd}, rho {rho}, allocation {allocation:.3g}, n = {n}")
        for method, (simulated, expected) in simulated_power(setting).items():
            se = math.sqrt(expected * (1 - expected) / REPS)
            print(f"  {method:8s} simulated {simulated:.4f}  formula {expected:.4f}  MC SE {se:.4f}")
    for setting, (p0, p1, rho, allocation, _, sized) in BINARY_SETTINGS.items():
        n, simulated, expected, estimates = simulated_binary_power(setting)
        ratio = np.var(estimates[:, 0]) / np.var(estimates[:, 1])
        theory = (unpooled_unit_variance(sized, p0, p1, allocation)
                  / adjusted_unit_variance(sized, p0, p1, rho, allocation))
        print(f"{setting}: risks {p0} / {p1}, n = {n}; simulated power dm {simulated[0]:.4f} "
              f"(formula {expected[0]:.4f}), "
              f"adjusted {simulated[1]:.4f} (formula {expected[1]:.4f}); Var_dm / Var_adjusted {ratio:.3f} "
              f"(formula {theory:.3f})")
