"""The rectified CDF behind prediction-powered quantiles, and its design variance at any point.

At a point ``t`` the quantile problem is a mean problem on indicators. The
rectified CDF

    F(t; lam) = F_Y(t) + lam * (F_u(t) - F_f(t))

combines the weighted CDFs of three fits: the labeled outcomes ``Y`` and the
labeled predictions ``f`` (with the weights of the labeled fits) and the
predictions ``u`` of the unlabeled rows (of every unit, in a two-phase design).
Row ``i`` of a fit with CDF ``F_A`` contributes ``a_i (1{v_i <= t} - F_A(t))`` to
its error, ``a_i`` its share of the fit's weight: the contributions of a mean of
the indicators (:class:`ppinfer.Mean` on ``1{y <= t}``, ``1{yhat <= t}``,
``1{yhat_unlabeled <= t}``), to which the design variance of
:mod:`ppinfer.designs.base` applies unchanged. For two fits A and B it is, with
``(1 - f_h) c_h`` the factor of stratum ``h`` and ``G_h`` its PSUs,

    V_AB(t) = sum_h (1 - f_h) c_h [sum_{g in h} A_g(t) B_g(t) - A_h(t) B_h(t) / G_h],

``A_g(t) = sum_{i in g} a_i (1{a_i <= t} - F_A(t))`` the total of PSU ``g`` (a unit
is its own PSU without clusters) and ``A_h(t)`` that of stratum ``h``. The
corrections of ``cov_type`` scale the coefficients ``a_i``, never the CDF values:
the leverage ``h_i = a_i`` of a weighted mean (HC2, HC3), the share ``W_g / W`` of a
PSU's weight (CR2), and the square root of the stratum factor on each side.

Each product sum is a pair sum over groups (PSUs, or strata for the centring
term, whose coefficients are divided by ``sqrt(G_h)``),

    S_AB(t) = sum_g A_g B_g = P(t) - F_B Q_A(t) - F_A Q_B(t) + F_A F_B R,

with ``P(t)`` the sum of ``a_i b_j`` over same-group pairs with both values at
most ``t``, ``Q_A(t) = sum_{a_i <= t} a_i B_g(i)``, ``Q_B`` likewise and
``R = sum_g A_g B_g`` (``A_g``, ``B_g`` group totals of the coefficients). Each is a
cumulative sum over sorted values, so evaluating all breakpoints costs
O((n + N) log(n + N)) time and O(n + N) memory, without a grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..core.covariance import LEVERAGE_POWER, PPIComponents, leverage_scale
from ..designs.base import LABELED, UNLABELED, BoundDesign

#: the estimates a rectified CDF is built for
KINDS = ("ppi", "classical", "naive")


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

    def runs(self, samples: list[SortedValues]) -> tuple[Points, np.ndarray]:
        """The first point of each run of consecutive points with the same
        positions in all of ``samples``, and the runs' lengths: anything computed
        from these samples alone is computed once per run and repeated."""
        key = tuple(samples)
        if key not in self._runs:
            self._runs[key] = self._find_runs(samples)
        return self._runs[key]

    def _find_runs(self, samples: list[SortedValues]) -> tuple[Points, np.ndarray]:
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
        others_at_most = sum((within[s] for s in sources if s is not largest), np.zeros(t.size, dtype=np.intp))
        within[largest] = at_most - others_at_most
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
    """For rows sorted by group: the sum of ``contributions`` of the earlier rows
    of the same group (exclusive running sums, restarted at each group)."""
    exclusive = np.cumsum(contributions) - contributions
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, groups.size]))
    return exclusive - exclusive[first]


def _group_order(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Positions ordered by group, then by value within a group."""
    order = np.argsort(values, kind="stable")
    return order[np.argsort(groups[order], kind="stable")]


def _array(coefficients, size: int) -> np.ndarray:
    return np.full(size, float(coefficients)) if np.ndim(coefficients) == 0 else coefficients


class _Sum:
    """The sum of several cumulative sums at the same points."""

    def __init__(self, *parts: Cumulative):
        self.parts = parts

    def __call__(self, points: Points) -> np.ndarray:
        return sum(part(points) for part in self.parts)


