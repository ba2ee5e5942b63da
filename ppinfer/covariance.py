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

from .fitting import MEstimate


class PPIWarning(UserWarning):
    """A fit went ahead with a fallback the user should know about."""


def variance_of_mean(a: np.ndarray, b: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """Estimated ``Cov(mean(a), mean(b))`` from rows ``a``, ``b`` (n, p) of mean zero.

    ``sum_i a_i b_i' / n^2`` (1/n normalisation, HC0); with integer cluster codes
    ``groups``, ``sum_g A_g B_g' / n^2`` over within-cluster sums ``A_g``, ``B_g``.
    """
    b = a if b is None else b
    n = a.shape[0]
    if groups is not None:
        ngroups = int(groups.max()) + 1
        a = np.stack([np.bincount(groups, weights=a[:, k], minlength=ngroups) for k in range(a.shape[1])], 1)
        b = np.stack([np.bincount(groups, weights=b[:, k], minlength=ngroups) for k in range(b.shape[1])], 1)
    return a.T @ b / n**2


@dataclass(frozen=True)
class PPIComponents:
    """The variance blocks of a PPI estimate (arrays of shape (..., p, p)).

    Leading dimensions, if any, index separate problems solved at once (the
    quantile's breakpoints); each is combined independently.
    """

    var_y: np.ndarray
    cov_yf: np.ndarray
    var_f: np.ndarray
    var_fu: np.ndarray

    @classmethod
    def from_estimates(
        cls, fit_y: MEstimate, fit_f: MEstimate, fit_fu: MEstimate, groups: np.ndarray | None = None
    ) -> "PPIComponents":
        """Blocks from labeled influence rows and the unlabeled fit's own covariance."""
        return cls(
            var_y=variance_of_mean(fit_y.influence, groups=groups),
            cov_yf=variance_of_mean(fit_y.influence, fit_f.influence, groups=groups),
            var_f=variance_of_mean(fit_f.influence, groups=groups),
            var_fu=fit_fu.covariance,
        )

    def covariance(self, lam: np.ndarray) -> np.ndarray:
        """``Var theta(lam)`` for ``lam`` of shape (..., p) (one lambda per coordinate)."""
        lam = np.asarray(lam, dtype=float)
        left, right = lam[..., :, None], lam[..., None, :]
        cross = self.cov_yf * right
        return self.var_y - cross - np.swapaxes(cross, -1, -2) + left * (self.var_f + self.var_fu) * right

    def tuned_lambda(self, *, per_coefficient: bool) -> np.ndarray:
        """The lambda that minimises the estimated variance, clipped to [0, 1].

        Overall: ``tr C_Yf / tr(V_f + V_fu)`` minimises the trace of the covariance
        (the sum of the coefficients' variances). Per coefficient:
        ``C_Yf[k, k] / (V_f + V_fu)[k, k]`` minimises each variance. Both reduce to
        ``cov(Y, f) / (s2(f) + r s2(fu))`` for i.i.d. rows. Where the predictions
        carry no variation the denominator vanishes and lambda falls back to 0
        (the classical estimate) with a :class:`PPIWarning`.
        """
        numerator = np.diagonal(self.cov_yf, axis1=-2, axis2=-1)
        denominator = np.diagonal(self.var_f + self.var_fu, axis1=-2, axis2=-1)
        reference = np.diagonal(self.var_y, axis1=-2, axis2=-1)
        if not per_coefficient:
            numerator = numerator.sum(axis=-1, keepdims=True)
            denominator = denominator.sum(axis=-1, keepdims=True)
            reference = reference.sum(axis=-1, keepdims=True)
        degenerate = denominator <= 1e-12 * np.maximum(reference, np.finfo(float).tiny)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = np.where(degenerate, 0.0, numerator / np.where(degenerate, 1.0, denominator))
        if np.any(degenerate):
            warnings.warn(
                "the fits of the predictions have no residual variation (constant predictions, or "
                "predictions that are an exact function of the design), so they cannot reduce the "
                "variance; lambda set to 0 (the classical estimate) where that happens.",
                PPIWarning,
                stacklevel=3,
            )
        lam = np.clip(lam, 0.0, 1.0)
        shape = np.diagonal(self.var_y, axis1=-2, axis2=-1).shape
        return np.broadcast_to(lam, shape).copy()


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
