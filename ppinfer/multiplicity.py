"""Several hypotheses at once: adjusted p-values and simultaneous confidence intervals.

For ``J`` estimates with a joint (approximately) normal distribution, such as the
contrasts of several treatment arms with one control or several coefficients of
one fit:

* Bonferroni and Holm (1979) adjust p-values for any dependence;
* the max-|z| method uses the joint normal distribution of the z statistics: the
  critical value ``c`` with ``P(max_k |Z_k| <= c) = 1 - alpha`` for
  ``Z ~ N(0, R)``, ``R`` the estimates' correlation matrix, gives intervals that
  cover all ``J`` parameters at once with probability ``1 - alpha``, and the
  single-step adjusted p-values ``P(max_k |Z_k| >= |z_j|)``. With arms compared to
  one control this is Dunnett's (1955) procedure, with the estimated correlation
  in place of the one implied by the arm sizes.

:func:`adjusted_pvalues` and :func:`simultaneous_conf_int` take a fit (any results
object with ``params``, ``bse``, ``cov_params()`` and ``test()``, such as
:class:`ppinfer.PPIResults`); :func:`bonferroni`, :func:`holm`,
:func:`max_z_critical_value` and :func:`max_z_pvalues` take arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, special, stats

from ._options import choose
from .results import PPIResults, check_alpha

__all__ = [
    "adjusted_pvalues",
    "simultaneous_conf_int",
    "bonferroni",
    "holm",
    "max_z_critical_value",
    "max_z_pvalues",
    "max_z_coverage",
]

#: accepted spellings of each method
ADJUSTMENTS = {
    "bonferroni": "bonferroni",
    "holm": "holm",
    "max-z": "max-z",
    "maxz": "max-z",
    "max-t": "max-z",
    "dunnett": "max-z",
    "single-step": "max-z",
}
#: methods that give simultaneous intervals (Holm's is a step-down test only)
INTERVAL_METHODS = ("bonferroni", "max-z")
ALTERNATIVES = {"two-sided": "two-sided", "larger": "larger", "smaller": "smaller"}
#: the seed of the quasi-Monte Carlo integration of the multivariate normal: fixed, so
#: that the same inputs always give the same numbers
_INTEGRATION_SEED = 20240611
#: absolute error requested from that integration
_INTEGRATION_ERROR = 1e-5


def _check_pvalues(pvalues) -> np.ndarray:
    values = np.asarray(pvalues, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"pvalues must be a one-dimensional array of p-values; got shape {values.shape}.")
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValueError("pvalues must lie in [0, 1].")
    return values


def bonferroni(pvalues: ArrayLike) -> np.ndarray:
    """Bonferroni-adjusted p-values ``min(1, J p_j)``.

    Parameters
    ----------
    pvalues : array-like, shape (J,)
        Unadjusted p-values in [0, 1].

    Returns
    -------
    ndarray, shape (J,)

    Examples
    --------
    >>> from ppinfer.multiplicity import bonferroni
    >>> bonferroni([0.01, 0.04, 0.03, 0.20])
    array([0.04, 0.16, 0.12, 0.8 ])
    """
    values = _check_pvalues(pvalues)
    return np.minimum(1.0, values.size * values)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values.

    With the p-values sorted, ``p_(1) <= ... <= p_(J)``, the adjusted value of
    ``p_(k)`` is ``max_{i <= k} min(1, (J - i + 1) p_(i))``. It controls the
    familywise error rate under any dependence and rejects at least what
    Bonferroni rejects.

    Parameters
    ----------
    pvalues : array-like, shape (J,)
        Unadjusted p-values in [0, 1].

    Returns
    -------
    ndarray, shape (J,)
        Adjusted p-values, in the order given.

    Examples
    --------
    >>> from ppinfer.multiplicity import holm
    >>> holm([0.01, 0.04, 0.03, 0.20])
    array([0.04, 0.09, 0.09, 0.2 ])
    """
    values = _check_pvalues(pvalues)
    order = np.argsort(values, kind="stable")
    count = values.size
    stepped = np.minimum(1.0, (count - np.arange(count)) * values[order])
    adjusted = np.empty(count)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def _correlation(covariance) -> np.ndarray:
    covariance = np.asarray(covariance, dtype=float)
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"the covariance must be a square matrix; got shape {covariance.shape}.")
    scale = np.sqrt(np.diag(covariance))
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError("the covariance must have positive, finite variances on its diagonal.")
    return covariance / np.outer(scale, scale)