class PairSum:
    """``S_AB(t)`` of the module docstring for two indicator samples A and B."""

    def __init__(self, pairs, left: Cumulative, right: Cumulative, cross_total: float):
        self.pairs, self.left, self.right, self.cross_total = pairs, left, right, cross_total
        #: every sorted array the sums read
        self.samples = list(dict.fromkeys(
            [left.sorted, right.sorted, *(p.sorted for p in getattr(pairs, "parts", [pairs]))]
        ))

    def __call__(self, points: Points, cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
        pairs = self.pairs(points)
        return pairs - cdf_b * self.left(points) - cdf_a * self.right(points) + cdf_a * cdf_b * self.cross_total

    @classmethod
    def same_units(cls, a: SortedValues, b: SortedValues, coefficient, joint: SortedValues | None = None) -> PairSum:
        """Every unit in a group of its own, with ``a_i``, ``b_i`` measured on unit i and
        ``coefficient`` the products ``alpha_i beta_i``: ``1{a_i <= t} 1{b_i <= t}`` is
        ``1{max(a_i, b_i) <= t}``, the CDF of ``joint`` (the sorted maxima; ``a``
        itself when A is B)."""
        left = Cumulative(a, coefficient)
        if b is a:
            return cls(left, left, left, left.total)
        return cls(Cumulative(joint, coefficient), left, Cumulative(b, coefficient), left.total)

    @classmethod
    def grouped(
        cls,
        a: SortedValues, alpha, groups_a: np.ndarray,
        b: SortedValues, beta, groups_b: np.ndarray,
        ngroups: int,
    ) -> PairSum:
        """A and B in groups (integer codes in ``range(ngroups)``, shared)."""
        alpha, beta = _array(alpha, a.raw.size), _array(beta, b.raw.size)
        totals_a = np.bincount(groups_a, weights=alpha, minlength=ngroups)
        totals_b = np.bincount(groups_b, weights=beta, minlength=ngroups)
        # merge the events and order them by group, then by value within a group
        size_a = a.raw.size
        order = _group_order(np.concatenate([a.raw, b.raw]), np.concatenate([groups_a, groups_b]))
        groups = np.concatenate([groups_a, groups_b])[order]
        coefficients = np.concatenate([alpha, beta])[order]
        from_b = order >= size_a
        # an event closes a pair with every earlier same-group event of the other kind
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
        )

    @classmethod
    def grouped_self(cls, a: SortedValues, alpha, groups: np.ndarray, ngroups: int) -> PairSum:
        """``S_AA(t)`` for one grouped sample: ordered pairs, each unit with itself included."""
        alpha = _array(alpha, a.raw.size)
        totals = np.bincount(groups, weights=alpha, minlength=ngroups)
        order = _group_order(a.raw, groups)
        c = alpha[order]
        # adding c to a group's running sum s adds (s + c)^2 - s^2 = c (2 s + c)
        event = np.empty(order.size)
        event[order] = c * (2.0 * _sum_before(groups[order], c) + c)
        left = Cumulative(a, alpha * totals[groups])
        return cls(Cumulative(a, event), left, left, float(totals @ totals))


class StratumProduct:
    """``A(t) B(t)`` for the totals ``A(t) = sum_i a_i (1{a_i <= t} - F_A(t))`` of two samples
    in one group (a stratum's centring term): two cumulative sums, no pairs."""

    def __init__(self, a: SortedValues, alpha, b: SortedValues, beta):
        self.left = Cumulative(a, alpha)
        self.right = self.left if b is a and alpha is beta else Cumulative(b, beta)
        self.samples = list(dict.fromkeys([self.left.sorted, self.right.sorted]))

    def __call__(self, points: Points, cdf_a: np.ndarray, cdf_b: np.ndarray) -> np.ndarray:
        left = self.left(points) - cdf_a * self.left.total
        if self.right is self.left and cdf_a is cdf_b:
            return left * left
        return left * (self.right(points) - cdf_b * self.right.total)


