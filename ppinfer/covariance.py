"""The legacy quantile base's constructors of the PPI variance blocks.

:class:`ppinfer.core.covariance.PPIComponents` holds the variance algebra of every
prediction-powered estimate; the estimators on the design object build its blocks
through :meth:`ppinfer.designs.base.BoundDesign.variance`. The flag-based quantile
base (:mod:`ppinfer.model`, :mod:`ppinfer.rectified_cdf`) still builds them from
its fits' influence rows with the constructors kept here, until it moves onto the
design object. With influence rows ``psi`` (``b - beta ~ mean(psi)``) and
independent samples, ``V_Y = Cov(psi^Y)/n`` and ``V_fu = Cov(psi^fu)/N``; with
clusters the same blocks are cluster-summed.
"""

from __future__ import annotations

import numpy as np

from .core.covariance import PPIComponents as _CorePPIComponents
from .core.warnings import PPIWarning  # noqa: F401  (re-exported: one class, shared with the core)
from .fitting import MEstimate, cluster_correction, cluster_sums


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