def max_z_coverage(
    bound: float, correlation: ArrayLike, alternative: str = "two-sided", df: float | None = None
) -> float:
    """``P(max_k |Z_k| <= bound)`` (two-sided) or ``P(max_k Z_k <= bound)`` (one-sided).

    ``Z`` is multivariate normal with mean 0 and correlation ``correlation``, or
    multivariate t with ``df`` degrees of freedom. Two normal estimates (three
    arms against a control) are integrated exactly, by Gauss-Legendre quadrature
    of ``phi(z) P(Z_2 in range | Z_1 = z)``; more, or t, by scipy's randomised
    quasi-Monte Carlo integration (Genz & Bretz 2009) with a fixed seed, to about
    1e-5 (its cost grows quickly with the number of estimates: about 0.1 s for
    3, several seconds for 9).

    Parameters
    ----------
    bound : float
        The bound on the statistics.
    correlation : array-like, shape (J, J)
        Correlation matrix of ``Z``.
    alternative : {"two-sided", "larger", "smaller"}
        Two-sided: the bound applies to ``|Z_k|``; one-sided: to ``Z_k``.
    df : float, optional
        Degrees of freedom of a multivariate t (None: normal).

    Returns
    -------
    float

    Examples
    --------
    Two independent estimates: ``0.95 ** 2``.

    >>> import numpy as np
    >>> from ppinfer.multiplicity import max_z_coverage
    >>> round(max_z_coverage(1.959964, np.eye(2)), 4)
    0.9025
    >>> round(max_z_coverage(2.21, [[1.0, 0.5], [0.5, 1.0]]), 3)
    0.95
    """
    correlation = np.atleast_2d(np.asarray(correlation, dtype=float))
    dim = correlation.shape[0]
    upper = np.full(dim, bound)
    lower = -upper if alternative == "two-sided" else np.full(dim, -np.inf)
    if dim == 1:
        distribution = stats.norm if df is None or np.isinf(df) else stats.t(df)
        return float(distribution.cdf(bound) - (distribution.cdf(-bound) if alternative == "two-sided" else 0.0))
    normal = df is None or np.isinf(df)
    if dim == 2 and normal and abs(correlation[0, 1]) < 0.999:
        return _bivariate_coverage(bound, correlation[0, 1], alternative)
    rng = np.random.default_rng(_INTEGRATION_SEED)
    if normal:
        return float(stats.multivariate_normal.cdf(
            upper, np.zeros(dim), correlation, allow_singular=True, abseps=_INTEGRATION_ERROR, releps=0.0,
            lower_limit=lower, rng=rng,
        ))
    return float(stats.multivariate_t(np.zeros(dim), correlation, df=df, allow_singular=True).cdf(
        upper, lower_limit=lower, random_state=rng
    ))


#: Gauss-Legendre nodes and weights on [-1, 1] for the bivariate integral
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(96)


def _bivariate_coverage(bound: float, rho: float, alternative: str) -> float:
    """``P(|Z_1| <= b, |Z_2| <= b)`` (or without the absolute values) for a standard
    bivariate normal with correlation ``rho``: one integral over ``Z_1``."""
    low = -bound if alternative == "two-sided" else min(-10.0, bound - 10.0)
    z = 0.5 * (bound - low) * _NODES + 0.5 * (bound + low)
    spread = np.sqrt(1.0 - rho**2)
    inside = special.ndtr((bound - rho * z) / spread)
    if alternative == "two-sided":
        inside = inside - special.ndtr((-bound - rho * z) / spread)
    density = np.exp(-0.5 * z**2) / np.sqrt(2.0 * np.pi)
    return float(0.5 * (bound - low) * (_WEIGHTS @ (density * inside)))


