"""The rectified CDF of a quantile when the unlabeled sample is read partition by partition.

In memory, :class:`~ppinfer.models.rectified_cdf.RectifiedCDF` visits every
breakpoint of ``F(t; lam) = F_Y(t) + lam (F_u(t) - F_f(t))``: every value of the
labeled outcomes and predictions and of the ``N`` unlabeled predictions. With
``N`` in the billions the unlabeled values cannot all be held, but the
inversion only needs them near three places per level: the point estimate and
the two ends of the interval. :class:`PartitionedCDF` finds those places with
a bracketing search and gives the same numbers as the in-memory inversion.

*Nodes.* The search keeps a sorted set of points ``t`` (every labeled value, two
sentinels at -inf and +inf, and points added by the search) at which it knows
the unlabeled sample's sums exactly, on both sides (``<= t`` and ``< t``), per
stratum: the weight shares ``a(t) = sum alpha_i 1{u_i <= t}``, the variance
coefficients ``c(t) = sum c_i 1{u_i <= t}``, ``x(t) = sum_g C_g(t) K_g`` and
``p(t) = sum_g C_g(t)^2`` (``C_g(t)`` the coefficients of PSU ``g`` at most ``t``,
``K_g`` their total; for units without clusters ``x = p = sum c_i^2 1{u_i <= t}``).
One *counting pass* gives them at any set of points: each partition's values
are sorted, the points are searched among them (so the bins are runs of the
sorted values: bin ``2k`` strictly between points k - 1 and k, bin ``2k + 1``
equal to point k), and the sums are ``bincount``s over the bins, per PSU for a
clustered sample (a PSU x bin table, so the points are taken in chunks).
The unlabeled variance block at ``t`` follows exactly, with ``F = F_u(t)``:

    V_fu(t) = sum_h [p_h - 2 F x_h + F^2 R_h - (c_h - F C_h)^2 / G_h]

(``R_h``, ``C_h`` the stratum's totals, ``G_h`` its PSUs), the terms of the
in-memory CDF for two independent samples.

*Gaps.* Between two consecutive nodes the labeled CDFs are constant (every
labeled value is a node) and the unlabeled sums move monotonically from the
left node's ``<= t`` sums to the right node's ``< t`` sums. Interval arithmetic
on these ends bounds ``F(t; lam)`` and ``s(t; lam)`` over the gap, so the test
of the values inside a gap is *certain* (all accepted, or all rejected) or
*uncertain*. The point estimate is decided by the first node or gap where
``F`` may reach ``q``; the interval's ends by the first and last nodes or gaps
that may be accepted. A gap that decides and holds unlabeled rows is
*resolved*: its rows are gathered into memory (see :data:`COLLECT_CELLS`)
and each of their values becomes a node, or, if it holds more, it is split by
:data:`REFINE_POINTS` points spread between its smallest and largest inner
values. Each round is one pass over the unlabeled sample. The gaps between the
decisive places are never resolved: their values do not change the point
estimate or the interval's hull.

Supported designs: those whose samples are independent (weights, strata,
clusters and fpc of each sample; not two-phase designs or PSUs with units in
both samples). Naive pooling is not available on a partitioned sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.covariance import leverage_scale
from ..core.sources import reduce_rows
from ..designs.base import LABELED, UNLABELED
from .rectified_cdf import Cumulative, Evaluation, Points, RectifiedCDF, _Builder

#: numbers kept for the rows of the unlabeled sample gathered in one round of the search: each
#: gathered value becomes a node holding ``2 * len(FIELDS)`` sums per stratum (about 1.5 million
#: rows, 130 MB, without strata)
COLLECT_CELLS = 1 << 24

#: points that split a gap holding more rows than one round gathers
REFINE_POINTS = 256

#: cells of the PSU x bin table of one counting pass over a clustered sample
DENSE_CELLS = 1 << 23

#: rounds of the search before it gives up (each halves a gap's range by far more than 2)
MAX_ROUNDS = 60

#: F(t; lam) is a sum of fractions: "F equal to q" must survive rounding (as in quantile.scan)
ROUNDING = 1e-12

FIELDS = ("a", "c", "x", "p")


class _Tally:
    """Partial sums of one counting pass (added over partitions)."""

    def __init__(self, count, sums, dense, low, high, rows):
        self.count, self.sums, self.dense, self.low, self.high, self.rows = count, sums, dense, low, high, rows

    def merge(self, other: _Tally) -> _Tally:
        def add(a, b):
            return b if a is None else a if b is None else a + b

        rows = None if self.rows is None else [np.concatenate([a, b]) for a, b in zip(self.rows, other.rows)]
        return _Tally(self.count + other.count, {k: add(v, other.sums.get(k)) for k, v in self.sums.items()},
                      add(self.dense, other.dense), np.minimum(self.low, other.low),
                      np.maximum(self.high, other.high), rows)


@dataclass(frozen=True)
class _Count:
    """One counting pass at sorted ``points``: row counts, sums by stratum (or PSU) and bin,
    the smallest and largest value of each bin, and the rows of the bins in ``collect``."""

    points: np.ndarray
    total: float  # the unlabeled rows' total weight (rows without weights)
    root: np.ndarray  # (H,) square root of each stratum's factor
    nstrata: int
    npsu: int  # 0: every row its own unit
    collect: np.ndarray | None  # bins whose rows are gathered

    def __call__(self, values, weights, psu, strata) -> _Tally:
        values = np.ravel(values) if values.ndim > 1 else values
        B = 2 * self.points.size + 1
        # sorted once: each bin is a run of the sorted values, found by searching the points
        order = None if weights is None and psu is None and strata is None else np.argsort(values)
        ordered = np.sort(values) if order is None else values[order]
        edges = np.empty(B + 1, dtype=np.intp)
        edges[0], edges[-1] = 0, ordered.size
        edges[1:-1:2] = np.searchsorted(ordered, self.points, side="left")
        edges[2:-1:2] = np.searchsorted(ordered, self.points, side="right")
        count = np.diff(edges)
        filled = count > 0
        low, high = np.full(B, np.inf), np.full(B, -np.inf)
        low[filled], high[filled] = ordered[edges[:-1][filled]], ordered[edges[1:][filled] - 1]
        bins = np.repeat(np.arange(B), count)
        alpha = np.full(ordered.size, 1.0 / self.total) if weights is None else weights[order] / self.total
        sums, dense = {}, None
        if self.npsu:
            dense = np.bincount(psu[order] * B + bins, weights=alpha, minlength=self.npsu * B)
        else:
            h = np.zeros(ordered.size, dtype=np.intp) if strata is None else strata[order]
            index = h * B + bins if self.nstrata > 1 else bins
            coef = alpha * (self.root[h] if self.nstrata > 1 else self.root[0])
            sums["a"] = np.bincount(index, weights=alpha, minlength=self.nstrata * B)
            sums["x"] = np.bincount(index, weights=coef * coef, minlength=self.nstrata * B)
        rows = None
        if self.collect is not None:
            keep = np.concatenate([np.arange(edges[b], edges[b + 1]) for b in self.collect])
            if self.npsu:
                group = psu[order][keep]
            else:
                group = np.zeros(keep.size, dtype=np.intp) if strata is None else strata[order][keep]
            rows = [ordered[keep], alpha[keep], group]
        return _Tally(count, sums, dense, low, high, rows)


class _Nodes:
    """Points with the unlabeled sums on both sides, sorted, and what lies between them.

    ``t`` (M,); ``right[f]``, ``left[f]`` (H, M) for ``f`` in :data:`FIELDS` and
    ``n_right``, ``n_left`` (M,) row counts at most / below each point;
    ``low``, ``high`` (M - 1,) the smallest and largest unlabeled value strictly
    between consecutive nodes (NaN when unknown).
    """

    def __init__(self, t, right, left, n_right, n_left, low, high):
        self.t, self.right, self.left = t, right, left
        self.n_right, self.n_left, self.low, self.high = n_right, n_left, low, high

    @property
    def inside(self) -> np.ndarray:
        """Unlabeled rows strictly between consecutive nodes."""
        return self.n_left[1:] - self.n_right[:-1]

    def merge(self, other: _Nodes) -> _Nodes:
        """Both node sets (``other``'s sums where both have a point); a gap keeps the inner
        range of the set in which its two nodes were neighbours (``other``'s first)."""
        t = np.concatenate([other.t, self.t])
        merged_t, take = np.unique(t, return_index=True)

        def pick(a, b):
            return np.concatenate([a, b], axis=-1)[..., take]

        right = {f: pick(other.right[f], self.right[f]) for f in FIELDS}
        left = {f: pick(other.left[f], self.left[f]) for f in FIELDS}
        low, high = np.full(merged_t.size - 1, np.nan), np.full(merged_t.size - 1, np.nan)
        for nodes in (self, other):
            position = np.searchsorted(merged_t, nodes.t)
            neighbours = position[1:] - position[:-1] == 1
            low[position[:-1][neighbours]] = nodes.low[neighbours]
            high[position[:-1][neighbours]] = nodes.high[neighbours]
        return _Nodes(merged_t, right, left, pick(other.n_right, self.n_right), pick(other.n_left, self.n_left),
                      low, high)


class _Interval:
    """Interval arithmetic on arrays of (low, high) bounds."""

    __array_ufunc__ = None  # NumPy operands defer to the reflected methods below

    def __init__(self, low, high):
        self.low, self.high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)

    def __add__(self, other):
        other = _as_interval(other)
        return _Interval(self.low + other.low, self.high + other.high)

    __radd__ = __add__

    def __sub__(self, other):
        other = _as_interval(other)
        return _Interval(self.low - other.high, self.high - other.low)

    def __rsub__(self, other):
        return _as_interval(other) - self

    def __mul__(self, other):
        other = _as_interval(other)
        products = [self.low * other.low, self.low * other.high, self.high * other.low, self.high * other.high]
        return _Interval(np.minimum.reduce(products), np.maximum.reduce(products))

    __rmul__ = __mul__

    def square(self):
        low = np.where((self.low <= 0) & (self.high >= 0), 0.0, np.minimum(self.low**2, self.high**2))
        return _Interval(low, np.maximum(self.low**2, self.high**2))


def _as_interval(value) -> _Interval:
    return value if isinstance(value, _Interval) else _Interval(value, value)


class PartitionedCDF:
    """The rectified CDF with the labeled sample in memory and the unlabeled one partitioned.

    Built by :meth:`build`; used by :func:`ppinfer.models.quantile.scan` (through
    :meth:`invert`) and like a :class:`RectifiedCDF` (``evaluate``,
    ``nstrata``, ``inversions``). See the module docstring.
    """

    def __init__(self, labeled: RectifiedCDF, f_strata, predictions, weights, psu, strata, *, total, root,
                 counts, npsu, psu_strata, nstrata, by_stratum, cov_type):
        self.labeled, self.f_strata = labeled, f_strata
        self.columns = (predictions, weights, psu, strata)
        self.total, self.root, self.counts = total, root, counts
        self.npsu, self.psu_strata, self.H = npsu, psu_strata, nstrata
        self.by_stratum, self.cov_type = by_stratum, cov_type
        self.inversions: dict = {}
        #: per PSU: the multiplier of alpha in the coefficients (known after the first pass)
        self.psu_multiplier: np.ndarray | None = None
        #: the points of the last counting pass over a clustered sample and its PSU x bin coefficient sums
        self._psu_coef: tuple | None = None
        labeled_values = np.concatenate([s.values for s in labeled.streams.values()])
        self.labeled_points = np.unique(labeled_values)
        self.outcome_points = np.unique(labeled.streams["y"].values)
        self._nodes: _Nodes | None = None

    @property
    def nstrata(self) -> int:
        return self.H if self.by_stratum else 1

    @property
    def collect_rows(self) -> int:
        """Rows gathered into memory in one round (:data:`COLLECT_CELLS`)."""
        return max(1, COLLECT_CELLS // (2 * len(FIELDS) * self.H + 3))

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(cls, design, outcomes, predictions, predictions_unlabeled, *, cov_type: str,
              by_stratum: bool = False) -> PartitionedCDF:
        """The PPI rectified CDF of ``design`` (independent samples) for ``cov_type``;
        ``predictions_unlabeled`` is a column of the partitioned unlabeled sample."""
        builder = _Builder(design, cov_type)
        weights = design.fit_weights(LABELED)
        y = builder.stream("y", [(LABELED, outcomes, weights)])
        f = builder.stream("f", [(LABELED, predictions, weights)])
        counts = design.psu_counts(LABELED)
        H = design.nstrata
        if by_stratum:
            blocks, f_strata = [], []
            for h in range(H):
                mask = y.stratum_codes == h
                yh, fh = y.within(mask), f.within(mask)
                blocks.append((builder.variance(yh, yh, counts), builder.variance(yh, fh, counts),
                               builder.variance(fh, fh, counts), []))
                f_strata.append((Cumulative(fh.sorted, fh.alpha), fh.share()))
        else:
            blocks = [(builder.variance(y, y, counts), builder.variance(y, f, counts),
                       builder.variance(f, f, counts), [])]
            f_strata = None
        labeled = RectifiedCDF({"y": y, "f": f}, blocks)
        unlabeled = design.unlabeled
        total = unlabeled.weight_total()
        root = np.sqrt(np.broadcast_to(design.factors(UNLABELED, cov_type, 1), (H,)).astype(float))
        return cls(labeled, f_strata, predictions_unlabeled, design.phase_one_weights(UNLABELED), unlabeled.psu,
                   unlabeled.strata, total=total, root=root, counts=design.psu_counts(UNLABELED),
                   npsu=design.npsu if unlabeled.psu is not None else 0, psu_strata=design.psu_strata,
                   nstrata=H, by_stratum=by_stratum, cov_type=cov_type)

    # -- counting passes ---------------------------------------------------------------------------
    def _pass(self, points: np.ndarray, collect: np.ndarray | None = None) -> _Tally:
        count = _Count(points, float(self.total), self.root, self.H, self.npsu, collect)
        return reduce_rows(count, *self.columns)

    def _count(self, points: np.ndarray, collect_gaps: np.ndarray | None = None):
        """Nodes at sorted ``points`` (one pass; several for a clustered sample with many points),
        and the rows strictly inside the gaps ``collect_gaps`` (indices into ``points``' gaps)."""
        size = points.size
        if self.npsu and collect_gaps is None:
            # the PSU x bin table of a pass stays within DENSE_CELLS cells
            size = min(size, max(2, (DENSE_CELLS // self.npsu - 1) // 2))
        pieces, rows = [], None
        # consecutive chunks share a point, so that every gap lies within one pass
        step = max(size - 1, 1)
        for start in range(0, max(points.size - 1, 1), step):
            chunk = points[start : start + size]
            collect = None
            if collect_gaps is not None and start == 0:
                if size < points.size:
                    raise RuntimeError("internal: gathering rows needs its points in one pass")
                collect = 2 * (collect_gaps + 1)
            tally = self._pass(chunk, collect)
            pieces.append(self._nodes_from(chunk, tally))
            if tally.rows is not None:
                rows = tally.rows
        nodes = pieces[0]
        for piece in pieces[1:]:
            nodes = nodes.merge(piece)
        return nodes, rows

    def _nodes_from(self, points: np.ndarray, tally: _Tally) -> _Nodes:
        """Cumulative sums at the points from one pass's bins; a gap whose rows share one
        value gives that value as a node too."""
        B = 2 * points.size + 1
        count = np.cumsum(tally.count)
        if self.npsu:
            cells = np.cumsum(tally.dense.reshape(self.npsu, B), axis=1)  # alpha of each PSU at most each bin
            if self.psu_multiplier is None:
                self.psu_multiplier = self._multipliers(cells[:, -1])
            coef = cells * self.psu_multiplier[:, None]
            K = coef[:, -1:]
            cumulative = {"a": _by_stratum(cells, self.psu_strata, self.H),
                          "c": _by_stratum(coef, self.psu_strata, self.H),
                          "x": _by_stratum(coef * K, self.psu_strata, self.H),
                          "p": _by_stratum(coef * coef, self.psu_strata, self.H)}
            self._psu_coef = (points, coef)
        else:
            a = np.cumsum(tally.sums["a"].reshape(self.H, B), axis=1)
            x = np.cumsum(tally.sums["x"].reshape(self.H, B), axis=1)
            cumulative = {"a": a, "c": a * self.root[:, None], "x": x, "p": x}
        # node k: at most = bin 2k + 1, below = bin 2k; single-valued gaps: at most = bin 2k
        m = points.size
        inner = np.arange(0, B, 2)  # the gaps' bins
        single = (tally.count[inner] > 0) & (tally.low[inner] == tally.high[inner])
        at_most = np.r_[2 * np.arange(m) + 1, inner[single]]
        below_bins = np.r_[2 * np.arange(m), inner[single] - 1]
        t = np.r_[points, tally.low[inner[single]]]

        def at(cum, bins):
            out = np.zeros(cum.shape[:-1] + (bins.size,))
            ok = bins >= 0
            out[..., ok] = cum[..., bins[ok]]
            return out

        order = np.argsort(t, kind="stable")
        right = {f: at(v, at_most)[..., order] for f, v in cumulative.items()}
        left = {f: at(v, below_bins)[..., order] for f, v in cumulative.items()}
        n_right, n_left = at(count, at_most)[order], at(count, below_bins)[order]
        # inner ranges of the gaps between consecutive points (a single-valued gap splits into two empty ones)
        low = np.full(t.size - 1, np.nan)
        high = np.full(t.size - 1, np.nan)
        sorted_t = t[order]
        position = np.searchsorted(sorted_t, points)
        gap_low, gap_high = tally.low[inner[1:-1]], tally.high[inner[1:-1]]
        neighbours = position[1:] - position[:-1] == 1
        low[position[:-1][neighbours]] = gap_low[neighbours]
        high[position[:-1][neighbours]] = gap_high[neighbours]
        return _Nodes(sorted_t, right, left, n_right, n_left, low, high)

    def _multipliers(self, shares: np.ndarray) -> np.ndarray:
        """Each PSU's coefficient per unit of weight share: the square root of its stratum's
        factor, times the CR2 adjustment of its share of the weight."""
        multiplier = self.root[self.psu_strata].copy()
        if self.cov_type == "CR2":
            multiplier *= leverage_scale(shares, "CR2")
        return multiplier

    # -- evaluation at nodes -----------------------------------------------------------------------
    def _ensure_nodes(self) -> _Nodes:
        if self._nodes is None:
            points = np.r_[-np.inf, self.labeled_points, np.inf]
            self._nodes, _ = self._count(points)
        return self._nodes

    def _unlabeled_terms(self, sums: dict) -> tuple[np.ndarray, np.ndarray]:
        """``F_u`` (m,) and the unlabeled variance block of each stratum (H, m) from sums (H, m)."""
        nodes = self._ensure_nodes()
        totals = {f: nodes.right[f][:, -1:] for f in FIELDS}  # at +inf
        F = sums["a"].sum(axis=0)
        G = np.maximum(self.counts, 1.0)[:, None]
        centred = sums["c"] - F * totals["c"]
        variance = sums["p"] - 2.0 * F * sums["x"] + F * F * totals["x"] - centred * centred / G
        return F, variance

    def _labeled_terms(self, t: np.ndarray, side: str):
        points = Points(t, side)
        levels = self.labeled.levels(points)
        blocks = self.labeled.blocks(points, levels)
        f_parts = None
        if self.by_stratum:
            f_parts = np.array([cumulative(points) for cumulative, _ in self.f_strata])
        return levels, blocks, f_parts

    def _evaluation(self, t: np.ndarray, sums: dict, side: str) -> Evaluation:
        levels, blocks, f_parts = self._labeled_terms(t, side)
        F, variance = self._unlabeled_terms(sums)
        if self.by_stratum:
            nodes = self._nodes
            share_u = nodes.right["a"][:, -1]
            share_f = np.array([share for _, share in self.f_strata])
            slopes = sums["a"] - F * share_u[:, None] - (f_parts - F * share_f[:, None])
            blocks[3] = variance
        else:
            slopes = (F - levels["f"])[None]
            blocks[3, 0] = variance.sum(axis=0)
        return _Evaluation(levels["y"], slopes, blocks)

    def evaluate(self, t, side: str = "right") -> Evaluation:
        """The pieces at points ``t`` (one counting pass unless they are all nodes)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        nodes = self._ensure_nodes()
        position = np.clip(np.searchsorted(nodes.t, t), 0, nodes.t.size - 1)
        if np.all(nodes.t[position] == t):
            stored = nodes.right if side == "right" else nodes.left
            return self._evaluation(t, {f: stored[f][:, position] for f in FIELDS}, side)
        points = np.unique(t)
        fresh, _ = self._count(points)
        index = np.searchsorted(fresh.t, t)
        stored = fresh.right if side == "right" else fresh.left
        return self._evaluation(t, {f: stored[f][:, index] for f in FIELDS}, side)

    # -- the inversion ---------------------------------------------------------------------------
    def invert(self, q: np.ndarray, lam: np.ndarray, critical: np.ndarray | None, alternative: str):
        """Point estimates and (with ``critical``) the interval ends, as
        :func:`ppinfer.models.quantile.scan` finds them in memory."""
        for _ in range(MAX_ROUNDS):
            nodes = self._ensure_nodes()
            views = self._views(nodes)
            point, lower, upper = np.full(q.size, np.inf), np.full(q.size, np.inf), np.full(q.size, -np.inf)
            resolve: set[int] = set()
            for j in range(q.size):
                found, gaps = _decide(nodes, views, q[j], lam[j], None if critical is None else critical[j],
                                      alternative, self._bounds)
                point[j], lower[j], upper[j] = found
                resolve |= gaps
            if not resolve:
                return point, lower, upper
            self._resolve(nodes, np.array(sorted(resolve)))
        raise RuntimeError("the quantile's bracketing search did not converge; load the predictions into memory.")

    def _views(self, nodes: _Nodes):
        """Evaluations at every node, on both sides."""
        right = self._evaluation(nodes.t, nodes.right, "right")
        left = self._evaluation(nodes.t, nodes.left, "left")
        breakpoint = (nodes.n_right > nodes.n_left) | np.isin(nodes.t, self.labeled_points)
        return right, left, breakpoint, np.isin(nodes.t, self.outcome_points)

    def _bounds(self, nodes: _Nodes, gaps: np.ndarray, lam: np.ndarray):
        """Bounds of ``F(t; lam)`` and ``s(t; lam)`` over the inside of ``gaps``."""
        lo = {f: nodes.right[f][:, gaps] for f in FIELDS}
        hi = {f: nodes.left[f][:, gaps + 1] for f in FIELDS}
        box = {f: _Interval(lo[f], hi[f]) for f in FIELDS}
        t = nodes.t[gaps]
        # labeled pieces are constant inside a gap: those just after its left node
        levels, blocks, f_parts = self._labeled_terms(t, "right")
        totals = {f: nodes.right[f][:, -1:] for f in FIELDS}
        F = _Interval(lo["a"].sum(axis=0), hi["a"].sum(axis=0))
        G = np.maximum(self.counts, 1.0)[:, None]
        centred = box["c"] - F * totals["c"]
        variance = box["p"] - 2.0 * (F * box["x"]) + F.square() * totals["x"] - centred.square() * (1.0 / G)
        lam = np.asarray(lam, dtype=float)
        if self.by_stratum:
            share_u = totals["a"][:, 0][:, None]
            share_f = np.array([share for _, share in self.f_strata])[:, None]
            slopes = box["a"] - F * share_u - (f_parts - F * share_f)
            value = _Interval(levels["y"], levels["y"])
            unlabeled = _Interval(0.0, 0.0)
            for k in range(self.H):
                value = value + lam[k] * _Interval(slopes.low[k], slopes.high[k])
                unlabeled = unlabeled + (lam[k] ** 2) * _Interval(variance.low[k], variance.high[k])
            labeled_part = _labeled_variance(blocks, lam[:, None])
        else:
            value = levels["y"] + lam[0] * (F - levels["f"])
            unlabeled = (lam[0] ** 2) * _Interval(variance.low.sum(axis=0), variance.high.sum(axis=0))
            labeled_part = _labeled_variance(blocks, lam[:, None])
        total = unlabeled + labeled_part
        return value, np.sqrt(np.maximum(total.low, 0.0)), np.sqrt(np.maximum(total.high, 0.0))

    def _resolve(self, nodes: _Nodes, gaps: np.ndarray) -> None:
        """Resolve ``gaps``: gather the rows of the small ones, split the large ones (a pass each)."""
        inside = nodes.inside[gaps]
        gaps, inside = gaps[inside > 0], inside[inside > 0]
        order = np.argsort(inside, kind="stable")
        room = np.cumsum(inside[order]) <= self.collect_rows
        gather, split = np.sort(gaps[order][room]), np.sort(gaps[order][~room])
        gather_ends = nodes.t[gather], nodes.t[gather + 1]
        if split.size:
            low, high = nodes.low[split], nodes.high[split]
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise RuntimeError("internal: a gap to split has no known range")
            points = np.unique(np.concatenate([nodes.t[split], nodes.t[split + 1],
                                               *(np.linspace(a, b, REFINE_POINTS) for a, b in zip(low, high))]))
            fresh, _ = self._count(points)
            nodes = nodes.merge(fresh)
        if gather.size:
            lefts, rights = gather_ends
            points = np.unique(np.r_[lefts, rights])
            fresh, rows = self._count(points, np.searchsorted(points, lefts))
            nodes = nodes.merge(fresh)
            if rows is not None and rows[0].size:
                nodes = nodes.merge(self._gathered(nodes, *rows))
        self._nodes = nodes

    def _gathered(self, nodes: _Nodes, values, alpha, group) -> _Nodes:
        """Nodes at every gathered value: the sums at the gap's left node plus the gathered rows'."""
        t = np.unique(values)
        row_gap = np.searchsorted(nodes.t, values, side="left") - 1  # each row's left node
        t_gap = np.searchsorted(nodes.t, t, side="left") - 1
        if self.npsu:
            strata = self.psu_strata[group]
            coef = alpha * self.psu_multiplier[group]
            points, psu_coef = self._psu_coef
            position = np.searchsorted(points, nodes.t[row_gap])
            # adding c to a PSU's running sum s (from its sum at the gap's left node) adds c (2 s + c) to p
            key = row_gap.astype(np.int64) * self.npsu + group
            order = np.lexsort((values, key))
            running = _running_before(key[order], coef[order]) + psu_coef[group, 2 * position + 1][order]
            dp = np.empty_like(coef)
            dp[order] = coef[order] * (2.0 * running + coef[order])
            dx = coef * psu_coef[group, -1]
        else:
            strata = group
            coef = alpha * self.root[group]
            dp = dx = coef * coef
        increments = {"a": alpha, "c": coef, "x": dx, "p": dp}
        right = {f: nodes.right[f][:, t_gap].copy() for f in FIELDS}
        left = {f: nodes.right[f][:, t_gap].copy() for f in FIELDS}
        gap_start = nodes.t[t_gap]

        def within_gap(sorted_values, prefix, side):
            """Sums of the rows after the gap's left node and at most (or below) each t."""
            return prefix[np.searchsorted(sorted_values, t, side=side)] - \
                prefix[np.searchsorted(sorted_values, gap_start, side="right")]

        for h in np.unique(strata):
            rows = strata == h
            order = np.argsort(values[rows], kind="stable")
            v = values[rows][order]
            for f, inc in increments.items():
                prefix = np.r_[0.0, np.cumsum(inc[rows][order])]
                right[f][h] += within_gap(v, prefix, "right")
                left[f][h] += within_gap(v, prefix, "left")
        v = np.sort(values)
        ones = np.arange(v.size + 1)
        n_right = nodes.n_right[t_gap] + within_gap(v, ones, "right")
        n_left = nodes.n_right[t_gap] + within_gap(v, ones, "left")
        empty = np.full(t.size - 1, np.nan)  # no unlabeled value lies between gathered values
        return _Nodes(t, right, left, n_right, n_left, empty, empty.copy())


class _Evaluation(Evaluation):
    """An :class:`Evaluation` from pieces computed elsewhere."""

    def __init__(self, base, slopes, blocks):
        self.base, self.slopes = base, slopes
        self.__dict__["blocks"] = blocks


def _by_stratum(cells: np.ndarray, strata: np.ndarray, H: int) -> np.ndarray:
    out = np.zeros((H, cells.shape[1]))
    np.add.at(out, strata, cells)
    return out


def _running_before(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For rows sorted by group: the sum of the earlier rows' ``values`` in the same group."""
    exclusive = np.cumsum(values) - values
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    return exclusive - exclusive[first]


def _labeled_variance(blocks: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The labeled part of the variance, summed over strata (as :meth:`Evaluation.parts`)."""
    var_y, cov_yf, var_f = blocks[0], blocks[1], blocks[2]
    cross = cov_yf * lam
    return (var_y - cross - cross + lam * var_f * lam).sum(axis=0)


def _decide(nodes: _Nodes, views, q: float, lam: np.ndarray, critical: float | None, alternative: str, bounds):
    """Point estimate and interval ends of one level from the nodes, and the gaps that must be
    resolved before they are exact (see the module docstring)."""
    right, left, breakpoint, outcome_points = views
    lam = np.asarray(lam, dtype=float)
    M = nodes.t.size
    dirty = np.flatnonzero(nodes.inside > 0)
    if not np.any(lam != 0):
        # F is the outcomes' CDF: only their values are breakpoints, and no gap needs its rows
        breakpoint, dirty = outcome_points, dirty[:0]
    F_right, F_left = right.value(lam), left.value(lam)
    value, s_low, s_high = bounds(nodes, dirty, lam) if dirty.size else (None, None, None)
    resolve: set[int] = set()
    # the point estimate: the first breakpoint with F >= q, unless a gap before it may reach q
    reached = np.flatnonzero(breakpoint & (F_right - q >= -ROUNDING))
    first = reached[0] if reached.size else M
    may_reach = dirty[(dirty < first) & (value.high - q >= -ROUNDING)] if dirty.size else dirty
    point = np.inf
    if may_reach.size:
        resolve.update(int(k) for k in may_reach)
    elif first < M:
        point = nodes.t[first]
    if critical is None:
        return (point, np.inf, -np.inf), resolve
    c = critical
    s_right, s_left = np.sqrt(right.variance(lam)), np.sqrt(left.variance(lam))

    def not_low(F, s):
        return F - q >= -(c * s + ROUNDING)

    def not_high(F, s):
        return F - q <= c * s + ROUNDING

    if alternative == "two-sided":
        at = not_low(F_right, s_right) & not_high(F_left, s_left)
        after = not_low(F_right, s_right) & not_high(F_right, s_right)
    elif alternative == "larger":
        at = after = not_low(F_right, s_right)
    else:
        at, after = not_high(F_left, s_left), not_high(F_right, s_right)
    at = at & breakpoint
    # each gap: 0 clean (an open piece, judged by ``after`` at its left node), 1 rejected for sure,
    # 2 accepted for sure, 3 either
    state = np.zeros(M - 1, dtype=int)
    if dirty.size:
        low_sure = value.low - q >= -(c * s_low + ROUNDING)
        low_never = value.high - q < -(c * s_high + ROUNDING)
        high_sure = value.high - q <= c * s_low + ROUNDING
        high_never = value.low - q > c * s_high + ROUNDING
        if alternative == "two-sided":
            sure, never = low_sure & high_sure, low_never | high_never
        elif alternative == "larger":
            sure, never = low_sure, low_never
        else:
            sure, never = high_sure, high_never
        state[dirty] = np.where(never, 1, np.where(sure, 2, 3))
    lower = upper = np.nan
    # the smallest accepted value: node k, then the gap after it. Every gap that may hold accepted
    # values before the first value certainly accepted is resolved in the same round.
    started, last_dirty, pending = False, None, False
    for k in range(M):
        if at[k]:
            lower = np.nan if pending else nodes.t[k]
            break
        started |= bool(breakpoint[k])
        if k == M - 1:
            lower = np.nan if pending else np.inf
            break
        if state[k] == 0:
            if after[k] and started:
                if breakpoint[k]:
                    lower = np.nan if pending else nodes.t[k]
                else:  # the piece began at an unknown breakpoint of the last dirty gap
                    resolve.add(int(last_dirty))
                break
        elif state[k] == 1:
            started, last_dirty = True, k
        else:
            resolve.add(int(k))
            started, last_dirty, pending = True, k, True
            if state[k] == 2:
                break
    # the largest accepted value, walking backwards: the gap after node k, then node k
    following, following_dirty, pending = np.inf, None, False  # the next breakpoint (None: in a dirty gap)
    # some breakpoint at or before node k (a known one, or inside a dirty gap before it)
    started_at = np.logical_or.accumulate(breakpoint | np.r_[False, state > 0])
    for k in range(M - 1, -1, -1):
        if k < M - 1:
            if state[k] == 0:
                if after[k] and started_at[k]:
                    if following_dirty is not None:
                        resolve.add(int(following_dirty))
                    elif not pending:
                        upper = following
                    break
            elif state[k] == 1:
                following_dirty = k
            else:
                resolve.add(int(k))
                following_dirty, pending = k, True
                if state[k] == 2:
                    break
        if at[k]:
            upper = np.nan if pending else nodes.t[k]
            break
        if breakpoint[k]:
            following, following_dirty = nodes.t[k], None
        if k == 0:
            upper = np.nan if pending else -np.inf
    return (point, lower, upper), resolve

