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

from dataclasses import dataclass

import numpy as np

from .covariance import PPIComponents
from .fitting import cluster_correction


class SortedValues:
    """One sort of a value array, shared by every cumulative sum over it.

    ``positions(t)`` (a binary search per point) remembers its last query, so
    the several sums evaluated at the same points search once. The sorting
    permutation is only computed if a non-constant coefficient needs it.
    """

    def __init__(self, values: np.ndarray):
        self.raw = values
        self.values = np.sort(values)
        self._order: np.ndarray | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def order(self) -> np.ndarray:
        if self._order is None:
            self._order = np.argsort(self.raw, kind="stable")
        return self._order

    def positions(self, t: np.ndarray) -> np.ndarray:
        if self._last is None or self._last[0] is not t:
            self._last = (t, np.searchsorted(self.values, t, side="right"))
        return self._last[1]


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

    def __call__(self, t: np.ndarray) -> np.ndarray:
        positions = self.sorted.positions(t)
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

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return sum(part(t) for part in self.parts)


class PairSum:
    """``S_AB(t)`` of the module docstring for two indicator samples A and B."""

    def __init__(self, pairs: Cumulative, left: Cumulative, right: Cumulative, cross_total: float, factor: float = 1.0):
        self.pairs, self.left, self.right = pairs, left, right
        self.cross_total, self.factor = cross_total, factor

    def __call__(self, t: np.ndarray, cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
        value = self.pairs(t) - cdf_b * self.left(t) - cdf_a * self.right(t) + cdf_a * cdf_b * self.cross_total
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


@dataclass(frozen=True)
class Evaluation:
    """The rectified CDF's pieces at points ``t`` (m,), for K strata (K = 1 unstratified).

    ``value(lam) = base + sum_k lam_k slopes_k`` and the variance is
    ``sum_k components_k.covariance(lam_k)``, with the stratum weights already in
    ``base``, ``slopes`` and ``components``.
    """

    base: np.ndarray  # (m,)
    slopes: np.ndarray  # (K, m)
    components: PPIComponents  # blocks of shape (K, m, 1, 1)

    def value(self, lam: np.ndarray) -> np.ndarray:
        return self.base + np.tensordot(lam, self.slopes, axes=1)

    def variance(self, lam: np.ndarray) -> np.ndarray:
        blocks = self.components.covariance(np.asarray(lam, dtype=float)[:, None, None])
        return np.maximum(blocks[..., 0, 0].sum(axis=0), 0.0)

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
        self.y, self.yhat, self.unlabeled = y, yhat, yhat_unlabeled
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

    def pieces(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """``F_Y``, ``F_u - F_f`` and the blocks (var_y, cov_yf, var_f, var_fu) at ``t`` (m,)."""
        fy = self.cdf_y(t)
        zeros = np.zeros(t.shape)
        var_y = self.pair_yy(t, fy, fy)
        if self.cdf_f is None:
            return fy, zeros, (var_y, zeros, zeros, zeros)
        ff = self.cdf_f(t)
        fu = zeros if self.cdf_u is None else self.cdf_u(t)
        cov_yf = self.pair_yf(t, fy, ff)
        var_f = self.pair_ff(t, ff, ff)
        var_fu = zeros if self.pair_uu is None else self.pair_uu(t, fu, fu)
        if self.shared_clusters:
            # theta - F ~ sum_g [a^Y_g - lam (a^f_g - b_g)]: the unlabeled part joins within clusters
            cov_yf = cov_yf - self.pair_yu(t, fy, fu)
            var_f = var_f - 2.0 * self.pair_fu(t, ff, fu) + var_fu
            var_fu = zeros
        return fy, fu - ff, (var_y, cov_yf, var_f, var_fu)

    def evaluate(self, t: np.ndarray) -> Evaluation:
        return StratifiedCDF([self], np.ones(1)).evaluate(t)

    def sources(self) -> list[tuple[np.ndarray, bool]]:
        """Arrays whose values are the breakpoints of ``F``, each flagged when it
        holds predictions (breakpoints only where lambda is not 0)."""
        return [(self.y, False)] + [(a, True) for a in (self.yhat, self.unlabeled) if a is not None]

    def sorted_sources(self) -> list[tuple[np.ndarray, bool]]:
        """The same arrays, sorted."""
        cumulative = [(self.cdf_y, False), (self.cdf_f, True), (self.cdf_u, True)]
        return [(c.sorted.values, predictions) for c, predictions in cumulative if c is not None]


class StratifiedCDF:
    """Stratified rectified CDF: ``sum_k W_k F_k(t; lam_k)``, variance ``sum_k W_k^2 V_k``
    (Fisch et al. 2024), one :class:`RectifiedCDF` per stratum."""

    def __init__(self, strata: list[RectifiedCDF], shares: np.ndarray):
        self.strata, self.shares = strata, np.asarray(shares, dtype=float)

    def evaluate(self, t: np.ndarray) -> Evaluation:
        base = np.zeros(t.shape)
        slopes, blocks = [], []
        for cdf, share in zip(self.strata, self.shares):
            fy, slope, stratum_blocks = cdf.pieces(t)
            base += share * fy
            slopes.append(share * slope)
            blocks.append([share**2 * b for b in stratum_blocks])
        # (K, m, 1, 1): K strata of m one-parameter problems
        stacked = [np.stack([stratum[j] for stratum in blocks])[..., None, None] for j in range(4)]
        return Evaluation(base, np.stack(slopes), PPIComponents(*stacked))

    def sources(self) -> list[tuple[np.ndarray, bool]]:
        return [source for cdf in self.strata for source in cdf.sources()]

    def sorted_sources(self) -> list[tuple[np.ndarray, bool]]:
        return [source for cdf in self.strata for source in cdf.sorted_sources()]


def next_breakpoint(cdf: "RectifiedCDF | StratifiedCDF", t: float, with_predictions: bool) -> float:
    """The smallest breakpoint of ``F`` above ``t`` (``inf`` if none): ``F`` is
    constant on ``[t, next)``, so a test that accepts ``t`` accepts all of it."""
    following = np.inf
    for values, predictions in cdf.sorted_sources():
        if predictions and not with_predictions:
            continue
        position = np.searchsorted(values, t, side="right")
        if position < values.size:
            following = min(following, float(values[position]))
    return following
