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
        Sandwich (HC0) covariance of ``params``: the variance of the mean of the
        influence rows, cluster-summed when clusters were given.
    influence : (nobs, p) array or None
        Influence rows ``psi_i`` with ``params - beta ~ mean(psi)``; kept for the
        labeled sample, where PPI needs their covariance with other fits.
    """

    params: np.ndarray
    nobs: int
    covariance: np.ndarray
    influence: np.ndarray | None = None


@dataclass
class _RowSums:
    """Sums over rows at one coefficient vector."""

    nobs: int
    score: np.ndarray
    hessian: np.ndarray
    loss: float
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


def _cluster_sums(rows: np.ndarray, codes: np.ndarray, ngroups: int) -> np.ndarray:
    """(ngroups, p) sums of ``rows`` within each cluster code."""
    return np.stack(
        [np.bincount(codes, weights=rows[:, k], minlength=ngroups) for k in range(rows.shape[1])], axis=1
    )


def _row_sums(
    family: Family,
    X: np.ndarray,
    v: np.ndarray,
    beta: np.ndarray,
    *,
    meat: bool,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> _RowSums:
    """One pass over a block of rows: score, Hessian and loss (and meat) at ``beta``.

    ``groups`` holds integer cluster codes; the meat is then the sum of outer
    products of within-cluster score sums (cluster-robust).
    """
    p = X.shape[1]
    score = np.zeros(p)
    hessian = np.zeros((p, p))
    loss = 0.0
    ngroups = int(groups.max()) + 1 if groups is not None else 0
    outer = np.zeros((p, p)) if meat else None
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
                cluster_scores += _cluster_sums(scores, groups[rows], ngroups)
    if cluster_scores is not None:
        outer = cluster_scores.T @ cluster_scores
    return _RowSums(v.shape[0], score, hessian, loss, outer)


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
        Row weights, and integer cluster codes for a cluster-robust covariance.
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
    if keep_influence and len(blocks) != 1:
        raise ValueError("influence rows are kept for a single block only")
    p = blocks[0][0].shape[1]

    def sums(beta: np.ndarray, meat: bool) -> _RowSums:
        total = None
        for (X, v), w, g in zip(blocks, weights, groups):
            part = _row_sums(family, X, v, beta, meat=meat, weights=w, groups=g)
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
    covariance = bread @ current.meat @ bread
    influence = None
    if keep_influence:
        (X, v), w = blocks[0], weights[0]
        residual = v - family.mean(X @ beta)
        if w is not None:
            residual = residual * w
        # psi_i = H^-1 x_i r_i with H the mean Hessian: bread is the inverse summed Hessian
        influence = (X * residual[:, None]) @ (bread * current.nobs)
    return MEstimate(beta, current.nobs, covariance, influence)


def fit_mean(
    v: np.ndarray,
    *,
    keep_influence: bool = False,
    weights: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> MEstimate:
    """Column means of ``v`` (n, k) as M-estimates (estimating function ``v_i - b``).

    Notes
    -----
    ``psi_i = w_i (v_i - b) / mean(w)``; the covariance is ``sum psi psi' / n^2``
    (1/n normalisation, as HC0), cluster-summed when ``groups`` are given. Two
    passes: the mean, then centred outer products by chunks.
    """
    if v.ndim == 1:
        v = v[:, None]
    n, k = v.shape
    if weights is None:
        params = v.mean(axis=0)
        scale = 1.0
    else:
        params = weights @ v / weights.sum()
        scale = n / weights.sum()
    ngroups = int(groups.max()) + 1 if groups is not None else 0
    outer = np.zeros((k, k))
    cluster_sums = np.zeros((ngroups, k)) if groups is not None else None
    for rows in _chunks(n):
        centred = v[rows] - params
        if weights is not None:
            centred = centred * (weights[rows] * scale)[:, None]
        if cluster_sums is None:
            outer += centred.T @ centred
        else:
            cluster_sums += _cluster_sums(centred, groups[rows], ngroups)
    if cluster_sums is not None:
        outer = cluster_sums.T @ cluster_sums
    influence = None
    if keep_influence:
        influence = v - params
        if weights is not None:
            influence = influence * (weights * scale)[:, None]
    return MEstimate(params, n, outer / n**2, influence)
