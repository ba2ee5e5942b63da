"""Arm means of a completely observed trial, each with its influence rows.

Every method estimates the vector of arm means ``p = (p_0, ..., p_{K-1})`` (arm 0
the control) as an M-estimator, with influence rows ``r_i`` (n, K) such that
``p_hat - p ~ mean_i r_i``; its covariance is ``sum_i r_i r_i' / n^2``
(:func:`mean_covariance`), or, in a cluster-randomised trial, the same sum over
the clusters' totals. Contrasts (:mod:`ppinfer.trials.contrasts`), stratified
randomisation (:mod:`ppinfer.trials.randomisation`) and the power-tuned
combinations all work on these rows, so the variance algebra is written once.

Each mean is a (weighted) regression: of the outcome on the arm indicators
(``"dm"``), on an intercept (AIPW's terms), or a working GLM (standardisation).
The part of a row that comes from its residual is rescaled to the chosen
variant of the sandwich (:func:`influence_rows`): by the row's leverage for
``"HC2"`` and ``"HC3"`` (MacKinnon & White 1985), as statsmodels does, or by the
cluster's block of the hat matrix for ``"CR2"`` (Bell & McCaffrey 2002); the
part that comes from averaging predictions over the covariates is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.covariance import bell_mccaffrey_df, cr2_contributions, leverage, leverage_scale, psu_jacobians
from ..core.families import Family
from ..core.fitting import Fit, RowScores, fit_glm
from .arms import Arms


def mean_covariance(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Estimated ``Cov(mean(a), mean(b))`` from influence rows ``a``, ``b`` (m, p): ``sum_i a_i b_i' / m^2``."""
    m = a.shape[0]
    return a.T @ (a if b is None else b) / m**2


@dataclass(frozen=True)
class Clusters:
    """Cluster codes ``0..G-1`` of the units (cluster-robust variances)."""

    codes: np.ndarray
    count: int


@dataclass(frozen=True)
class WorkingHat:
    """What the Bell-McCaffrey degrees of freedom of a CR2 variance need from the working model.

    ``jacobians`` are the clusters' Hessians ``sum_{i in g} c_i z_i z_i'`` ((G, p, p), or
    (G,) for means), ``bread`` the inverse summed Hessian and ``slopes`` (p, K) the
    derivatives of the arm means with respect to the coefficients.
    """

    jacobians: np.ndarray
    bread: np.ndarray
    slopes: np.ndarray

    def df(self, gradient: np.ndarray) -> np.ndarray:
        """Degrees of freedom of the contrasts whose gradients in the arm means are the columns
        of ``gradient`` (K, J)."""
        return bell_mccaffrey_df(self.jacobians, self.bread, self.slopes @ gradient)


@dataclass(frozen=True)
class ArmMeans:
    """Arm means and their influence rows.

    Attributes
    ----------
    values : (K,) array
    rows : (n, K) array
        Influence rows, ``values - truth ~ mean(rows)``.
    df : float or None
        Residual degrees of freedom of the working regression (``n - p``), or
        None when the rows are arm-wise sums and Satterthwaite's degrees of
        freedom apply (see :func:`arm_satterthwaite_df`).
    hat : WorkingHat or None
        The working model's cluster Hessians (cluster-robust CR2 variances).
    """

    values: np.ndarray
    rows: np.ndarray
    df: float | None = None
    hat: WorkingHat | None = None

    def minus(self, lam, other: "ArmMeans") -> "ArmMeans":
        """``self - lam * other`` (``lam`` a number or one per arm), as for PPI's rectified means."""
        lam = np.asarray(lam, dtype=float)
        return ArmMeans(self.values - lam * other.values, self.rows - lam * other.rows, self.df, self.hat)

    def with_rows(self, rows: np.ndarray) -> "ArmMeans":
        return ArmMeans(self.values, rows, self.df, self.hat)


