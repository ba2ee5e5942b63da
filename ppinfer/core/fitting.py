"""M-estimation by row reductions: GLM fits and means over blocks of rows.

A fit solves ``sum_i w_i psi_i(b) = 0`` over one or more blocks of rows (the
labeled rows; the unlabeled rows; both pooled). Every quantity the variance
needs is a sum over rows evaluated at the solution, collected in the fit's
last pass by a :class:`Collector` per block: the labeled block keeps its rows'
scores (PPI needs their covariance with other fits), a large block hands them
to the sampling design, which reduces them to sums by stratum and primary
sampling unit. Memory stays at one chunk of rows beyond the inputs.

A block's arrays may also be :class:`~ppinfer.core.sources.Column` handles of a
sample whose rows stay in their source (Dask, Parquet): each pass is then one
reduction over its partitions (:func:`~ppinfer.core.sources.reduce_rows`),
the per-partition sums and collectors added up, so the same code gives the
same numbers whatever holds the rows.

A row's (weighted) score is ``s_i = w_i x_i r_i`` and minus its derivative is
``w_i c_i x_i x_i'``; ``bread`` is the inverse of the summed Hessian, so each
row contributes ``bread @ s_i`` to ``b_hat - b`` (the influence row divided by
the number of rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.linalg

from .families import Family
from .sources import Column, reduce_rows

#: rows per chunk in reductions: large enough for BLAS, small enough for the cache
CHUNK_ROWS = 1 << 15


def chunks(nrows: int):
    """Slices of at most :data:`CHUNK_ROWS` rows covering ``range(nrows)``."""
    for start in range(0, nrows, CHUNK_ROWS):
        yield slice(start, min(start + CHUNK_ROWS, nrows))


class Collector(Protocol):
    """Receives the scores of a block's rows at the final coefficients, chunk by chunk.

    ``scores`` (m, p) are the weighted scores ``s_i``; ``X`` (m, p) the design rows
    (None for a mean, whose Hessian is ``w_i`` times the identity) and
    ``curvature`` (m,) the Hessian weights ``w_i c_i``.
    """

    def add(self, rows: slice, scores: np.ndarray, X: np.ndarray | None, curvature: np.ndarray) -> None: ...


class RowScores:
    """Collector that keeps every row: the labeled sample's scores and Hessian weights."""

    def __init__(self) -> None:
        self._scores: list[np.ndarray] = []
        self._curvature: list[np.ndarray] = []

    def add(self, rows, scores, X, curvature):
        self._scores.append(np.array(scores))
        self._curvature.append(np.array(curvature))

    def merge(self, other: "RowScores") -> "RowScores":
        """The rows of both collectors (this one's first)."""
        merged = RowScores()
        merged._scores, merged._curvature = self._scores + other._scores, self._curvature + other._curvature
        return merged

    @property
    def scores(self) -> np.ndarray:
        return np.concatenate(self._scores) if len(self._scores) != 1 else self._scores[0]

    @property
    def curvature(self) -> np.ndarray:
        return np.concatenate(self._curvature) if len(self._curvature) != 1 else self._curvature[0]


#: makes a block's :class:`Collector`; a factory with a ``columns`` attribute (Column handles or
#: arrays of the block's sample) is called with those columns' values for the rows it will receive
CollectorFactory = Callable[..., Collector]


@dataclass(frozen=True)
class Fit:
    """An M-estimate and the sums its variance is built from.

    Attributes
    ----------
    params : (p,) array
    bread : (p, p) array
        Inverse of the summed Hessian ``sum_i w_i c_i x_i x_i'``.
    nobs : int
        Rows in all blocks.
    collected : tuple
        Per block, the :class:`Collector` that received its rows' scores at
        ``params`` (None for a block without one).
    """

    params: np.ndarray
    bread: np.ndarray
    nobs: int
    collected: tuple

    def contributions(self, scores: np.ndarray) -> np.ndarray:
        """Each row's contribution ``bread @ s_i`` to ``params - beta`` (rows of ``scores``)."""
        return scores @ self.bread  # the bread is symmetric


@dataclass
class _Sums:
    score: np.ndarray
    hessian: np.ndarray
    loss: float

    def __add__(self, other: "_Sums") -> "_Sums":
        return _Sums(self.score + other.score, self.hessian + other.hessian, self.loss + other.loss)


