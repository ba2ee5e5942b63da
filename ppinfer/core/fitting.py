"""M-estimation by row reductions: GLM fits, means and any estimating equations over blocks of rows.

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
the number of rows). :func:`fit_estimating_equations` solves any estimating
equations given as a per-row score function, with their Jacobian analytic or by
central differences; its Jacobian (hence bread) need not be symmetric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.linalg

from .families import Family
from .sources import Column, add_partials, reduce_rows

#: rows per chunk in reductions: large enough for BLAS, small enough for the cache
CHUNK_ROWS = 1 << 15
#: rows per chunk of a GLM's passes, which read each chunk of the design several times (the
#: linear predictor, the scaled rows, their products): small enough to stay in the cache
DESIGN_CHUNK_ROWS = 1 << 13


def chunks(nrows: int, size: int | None = None):
    """Slices of at most ``size`` (default :data:`CHUNK_ROWS`) rows covering ``range(nrows)``."""
    size = size or CHUNK_ROWS
    for start in range(0, nrows, size):
        yield slice(start, min(start + size, nrows))


class Collector(Protocol):
    """Receives the scores of a block's rows at the final coefficients, chunk by chunk.

    ``scores`` (m, p) are the weighted scores ``s_i``; ``X`` (m, p) the design rows
    (None for a mean, whose Hessian is ``w_i`` times the identity) and
    ``curvature`` (m,) the Hessian weights ``w_i c_i``. For general estimating
    equations (:func:`fit_estimating_equations`) ``X`` is None and ``curvature``
    (m, p, p) holds each row's Hessian ``-w_i d psi_i / d b`` itself. ``scores`` may
    be a buffer that the next chunk's scores overwrite: a collector keeps sums or copies.
    The passes of :func:`fit_glm` call ``add_with_ones(rows, block, X, curvature)``
    instead when a collector has it: ``block`` (p + 1, m) holds the scores' transpose
    above a row of ones.
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
    symmetric : bool
        The Hessian (hence the bread) is symmetric: the estimating equations are
        the gradient of an objective, as for every GLM.
    """

    params: np.ndarray
    bread: np.ndarray
    nobs: int
    collected: tuple
    symmetric: bool = True

    def contributions(self, scores: np.ndarray) -> np.ndarray:
        """Each row's contribution ``bread @ s_i`` to ``params - beta`` (rows of ``scores``)."""
        return scores @ (self.bread if self.symmetric else self.bread.T)

    def sandwich(self, meat: np.ndarray) -> np.ndarray:
        """``bread @ meat @ bread'`` (``meat`` (..., p, p): outer products of scores)."""
        return self.bread @ meat @ (self.bread if self.symmetric else self.bread.T)


@dataclass
class _Sums:
    """A pass's sums at ``b``: score, Hessian (None when the pass did not compute it) and loss;
    when the pass was also given the previous point ``b0``, the step's reach
    ``max_i |x_i'(b - b0)|`` and the loss at ``b0``."""

    score: np.ndarray
    hessian: np.ndarray | None
    loss: float
    reach: float = 0.0
    previous_loss: float = 0.0

    def __add__(self, other: "_Sums") -> "_Sums":
        hessian = None if self.hessian is None or other.hessian is None else self.hessian + other.hessian
        return _Sums(self.score + other.score, hessian, self.loss + other.loss, max(self.reach, other.reach),
                     self.previous_loss + other.previous_loss)


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
    offset: np.ndarray | None,
    *,
    hessian: bool,
    loss: bool,
    collector: Collector | None,
    score: bool = True,
    fisher: bool = False,
    previous: np.ndarray | None = None,
) -> _Sums:
    """One pass over a block: score (unless ``score`` is False: a pass that only feeds the
    collector) and (optionally) Hessian and loss at ``beta``; the rows' scores go to ``collector``.

    With ``previous`` (the point the step to ``beta`` started from), the same product with
    the design also gives each row's ``x_i'(beta - previous)``, whose largest absolute value
    (the step's reach) certifies the step (see :func:`fit_glm`), and, with ``loss``, the
    loss at ``previous``, so that a line search needs no pass of its own for it."""
    p = X.shape[1]
    total_score, total_hessian, total_loss = np.zeros(p), np.zeros((p, p)), 0.0
    reach, previous_loss = 0.0, 0.0
    unit_curvature = family.linear and weights is None
    points = beta if previous is None else np.stack([beta, beta - previous])
    buffer, augmented = _ColumnBuffer(p + 1, ones=True), _ColumnBuffer(p + 1)
    for rows in chunks(v.shape[0], DESIGN_CHUNK_ROWS):
        # a strided memory map's chunk is used as it is: BLAS reads rows a stride apart, faster
        # than a copy of the chunk followed by the products
        Xc = X[rows]
        if previous is None:
            eta = Xc @ points
        else:
            eta, moved = points @ Xc.T  # one product with the chunk: x_i'b and x_i'(b - b0)
            if moved.shape[0]:
                reach = max(reach, float(moved.max()), -float(moved.min()))
        if offset is not None:
            eta = eta + offset[rows]
        residual, curvature = family.working(v[rows], eta, fisher=fisher)
        if weights is not None:
            w = weights[rows]
            residual = residual * w
            curvature = curvature * w
        scaled = False  # the augmented buffer holds the chunk's sqrt(c) x_i and r_i / sqrt(c)
        if score and hessian and not unit_curvature:
            chunk_hessian, chunk_score, scaled = _hessian_and_score(Xc, curvature, residual, augmented, buffer)
            total_hessian += chunk_hessian
            total_score += chunk_score
        else:
            if score:
                total_score += Xc.T @ residual
            if hessian:
                total_hessian += _weighted_gram(Xc, None if unit_curvature else curvature, buffer)
        if loss:
            total_loss += _loss_sum(family, v[rows], eta, None if weights is None else weights[rows])
            if previous is not None:
                previous_loss += _loss_sum(family, v[rows], eta - moved, None if weights is None else weights[rows])
        if collector is not None:
            # the buffer is reused for the next chunk: collectors keep sums or copies; the scores
            # are the transpose of the scaled columns (an (m, p) view in column-major order),
            # above a row of ones for collectors that sum their products with it too
            block = buffer.columns(Xc.shape[0])
            if scaled:  # x_i r_i from the scaled rows: contiguous, faster than the chunk's columns
                columns = augmented.columns(Xc.shape[0])
                np.multiply(columns[:p], columns[p], out=block[:p])
            else:
                np.multiply(Xc.T, residual, out=block[:p])
            if hasattr(collector, "add_with_ones"):
                collector.add_with_ones(rows, block, Xc, curvature)
            else:
                collector.add(rows, block[:p].T, Xc, curvature)
    return _Sums(total_score, total_hessian if hessian else None, total_loss, reach, previous_loss)