# -- the fits' rows and the variance terms --------------------------------------------------
@dataclass
class Stream:
    """The rows of one fit of indicators, with their design.

    ``alpha`` are the rows' shares of the fit's weight (``F(t) = sum alpha_i
    1{v_i <= t}``) and ``coef`` the variance coefficients: ``alpha`` corrected for
    ``cov_type`` and times the square root of the row's stratum factor. Scalars
    stand for constant coefficients. ``units`` are PSU codes in a space shared by
    all streams (None: every row its own unit, with codes ``unit_offset + i``) and
    ``strata`` stratum codes (None: one stratum); ``rows`` names the row set, so
    that streams on the same rows (the labeled outcomes and predictions) pair unit
    by unit.
    """

    name: str
    values: np.ndarray
    alpha: np.ndarray | float
    coef: np.ndarray | float
    units: np.ndarray | None
    unit_offset: int
    strata: np.ndarray | None
    rows: str
    own_units: bool  # every row its own unit
    labeled: bool  # labeled rows only
    proportional: bool  # coef = constant * alpha

    @property
    def unit_codes(self) -> np.ndarray:
        return self.unit_offset + np.arange(self.values.size) if self.units is None else self.units

    @property
    def stratum_codes(self) -> np.ndarray:
        return np.zeros(self.values.size, dtype=np.intp) if self.strata is None else self.strata

    @cached_property
    def sorted(self) -> SortedValues:
        return SortedValues(self.values)

    @cached_property
    def cdf(self) -> Cumulative:
        return Cumulative(self.sorted, self.alpha)

    def within(self, mask: np.ndarray) -> Stream:
        """The rows of ``mask`` (one stratum's), with the same coefficients and unit codes."""
        def take(x):
            return x if np.ndim(x) == 0 else x[mask]

        units = None if self.units is None and mask.all() else self.unit_codes[mask]
        return replace(self, values=self.values[mask], alpha=take(self.alpha), coef=take(self.coef),
                       units=units, strata=None if self.strata is None else self.strata[mask])

    def share(self) -> float:
        """The rows' total share of the fit's weight."""
        return float(self.alpha * self.values.size if np.ndim(self.alpha) == 0 else self.alpha.sum())


@dataclass
class Term:
    """``sign * S_AB(t)`` of one pair sum; ``a`` and ``b`` name the streams whose CDFs
    centre each side."""

    sign: float
    pairs: PairSum
    a: str
    b: str
    labeled: bool

    def __call__(self, points: Points, levels: dict) -> np.ndarray:
        value = self.pairs(points, levels[self.a], levels[self.b])
        return value if self.sign == 1.0 else self.sign * value


class _Slope:
    """One stratum's part ``Delta_h(t)`` of ``F_u - F_f`` (the one-step split of the
    difference of the prediction fits by stratum, as :meth:`PPIModel._deltas`):
    ``sum_{u in h} alpha (1{u <= t} - F_u) - sum_{f in h} alpha (1{f <= t} - F_u)``."""

    def __init__(self, u: Stream, f: Stream):
        self.u, self.f = Cumulative(u.sorted, u.alpha), Cumulative(f.sorted, f.alpha)
        self.gap = u.share() - f.share()
        self.samples = [u.sorted, f.sorted]

    def __call__(self, points: Points, levels: dict) -> np.ndarray:
        return self.u(points) - self.f(points) - levels["u"] * self.gap