def max_z_critical_value(
    correlation: ArrayLike, alpha: float = 0.05, alternative: str = "two-sided", df: float | None = None
) -> float:
    """The ``c`` with ``P(max_k |Z_k| <= c) = 1 - alpha``: the simultaneous critical value.

    Parameters
    ----------
    correlation : (J, J) array
        Correlation matrix of the estimates.
    alpha : float
        Familywise error rate.
    alternative : {"two-sided", "larger", "smaller"}
        One-sided alternatives use ``max_k Z_k`` (``"smaller"`` by symmetry).
    df : float, optional
        Degrees of freedom of a multivariate t instead of the normal.

    Returns
    -------
    float
        Between the single-test and the Bonferroni critical values; with
        independent estimates it is Sidak's ``Phi^-1((1 + (1 - alpha)^(1/J)) / 2)``.

    Examples
    --------
    Three arms against one control with equal arm sizes (correlation 1/2), as in
    Dunnett's (1964) tables for infinite degrees of freedom:

    >>> from ppinfer.multiplicity import max_z_critical_value
    >>> R = [[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]]
    >>> round(max_z_critical_value(R, alpha=0.05), 2)
    2.35
    """
    alpha = check_alpha(alpha)
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    correlation = np.atleast_2d(np.asarray(correlation, dtype=float))
    count = correlation.shape[0]
    tail = 2.0 if alternative == "two-sided" else 1.0
    if df is None or np.isinf(df):
        single, union = -special.ndtri(alpha / tail), -special.ndtri(alpha / tail / count)
    else:
        single, union = stats.t.isf(alpha / tail, df), stats.t.isf(alpha / tail / count, df)
    if count == 1:
        return float(single)
    objective = lambda c: max_z_coverage(c, correlation, alternative, df) - (1.0 - alpha)  # noqa: E731
    if objective(union) <= 0.0:  # perfectly correlated estimates to integration error
        return float(union)
    if objective(single) >= 0.0:
        return float(single)
    return float(optimize.brentq(objective, single, union, xtol=1e-5))


def max_z_pvalues(
    statistics: ArrayLike, correlation: ArrayLike, alternative: str = "two-sided", df: float | None = None
) -> np.ndarray:
    """Single-step adjusted p-values ``P(max_k |Z_k| >= |z_j|)`` under the joint null.

    They are kept between the unadjusted and the Bonferroni p-values, which bound
    them for any correlation.

    Parameters
    ----------
    statistics : array-like, shape (J,)
        The z (or t) statistics.
    correlation : array-like, shape (J, J)
        Their correlation matrix.
    alternative : {"two-sided", "larger", "smaller"}
        The alternative of every test.
    df : float, optional
        Degrees of freedom of a multivariate t (None: normal).

    Returns
    -------
    ndarray, shape (J,)

    Examples
    --------
    Correlated statistics need a smaller adjustment than Bonferroni's
    (``2 * 0.0124 = 0.0248`` and ``2 * 0.3173 = 0.6346``):

    >>> from ppinfer.multiplicity import max_z_pvalues
    >>> max_z_pvalues([2.5, 1.0], [[1.0, 0.5], [0.5, 1.0]]).round(3)
    array([0.023, 0.502])
    """
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    statistics = np.asarray(statistics, dtype=float)
    correlation = np.atleast_2d(np.asarray(correlation, dtype=float))
    oriented = np.abs(statistics) if alternative == "two-sided" else (
        statistics if alternative == "larger" else -statistics
    )
    distribution = stats.norm if df is None or np.isinf(df) else stats.t(df)
    tail = 2.0 if alternative == "two-sided" else 1.0
    single = np.minimum(1.0, tail * distribution.sf(oriented))
    joint = np.array([1.0 - max_z_coverage(value, correlation, alternative, df) for value in oriented])
    return np.clip(joint, single, np.minimum(1.0, statistics.size * single))


def _common_df(results) -> float | None:
    """One degrees-of-freedom value for a t-based fit (the smallest), or None for z."""
    df = getattr(results, "df", None)
    if df is None:
        return None
    return float(np.min(np.asarray(df, dtype=float)))


