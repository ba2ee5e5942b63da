"""Prediction-powered quantiles by exact inversion of the rectified CDF test, for any design."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..core.covariance import LambdaRule, PPIComponents, satterthwaite_df
from ..core.fitting import Fit, fit_mean
from ..core.inference import critical_value
from ..core.results import PPIResults
from ..core.validation import as_variable
from ..core.warnings import PPIWarning
from ..designs.base import LABELED, UNLABELED, Design, design_from_keywords
from .base import document_design_keywords, with_design_keywords
from .partitioned_cdf import PartitionedCDF
from .ppi import PPIModel
from .rectified_cdf import RectifiedCDF

__all__ = ["Quantile", "QuantileInversion"]

#: breakpoints evaluated per chunk (bounds the memory of a scan)
SCAN_CHUNK = 1 << 16

#: F(t; lam) is a sum of fractions: "F equal to q" must survive rounding
ROUNDING = 1e-12


def scan(cdf: RectifiedCDF, q: np.ndarray, lam: np.ndarray, critical: np.ndarray | None,
         alternative: str = "two-sided"):
    """One pass over the breakpoints of ``cdf``, in increasing order, for all levels at once.

    ``lam`` has one row per level (one lambda per stratum) and ``critical`` one
    critical value per level. Returns the point estimates (smallest ``t`` with
    ``F(t; lam) >= q``) and, if ``critical`` is given, the ends of the set of values
    that the test of ``theta = t`` does not reject (see :class:`Quantile`, Notes):
    a breakpoint ``t_k`` is accepted when ``F(t_k)`` is not significantly below
    ``q`` and its left limit ``F(t_{k-1})`` not significantly above; the values
    strictly between ``t_k`` and ``t_{k+1}`` (where ``F`` is constant) when
    ``F(t_k)`` is neither. The lower end is the smallest accepted value (or the
    infimum ``t_k`` of an accepted open piece), the upper end the largest accepted
    value (or the supremum ``t_{k+1}``). The results are memoised on ``cdf``.
    """
    memo = cdf.inversions
    key = (q.tobytes(), lam.tobytes())
    if critical is None and key in memo:
        return memo[key], None, None
    full = None if critical is None else (*key, critical.tobytes(), alternative)
    if full in memo:
        return memo[key], *memo[full]
    if isinstance(cdf, PartitionedCDF):
        point, lower, upper = cdf.invert(q, lam, critical, alternative)
    else:
        point, lower, upper = _scan_breakpoints(cdf, q, lam, critical, alternative)
    if critical is not None:
        memo[full] = (lower, upper)
    memo[key] = point
    return point, lower, upper


def _scan_breakpoints(cdf: RectifiedCDF, q: np.ndarray, lam: np.ndarray, critical: np.ndarray | None,
                      alternative: str):
    """:func:`scan` of a CDF held in memory, visiting every breakpoint."""
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
            if critical is None:
                continue
            bound = critical[j] * np.sqrt(evaluation.variance(lam[j])) + ROUNDING
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
        if critical is None and np.all(np.isfinite(point)):
            break
    if critical is not None:
        # accepted beyond the largest breakpoint
        upper[open_before] = np.inf
    return point, lower, upper


def statistic(cdf: RectifiedCDF, t: np.ndarray, q: np.ndarray, lam: np.ndarray,
              alternative: str = "two-sided") -> np.ndarray:
    """Statistic of ``theta_j = t_j`` per level, positive when the quantile lies above ``t``.

    Two one-sided statistics: ``(q - F(t)) / s(t)`` (evidence that ``theta > t``)
    and ``(F(t-) - q) / s(t-)`` (evidence that ``theta < t``), at the CDF and at
    its left limit. ``"larger"`` uses the first, ``"smaller"`` minus the second,
    and ``"two-sided"`` the larger of the two with its sign (0 when neither is
    positive), so that ``2 * P(T > |statistic|)`` is the p-value of the two-sided
    test the interval inverts. Where ``F`` is continuous at ``t`` both are the
    same score.
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
    """Intervals and tests for quantiles by inverting the rectified CDF test.

    The critical values are normal quantiles, or t quantiles with ``df`` (one per
    level). ``bse`` is interval-implied: the width of the two-sided 95% interval
    divided by twice the critical value used. Covariances between different
    quantiles are not estimated (off-diagonal entries of ``covariance`` are NaN).
    """

    def __init__(self, cdf: RectifiedCDF, q: np.ndarray, lam: np.ndarray, bse: np.ndarray, df=None,
                 intervals: dict | None = None):
        self.cdf, self.q, self.lam, self.bse = cdf, q, lam, bse
        self.df = None if df is None else np.broadcast_to(np.asarray(df, dtype=float), q.shape).copy()
        #: intervals already computed, by (alpha, alternative)
        self._intervals = dict(intervals or {})

    @property
    def covariance(self) -> np.ndarray:
        covariance = np.full((self.q.size, self.q.size), np.nan)
        np.fill_diagonal(covariance, self.bse**2)
        return covariance

    def critical(self, alpha: float, alternative: str) -> np.ndarray:
        """The critical value of each level."""
        return np.broadcast_to(np.asarray(critical_value(alpha, alternative, self.df), dtype=float),
                               self.q.shape).copy()

    def interval(self, alpha, alternative):
        key = (alpha, alternative)
        if key not in self._intervals:
            _, lower, upper = scan(self.cdf, self.q, self.lam, self.critical(alpha, alternative), alternative)
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

    def plot(self, estimates: np.ndarray, alpha: float = 0.05, *, ax=None, points: int = 400):
        """The rectified CDF of each level's lambda around its estimate, with the level, the
        estimate and the interval (the values whose test at ``alpha`` accepts). Returns the figure."""
        import matplotlib.pyplot as plt

        lower, upper = self.interval(alpha, "two-sided")
        finite = np.isfinite(lower) & np.isfinite(upper)
        ends = np.r_[lower[finite], upper[finite], estimates]
        span = max(float(np.ptp(ends)), float(np.nanmax(upper - lower)) if finite.any() else 0.0, 1e-12)
        t = np.linspace(ends.min() - span, ends.max() + span, points)
        evaluation = self.cdf.evaluate(t)
        if ax is None:
            figure, ax = plt.subplots(figsize=(6.5, 4.0))
        else:
            figure = ax.figure
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, level in enumerate(self.q):
            colour = colours[j % len(colours)]
            curve = evaluation.base + np.asarray(self.lam[j]) @ evaluation.slopes
            ax.step(t, curve, where="post", color=colour, label=f"rectified CDF, q = {level:g}")
            ax.axhline(level, color=colour, linestyle=":", linewidth=1)
            if finite[j]:
                ax.axvspan(lower[j], upper[j], color=colour, alpha=0.15)
            ax.axvline(estimates[j], color=colour, linewidth=1)
        ax.set_xlabel("value")
        ax.set_ylabel("estimated CDF")
        ax.set_title(f"Quantile: rectified CDF and {100 * (1 - alpha):g}% interval")
        ax.legend(loc="upper left", frameon=False)
        return figure


