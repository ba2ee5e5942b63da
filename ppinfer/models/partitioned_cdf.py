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
equal to point k), and the sums are ``bincount``s of per-row weights over the
bins (see *Clusters* for a clustered sample). The unlabeled variance block at
``t`` follows exactly, with ``F = F_u(t)``:

    V_fu(t) = sum_h [p_h - 2 F x_h + F^2 R_h - (c_h - F C_h)^2 / G_h]

(``R_h``, ``C_h`` the stratum's totals, ``G_h`` its PSUs), the terms of the
in-memory CDF for two independent samples.

*Clusters.* Before its first count a clustered sample takes one pass over its
weights and PSU labels (:meth:`PartitionedCDF._scan_psu`): each PSU's share of
the weight (hence its coefficients' multiplier, CR2's included, and their total
``K_g``) and the partitions holding its rows. The fields are then sums of
per-row weights too: ``alpha_j``, ``c_j``, ``c_j K_g`` for a, c and x, and for p,
when the rows of j's PSU all lie in one partition, ``c_j (c_j + 2 S_j)``, ``S_j``
the coefficients of the PSU's rows before j when the partition's rows are
sorted by PSU, then value: their sum over the rows at most ``t`` is
``sum_g C_g(t)^2`` (tied rows of a PSU enter together, so their order does not
matter). Only the PSUs whose rows lie in several partitions keep a PSU x bin
table of their coefficients, from which their ``C_g(t)^2`` is summed (at most
:data:`DENSE_CELLS` cells a pass: the points are taken in chunks when many
PSUs span partitions). When a file stores each PSU's rows together, the passes
do not grow with the number of PSUs. Each pass checks that the other PSUs still
lie in one partition.

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

*Designs joining the samples.* A two-phase design, or one whose PSUs have units
in both samples, has one variance, of the labeled rows' ``(Y, f - u)`` and the
unlabeled rows' ``(0, -u)`` (as in memory, with the PSU counts of both samples):
``cov_yf`` gains ``-V(y, u)`` and ``var_f`` gains ``-2 V(f, u) + V(u, u)``, ``u`` the
all-units fit of the predictions. In a two-phase design ``u`` also holds the
labeled rows' predictions (first-phase weights; the shares are of both parts'
weight). Write ``u = u_L + u_U`` (labeled rows, in memory; unlabeled rows,
counted) and ``A_g = C^A_g(t) - F_A K^A_g`` for a fit A and PSU g (``C`` its
coefficients at most ``t``, ``K`` their total). Then (:class:`_Joint`):

* the pair sums over PSUs of ``y``, ``f`` and ``u_L`` with ``u_L`` are labeled terms,
  centred by the whole fit's ``F_u(t)``;
* ``u_L``'s weight shares and coefficients per stratum join the unlabeled sample's
  ``a`` and ``c`` (so ``F_u`` and the stratum centring include them), and the fields
  ``x`` and ``p`` give ``sum_g (U^U_g)^2``;
* a PSU with units in both samples adds ``sum_g A_g U^U_g = m_A - F_A k_A - F_u l_A
  + F_A F_u r_A`` for A in (y, f, u_L): ``m_A = sum_g C^A_g(t) C^U_g(t)`` and
  ``k_A = sum_g K^A_g C^U_g(t)`` are counted at the nodes as further fields,
  ``l_A = sum_g C^A_g(t) K^U_g`` and ``r_A`` follow from the labeled rows once the PSU
  totals ``K^U_g`` are known. A pair of a labeled row i and an unlabeled row j of one
  PSU enters ``m_A`` at ``max(v_i, u_j)``, so ``m_A(t) = sum_{u_j <= t} c_j C^A_g(u_j)
  + sum_{v_i <= t} c^A_i D_i``, ``D_i`` the unlabeled coefficients of i's PSU strictly
  below ``v_i`` (summed over the partitions; :class:`_PsuSums`): a per-row weight and a
  labeled cumulative sum. ``k_A`` has the per-row weight ``c_j K^A_g``. Both are linear
  in ``C^U_g`` and need no table, whatever the partitions holding a PSU.

Inside a gap every labeled ``C^A_g`` is constant and non-negative and every
``C^U_g`` non-decreasing, so ``m_A`` and ``k_A`` are monotone there like the other
fields, and the interval arithmetic bounds these terms too (``F_u`` moving in the gap).
Gathered rows bring their pass's per-row weights as their increments of the sums (a PSU
spanning partitions: its running sums from the table's sum at the gap's left node).

*Naive pooling* (:meth:`PartitionedCDF.build_pooled`) inverts the CDF of one sample made
of the outcomes (first-phase weights in a two-phase design) and the unlabeled predictions,
with the PSU counts of both samples, as in memory. It is the all-units fit ``u`` above with
the outcomes in place of the labeled predictions: ``F(t) = F_u(t)`` and its variance is
``V(u, u)`` alone (the labeled rows' pair sums, the unlabeled sums and, for PSUs with units
in both samples, twice their cross sums), so the same nodes, bounds and resolution apply;
only the outcomes' values are not the only breakpoints, whatever lambda.