def adjusted_pvalues(results: PPIResults, method: str = "holm", *, alternative: str = "two-sided") -> pd.Series:
    """p-values of every parameter of a fit, adjusted for testing them all.

    Parameters
    ----------
    results : PPIResults or compatible
        A fit with ``params``, ``cov_params()`` and ``test(alternative=...)``; the
        tests are against the fit's own null values (e.g. 1 for ratios).
    method : {"holm", "bonferroni", "max-z"}
        ``"max-z"`` (also ``"dunnett"``) uses the estimates' joint normal
        distribution (t with ``results.df`` degrees of freedom if the fit has
        them); Holm and Bonferroni hold for any dependence.
    alternative : {"two-sided", "larger", "smaller"}

    Returns
    -------
    pandas.Series
        Indexed by parameter.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> from ppinfer.multiplicity import adjusted_pvalues
    >>> rng = np.random.default_rng(0)
    >>> arm = np.repeat(["placebo", "low", "high"], 60)
    >>> y = rng.normal(size=180) + 0.6 * (arm == "high")
    >>> res = ppinfer.TreatmentEffect(y, arm, control="placebo").fit(method="dm")
    >>> adjusted = adjusted_pvalues(res, method="holm")
    >>> bool(adjusted["high - placebo"] < 0.05)
    True
    """
    method = choose(method, ADJUSTMENTS, "method")
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    tests = results.test(alternative=alternative)
    if method == "bonferroni":
        adjusted = bonferroni(tests["pvalue"])
    elif method == "holm":
        adjusted = holm(tests["pvalue"])
    else:
        params = np.asarray(results.params, dtype=float)
        raw = (params - tests["null"].to_numpy()) / np.asarray(results.bse, dtype=float)
        adjusted = max_z_pvalues(raw, _correlation(results.cov_params()), alternative, _common_df(results))
    return pd.Series(adjusted, index=tests.index, name=f"pvalue ({method})")


def simultaneous_conf_int(
    results: PPIResults, alpha: float = 0.05, method: str = "max-z", alternative: str = "two-sided"
) -> pd.DataFrame:
    """Confidence intervals that cover every parameter of a fit at once.

    Parameters
    ----------
    results : PPIResults or compatible
        A fit with ``params``, ``bse`` and ``cov_params()`` (and ``df`` for t).
    alpha : float
        The intervals cover all parameters with probability ``1 - alpha``.
    method : {"max-z", "bonferroni"}
        ``"max-z"``: estimate plus or minus ``c`` standard errors,
        ``c = max_z_critical_value(R, alpha)`` for the estimates' correlation
        ``R``; Bonferroni: the ``alpha / J`` critical value.
    alternative : {"two-sided", "larger", "smaller"}
        One-sided simultaneous bounds, as in :meth:`PPIResults.conf_int`.

    Returns
    -------
    pandas.DataFrame
        Columns ``lower`` and ``upper``, indexed by parameter; ``attrs["critical_value"]``
        holds ``c``.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> from ppinfer.multiplicity import simultaneous_conf_int
    >>> rng = np.random.default_rng(1)
    >>> arm = np.repeat(["placebo", "low", "high"], 60)
    >>> res = ppinfer.TreatmentEffect(rng.normal(size=180), arm, control="placebo").fit(method="dm")
    >>> intervals = simultaneous_conf_int(res, alpha=0.05)
    >>> bool((intervals["upper"] - intervals["lower"] > res.conf_int()["upper"] - res.conf_int()["lower"]).all())
    True
    """
    alpha = check_alpha(alpha)
    method = choose(method, ADJUSTMENTS, "method")
    if method not in INTERVAL_METHODS:
        raise ValueError(
            f"method={method!r} is a step-down test with no simultaneous intervals; use 'max-z' or 'bonferroni'."
        )
    alternative = choose(alternative, ALTERNATIVES, "alternative")
    params = np.asarray(results.params, dtype=float)
    bse = np.asarray(results.bse, dtype=float)
    df = _common_df(results)
    if method == "bonferroni":
        distribution = stats.norm if df is None else stats.t(df)
        critical = float(distribution.isf(alpha / (2.0 if alternative == "two-sided" else 1.0) / params.size))
    else:
        critical = max_z_critical_value(_correlation(results.cov_params()), alpha, alternative, df)
    lower = np.full_like(params, -np.inf) if alternative == "smaller" else params - critical * bse
    upper = np.full_like(params, np.inf) if alternative == "larger" else params + critical * bse
    table = pd.DataFrame({"lower": lower, "upper": upper}, index=getattr(results.params, "index", None))
    table.attrs["critical_value"] = critical
    return table
