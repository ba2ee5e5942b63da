"""Score moments of a linear estimating equation, summed by the scan of a partitioned sample.

A mean, a total and a ratio have estimating functions linear in their
parameter: row ``i`` scores ``s_i(b) = u_i - b z_i`` with ``u_i = w_i v_i`` and
``z_i = w_i x_i`` (``x_i = 1`` for a mean or a total), and its Hessian weight
is ``z_i``. Everything the design's variance needs from such rows, at any
``b``, follows from a few sums per stratum (or per PSU) about a reference value
``r``, which do not depend on ``b``:

* per PSU: ``sum z`` (the PSU's Hessian) and ``sum (u - r z)``, from which the
  PSU's score total at ``b`` is ``sum (u - r z) - (b - r) sum z``;
* per stratum: also the row count and the moments ``sum (u - r z)(u - r z)'``,
  ``sum z (u - r z)`` and ``sum z^2``, which give the sum of the scores' outer
  products at any ``b`` exactly (see :meth:`GroupMoments.shift`).

So the scan that validates a sample read partition by partition
(:class:`ScoreMoments`) collects them, and the fit of the unlabeled
predictions needs no pass of its own (:class:`ScannedScores`). The
reference is each partition's own least-squares ratio ``sum z u / sum z^2``
(the mean of ``v`` for an unweighted mean), and partial sums are shifted to a common
reference when they merge, so the squares are of deviations, not of raw values
(no cancellation when the mean is large against the spread).

The scan sees the design's labels (PSUs, strata) before they are coded, so
the sums are kept by label and coded afterwards, by evaluating the design's
code columns on the labels themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import DesignCollector, group_sums

__all__ = ["ScoreMoments", "GroupMoments", "ScannedScores"]


@dataclass(frozen=True)
class ScoreMoments:
    """Scan accumulator of the score moments of ``u = w v``, ``z = w x`` grouped by design labels.

    ``V`` is the response (one or more columns), ``X`` the ratio's denominator
    (None: 1), ``weights`` the weights (None: 1); ``strata`` and ``psu`` the
    label variables to group by (None: absent). With PSUs only their totals
    are kept (the variance needs nothing else from a clustered sample).
    """

    V: str
    X: str | None = None
    weights: str | None = None
    strata: str | None = None
    psu: str | None = None

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> "GroupMoments | None":
        v = arrays[self.V]
        if v.shape[0] == 0:  # an empty partition (a filtered Dask DataFrame): nothing to add
            return None
        u = v.reshape(v.shape[0], -1)
        w = arrays[self.weights] if self.weights else None
        x = arrays[self.X] if self.X else None
        z = _product(w, x, u.shape[0])
        if w is not None:
            u = u * w[:, None]
        codes, keys = self._groups(arrays)
        return GroupMoments.of(u, z, codes, keys, squares=self.psu is None)

    def _groups(self, arrays) -> tuple[np.ndarray, pd.Index]:
        """Each row's group number and the groups' labels (a MultiIndex of (stratum, PSU) pairs)."""
        labels = [arrays[key] for key in (self.strata, self.psu) if key]
        if not labels:
            return np.zeros(arrays[self.V].shape[0], dtype=np.intp), pd.Index([0])
        if len(labels) == 1:
            codes, uniques = pd.factorize(labels[0])
            return codes, pd.Index(uniques)
        codes, uniques = pd.MultiIndex.from_arrays(labels).factorize()
        return codes, uniques


def _product(w: np.ndarray | None, x: np.ndarray | None, rows: int) -> np.ndarray:
    """``z = w x`` with missing factors taken as 1."""
    if w is None and x is None:
        return np.ones(rows)
    if w is None or x is None:
        return np.asarray(w if x is None else x, dtype=float)
    return w * x


class GroupMoments:
    """Per group (labels ``keys``): row counts, ``Z = sum z``, ``Z2 = sum z^2`` and, about the
    reference ``r`` (shared by the groups), ``D = sum (u - r z)``; with ``squares`` also
    ``M = sum (u - r z)(u - r z)'`` and ``P = sum z (u - r z)``. Mergeable across partitions.

    Sums of deviations from a reference near the estimate keep the scores' totals
    ``D - (b - r) Z`` free of the cancellation that ``sum u - b sum z`` would suffer
    when the values are large against their spread.
    """

    def __init__(self, keys: pd.Index, count, Z, Z2, reference, D, M=None, P=None):
        self.keys, self.count, self.Z, self.Z2 = keys, count, Z, Z2
        self.reference, self.D, self.M, self.P = reference, D, M, P

    @property
    def squares(self) -> bool:
        return self.M is not None

    @property
    def U(self) -> np.ndarray:
        """``sum u`` per group."""
        return self.D + self.Z[:, None] * self.reference[None, :]

    @classmethod
    def of(cls, u: np.ndarray, z: np.ndarray, codes: np.ndarray, keys: pd.Index, *, squares: bool) -> "GroupMoments":
        """The moments of rows ``u`` (m, k), ``z`` (m,) in groups ``codes`` (0..len(keys)-1), about
        their least-squares ratio ``sum z u / sum z^2``."""
        G = len(keys)
        count = np.bincount(codes, minlength=G).astype(float)
        Z = np.bincount(codes, weights=z, minlength=G)
        z2 = z * z
        Z2 = np.bincount(codes, weights=z2, minlength=G)
        total = float(Z2.sum())
        reference = (z @ u) / total if total > 0 else np.zeros(u.shape[1])
        d = u - z[:, None] * reference
        D = group_sums(d, codes, G)
        if not squares:
            return cls(keys, count, Z, Z2, reference, D)
        P = group_sums(d * z[:, None], codes, G)
        if G == 1:
            M = (d.T @ d)[None]
        elif G <= 8:
            M = np.zeros((G, u.shape[1], u.shape[1]))
            for g in range(G):
                rows = d[codes == g]
                M[g] = rows.T @ rows
        else:
            # many groups: the rows sorted once, then each group's slice (not a scan of every row per group;
            # no (rows, k, k) products either: k is every stored column, all synthetic draws)
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(G + 1))
            d_sorted = d[order]
            M = np.empty((G, u.shape[1], u.shape[1]))
            for g in range(G):
                rows = d_sorted[bounds[g] : bounds[g + 1]]
                M[g] = rows.T @ rows
        return cls(keys, count, Z, Z2, reference, D, M, P)

    def shift(self, reference: np.ndarray) -> "GroupMoments":
        """The same sums about another reference ``r'``: with ``e = r' - r``, ``u - r' z =
        (u - r z) - e z``, so ``D' = D - Z e``, ``M' = M - e P' - P e' + Z2 e e'`` and ``P' = P - Z2 e``."""
        reference = np.asarray(reference, dtype=float)
        e = reference - self.reference
        D = self.D - self.Z[:, None] * e[None, :]
        if not self.squares:
            return GroupMoments(self.keys, self.count, self.Z, self.Z2, reference, D)
        Pe = np.einsum("gi,j->gij", self.P, e)
        M = self.M - Pe - Pe.transpose(0, 2, 1) + self.Z2[:, None, None] * np.outer(e, e)[None]
        P = self.P - self.Z2[:, None] * e[None, :]
        return GroupMoments(self.keys, self.count, self.Z, self.Z2, reference, D, M, P)

    def merge(self, other: "GroupMoments") -> "GroupMoments":
        """The sums over both parts' rows, groups matched by label, about the average of the
        parts' references weighted by their ``sum z^2``."""
        a, b = self, other
        weight = a.Z2.sum() + b.Z2.sum()
        common = (a.Z2.sum() * a.reference + b.Z2.sum() * b.reference) / weight if weight > 0 else a.reference
        a, b = a.shift(common), b.shift(common)
        position = a.keys.get_indexer(b.keys)
        new = position < 0
        fields = {}
        for name in ("count", "Z", "Z2", "D", "M", "P"):
            x, y = getattr(a, name), getattr(b, name)
            fields[name] = None if x is None else _add_by_group(x, y, position, new)
        return GroupMoments(a.keys.append(b.keys[new]), fields["count"], fields["Z"], fields["Z2"], common,
                            fields["D"], fields["M"], fields["P"])

    def linear(self, A: np.ndarray) -> "GroupMoments":
        """The moments of ``u A`` (a linear map of the response columns: a row mean of draws, one draw)."""
        M = None if self.M is None else np.einsum("ia,gij,jb->gab", A, self.M, A)
        P = None if self.P is None else self.P @ A
        return GroupMoments(self.keys, self.count, self.Z, self.Z2, self.reference @ A, self.D @ A, M, P)

    def scaled(self, factor: np.ndarray) -> "GroupMoments":
        """The moments with every row of group ``g`` weighted ``factor[g]`` times more (``u`` and ``z``
        scaled; the reference, a ratio of the two, is unchanged)."""
        f = np.asarray(factor, dtype=float)
        f2 = f * f
        return GroupMoments(self.keys, self.count, self.Z * f, self.Z2 * f2, self.reference, self.D * f[:, None],
                            None if self.M is None else self.M * f2[:, None, None],
                            None if self.P is None else self.P * f2[:, None])

    def label_arrays(self, strata: str | None, psu: str | None) -> dict[str, np.ndarray]:
        """The groups' labels as a partition of the label variables (one row per group)."""
        keys = [key for key in (strata, psu) if key]
        if len(keys) == 2:
            return {key: self.keys.get_level_values(k).to_numpy() for k, key in enumerate(keys)}
        return {keys[0]: self.keys.to_numpy()} if keys else {}


