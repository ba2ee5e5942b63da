"""What the legacy quantile base (:mod:`ppinfer.model`) still needs of the old M-estimation core.

The M-estimation core is :mod:`ppinfer.core.fitting`; every estimator but the
flag-based quantile base fits through it. This module keeps the quantile's
record of an M-estimate and its cluster sums until the quantile moves onto the
design object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
