"""Variance of prediction-powered estimates and the power-tuning of lambda.

Written once for every estimator. A PPI estimate combines three M-estimates,

    theta(lam) = b_Y + lam * (b_fu - b_f),

``b_Y`` and ``b_f`` fitted on the labeled rows to the outcomes and the predictions,
``b_fu`` on the unlabeled rows to the predictions. With influence rows ``psi``
(``b - beta ~ mean(psi)``) and independent samples, with ``L = diag(lam)``,

    Var theta(lam) = V_Y - C_Yf L - L C_fY + L (V_f + V_fu) L,

where ``V_Y = Var(mean psi^Y)``, ``C_Yf = Cov(mean psi^Y, mean psi^f)``, ``V_f`` and
``V_fu`` are variances of means. For i.i.d. rows ``V_Y = Cov(psi^Y)/n`` and
``V_fu = Cov(psi^fu)/N``; with clusters the same blocks are
cluster-summed. Estimators differ only in how they produce these blocks.
"""

from __future__ import annotations

import numpy as np

from .core.covariance import PPIComponents  # noqa: F401  (re-exported for the trials)
from .core.warnings import PPIWarning  # noqa: F401  (one class, shared with the new core)
from .fitting import cluster_correction, cluster_sums


def contributions(rows: np.ndarray, groups: np.ndarray | None = None, ngroups: int = 0) -> np.ndarray:
    """Each unit's (or cluster's) contribution to the mean of ``rows`` (n, p).

    Without clusters, ``rows / n``. With integer cluster codes ``groups`` (in
    ``range(ngroups)``), ``sqrt(G / (G - 1)) * (within-cluster sums) / n`` with ``G``
    the non-empty clusters: the small-sample factor of cluster-robust variances.
    """
    n = rows.shape[0]
    if groups is None:
        return rows / n
    return cluster_sums(rows, groups, ngroups) / n * cluster_correction([groups])


def variance_of_mean(
    a: np.ndarray, b: np.ndarray | None = None, groups: np.ndarray | None = None, ngroups: int = 0
) -> np.ndarray:
    """Estimated ``Cov(mean(a), mean(b))`` from rows ``a``, ``b`` (n, p) of mean zero.

    ``sum_i a_i b_i' / n^2`` (1/n normalisation, HC0); with cluster codes,
    ``G / (G - 1) * sum_g A_g B_g' / n^2`` over within-cluster sums.
    """
    if groups is not None and ngroups == 0:
        ngroups = int(groups.max()) + 1
    left = contributions(a, groups, ngroups)
    right = left if b is None else contributions(b, groups, ngroups)
    return left.T @ right


#: heteroskedasticity-consistent variants, as statsmodels names them
HC_TYPES = {"hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3"}


def ols_leverage(X: np.ndarray) -> np.ndarray:
    """Diagonal of the hat matrix ``X (X'X)^-1 X'``, without forming it."""
    q, _ = np.linalg.qr(X)
    return np.einsum("ij,ij->i", q, q)


def hc_influence(influence: np.ndarray, cov_type: str, *, leverage: np.ndarray | None = None, nparams: int = 0) -> np.ndarray:
    """Influence rows rescaled so that :func:`variance_of_mean` gives the HC variant.

    HC0 leaves them as they are; HC1 multiplies by ``sqrt(n / (n - p))``; HC2
    divides row ``i`` by ``sqrt(1 - h_i)`` and HC3 by ``1 - h_i`` (``h`` the
    leverage), as in MacKinnon & White (1985) and statsmodels.
    """
    n = influence.shape[0]
    if cov_type == "HC0":
        return influence
    if cov_type == "HC1":
        return influence * np.sqrt(n / (n - nparams))
    if leverage is None:
        raise ValueError(f"{cov_type} needs the leverage of each row")
    if np.any(leverage >= 1.0 - 1e-10):
        raise ValueError(f"{cov_type} is undefined: some rows have leverage 1 (a parameter fitted by one row).")
    power = 0.5 if cov_type == "HC2" else 1.0
    return influence / ((1.0 - leverage) ** power)[:, None]
