"""How intervals and tests are computed for a fit: one protocol, several strategies.

:class:`WaldInference` (estimate plus or minus a normal or t quantile times the
standard error), :class:`BootstrapInference` (percentile or basic intervals
from replicates), and the quantile's test inversion
(:class:`ppinfer.quantile.QuantileInversion`) all answer the same questions, so
the results object writes intervals, tests and the summary once.
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

import numpy as np
from scipy import stats

ALTERNATIVES = {
    "two-sided": "two-sided",
    "two_sided": "two-sided",
    "larger": "larger",
    "greater": "larger",
    "smaller": "smaller",
    "less": "smaller",
}


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float in (0, 1) or raise."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number in (0, 1); got {alpha!r}.") from None
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha!r}.")
    return alpha


def critical_value(alpha: float, alternative: str, df=None):
    """Normal (or t with ``df``) quantile for a two-sided or one-sided level ``alpha``."""
    level = alpha / 2.0 if alternative == "two-sided" else alpha
    if df is None:
        return stats.norm.isf(level)
    return stats.t.isf(level, np.asarray(df, dtype=float))


def pvalues(statistic: np.ndarray, alternative: str, df=None) -> np.ndarray:
    """p-values of z (or t with ``df``) statistics."""
    distribution = stats.norm if df is None else stats.t(np.asarray(df, dtype=float))
    if alternative == "two-sided":
        return 2.0 * distribution.sf(np.abs(statistic))
    if alternative == "larger":
        return distribution.sf(statistic)
    return distribution.cdf(statistic)


class Inference(Protocol):
    """How intervals and test statistics are computed for a fit.

    ``df`` is None for normal reference distributions, else the t degrees of
    freedom of each parameter.
    """

    df: np.ndarray | None

    def interval(self, alpha: float, alternative: str) -> tuple[np.ndarray, np.ndarray]: ...

    def statistic(self, null: np.ndarray) -> np.ndarray: ...

    @property
    def covariance(self) -> np.ndarray: ...

    @property
    def bse(self) -> np.ndarray: ...


class WaldInference:
    """Wald intervals and tests from an estimate and its covariance matrix.

    With ``df`` (one per parameter, or one for all) the reference distribution
    is Student's t; without, the standard normal.
    """

    def __init__(self, params: np.ndarray, covariance: np.ndarray, df=None):
        self.params = params
        self.covariance = covariance
        self.df = None if df is None else np.broadcast_to(np.asarray(df, dtype=float), params.shape).copy()

    @cached_property
    def bse(self) -> np.ndarray:
        return np.sqrt(np.maximum(np.diag(self.covariance), 0.0))

    @property
    def distribution(self) -> str:
        return "z" if self.df is None else "t"

    def critical(self, alpha: float, alternative: str) -> np.ndarray | float:
        """Multiplier of the standard error at level ``alpha``."""
        return critical_value(alpha, alternative, self.df)

    def interval(self, alpha, alternative):
        half = self.critical(alpha, alternative) * self.bse
        lower = np.full_like(self.params, -np.inf) if alternative == "smaller" else self.params - half
        upper = np.full_like(self.params, np.inf) if alternative == "larger" else self.params + half
        return lower, upper

    def statistic(self, null):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.params - null) / self.bse


class BootstrapInference(WaldInference):
    """Percentile (or basic) intervals from bootstrap replicates of the estimate.

    ``bse`` and ``covariance`` are the replicates' standard deviations and
    covariance; tests use the z statistic with the bootstrap standard error.
    ``kind="basic"`` reflects the percentiles around the estimate
    (``2 theta - q_{1 - a}``, ``2 theta - q_a``).
    """

    def __init__(self, params: np.ndarray, replicates: np.ndarray, kind: str = "percentile"):
        super().__init__(params, np.atleast_2d(np.cov(replicates, rowvar=False)))
        self.replicates = replicates
        self.kind = kind

    def interval(self, alpha, alternative):
        k = self.params.shape[0]
        low_level, high_level = (alpha / 2.0, 1.0 - alpha / 2.0) if alternative == "two-sided" else (alpha, 1.0 - alpha)
        low, high = np.quantile(self.replicates, [low_level, high_level], axis=0)
        if self.kind == "basic":
            low, high = 2.0 * self.params - high, 2.0 * self.params - low
        if alternative == "larger":
            return low, np.full(k, np.inf)
        if alternative == "smaller":
            return np.full(k, -np.inf), high
        return low, high
