"""Prediction-powered quantiles by exact inversion of the rectified CDF test."""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np

from .covariance import PPIWarning
from .data import as_variable
from .model import PPIModel
from .rectified_cdf import RectifiedCDF, StratifiedCDF
from .results import PPIResults, critical_value

#: breakpoints evaluated per chunk (bounds the memory of a scan)
SCAN_CHUNK = 1 << 16

#: F(t; lam) is a sum of fractions: "F equal to q" must survive rounding
ROUNDING = 1e-12

CDF = RectifiedCDF | StratifiedCDF


def scan(cdf: CDF, q: np.ndarray, lam: np.ndarray, z: float | None, alternative: str = "two-sided"):
    """One pass over the breakpoints of ``cdf``, in increasing order, for all levels at once.

    ``lam`` has one row per level (one lambda per stratum). Returns the point
    estimates (smallest ``t`` with ``F(t; lam) >= q``) and, if ``z`` is given, the
    ends of the set of values that the test of ``theta = t`` does not reject
    (see :class:`Quantile`, Notes): a breakpoint ``t_k`` is accepted when
    ``F(t_k)`` is not significantly below ``q`` and its left limit ``F(t_{k-1})``
    not significantly above; the values strictly between ``t_k`` and ``t_{k+1}``
    (where ``F`` is constant) when ``F(t_k)`` is neither. The lower end is the
    smallest accepted value (or the infimum ``t_k`` of an accepted open piece),
    the upper end the largest accepted value (or the supremum ``t_{k+1}``).
    The results are memoised on ``cdf``.
    """
    memo = cdf.inversions
    key = (q.tobytes(), lam.tobytes())
    if z is None and key in memo:
        return memo[key], None, None
    full = (*key, z, alternative)
    if full in memo:
        return memo[key], *memo[full]
    k = q.shape[0]
    point = np.full(k, np.inf)
    lower, upper = np.full(k, np.inf), np.full(k, -np.inf)
    # below the smallest breakpoint F = 0 < q: never significantly above q
    high_before = np.ones(k, dtype=bool)
    # the last breakpoint of the previous chunk accepted the values up to the next one
    open_before = np.zeros(k, dtype=bool)
    for points in cdf.breakpoints(bool(np.any(lam != 0)), SCAN_CHUNK):
        t = points.values
        evaluation = cdf.evaluate(points)
        for j in range(k):
            gap = evaluation.value(lam[j]) - q[j]
            if np.isinf(point[j]):
                reached = np.flatnonzero(gap >= -ROUNDING)
                if reached.size:
                    point[j] = t[reached[0]]
            if z is None:
                continue
            bound = z * np.sqrt(evaluation.variance(lam[j])) + ROUNDING
            not_low, not_high = gap >= -bound, gap <= bound
            # at t_k the left limit is F at the previous breakpoint
            not_high_before = np.concatenate([high_before[j : j + 1], not_high[:-1]])
            if alternative == "two-sided":
                at, after = not_low & not_high_before, not_low & not_high
            elif alternative == "larger":
                at = after = not_low
            else:
                at, after = not_high_before, not_high
            if open_before[j]:
                upper[j] = max(upper[j], t[0])
            accepted = np.flatnonzero(at | after)
            if accepted.size:
                lower[j] = min(lower[j], t[accepted[0]])
            accepted_at = np.flatnonzero(at)
            if accepted_at.size:
                upper[j] = max(upper[j], t[accepted_at[-1]])
            accepted_after = np.flatnonzero(after[:-1])
            if accepted_after.size:
                upper[j] = max(upper[j], t[accepted_after[-1] + 1])
            high_before[j], open_before[j] = not_high[-1], after[-1]
        if z is None and np.all(np.isfinite(point)):
            break
    if z is not None:
        # accepted beyond the largest breakpoint
        upper[open_before] = np.inf
        memo[full] = (lower, upper)
    memo[key] = point
    return point, lower, upper