class RectifiedCDF:
    """The rectified CDF of one estimate and the variance blocks at any point.

    Built by :meth:`from_design`. ``streams`` maps ``"y"`` (the outcomes' fit;
    the pooled fit of naive pooling), ``"f"`` and ``"u"`` (the predictions' fits)
    to their rows; ``blocks`` holds, for each of K strata (K = 1 unless lambda is
    tuned per stratum), the terms of ``var_y``, ``cov_yf``, ``var_f``, ``var_fu``;
    ``slopes`` the per-stratum parts of ``F_u - F_f`` (None: one part).
    """

    def __init__(self, streams: dict[str, Stream], blocks: list[tuple[list[Term], ...]], slopes=None):
        self.streams, self._blocks, self._slopes = streams, blocks, slopes
        #: results of quantile inversions on this CDF, memoised by the scan
        self.inversions: dict = {}
        terms = [term for stratum in blocks for block in stratum for term in block]
        labeled = [s.sorted for s in streams.values() if s.labeled]
        labeled += [x for term in terms if term.labeled for x in term.pairs.samples]
        others = [s.sorted for s in streams.values() if not s.labeled]
        others += [x for term in terms if not term.labeled for x in term.pairs.samples]
        others += [x for slope in slopes or [] for x in slope.samples]
        self._labeled_samples = list(dict.fromkeys(labeled))
        self._samples = list(dict.fromkeys(self._labeled_samples + others))
        self._has_unlabeled = any(not s.labeled for s in streams.values())

    @property
    def nstrata(self) -> int:
        return len(self._blocks)

    # -- evaluation ------------------------------------------------------------------------
    def _once_per_labeled_run(self, points: Points, compute) -> np.ndarray:
        """``compute(points)``, a function of the labeled positions alone: with an
        unlabeled sample most breakpoints are its values, and the labeled terms
        change only at the few labeled ones."""
        if not self._has_unlabeled:
            return compute(points)
        first, lengths = points.runs(self._labeled_samples)
        return np.repeat(compute(first), lengths, axis=-1)

    def levels(self, points: Points) -> dict[str, np.ndarray]:
        """Each stream's CDF at ``points``."""
        labeled = [name for name, s in self.streams.items() if s.labeled]
        values = self._once_per_labeled_run(
            points, lambda at: np.array([self.streams[name].cdf(at) for name in labeled]).reshape(len(labeled), len(at))
        )
        levels = dict(zip(labeled, values))
        levels.update({name: s.cdf(points) for name, s in self.streams.items() if not s.labeled})
        return levels

    def slopes(self, points: Points, levels: dict) -> np.ndarray:
        """(K, m) coefficients of lambda in ``F(t; lam)``."""
        if self._slopes is None:
            if "u" not in levels:
                return np.zeros((1, len(points)))
            return (levels["u"] - levels["f"])[None]
        return np.stack([slope(points, levels) for slope in self._slopes])

    def blocks(self, points: Points, levels: dict) -> np.ndarray:
        """(4, K, m): ``var_y``, ``cov_yf``, ``var_f``, ``var_fu`` per stratum."""
        K = self.nstrata
        labeled_names = [name for name, s in self.streams.items() if s.labeled]

        def labeled_terms(at: Points) -> np.ndarray:
            at_levels = {name: self.streams[name].cdf(at) for name in labeled_names}
            out = np.zeros((4, K, len(at)))
            for k, stratum in enumerate(self._blocks):
                for j, block in enumerate(stratum):
                    for term in block:
                        if term.labeled:
                            out[j, k] += term(at, at_levels)
            return out

        out = self._once_per_labeled_run(points, labeled_terms)
        for k, stratum in enumerate(self._blocks):
            for j, block in enumerate(stratum):
                for term in block:
                    if not term.labeled:
                        out[j, k] += term(points, levels)
        return out

    def evaluate(self, t: np.ndarray | Points, side: str = "right") -> Evaluation:
        """The pieces at ``t``; ``side="left"`` gives the left limits ``F(t-)`` and their variances."""
        return Evaluation(self, t if isinstance(t, Points) else Points(t, side))

    def pieces(self, t: np.ndarray | Points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``F_Y`` (m,), the slopes (K, m) and the blocks (4, K, m) at ``t``."""
        evaluation = self.evaluate(t)
        return evaluation.base, evaluation.slopes, evaluation.blocks

    # -- breakpoints -----------------------------------------------------------------------
    def samples(self) -> list[SortedValues]:
        """Every sorted array a cumulative sum of this CDF reads."""
        return self._samples

    def breakpoint_samples(self, with_predictions: bool) -> list[SortedValues]:
        """The sorted arrays whose values are the breakpoints of ``F``: the outcomes, and
        the predictions too when lambda is not 0."""
        names = ["y", "f", "u"] if with_predictions else ["y"]
        return [self.streams[name].sorted for name in names if name in self.streams]

    def breakpoints(self, with_predictions: bool, size: int) -> Iterator[Points]:
        """The breakpoints of ``F`` in increasing order, in chunks of about ``size``."""
        return breakpoint_chunks(self.breakpoint_samples(with_predictions), self.samples(), size)

    # -- construction from a design ------------------------------------------------------------
    @classmethod
    def from_design(
        cls,
        design: BoundDesign,
        outcomes: np.ndarray,
        predictions: np.ndarray,
        predictions_unlabeled: np.ndarray,
        *,
        cov_type: str,
        kind: str = "ppi",
        by_stratum: bool = False,
    ) -> RectifiedCDF:
        """The CDF of ``kind`` (``"ppi"``: any lambda; ``"classical"``: the outcomes
        alone; ``"naive"``: outcomes and unlabeled predictions pooled), with the
        variance of ``design`` and ``cov_type``; ``by_stratum`` splits the blocks and
        ``F_u - F_f`` by stratum (one lambda per stratum)."""
        return _Builder(design, cov_type).build(outcomes, predictions, predictions_unlabeled, kind, by_stratum)


class _Builder:
    """Translates a bound design into streams and pair-sum terms.

    It follows :meth:`PPIModel._ppi_parts` and :meth:`BoundDesign.variance` for a
    mean: independent samples have their own variances (labeled: ``Y``, ``f``;
    unlabeled: ``u``); a design joining the samples (two phases, PSUs shared by
    both) has one, of the labeled rows' ``(Y, f - u)`` and the unlabeled rows'
    ``(0, -u)``, all in ``var_y``, ``cov_yf`` and ``var_f``; a two-phase design
    with an fpc or labeling strata adds the second-phase term.
    """

    def __init__(self, design: BoundDesign, cov_type: str):
        self.design, self.cov_type = design, cov_type
        self.ngroups = design.npsu + design.labeled.nrows + design.unlabeled.nrows

    def _strata(self, sample: str) -> np.ndarray | None:
        return self.design.sample(sample).strata

    # -- streams ---------------------------------------------------------------------------
    def _root_factor(self, sample: str):
        """The square root of each row's stratum factor (a scalar when the strata share one)."""
        design = self.design
        factor = np.sqrt(design.factors("all" if design.two_phase else sample, self.cov_type, 1))
        strata = self._strata(sample)
        return float(factor[0]) if strata is None or np.ptp(factor) == 0 else factor[strata]

    def stream(self, name: str, parts: list[tuple[str, np.ndarray, np.ndarray | None]],
               elsewhere: tuple[float, np.ndarray | None] = (0.0, None)) -> Stream:
        """A fit's rows from ``parts`` ``(sample, values, weights)``: shares of weight,
        corrected coefficients (leverage of labeled rows kept one by one; CR2 of
        PSUs with the fit's weight per PSU), times the square root of the factor.
        ``elsewhere`` holds the total weight of the fit's rows not in ``parts`` (a
        partitioned sample's) and their weight per PSU (for CR2; None: no PSUs)."""
        design, cov_type = self.design, self.cov_type
        total = float(sum(values.size if w is None else w.sum() for _, values, w in parts)) + elsewhere[0]
        psu_share = None
        if cov_type == "CR2":
            psu_share = np.zeros(design.npsu) if elsewhere[1] is None else elsewhere[1] / total
            for sample, values, w in parts:
                psu = design.sample(sample).psu
                if psu is not None:
                    psu_share += np.bincount(psu, weights=w, minlength=design.npsu) / total
        alphas, multipliers = [], []
        for sample, values, w in parts:
            alpha = 1.0 / total if w is None else w / total
            psu = design.sample(sample).psu
            if psu is not None:
                scale = leverage_scale(psu_share[psu], "CR2") if cov_type == "CR2" else 1.0
            elif sample == LABELED and cov_type in LEVERAGE_POWER:
                # h_i = w_i / W for a weighted mean
                scale = leverage_scale(np.asarray(alpha, dtype=float), cov_type)
            else:
                scale = 1.0
            alphas.append(alpha)
            multipliers.append(scale * self._root_factor(sample))
        sizes = [values.size for _, values, _ in parts]
        constant = [float(np.ravel(m)[0]) if np.ndim(m) == 0 or np.ptp(m) == 0 else None for m in multipliers]
        proportional = None not in constant and len(set(constant)) == 1
        if all(np.ndim(a) == 0 for a in alphas) and proportional:
            # constant coefficients: cumulative sums need no sorting permutation
            alpha, coef = alphas[0], alphas[0] * constant[0]
        else:
            alpha = np.concatenate([np.broadcast_to(a, size) for a, size in zip(alphas, sizes)])
            coef = alpha * np.concatenate([np.broadcast_to(m, size) for m, size in zip(multipliers, sizes)])
        samples = [sample for sample, _, _ in parts]
        psus = [design.sample(sample).psu for sample in samples]
        strata = [self._strata(sample) for sample in samples]
        values = [values for _, values, _ in parts]
        return Stream(
            name=name,
            values=values[0] if len(values) == 1 else np.concatenate(values),
            alpha=alpha,
            coef=coef,
            units=None if all(p is None for p in psus) else np.concatenate(
                [self._unit_codes(sample) for sample in samples]),
            # rows without PSUs are units of their own: codes after the PSUs', labeled rows first
            unit_offset=design.npsu + (0 if samples[0] == LABELED else design.labeled.nrows),
            strata=None if all(x is None for x in strata) else np.concatenate(
                [self.design.sample(sample).stratum_codes() for sample in samples]),
            rows="+".join(samples),
            own_units=all(p is None for p in psus),
            labeled=samples == [LABELED],
            proportional=proportional,
        )

    def _unit_codes(self, sample: str) -> np.ndarray:
        design = self.design
        psu = design.sample(sample).psu
        if psu is not None:
            return psu
        offset = design.npsu + (0 if sample == LABELED else design.labeled.nrows)
        return offset + np.arange(design.sample(sample).nrows)

    # -- terms -----------------------------------------------------------------------------
    def units_term(self, a: Stream, b: Stream, sign: float = 1.0) -> Term:
        """``sum_g A_g B_g`` over PSUs (units)."""
        if a.own_units and b.own_units and a.rows == LABELED and b.rows == f"{LABELED}+{UNLABELED}":
            # units of their own: only the labeled units of the all-units fit meet a labeled one
            b = b.within(np.arange(b.values.size) < a.values.size)
            b.rows = LABELED
        if a is b:
            pairs = PairSum.same_units(a.sorted, a.sorted, a.coef * a.coef) if a.own_units else \
                PairSum.grouped_self(a.sorted, a.coef, a.unit_codes, self.ngroups)
        elif a.rows == b.rows and a.own_units:
            joint = SortedValues(np.maximum(a.values, b.values))
            pairs = PairSum.same_units(a.sorted, b.sorted, a.coef * b.coef, joint)
        else:
            pairs = PairSum.grouped(a.sorted, a.coef, a.unit_codes, b.sorted, b.coef, b.unit_codes, self.ngroups)
        return Term(sign, pairs, a.name, b.name, a.labeled and b.labeled)

    def centre_term(self, a: Stream, b: Stream, counts: np.ndarray, sign: float = 1.0) -> Term | None:
        """``-sum_h A_h B_h / G_h``: the centring within strata (None where a stratum total
        vanishes: one stratum and coefficients proportional to the weights)."""
        H = self.design.nstrata
        if H == 1 and (a.proportional or b.proportional):
            return None
        root = 1.0 / np.sqrt(np.maximum(counts, 1.0))

        def scaled(s: Stream):
            return _array(s.coef, s.values.size) * (root[0] if s.strata is None else root[s.strata])

        if H == 1 or np.unique(np.r_[a.stratum_codes, b.stratum_codes]).size == 1:
            # one stratum: the product of two totals
            alpha = scaled(a)
            pairs = StratumProduct(a.sorted, alpha, b.sorted, alpha if a is b else scaled(b))
        elif a is b:
            pairs = PairSum.grouped_self(a.sorted, scaled(a), a.stratum_codes, H)
        else:
            pairs = PairSum.grouped(a.sorted, scaled(a), a.stratum_codes, b.sorted, scaled(b), b.stratum_codes, H)
        return Term(-sign, pairs, a.name, b.name, a.labeled and b.labeled)

    def variance(self, a: Stream, b: Stream, counts: np.ndarray, sign: float = 1.0) -> list[Term]:
        """The terms of ``sign * V_AB``."""
        terms = [self.units_term(a, b, sign), self.centre_term(a, b, counts, sign)]
        return [term for term in terms if term is not None]

    def phase_two(self, y: Stream, f: Stream, mask: np.ndarray | None) -> tuple[list[Term], ...]:
        """The second-phase correction of a two-phase design with an fpc or labeling
        strata, for (var_y, cov_yf, var_f): per design stratum ``S - (1 - f_h) c_h P``,
        ``P = sum (1 - pi_i) r_i r_i'`` of the labeled rows' unadjusted contributions
        ``r_i = alpha_i (1{v_i <= t} - F(t))``, and ``S = P`` (Poisson labeling) or, with
        labeling strata, ``sum (1 - pi_i) n_k / (n_k - 1) c_i c_i'`` with ``c_i`` centred
        within labeling strata. ``mask`` keeps one design stratum's rows."""
        design = self.design
        n = design.labeled.nrows
        rows = np.ones(n, dtype=bool) if mask is None else mask
        alpha = _array(y.alpha, n)
        keep = 1.0 - design.label_prob
        factor = design.factors("all", self.cov_type, 1)[design.labeled.stratum_codes()]
        sy, sf = y.sorted, f.sorted
        if mask is not None:
            sy, sf = SortedValues(y.values[mask]), SortedValues(f.values[mask])
        joint = SortedValues(np.maximum(y.values[rows], f.values[rows]))
        if design.label_strata is None:
            own = keep * (1.0 - factor) * alpha**2
        else:
            codes = design.label_strata
            K = int(codes.max()) + 1
            sizes = np.bincount(codes, minlength=K).astype(float)
            small = np.where(sizes > 1, sizes / np.maximum(sizes - 1.0, 1.0), 1.0)[codes]
            own = keep * (small - factor) * alpha**2
        own = own[rows]
        out = (
            [Term(1.0, PairSum.same_units(sy, sy, own), "y", "y", True)],
            [Term(1.0, PairSum.same_units(sy, sf, own, joint), "y", "f", True)],
            [Term(1.0, PairSum.same_units(sf, sf, own), "f", "f", True)],
        )
        if design.label_strata is None:
            return out
        # - sum_k KR^A_k M^B_k - sum_k M^A_k KR^B_k + sum_k KW_k M^A_k M^B_k, with M_k the
        # label-stratum mean of r, KR_k its (1 - pi) n_k / (n_k - 1) weighted sum over the kept rows
        weighted = keep * small
        kw = np.bincount(codes[rows], weights=weighted[rows], minlength=K)
        mean_coef = alpha / sizes[codes]
        both_coef = alpha * np.sqrt(kw)[codes] / sizes[codes]
        kept = {"y": (sy, (weighted * alpha)[rows], codes[rows]), "f": (sf, (weighted * alpha)[rows], codes[rows])}
        full = {"y": (y.sorted, mean_coef, codes), "f": (f.sorted, mean_coef, codes)}
        both = {"y": (y.sorted, both_coef, codes), "f": (f.sorted, both_coef, codes)}
        for block, (a, b) in zip(out, (("y", "y"), ("y", "f"), ("f", "f"))):
            for first, second in ((a, b), (b, a)):
                block.append(Term(-1.0, PairSum.grouped(*kept[first], *full[second], K), first, second, True))
            if a == b:
                pairs = PairSum.grouped_self(*both[a], K)
            else:
                pairs = PairSum.grouped(*both[a], *both[b], K)
            block.append(Term(1.0, pairs, a, b, True))
        return out

    # -- the estimate's CDF -------------------------------------------------------------------
    def build(self, outcomes, predictions, predictions_unlabeled, kind: str, by_stratum: bool) -> RectifiedCDF:
        design = self.design
        two_phase = design.two_phase
        labeled_weights = design.fit_weights(LABELED)
        if kind == "naive":
            weights = design.phase_one_weights(LABELED) if two_phase else labeled_weights
            pooled = self.stream("y", [(LABELED, outcomes, weights),
                                       (UNLABELED, predictions_unlabeled, design.phase_one_weights(UNLABELED))])
            counts = design.psu_counts("all")
            return RectifiedCDF({"y": pooled}, [(self.variance(pooled, pooled, counts), [], [], [])])
        y = self.stream("y", [(LABELED, outcomes, labeled_weights)])
        phase_two = two_phase and (design.has_fpc or design.label_strata is not None)
        if kind == "classical":
            counts = design.psu_counts("all" if two_phase else LABELED)
            var_y = self.variance(y, y, counts)
            if phase_two:
                var_y += self.phase_two(y, y, None)[0]
            return RectifiedCDF({"y": y}, [(var_y, [], [], [])])
        f = self.stream("f", [(LABELED, predictions, labeled_weights)])
        parts = [(LABELED, predictions, design.phase_one_weights(LABELED))] if two_phase else []
        parts.append((UNLABELED, predictions_unlabeled, design.phase_one_weights(UNLABELED)))
        u = self.stream("u", parts)
        streams = {"y": y, "f": f, "u": u}
        if not by_stratum:
            return RectifiedCDF(streams, [self._blocks(y, f, u)])
        blocks, slopes = [], []
        for h in range(design.nstrata):
            masks = [s.stratum_codes == h for s in (y, f, u)]
            within = [s.within(mask) for s, mask in zip((y, f, u), masks)]
            blocks.append(self._blocks(*within, full=(y, f, masks[0])))
            slopes.append(_Slope(within[2], within[1]))
        return RectifiedCDF(streams, blocks, slopes)

    def _blocks(self, y: Stream, f: Stream, u: Stream | None, full=None) -> tuple[list[Term], ...]:
        """The terms of (var_y, cov_yf, var_f, var_fu); for one stratum's rows, ``full`` holds
        the labeled streams of all rows and the stratum's mask of labeled rows. Without ``u``:
        the terms of the labeled fits alone (the rest comes from a partitioned sample)."""
        design = self.design
        if design.combined:
            counts = design.psu_counts("all")
            var_y = self.variance(y, y, counts)
            cov_yf = self.variance(y, f, counts)
            var_f = self.variance(f, f, counts)
            if u is not None:
                cov_yf += self.variance(y, u, counts, -1.0)
                var_f += self.variance(f, u, counts, -2.0) + self.variance(u, u, counts)
            var_fu = []
        else:
            labeled, unlabeled = design.psu_counts(LABELED), design.psu_counts(UNLABELED)
            var_y, cov_yf, var_f = (self.variance(y, y, labeled), self.variance(y, f, labeled),
                                    self.variance(f, f, labeled))
            var_fu = [] if u is None else self.variance(u, u, unlabeled)
        if design.two_phase and (design.has_fpc or design.label_strata is not None):
            extra = self.phase_two(y, f, None) if full is None else self.phase_two(*full)
            var_y, cov_yf, var_f = var_y + extra[0], cov_yf + extra[1], var_f + extra[2]
        return var_y, cov_yf, var_f, var_fu


class Evaluation:
    """The rectified CDF's pieces at points (m,), for K strata (K = 1 unless lambda is
    tuned per stratum).

    ``value(lam) = base + sum_k lam_k slopes_k`` and the variance is the sum over
    strata of the :class:`PPIComponents` formula. ``lam`` is (K,) (one lambda per
    stratum) or (K, m) (one per stratum and point). The variance blocks are
    computed on first use: a scan for the point estimate alone never needs them.
    """

    def __init__(self, cdf: RectifiedCDF, points: Points):
        self.cdf, self.points = cdf, points
        self._levels = cdf.levels(points)
        self.base = self._levels["y"]
        self.slopes = cdf.slopes(points, self._levels)

    @cached_property
    def blocks(self) -> np.ndarray:
        """(4, K, m): var_y, cov_yf, var_f, var_fu."""
        return self.cdf.blocks(self.points, self._levels)

    @property
    def components(self) -> PPIComponents:
        """The blocks as K strata of m one-parameter problems: shape (K, m, 1, 1)."""
        return PPIComponents(*(block[..., None, None] for block in self.blocks))

    @staticmethod
    def _per_point(lam) -> np.ndarray:
        lam = np.asarray(lam, dtype=float)
        return lam[:, None] if lam.ndim == 1 else lam

    def value(self, lam) -> np.ndarray:
        lam = self._per_point(lam)
        return self.base + (lam * self.slopes).sum(axis=0)

    def parts(self, lam) -> tuple[np.ndarray, np.ndarray]:
        """The labeled and unlabeled parts of the variance, summed over strata."""
        lam = self._per_point(lam)
        var_y, cov_yf, var_f, var_fu = self.blocks
        # the order of operations of PPIComponents.parts, so that both give the same numbers
        cross = cov_yf * lam
        labeled = var_y - cross - cross + lam * var_f * lam
        return labeled.sum(axis=0), (lam * var_fu * lam).sum(axis=0)

    def variance(self, lam) -> np.ndarray:
        labeled, unlabeled = self.parts(lam)
        return np.maximum(labeled + unlabeled, 0.0)

    def tuned_lambda(self) -> np.ndarray:
        """(K, m) variance-minimising lambdas, clipped to [0, 1]."""
        return self.components.tuned_lambda(per_coefficient=True)[..., 0]