def _loss_sum(family: Family, v: np.ndarray, eta: np.ndarray, weights: np.ndarray | None) -> float:
    """The (weighted) sum of the rows' losses at ``eta``."""
    row_loss = family.loss(v, eta)
    return float(row_loss.sum() if weights is None else row_loss @ weights)


#: curvature below which :func:`_hessian_and_score` does not divide by its square root
_SMALLEST_CURVATURE = 1e-150


def _hessian_and_score(X: np.ndarray, curvature: np.ndarray, residual: np.ndarray, augmented: "_ColumnBuffer",
                       buffer: "_ColumnBuffer") -> tuple[np.ndarray, np.ndarray, bool]:
    """``X' diag(c) X`` and ``X' r`` from one symmetric product: the columns of ``X`` scaled by
    ``sqrt(c)`` above the row ``r / sqrt(c)`` (in ``augmented``), whose Gram matrix holds
    both (its last column is ``X' r``), so that the score costs no second read of the chunk.
    Curvatures that are negative or too small to divide by fall back to two products. The
    flag says whether ``augmented`` holds the scaled rows."""
    p = X.shape[1]
    if curvature.shape[0] == 0 or not curvature.min() > _SMALLEST_CURVATURE:
        return _weighted_gram(X, curvature, buffer), X.T @ residual, False
    root = np.sqrt(curvature)
    columns = augmented.columns(X.shape[0])
    np.multiply(X.T, root, out=columns[:p])
    np.divide(residual, root, out=columns[p])
    gram = columns @ columns.T
    return gram[:p, :p], gram[:p, p], True


class _ColumnBuffer:
    """A (p x chunk rows) array reused across the chunks of a pass: the design's columns of a
    chunk, scaled, one per row of the buffer. Scaling the columns of the transposed chunk runs
    along the rows (a long inner loop) and is faster than scaling each short row of ``X``.
    With ``ones``, the last row holds ones (written once: the chunks fill the rows above it)."""

    def __init__(self, p: int, ones: bool = False):
        self.p, self.ones, self._array = p, ones, None

    def columns(self, m: int) -> np.ndarray:
        if self._array is None or self._array.shape[1] < m:
            self._array = np.empty((self.p, max(m, DESIGN_CHUNK_ROWS)))
            if self.ones:
                self._array[-1] = 1.0
        return self._array[:, :m]


@dataclass(frozen=True)
class _BlockPass:
    """:func:`_block_sums` over the rows it is given, with a collector made for them."""

    family: Family
    beta: np.ndarray
    hessian: bool
    loss: bool
    factory: CollectorFactory | None
    score: bool = True
    fisher: bool = False
    previous: np.ndarray | None = None

    def __call__(self, X, v, weights, offset, *columns):
        collector = None if self.factory is None else self.factory(*columns)
        sums = _block_sums(self.family, X, v, self.beta, weights, offset, hessian=self.hessian, loss=self.loss,
                           collector=collector, score=self.score, fisher=self.fisher, previous=self.previous)
        return sums, collector


