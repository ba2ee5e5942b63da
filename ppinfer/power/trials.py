"""Sample size and power of a two-arm randomised trial analysed with a prognostic score.

The treatment effect is estimated by a difference in means (or proportions), or by
an adjusted estimator (ANCOVA, PROCOVA, PPCT, AIPW, standardisation;
:class:`ppinfer.TreatmentEffect`) that uses a prognostic score correlated ``rho``
with the outcome within each arm. The adjusted estimators remove the part of the
outcome's variance the score explains, so that they need about ``1 - rho^2`` times
the sample size of the unadjusted analysis (Schuler et al. 2022). Continuous
endpoints: :func:`ate_power`, :func:`ate_sample_size`; binary endpoints (risk
difference, odds ratio, risk ratio): :func:`binary_power`, :func:`binary_sample_size`.
"""

from __future__ import annotations

import math

from scipy import stats

from .._options import choose
from ._checks import finite_number

__all__ = ["ate_power", "ate_sample_size", "binary_power", "binary_sample_size"]


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


def _checked_total(n) -> float:
    n = finite_number(n, "n")
    if n < 2:
        raise ValueError(f"n must be at least 2 (one unit per arm at the very least); got {n!r}.")
    return n


def _two_sided_power(n: float, effect: float, unit_variance: float, critical: float) -> float:
    """``P(|Z| > critical)`` for ``Z ~ N(effect / se, 1)``, ``se^2 = unit_variance / n``."""
    shift = effect / math.sqrt(unit_variance / n)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def _total_size(effect: float, unit_variance: float, critical: float, power: float, what: str) -> int:
    """``(critical + z_power)^2 unit_variance / effect^2``, rounded up (the far tail ignored)."""
    power = _open_unit(power, "power", "the target probability of rejecting")
    if effect == 0.0:
        raise ValueError(f"{what}: no finite sample size detects a zero effect.")
    n = (critical + stats.norm.isf(1.0 - power)) ** 2 * unit_variance / effect**2
    # rounding guard: a size that is an integer up to floating error stays that integer
    return max(2, math.ceil(n - 1e-9))


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
    n = _checked_total(n)
    effect, unit_variance, critical, _ = _design(effect, sd, rho, alpha, allocation)
    return _two_sided_power(n, effect, unit_variance, critical)


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
    return _total_size(effect, unit_variance, critical, power, "effect must not be 0")


#: contrasts of two risks that the binary design functions size, and the scale they are tested on
BINARY_CONTRASTS = {"diff": "diff", "rd": "diff", "or": "or", "logor": "or", "rr": "rr", "logrr": "rr"}


def _binary_design(p_control, p_treated, rho, alpha, allocation, contrast) -> tuple[float, float, float]:
    """|effect| on the tested scale, the per-unit variance of its estimate, and the critical value."""
    p_control = _open_unit(p_control, "p_control", "the control arm's risk")
    p_treated = _open_unit(p_treated, "p_treated", "the treated arm's risk")
    rho = finite_number(rho, "rho")
    if not 0.0 <= abs(rho) < 1.0:
        raise ValueError(
            f"rho must lie strictly between -1 and 1 (the within-arm correlation of the prognostic "
            f"score with the outcome); got {rho!r}."
        )
    alpha = _open_unit(alpha, "alpha", "the two-sided significance level")
    allocation = _open_unit(allocation, "allocation", "the fraction of units randomised to treatment")
    contrast = choose(contrast, BINARY_CONTRASTS, "contrast")
    risks = (p_control, p_treated)
    shares = (1.0 - allocation, allocation)
    sds = [math.sqrt(p * (1.0 - p)) for p in risks]
    if contrast == "diff":
        effect, gradient = p_treated - p_control, (-1.0, 1.0)
    elif contrast == "rr":
        effect, gradient = math.log(p_treated / p_control), (-1.0 / p_control, 1.0 / p_treated)
    else:
        effect = math.log(p_treated / (1.0 - p_treated)) - math.log(p_control / (1.0 - p_control))
        gradient = (-1.0 / sds[0] ** 2, 1.0 / sds[1] ** 2)
    # n Cov(p_hat) = (1 - rho^2) diag(sd^2 / pi) + rho^2 sd sd'
    residual = sum(g**2 * sd**2 / share for g, sd, share in zip(gradient, sds, shares))
    shared = sum(g * sd for g, sd in zip(gradient, sds)) ** 2
    unit_variance = (1.0 - rho**2) * residual + rho**2 * shared
    return abs(effect), unit_variance, stats.norm.isf(alpha / 2.0)


