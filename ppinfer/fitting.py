"""M-estimation core: fits, influence functions and their covariance, by row reductions.

Every estimator in ppinfer is an M-estimator ``b`` solving ``sum_i s(v_i; b) = 0``.
Its influence function ``psi_i = H^-1 s(v_i; b)`` (``H`` the mean Jacobian of ``-s``)
satisfies ``b - beta ~ mean_i psi_i``, so the variance of ``b`` is the variance of a
mean of ``psi``; :mod:`ppinfer.covariance` combines those variances for PPI.

The unlabeled sample enters only through sums over rows (score, Hessian, loss,
outer products of scores), accumulated chunk by chunk. Memory stays at one chunk
of rows beyond the inputs, and a chunked or distributed source could supply the
same sums without changes to the estimators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .families import Family

#: rows per chunk in reductions: large enough for BLAS, small enough for the cache
CHUNK_ROWS = 1 << 15


@dataclass(frozen=True)
class MEstimate:
    """An M-estimate and what inference needs from it.

    Attributes
    ----------
    params : (p,) array
    nobs : int
    covariance : (p, p) array
        Sandwich covariance of ``params``: the variance of the mean of the
        influence rows (HC0), or with clusters ``sum_g c_g c_g'`` over the
        cluster contributions ``c_g``.
    influence : (nobs, p) array or None
        Influence rows ``psi_i`` with ``params - beta ~ mean(psi)``; kept for the
        labeled sample, where PPI needs their covariance with other fits.
    cluster_contributions : (ngroups, p) array or None
        With clusters: ``c_g = sqrt(G / (G - 1)) * sum_{i in g} psi_i / nobs``, each
        cluster's contribution to ``params - beta`` (``G`` non-empty clusters),
        indexed by the shared cluster codes so fits of different samples line up.
    """

    params: np.ndarray
    nobs: int
    covariance: np.ndarray
    influence: np.ndarray | None = None
    cluster_contributions: np.ndarray | None = None


@dataclass
class _RowSums:
    """Sums over rows at one coefficient vector."""

    nobs: int
    score: np.ndarray
    hessian: np.ndarray
    loss: float
    #: sum of score outer products (i.i.d.), or (ngroups, p) within-cluster score sums
    meat: np.ndarray | None

    def __add__(self, other: "_RowSums") -> "_RowSums":
        meat = None if self.meat is None or other.meat is None else self.meat + other.meat
        return _RowSums(
            self.nobs + other.nobs,
            self.score + other.score,
            self.hessian + other.hessian,
            self.loss + other.loss,
            meat,
        )


def _chunks(nrows: int):
    for start in range(0, nrows, CHUNK_ROWS):
        yield slice(start, min(start + CHUNK_ROWS, nrows))


def cluster_sums(rows: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """(ngroups, p) sums of ``rows`` (n, p) within each integer cluster code."""
    return np.stack(
        [np.bincount(codes, weights=rows[:, k], minlength=ngroups) for k in range(rows.shape[1])], axis=1
    )


def cluster_correction(codes: Sequence[np.ndarray | None]) -> float:
    """``sqrt(G / (G - 1))`` for the ``G`` non-empty clusters of the given code arrays."""
    present = np.unique(np.concatenate([c for c in codes if c is not None]))
    if present.size < 2:
        raise ValueError(f"cluster-robust variances need at least 2 clusters; the data have {present.size}.")
    return float(np.sqrt(present.size / (present.size - 1.0)))


def _row_sums(
    family: Family,
    X: np.ndarray,
    v: np.ndarray,
    beta: np.ndarray,
    *,
    meat: bool,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    ngroups: int = 0,
) -> _RowSums:
    """One pass over a block of rows: score, Hessian and loss (and meat) at ``beta``.

    With integer cluster codes ``groups`` (in ``range(ngroups)``) the meat is
    returned as the (ngroups, p) within-cluster score sums, so that blocks
    sharing clusters can be added before the outer product is taken.
    """
    p = X.shape[1]
    score = np.zeros(p)
    hessian = np.zeros((p, p))
    loss = 0.0
    outer = np.zeros((p, p)) if meat and groups is None else None
    cluster_scores = np.zeros((ngroups, p)) if meat and groups is not None else None
    for rows in _chunks(v.shape[0]):
        Xc = X[rows]
        eta = Xc @ beta
        mu = family.mean(eta)
        residual = v[rows] - mu
        curvature = family.mean_derivative(eta, mu)
        row_loss = family.loss(v[rows], eta)
        if weights is not None:
            w = weights[rows]
            residual = residual * w
            curvature = curvature * w
            row_loss = row_loss * w
        score += Xc.T @ residual
        hessian += (Xc * curvature[:, None]).T @ Xc if not family.linear or weights is not None else Xc.T @ Xc
        loss += float(row_loss.sum())
        if meat:
            scores = Xc * residual[:, None]
            if cluster_scores is None:
                outer += scores.T @ scores
            else:
                cluster_scores += cluster_sums(scores, groups[rows], ngroups)
    return _RowSums(v.shape[0], score, hessian, loss, outer if cluster_scores is None else cluster_scores)


def _solve(hessian: np.ndarray, rhs: np.ndarray, what: str) -> np.ndarray:
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


def fit_glm(
    family: Family,
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    start: np.ndarray | None = None,
    keep_influence: bool = False,
    weights: Sequence[np.ndarray | None] | None = None,
    groups: Sequence[np.ndarray | None] | None = None,
    ngroups: int = 0,
    what: str = "fit",
    tol: float = 1e-10,
    max_iter: int = 100,
) -> MEstimate:
    """Fit a canonical-link GLM by damped Newton iterations over row reductions.

    Parameters
    ----------
    family : Family
    blocks : sequence of (X, v)
        Row blocks fitted together (one block, or the labeled and unlabeled rows
        pooled for the naive estimator). Each pass reduces every block by chunks.
    start : (p,) array, optional
        Starting coefficients (a warm start, such as the labeled fit of the same
        response, saves passes over a large block).
    keep_influence : bool
        Return the influence rows (one block only).
    weights, groups : sequences aligned with ``blocks``, optional
        Row weights, and integer cluster codes in ``range(ngroups)`` (shared by
        all blocks) for a cluster-robust covariance.
    ngroups : int
        Number of cluster codes.
    what : str
        Describes the fit in error messages.

    Returns
    -------
    MEstimate

    Notes
    -----
    Solves ``sum_i w_i x_i (v_i - mu(x_i' b)) = 0``. Each iteration takes the Newton
    step, halved until the loss does not increase; iterations stop when the step
    is below ``tol * (1 + max|b|)``. The covariance is the sandwich
    ``Hsum^-1 Msum Hsum^-1`` with ``Msum`` the sum of score outer products
    (equal to statsmodels' ``cov_type="HC0"``).
    """
    weights = list(weights) if weights is not None else [None] * len(blocks)
    groups = list(groups) if groups is not None else [None] * len(blocks)
    clustered = any(g is not None for g in groups)
    if clustered and not all(g is not None for g in groups):
        raise ValueError("cluster codes must be given for every block or for none")
    if keep_influence and len(blocks) != 1:
        raise ValueError("influence rows are kept for a single block only")
    p = blocks[0][0].shape[1]

    def sums(beta: np.ndarray, meat: bool) -> _RowSums:
        total = None
        for (X, v), w, g in zip(blocks, weights, groups):
            part = _row_sums(family, X, v, beta, meat=meat, weights=w, groups=g, ngroups=ngroups)
            total = part if total is None else total + part
        return total

    if start is not None:
        beta = np.asarray(start, dtype=float).copy()
    elif family.linear:
        beta = np.zeros(p)
    else:
        X0, v0 = blocks[0]
        beta = np.linalg.lstsq(X0, family.start(v0), rcond=None)[0]
    current = sums(beta, meat=family.linear)
    for _ in range(max_iter):
        step = _solve(current.hessian, current.score, what)
        size = np.max(np.abs(step))
        if size <= tol * (1.0 + np.max(np.abs(beta))):
            break
        # near convergence the next point is the last: collect the meat in the same pass
        want_meat = family.linear or size < 1e-4 * (1.0 + np.max(np.abs(beta)))
        scale = 1.0
        while True:
            candidate = beta + scale * step
            trial = sums(candidate, meat=want_meat)
            if np.isfinite(trial.loss) and trial.loss <= current.loss + 1e-12 * abs(current.loss):
                break
            scale /= 2.0
            if scale < 1e-10:
                # no decrease along the Newton direction: at the optimum to rounding error
                candidate, trial = beta, current
                break
        beta, current = candidate, trial
        if scale < 1e-10:
            break
    else:
        raise ValueError(
            f"{what} did not converge in {max_iter} iterations; for a logistic or Poisson model the "
            "response may be perfectly separated by the design (estimates at infinity)."
        )
    if current.meat is None:
        current = sums(beta, meat=True)
    bread = _solve(current.hessian, np.eye(p), what)
    contributions = None
    if clustered:
        # each cluster's contribution to params - beta: bread @ (within-cluster score sum)
        contributions = current.meat @ bread * cluster_correction(groups)
        covariance = contributions.T @ contributions
    else:
        covariance = bread @ current.meat @ bread
    influence = None
    if keep_influence:
        (X, v), w = blocks[0], weights[0]
        residual = v - family.mean(X @ beta)
        if w is not None:
            residual = residual * w
        # psi_i = H^-1 x_i r_i with H the mean Hessian: bread is the inverse summed Hessian
        influence = (X * residual[:, None]) @ (bread * current.nobs)
    return MEstimate(beta, current.nobs, covariance, influence, contributions)