def _block_pass(family: Family, X, v, beta: np.ndarray, weights, offset=None, *, hessian: bool, loss: bool,
                factory: CollectorFactory | None, score: bool = True, fisher: bool = False,
                previous: np.ndarray | None = None) -> tuple[_Sums, Collector | None]:
    """One pass over a block, in memory or partition by partition: its sums and collector."""
    needs = tuple(getattr(factory, "columns", ())) if factory is not None else ()
    return reduce_rows(_BlockPass(family, beta, hessian, loss, factory, score, fisher, previous), X, v, weights,
                       offset, *needs)


def _weighted_gram(X: np.ndarray, weights: np.ndarray | None, buffer: "_ColumnBuffer | None" = None) -> np.ndarray:
    """``X' diag(weights) X``: a symmetric rank-k update (BLAS syrk, half a general product)
    of ``X``'s columns scaled by the square roots of non-negative weights (into ``buffer`` if given)."""
    if weights is None:
        return X.T @ X
    out = None if buffer is None else buffer.columns(X.shape[0])[: X.shape[1]]
    if weights.min() >= 0:
        scaled = np.multiply(X.T, np.sqrt(weights), out=out)
        return scaled @ scaled.T
    return np.multiply(X.T, weights, out=out) @ X


def fit_glm(
    family: Family,
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    weights: Sequence[np.ndarray | None] | None = None,
    collectors: Sequence[CollectorFactory | None] | None = None,
    offsets: Sequence[np.ndarray | None] | None = None,
    start: np.ndarray | None = None,
    what: str = "fit",
    tol: float = 1e-10,
    max_iter: int = 100,
    iterate: bool = True,
    normal_equations: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    start_hessian: np.ndarray | None = None,
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
    offsets : sequence aligned with ``blocks``, optional
        Offset of each block's linear predictor, ``eta = X b + offset`` (None: 0).
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
    start_hessian : (p, p) array, optional
        An approximation of the summed Hessian at ``start`` (another sample's,
        scaled to these blocks' total weight): the first step is made with it,
        so the pass at ``start`` computes the score alone. Used for the logistic
        and Poisson models when the step is certified to decrease the loss (see
        the Notes); otherwise the Hessian at ``start`` is computed after all.

    Notes
    -----
    Solves ``sum_i w_i x_i r_i(b) = 0``. A Gaussian identity-link fit takes one
    Newton step (exact) and one pass at the solution for the collectors; other
    families take Newton steps halved until the loss does not increase, and stop
    when the step is below ``tol * (1 + max|b|)``. When the next point is
    foreseen to be the last (:class:`_Steps`), the pass that evaluates it also
    feeds the collectors, so a converged fit usually needs no extra pass; close
    to the solution one pass may keep the previous Hessian (the bread is always
    the Hessian at the estimate). A family whose variance Hessian depends on the
    responses (a non-canonical link with the observed Hessian) iterates by
    Fisher scoring until that point, then by Newton steps with the observed
    Hessian, which the bread is made of.

    For a family whose cumulant ``b`` has ``|b'''| <= K b''`` (``K = 1`` for the
    logistic and Poisson models) the loss along a Newton step ``s`` from ``b``,
    ``phi(t)``, has ``|phi'''| <= K M phi''`` with ``M = max_i |x_i's|``; since
    ``phi'(0) = -phi''(0)``, ``phi(1) - phi(0) <= phi''(0) ((e^c - 1 - c) / c^2 - 1)``
    with ``c = K M``, which is not positive for ``c <= 1.79`` (the generalised
    self-concordance of Bach 2010, "Self-concordant analysis for logistic
    regression", Electronic Journal of Statistics). The pass at ``b + s`` computes
    ``x_i's`` with the linear predictor (one product of the design's rows with
    both points), and a step with ``K max_i |x_i's| <= 1.5`` is taken without
    evaluating the loss; longer steps are halved until the loss does not
    increase (the first trial also gives the loss at ``b``).

    A first step made with an approximate Hessian ``A`` (``start_hessian``),
    ``s = A^-1 g``, has ``phi'(0) = -s'As``; bounding ``phi''`` on the step by its
    value at the end, ``phi''(t) <= phi''(1) e^(c (1 - t))``, gives
    ``phi(1) - phi(0) <= -s'As + phi''(1) (e^c (c - 1) + 1) / c^2``. The pass at
    ``b + s`` gives ``phi''(1) = s'H(b + s)s`` and ``c``, so the step is kept
    when that bound is not positive; otherwise the Hessian at ``b`` is computed
    and the fit goes on from there. With ``A`` the Hessian of a sample of n rows
    from the same population, the step lands about ``sqrt(p / n)`` times its
    length from the solution, as close as a Newton step from that start would,
    for the price of a pass without the Hessian.
    """
    weights = list(weights) if weights is not None else [None] * len(blocks)
    factories = list(collectors) if collectors is not None else [None] * len(blocks)
    offsets = list(offsets) if offsets is not None else [None] * len(blocks)
    p = blocks[0][0].shape[1]
    nobs = sum(v.shape[0] for _, v in blocks)

    def sums(beta: np.ndarray, *, hessian: bool = True, collect: bool = False, loss: bool = False,
             score: bool = True, fisher: bool = False, previous: np.ndarray | None = None):
        total, made = None, []
        for (X, v), w, o, f in zip(blocks, weights, offsets, factories):
            part, collector = _block_pass(family, X, v, beta, w, o, hessian=hessian, loss=loss,
                                          factory=f if collect else None, score=score, fisher=fisher,
                                          previous=previous)
            total = part if total is None else total + part
            made.append(collector)
        return total, tuple(made)

    if not iterate:
        beta = np.asarray(start, dtype=float)
        at_start, collected = sums(beta, collect=True)
        return Fit(beta, _bread(family, at_start.hessian, what), nobs, collected)

    if family.linear:
        beta = np.zeros(p) if start is None else np.asarray(start, dtype=float)
        given = list(normal_equations) if normal_equations is not None else [None] * len(blocks)
        first = _Sums(np.zeros(p), np.zeros((p, p)), 0.0)
        for (X, v), w, o, normal in zip(blocks, weights, offsets, given):
            if normal is None or o is not None:
                first = first + _block_pass(family, X, v, beta, w, o, hessian=True, loss=False, factory=None)[0]
            else:
                first = first + _Sums(normal[1] - normal[0] @ beta, normal[0], 0.0)
        beta = beta + solve_symmetric(first.hessian, first.score, what)
        # the Hessian does not depend on the coefficients: one more pass feeds the collectors
        _, collected = sums(beta, hessian=False, collect=True, score=False)
        bread = solve_symmetric(first.hessian, np.eye(p), what)
        return Fit(beta, bread, nobs, collected)

    X0, v0 = blocks[0]
    if start is not None:
        beta = np.asarray(start, dtype=float).copy()
    elif isinstance(blocks[0][1], Column):
        beta = np.zeros(p)
    else:
        beta = _initial_params(family, X0, v0, offsets[0], p)
    # Fisher scoring first where the variance Hessian differs from the expected one
    fisher = family.fisher_differs
    # a Newton step whose reach is short enough for the family's third derivative cannot
    # increase the loss: such steps are taken without computing the loss (see the Notes)
    concordance = None if fisher else getattr(family, "concordance", None)
    # the first step may be made with the approximate Hessian given for the start
    guess = start_hessian if start is not None and concordance is not None else None
    current, collected = sums(beta, loss=concordance is None, fisher=fisher, hessian=guess is None)
    if not _finite(current) and start is not None:
        # a warm start from another fit can put fitted means outside the family's range
        beta, guess = _initial_params(family, X0, v0, offsets[0], p), None
        current, collected = sums(beta, loss=concordance is None, fisher=fisher)
    if not _finite(current):
        raise ValueError(
            f"{what}: the starting values give fitted means outside the range of the {family.name} family "
            "(e.g. negative means with an inverse link, or probabilities above 1 with a log link); "
            "rescale the covariates or use another link."
        )
    current_has_loss = concordance is None
    current_fisher, collected_at_current = fisher, False
    steps = _Steps(tol)
    for _ in range(max_iter):
        step = solve_symmetric(current.hessian if guess is None else guess, current.score, what)
        size = np.max(np.abs(step)) / (1.0 + np.max(np.abs(beta)))
        if size <= tol:
            break
        if guess is not None:
            # a step with the approximate Hessian: kept if the loss certainly decreases
            candidate = beta + step
            trial, trial_collected = sums(candidate, previous=beta)
            if _finite(trial) and _guess_decreases(trial, step, current.score, concordance):
                # the score's change along the step against the Hessian at its end,
                # H^-1 (g - g') - s = -H^-1 T[s, s] / 2, gives the Newton steps' quadratic rate
                secant = solve_symmetric(trial.hessian, current.score - trial.score, what) - step
                scale = 1.0 + np.max(np.abs(candidate))
                steps.taken(size, kept=False, rate=np.max(np.abs(secant)) / scale / size**2)
                beta, current, collected, guess = candidate, trial, trial_collected, None
            else:
                guess = None
                current, collected = sums(beta)
            continue
        # the next point is likely the last: feed the collectors in the same pass
        collect = steps.final_next(size)
        fisher = fisher and not collect
        if concordance is not None:
            # close to the solution the Hessian changes too little to matter: keep it for one step
            keep = not collect and steps.may_keep_hessian(size)
            candidate = beta + step
            trial, trial_collected = sums(candidate, collect=collect, hessian=not keep, previous=beta)
            if _finite(trial) and concordance * trial.reach <= NEWTON_DECREASE_BOUND:
                if keep:
                    trial.hessian = current.hessian
                steps.taken(size, kept=keep)
                beta, current, current_has_loss = candidate, trial, False
                collected, collected_at_current, current_fisher = trial_collected, collect, False
                continue
        steps.taken(size, kept=False)
        scale = 1.0
        while True:
            candidate = beta + scale * step
            # the loss at beta, if not known yet, comes with the first trial's
            trial, trial_collected = sums(candidate, collect=collect, loss=True, fisher=fisher,
                                          previous=None if current_has_loss else beta)
            if not current_has_loss:
                current.loss, current_has_loss = trial.previous_loss, True
            if np.isfinite(trial.loss) and trial.loss <= current.loss + 1e-12 * abs(current.loss):
                break
            scale /= 2.0
            if scale < 1e-10:
                # no decrease along the Newton direction: at the optimum to rounding error
                candidate, trial, trial_collected = beta, current, (collected if collected_at_current else None)
                collect, fisher = collected_at_current, current_fisher
                break
        beta, current, current_has_loss = candidate, trial, True
        collected, collected_at_current, current_fisher = trial_collected, collect, fisher
        if scale < 1e-10:
            break
    else:
        raise ValueError(
            f"{what} did not converge in {max_iter} iterations; for a logistic or Poisson model the "
            "response may be perfectly separated by the design (estimates at infinity)."
        )
    # the bread needs the observed Hessian at the estimate itself
    fresh = not (current_fisher or steps.kept or current.hessian is None)
    if not collected_at_current or not fresh:
        final, collected = sums(beta, hessian=not fresh, collect=True, score=False)
        if not fresh:
            current = final
    return Fit(beta, _bread(family, current.hessian, what), nobs, collected)


class _Steps:
    """The relative sizes of a fit's Newton steps, to foresee the next one.

    Newton's method converges quadratically: the step after one of size ``s`` is
    about ``C s^2``, with ``C`` estimated from the last two steps (``s / s_prev^2``;
    1 after the first step; after a step made with an approximate Hessian, from
    the third derivative the scores show along it). After a step made with the
    previous point's Hessian the next is about ``2 C s d`` instead, ``d`` the
    distance to that point (the Hessian's error is about ``2 C d`` times the
    Hessian). The pass at the next point feeds the collectors when that foreseen
    step is below the tolerance, so that it is very likely the last: collecting
    in a pass that turns out not to be the last wastes the collectors' work (less
    than a pass), while not collecting in the last pass costs one pass that only
    collects. Otherwise the next pass keeps the Hessian of this point when the
    step after it is foreseen below the tolerance (``2 C^2 s^3``, from ``d = s``
    and a next step of ``C s^2``), so that the pass after it is the last, and the
    kept pass is cheap; a kept Hessian that leaves a step above the tolerance
    would cost a pass more than it saves.
    """

    def __init__(self, tol: float):
        self.tol = tol
        self.last: float | None = None
        #: the current point's Hessian is the previous point's
        self.kept = False
        #: the rate estimated for the step after one made with an approximate Hessian
        self._rate: float | None = None

    def rate(self, size: float) -> float:
        if self._rate is not None:
            return self._rate
        return 1.0 if self.last is None else size / self.last**2

    def final_next(self, size: float) -> bool:
        rate = self.rate(size)
        stale = 2.0 * rate * self.last if self.kept else 0.0
        foreseen = size * max(rate * size, stale)
        return foreseen <= self.tol

    def may_keep_hessian(self, size: float) -> bool:
        return not self.kept and 2.0 * self.rate(size) ** 2 * size**3 <= self.tol

    def taken(self, size: float, *, kept: bool, rate: float | None = None) -> None:
        self.last, self.kept, self._rate = size, kept, rate


def _guess_decreases(trial: "_Sums", step: np.ndarray, score: np.ndarray, concordance: float) -> bool:
    """The step ``s = A^-1 g`` made with an approximate Hessian ``A`` decreases the loss:
    ``phi''(1) chi(c) <= s'g`` with ``phi''(1) = s'H s`` at the step's end, ``c`` the family's
    constant times the step's reach and ``chi(c) = (e^c (c - 1) + 1) / c^2`` (see :func:`fit_glm`)."""
    c = concordance * trial.reach
    chi = 0.5 + c / 3.0 if c < 1e-4 else (np.expm1(c) * (c - 1.0) + c) / c**2
    return bool(step @ trial.hessian @ step * chi <= step @ score)


def _finite(sums: "_Sums") -> bool:
    """A pass's score, Hessian and loss are finite (fitted means inside the family's range)."""
    return bool(np.isfinite(sums.loss) and np.all(np.isfinite(sums.score))
                and (sums.hessian is None or np.all(np.isfinite(sums.hessian))))


def _initial_params(family: Family, X, v, offset, p: int) -> np.ndarray:
    """The family's starting values from a block held in memory; zeros for a partitioned block
    (whose fits start from another fit's estimate in practice)."""
    if isinstance(X, Column) or isinstance(v, Column) or isinstance(offset, Column):
        return np.zeros(p)
    return family.initial_params(X, v, offset)


def _bread(family: Family, hessian: np.ndarray, what: str) -> np.ndarray:
    """Inverse of a GLM's summed Hessian; an observed Hessian that is not positive definite
    is named as such."""
    try:
        return solve_symmetric(hessian, np.eye(hessian.shape[0]), what)
    except ValueError:
        if not family.fisher_differs:
            raise
        raise ValueError(
            f"{what}: the observed Hessian of the {family.name} model is not positive definite at the "
            "estimate (the quasi-likelihood is not concave there, which a poor fit of a non-canonical link "
            "can cause); check the model, or fit with hessian='expected' (the Fisher information)."
        ) from None


#: ``c`` with ``exp(c) <= 1 + c + c^2``: a Newton step ``s`` with ``K max_i |x_i's| <= c`` does not
#: increase a loss whose third derivative is at most ``K`` times its second (see :func:`fit_glm`)
NEWTON_DECREASE_BOUND = 1.5


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
        # by pieces of DESIGN_CHUNK_ROWS rows, so that the products after the Gram matrix find the
        # piece in the cache however long the scan's chunks are
        total = None
        for rows in chunks(arrays[self.X].shape[0], DESIGN_CHUNK_ROWS):
            total = add_partials(total, self._sums({key: arrays[key][rows] for key in self._keys}))
        return total

    @property
    def _keys(self) -> tuple[str, ...]:
        return (self.X, self.V) if self.weights is None else (self.X, self.V, self.weights)

    def _sums(self, arrays):
        X = arrays[self.X]
        V = arrays[self.V]
        V = V[:, None] if V.ndim == 1 else V
        gram = X.T @ X
        if self.weights is None:
            return gram, None, X.T @ V, float(X.shape[0])
        w = arrays[self.weights]
        # rows scaled by the square roots of the weights: X'WX is their symmetric product (half a
        # general one); negative weights give NaN here and are raised on by the design's checks
        root = np.sqrt(w)[:, None]
        scaled = X * root
        return gram, scaled.T @ scaled, scaled.T @ (V * root), float(w.sum())

    def finite(self, sums) -> tuple[str, ...]:
        """The design is finite if its Gram matrix's diagonal is: ``sum x^2`` is NaN or infinite
        for a column holding a NaN or an infinite value (or, harmlessly, overflowing squares:
        those rows are then looked for and not found)."""
        return (self.X,) if np.all(np.isfinite(np.diagonal(sums[0]))) else ()


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

    def finite(self, sums) -> tuple[str, ...]:
        """Unweighted responses are finite if their column sums are (a NaN or infinite value
        makes its column's sum non-finite)."""
        return (self.V,) if self.weights is None and np.all(np.isfinite(sums[0])) else ()


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
    collected: Sequence[Callable[[np.ndarray], Collector] | None] | None = None,
) -> Fit:
    """Column means of the responses (each (m, k)) pooled over blocks, as an M-estimate.

    The estimating function is ``w_i (v_i - b)``: its Hessian is ``w_i`` times the
    identity, so ``bread = I / sum(w)``. Two passes: the weighted sums, then the
    scores at the mean for the collectors; one when ``prepared`` gives each
    block's ``(sum w v, sum w)`` (summed when the sample was validated), none
    when ``collected`` also gives, for a block, its collector at any mean
    (from score moments summed by that scan). ``at`` evaluates the scores at
    given values instead of the mean.
    """
    weights = list(weights) if weights is not None else [None] * len(responses)
    factories = list(collectors) if collectors is not None else [None] * len(responses)
    prepared = list(prepared) if prepared is not None else [None] * len(responses)
    ready = list(collected) if collected is not None else [None] * len(responses)
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
        for v, w, given in zip(responses, weights, prepared):
            if given is not None:
                weight += given[1]
            else:
                weight += float(v.shape[0]) if w is None else float(reduce_rows(np.sum, w))
    params = total / weight if at is None else np.asarray(at, dtype=float)
    made = []
    for v, w, factory, at_params in zip(responses, weights, factories, ready):
        collector = None
        if factory is not None and at_params is not None:
            collector = at_params(params)
        elif factory is not None:
            collector = reduce_rows(_MeanScores(params, factory), v, w, *getattr(factory, "columns", ()))
        made.append(collector)
    return Fit(params, np.eye(k) / weight, sum(v.shape[0] for v in responses), tuple(made))