def _cr2_matrices(jacobians: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """(G, p, p) matrices ``R_g`` such that ``sum_{i in g} s_i R_g`` is cluster g's CR2 contribution
    (:func:`~ppinfer.core.covariance.cr2_contributions` of the cluster's score total)."""
    p = bread.shape[0]
    G = jacobians.shape[0]
    unit = np.tile(np.eye(p), (G, 1))
    return cr2_contributions(unit, np.repeat(jacobians, p, axis=0), bread).reshape(G, p, p)


def influence_rows(
    scores: np.ndarray,
    X: np.ndarray | None,
    curvature: np.ndarray,
    bread: np.ndarray,
    cov_type: str,
    *,
    nparams: int,
    clusters: Clusters | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Influence rows ``n M s_i`` of a (weighted) regression, adjusted for ``cov_type``.

    Parameters
    ----------
    scores : (n, q) array
        The rows' weighted scores ``s_i = w_i z_i e_i`` at the estimate.
    X : (n, p) array or None
        Design rows (None for means: the Hessian of a row is ``c_i`` times the identity).
    curvature : (n,) array
        Hessian weights ``c_i`` (the weights, for least squares and means).
    bread : (q, q) array
        ``M``, the inverse summed Hessian.
    cov_type : {"HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR2"}
    nparams : int
        Coefficients of the model (HC1's ``n / (n - p)``).
    clusters : Clusters, optional
        Needed for ``"CR2"``.

    Returns
    -------
    rows : (n, q) array
        ``HC2``/``HC3`` divide row ``i`` by ``(1 - h_i)^(1/2)`` or ``(1 - h_i)``, ``h_i = c_i z_i' M z_i``;
        ``HC1`` multiplies by ``(n / (n - p))^(1/2)``; ``CR2`` replaces ``M s_i`` by
        ``M f(H_g M) s_i`` with ``f(x) = (1 - x)^(-1/2)`` and ``H_g`` the Hessian of unit ``i``'s
        cluster, so that the clusters' totals of the rows are Bell and McCaffrey's adjusted
        contributions. ``HC0``, ``CR0`` and ``CR1`` leave them as they are.
    jacobians : array or None
        The clusters' Hessians (``"CR2"`` only).
    """
    n = scores.shape[0]
    if cov_type == "CR2":
        jacobians = psu_jacobians(X, curvature, clusters.codes, clusters.count)
        matrices = _cr2_matrices(jacobians, bread)
        return n * np.einsum("ik,ikj->ij", scores, matrices[clusters.codes]), jacobians
    rows = n * (scores @ bread)
    if cov_type in ("HC2", "HC3"):
        rows = rows * leverage_scale(leverage(X, curvature, bread), cov_type)[:, None]
    elif cov_type == "HC1":
        rows = rows * np.sqrt(n / (n - nparams))
    return rows, None


def _normalised(weights: np.ndarray | None, n: int) -> np.ndarray:
    """Weights scaled to mean 1 (ones without weights)."""
    return np.ones(n) if weights is None else weights * (n / weights.sum())


def arm_means(
    v: np.ndarray, arms: Arms, cov_type: str, *, weights: np.ndarray | None = None, clusters: Clusters | None = None
) -> ArmMeans:
    """(Weighted) mean of ``v`` in each arm: the regression of ``v`` on the arm indicators.

    ``r_ia = 1{A_i = a} w_i (v_i - vbar_a) / (W_a / n)``, ``W_a`` the arm's total weight; with
    HC2 and no weights the arm's variance is ``s_a^2 / n_a`` with the unbiased ``s_a^2``
    (leverage ``w_i / W_a``), with HC0 the 1/n_a version.
    """
    w = np.ones(v.shape[0]) if weights is None else weights
    indicators = arms.indicators()
    totals = np.bincount(arms.codes, weights=w, minlength=arms.count)
    means = np.bincount(arms.codes, weights=w * v, minlength=arms.count) / totals
    residual = v - means[arms.codes]
    bread = np.diag(1.0 / totals)
    rows, jacobians = influence_rows(indicators * (w * residual)[:, None], indicators, w, bread, cov_type,
                                     nparams=arms.count, clusters=clusters)
    hat = None if jacobians is None else WorkingHat(jacobians, bread, np.eye(arms.count))
    return ArmMeans(means, rows, None, hat)


def prognostic_score_gap(
    score: np.ndarray, arms: Arms, cov_type: str, *, weights: np.ndarray | None = None,
    clusters: Clusters | None = None,
) -> ArmMeans:
    """Each arm's mean score minus the mean score of all units, ``mbar_a - mbar``.

    Randomisation makes it zero in expectation; PPCT subtracts ``lam`` times it
    from the arm means of ``y`` (Poulet et al. 2025). Rows: the arm mean's rows
    minus the overall mean's ``w_i (m_i - mbar) / mean(w)``.
    """
    per_arm = arm_means(score, arms, cov_type, weights=weights, clusters=clusters)
    unit = _normalised(weights, score.shape[0])
    overall = float(unit @ score) / score.shape[0] if weights is not None else score.mean()
    return ArmMeans(per_arm.values - overall, per_arm.rows - (unit * (score - overall))[:, None], None)


def augmented(
    y: np.ndarray, score: np.ndarray, arms: Arms, propensity: np.ndarray, cov_type: str, *,
    weights: np.ndarray | None = None, clusters: Clusters | None = None,
) -> ArmMeans:
    """Two arms, known randomisation probability ``pi_i`` of arm 1: AIPW arm means.

    ``p_1 = mean(A (y - m) / pi + m)``, ``p_0 = mean((1 - A)(y - m) / (1 - pi) + m)``
    (weighted means with weights); the rows are the centred terms, rescaled as an
    intercept-only regression (leverage ``w_i / W``) for HC1-HC3 and CR2.
    """
    n = y.shape[0]
    probability = np.column_stack([1.0 - propensity, propensity])
    terms = arms.indicators() * ((y - score)[:, None] / probability) + score[:, None]
    w = np.ones(n) if weights is None else weights
    means = terms.mean(axis=0) if weights is None else w @ terms / w.sum()
    bread = np.eye(arms.count) / w.sum()
    rows, jacobians = influence_rows((terms - means) * w[:, None], None, w, bread, cov_type, nparams=1,
                                     clusters=clusters)
    hat = None if jacobians is None else WorkingHat(jacobians, bread, np.eye(arms.count))
    return ArmMeans(means, rows, n - 1.0, hat)


@dataclass(frozen=True)
class WorkingModel:
    """A working GLM of the outcome on arm indicators and baseline covariates.

    Attributes
    ----------
    family : Family
        Canonical-link family (identity, logit or log link).
    covariates : (n, q) array
        Baseline covariates (and the prognostic score, for PROCOVA).
    interacted : bool
        Arm-specific covariate slopes (Lin 2013; ANHECOVA): the covariates,
        centred at their (weighted) mean, also enter multiplied by each arm indicator.
    weights : (n,) array or None
        Unit weights of the fit and of the standardisation.
    """

    family: Family
    covariates: np.ndarray
    interacted: bool = False
    weights: np.ndarray | None = None

    def design(self, codes: np.ndarray, narms: int) -> np.ndarray:
        """Intercept, indicators of arms 1..K-1, covariates (and interactions) for arm codes ``codes``."""
        indicators = (codes[:, None] == np.arange(1, narms)).astype(float)
        columns = [np.ones((codes.shape[0], 1)), indicators]
        if self.interacted:
            centre = self.covariates.mean(axis=0) if self.weights is None else \
                self.weights @ self.covariates / self.weights.sum()
            centred = self.covariates - centre
            columns.append(centred)
            columns.extend(centred * indicators[:, [k]] for k in range(narms - 1))
        else:
            columns.append(self.covariates)
        return np.hstack(columns)

    def column_names(self, arm_names: list[str], covariate_names: list[str]) -> list[str]:
        names = ["Intercept", *arm_names[1:], *covariate_names]
        if self.interacted:
            names += [f"{arm}:{name}" for arm in arm_names[1:] for name in covariate_names]
        return names


def glm_fit(family: Family, X: np.ndarray, v: np.ndarray, *, weights: np.ndarray | None = None,
            what: str = "fit") -> tuple[Fit, RowScores]:
    """A GLM fit and its rows' weighted scores and Hessian weights at the estimate."""
    fit = fit_glm(family, [(X, v)], weights=[weights], collectors=[RowScores], what=what)
    return fit, fit.collected[0]


def standardised(
    model: WorkingModel, y: np.ndarray, arms: Arms, cov_type: str, *, conditional: bool = False, what: str = "fit",
    clusters: Clusters | None = None,
) -> ArmMeans:
    """Arm means by standardisation (g-computation) over a working GLM.

    Fits ``mu(z_i' b)`` with ``z_i`` from :meth:`WorkingModel.design` (weighted by
    ``w_i``), then ``p_a = sum_i w_i mu(z_i(a)' b) / W``: every unit's prediction had it been
    assigned arm ``a``. The influence rows are those of the joint M-estimator of ``b``
    and ``p``::

        r_ia = G_a' psi_i + w_i (mu_i(a) - p_a) / mean(w),
        G_a = sum_i w_i mu'(z_i(a)' b) z_i(a) / W,   psi_i = n M w_i z_i (y_i - mu_i),

    ``M`` the inverse summed Hessian. Under randomisation ``n M G_a`` tends to
    ``e_a / pi_a`` for a canonical link with arm indicators in the model, so the
    first term is asymptotically ``1{A_i = a}(y_i - mu_i) / pi_a`` and the rows are
    those of Ye, Bannick, Yi & Shao (2023) (Ge et al. 2011 keep only the first
    term: ``conditional=True``). For the identity link the contrast ``p_1 - p_0`` is
    the arm coefficient and its rows equal the coefficient's sandwich rows:
    statsmodels' ``OLS`` (``WLS`` with weights) with the same ``cov_type``.
    """
    n = y.shape[0]
    design = model.design(arms.codes, arms.count)
    fit, rows_at_fit = glm_fit(model.family, design, y, weights=model.weights, what=what)
    p = design.shape[1]
    influence, jacobians = influence_rows(rows_at_fit.scores, design, rows_at_fit.curvature, fit.bread, cov_type,
                                          nparams=p, clusters=clusters)
    unit = _normalised(model.weights, n)
    means = np.empty(arms.count)
    slopes = np.empty((p, arms.count))
    centred = np.empty((n, arms.count))
    for arm in range(arms.count):
        counterfactual = model.design(np.full(n, arm), arms.count)
        eta = counterfactual @ fit.params
        mu = model.family.mean(eta)
        means[arm] = mu.mean() if model.weights is None else unit @ mu / n
        slopes[:, arm] = (unit * model.family.mean_derivative(eta, mu)) @ counterfactual / n
        centred[:, arm] = unit * (mu - means[arm])
    rows = influence @ slopes
    if not conditional:
        rows = rows + centred
    hat = None if jacobians is None else WorkingHat(jacobians, fit.bread, slopes)
    return ArmMeans(means, rows, float(n - p), hat)


def arm_satterthwaite_df(rows: np.ndarray, arms: Arms) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of each column of ``rows`` (n, J).

    The variance ``sum_i r_i^2 / n^2`` is split into the arms' parts ``V_a``;
    ``df = (sum_a V_a)^2 / sum_a V_a^2 / (n_a - 1)``, Welch's formula for a
    difference in means.
    """
    parts = np.stack([np.bincount(arms.codes, weights=rows[:, j] ** 2, minlength=arms.count)
                      for j in range(rows.shape[1])], axis=1)
    denominator = (parts**2 / (arms.sizes - 1.0)[:, None]).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, parts.sum(axis=0) ** 2 / denominator, np.inf)


__all__ = [
    "ArmMeans",
    "Clusters",
    "WorkingHat",
    "WorkingModel",
    "arm_means",
    "arm_satterthwaite_df",
    "augmented",
    "glm_fit",
    "influence_rows",
    "mean_covariance",
    "prognostic_score_gap",
    "standardised",
]