def solve_symmetric(hessian: np.ndarray, rhs: np.ndarray, what: str) -> np.ndarray:
    """Solve with a symmetric positive definite Hessian, or say which design is singular."""
    scale = np.sqrt(np.diag(hessian))
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"{what}: the Hessian has zero or non-finite diagonal entries; the design is singular.")
    scaled = hessian / np.outer(scale, scale)
    eigenvalues = np.linalg.eigvalsh(scaled)
    if eigenvalues[0] <= eigenvalues[-1] * 1e-12:
        raise ValueError(
            f"{what}: the design is singular or nearly so (scaled Hessian condition number "
            f"{eigenvalues[-1] / max(eigenvalues[0], 1e-300):.3g}); check for collinear columns "
            "or, for a logistic or Poisson model, fitted means at 0 or 1 (separation)."
        )
    factor = scipy.linalg.cho_factor(scaled)
    solution = scipy.linalg.cho_solve(factor, rhs / scale[:, None] if rhs.ndim == 2 else rhs / scale)
    return solution / (scale[:, None] if solution.ndim == 2 else scale)


def _block_sums(
    family: Family,
    X: np.ndarray,
    v: np.ndarray,
    beta: np.ndarray,
    weights: np.ndarray | None,
    *,
    hessian: bool,
    loss: bool,
    collector: Collector | None,
    score: bool = True,
) -> _Sums:
    """One pass over a block: score (unless ``score`` is False: a pass that only feeds the
    collector) and (optionally) Hessian and loss at ``beta``; the rows' scores go to ``collector``."""
    p = X.shape[1]
    total_score, total_hessian, total_loss = np.zeros(p), np.zeros((p, p)), 0.0
    unit_curvature = family.linear and weights is None
    for rows in chunks(v.shape[0]):
        Xc = np.ascontiguousarray(X[rows])  # a strided memory map: one chunk copied
        eta = Xc @ beta
        residual, curvature = family.working(v[rows], eta)
        if weights is not None:
            w = weights[rows]
            residual = residual * w
            curvature = curvature * w
        if score:
            total_score += Xc.T @ residual
        if hessian:
            total_hessian += _weighted_gram(Xc, None if unit_curvature else curvature)
        if loss:
            row_loss = family.loss(v[rows], eta)
            total_loss += float((row_loss if weights is None else row_loss * weights[rows]).sum())
        if collector is not None:
            collector.add(rows, Xc * residual[:, None], Xc, curvature)
    return _Sums(total_score, total_hessian, total_loss)


@dataclass(frozen=True)
class _BlockPass:
    """:func:`_block_sums` over the rows it is given, with a collector made for them."""

    family: Family
    beta: np.ndarray
    hessian: bool
    loss: bool
    factory: CollectorFactory | None
    score: bool = True

    def __call__(self, X, v, weights, *columns):
        collector = None if self.factory is None else self.factory(*columns)
        sums = _block_sums(self.family, X, v, self.beta, weights, hessian=self.hessian, loss=self.loss,
                           collector=collector, score=self.score)
        return sums, collector


def _block_pass(family: Family, X, v, beta: np.ndarray, weights, *, hessian: bool, loss: bool,
                factory: CollectorFactory | None, score: bool = True) -> tuple[_Sums, Collector | None]:
    """One pass over a block, in memory or partition by partition: its sums and collector."""
    needs = tuple(getattr(factory, "columns", ())) if factory is not None else ()
    return reduce_rows(_BlockPass(family, beta, hessian, loss, factory, score), X, v, weights, *needs)