def _in_memory_collector(factory: CollectorFactory) -> Collector:
    """A collector of rows held in memory (its factory's columns are arrays)."""
    columns = tuple(getattr(factory, "columns", ()))
    if any(isinstance(column, Column) for column in columns):
        raise TypeError("general estimating equations need their rows in memory: load the unlabeled sample "
                        "into NumPy arrays (or use a model with a partition-by-partition fit: Mean, OLS, GLM).")
    return factory(*columns)


# -- any estimating equations ----------------------------------------------------------------
@dataclass(frozen=True)
class EstimatingRows:
    """A block of rows whose estimating function is evaluated chunk by chunk.

    ``score(params, rows)`` returns the (m, p) unweighted scores ``psi_i`` of the
    block's rows ``rows`` (a slice); ``jacobian(params, rows)``, if given, their
    derivatives ``d psi_i / d b`` as (m, p, p) (entry ``[i, j, k]`` is
    ``d psi_ij / d b_k``) or their (p, p) sum.
    """

    nrows: int
    score: Callable[[np.ndarray, slice], np.ndarray]
    jacobian: Callable[[np.ndarray, slice], np.ndarray] | None = None


#: relative step of central differences: the cube root of the machine epsilon
DIFFERENCE_STEP = np.finfo(float).eps ** (1.0 / 3.0)