def _add_by_group(x: np.ndarray, y: np.ndarray, position: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``x`` with ``y``'s groups added where they match (``position``) and appended where ``new``."""
    out = np.concatenate([x, y[new]])
    np.add.at(out, position[~new], y[~new])
    return out


class ScannedScores:
    """What the scan summed for a linear fit of the unlabeled rows (:class:`GroupMoments`, the
    response columns already mapped to the fit's), coded with the bound design: the fit's sums
    and, at any parameter value, the :class:`~ppinfer.designs.base.DesignCollector` its pass
    would have filled."""

    def __init__(self, design, moments: GroupMoments, strata: str | None, psu: str | None):
        self.design, self.moments = design, moments
        labels = moments.label_arrays(strata, psu)
        sample = design.unlabeled
        self.psu_codes = None if sample.psu is None else np.asarray(sample.psu.of(labels), dtype=np.intp)
        self.stratum_codes = (np.zeros(len(moments.keys), dtype=np.intp) if sample.strata is None
                              else np.asarray(sample.strata.of(labels), dtype=np.intp))
        if design.weights_derived:
            # weights of a stratified design, set per stratum after the scan (which summed unweighted rows)
            self.moments = moments.scaled(np.asarray(sample.weights.of(labels), dtype=float))

    def scaled(self, factor: float) -> "ScannedScores":
        """The same sums with every row weighted ``factor`` times more (a total's expansion)."""
        out = copy.copy(self)
        out.moments = self.moments.scaled(np.full(len(self.moments.keys), float(factor)))
        return out

    def sums(self) -> tuple[np.ndarray, float]:
        """``sum u`` (by response column) and ``sum z`` over all rows."""
        return self.moments.U.sum(axis=0), float(self.moments.Z.sum())

    def collector(self, params, scale: float = 1.0):
        """The design collector of the scores ``scale (u - b z)`` with Hessian weights ``scale^2 z``
        at ``b = params``."""
        design, moments = self.design, self.moments
        b = np.atleast_1d(np.asarray(params, dtype=float))
        collector = DesignCollector(None, None, design.npsu, design.nstrata)
        moments = moments.shift(b)
        totals = scale * moments.D
        if self.psu_codes is not None:
            collector.totals = group_sums(totals, self.psu_codes, design.npsu)
            collector.jacobians = np.bincount(self.psu_codes, weights=scale**2 * moments.Z, minlength=design.npsu)
            return collector
        H, codes = design.nstrata, self.stratum_codes
        k = totals.shape[1]
        collector.s1 = group_sums(totals, codes, H)
        collector.s2 = group_sums(scale**2 * moments.M.reshape(len(codes), k * k), codes, H).reshape(H, k, k)
        collector.counts = np.bincount(codes, weights=moments.count, minlength=H)
        return collector