def _levels(q) -> np.ndarray:
    try:
        levels = np.atleast_1d(np.asarray(q, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"q must be a number or a list of numbers in (0, 1); got {q!r}.") from None
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"q must be a number or a non-empty list of numbers; got {q!r}.")
    if not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"q must lie strictly between 0 and 1; got {q!r}.")
    return levels


@document_design_keywords
class Quantile(PPIModel):
    """Quantile(s) of an outcome by prediction-powered inference, under any sampling design.

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, shape (n,) or (n, K)
        Predictions for the labeled units; K columns are K synthetic draws per
        unit, whose row mean is the prediction.
    yhat_unlabeled : array-like, shape (N,) or (N, K)
        Predictions for the unlabeled units.
    q : float or sequence of floats in (0, 1)
        Quantile level(s); the results hold one row per level.
    design : ppinfer.Design, optional
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default) or drop them (with
        their design columns).
    [design keywords]

    Notes
    -----
    The estimand is the lower quantile ``theta = min{t : F(t) >= q}`` of the
    outcome's CDF ``F``. The rectified CDF at a point ``t`` is a PPI mean of
    indicators (Angelopoulos et al. 2023, Science)::

        F(t; lam) = F_Y(t) + lam * (F_u(t) - F_f(t)),

    ``F_Y``, ``F_f`` the (weighted) CDFs of the labeled outcomes and predictions
    (weights divided by ``label_prob`` in a two-phase design), ``F_u`` that of the
    unlabeled predictions (of every unit's, in a two-phase design). Its variance
    ``s2(t; lam)`` is the design's (:mod:`ppinfer.designs.base`) for the
    contributions ``alpha_i (1{v_i <= t} - F(t))`` of each fit's rows, ``alpha_i``
    the row's share of the fit's weight: the linearization of :class:`ppinfer.Mean`
    applied to ``1{y <= t}``, ``1{yhat <= t}``, ``1{yhat_unlabeled <= t}`` (Binder
    1983; for survey quantiles by test inversion, Woodruff 1952 and Francisco &
    Fuller 1991). For two simple random samples with ``cov_type="HC0"``::

        s2(t; lam) = lam^2 F_u (1 - F_u) / N + s2(1{y <= t} - lam 1{yhat <= t}) / n

    ``F(t-; lam)``, ``s2(t-; lam)`` are the same with ``<`` for ``<=`` (the left
    limits). ``theta = t`` exactly when ``F(t-) < q <= F(t)``, so the test of
    ``theta = t`` rejects when::

        F(t; lam)  < q - c s(t; lam)       (evidence that theta > t)   or
        F(t-; lam) > q + c s(t-; lam)      (evidence that theta < t),

    two one-sided tests at level alpha / 2 each, ``c`` the critical value. For a
    continuous outcome ``F(t-) = F(t) = q`` at ``theta`` and this is the test of
    ``F(t) = q``. For an outcome with ties (an atom at ``theta``) a test of
    ``F(t) = q`` alone rejects the true quantile whenever ``F(theta)`` is
    significantly above ``q`` and undercovers; this one rejects it with
    probability at most alpha (asymptotically, wherever ``q`` falls in the jump of
    ``F`` at ``theta``), and covers more than ``1 - alpha`` when ``q`` lies strictly
    inside the jump, as the distribution-free order-statistic intervals do (Hahn
    & Meeker 1991, Statistical Intervals; with ``lam = 0`` and i.i.d. data this
    interval is theirs, with normal-approximation ranks).

    The interval is the set of values not rejected. ``F`` and ``s`` are step
    functions, so each breakpoint ``t_k`` (each value of ``y``, ``yhat`` and
    ``yhat_unlabeled``) is accepted or not by ``F(t_k)`` and ``F(t_{k-1})``, and
    the values strictly between ``t_k`` and ``t_{k+1}`` together by ``F(t_k)``.
    When ``F(.; lam)`` is non-decreasing (always for classical and naive) the
    accepted set is the closed interval ``[lower, upper]`` reported; otherwise the
    reported interval is its hull. The point estimate is the smallest ``t`` with
    ``F(t; lam) >= q``. The breakpoints are visited in increasing order by merging
    the sorted samples, and every design sum is a cumulative sum over sorted
    values (:mod:`ppinfer.models.rectified_cdf`): O((n + N) log(n + N)) time,
    O(n + N) memory, no grid.

    An unlabeled sample read partition by partition (Dask collections, Parquet
    files through :func:`ppinfer.read_parquet`, memory maps of another type than
    float64) gives the same numbers without holding its values: a bracketing
    search (:mod:`ppinfer.models.partitioned_cdf`) counts the unlabeled values and
    their design sums at the labeled values in one pass, bounds ``F`` and ``s``
    between them, and reads again only the few stretches where the point
    estimate or an end of the interval can lie, gathering their rows (or
    splitting a stretch first when it holds more than about a million rows). No
    approximation is made; each step is a pass, counted in ``res.unlabeled_passes``
    (3 or 4 for a PPI++ fit is typical). Every design is supported (weights, strata,
    clusters and fpc, two phases, clusters with units in both samples), and every
    method, naive pooling included.

    PPI++ tunes lambda for each level at the lambda = 1 point estimate ``t0``
    with the mean's formula ``C_Yf / (V_f + V_fu)`` for the indicators at ``t0``,
    clipped to [0, 1] (one lambda per stratum with ``lam="per-stratum"``).

    ``cov_type``: ``"HC0"`` the plain linearization; ``"HC1"`` times
    ``n / (n - 1)``; ``"HC2"`` (default without clusters) and ``"HC3"`` divide each
    labeled row's coefficient by ``(1 - h_i)^(1/2)`` or ``(1 - h_i)``, with the
    leverage ``h_i = w_i / sum(w)`` of a weighted mean (for equal weights HC2
    gives the unbiased ``F (1 - F) / (n - 1)``); ``"CR0"``; ``"CR1"`` times
    ``G_h / (G_h - 1)`` per stratum; ``"CR2"`` (default with clusters) scales each
    PSU's coefficients by ``(1 - W_g / W)^(-1/2)``, the bias-reduced cluster-robust
    variance of a mean (Bell & McCaffrey 2002). Only the variances are corrected,
    never the CDF values. The leverage a tuned lambda adds (see
    :meth:`ppinfer.Mean.fit`) is not applied to quantiles.

    ``use_t`` (default True): each level's critical value is a t quantile with
    the degrees of freedom of a mean of the indicators (as :class:`ppinfer.Mean`):
    the labeled residual degrees of freedom (``n - 1``, or the labeled sample's
    PSUs minus strata, or Bell and McCaffrey's for ``"CR2"``), less one per tuned
    lambda (per stratum with ``lam="per-stratum"``; none for a lambda that falls
    back to 0 on predictions without variation), combined for independent
    samples with the unlabeled part's (``N - 1``, or PSUs minus strata) by the
    Welch-Satterthwaite formula, with the two parts of ``s2(theta_hat; lam)`` at
    the level's point estimate. p-values refer the same statistics to the same
    distribution, so the interval and the test agree. ``bse`` is
    interval-implied: the 95% width divided by twice the critical value used.

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

    A stratified cluster sample with weights: schools (PSUs) within regions (strata),
    one lambda per region (the ``strata`` keywords' default).

    >>> school = rng.integers(0, 40, size=3300); region = school % 4
    >>> weight = 1.0 + region
    >>> model = ppinfer.Quantile(price[:300], predicted[:300], predicted[300:], q=[0.25, 0.5],
    ...                          weights=weight[:300], weights_unlabeled=weight[300:],
    ...                          clusters=school[:300], clusters_unlabeled=school[300:],
    ...                          strata=region[:300], strata_unlabeled=region[300:])
    >>> res = model.fit()
    >>> res.cov_type, sorted(res.lam.index)
    ('CR2', ['0', '1', '2', '3'])
    >>> bool((res.conf_int()["lower"] <= res.params).all() and (res.params <= res.conf_int()["upper"]).all())
    True
    """

    _title = "Quantile"
    _per_coefficient = True
    _df_params = 1

    @with_design_keywords
    def __init__(self, y: ArrayLike, yhat: ArrayLike, yhat_unlabeled: ArrayLike, q: float | Sequence[float] = 0.5, *,
                 design: Design | None = None, missing: str = "raise", **design_options: Any):
        levels = _levels(q)
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
            design=design_from_keywords("Quantile", design, design_options),
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed.")
        self.q = levels
        self.param_names = [f"q={level:g}" for level in levels]
        self.endog_name = outcome.names[0]
        self._warn_design()

    def fit(self, *, method: str = "ppi++", lam=None, cov_type: str | None = None, use_t: bool | None = None,
            ci: str = "analytic", n_boot: int = 1000, seed=None, kind: str = "percentile", n_jobs: int = 1,
            progress="auto", **unknown) -> PPIResults:
        """Estimate the quantiles with prediction-powered inference or a baseline.

        Parameters
        ----------
        method : {"ppi++", "ppi", "classical", "naive"}
            ``"ppi++"`` (default): power-tuned PPI. ``"ppi"``: lambda = 1.
            ``"classical"``: labeled data only (lambda = 0). ``"naive"``: the
            labeled outcomes and unlabeled predictions pooled as if all were
            outcomes; invalid, kept as the baseline that shows why PPI is needed.
        lam : None, float, array-like, "per-coefficient", "overall" or "per-stratum"
            With ``method="ppi++"`` only. None (or ``"per-coefficient"``) tunes one
            lambda per level; ``"overall"`` one for all levels; ``"per-stratum"`` one
            per level and stratum (the default with the ``strata`` keywords); a
            number (or one per level) fixes lambda.
        cov_type : {"HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR2"}, optional
            Variance estimator of the rectified CDF (see Notes of :class:`Quantile`).
            Default ``"HC2"``, ``"CR2"`` with clusters.
        use_t : bool, optional
            Critical values and p-values from Student's t with ``res.df`` (default
            True; see Notes of :class:`Quantile`); False gives normal ones.
        ci : {"analytic", "bootstrap"}
            ``"analytic"`` (default): the test inversion. ``"bootstrap"``:
            intervals and standard errors from ``n_boot`` replicates that resample
            the design's PSUs within strata, re-tuning lambda in each.
        n_boot : int
            Bootstrap replicates (``ci="bootstrap"`` only).
        seed : int, SeedSequence or Generator, optional
            Seed of the bootstrap (``ci="bootstrap"`` only).
        kind : {"percentile", "basic"}
            Bootstrap interval (``ci="bootstrap"`` only).
        n_jobs : int
            Processes for the bootstrap replicates (-1: all cores); the replicates are
            the same for any ``n_jobs`` (one seed per replicate).
        progress : {"auto", True, False}
            A progress bar of the bootstrap replicates ("auto": on a terminal or in a
            notebook only).

        Returns
        -------
        PPIResults
            ``bse`` is interval-implied and ``cov_params()`` has NaN off the
            diagonal (covariances between levels are not estimated).
        """
        return super().fit(method=method, lam=lam, cov_type=cov_type, use_t=use_t, ci=ci, n_boot=n_boot, seed=seed,
                           kind=kind, n_jobs=n_jobs, progress=progress, **unknown)

    # -- the fit of a mean: the degrees of freedom of the labeled part ---------------------------
    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        """A weighted mean of one response (what a mean's degrees of freedom need)."""
        responses = [np.asarray(response, dtype=float).reshape(response.shape[0], -1) for _, response, _, _ in blocks]
        return fit_mean(responses, weights=[w for _, _, w, _ in blocks], collectors=[c for _, _, _, c in blocks],
                        at=start if evaluate_only else None)

    def _design_rows(self, sample: str, predicted: bool = False):
        return None

    # -- the rectified CDFs ----------------------------------------------------------------------
    def _rectified_cdf(self, kind: str, cov_type: str, by_stratum: bool = False, draw: int | None = None):
        """The rectified CDF of ``kind`` ("ppi", "classical", "naive") with the design's
        variance for ``cov_type`` (predictions: the draws' mean, or one draw)."""
        key = ("cdf", kind, cov_type, by_stratum and kind == "ppi", draw)
        if key not in self._cache and self.unlabeled.partitioned:
            self._cache[key] = self._partitioned_cdf(kind, cov_type, by_stratum, draw)
        if key not in self._cache:
            self._cache[key] = RectifiedCDF.from_design(
                self.design, self.labeled["y"], self._prediction(LABELED, draw), self._prediction_array(UNLABELED, draw),
                cov_type=cov_type, kind=kind, by_stratum=by_stratum and kind == "ppi",
            )
        return self._cache[key]

    def _partitioned_cdf(self, kind: str, cov_type: str, by_stratum: bool, draw: int | None):
        """The rectified CDF of an unlabeled sample read partition by partition (see
        :mod:`ppinfer.models.partitioned_cdf`): classical needs none of its rows; PPI and
        naive pooling read them in a few counting passes."""
        design = self.design
        if kind == "naive":
            return PartitionedCDF.build_pooled(design, self.labeled["y"], self._prediction(UNLABELED, draw),
                                               cov_type=cov_type)
        outcomes, predictions = self.labeled["y"], self._prediction(LABELED, draw)
        if kind == "classical":
            return RectifiedCDF.from_design(design, outcomes, predictions, None, cov_type=cov_type, kind=kind)
        return PartitionedCDF.build(design, outcomes, predictions, self._prediction(UNLABELED, draw),
                                    cov_type=cov_type, by_stratum=by_stratum)

    def _tuned(self, cdf: RectifiedCDF, per_coefficient: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Lambdas (levels, strata) tuned at the lambda = 1 point estimates, and the
        lambdas each level fitted: a lambda that falls back to 0 because the
        predictions' indicators have no variation there fits nothing (the
        classical estimate) and spends no degree of freedom."""
        k = self.q.size
        start, _, _ = scan(cdf, self.q, np.ones((k, cdf.nstrata)), None)
        blocks = cdf.evaluate(start).blocks
        lam = _diagonal(blocks).tuned_lambda(per_coefficient=per_coefficient).T
        denominator, reference = blocks[2] + blocks[3], blocks[0]
        if not per_coefficient:
            denominator, reference = denominator.sum(axis=1, keepdims=True), reference.sum(axis=1, keepdims=True)
        # the fallback rule of PPIComponents.tuned_lambda
        fitted = denominator > 1e-12 * np.maximum(reference, np.finfo(float).tiny)
        return lam, np.broadcast_to(fitted, blocks.shape[1:]).sum(axis=0).astype(float)

    def _interval_bse(self, cdf: RectifiedCDF, lam: np.ndarray, df):
        """Point estimates, interval-implied standard errors (95% width / twice the
        critical value) and the 95% interval itself."""
        critical = np.broadcast_to(np.asarray(critical_value(0.05, "two-sided", df), dtype=float), self.q.shape).copy()
        point, lower, upper = scan(cdf, self.q, lam, critical)
        return point, (upper - lower) / (2.0 * critical), (lower, upper)

    def _degrees_of_freedom(self, kind: str, cdf: RectifiedCDF, lam: np.ndarray, cov_type: str,
                            spent: np.ndarray | float = 0.0) -> np.ndarray:
        """t degrees of freedom of each level (see Notes of :class:`Quantile`); ``spent``
        counts the lambdas tuned on the labeled sample."""
        labeled = self._labeled_df(cov_type)
        if kind == "naive":
            return labeled + self._unlabeled_df()
        if kind == "classical":
            return labeled
        labeled = np.maximum(labeled - spent, 1.0)
        if self.design.combined:
            return labeled
        point, _, _ = scan(cdf, self.q, lam, None)
        labeled_part, unlabeled_part = cdf.evaluate(point).parts(lam.T)
        return satterthwaite_df([labeled_part, unlabeled_part], [labeled, self._unlabeled_df()])

    def _fit(self, method: str, rule: LambdaRule | None, cov_type: str, use_t: bool, point_only: bool = False):
        k = self.q.size
        if method == "naive":
            kind = "naive"
        elif method == "classical" or (not rule.tuned and not np.any(rule.fixed)):
            kind = "classical"
        else:
            kind = "ppi"
        by_stratum = kind == "ppi" and rule.by_stratum
        if kind == "ppi" and rule.tuned and not point_only:
            self._check_tuning_room(cov_type, rule)
        cdf = self._rectified_cdf(kind, cov_type, by_stratum)
        spent = 0.0
        if kind != "ppi":
            lam = np.zeros((k, 1))
        elif rule.tuned:
            lam, spent = self._tuned(cdf, rule.per_coefficient)
        else:
            lam = np.repeat(rule.fixed[:, None], cdf.nstrata, axis=1)
        if point_only:
            return scan(cdf, self.q, lam, None)[0]
        df = self._degrees_of_freedom(kind, cdf, lam, cov_type, spent) if use_t else None
        params, bse, interval = self._interval_bse(cdf, lam, df)
        if kind == "classical":
            classical_bse = bse
        else:
            classical = self._rectified_cdf("classical", cov_type)
            classical_df = self._degrees_of_freedom("classical", classical, None, cov_type) if use_t else None
            classical_bse = self._interval_bse(classical, np.zeros((k, 1)), classical_df)[1]
        details = []
        if self.draws > 1 and kind == "ppi":
            single = self._rectified_cdf("ppi", cov_type, by_stratum, draw=0)
            single_lam = self._tuned(single, rule.per_coefficient)[0] if rule.tuned else lam
            _, single_bse, _ = self._interval_bse(single, single_lam, df)
            details = [("Draws per unit (K)", str(self.draws)),
                       ("Var 1 draw / K draws", f"{np.mean((single_bse / bse) ** 2):.3f}")]
        if kind == "naive":
            reported = None
        elif kind == "classical":
            reported = 0.0
        else:
            reported = self._report_lambda(lam.T if by_stratum else lam[:, 0], rule)
        inference = QuantileInversion(cdf, self.q, lam, bse, df, {(0.05, "two-sided"): interval})
        return self._results(method, params, inference, reported, cov_type, details, classical_bse=classical_bse)

    def components(self, cov_type: str | None = None, *, by_stratum: bool = False) -> PPIComponents:
        """The variance blocks ``V_Y``, ``C_Yf``, ``V_f``, ``V_fu`` of the quantile estimates.

        The blocks of the rectified CDF at each level's classical estimate
        ``t_k`` (those of the indicators ``1{y <= t_k}``, ``1{yhat <= t_k}``,
        ``1{yhat_unlabeled <= t_k}``), divided by the squared density of the
        outcome at ``t_k``, estimated as the ratio of the classical interval's
        variance (normal critical values) to the indicators' ``V_Y``: to first
        order the blocks of the quantiles themselves (Bahadur), so that
        ``components.covariance(lam)`` approximates the variance of PPI
        estimates. Arrays are (levels, levels), diagonal (NaN elsewhere: levels
        are not combined), with a leading stratum axis if ``by_stratum``. Study
        planning (:mod:`ppinfer.power`) reads a pilot model's components here.

        Parameters
        ----------
        cov_type : str, optional
            As in :meth:`fit` (default ``"HC2"``, ``"CR2"`` with clusters).
        by_stratum : bool
            One set of blocks per stratum (for one lambda per stratum).

        Returns
        -------
        PPIComponents

        Examples
        --------
        >>> import numpy as np, ppinfer
        >>> rng = np.random.default_rng(1)
        >>> y = rng.normal(size=400); yhat = y + rng.normal(scale=0.5, size=400)
        >>> model = ppinfer.Quantile(y, yhat, rng.normal(size=4000) * 1.1, q=0.5)
        >>> blocks = model.components("HC0")
        >>> lam = blocks.tuned_lambda(per_coefficient=True)
        >>> bool(blocks.covariance(lam)[0, 0] < blocks.var_y[0, 0])  # PPI++ beats classical
        True
        """
        cov_type = self._cov_type(cov_type)
        k = self.q.size
        classical = self._rectified_cdf("classical", cov_type)
        point, bse, _ = self._interval_bse(classical, np.zeros((k, 1)), None)
        indicator = classical.evaluate(point).blocks[0, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(indicator > 0, bse**2 / indicator, np.nan)
        blocks = self._rectified_cdf("ppi", cov_type, by_stratum).evaluate(point).blocks * scale
        components = _diagonal(blocks, off_diagonal=np.nan)
        return components if by_stratum else PPIComponents(*(block[0] for block in _fields(components)))


def _fields(components: PPIComponents) -> tuple[np.ndarray, ...]:
    return components.var_y, components.cov_yf, components.var_f, components.var_fu


def _diagonal(blocks: np.ndarray, off_diagonal: float = 0.0) -> PPIComponents:
    """Blocks (4, K, k) of k separate levels as K (k, k) diagonal problems."""
    K, k = blocks.shape[1:]
    out = np.full((4, K, k, k), off_diagonal)
    index = np.arange(k)
    out[:, :, index, index] = blocks
    return PPIComponents(*out)