def difference_steps(params: np.ndarray) -> np.ndarray:
    """Central-difference step of each parameter, scaled to its size (at least the relative step)."""
    return DIFFERENCE_STEP * np.maximum(np.abs(params), 1.0)


def row_jacobians(score: Callable[[np.ndarray, slice], np.ndarray], params: np.ndarray, rows: slice) -> np.ndarray:
    """(m, p, p) derivatives ``d psi_i / d b`` of each row's score by central differences."""
    steps = difference_steps(params)
    columns = []
    for k, step in enumerate(steps):
        up, down = params.copy(), params.copy()
        up[k] += step
        down[k] -= step
        columns.append((score(up, rows) - score(down, rows)) / (up[k] - down[k]))
    return np.stack(columns, axis=2)


@dataclass
class _EquationSums:
    score: np.ndarray
    hessian: np.ndarray
    #: an analytic summed Jacobian was given: the rows' Jacobians cost 2p more calls of the score
    summed: bool = False

    def __add__(self, other: "_EquationSums") -> "_EquationSums":
        return _EquationSums(self.score + other.score, self.hessian + other.hessian, self.summed or other.summed)


def _equation_sums(block: EstimatingRows, params: np.ndarray, weights: np.ndarray | None, *,
                   collector: Collector | None) -> _EquationSums:
    """One pass over a block: the summed weighted score and Hessian ``-sum w_i d psi_i / d b``;
    the rows' scores and Hessians go to ``collector``."""
    p = params.shape[0]
    score, hessian, summed = np.zeros(p), np.zeros((p, p)), False
    for rows in chunks(block.nrows):
        psi = block.score(params, rows)
        w = None if weights is None else weights[rows]
        derivative = None if block.jacobian is None else block.jacobian(params, rows)
        summed = summed or (derivative is not None and derivative.ndim == 2 and w is None)
        if derivative is None or (derivative.ndim == 2 and (w is not None or collector is not None)):
            # a summed Jacobian cannot be weighted or split into rows
            derivative = row_jacobians(block.score, params, rows)
        if w is not None:
            psi = psi * w[:, None]
            derivative = derivative * w[:, None, None]
        score += psi.sum(axis=0)
        hessian -= derivative if derivative.ndim == 2 else derivative.sum(axis=0)
        if collector is not None:
            collector.add(rows, psi, None, -derivative)
    return _EquationSums(score, hessian, summed)


