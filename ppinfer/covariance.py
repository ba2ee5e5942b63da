"""Variance of prediction-powered estimates and the power-tuning of lambda.

Written once for every estimator. A PPI estimate combines three M-estimates,

    theta(lam) = b_Y + lam * (b_fu - b_f),

``b_Y`` and ``b_f`` fitted on the labeled rows to the outcomes and the predictions,
``b_fu`` on the unlabeled rows to the predictions. With influence rows ``psi``
(``b - beta ~ mean(psi)``) and independent samples, with ``L = diag(lam)``,

    Var theta(lam) = V_Y - C_Yf L - L C_fY + L (V_f + V_fu) L,

where ``V_Y = Var(mean psi^Y)``, ``C_Yf = Cov(mean psi^Y, mean psi^f)``, ``V_f`` and
``V_fu`` are variances of means. For i.i.d. rows ``V_Y = Cov(psi^Y)/n`` and
``V_fu = Cov(psi^fu)/N`` (METHODS.md, section 2); with clusters the same blocks are
cluster-summed. Estimators differ only in how they produce these blocks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .core.covariance import PPIComponents as _CorePPIComponents
from .fitting import MEstimate, cluster_correction, cluster_sums


from .core.warnings import PPIWarning  # noqa: E402  (one class, shared with the new core)


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


class PPIComponents(_CorePPIComponents):
    """:class:`ppinfer.core.covariance.PPIComponents` with the constructors of the
    flag-based designs (kept for the quantile until it moves onto the design object)."""

    @classmethod
    def from_estimates(
        cls,
        fit_y: MEstimate,
        fit_f: MEstimate,
        fit_fu: MEstimate,
        *,
        groups: np.ndarray | None = None,
        ngroups: int = 0,
    ) -> "PPIComponents":
        """Blocks for labeled and unlabeled samples drawn independently.

        ``groups`` are the labeled rows' cluster codes. When the unlabeled fit is
        clustered too (it carries ``cluster_contributions`` in the same code
        space), a cluster may hold units of both samples: its labeled and
        unlabeled contributions are added before squaring, which brings in their
        covariance. Otherwise the unlabeled fit enters through its own covariance.
        """
        labeled_y = contributions(fit_y.influence, groups, ngroups)
        labeled_f = contributions(fit_f.influence, groups, ngroups)
        if groups is not None and fit_fu.cluster_contributions is not None:
            # theta - beta ~ sum_g [a^Y_g - L (a^f_g - b_g)]: one sum over shared clusters
            difference = labeled_f - fit_fu.cluster_contributions
            zero = np.zeros_like(fit_fu.covariance)
            return cls(labeled_y.T @ labeled_y, labeled_y.T @ difference, difference.T @ difference, zero)
        return cls(labeled_y.T @ labeled_y, labeled_y.T @ labeled_f, labeled_f.T @ labeled_f, fit_fu.covariance)

    @classmethod
    def from_labeling_probabilities(
        cls, fit_y: MEstimate, fit_f: MEstimate, fit_all: MEstimate, label_prob: np.ndarray
    ) -> "PPIComponents":
        """Blocks when the labeled units are drawn from all units with known probabilities.

        Every unit (labeled or not) has a prediction; unit ``i`` was labeled with
        probability ``pi_i``. The labeled fits are weighted by ``1 / pi_i`` and the
        "unlabeled" fit ``fit_all`` uses every unit's prediction, so

            theta(lam) = b_w(Y) + lam (b_all(f) - b_w(f)),
            theta - beta ~ (1/M) sum_units [xi_i / pi_i (psi^Y_i - L psi^f_i) + L psi^f_i]

        over the ``M`` units, ``xi_i`` the labeling indicator. Taking the variance
        of that sum (``E[xi / pi | x] = 1``) gives, with ``u_i`` the weighted
        labeled influence rows of the fits,

            V_Y = sum u^Y u^Y' / n^2,  C_Yf = sum (1 - pi) u^Y u^f' / n^2,
            V_f = sum (1 - 2 pi) u^f u^f' / n^2,  V_fu = Cov(b_all(f)).

        This is the inverse-probability-weighted rectifier of active inference
        (Zrnic & Candes 2024) and design-based supervised learning (Egami et al.
        2023). With ``pi = n / M`` for all units it is PPI on a labeled subsample.
        """
        influence_y, influence_f = fit_y.influence, fit_f.influence
        n = influence_y.shape[0]
        keep = (1.0 - label_prob)[:, None]
        both = (1.0 - 2.0 * label_prob)[:, None]
        return cls(
            var_y=influence_y.T @ influence_y / n**2,
            cov_yf=(influence_y * keep).T @ influence_f / n**2,
            var_f=(influence_f * both).T @ influence_f / n**2,
            var_fu=fit_all.covariance,
        )


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
