"""Prediction-powered quantiles by exact inversion of the rectified CDF test."""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np

from .covariance import PPIComponents, PPIWarning
from .data import as_variable
from .model import PPIModel
from .results import PPIResults, critical_value

#: breakpoints evaluated per chunk (bounds the memory of a scan)
SCAN_CHUNK = 1 << 16


class RectifiedCDF:
    """Empirical CDFs behind the rectified CDF, from one sort of each sample.

    ``F(t; lam) = lam * Fu(t) + Fy(t) - lam * Ff(t)``, where ``Fy``, ``Ff`` are the
    labeled outcomes' and predictions' empirical CDFs and ``Fu`` the unlabeled
    predictions'. Its variance needs ``mean(1{y <= t} 1{yhat <= t})``, the CDF of
    ``max(y, yhat)``. Evaluating at any points costs a binary search per point.
    """

    def __init__(self, y: np.ndarray, yhat: np.ndarray | None = None, yhat_unlabeled: np.ndarray | None = None):
        self.n = y.shape[0]
        self.y = np.sort(y)
        self.yhat = None if yhat is None else np.sort(yhat)
        self.joint = None if yhat is None else np.sort(np.maximum(y, yhat))
        self.unlabeled = None if yhat_unlabeled is None else np.sort(yhat_unlabeled)
        self.N = 0 if yhat_unlabeled is None else yhat_unlabeled.shape[0]

    @staticmethod
    def _ecdf(sorted_values: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        if sorted_values is None:
            return np.zeros(t.shape)
        return np.searchsorted(sorted_values, t, side="right") / sorted_values.shape[0]

    def evaluate(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CDFs at ``t`` (m,): ``Fy``, ``Fu - Ff`` (the rectifier's slope in lambda),
        and the variance blocks of the indicator means as (m, 1, 1) components."""
        fy, ff = self._ecdf(self.y, t), self._ecdf(self.yhat, t)
        fj, fu = self._ecdf(self.joint, t), self._ecdf(self.unlabeled, t)
        block = lambda values: values[:, None, None]  # noqa: E731
        components = PPIComponents(
            var_y=block(fy * (1 - fy) / self.n),
            cov_yf=block((fj - fy * ff) / self.n),
            var_f=block(ff * (1 - ff) / self.n),
            var_fu=block(fu * (1 - fu) / self.N if self.N else np.zeros(t.shape)),
        )
        return fy, fu - ff, components

    def breakpoints(self, with_predictions: bool):
        """Chunks of every point where ``F`` can change: the outcomes, and with a
        nonzero lambda the labeled and unlabeled predictions."""
        sources = [self.y] + ([self.yhat, self.unlabeled] if with_predictions else [])
        for values in sources:
            for start in range(0, values.shape[0], SCAN_CHUNK):
                yield values[start : start + SCAN_CHUNK]

    def scan(self, q: np.ndarray, lam: np.ndarray, z: float | None, alternative: str = "two-sided"):
        """One pass over the breakpoints, for every (q, lam) pair at once.

        Returns the point estimates (smallest ``t`` with ``F(t; lam) >= q``) and,
        if ``z`` is given, the smallest and largest breakpoints not rejected by the
        z test of ``F(t; lam) = q``.
        """
        k = q.shape[0]
        point = np.full(k, np.inf)
        lower, upper = np.full(k, np.inf), np.full(k, -np.inf)
        for t in self.breakpoints(with_predictions=bool(np.any(lam != 0))):
            fy, slope, components = self.evaluate(t)
            for j in range(k):
                cdf = fy + lam[j] * slope
                reached = cdf >= q[j]
                if reached.any():
                    point[j] = min(point[j], t[reached].min())
                if z is None:
                    continue
                se = np.sqrt(np.maximum(components.covariance(lam[j : j + 1])[:, 0, 0], 0.0))
                gap = cdf - q[j]
                if alternative == "two-sided":
                    accepted = np.abs(gap) <= z * se
                elif alternative == "larger":
                    accepted = gap >= -z * se
                else:
                    accepted = gap <= z * se
                if accepted.any():
                    lower[j] = min(lower[j], t[accepted].min())
                    upper[j] = max(upper[j], t[accepted].max())
        return point, lower, upper

    def statistic(self, t: np.ndarray, q: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """z statistic ``(q - F(t; lam)) / se(t; lam)`` at one point per q (positive
        when the quantile lies above ``t``)."""
        fy, slope, components = self.evaluate(t)
        gap = q - (fy + lam * slope)
        se = np.sqrt(np.maximum(components.covariance(lam[:, None])[:, 0, 0], 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.sign(gap) * np.inf)


class QuantileInversion:
    """Intervals and tests for quantiles by inverting the rectified CDF z test.

    ``bse`` is interval-implied: the width of the two-sided 95% interval divided
    by ``2 * 1.96``. Covariances between different quantiles are not estimated
    (off-diagonal entries of ``covariance`` are NaN).
    """

    def __init__(self, cdf: RectifiedCDF, q: np.ndarray, lam: np.ndarray, bse: np.ndarray):
        self.cdf, self.q, self.lam, self.bse = cdf, q, lam, bse

    @property
    def covariance(self) -> np.ndarray:
        covariance = np.full((self.q.size, self.q.size), np.nan)
        np.fill_diagonal(covariance, self.bse**2)
        return covariance

    def interval(self, alpha, alternative):
        _, lower, upper = self.cdf.scan(self.q, self.lam, critical_value(alpha, alternative), alternative)
        empty = lower > upper
        if np.any(empty):
            warnings.warn(
                "no breakpoint passed the test for some quantile; the interval is reported as NaN "
                "(too few labeled rows for this level).",
                PPIWarning,
                stacklevel=3,
            )
            lower, upper = np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)
        if alternative == "larger":
            upper = np.full_like(lower, np.inf)
        elif alternative == "smaller":
            lower = np.full_like(upper, -np.inf)
        return lower, upper

    def statistic(self, null):
        return self.cdf.statistic(null, self.q, self.lam)


class Quantile(PPIModel):
    """Quantile(s) of an outcome by prediction-powered inference.

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, shape (n,)
        Predictions for the labeled units.
    yhat_unlabeled : array-like, shape (N,)
        Predictions for the unlabeled units.
    q : float or sequence of floats in (0, 1)
        Quantile level(s); the results hold one row per level.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default) or drop.

    Predictions with K columns are K synthetic draws per unit; their row mean is
    the prediction.

    Notes
    -----
    The rectified CDF and its variance at a point ``t`` (Angelopoulos et al. 2023;
    METHODS.md, section 3)::

        F(t; lam)  = lam * mean(1{yhat_unlabeled <= t}) + mean(1{y <= t} - lam * 1{yhat <= t})
        s2(t; lam) = lam^2 Fu (1 - Fu) / N + s2(1{y <= t} - lam * 1{yhat <= t}) / n

    The interval collects every breakpoint ``t`` (every value of ``y``, ``yhat``
    and ``yhat_unlabeled``) with ``|F(t; lam) - q| <= z * s(t; lam)`` and reports the
    smallest and largest. The functions are step functions, so this is exact; it
    costs one sort per sample and a binary search per breakpoint:
    O((n + N) log(n + N)) time and O(n + N) memory. The point estimate is the
    smallest ``t`` with ``F(t; lam) >= q``. PPI++ tunes lambda for each q at the
    lambda = 1 point estimate ``t0`` by the mean formula applied to the indicators
    ``1{y <= t0}``, ``1{yhat <= t0}`` and ``1{yhat_unlabeled <= t0}``.

    ``bse`` is interval-implied (95% width / 3.92) and p-values come from the same
    z test, evaluated at the null.
    """

    _title = "Quantile"
    _default_tuning = "per-coefficient"

    def __init__(self, y, yhat, yhat_unlabeled, q=0.5, *, missing: str = "raise"):
        levels = np.atleast_1d(np.asarray(q, dtype=float))
        if levels.ndim != 1 or levels.size == 0:
            raise ValueError(f"q must be a number or a non-empty list of numbers; got {q!r}.")
        if not np.all((levels > 0) & (levels < 1)):
            raise ValueError(f"q must lie strictly between 0 and 1; got {q!r}.")
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed.")
        self.q = levels
        self.param_names = [f"q={level:g}" for level in levels]
        self.endog_name = outcome.names[0]

    @cached_property
    def _cdf(self) -> RectifiedCDF:
        return RectifiedCDF(self.labeled["y"], self._prediction("labeled"), self._prediction("unlabeled"))

    @cached_property
    def _pooled_cdf(self) -> RectifiedCDF:
        return RectifiedCDF(np.concatenate([self.labeled["y"], self._prediction("unlabeled")]))

    def _interval_bse(self, cdf: RectifiedCDF, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates and interval-implied standard errors (95% width / 3.92)."""
        point, lower, upper = cdf.scan(self.q, lam, critical_value(0.05, "two-sided"))
        return point, (upper - lower) / (2.0 * critical_value(0.05, "two-sided"))

    def _fit(self, method: str, rule) -> PPIResults:
        zeros = np.zeros(self.q.size)
        _, classical_bse = self._interval_bse(self._cdf, zeros)
        if method == "naive":
            cdf, lam = self._pooled_cdf, zeros
        elif isinstance(rule, np.ndarray):
            cdf, lam = self._cdf, rule
        else:
            cdf = self._cdf
            start, _, _ = cdf.scan(self.q, np.ones(self.q.size), None)
            lam = cdf.evaluate(start)[2].tuned_lambda(per_coefficient=True)[:, 0]
        params, bse = self._interval_bse(cdf, lam)
        return self._results(
            method=method,
            lam=None if method == "naive" else lam,
            params=params,
            inference=QuantileInversion(cdf, self.q, lam, bse),
            classical_bse=classical_bse,
            per_coefficient=True,
        )