def solve_general(matrix: np.ndarray, rhs: np.ndarray, what: str) -> np.ndarray:
    """Solve with a square (not necessarily symmetric) Jacobian, or say that it is singular.

    Rows and columns are scaled to unit norm first (a non-symmetric Jacobian can
    have zeros on its diagonal), and the condition number is that of the scaled matrix.
    """
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{what}: the Jacobian of the estimating equations is not finite; give other starting values.")
    rows, columns = np.linalg.norm(matrix, axis=1), np.linalg.norm(matrix, axis=0)
    if np.any(rows == 0) or np.any(columns == 0):
        raise ValueError(
            f"{what}: the Jacobian of the estimating equations is singular: the scores do not depend on the "
            f"parameter(s) at position(s) {np.flatnonzero(columns == 0).tolist()} or equation(s) "
            f"{np.flatnonzero(rows == 0).tolist()} are constant, at these parameter values. Check the score "
            "function, or give starting values where every parameter matters."
        )
    scaled = matrix / rows[:, None] / columns[None, :]
    condition = np.linalg.cond(scaled)
    if not np.isfinite(condition) or condition > 1e12:
        raise ValueError(
            f"{what}: the Jacobian of the estimating equations is singular or nearly so (scaled condition "
            f"number {condition:.3g}): the parameters are not identified by these rows (collinear columns, a "
            "parameter the score does not depend on), or the starting values are at a degenerate point."
        )
    solution = np.linalg.solve(scaled, rhs / (rows[:, None] if rhs.ndim == 2 else rows))
    return solution / (columns[:, None] if solution.ndim == 2 else columns)