Supported designs: weights, strata, clusters and fpc of either sample, two-phase
designs (fpc and labeling strata included) and PSUs with units in both samples, for
PPI, PPI++, classical fits and naive pooling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.covariance import leverage_scale
from ..core.sources import reduce_rows
from ..designs.base import LABELED, UNLABELED
from .rectified_cdf import Cumulative, Evaluation, Points, RectifiedCDF, Stream, Term, _Builder, _sum_before

#: numbers kept for the rows of the unlabeled sample gathered in one round of the search: each
#: gathered value becomes a node holding ``2 * len(FIELDS)`` sums per stratum (about 1.5 million
#: rows, 130 MB, without strata; fewer rows with the cross sums of PSUs shared by the samples)
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

    def __init__(self, count, sums, dense, low, high, rows, below=None, presence=None):
        self.count, self.sums, self.dense, self.low, self.high, self.rows = count, sums, dense, low, high, rows
        self.below, self.presence = below, presence

    def merge(self, other: _Tally) -> _Tally:
        def add(a, b):
            return b if a is None else a if b is None else a + b

        rows = None if self.rows is None else {k: np.concatenate([v, other.rows[k]]) for k, v in self.rows.items()}
        below = None if self.below is None else {k: v + other.below[k] for k, v in self.below.items()}
        return _Tally(self.count + other.count, {k: add(v, other.sums.get(k)) for k, v in self.sums.items()},
                      add(self.dense, other.dense), np.minimum(self.low, other.low),
                      np.maximum(self.high, other.high), rows, below, add(self.presence, other.presence))


@dataclass(frozen=True)
class _Clusters:
    """What a counting pass over a clustered sample needs to know of its PSUs (from the scan
    of :meth:`PartitionedCDF._scan_psu`)."""

    multiplier: np.ndarray  # (npsu,) each PSU's coefficient per unit of weight share
    totals: np.ndarray  # (npsu,) K_g, the PSU's coefficients' total
    strata: np.ndarray  # (npsu,) each PSU's stratum
    spanning: np.ndarray  # (npsu,) index among the PSUs with rows in several partitions (-1: in one)
    nspan: int  # the PSUs with rows in several partitions
    shared: dict  # name -> _PsuSums: the labeled fits of PSUs with units in both samples


@dataclass(frozen=True)
class _PsuScan:
    """Per PSU: the unlabeled rows' shares of the weight, and the partitions holding its rows."""

    npsu: int
    total: float

    def __call__(self, weights, psu):
        alpha = None if weights is None else weights / self.total
        shares = np.bincount(psu, weights=alpha, minlength=self.npsu)
        if weights is None:
            shares = shares / self.total
        present = np.zeros(self.npsu)
        present[psu] = 1.0
        return shares, present


@dataclass(frozen=True)
class _Count:
    """One counting pass at sorted ``points``: row counts, sums by stratum and bin (and a PSU x
    bin table of the PSUs with rows in several partitions), the smallest and largest value of
    each bin, and the rows of the bins in ``collect`` with their increments of the sums."""

    points: np.ndarray
    total: float  # the unlabeled rows' total weight (rows without weights)
    root: np.ndarray  # (H,) square root of each stratum's factor
    nstrata: int
    collect: np.ndarray | None  # bins whose rows are gathered
    clusters: _Clusters | None = None  # None: every row its own unit

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
        dense = below = presence = None
        if self.clusters is None:
            group = np.zeros(ordered.size, dtype=np.intp) if strata is None else strata[order]
            coef = alpha * (self.root[group] if self.nstrata > 1 else self.root[0])
            increments = {"a": alpha, "x": coef * coef}
            h = group
        else:
            group = psu[order]
            increments, dense, below, presence = self._cluster_increments(ordered, alpha, group, bins, B)
            h = self.clusters.strata[group]
        index = h * B + bins if self.nstrata > 1 else bins
        sums = {f: np.bincount(index, weights=w, minlength=self.nstrata * B) for f, w in increments.items()}
        rows = None
        if self.collect is not None:
            keep = np.concatenate([np.arange(edges[b], edges[b + 1]) for b in self.collect])
            rows = {"t": ordered[keep], "group": group[keep], **{f: w[keep] for f, w in increments.items()}}
        return _Tally(count, sums, dense, low, high, rows, below, presence)

    def _cluster_increments(self, ordered, alpha, group, bins, B):
        """Each row's increments of the fields (rows sorted by value), the PSU x bin table of the
        PSUs with rows in several partitions, the sums ``D_i`` below the labeled rows of the
        shared PSUs and the PSUs present.

        A PSU's ``C_g(t)^2`` grows by ``c_j (c_j + 2 S_j)`` at each of its rows, ``S_j`` the
        coefficients of its rows before ``j`` by value, found in this partition when it holds
        all of the PSU's rows; the others' coefficients go to the table."""
        clusters = self.clusters
        coef = alpha * clusters.multiplier[group]
        increments = {"a": alpha, "c": coef, "x": coef * clusters.totals[group]}
        # the rows by PSU, then by value: a stable sort of the PSU codes (a radix sort when the
        # partition's codes span fewer than 2^16)
        local = group - group.min() if group.size else group
        by_psu = np.argsort(local.astype(np.uint16) if local.size and local.max() < 1 << 16 else local,
                            kind="stable")
        psu_sorted, coef_sorted = group[by_psu], coef[by_psu]
        pair = np.empty_like(coef)
        pair[by_psu] = coef_sorted * (coef_sorted + 2.0 * _sum_before(psu_sorted, coef_sorted))
        spanning = clusters.spanning[group]
        elsewhere = spanning >= 0
        dense = None
        if clusters.nspan:
            pair[elsewhere] = 0.0
            dense = np.bincount(spanning[elsewhere] * B + bins[elsewhere], weights=coef[elsewhere],
                                minlength=clusters.nspan * B)
        increments["p"] = pair
        presence = np.zeros(clusters.spanning.size)
        presence[group] = 1.0
        below = None
        if clusters.shared:
            below = {}
            # keys (PSU, labeled points at most the value), ascending in the PSU-then-value order
            some = next(iter(clusters.shared.values()))
            keys = psu_sorted.astype(np.int64) * some.width + \
                np.searchsorted(some.grid, ordered, side="right")[by_psu]
            prefix = np.r_[0.0, np.cumsum(coef_sorted)]
            for name, labeled in clusters.shared.items():
                at_most = np.empty_like(coef)
                at_most[by_psu] = labeled.at_most(keys, psu_sorted)
                increments[f"m_{name}"] = coef * at_most
                increments[f"k_{name}"] = coef * labeled.totals[group]
                below[name] = labeled.below(keys, prefix)
        return increments, dense, below, presence