def statistic(cdf: CDF, t: np.ndarray, q: np.ndarray, lam: np.ndarray, alternative: str = "two-sided") -> np.ndarray:
    """z statistic of ``theta_j = t_j`` per level, positive when the quantile lies above ``t``.

    Two one-sided statistics: ``(q - F(t)) / s(t)`` (evidence that ``theta > t``)
    and ``(F(t-) - q) / s(t-)`` (evidence that ``theta < t``), at the CDF and at
    its left limit. ``"larger"`` uses the first, ``"smaller"`` minus the second,
    and ``"two-sided"`` the larger of the two with its sign (0 when neither is
    positive), so that ``2 * P(Z > |statistic|)`` is the p-value of the two-sided
    test the interval inverts. Where ``F`` is continuous at ``t`` both are the
    same z score.
    """

    def score(evaluation, sign):
        gap = sign * (q - evaluation.value(lam.T))
        gap = np.where(np.abs(gap) <= ROUNDING, 0.0, gap)
        se = np.sqrt(evaluation.variance(lam.T))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.sign(gap) * np.inf)

    above = score(cdf.evaluate(t), 1.0)
    if alternative == "larger":
        return above
    below = score(cdf.evaluate(t, side="left"), -1.0)
    if alternative == "smaller":
        return -below
    return np.where(np.maximum(above, below) <= 0, 0.0, np.where(above >= below, above, -below))


class QuantileInversion:
    """Intervals and tests for quantiles by inverting the rectified CDF z test.

    ``bse`` is interval-implied: the width of the two-sided 95% interval divided
    by ``2 * 1.96``. Covariances between different quantiles are not estimated
    (off-diagonal entries of ``covariance`` are NaN).
    """

    def __init__(
        self, cdf: CDF, q: np.ndarray, lam: np.ndarray, bse: np.ndarray, intervals: dict | None = None
    ):
        self.cdf, self.q, self.lam, self.bse = cdf, q, lam, bse
        #: intervals already computed, by (alpha, alternative)
        self._intervals = dict(intervals or {})

    @property
    def covariance(self) -> np.ndarray:
        covariance = np.full((self.q.size, self.q.size), np.nan)
        np.fill_diagonal(covariance, self.bse**2)
        return covariance

    def interval(self, alpha, alternative):
        key = (alpha, alternative)
        if key not in self._intervals:
            _, lower, upper = scan(self.cdf, self.q, self.lam, critical_value(alpha, alternative), alternative)
            self._intervals[key] = (lower, upper)
        lower, upper = self._intervals[key]
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

    def statistic(self, null, alternative: str = "two-sided"):
        return statistic(self.cdf, null, self.q, self.lam, alternative)