#: relative asymmetry of a Jacobian below which it is taken as symmetric: differencing a
#: score with kinks (Huber's) leaves an asymmetry of the order of the step, 6e-6
SYMMETRY_TOLERANCE = 1e-4


def fit_estimating_equations(
    blocks: Sequence[EstimatingRows],
    start: np.ndarray,
    *,
    weights: Sequence[np.ndarray | None] | None = None,
    collectors: Sequence[CollectorFactory | None] | None = None,
    what: str = "fit",
    tol: float = 1e-10,
    max_iter: int = 100,
    iterate: bool = True,
    symmetric: bool | None = None,
) -> Fit:
    """Solve ``sum_i w_i psi_i(b) = 0`` over blocks of rows by damped Newton iterations.

    Parameters
    ----------
    blocks : sequence of EstimatingRows
        Row blocks fitted together (one block, or several pooled).
    start : (p,) array
        Starting values.
    weights, collectors, what, iterate
        As for :func:`fit_glm`.
    tol : float
        Convergence: the Newton step is below ``tol * (1 + max|b|)``.
    max_iter : int
        Newton iterations before giving up.
    symmetric : bool, optional
        Whether the Hessian is symmetric; None decides from the Hessian at the
        solution (related fits of one model pass the first fit's answer).

    Notes
    -----
    Each iteration solves ``H(b) step = sum_i w_i psi_i(b)`` with the Hessian
    ``H = -sum_i w_i d psi_i / d b`` (analytic, or central differences of the
    per-row scores with steps ``eps^(1/3) max(|b_k|, 1)``) and halves the step
    until the norm of the scores, each scaled by the square root of its
    Hessian diagonal at the start, decreases. If halving fails away from a
    root, MINPACK's hybrid method (``scipy.optimize.root``) takes over from
    the last point. The bread is ``H^-1`` at the solution; it is symmetrised
    (and the fit marked symmetric) when ``H`` is symmetric up to
    :data:`SYMMETRY_TOLERANCE`, as for the gradient of any objective. Every
    pass feeds the collectors: evaluations of the score, not collecting, are
    the cost, and a fit usually stops right after an accepted step. (With an
    analytic summed Jacobian, which the rows' leverage cannot use, passes
    collect only near convergence.)
    """
    weights = list(weights) if weights is not None else [None] * len(blocks)
    factories = list(collectors) if collectors is not None else [None] * len(blocks)
    nobs = sum(block.nrows for block in blocks)
    params = np.array(start, dtype=float)

    def sums(b: np.ndarray, *, collect: bool = False):
        made = [_in_memory_collector(f) if (collect and f is not None) else None for f in factories]
        total = None
        for block, w, c in zip(blocks, weights, made):
            part = _equation_sums(block, b, w, collector=c)
            total = part if total is None else total + part
        return total, tuple(made)

    current, collected = sums(params, collect=True)
    if not (np.all(np.isfinite(current.score)) and np.all(np.isfinite(current.hessian))):
        raise ValueError(f"{what}: the scores or their Jacobian are not finite at the starting values; give another start.")
    if iterate:
        params, current, collected = _newton(sums, params, current, collected, what, tol, max_iter)
    hessian = current.hessian
    if symmetric is None:
        symmetric = bool(np.linalg.norm(hessian - hessian.T) <= SYMMETRY_TOLERANCE * np.linalg.norm(hessian))
    bread = solve_general(0.5 * (hessian + hessian.T) if symmetric else hessian, np.eye(params.shape[0]), what)
    if symmetric:
        bread = 0.5 * (bread + bread.T)
    return Fit(params, bread, nobs, collected, symmetric)