class _Nodes:
    """Points with the unlabeled sums on both sides, sorted, and what lies between them.

    ``t`` (M,); ``right[f]``, ``left[f]`` (H, M) for ``f`` in :data:`FIELDS` (and the cross
    sums of PSUs shared by the samples, ``PartitionedCDF.fields``) and
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

        right = {f: pick(other.right[f], self.right[f]) for f in self.right}
        left = {f: pick(other.left[f], self.left[f]) for f in self.left}
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

    def __neg__(self):
        return _Interval(-self.high, -self.low)

    def __getitem__(self, index):
        return _Interval(self.low[index], self.high[index])

    def sum(self, axis=None, keepdims: bool = False):
        return _Interval(self.low.sum(axis=axis, keepdims=keepdims), self.high.sum(axis=axis, keepdims=keepdims))

    def square(self):
        low = np.where((self.low <= 0) & (self.high >= 0), 0.0, np.minimum(self.low**2, self.high**2))
        return _Interval(low, np.maximum(self.low**2, self.high**2))


def _square(value):
    return value.square() if isinstance(value, _Interval) else value * value


def _stack(values: list):
    """``np.stack`` of arrays or intervals."""
    if not any(isinstance(v, _Interval) for v in values):
        return np.stack(values)
    intervals = [_as_interval(v) for v in values]
    return _Interval(np.stack([v.low for v in intervals]), np.stack([v.high for v in intervals]))


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
        #: a clustered sample's PSUs as the counting passes need them (:meth:`_scan_psu`)
        self._clusters: _Clusters | None = None
        #: the points of the last counting pass over a clustered sample and the coefficient sums of
        #: its PSUs with rows in several partitions (spanning x bin)
        self._psu_coef: tuple | None = None
        labeled_values = np.concatenate([s.values for s in labeled.streams.values()])
        self.labeled_points = np.unique(labeled_values)
        self.outcome_points = np.unique(labeled.streams["y"].values)
        self._nodes: _Nodes | None = None
        #: the unlabeled sums kept at each node (with PSUs shared by the samples: and the cross sums)
        self.fields: tuple[str, ...] = FIELDS
        #: a design joining the samples: what builds its labeled side (None: independent samples)
        self._joint_parts: tuple | None = None
        self._joint: _Joint | None = None
        #: two phases with clusters: the labeled rows' shares of the all-units fit's weight per PSU
        self.labeled_psu_share: np.ndarray | None = None
        #: per PSU: the unlabeled rows' shares of the weight (known after the first pass)
        self.psu_shares: np.ndarray | None = None
        #: naive pooling: the CDF of the outcomes and the unlabeled predictions as one sample
        self.pooled = False

    @property
    def nstrata(self) -> int:
        return self.H if self.by_stratum else 1

    @property
    def joint(self) -> _Joint | None:
        """The labeled side of a design joining the samples (built once the unlabeled
        PSUs' weights are known, which CR2 needs)."""
        if self._joint is None and self._joint_parts is not None:
            if self.npsu and self.psu_shares is None:
                self._scan_psu()
            weight = totals = None
            if self.psu_shares is not None:
                weight, totals = self.psu_shares * self.total, self.psu_shares * self.psu_multiplier
            self._joint = _Joint(*self._joint_parts, psu_weight=weight, grid=self.labeled_points,
                                 unlabeled_psu=totals if len(self.fields) > len(FIELDS) else None,
                                 pooled=self.pooled)
        return self._joint

    @property
    def collect_rows(self) -> int:
        """Rows gathered into memory in one round (:data:`COLLECT_CELLS`)."""
        return max(1, COLLECT_CELLS // (2 * len(self.fields) * self.H + len(self.fields) + 3))

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(cls, design, outcomes, predictions, predictions_unlabeled, *, cov_type: str,
              by_stratum: bool = False) -> PartitionedCDF:
        """The PPI rectified CDF of ``design`` for ``cov_type``; ``predictions_unlabeled`` is a
        column of the partitioned unlabeled sample."""
        return cls._build(design, outcomes, predictions, predictions_unlabeled, cov_type=cov_type,
                          by_stratum=by_stratum, pooled=False)

    @classmethod
    def build_pooled(cls, design, outcomes, predictions_unlabeled, *, cov_type: str) -> PartitionedCDF:
        """The CDF of naive pooling: the outcomes (first-phase weights in a two-phase design)
        and the unlabeled predictions as one sample, with the PSU counts of both samples (see
        *Naive pooling* in the module docstring)."""
        return cls._build(design, outcomes, outcomes, predictions_unlabeled, cov_type=cov_type,
                          by_stratum=False, pooled=True)

    @classmethod
    def _build(cls, design, outcomes, predictions, predictions_unlabeled, *, cov_type: str, by_stratum: bool,
               pooled: bool) -> PartitionedCDF:
        builder = _Builder(design, cov_type)
        weights = design.fit_weights(LABELED)
        y = builder.stream("y", [(LABELED, outcomes, weights)])
        f = builder.stream("f", [(LABELED, predictions, weights)])
        H = design.nstrata
        masks = [y.stratum_codes == h for h in range(H)] if by_stratum else [None]
        blocks = [builder._blocks(y, f, None) if mask is None else
                  builder._blocks(y.within(mask), f.within(mask), None, full=(y, f, mask)) for mask in masks]
        f_strata = None
        if by_stratum:
            f_strata = [(Cumulative(fh.sorted, fh.alpha), fh.share()) for fh in (f.within(m) for m in masks)]
        labeled = RectifiedCDF({"y": y, "f": f}, blocks)
        unlabeled = design.unlabeled
        total = unlabeled.weight_total()
        # the fit u over the unlabeled rows has labeled rows too: a two-phase design's all-units
        # fit (the labeled predictions), naive pooling (the outcomes), with first-phase weights
        with_labeled = design.two_phase or pooled
        if with_labeled:
            first_phase = design.phase_one_weights(LABELED)
            total += outcomes.size if first_phase is None else float(first_phase.sum())
        sample = "all" if design.two_phase else UNLABELED
        root = np.sqrt(np.broadcast_to(design.factors(sample, cov_type, 1), (H,)).astype(float))
        cdf = cls(labeled, f_strata, predictions_unlabeled, design.phase_one_weights(UNLABELED), unlabeled.psu,
                  unlabeled.strata, total=total, root=root,
                  counts=design.psu_counts("all" if design.combined or pooled else UNLABELED),
                  npsu=design.npsu if unlabeled.psu is not None else 0, psu_strata=design.psu_strata,
                  nstrata=H, by_stratum=by_stratum, cov_type=cov_type)
        cdf.pooled = pooled
        if design.combined or pooled:
            labeled_part = None
            if with_labeled:
                labeled_part = (predictions, first_phase)
                if unlabeled.psu is not None and design.labeled.psu is not None:
                    share = np.full(outcomes.size, 1.0) if first_phase is None else first_phase
                    cdf.labeled_psu_share = np.bincount(design.labeled.psu, weights=share / total,
                                                        minlength=design.npsu)
            cdf._joint_parts = (builder, y, f, labeled_part, unlabeled.weight_total(), masks)
            if design.labeled.psu is not None and unlabeled.psu is not None and np.any(
                    design.labeled.present_psu(design.npsu) & unlabeled.present_psu(design.npsu)):
                names = ("u",) if pooled else ("y", "f", "u") if design.two_phase else ("y", "f")
                cdf.fields = FIELDS + tuple(f"{kind}_{name}" for kind in ("m", "k") for name in names)
        return cdf

    # -- counting passes ---------------------------------------------------------------------------
    def _scan_psu(self) -> _Clusters | None:
        """A clustered sample's PSUs, from one pass over its weights and PSU labels before the
        first count: each PSU's share of the weight (hence its coefficients' multiplier and
        total ``K_g``) and whether its rows lie in several partitions."""
        if self.npsu and self._clusters is None:
            _, weights, psu, _ = self.columns
            shares, partitions = reduce_rows(_PsuScan(self.npsu, float(self.total)), weights, psu)
            self.psu_shares, self.psu_multiplier = shares, self._multipliers(shares)
            spanning = np.full(self.npsu, -1, dtype=np.intp)
            several = partitions > 1
            spanning[several] = np.arange(np.count_nonzero(several))
            shared = self.joint.psu_sums if len(self.fields) > len(FIELDS) else {}
            self._clusters = _Clusters(self.psu_multiplier, shares * self.psu_multiplier, self.psu_strata,
                                       spanning, int(np.count_nonzero(several)), shared)
        return self._clusters

    def _pass(self, points: np.ndarray, collect: np.ndarray | None = None) -> _Tally:
        count = _Count(points, float(self.total), self.root, self.H, collect, self._scan_psu())
        return reduce_rows(count, *self.columns)

    def _count(self, points: np.ndarray, collect_gaps: np.ndarray | None = None):
        """Nodes at sorted ``points`` (one pass; several when many PSUs have rows in several
        partitions), and the rows strictly inside the gaps ``collect_gaps`` (indices into
        ``points``' gaps)."""
        size = points.size
        clusters = self._scan_psu()
        if clusters is not None and clusters.nspan and collect_gaps is None:
            # the PSU x bin table of a pass stays within DENSE_CELLS cells
            size = min(size, max(2, (DENSE_CELLS // clusters.nspan - 1) // 2))
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
        cumulative = {f: np.cumsum(v.reshape(self.H, B), axis=1) for f, v in tally.sums.items()}
        if self.npsu:
            clusters = self._clusters
            if np.any(tally.presence[clusters.spanning < 0] > 1):
                raise RuntimeError("internal: the partitions of the unlabeled sample changed between passes")
            if tally.dense is not None:
                # the PSUs with rows in several partitions: sum_g C_g(t)^2 from their table
                coef = np.cumsum(tally.dense.reshape(clusters.nspan, B), axis=1)
                span_strata = self.psu_strata[np.flatnonzero(clusters.spanning >= 0)]
                cumulative["p"] = cumulative["p"] + _by_stratum(coef * coef, span_strata, self.H)
                self._psu_coef = (points, coef)
        else:
            cumulative["c"] = cumulative["a"] * self.root[:, None]
            cumulative["p"] = cumulative["x"]
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
        if tally.below:
            # pairs of a labeled row and the unlabeled rows of its PSU below it enter at the labeled value
            for name, labeled in self._clusters.shared.items():
                entered = _StrataSums(labeled.stream, labeled.coefficients * tally.below[name], self.H)
                right[f"m_{name}"] += entered(Points(sorted_t, "right"))
                left[f"m_{name}"] += entered(Points(sorted_t, "left"))
        return _Nodes(sorted_t, right, left, n_right, n_left, low, high)

    def _multipliers(self, shares: np.ndarray) -> np.ndarray:
        """Each PSU's coefficient per unit of weight share: the square root of its stratum's
        factor, times the CR2 adjustment of its share of the weight."""
        multiplier = self.root[self.psu_strata].copy()
        if self.cov_type == "CR2":
            if self.labeled_psu_share is not None:
                shares = shares + self.labeled_psu_share
            multiplier *= leverage_scale(shares, "CR2")
        return multiplier

    # -- evaluation at nodes -----------------------------------------------------------------------
    def _ensure_nodes(self) -> _Nodes:
        if self._nodes is None:
            points = np.r_[-np.inf, self.labeled_points, np.inf]
            self._nodes, _ = self._count(points)
        return self._nodes

    def _totals(self) -> dict:
        """The unlabeled sums over all rows (at +inf), (H, 1)."""
        nodes = self._ensure_nodes()
        return {f: nodes.right[f][:, -1:] for f in self.fields}

    def _with_labeled_part(self, points: Points, sums: dict, totals: dict) -> tuple[dict, dict]:
        """The all-units fit's weight shares ``a`` and coefficients ``c`` (two phases: the
        unlabeled sample's and the labeled rows'; these are constant inside a gap)."""
        joint = self.joint
        if joint is None or joint.u is None:
            return sums, totals
        alpha, coef = joint.strata["alpha"], joint.strata["u"]
        sums = dict(sums, a=sums["a"] + alpha(points), c=sums["c"] + coef(points))
        totals = dict(totals, a=totals["a"] + alpha.totals, c=totals["c"] + coef.totals)
        return sums, totals

    def _unlabeled_terms(self, sums: dict, totals: dict):
        """``F_u`` (m,) and the unlabeled variance block of each stratum (H, m) from sums (H, m)
        (arrays at nodes, :class:`_Interval` bounds over gaps)."""
        F = sums["a"].sum(axis=0)
        G = np.maximum(self.counts, 1.0)[:, None]
        centred = sums["c"] - F * totals["c"]
        variance = sums["p"] - 2.0 * (F * sums["x"]) + _square(F) * totals["x"] - _square(centred) * (1.0 / G)
        return F, variance

    def _per_block(self, per_stratum):
        """(H, m) per-stratum pieces as the blocks' K strata."""
        return per_stratum if self.by_stratum else per_stratum.sum(axis=0, keepdims=True)

    def _slopes(self, F, sums: dict, totals: dict, levels: dict, f_parts):
        """(K, m) coefficients of lambda in ``F(t; lam)``."""
        if not self.by_stratum:
            return (F - levels["f"])[None]
        share_u = totals["a"]
        share_f = np.array([share for _, share in self.f_strata])[:, None]
        return sums["a"] - F * share_u - (f_parts - F * share_f)

    def _pieces(self, points: Points, sums: dict):
        """``F_Y`` (m,), the slopes (K, m) and the blocks (4, K, m) at ``points`` from the
        unlabeled sums there (:class:`_Interval` bounds: the slopes and the blocks are too)."""
        levels, blocks, f_parts = self._labeled_terms(points)
        sums, totals = self._with_labeled_part(points, sums, self._totals())
        F, variance = self._unlabeled_terms(sums, totals)
        if self.pooled:
            # one sample: F_u itself, and the variance of its centred PSU sums in the first block
            own = self.joint.own_block(points, dict(levels, u=F), sums, self._per_block)
            zero = np.zeros((1, np.size(levels["y"])))
            return F, zero, [own + self._per_block(variance), zero, zero, zero]
        slopes = self._slopes(F, sums, totals, levels, f_parts)
        blocks = list(blocks)
        if self.joint is None:
            blocks[3] = self._per_block(variance)
        else:
            cov_yf, var_f = self.joint.blocks(points, dict(levels, u=F), sums, sums["c"] - F * totals["c"],
                                              np.maximum(self.counts, 1.0)[:, None], self._per_block)
            blocks[1] = cov_yf + blocks[1]
            blocks[2] = var_f + self._per_block(variance) + blocks[2]
        return levels["y"], slopes, blocks

    def _labeled_terms(self, points: Points):
        levels = self.labeled.levels(points)
        # naive pooling needs the labeled fits' levels only (its variance is the pooled fit's)
        blocks = None if self.pooled else self.labeled.blocks(points, levels)
        f_parts = None
        if self.by_stratum:
            f_parts = np.array([cumulative(points) for cumulative, _ in self.f_strata])
        return levels, blocks, f_parts

    def _evaluation(self, t: np.ndarray, sums: dict, side: str) -> Evaluation:
        base, slopes, blocks = self._pieces(Points(t, side), sums)
        return _Evaluation(base, slopes, np.array(blocks))

    def evaluate(self, t, side: str = "right") -> Evaluation:
        """The pieces at points ``t`` (one counting pass unless they are all nodes)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        nodes = self._ensure_nodes()
        position = np.clip(np.searchsorted(nodes.t, t), 0, nodes.t.size - 1)
        if np.all(nodes.t[position] == t):
            stored = nodes.right if side == "right" else nodes.left
            return self._evaluation(t, {f: stored[f][:, position] for f in self.fields}, side)
        points = np.unique(t)
        fresh, _ = self._count(points)
        index = np.searchsorted(fresh.t, t)
        stored = fresh.right if side == "right" else fresh.left
        return self._evaluation(t, {f: stored[f][:, index] for f in self.fields}, side)

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
                                      alternative, self._bounds, self.pooled)
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
        box = {f: _Interval(nodes.right[f][:, gaps], nodes.left[f][:, gaps + 1]) for f in self.fields}
        # labeled pieces are constant inside a gap: those just after its left node
        base, slopes, blocks = self._pieces(Points(nodes.t[gaps], "right"), box)
        lam = np.asarray(lam, dtype=float)[:, None]
        value = base + (lam * slopes).sum(axis=0)
        var_y, cov_yf, var_f, var_fu = blocks
        cross = cov_yf * lam
        # the order of Evaluation.parts
        total = (var_y - cross - cross + lam * var_f * lam + lam * var_fu * lam).sum(axis=0)
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
            if rows is not None and rows["t"].size:
                nodes = nodes.merge(self._gathered(nodes, rows))
        self._nodes = nodes

    def _gathered(self, nodes: _Nodes, rows: dict) -> _Nodes:
        """Nodes at every gathered value: the sums at the gap's left node plus the gathered rows'
        increments (counted with them)."""
        values, group = rows["t"], rows["group"]
        t = np.unique(values)
        row_gap = np.searchsorted(nodes.t, values, side="left") - 1  # each row's left node
        t_gap = np.searchsorted(nodes.t, t, side="left") - 1
        if self.npsu:
            strata = self.psu_strata[group]
            increments = {f: rows[f] for f in self.fields}
            span = self._clusters.spanning[group]
            elsewhere = np.flatnonzero(span >= 0)
            if elsewhere.size:
                # a PSU with rows in several partitions: adding c to its running sum s (from its sum
                # at the gap's left node) adds c (2 s + c) to p
                points, psu_coef = self._psu_coef
                gap, coef, index = row_gap[elsewhere], increments["c"][elsewhere], span[elsewhere]
                position = np.searchsorted(points, nodes.t[gap])
                key = gap.astype(np.int64) * self._clusters.nspan + index
                order = np.lexsort((values[elsewhere], key))
                running = _sum_before(key[order], coef[order]) + psu_coef[index, 2 * position + 1][order]
                increments["p"] = increments["p"].copy()
                increments["p"][elsewhere[order]] = coef[order] * (2.0 * running + coef[order])
        else:
            strata = group
            increments = {"a": rows["a"], "c": rows["a"] * self.root[group], "x": rows["x"], "p": rows["x"]}
        right = {f: nodes.right[f][:, t_gap].copy() for f in self.fields}
        left = {f: nodes.right[f][:, t_gap].copy() for f in self.fields}
        gap_start = nodes.t[t_gap]

        def within_gap(sorted_values, prefix, side):
            """Sums of the rows after the gap's left node and at most (or below) each t."""
            return prefix[np.searchsorted(sorted_values, t, side=side)] - \
                prefix[np.searchsorted(sorted_values, gap_start, side="right")]

        for h in np.unique(strata):
            in_stratum = strata == h
            order = np.argsort(values[in_stratum], kind="stable")
            v = values[in_stratum][order]
            for f, inc in increments.items():
                prefix = np.r_[0.0, np.cumsum(inc[in_stratum][order])]
                right[f][h] += within_gap(v, prefix, "right")
                left[f][h] += within_gap(v, prefix, "left")
        v = np.sort(values)
        ones = np.arange(v.size + 1)
        n_right = nodes.n_right[t_gap] + within_gap(v, ones, "right")
        n_left = nodes.n_right[t_gap] + within_gap(v, ones, "left")
        empty = np.full(t.size - 1, np.nan)  # no unlabeled value lies between gathered values
        return _Nodes(t, right, left, n_right, n_left, empty, empty.copy())


class _StrataSums:
    """``sum c_i 1{v_i <= t}`` over the rows of each stratum of a labeled stream: (H, m)."""

    def __init__(self, stream: Stream, coefficients, nstrata: int):
        codes = stream.stratum_codes
        coefficients = np.broadcast_to(coefficients, codes.shape)
        self.parts = [Cumulative(stream.values[codes == h], coefficients[codes == h]) for h in range(nstrata)]
        self.totals = np.array([part.total for part in self.parts])[:, None]

    def __call__(self, points: Points) -> np.ndarray:
        return np.array([part(points) for part in self.parts]).reshape(len(self.parts), len(points))


class _Joint:
    """The labeled side of a design joining the samples (two phases; PSUs with units in both).

    Such a design has one variance, of the labeled rows' ``(Y, f - u)`` and the unlabeled
    rows' ``(0, -u)`` (:meth:`_Builder._blocks <ppinfer.models.rectified_cdf._Builder._blocks>`),
    ``u`` the fit of every unit's prediction: besides the labeled fits' own terms,
    ``cov_yf`` holds ``-V(y, u)`` and ``var_f`` holds ``-2 V(f, u) + V(u, u)``. In a
    two-phase design ``u`` also holds the labeled rows (their first-phase weights, shares of
    the weight of both parts): their pair sums with ``y``, ``f`` and themselves are terms of
    the labeled sample centred by the whole fit's CDF ``F_u`` (:attr:`units`), and their
    stratum sums join the unlabeled sample's (:attr:`strata`). A PSU with units in both
    samples adds the products of its labeled fits' and its unlabeled rows' centred sums:
    cross sums counted at the nodes (:attr:`psu_sums` gives the labeled side) and labeled
    sums weighted by the unlabeled PSU totals (:attr:`shared`).
    """

    def __init__(self, builder: _Builder, y: Stream, f: Stream, labeled_part, weight_elsewhere: float, masks,
                 *, psu_weight: np.ndarray | None, unlabeled_psu: np.ndarray | None, grid: np.ndarray,
                 pooled: bool = False):
        H = builder.design.nstrata
        self.u: Stream | None = None
        #: per block: the pair sums of y, f and u with u's labeled rows over PSUs (units); naive
        #: pooling: u's with itself only
        self.units: list[list[Term]] = []
        if labeled_part is not None:
            values, weights = labeled_part
            u = builder.stream("u", [(LABELED, values, weights)], elsewhere=(weight_elsewhere, psu_weight))
            self.u = u
            for mask in masks:
                yk, fk, uk = (s if mask is None else s.within(mask) for s in (y, f, u))
                self.units.append([builder.units_term(a, uk) for a in ((uk,) if pooled else (yk, fk, uk))])
        streams = {"u": self.u} if pooled else {"y": y, "f": f} if self.u is None else {"y": y, "f": f, "u": self.u}
        #: per stratum: the coefficients of y, f (and u's labeled rows) at most t, and u's weight shares
        self.strata = {name: _StrataSums(s, s.coef, H) for name, s in streams.items()}
        if self.u is not None:
            self.strata["alpha"] = _StrataSums(self.u, self.u.alpha, H)
        #: PSUs shared by the samples: the labeled fits' coefficients per PSU (for the cross sums
        #: streamed at the nodes) and ``sum_{v_i <= t} c_i K_g(i)`` per stratum, ``K_g`` the
        #: unlabeled coefficients' total of PSU g
        self.psu_sums: dict[str, _PsuSums] = {}
        self.shared: dict[str, _StrataSums] = {}
        if unlabeled_psu is not None:
            for name, s in streams.items():
                coef = np.broadcast_to(s.coef, s.units.shape)
                self.psu_sums[name] = _PsuSums(s, coef, grid, builder.design.npsu)
                self.shared[name] = _StrataSums(s, coef * unlabeled_psu[s.units], H)

    def _shared_products(self, points: Points, levels: dict, sums: dict) -> dict:
        """``sum_g A_g N_g`` (H, m) over PSUs shared by the samples, for A = y, f (and u's labeled
        rows), N the unlabeled rows of u: ``m_A - F_A k_A - F_u l_A + F_A F_u r_A``."""
        F = levels["u"]
        out = {}
        for name, labeled in self.shared.items():
            level = levels[name]
            out[name] = (sums[f"m_{name}"] - level * sums[f"k_{name}"] - F * labeled(points)
                         + (level * F) * labeled.totals)
        return out

    def own_block(self, points: Points, levels: dict, sums: dict, per_block):
        """Naive pooling: ``V(u, u)`` beyond the unlabeled sample's own PSU sums and the strata
        centring (K, m): the labeled units' pair sums and twice the cross sums of shared PSUs."""
        own = _stack([term(points, levels) for (term,) in self.units]) if self.units else 0.0
        shared = self._shared_products(points, levels, sums)
        return own + 2.0 * per_block(shared["u"]) if "u" in shared else own

    def blocks(self, points: Points, levels: dict, sums: dict, centred_u, G: np.ndarray, per_block):
        """``cov_yf`` and ``var_f`` (K, m) beyond the labeled fits' terms and the variance of
        the unlabeled sample's own PSU sums; ``levels`` are ``F_y``, ``F_f`` and ``F_u``,
        ``sums`` the unlabeled sums and ``centred_u`` (H, m) the strata totals of u's centred
        coefficients."""
        shared = {name: per_block(value) for name, value in self._shared_products(points, levels, sums).items()}
        covariance = {}
        for name in ("y", "f"):
            stratum_sums = self.strata[name]
            centred = stratum_sums(points) - levels[name] * stratum_sums.totals
            covariance[name] = shared.get(name, 0.0) - per_block(centred * centred_u * (1.0 / G))
        own = 2.0 * shared["u"] if "u" in shared else 0.0
        if self.units:
            # each kind of pair sum (y, f and u with u's labeled rows) over the blocks
            pairs = [_stack([term(points, levels) for term in kind]) for kind in zip(*self.units)]
            covariance["y"] = covariance["y"] + pairs[0]
            covariance["f"] = covariance["f"] + pairs[1]
            own = own + pairs[2]
        return -covariance["y"], own - 2.0 * covariance["f"]


class _PsuSums:
    """A labeled fit's coefficients in the PSUs it shares with the unlabeled sample, keyed by
    (PSU, number of labeled points at most the value).

    An unlabeled row ``j`` of PSU ``g`` keyed ``(g, R_j)`` has ``C_g(u_j)`` (the labeled
    coefficients of ``g`` at most ``u_j``) in :meth:`at_most`; a labeled row ``i`` is keyed
    ``(g, Q_i)`` and the unlabeled coefficients of ``g`` below ``v_i`` are those of the rows with
    ``R_j < Q_i`` (:meth:`below`): each pair of rows is counted once, at the larger value."""

    def __init__(self, stream: Stream, coefficients: np.ndarray, grid: np.ndarray, npsu: int):
        self.stream, self.coefficients, self.grid = stream, coefficients, grid
        self.width = grid.size + 1
        self.psu = stream.units.astype(np.int64)
        self.keys = self.psu * self.width + np.searchsorted(grid, stream.values, side="right")
        order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[order]
        self.sums = np.r_[0.0, np.cumsum(coefficients[order])]
        self.first = np.searchsorted(self.sorted_keys, np.arange(npsu, dtype=np.int64) * self.width)
        self.totals = np.bincount(stream.units, weights=coefficients, minlength=npsu)

    def at_most(self, keys: np.ndarray, psu: np.ndarray) -> np.ndarray:
        """``C_g(u_j)`` of unlabeled rows keyed ``(g, R_j)``."""
        return self.sums[np.searchsorted(self.sorted_keys, keys, side="right")] - self.sums[self.first[psu]]

    def below(self, keys: np.ndarray, prefix: np.ndarray) -> np.ndarray:
        """Per labeled row, the unlabeled coefficients of its PSU below its value, from the
        unlabeled rows' sorted keys and the prefix sums of their coefficients."""
        return prefix[np.searchsorted(keys, self.keys, side="left")] - \
            prefix[np.searchsorted(keys, self.psu * self.width, side="left")]


class _Evaluation(Evaluation):
    """An :class:`Evaluation` from pieces computed elsewhere."""

    def __init__(self, base, slopes, blocks):
        self.base, self.slopes = base, slopes
        self.__dict__["blocks"] = blocks


def _by_stratum(cells: np.ndarray, strata: np.ndarray, H: int) -> np.ndarray:
    out = np.zeros((H, cells.shape[1]))
    np.add.at(out, strata, cells)
    return out


def _decide(nodes: _Nodes, views, q: float, lam: np.ndarray, critical: float | None, alternative: str, bounds,
            pooled: bool = False):
    """Point estimate and interval ends of one level from the nodes, and the gaps that must be
    resolved before they are exact (see the module docstring); ``pooled``: naive pooling, whose
    CDF has the unlabeled values as breakpoints whatever lambda."""
    right, left, breakpoint, outcome_points = views
    lam = np.asarray(lam, dtype=float)
    M = nodes.t.size
    dirty = np.flatnonzero(nodes.inside > 0)
    if not pooled and not np.any(lam != 0):
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

