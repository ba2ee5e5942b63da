"""Arm means of a completely observed trial, each with its influence rows.

Every method estimates the vector of arm means ``p = (p_0, ..., p_{K-1})`` (arm 0
the control) as an M-estimator, with influence rows ``r_i`` (n, K) such that
``p_hat - p ~ mean_i r_i``; its covariance is ``sum_i r_i r_i' / n^2``
(:func:`ppinfer.covariance.variance_of_mean`). Contrasts
(:mod:`ppinfer.trials.contrasts`), stratified randomisation
(:mod:`ppinfer.trials.randomisation`) and the power-tuned combinations all work on
these rows, so the variance algebra is written once.

The part of a row that comes from a residual ``y_i - mu_i`` is rescaled to the
chosen heteroskedasticity-consistent variant by its leverage (MacKinnon & White
1985), as statsmodels does for a regression; the part that comes from averaging
predictions over the covariates is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..covariance import hc_influence, ols_leverage
from ..families import Family
from ..fitting import fit_glm
from .arms import Arms


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
    """

    values: np.ndarray
    rows: np.ndarray
    df: float | None = None

    def minus(self, lam, other: "ArmMeans") -> "ArmMeans":
        """``self - lam * other`` (``lam`` a number or one per arm), as for PPI's rectified means."""
        lam = np.asarray(lam, dtype=float)
        return ArmMeans(self.values - lam * other.values, self.rows - lam * other.rows, self.df)

    def with_rows(self, rows: np.ndarray) -> "ArmMeans":
        return ArmMeans(self.values, rows, self.df)


def arm_means(v: np.ndarray, arms: Arms, cov_type: str) -> ArmMeans:
    """Mean of ``v`` in each arm: the OLS of ``v`` on the arm indicators.

    ``r_ia = 1{A_i = a} (v_i - vbar_a) / (n_a / n)``; with HC2 the arm's variance is
    ``s_a^2 / n_a`` with the unbiased ``s_a^2`` (leverage ``1 / n_a``), with HC0 the
    1/n_a version.
    """
    sizes = arms.sizes
    means = np.bincount(arms.codes, weights=v, minlength=arms.count) / sizes
    residual = v - means[arms.codes]
    scaled = hc_influence(residual[:, None], cov_type, leverage=1.0 / sizes[arms.codes], nparams=arms.count)[:, 0]
    rows = arms.indicators() * (scaled / arms.shares[arms.codes])[:, None]
    return ArmMeans(means, rows, None)


def prognostic_score_gap(score: np.ndarray, arms: Arms, cov_type: str) -> ArmMeans:
    """Each arm's mean score minus the mean score of all units, ``mbar_a - mbar``.

    Randomisation makes it zero in expectation; PPCT subtracts ``lam`` times it
    from the arm means of ``y`` (Poulet et al. 2025). Rows: the arm mean's rows
    minus the overall mean's ``m_i - mbar``.
    """
    per_arm = arm_means(score, arms, cov_type)
    overall = score - score.mean()
    return ArmMeans(per_arm.values - score.mean(), per_arm.rows - overall[:, None], None)


def augmented(y: np.ndarray, score: np.ndarray, arms: Arms, propensity: np.ndarray, cov_type: str) -> ArmMeans:
    """Two arms, known randomisation probability ``pi_i`` of arm 1: AIPW arm means.

    ``p_1 = mean(A (y - m) / pi + m)``, ``p_0 = mean((1 - A)(y - m) / (1 - pi) + m)``;
    the rows are the centred terms, rescaled as an intercept-only regression
    (leverage ``1/n``) for HC1-HC3.
    """
    n = y.shape[0]
    probability = np.column_stack([1.0 - propensity, propensity])
    terms = arms.indicators() * ((y - score)[:, None] / probability) + score[:, None]
    means = terms.mean(axis=0)
    rows = hc_influence(terms - means, cov_type, leverage=np.full(n, 1.0 / n), nparams=1)
    return ArmMeans(means, rows, n - 1.0)


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
        centred at their mean, also enter multiplied by each arm indicator.
    """

    family: Family
    covariates: np.ndarray
    interacted: bool = False

    def design(self, codes: np.ndarray, narms: int) -> np.ndarray:
        """Intercept, indicators of arms 1..K-1, covariates (and interactions) for arm codes ``codes``."""
        indicators = (codes[:, None] == np.arange(1, narms)).astype(float)
        columns = [np.ones((codes.shape[0], 1)), indicators]
        if self.interacted:
            centred = self.covariates - self.covariates.mean(axis=0)
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


def glm_leverage(design: np.ndarray, curvature: np.ndarray) -> np.ndarray:
    """Diagonal of the weighted hat matrix ``W^1/2 Z (Z'WZ)^-1 Z' W^1/2`` (OLS leverage if W = I)."""
    return ols_leverage(design * np.sqrt(curvature)[:, None])


def standardised(
    model: WorkingModel, y: np.ndarray, arms: Arms, cov_type: str, *, conditional: bool = False, what: str = "fit"
) -> ArmMeans:
    """Arm means by standardisation (g-computation) over a working GLM.

    Fits ``mu(z_i' b)`` with ``z_i`` from :meth:`WorkingModel.design`, then
    ``p_a = mean_i mu(z_i(a)' b)``: every unit's prediction had it been assigned
    arm ``a``. The influence rows are those of the joint M-estimator of ``b`` and
    ``p``::

        r_ia = G_a' H^-1 z_i (y_i - mu_i) + (mu_i(a) - p_a),
        G_a = mean_i mu'(z_i(a)' b) z_i(a),   H = mean_i mu'(z_i' b) z_i z_i'.

    Under randomisation ``H^-1 G_a`` tends to ``e_a / pi_a`` for a canonical link
    with arm indicators in the model, so the first term is asymptotically
    ``1{A_i = a}(y_i - mu_i) / pi_a`` and the rows are those of Ye, Bannick, Yi &
    Shao (2023) (Ge et al. 2011 keep only the first term: ``conditional=True``).
    For the identity link the contrast ``p_1 - p_0`` is the arm coefficient and its
    rows equal the coefficient's sandwich rows: statsmodels' ``OLS`` with the same
    ``cov_type``.
    """
    n = y.shape[0]
    design = model.design(arms.codes, arms.count)
    fit = fit_glm(model.family, [(design, y)], keep_influence=True, what=what)
    p = design.shape[1]
    leverage = None
    if cov_type in ("HC2", "HC3"):
        eta = design @ fit.params
        curvature = model.family.mean_derivative(eta, model.family.mean(eta))
        leverage = glm_leverage(design, curvature)
    influence = hc_influence(fit.influence, cov_type, leverage=leverage, nparams=p)
    means = np.empty(arms.count)
    slopes = np.empty((p, arms.count))
    centred = np.empty((n, arms.count))
    for arm in range(arms.count):
        counterfactual = model.design(np.full(n, arm), arms.count)
        eta = counterfactual @ fit.params
        mu = model.family.mean(eta)
        means[arm] = mu.mean()
        slopes[:, arm] = model.family.mean_derivative(eta, mu) @ counterfactual / n
        centred[:, arm] = mu - means[arm]
    rows = influence @ slopes
    if not conditional:
        rows = rows + centred
    return ArmMeans(means, rows, float(n - p))


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
    "WorkingModel",
    "arm_means",
    "arm_satterthwaite_df",
    "augmented",
    "glm_leverage",
    "prognostic_score_gap",
    "standardised",
]