def _newton(sums, params, current, collected, what, tol, max_iter):
    """Damped Newton iterations from ``params`` (see :func:`fit_estimating_equations`)."""
    scale = np.sqrt(np.abs(np.diag(current.hessian)))
    scale = np.where(scale > 0, scale, 1.0)

    def merit(point) -> float:
        value = float(np.sum((point.score / scale) ** 2))
        return value if np.isfinite(value) and np.all(np.isfinite(point.hessian)) else np.inf

    collected_at_current = True
    for _ in range(max_iter):
        step = solve_general(current.hessian, current.score, what)
        size = np.max(np.abs(step))
        room = 1.0 + np.max(np.abs(params))
        if size <= tol * room:
            break
        # any point may be the last: the collectors are fed in every pass, since calls of the
        # score (2p + 1 per pass with numerical derivatives) cost more than collecting; with a
        # summed Jacobian, only near convergence (the rows' Jacobians then cost 2p calls)
        collect = not current.summed or size < 1e-4 * room
        length = 1.0
        while length >= 1e-10:
            trial, trial_collected = sums(params + length * step, collect=collect)
            if merit(trial) < merit(current):
                break
            length /= 2.0
        if length < 1e-10:
            if size <= 1e-6 * room:
                break  # no decrease along the Newton direction: at the root to rounding error
            params = _hybrid_root(sums, params, what)
            current, collected = sums(params, collect=True)
            return params, current, collected
        params, current, collected = params + length * step, trial, trial_collected
        collected_at_current = collect
    else:
        raise ValueError(
            f"{what} did not converge in {max_iter} Newton iterations; give starting values closer to the "
            "solution, or check that the estimating equations have a root (a score that is bounded in a "
            "parameter, as in separated logistic data, has none)."
        )
    if not collected_at_current:
        current, collected = sums(params, collect=True)
    return params, current, collected


def _hybrid_root(sums, params, what):
    """MINPACK's hybrid method on the summed scores, from where damped Newton stalled."""
    import scipy.optimize

    solution = scipy.optimize.root(
        lambda b: sums(b)[0].score, params, jac=lambda b: -sums(b)[0].hessian, method="hybr",
    )
    if not solution.success:
        raise ValueError(
            f"{what}: the Newton iterations stalled and the hybrid root finder failed ({solution.message.strip()}); "
            "give starting values closer to the solution, or check that the estimating equations have a root."
        )
    return solution.x