def _weighted_gram(X: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """``X' diag(weights) X``: a symmetric rank-k update (BLAS syrk, half a general product)
    of ``X`` scaled by the square roots of non-negative weights."""
    if weights is None:
        return X.T @ X
    if weights.min() >= 0:
        scaled = X * np.sqrt(weights)[:, None]
        return scaled.T @ scaled
    return (X * weights[:, None]).T @ X


def fit_glm(
    family: Family,
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    weights: Sequence[np.ndarray | None] | None = None,
    collectors: Sequence[CollectorFactory | None] | None = None,
    start: np.ndarray | None = None,
    what: str = "fit",
    tol: float = 1e-10,
    max_iter: int = 100,
    iterate: bool = True,
    normal_equations: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    row_norms: Sequence[float | None] | None = None,
) -> Fit:
    """Fit a GLM by damped Newton iterations over row reductions.

    Parameters
    ----------
    family : Family
    blocks : sequence of (X, v)
        Row blocks fitted together (one block, or several pooled).
    weights : sequence aligned with ``blocks``, optional
        Row weights of each block (None: unit weights).
    collectors : sequence aligned with ``blocks``, optional
        A factory of a :class:`Collector` per block (or None), called for the pass
        at the final coefficients.
    start : (p,) array, optional
        Starting coefficients (a warm start saves passes over a large block).
    what : str
        Describes the fit in error messages.
    iterate : bool
        False evaluates the scores and Hessian at ``start`` in one pass, without
        solving (a one-step expansion around another fit's estimate).
    normal_equations : sequence aligned with ``blocks``, optional
        For a Gaussian fit, each block's ``(X'WX, X'Wv)`` if already summed (by
        the scan that validated the sample): the fit then needs only the pass
        that feeds the collectors.
    row_norms : sequence aligned with ``blocks``, optional
        The largest Euclidean norm of each block's design rows (computed for
        arrays; for a partitioned block, from the scan), for the step bound below.

    Notes
    -----
    Solves ``sum_i w_i x_i r_i(b) = 0``. A Gaussian identity-link fit takes one
    Newton step (exact) and one pass at the solution for the collectors; other
    families take Newton steps halved until the loss does not increase, and stop
    when the step is below ``tol * (1 + max|b|)``. Near convergence the pass
    that evaluates a step also feeds the collectors, so a converged fit usually
    needs no extra pass.

    For a family whose cumulant ``b`` has ``|b'''| <= K b''`` (``K = 1`` for the
    logistic and Poisson models) the loss along a Newton step ``s`` from ``b``,
    ``phi(t)``, has ``|phi'''| <= K M phi''`` with ``M = max_i |x_i's|``; since
    ``phi'(0) = -phi''(0)``, ``phi(1) - phi(0) <= phi''(0) ((e^c - 1 - c) / c^2 - 1)``
    with ``c = K M``, which is not positive for ``c <= 1.79`` (the generalised
    self-concordance of Bach 2010, "Self-concordant analysis for logistic
    regression", Electronic Journal of Statistics). A step with
    ``K max_i ||x_i|| ||s|| <= 1.5`` is therefore taken without evaluating the loss
    (after the Hessian, a pass's most expensive part); longer steps are halved
    until the loss does not increase.
    """
    weights = list(weights) if weights is not None else [None] * len(blocks)
    factories = list(collectors) if collectors is not None else [None] * len(blocks)
    p = blocks[0][0].shape[1]
    nobs = sum(v.shape[0] for _, v in blocks)

    def sums(beta: np.ndarray, *, hessian: bool = True, collect: bool = False, loss: bool = False,
             score: bool = True):
        total, made = None, []
        for (X, v), w, f in zip(blocks, weights, factories):
            part, collector = _block_pass(family, X, v, beta, w, hessian=hessian, loss=loss,
                                          factory=f if collect else None, score=score)
            total = part if total is None else total + part
            made.append(collector)
        return total, tuple(made)

    if not iterate:
        beta = np.asarray(start, dtype=float)
        at_start, collected = sums(beta, collect=True)
        return Fit(beta, solve_symmetric(at_start.hessian, np.eye(p), what), nobs, collected)

    if family.linear:
        beta = np.zeros(p) if start is None else np.asarray(start, dtype=float)
        given = list(normal_equations) if normal_equations is not None else [None] * len(blocks)
        first = _Sums(np.zeros(p), np.zeros((p, p)), 0.0)
        for (X, v), w, normal in zip(blocks, weights, given):
            if normal is None:
                first = first + _block_pass(family, X, v, beta, w, hessian=True, loss=False, factory=None)[0]
            else:
                first = first + _Sums(normal[1] - normal[0] @ beta, normal[0], 0.0)
        beta = beta + solve_symmetric(first.hessian, first.score, what)
        # the Hessian does not depend on the coefficients: one more pass feeds the collectors
        _, collected = sums(beta, hessian=False, collect=True, score=False)
        bread = solve_symmetric(first.hessian, np.eye(p), what)
        return Fit(beta, bread, nobs, collected)

    if start is not None:
        beta = np.asarray(start, dtype=float).copy()
    elif isinstance(blocks[0][1], Column):
        beta = np.zeros(p)
    else:
        X0, v0 = blocks[0]
        beta = np.linalg.lstsq(X0, family.start(v0), rcond=None)[0]
    # a Newton step short enough for the family's third derivative cannot increase the loss:
    # such steps are taken without computing the loss (see the Notes)
    bound = _step_bound(family, blocks, row_norms)
    current, collected = sums(beta, loss=bound is None)
    current_has_loss, collected_at_current = bound is None, False
    for _ in range(max_iter):
        step = solve_symmetric(current.hessian, current.score, what)
        size = np.max(np.abs(step))
        if size <= tol * (1.0 + np.max(np.abs(beta))):
            break
        # near convergence the next point is the last: feed the collectors in the same pass
        collect = size < 1e-4 * (1.0 + np.max(np.abs(beta)))
        if bound is not None and bound * np.linalg.norm(step) <= NEWTON_DECREASE_BOUND:
            candidate = beta + step
            trial, trial_collected = sums(candidate, collect=collect, loss=False)
            if np.all(np.isfinite(trial.score)) and np.all(np.isfinite(trial.hessian)):
                beta, current, current_has_loss = candidate, trial, False
                collected, collected_at_current = trial_collected, collect
                continue
        if not current_has_loss:
            current = _Sums(current.score, current.hessian,
                            sums(beta, hessian=False, loss=True, score=False)[0].loss)
        scale = 1.0
        while True:
            candidate = beta + scale * step
            trial, trial_collected = sums(candidate, collect=collect, loss=True)
            if np.isfinite(trial.loss) and trial.loss <= current.loss + 1e-12 * abs(current.loss):
                break
            scale /= 2.0
            if scale < 1e-10:
                # no decrease along the Newton direction: at the optimum to rounding error
                candidate, trial, trial_collected = beta, current, (collected if collected_at_current else None)
                collect = collected_at_current
                break
        beta, current, current_has_loss = candidate, trial, True
        collected, collected_at_current = trial_collected, collect
        if scale < 1e-10:
            break
    else:
        raise ValueError(
            f"{what} did not converge in {max_iter} iterations; for a logistic or Poisson model the "
            "response may be perfectly separated by the design (estimates at infinity)."
        )
    if not collected_at_current:
        _, collected = sums(beta, hessian=False, collect=True, score=False)
    bread = solve_symmetric(current.hessian, np.eye(p), what)
    return Fit(beta, bread, nobs, collected)


#: ``c`` with ``exp(c) <= 1 + c + c^2``: a Newton step ``s`` with ``K max_i |x_i's| <= c`` does not
#: increase a loss whose third derivative is at most ``K`` times its second (see :func:`fit_glm`)
NEWTON_DECREASE_BOUND = 1.5


def _step_bound(family: Family, blocks, row_norms) -> float | None:
    """``K max_i ||x_i||`` over the blocks' rows (``K``: the family's ``concordance``), bounding
    ``K max_i |x_i's|`` by ``||s||`` times it; None if the family has no such constant or a
    block's row norms are unknown (a partitioned block without ``row_norms``)."""
    concordance = getattr(family, "concordance", None)
    if concordance is None:
        return None
    norms = list(row_norms) if row_norms is not None else [None] * len(blocks)
    largest = 0.0
    for (X, _), norm in zip(blocks, norms):
        if norm is None:
            if isinstance(X, Column):
                return None
            norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", X, X)))) if X.shape[0] else 0.0
        largest = max(largest, norm)
    return concordance * largest


class Maximum:
    """A largest value, merged across partitions."""

    def __init__(self, value: float):
        self.value = value

    def merge(self, other: "Maximum") -> "Maximum":
        return Maximum(max(self.value, other.value))


@dataclass(frozen=True)
class RowNorm:
    """Scan accumulator of the largest Euclidean norm of a design's rows."""

    X: str

    def __call__(self, arrays) -> Maximum:
        X = arrays[self.X]
        return Maximum(float(np.sqrt(np.max(np.einsum("ij,ij->i", X, X)))) if X.shape[0] else 0.0)


@dataclass(frozen=True)
class NormalEquations:
    """Scan accumulator of a design ``X`` and responses ``V``: the Gram matrix ``X'X`` (the
    rank check's), ``X'WX`` (None without weights: it is ``X'X``), ``X'WV`` and ``sum w``.

    A Gaussian fit of a column of ``V`` (or of their row mean) then needs no pass
    of its own to solve, only the one that feeds its collectors.
    """

    X: str
    V: str
    weights: str | None = None

    def __call__(self, arrays):
        X = np.ascontiguousarray(arrays[self.X])
        V = arrays[self.V]
        V = V[:, None] if V.ndim == 1 else V
        gram = X.T @ X
        if self.weights is None:
            return gram, None, X.T @ V, float(X.shape[0])
        w = arrays[self.weights]
        weighted = X * w[:, None]
        return gram, weighted.T @ X, weighted.T @ V, float(w.sum())


@dataclass(frozen=True)
class ResponseSums:
    """Scan accumulator of the (weighted) column sums of responses ``V`` and ``sum w``."""

    V: str
    weights: str | None = None

    def __call__(self, arrays):
        V = arrays[self.V]
        V = V[:, None] if V.ndim == 1 else V
        if self.weights is None:
            return V.sum(axis=0), float(V.shape[0])
        w = arrays[self.weights]
        return w @ V, float(w.sum())


@dataclass(frozen=True)
class _WeightedSum:
    """Column sums of ``v`` weighted by ``w`` (or not), and the total weight."""

    def __call__(self, v, w):
        if w is None:
            total, weight = np.zeros(v.shape[1]), float(v.shape[0])
            for rows in chunks(v.shape[0]):
                total += v[rows].sum(axis=0)
            return total, weight
        total, weight = np.zeros(v.shape[1]), 0.0
        for rows in chunks(v.shape[0]):
            total += w[rows] @ v[rows]
            weight += float(w[rows].sum())
        return total, weight


@dataclass(frozen=True)
class _MeanScores:
    """Feeds a collector the scores ``w_i (v_i - b)`` of the rows it is given."""

    params: np.ndarray
    factory: CollectorFactory

    def __call__(self, v, w, *columns):
        collector = self.factory(*columns)
        for rows in chunks(v.shape[0]):
            centred = v[rows] - self.params
            curvature = np.ones(rows.stop - rows.start) if w is None else w[rows]
            collector.add(rows, centred if w is None else centred * curvature[:, None], None, curvature)
        return collector


@dataclass(frozen=True)
class _AsMatrix:
    def __call__(self, values):
        return values[:, None] if values.ndim == 1 else values


def fit_mean(
    responses: Sequence[np.ndarray],
    *,
    weights: Sequence[np.ndarray | None] | None = None,
    collectors: Sequence[CollectorFactory | None] | None = None,
    at: np.ndarray | None = None,
    prepared: Sequence[tuple[np.ndarray, float] | None] | None = None,
) -> Fit:
    """Column means of the responses (each (m, k)) pooled over blocks, as an M-estimate.

    The estimating function is ``w_i (v_i - b)``: its Hessian is ``w_i`` times the
    identity, so ``bread = I / sum(w)``. Two passes: the weighted sums, then the
    scores at the mean for the collectors; one when ``prepared`` gives each
    block's ``(sum w v, sum w)`` (summed when the sample was validated). ``at``
    evaluates the scores at given values instead of the mean.
    """
    weights = list(weights) if weights is not None else [None] * len(responses)
    factories = list(collectors) if collectors is not None else [None] * len(responses)
    prepared = list(prepared) if prepared is not None else [None] * len(responses)
    responses = [
        (v.map(_AsMatrix(), (v.shape[0], 1)) if isinstance(v, Column) else v[:, None]) if v.ndim == 1 else v
        for v in responses
    ]
    k = responses[0].shape[1]
    total, weight = np.zeros(k), 0.0
    if at is None:
        for v, w, given in zip(responses, weights, prepared):
            block_total, block_weight = given if given is not None else reduce_rows(_WeightedSum(), v, w)
            total, weight = total + block_total, weight + block_weight
    else:
        for v, w in zip(responses, weights):
            weight += float(v.shape[0]) if w is None else float(reduce_rows(np.sum, w))
    params = total / weight if at is None else np.asarray(at, dtype=float)
    made = []
    for v, w, factory in zip(responses, weights, factories):
        collector = None
        if factory is not None:
            collector = reduce_rows(_MeanScores(params, factory), v, w, *getattr(factory, "columns", ()))
        made.append(collector)
    return Fit(params, np.eye(k) / weight, sum(v.shape[0] for v in responses), tuple(made))