def binary_power(
    n: float,
    p_control: float,
    p_treated: float,
    rho: float = 0.0,
    alpha: float = 0.05,
    allocation: float = 0.5,
    contrast: str = "diff",
) -> float:
    """Power of the two-sided Wald test of no effect on a binary endpoint.

    Parameters
    ----------
    n : float
        Total number of randomised units (both arms).
    p_control, p_treated : float
        The arms' risks (probabilities of the event) the trial should detect.
    rho : float
        Correlation of the prognostic score with the outcome within each arm
        (for a calibrated risk score ``m``, ``rho^2 = Var(m) / (p (1 - p))``); 0
        (default) gives the power of the unadjusted comparison of proportions.
    alpha : float
        Two-sided significance level.
    allocation : float
        Fraction of units randomised to treatment.
    contrast : {"diff", "or", "rr"}
        The risk difference, or the odds ratio or risk ratio tested on the log
        scale (``fit(contrast="logor")`` / ``"logrr"``).

    Returns
    -------
    float
        ``P(|Z| > z_{1-alpha/2})`` for ``Z ~ N(effect / se, 1)``.

    Notes
    -----
    With ``pi_a`` the arms' shares and ``s_a^2 = p_a (1 - p_a)``, the arm risks'
    covariance when the score is adjusted for (standardisation, PROCOVA or PPCT;
    Ye et al. 2023) is, per unit,

        n Cov(p_hat) = (1 - rho^2) diag(s_a^2 / pi_a) + rho^2 s s',

    assuming the score explains the same share ``rho^2`` of each arm's outcome
    variance through one standardised predictor (the PROCOVA set-up of Schuler et
    al. 2022). A contrast with gradient ``g`` then has
    ``se^2 = g' Cov(p_hat) g``: for the risk difference
    ``(1 - rho^2)(s_1^2/pi_1 + s_0^2/pi_0) + rho^2 (s_1 - s_0)^2``, over ``n``. With
    ``rho = 0`` these are the usual unpooled Wald variances (Woolf's for the log
    odds ratio, Katz's for the log risk ratio).

    Examples
    --------
    >>> from ppinfer.power import binary_power
    >>> round(binary_power(600, p_control=0.17, p_treated=0.09), 3)
    0.835
    """
    n = _checked_total(n)
    effect, unit_variance, critical = _binary_design(p_control, p_treated, rho, alpha, allocation, contrast)
    return _two_sided_power(n, effect, unit_variance, critical)


def binary_sample_size(
    p_control: float,
    p_treated: float,
    rho: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: float = 0.5,
    contrast: str = "diff",
) -> int:
    """Total sample size for the two-sided Wald test of no effect on a binary endpoint.

    Parameters
    ----------
    p_control, p_treated : float
        The arms' risks to detect; they must differ.
    rho, alpha, allocation, contrast
        As in :func:`binary_power`.
    power : float
        Target power, in (0, 1).

    Returns
    -------
    int
        Total number of units, rounded up.

    Notes
    -----
    ``n = (z_{1-alpha/2} + z_{power})^2 se1^2 / effect^2``, with ``se1^2`` the per-unit
    variance of :func:`binary_power`'s Notes; adjusting for a score with
    correlation ``rho`` needs about ``1 - rho^2`` times the unadjusted size.

    Examples
    --------
    >>> from ppinfer.power import binary_sample_size
    >>> binary_sample_size(0.17, 0.09), binary_sample_size(0.17, 0.09, rho=0.4)
    (547, 462)
    """
    effect, unit_variance, critical = _binary_design(p_control, p_treated, rho, alpha, allocation, contrast)
    return _total_size(effect, unit_variance, critical, power, "p_treated must differ from p_control")
