"""The rectified CDF behind prediction-powered quantiles, and its variance at any point.

At a point ``t`` the quantile problem is a mean problem on indicators: the
rectified CDF ``F(t; lam) = F_Y(t) + lam * (F_u(t) - F_f(t))`` combines the
(weighted) empirical CDFs of the labeled outcomes ``Y``, the labeled predictions
``f`` and the unlabeled predictions ``u``, and its variance has the blocks of
:class:`~ppinfer.covariance.PPIComponents` for indicator means. Every block is a
sum over clusters (a unit is its own cluster without clustering) of products of
centred indicator sums,

    S_AB(t) = sum_g [sum_{i in g} alpha_i (1{a_i <= t} - F_A)] [sum_{j in g} beta_j (1{b_j <= t} - F_B)]
            = P(t) - F_B Q_A(t) - F_A Q_B(t) + F_A F_B R,

with ``P(t)`` the sum of ``alpha_i beta_j`` over same-cluster pairs with both values
at most ``t``, ``Q_A(t) = sum_{a_i <= t} alpha_i B_g(i)``, ``Q_B`` likewise and
``R = sum_g A_g B_g`` (``A_g``, ``B_g`` cluster totals of the coefficients). Each is a
cumulative sum over sorted values, so evaluating all breakpoints costs
O((n + N) log(n + N)) time and O(n + N) memory, without a grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np

from .covariance import PPIComponents
from .fitting import cluster_correction


class SortedValues:
    """One sort of a value array, shared by every cumulative sum over it.

    The sorting permutation is only computed if a non-constant coefficient needs it.
    """

    def __init__(self, values: np.ndarray):
        self.raw = values
        self.values = np.sort(values)
        self._order: np.ndarray | None = None

    @property
    def order(self) -> np.ndarray:
        if self._order is None:
            self._order = np.argsort(self.raw, kind="stable")
        return self._order


class Points:
    """Points ``t`` and their positions in sorted samples.

    The position of ``t`` in a sample is the number of its values at most ``t``
    (``side="right"``: the right-continuous CDF at ``t``) or below ``t``
    (``side="left"``: the CDF's left limit at ``t``). Every cumulative sum over a
    sample reads these positions; they are found by binary search on first
    request, once per sample, unless the caller supplies them (the breakpoint
    grid does, without searching).
    """

    def __init__(self, values: np.ndarray, side: str = "right", positions: dict | None = None):
        self.values, self.side = np.asarray(values, dtype=float), side
        self._positions = dict(positions or {})
        self._runs: dict = {}

    def __len__(self) -> int:
        return self.values.shape[0]

    def positions(self, sample: SortedValues) -> np.ndarray:
        if sample not in self._positions:
            self._positions[sample] = np.searchsorted(sample.values, self.values, side=self.side)
        return self._positions[sample]

    def runs(self, samples: list[SortedValues]) -> tuple["Points", np.ndarray]:
        """The first point of each run of consecutive points with the same
        positions in all of ``samples``, and the runs' lengths: anything computed
        from these samples alone is computed once per run and repeated."""
        key = tuple(samples)
        if key not in self._runs:
            self._runs[key] = self._find_runs(samples)
        return self._runs[key]

    def _find_runs(self, samples: list[SortedValues]) -> tuple["Points", np.ndarray]:
        changed = np.zeros(len(self), dtype=bool)
        changed[0] = True
        for sample in samples:
            position = self.positions(sample)
            changed[1:] |= position[1:] != position[:-1]
        starts = np.flatnonzero(changed)
        first = Points(self.values[starts], self.side, {sample: self.positions(sample)[starts] for sample in samples})
        return first, np.diff(np.append(starts, len(self)))


def _counts_at_most(part: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``#{v in part : v <= t_i}`` for sorted ``part`` and sorted ``t``, in linear time:
    ``part[j] <= t_i`` exactly when ``i`` is at least the number of ``t`` below ``part[j]``."""
    below = np.searchsorted(t, part, side="left")
    return np.repeat(np.arange(part.size + 1), np.diff(np.concatenate([[0], below, [t.size]])))


def breakpoint_chunks(sources: list[SortedValues], samples: list[SortedValues], size: int) -> Iterator[Points]:
    """The distinct values of ``sources`` in increasing order, in chunks.

    Each chunk holds the values between two consecutive cut points (every
    ``size``-th value of the largest source) and carries its positions in every
    sorted array of ``samples``. No binary search runs over the chunk and nothing
    is sorted but the other sources' few values in its range: these are inserted
    into the largest source's sorted slice; a small slice's positions follow
    from where its values fall in the chunk, the largest source's from the
    count of all merged values at most ``t`` less the other sources' counts.
    """
    largest = max(sources, key=lambda source: source.values.size)
    cuts = np.unique(largest.values[size::size])
    everything = list(dict.fromkeys([*sources, *samples]))
    # chunk c holds the values from cut c - 1 (included) to cut c (excluded)
    ends = {s: np.searchsorted(s.values, cuts, side="left") for s in everything}
    for chunk in range(cuts.size + 1):
        span = {}
        for s in everything:
            lo = 0 if chunk == 0 else int(ends[s][chunk - 1])
            hi = s.values.size if chunk == cuts.size else int(ends[s][chunk])
            span[s] = (lo, hi)
        merged = largest.values[slice(*span[largest])]
        others = [s.values[slice(*span[s])] for s in sources if s is not largest]
        if others:
            # a few values from the other sources go into the largest one's sorted slice
            inserted = np.sort(np.concatenate(others))
            merged = np.insert(merged, np.searchsorted(merged, inserted), inserted)
        if merged.size == 0:
            continue
        starts = np.flatnonzero(np.concatenate([[True], merged[1:] != merged[:-1]]))
        t = merged[starts]
        within = {s: _counts_at_most(s.values[slice(*span[s])], t) for s in everything if s is not largest}
        at_most = np.concatenate([starts[1:], [merged.size]])
        within[largest] = at_most - sum((within[s] for s in sources if s is not largest), np.zeros(t.size, dtype=np.intp))
        yield Points(t, positions={s: span[s][0] + within[s] for s in samples})


class Cumulative:
    """``t -> sum_{v_i <= t} c_i`` for coefficients ``c`` over sorted values.

    A scalar ``c`` (the same for every value, as in unweighted samples) needs no
    cumulative array: the sum is ``c`` times the number of values at most ``t``.
    """

    def __init__(self, values: np.ndarray | SortedValues, coefficients: np.ndarray | float):
        self.sorted = values if isinstance(values, SortedValues) else SortedValues(values)
        if np.ndim(coefficients) == 0:
            self.constant, self.sums = float(coefficients), None
        else:
            self.constant = None
            self.sums = np.concatenate([[0.0], np.cumsum(coefficients[self.sorted.order])])

    @property
    def total(self) -> float:
        if self.sums is None:
            return self.constant * self.sorted.values.size
        return float(self.sums[-1])

    def __call__(self, points: Points) -> np.ndarray:
        positions = points.positions(self.sorted)
        return positions * self.constant if self.sums is None else self.sums[positions]


def _sum_before(groups: np.ndarray, contributions: np.ndarray) -> np.ndarray:
    """For rows sorted by cluster: the sum of ``contributions`` of the earlier rows
    of the same cluster (exclusive running sums, restarted at each cluster)."""
    exclusive = np.cumsum(contributions) - contributions
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    return exclusive - exclusive[first]


def _cluster_order(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Positions ordered by cluster, then by value within a cluster."""
    order = np.argsort(values, kind="stable")
    return order[np.argsort(groups[order], kind="stable")]


class _Sum:
    """The sum of several cumulative sums at the same points."""

    def __init__(self, *parts: Cumulative):
        self.parts = parts

    def __call__(self, points: Points) -> np.ndarray:
        return sum(part(points) for part in self.parts)


class PairSum:
    """``S_AB(t)`` of the module docstring for two indicator samples A and B."""

    def __init__(self, pairs: Cumulative, left: Cumulative, right: Cumulative, cross_total: float, factor: float = 1.0):
        self.pairs, self.left, self.right = pairs, left, right
        self.cross_total, self.factor = cross_total, factor

    def __call__(self, points: Points, cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
        value = self.pairs(points) - cdf_b * self.left(points) - cdf_a * self.right(points) + cdf_a * cdf_b * self.cross_total
        return self.factor * value

    @classmethod
    def same_units(
        cls, a: SortedValues, b: SortedValues, coefficient: np.ndarray, joint: SortedValues | None = None
    ) -> "PairSum":
        """Unclustered, A and B measured on the same units (``a_i``, ``b_i`` of unit i):
        the product ``1{a_i <= t} 1{b_i <= t}`` is ``1{max(a_i, b_i) <= t}``, the CDF of
        ``joint`` (the sorted maxima; ``a`` itself when A is B)."""
        left = Cumulative(a, coefficient)
        if b is a:
            return cls(left, left, left, left.total)
        return cls(Cumulative(joint, coefficient), left, Cumulative(b, coefficient), left.total)

    @classmethod
    def clustered(
        cls,
        a: SortedValues, alpha: np.ndarray, groups_a: np.ndarray,
        b: SortedValues, beta: np.ndarray, groups_b: np.ndarray,
        ngroups: int, factor: float,
    ) -> "PairSum":
        """A and B in clusters (integer codes in ``range(ngroups)``, shared)."""
        totals_a = np.bincount(groups_a, weights=alpha, minlength=ngroups)
        totals_b = np.bincount(groups_b, weights=beta, minlength=ngroups)
        # merge the events and order them by cluster, then by value within a cluster
        size_a = a.raw.size
        order = _cluster_order(np.concatenate([a.raw, b.raw]), np.concatenate([groups_a, groups_b]))
        groups = np.concatenate([groups_a, groups_b])[order]
        coefficients = np.concatenate([alpha, beta])[order]
        from_b = order >= size_a
        # an event closes a pair with every earlier same-cluster event of the other kind
        before_a = _sum_before(groups, np.where(from_b, 0.0, coefficients))
        before_b = _sum_before(groups, np.where(from_b, coefficients, 0.0))
        event = np.empty(order.size)
        event[order] = coefficients * np.where(from_b, before_a, before_b)
        # P(t) sums the events of both samples: one cumulative sum over each
        pairs = _Sum(Cumulative(a, event[:size_a]), Cumulative(b, event[size_a:]))
        return cls(
            pairs,
            Cumulative(a, alpha * totals_b[groups_a]),
            Cumulative(b, beta * totals_a[groups_b]),
            float(totals_a @ totals_b),
            factor,
        )

    @classmethod
    def clustered_self(
        cls, a: SortedValues, alpha: np.ndarray, groups: np.ndarray, ngroups: int, factor: float
    ) -> "PairSum":
        """``S_AA(t)`` for one clustered sample: ordered pairs, each unit with itself included."""
        totals = np.bincount(groups, weights=alpha, minlength=ngroups)
        order = _cluster_order(a.raw, groups)
        c = alpha[order]
        # adding c to a cluster's running sum s adds (s + c)^2 - s^2 = c (2 s + c)
        event = np.empty(order.size)
        event[order] = c * (2.0 * _sum_before(groups[order], c) + c)
        left = Cumulative(a, alpha * totals[groups])
        return cls(Cumulative(a, event), left, left, float(totals @ totals), factor)


def _scaled(share: float, values: np.ndarray) -> np.ndarray:
    return values if share == 1.0 else share * values


def _stacked(per_stratum: list[np.ndarray]) -> np.ndarray:
    """(K, m) from K arrays (m,); a view when K = 1, the unstratified scan's case."""
    return per_stratum[0][None] if len(per_stratum) == 1 else np.stack(per_stratum)


def _total(per_stratum) -> np.ndarray:
    """The sum over strata (the first axis); no copy when K = 1."""
    return per_stratum[0] if len(per_stratum) == 1 else np.sum(per_stratum, axis=0)


class Evaluation:
    """The rectified CDF's pieces at points (m,), for K strata (K = 1 unstratified).

    ``value(lam) = base + sum_k lam_k slopes_k`` and the variance is the sum over
    strata of the :class:`PPIComponents` formula, with the stratum weights already
    in ``base``, ``slopes`` and the blocks. ``lam`` is (K,) (one lambda per stratum)
    or (K, m) (one per stratum and point). The variance blocks are computed on
    first use: a scan for the point estimate alone never needs them.
    """

    def __init__(self, strata: list[tuple["RectifiedCDF", float]], points: Points):
        self._strata, self.points = strata, points
        self._levels = [cdf.levels(points) for cdf, _ in strata]
        self.base = _total([_scaled(share, fy) for (_, share), (fy, _, _) in zip(strata, self._levels)])
        self.slopes = _stacked([_scaled(share, fu - ff) for (_, share), (_, ff, fu) in zip(strata, self._levels)])

    @cached_property
    def blocks(self) -> tuple[np.ndarray, ...]:
        """(var_y, cov_yf, var_f, var_fu), each (K, m)."""
        per_stratum = [
            [_scaled(share**2, block) for block in cdf.blocks(self.points, *levels)]
            for (cdf, share), levels in zip(self._strata, self._levels)
        ]
        return tuple(_stacked([stratum[j] for stratum in per_stratum]) for j in range(4))

    @property
    def components(self) -> PPIComponents:
        """The blocks as K strata of m one-parameter problems: shape (K, m, 1, 1)."""
        return PPIComponents(*(block[..., None, None] for block in self.blocks))

    @staticmethod
    def _per_point(lam) -> np.ndarray:
        lam = np.asarray(lam, dtype=float)
        return lam[:, None] if lam.ndim == 1 else lam

    def value(self, lam) -> np.ndarray:
        return self.base + _total(self._per_point(lam) * self.slopes)

    def variance(self, lam) -> np.ndarray:
        lam = self._per_point(lam)
        var_y, cov_yf, var_f, var_fu = self.blocks
        # the order of operations of PPIComponents.covariance, so that both give the same numbers
        cross = cov_yf * lam
        return np.maximum(_total(var_y - cross - cross + lam * (var_f + var_fu) * lam), 0.0)

    def tuned_lambda(self) -> np.ndarray:
        """(K, m) variance-minimising lambdas, clipped to [0, 1]."""
        return self.components.tuned_lambda(per_coefficient=True)[..., 0]


class RectifiedCDF:
    """Rectified CDF of one (unstratified) labeled/unlabeled pair of samples.

    Parameters
    ----------
    y, yhat : (n,) arrays
        Labeled outcomes and predictions.
    yhat_unlabeled : (N,) array or None
        Unlabeled predictions (None for a labeled-only CDF: classical or naive).
    weights, weights_unlabeled : arrays, optional
        Row weights of each sample.
    label_prob : (n,) array, optional
        Known labeling probabilities: ``yhat_unlabeled`` must then hold every
        unit's prediction, the labeled rows are weighted by ``1 / label_prob``, and
        the blocks follow :meth:`PPIComponents.from_labeling_probabilities`.
    groups, groups_unlabeled : integer arrays, optional
        Cluster codes in ``range(ngroups)``, shared by both samples.
    """

    def __init__(
        self,
        y: np.ndarray,
        yhat: np.ndarray | None = None,
        yhat_unlabeled: np.ndarray | None = None,
        *,
        weights: np.ndarray | None = None,
        weights_unlabeled: np.ndarray | None = None,
        label_prob: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        groups_unlabeled: np.ndarray | None = None,
        ngroups: int = 0,
    ):
        n = y.shape[0]
        #: results of quantile inversions on this CDF, memoised by the scan
        self.inversions: dict = {}
        # each labeled row's coefficient in the (weighted) CDFs: a scalar when unweighted
        if label_prob is not None:
            alpha = (1.0 / label_prob) / (1.0 / label_prob).sum()
        elif weights is not None:
            alpha = weights / weights.sum()
        else:
            alpha = np.full(n, 1.0 / n) if groups is not None else 1.0 / n
        sorted_y = SortedValues(y)
        sorted_f = None if yhat is None else SortedValues(yhat)
        sorted_u = None if yhat_unlabeled is None else SortedValues(yhat_unlabeled)
        self.cdf_y = Cumulative(sorted_y, alpha)
        self.cdf_f = None if yhat is None else Cumulative(sorted_f, alpha)
        self.cdf_u = None
        if yhat_unlabeled is not None:
            size = yhat_unlabeled.shape[0]
            if weights_unlabeled is not None:
                beta = weights_unlabeled / weights_unlabeled.sum()
            else:
                beta = np.full(size, 1.0 / size) if groups_unlabeled is not None else 1.0 / size
            self.cdf_u = Cumulative(sorted_u, beta)
        self.shared_clusters = groups is not None and groups_unlabeled is not None and yhat_unlabeled is not None
        self.pair_yf = self.pair_ff = None
        joint = None
        # the variance blocks as pair sums (see the module docstring)
        if groups is None:
            keep = alpha**2 if label_prob is None else (1.0 - label_prob) * alpha**2
            both = alpha**2 if label_prob is None else (1.0 - 2.0 * label_prob) * alpha**2
            self.pair_yy = PairSum.same_units(sorted_y, sorted_y, alpha**2)
            if yhat is not None:
                joint = SortedValues(np.maximum(y, yhat))
                self.pair_yf = PairSum.same_units(sorted_y, sorted_f, keep, joint)
                self.pair_ff = PairSum.same_units(sorted_f, sorted_f, both)
        else:
            factor = cluster_correction([groups]) ** 2
            self.pair_yy = PairSum.clustered_self(sorted_y, alpha, groups, ngroups, factor)
            if yhat is not None:
                self.pair_yf = PairSum.clustered(sorted_y, alpha, groups, sorted_f, alpha, groups, ngroups, factor)
                self.pair_ff = PairSum.clustered_self(sorted_f, alpha, groups, ngroups, factor)
        self.pair_uu = self.pair_yu = self.pair_fu = None
        if yhat_unlabeled is not None:
            if groups_unlabeled is None:
                self.pair_uu = PairSum.same_units(sorted_u, sorted_u, beta**2)
            else:
                factor_u = cluster_correction([groups_unlabeled]) ** 2
                self.pair_uu = PairSum.clustered_self(sorted_u, beta, groups_unlabeled, ngroups, factor_u)
            if self.shared_clusters:
                cross = np.sqrt(factor * factor_u)
                self.pair_yu = PairSum.clustered(sorted_y, alpha, groups, sorted_u, beta, groups_unlabeled, ngroups, cross)
                self.pair_fu = PairSum.clustered(sorted_f, alpha, groups, sorted_u, beta, groups_unlabeled, ngroups, cross)
        self._labeled_samples = [sample for sample in (sorted_y, sorted_f, joint) if sample is not None]
        self._samples = [*self._labeled_samples, *([] if sorted_u is None else [sorted_u])]

    def _labeled_levels(self, points: Points) -> tuple[np.ndarray, np.ndarray]:
        fy = self.cdf_y(points)
        return fy, np.zeros(len(points)) if self.cdf_f is None else self.cdf_f(points)

    def _labeled_blocks(self, points: Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fy, ff = self._labeled_levels(points)
        var_y = self.pair_yy(points, fy, fy)
        if self.cdf_f is None:
            return var_y, np.zeros(len(points)), np.zeros(len(points))
        return var_y, self.pair_yf(points, fy, ff), self.pair_ff(points, ff, ff)

    def _once_per_labeled_run(self, points: Points, compute) -> tuple[np.ndarray, ...]:
        """``compute(points)``, a function of the labeled positions alone: with an
        unlabeled sample most breakpoints are its values, and the labeled terms
        change only at the few labeled ones."""
        if self.cdf_u is None:
            return compute(points)
        first, lengths = points.runs(self._labeled_samples)
        return tuple(np.repeat(values, lengths) for values in compute(first))

    def levels(self, points: Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``F_Y``, ``F_f`` and ``F_u`` at ``points`` (zeros for an absent sample)."""
        fy, ff = self._once_per_labeled_run(points, self._labeled_levels)
        fu = np.zeros(len(points)) if self.cdf_u is None else self.cdf_u(points)
        return fy, ff, fu

    def blocks(self, points: Points, fy: np.ndarray, ff: np.ndarray, fu: np.ndarray) -> tuple[np.ndarray, ...]:
        """The variance blocks (var_y, cov_yf, var_f, var_fu) at ``points``, given
        the CDFs there."""
        var_y, cov_yf, var_f = self._once_per_labeled_run(points, self._labeled_blocks)
        if self.cdf_f is None:
            return var_y, cov_yf, var_f, np.zeros(len(points))
        var_fu = np.zeros(len(points)) if self.pair_uu is None else self.pair_uu(points, fu, fu)
        if self.shared_clusters:
            # theta - F ~ sum_g [a^Y_g - lam (a^f_g - b_g)]: the unlabeled part joins within clusters
            cov_yf = cov_yf - self.pair_yu(points, fy, fu)
            var_f = var_f - 2.0 * self.pair_fu(points, ff, fu) + var_fu
            var_fu = np.zeros(len(points))
        return var_y, cov_yf, var_f, var_fu

    def pieces(self, t: np.ndarray | Points) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """``F_Y``, ``F_u - F_f`` and the blocks (var_y, cov_yf, var_f, var_fu) at ``t`` (m,)."""
        points = t if isinstance(t, Points) else Points(t)
        fy, ff, fu = self.levels(points)
        return fy, fu - ff, self.blocks(points, fy, ff, fu)

    def evaluate(self, t: np.ndarray | Points, side: str = "right") -> Evaluation:
        """The pieces at ``t``; ``side="left"`` gives the left limits ``F(t-)`` and their variances."""
        return Evaluation([(self, 1.0)], t if isinstance(t, Points) else Points(t, side))

    def samples(self) -> list[SortedValues]:
        """Every sorted array a cumulative sum of this CDF reads."""
        return self._samples

    def breakpoint_samples(self, with_predictions: bool) -> list[SortedValues]:
        """The sorted arrays whose values are the breakpoints of ``F``: the outcomes, and
        the predictions too when lambda is not 0."""
        extra = [c.sorted for c in (self.cdf_f, self.cdf_u) if c is not None] if with_predictions else []
        return [self.cdf_y.sorted, *extra]

    def breakpoints(self, with_predictions: bool, size: int) -> Iterator[Points]:
        """The breakpoints of ``F`` in increasing order, in chunks of about ``size``."""
        return breakpoint_chunks(self.breakpoint_samples(with_predictions), self.samples(), size)


class StratifiedCDF:
    """Stratified rectified CDF: ``sum_k W_k F_k(t; lam_k)``, variance ``sum_k W_k^2 V_k``
    (Fisch et al. 2024), one :class:`RectifiedCDF` per stratum."""

    def __init__(self, strata: list[RectifiedCDF], shares: np.ndarray):
        self.strata, self.shares = strata, np.asarray(shares, dtype=float)
        self.inversions: dict = {}

    def evaluate(self, t: np.ndarray | Points, side: str = "right") -> Evaluation:
        points = t if isinstance(t, Points) else Points(t, side)
        return Evaluation(list(zip(self.strata, self.shares)), points)

    def samples(self) -> list[SortedValues]:
        return [sample for cdf in self.strata for sample in cdf.samples()]

    def breakpoint_samples(self, with_predictions: bool) -> list[SortedValues]:
        return [sample for cdf in self.strata for sample in cdf.breakpoint_samples(with_predictions)]

    def breakpoints(self, with_predictions: bool, size: int) -> Iterator[Points]:
        return breakpoint_chunks(self.breakpoint_samples(with_predictions), self.samples(), size)
