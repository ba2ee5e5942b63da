"""Sample size and power of a two-arm randomised trial analysed with a prognostic score.

The treatment effect is estimated by a difference in means, or by an adjusted
estimator (ANCOVA, PROCOVA, PPCT, AIPW; :class:`ppinfer.TreatmentEffect`) that uses
a prognostic score correlated ``rho`` with the outcome within each arm. The
adjusted estimators remove the part of the outcome's variance the score explains,
so that they need about ``1 - rho^2`` times the sample size of the difference in
means (Schuler et al. 2022).
"""

from __future__ import annotations

import math

from scipy import stats

from ._checks import finite_number


def _open_unit(value, argument: str, what: str) -> float:
    number = finite_number(value, argument)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{argument} must lie strictly between 0 and 1 ({what}); got {value!r}.")
    return number


def _design(effect, sd, rho, alpha, allocation) -> tuple[float, float, float, float]:
    """Validated ``|effect|``, the per-unit variance factor, the critical value and the allocation."""
    effect = finite_number(effect, "effect")
    sd = finite_number(sd, "sd")
    rho = finite_number(rho, "rho")
    alpha = _open_unit(alpha, "alpha", "the two-sided significance level")
    allocation = _open_unit(allocation, "allocation", "the fraction of units randomised to treatment")
    if sd <= 0.0:
        raise ValueError(f"sd must be positive (the outcome's standard deviation within arm); got {sd!r}.")
    if not -1.0 < rho < 1.0:
        raise ValueError(
            f"rho must lie strictly between -1 and 1 (the within-arm correlation of the prognostic "
            f"score with the outcome); got {rho!r}."
        )
    # variance of the estimate is unit_variance / n for n units in total
    unit_variance = sd**2 * (1.0 - rho**2) / (allocation * (1.0 - allocation))
    return abs(effect), unit_variance, stats.norm.isf(alpha / 2.0), allocation


def ate_power(
    n: float,
    effect: float,
    sd: float,
    rho: float = 0.0,
    alpha: float = 0.05,
    allocation: float = 0.5,
) -> float:
    """Power of the two-sided z test of no treatment effect in a two-arm trial.

    Parameters
    ----------
    n : float
        Total number of randomised units (both arms).
    effect : float
        Treatment effect (treated minus control mean) the trial should detect.
    sd : float
        Standard deviation of the outcome within each arm.
    rho : float
        Correlation of the prognostic score with the outcome within each arm;
        0 (default) gives the power of the unadjusted difference in means.
    alpha : float
        Two-sided significance level.
    allocation : float
        Fraction of units randomised to treatment (2:1 treated:control is 2/3).

    Returns
    -------
    float
        ``P(|Z| > z_{1-alpha/2})`` for ``Z ~ N(effect / se, 1)``.

    Notes
    -----
    With ``pi = allocation`` the estimate's variance is

        se^2 = sd^2 (1 - rho^2) (1 / (n pi) + 1 / (n (1 - pi))),

    the large-sample variance of ANCOVA or PROCOVA with the score as covariate,
    and of PPCT with its tuned lambda (Schuler et al. 2022, Poulet et al. 2025).
    Both tails are counted, so the power at ``effect = 0`` is ``alpha``.

    References
    ----------
    Schuler, A., Walsh, D., Hall, D., Walsh, J., Fisher, C. (2022). Increasing the
    efficiency of randomized trial estimates via linear adjustment for a prognostic
    score. *The International Journal of Biostatistics* 18(2), 329-356.

    Examples
    --------
    >>> from ppinfer.power import ate_power
    >>> round(ate_power(128, effect=0.5, sd=1.0), 3)
    0.807
    """
    n = finite_number(n, "n")
    if n < 2:
        raise ValueError(f"n must be at least 2 (one unit per arm at the very least); got {n!r}.")
    effect, unit_variance, critical, _ = _design(effect, sd, rho, alpha, allocation)
    shift = effect / math.sqrt(unit_variance / n)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def ate_sample_size(
    effect: float,
    sd: float,
    rho: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: float = 0.5,
) -> int:
    """Total sample size for a two-sided z test of no treatment effect to reach ``power``.

    Parameters
    ----------
    effect : float
        Treatment effect (treated minus control mean) to detect; not zero.
    sd : float
        Standard deviation of the outcome within each arm.
    rho : float
        Correlation of the prognostic score with the outcome within each arm;
        0 (default) sizes the unadjusted difference in means.
    alpha : float
        Two-sided significance level.
    power : float
        Target power, in (0, 1).
    allocation : float
        Fraction of units randomised to treatment.

    Returns
    -------
    int
        Total number of units, rounded up; about ``n * allocation`` are treated.

    Notes
    -----
    The classical formula for a z test, with the variance reduced by the score::

        n = (z_{1-alpha/2} + z_{power})^2 sd^2 (1 - rho^2) / (effect^2 pi (1 - pi))

    so that an adjusted analysis needs ``1 - rho^2`` times the unadjusted sample
    size (Schuler et al. 2022). The far tail is ignored, as usual; the power of the
    returned size (:func:`ate_power`) is at least ``power``.

    Examples
    --------
    >>> from ppinfer.power import ate_sample_size
    >>> ate_sample_size(effect=0.5, sd=1.0), ate_sample_size(effect=0.5, sd=1.0, rho=0.6)
    (126, 81)
    """
    effect, unit_variance, critical, _ = _design(effect, sd, rho, alpha, allocation)
    power = _open_unit(power, "power", "the target probability of rejecting")
    if effect == 0.0:
        raise ValueError("effect must not be 0: no finite sample size detects a zero effect.")
    n = (critical + stats.norm.isf(1.0 - power)) ** 2 * unit_variance / effect**2
    # rounding guard: a size that is an integer up to floating error stays that integer
    return max(2, math.ceil(n - 1e-9))
