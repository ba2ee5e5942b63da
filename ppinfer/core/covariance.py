"""Variance of prediction-powered estimates, the tuning of lambda, and small-sample corrections.

Written once for every estimator. A PPI estimate combines three M-estimates,

    theta(lam) = b_Y + lam * (b_fu - b_f),

``b_Y`` and ``b_f`` fitted on the labeled rows to the outcomes and the
predictions, ``b_fu`` on the unlabeled rows (or on all units, in a two-phase
design) to the predictions. With ``u`` the contributions of ``b_Y`` and ``v``
those of ``b_f - b_fu`` (each row's share of ``b - beta``), the sampling design
gives their joint variance, and with ``L = diag(lam)``

    Var theta(lam) = V_Y - C L - L C' + L (V_f + V_fu) L,

``V_Y = Var(sum u)``, ``C = Cov(sum u, sum v)``, ``V_f`` and ``V_fu`` the labeled
and unlabeled parts of ``Var(sum v)``. For two independent simple random
samples these are ``Cov(psi^Y)/n``, ``Cov(psi^Y, psi^f)/n``, ``Cov(psi^f)/n`` and
``Cov(psi^fu)/N`` (Angelopoulos, Duchi & Zrnic 2023). A full matrix ``L``
(``lam="matrix"``) gives ``V_Y - C L' - L C' + L (V_f + V_fu) L'``.

Small-sample corrections act on the contributions before the design sums them
(``HC2``, ``HC3``, ``CR2``: MacKinnon & White 1985; Bell & McCaffrey 2002) or as
factors of the design's sums (``HC1``, ``CR1``); degrees of freedom for t
intervals come from the design, from Bell and McCaffrey's Satterthwaite
approximation (``CR2``) and, for PPI, from Welch and Satterthwaite's formula
combining the labeled and unlabeled parts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .options import choose
from .warnings import PPIWarning

#: covariance estimators by name (statsmodels and R clubSandwich names, case-insensitive)
COV_TYPES = {
    "hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3",
    "cr0": "CR0", "cr1": "CR1", "cr2": "CR2", "cluster": "CR1",
}
#: the covariance estimators of designs without clusters, and with them
UNCLUSTERED_COV_TYPES = ("HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR2")
CLUSTERED_COV_TYPES = ("CR0", "CR1", "CR2")
#: corrections that rescale each contribution (by leverage), and the power of (1 - h)
LEVERAGE_POWER = {"HC2": 0.5, "HC3": 1.0, "CR2": 0.5}


def parse_cov_type(cov_type: str, *, clustered: bool) -> str:
    """The canonical name of ``cov_type``, checked against the design."""
    name = choose(cov_type, COV_TYPES, "cov_type")
    if clustered and name not in CLUSTERED_COV_TYPES:
        raise ValueError(
            f"cov_type={cov_type!r} treats units as independent, but the design has clusters; "
            "use 'CR2' (bias-reduced, the default), 'CR1' or 'CR0'."
        )
    return name


@dataclass(frozen=True)
class PPIComponents:
    """The variance blocks of a PPI estimate (arrays of shape (..., p, p)).

    Leading dimensions, if any, index separate problems solved at once (strata
    with their own lambda; the quantile's breakpoints); each is combined
    independently. ``var_f`` and ``var_fu`` are the labeled and unlabeled parts
    of the variance of the prediction fits' difference (when a design joins the
    samples, all of it is in ``var_f``).
    """

    var_y: np.ndarray
    cov_yf: np.ndarray
    var_f: np.ndarray
    var_fu: np.ndarray

    def covariance(self, lam: np.ndarray) -> np.ndarray:
        """``Var theta(lam)`` for ``lam`` of shape (..., p) (one lambda per coordinate)."""
        labeled, unlabeled = self.parts(lam)
        return labeled + unlabeled

    def parts(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The labeled and the unlabeled part of ``Var theta(lam)``.

        ``lam`` holds one lambda per coordinate (shape (..., p)) or a full matrix
        per problem (shape (..., p, p), as many dimensions as the blocks)."""
        lam = np.asarray(lam, dtype=float)
        if lam.ndim == self.var_y.ndim:
            cross = self.cov_yf @ np.swapaxes(lam, -1, -2)
            labeled = self.var_y - cross - np.swapaxes(cross, -1, -2) + lam @ self.var_f @ np.swapaxes(lam, -1, -2)
            return labeled, lam @ self.var_fu @ np.swapaxes(lam, -1, -2)
        left, right = lam[..., :, None], lam[..., None, :]
        cross = self.cov_yf * right
        labeled = self.var_y - cross - np.swapaxes(cross, -1, -2) + left * self.var_f * right
        return labeled, left * self.var_fu * right

    def tuned_lambda(self, *, per_coefficient: bool) -> np.ndarray:
        """The lambda that minimises the estimated variance, clipped to [0, 1].

        Overall: ``tr C / tr(V_f + V_fu)`` minimises the trace of the covariance
        (the sum of the coefficients' variances). Per coefficient:
        ``C[k, k] / (V_f + V_fu)[k, k]`` minimises each variance. Both reduce to
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

    def matrix_lambda(self) -> np.ndarray:
        """The p x p ``Lambda`` that minimises the estimated covariance: ``C (V_f + V_fu)^-1``.

        With ``S = V_f + V_fu``, completing the square gives
        ``Var theta(L) = V_Y - C S^-1 C' + (L - C S^-1) S (L - C S^-1)'``, so
        ``L = C S^-1`` minimises the covariance matrix itself (every linear
        combination's variance, and so its trace), not only its diagonal. It is
        not clipped: a full matrix lets the error in one prediction fit's
        coefficient correct another coefficient. Directions in which the
        prediction fits have no variation get no weight (a pseudo-inverse); with
        none at all, Lambda is 0 (the classical estimate) with a :class:`PPIWarning`.
        """
        total = self.var_f + self.var_fu
        values, vectors = np.linalg.eigh(total)
        reference = np.trace(self.var_y, axis1=-2, axis2=-1)[..., None]
        kept = values > 1e-12 * np.maximum(np.maximum(reference, values[..., -1:]), np.finfo(float).tiny)
        if np.any(~kept.any(axis=-1)):
            warnings.warn(
                "the fits of the predictions have no residual variation (constant predictions, or "
                "predictions that are an exact function of the design), so they cannot reduce the "
                "variance; Lambda set to 0 (the classical estimate) where that happens.",
                PPIWarning,
                stacklevel=3,
            )
        inverse_values = np.where(kept, 1.0 / np.where(kept, values, 1.0), 0.0)
        pseudo_inverse = (vectors * inverse_values[..., None, :]) @ np.swapaxes(vectors, -1, -2)
        return self.cov_yf @ pseudo_inverse

    def sum_strata(self) -> "PPIComponents":
        """The blocks summed over a leading stratum axis."""
        return PPIComponents(*(block.sum(axis=0) for block in (self.var_y, self.cov_yf, self.var_f, self.var_fu)))


#: accepted spellings of the tuning rules
TUNING = {
    "per-coefficient": "per-coefficient",
    "per_coefficient": "per-coefficient",
    "overall": "overall",
    "per-stratum": "per-stratum",
    "per_stratum": "per-stratum",
    "matrix": "matrix",
}

#: lambda fixed by each method that has no tuning
FIXED_LAMBDA = {"classical": 0.0, "ppi": 1.0}


@dataclass(frozen=True)
class LambdaRule:
    """How lambda is chosen: fixed values, or tuned to minimise the estimated variance.

    Attributes
    ----------
    fixed : (p,) array or None
        Fixed lambdas (one per parameter), or None to tune.
    per_coefficient : bool
        Tune one lambda per parameter (else one minimising the trace).
    by_stratum : bool
        One lambda (or one per parameter) per stratum of the design, the
        estimate split by stratum (stratified PPI; Fisch et al. 2024).
    matrix : bool
        Tune a full p x p matrix ``Lambda`` (:meth:`PPIComponents.matrix_lambda`);
        the estimate is ``b_Y + Lambda (b_fu - b_f)``.
    """

    fixed: np.ndarray | None = None
    per_coefficient: bool = False
    by_stratum: bool = False
    matrix: bool = False

    @property
    def tuned(self) -> bool:
        return self.fixed is None

    def lambdas(self, components: PPIComponents) -> np.ndarray:
        """Lambdas of the shape of the blocks' diagonals ((p,), or (strata, p))."""
        shape = np.diagonal(components.var_y, axis1=-2, axis2=-1).shape
        if self.fixed is not None:
            return np.broadcast_to(self.fixed, shape).copy()
        if self.matrix:
            return components.matrix_lambda()
        return components.tuned_lambda(per_coefficient=self.per_coefficient)

    def correction(self, lam: np.ndarray, difference: np.ndarray) -> np.ndarray:
        """``lam`` applied to ``b_fu - b_f`` (shape (..., p)): ``lam * difference``, or
        ``Lambda @ difference`` for a matrix rule."""
        if self.matrix:
            return np.einsum("...ij,...j->...i", lam, difference)
        return lam * difference

    def tuned_count(self, nstrata: int, nparams: int = 1) -> int:
        """Degrees of freedom the tuning spends on the labeled sample, per parameter (a matrix
        rule fits ``nparams`` coefficients for each parameter)."""
        if not self.tuned:
            return 0
        per_stratum = nparams if self.matrix else 1
        return per_stratum * (nstrata if self.by_stratum else 1)

    @classmethod
    def parse(cls, method: str, lam, *, nparams: int, per_coefficient: bool, by_stratum: bool,
              has_strata: bool) -> "LambdaRule | None":
        """The rule of ``method`` and ``lam`` (None for naive pooling).

        ``per_coefficient`` and ``by_stratum`` are the model's and design's defaults.
        """
        if method != "ppi++":
            if lam is not None:
                fixed = "no lambda" if method == "naive" else f"lambda = {FIXED_LAMBDA[method]:g}"
                raise ValueError(
                    f"lam={lam!r} conflicts with method={method!r}, which uses {fixed}; "
                    "pass lam together with method='ppi++'."
                )
            if method == "naive":
                return None
            return cls(fixed=np.full(nparams, FIXED_LAMBDA[method]), by_stratum=by_stratum)
        if lam is None:
            return cls(per_coefficient=per_coefficient, by_stratum=by_stratum)
        if isinstance(lam, str):
            rule = choose(lam, TUNING, "lam")
            if rule == "per-stratum":
                if not has_strata:
                    raise ValueError("lam='per-stratum' needs a design with strata.")
                return cls(per_coefficient=per_coefficient, by_stratum=True)
            if rule == "matrix":
                return cls(matrix=True, by_stratum=by_stratum)
            return cls(per_coefficient=rule == "per-coefficient", by_stratum=by_stratum)
        try:
            values = np.asarray(lam, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"lam must be None, 'per-coefficient', a number or one number per parameter (or 'overall', "
                f"'per-stratum', 'matrix'); got {lam!r}."
            ) from None
        if values.ndim == 0:
            values = np.full(nparams, float(values))
        if values.shape != (nparams,):
            raise ValueError(f"lam must be a number or have one value per parameter ({nparams}); got shape {values.shape}.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"lam must be finite; got {lam!r}.")
        return cls(fixed=values, by_stratum=by_stratum)


# -- small-sample corrections ------------------------------------------------------------------
def leverage(X: np.ndarray | None, curvature: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """Diagonal of the (weighted) hat matrix: ``h_i = c_i x_i' (sum_j c_j x_j x_j')^-1 x_i``.

    ``curvature`` holds each row's Hessian weight ``c_i`` (for a GLM, the weight
    times ``mu'(eta)``: the IRLS weight); ``bread`` is the inverse summed
    Hessian. Without ``X`` (a mean), ``h_i = c_i / sum(c)``.
    """
    if X is None:
        return curvature * bread[0, 0]
    return curvature * ((X @ bread) * X).sum(axis=1)


def leverage_scale(h: np.ndarray, cov_type: str) -> np.ndarray:
    """Factor of each row's contribution: ``(1 - h)^(-1/2)`` (HC2) or ``(1 - h)^-1`` (HC3).

    Rows fitted exactly (``h = 1``) have no residual; their factor is set to 0
    (the pseudo-inverse, as R's clubSandwich)."""
    power = LEVERAGE_POWER[cov_type]
    room = 1.0 - h
    exact = room <= 1e-10
    return np.where(exact, 0.0, np.maximum(room, 1e-10) ** -power)


def _sqrt_bread(bread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, vectors = np.linalg.eigh(bread)
    values = np.clip(values, 0.0, None)
    root = (vectors * np.sqrt(values)) @ vectors.T
    with np.errstate(divide="ignore"):
        inverse = (vectors * np.where(values > 0, 1.0 / np.sqrt(values), 0.0)) @ vectors.T
    return root, inverse


def _cluster_eigen(jacobians: np.ndarray, bread: np.ndarray):
    """Eigen-decomposition of ``S H_g S`` (S the symmetric root of the bread) per cluster."""
    root, _ = _sqrt_bread(bread)
    if jacobians.ndim == 1:  # a mean: H_g = W_g I
        p = bread.shape[0]
        values = np.repeat((jacobians * bread[0, 0])[:, None], p, axis=1)
        vectors = np.broadcast_to(np.eye(p), (jacobians.size, p, p))
        return root, np.clip(values, 0.0, 1.0), vectors
    inner = root @ jacobians @ root
    values, vectors = np.linalg.eigh(inner)
    return root, np.clip(values, 0.0, 1.0), vectors


def cr2_contributions(totals: np.ndarray, jacobians: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """Bias-reduced (CR2) cluster contributions ``M (I - H_gg)^(-1/2)``-adjusted.

    For cluster ``g`` with score total ``s_g``, Hessian ``H_g = sum_{i in g} c_i x_i x_i'``
    and bread ``M``, Bell & McCaffrey's adjustment of the cluster's working
    residuals by ``A_g = (I - H_gg)^(-1/2)``, ``H_gg`` the cluster's block of the
    (weighted) hat matrix, changes its contribution to ``M f(H_g M) s_g`` with
    ``f(x) = (1 - x)^(-1/2)`` (the push-through identity), computed in p
    dimensions as ``S Q f(L) Q' S s_g`` where ``S H_g S = Q L Q'`` and ``S^2 = M``.
    A cluster fitted exactly (eigenvalue 1) gets the pseudo-inverse (factor 0).
    Returns (G, p).
    """
    root, values, vectors = _cluster_eigen(jacobians, bread)
    scale = np.where(values >= 1.0 - 1e-10, 0.0, 1.0 / np.sqrt(np.maximum(1.0 - values, 1e-10)))
    rotated = np.einsum("gji,gj->gi", vectors, totals @ root)  # Q' S s_g
    return np.einsum("gij,gj->gi", vectors, rotated * scale) @ root


def bell_mccaffrey_df(jacobians: np.ndarray, bread: np.ndarray, contrasts: np.ndarray | None = None) -> np.ndarray:
    """Satterthwaite degrees of freedom of CR2 variances (Bell & McCaffrey 2002).

    Under the working model (independent errors of unit variance on the working
    scale) the CR2 variance of ``c'b`` is a quadratic form ``sum_g (p_g' e)^2``;
    its degrees of freedom are ``(sum_g p_g'p_g)^2 / sum_{g,h} (p_g'p_h)^2``, as in
    R's clubSandwich. With ``t = S c``, ``a_g = f(B_g) B_g t`` and
    ``d_g = t' B_g (I - B_g)^-1 t`` (``B_g = S H_g S``), ``p_g'p_h = 1{g=h} d_g - a_g'a_h``,
    so everything stays in p dimensions. ``contrasts`` (p, k) default to the
    coordinates. Returns (k,).
    """
    root, values, vectors = _cluster_eigen(jacobians, bread)
    p = bread.shape[0]
    contrasts = np.eye(p) if contrasts is None else contrasts
    t = root @ contrasts  # (p, k)
    inside = values < 1.0 - 1e-10
    f_times = np.where(inside, values / np.sqrt(np.maximum(1.0 - values, 1e-10)), 0.0)
    g_times = np.where(inside, values / np.maximum(1.0 - values, 1e-10), 0.0)
    projected = np.einsum("gji,jk->gik", vectors, t)  # Q_g' t: (G, p, k)
    a = np.einsum("gij,gjk->gik", vectors, projected * f_times[:, :, None])  # (G, p, k)
    d = np.einsum("gik,gi->gk", projected**2, g_times)  # (G, k)
    norms = np.einsum("gik,gik->gk", a, a)
    gram = np.einsum("gik,gjk->kij", a, a)  # A'A per contrast: (k, p, p)
    trace = d.sum(axis=0) - norms.sum(axis=0)
    squares = (d**2).sum(axis=0) - 2.0 * (d * norms).sum(axis=0) + np.einsum("kij,kij->k", gram, gram)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(squares > 0, trace**2 / squares, np.inf)


def psu_jacobians(X: np.ndarray | None, curvature: np.ndarray, codes: np.ndarray, npsu: int) -> np.ndarray:
    """Per-PSU Hessians ``sum_{i in g} c_i x_i x_i'`` (G, p, p), or ``sum c_i`` (G,) for a mean."""
    if X is None:
        return np.bincount(codes, weights=curvature, minlength=npsu)
    from ..designs.base import group_outer

    return group_outer(X * curvature[:, None], X, codes, npsu)


def satterthwaite_df(variances: list[np.ndarray], dfs: list[np.ndarray | float]) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates:
    ``(sum V_j)^2 / sum (V_j^2 / df_j)``."""
    total = sum(variances)
    denominator = sum(np.where(v > 0, v**2 / np.maximum(d, 1e-12), 0.0) for v, d in zip(variances, dfs))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, total**2 / denominator, np.asarray(dfs[0], dtype=float) * np.ones_like(total))