class Quantile(PPIModel):
    """Quantile(s) of an outcome by prediction-powered inference.

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, shape (n,) or (n, K)
        Predictions for the labeled units.
    yhat_unlabeled : array-like, shape (N,) or (N, K)
        Predictions for the unlabeled units.
    q : float or sequence of floats in (0, 1)
        Quantile level(s); the results hold one row per level.
    weights, weights_unlabeled : array-like, optional
        Row weights of each sample (e.g. survey weights).
    label_prob : array-like, optional
        Known probability with which each labeled unit was chosen for labeling
        from all units; ``yhat_unlabeled`` then holds the unlabeled units only.
    groups, groups_unlabeled : array-like, optional
        Cluster labels for cluster-robust inference; a label present in both
        samples is one cluster.
    strata, strata_unlabeled : array-like, optional
        Stratum labels of each sample, with ``stratum_weights`` (population share
        of each stratum, by label).
    stratum_weights : dict or pandas.Series, optional
        Population shares of the strata.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default) or drop.

    Predictions with K columns are K synthetic draws per unit; their row mean is
    the prediction.

    Notes
    -----
    The estimand is the lower quantile ``theta = min{t : F(t) >= q}`` of the
    outcome's CDF ``F``. The rectified CDF and its variance at a point ``t``
    (Angelopoulos et al. 2023, Science)::

        F(t; lam)  = lam * mean(1{yhat_unlabeled <= t}) + mean(1{y <= t} - lam * 1{yhat <= t})
        s2(t; lam) = lam^2 Fu (1 - Fu) / N + s2(1{y <= t} - lam * 1{yhat <= t}) / n

    and ``F(t-; lam)``, ``s2(t-; lam)`` the same with ``<`` for ``<=`` (the left
    limits). ``theta = t`` exactly when ``F(t-) < q <= F(t)``, so the test of
    ``theta = t`` rejects when::

        F(t; lam)  < q - z s(t; lam)       (evidence that theta > t)   or
        F(t-; lam) > q + z s(t-; lam)      (evidence that theta < t),

    two one-sided tests at level alpha / 2 each. For a continuous outcome
    ``F(t-) = F(t) = q`` at ``theta`` and this is the z test of ``F(t) = q``. For
    an outcome with ties (an atom at ``theta``, ``F(theta) > q``) a test of
    ``F(t) = q`` alone rejects the true quantile whenever ``F(theta)`` is
    significantly above ``q`` and undercovers; this one rejects it with
    probability at most alpha (asymptotically, wherever ``q`` falls in the jump
    of ``F`` at ``theta``). It covers more than ``1 - alpha`` when ``q`` lies
    strictly inside the jump, the more so the larger the jump against ``s``: the
    price of keeping the level when ``q`` sits at either end of it, which the
    distribution-free order-statistic intervals pay too (Hahn & Meeker 1991,
    Statistical Intervals; with ``lam = 0`` this interval is theirs, with
    normal-approximation ranks).

    The interval is the set of values not rejected. ``F`` and ``s`` are step
    functions, so each breakpoint ``t_k`` (each value of ``y``, ``yhat`` and
    ``yhat_unlabeled``) is accepted or not by ``F(t_k)`` and ``F(t_{k-1})``, and the
    values strictly between ``t_k`` and ``t_{k+1}`` together by ``F(t_k)``. When
    ``F(.; lam)`` is non-decreasing (always for classical and naive) the accepted
    set is the closed interval ``[lower, upper]`` reported, both ends accepted;
    otherwise the reported interval is its hull and covers at least as often as
    the test accepts. The point estimate is the smallest ``t`` with
    ``F(t; lam) >= q``.

    The breakpoints are visited in increasing order by merging the sorted
    samples, without a grid and without binary searches over the unlabeled
    sample: O((n + N) log(n + N)) time (the sorts) and O(n + N) memory.
    PPI++ tunes lambda for each q at the lambda = 1 point estimate ``t0`` by the
    mean formula applied to the indicators ``1{y <= t0}``, ``1{yhat <= t0}`` and
    ``1{yhat_unlabeled <= t0}``.

    ``bse`` is interval-implied (95% width / 3.92). p-values come from the same
    two one-sided z statistics evaluated at the null: ``(q - F(t)) / s(t)`` and
    ``(F(t-) - q) / s(t-)``; the two-sided statistic is the larger one, signed
    (positive when the quantile lies above the null).

    Examples
    --------
    Prices recorded in whole units: the median is an atom of the outcome.

    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> price = np.round(np.exp(rng.normal(3.0, 0.4, size=3300)))
    >>> predicted = price * np.exp(rng.normal(0.0, 0.1, size=3300))
    >>> model = ppinfer.Quantile(price[:300], predicted[:300], predicted[300:], q=0.5)
    >>> res = model.fit()
    >>> print(res.conf_int(alpha=0.1).round(2))
           lower  upper
    q=0.5   19.0   21.0
    """

    _title = "Quantile"
    _default_tuning = "per-coefficient"

    def __init__(
        self,
        y,
        yhat,
        yhat_unlabeled,
        q=0.5,
        *,
        weights=None,
        weights_unlabeled=None,
        label_prob=None,
        groups=None,
        groups_unlabeled=None,
        strata=None,
        strata_unlabeled=None,
        stratum_weights=None,
        missing: str = "raise",
    ):
        try:
            levels = np.atleast_1d(np.asarray(q, dtype=float))
        except (TypeError, ValueError):
            raise TypeError(f"q must be a number or a list of numbers in (0, 1); got {q!r}.") from None
        if levels.ndim != 1 or levels.size == 0:
            raise ValueError(f"q must be a number or a non-empty list of numbers; got {q!r}.")
        if not np.all((levels > 0) & (levels < 1)):
            raise ValueError(f"q must lie strictly between 0 and 1; got {q!r}.")
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
            groups=groups,
            groups_unlabeled=groups_unlabeled,
            weights=weights,
            weights_unlabeled=weights_unlabeled,
            label_prob=label_prob,
            strata=strata,
            strata_unlabeled=strata_unlabeled,
            stratum_weights=stratum_weights,
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed.")
        self.q = levels
        self.param_names = [f"q={level:g}" for level in levels]
        self.endog_name = outcome.names[0]

    def _make_cdf(self, draw: int | None = None, *, labeled_only: bool = False) -> CDF:
        """The rectified CDF of this design (predictions: the draws' mean, or one
        draw); ``labeled_only`` leaves the predictions out (enough for lambda = 0)."""
        y = self.labeled["y"]
        f = None if labeled_only else self._prediction("labeled", draw)
        fu = None if labeled_only else self._prediction("unlabeled", draw)
        if self.design == "stratified":
            strata = [
                RectifiedCDF(
                    y[self._strata == k],
                    None if f is None else f[self._strata == k],
                    None if fu is None else fu[self._strata_unlabeled == k],
                )
                for k in range(len(self.stratum_names))
            ]
            return StratifiedCDF(strata, self.stratum_weights.to_numpy())
        if self.design == "labeling probabilities":
            everyone = None if f is None else np.concatenate([f, fu])
            return RectifiedCDF(y, f, everyone, label_prob=self.labeled["label_prob"])
        return RectifiedCDF(
            y, f, fu,
            weights=self._block("labeled", y)[2],
            weights_unlabeled=None if fu is None else self._block("unlabeled", fu)[2],
            groups=self._groups,
            groups_unlabeled=None if fu is None else self._groups_unlabeled,
            ngroups=self._ngroups,
        )

    @cached_property
    def _cdf(self) -> CDF:
        return self._make_cdf()

    @cached_property
    def _labeled_cdf(self) -> CDF:
        return self._make_cdf(labeled_only=True)

    @cached_property
    def _pooled_cdf(self) -> CDF:
        """Labeled outcomes and unlabeled predictions pooled as if all were outcomes."""
        y, fu = self.labeled["y"], self._prediction("unlabeled")
        if self.design == "labeling probabilities":
            return RectifiedCDF(np.concatenate([y, fu]))
        blocks = [self._block("labeled", y), self._block("unlabeled", fu)]
        weights = None
        if any(b[2] is not None for b in blocks):
            weights = np.concatenate([np.ones(b[1].shape[0]) if b[2] is None else b[2] for b in blocks])
        codes, ngroups = self._clusters_for(blocks)
        return RectifiedCDF(
            np.concatenate([y, fu]),
            weights=weights,
            groups=None if codes[0] is None else np.concatenate(codes),
            ngroups=ngroups,
        )

    def _strata_count(self, cdf: CDF) -> int:
        return len(cdf.strata) if isinstance(cdf, StratifiedCDF) else 1

    def _tuned(self, cdf: CDF) -> np.ndarray:
        """Per level (and stratum) lambdas tuned at the lambda = 1 point estimates."""
        ones = np.ones((self.q.size, self._strata_count(cdf)))
        start, _, _ = scan(cdf, self.q, ones, None)
        return cdf.evaluate(start).tuned_lambda().T

    def _interval_bse(self, cdf: CDF, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Point estimates, interval-implied standard errors (95% width / 3.92) and
        the 95% interval itself."""
        point, lower, upper = scan(cdf, self.q, lam, critical_value(0.05, "two-sided"))
        return point, (upper - lower) / (2.0 * critical_value(0.05, "two-sided")), (lower, upper)

    def _fit(self, method: str, rule) -> PPIResults:
        # lambda = 0 needs the labeled outcomes only: no sort of the unlabeled sample
        labeled_cdf = self._labeled_cdf
        zeros = np.zeros((self.q.size, self._strata_count(labeled_cdf)))
        classical = self._interval_bse(labeled_cdf, zeros)
        classical_bse = classical[1]
        if method == "naive":
            cdf, lam = self._pooled_cdf, np.zeros((self.q.size, 1))
        elif method == "classical" or (isinstance(rule, np.ndarray) and not np.any(rule)):
            cdf, lam = labeled_cdf, zeros
        elif isinstance(rule, np.ndarray):
            cdf, lam = self._cdf, np.repeat(rule[:, None], zeros.shape[1], axis=1)
        else:
            cdf = self._cdf
            lam = self._tuned(cdf)
        params, bse, interval = classical if cdf is labeled_cdf else self._interval_bse(cdf, lam)
        details = []
        if self.draws > 1 and method in ("ppi", "ppi++"):
            single = self._make_cdf(draw=0)
            single_lam = lam if isinstance(rule, np.ndarray) else self._tuned(single)
            _, single_bse, _ = self._interval_bse(single, single_lam)
            details.append(("Draws per unit (K)", str(self.draws)))
            details.append(("Var 1 draw / K draws", f"{np.mean((single_bse / bse) ** 2):.3f}"))
        reported = None if method == "naive" else (lam[:, 0] if lam.shape[1] == 1 else lam.T)
        return self._results(
            method=method,
            lam=reported,
            params=params,
            inference=QuantileInversion(cdf, self.q, lam, bse, {(0.05, "two-sided"): interval}),
            classical_bse=classical_bse,
            per_coefficient=True,
            details=details,
        )
