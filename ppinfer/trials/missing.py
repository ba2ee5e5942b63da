"""Arm means when some outcomes are missing but predicted by the prognostic score.

Each arm's mean is a prediction-powered mean of its observed outcomes, with the
score as the prediction (Angelopoulos et al. 2023; PPI++):

    theta_a(lam) = b_obs(y) - lam (b_obs(m) - b_ref(m)),

``b_obs`` a mean over the arm's units with an outcome and ``b_ref`` the mean of the
score over the units it must stand for. Two missingness designs:

* completely at random within each arm (:func:`ppi_parts`): ``b_obs`` plain means
  of the observed units, ``b_ref`` the mean over the units without an outcome
  (PPI on a labeled and an unlabeled sample per arm);
* at random given baseline covariates and arm (:func:`weighted_parts`): unit ``i``
  has its outcome observed with probability ``pi_i``, known or fitted by a
  logistic regression; ``b_obs`` are Hajek means weighted by ``1 / pi_i`` and
  ``b_ref`` the mean over all the arm's units. ``lam = 0`` is inverse probability
  weighting (IPW), ``lam = 1`` the augmented estimator (AIPW) with the score as
  outcome model, and the tuned ``lam`` PPI++ with an IPW rectifier (Zrnic &
  Candes 2024; Egami et al. 2023).

As in :mod:`ppinfer.trials.arm_means`, every mean comes with influence rows over
all ``n`` randomised units (variance ``sum r^2 / n^2``, HC0; in a cluster-randomised
trial, the same sum over the clusters' totals).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..core.covariance import PPIComponents
from ..core.families import Binomial
from ..core.validation import check_full_rank
from ..core.warnings import PPIWarning
from .arm_means import ArmMeans, glm_fit, mean_covariance
from .arms import Arms

#: below this observation probability, inverse weights are flagged as unstable
SMALL_OBSERVATION_PROBABILITY = 0.05


@dataclass(frozen=True)
class ObservationModel:
    """A logistic regression of having an outcome: coefficients, influence rows and design."""

    params: np.ndarray
    influence: np.ndarray
    design: np.ndarray

    @property
    def probability(self) -> np.ndarray:
        return Binomial().mean(self.design @ self.params)


def fit_observation_model(observed: np.ndarray, arms: Arms, X: np.ndarray, names: list[str]) -> ObservationModel:
    """Logistic regressions of having an outcome on ``X``, one per arm (the arm indicators and
    their products with ``X``), so that missingness may depend on the covariates differently
    in each arm."""
    indicators = arms.indicators()
    with_intercept = np.column_stack([np.ones(observed.shape[0]), X])
    design = np.hstack([indicators[:, [arm]] * with_intercept for arm in range(arms.count)])
    what = "the observation model (logistic regression of having an outcome on X within each arm)"
    check_full_rank(design, [f"{arm}:{name}" for arm in arms.names for name in ["Intercept", *names]], what)
    complete = [name for arm, name in enumerate(arms.names) if observed[arms.codes == arm].all()]
    if complete:
        raise ValueError(
            f"every outcome of arm(s) {complete} is observed, so {what} has no finite fit; pass the "
            "known observed_prob, or drop X to treat outcomes as missing completely at random within arm."
        )
    fit, rows = glm_fit(Binomial(), design, observed.astype(float), what=what)
    # psi_i = H^-1 x_i (R_i - pi_i) with H the mean Hessian (the bread is the inverse summed Hessian)
    model = ObservationModel(fit.params, rows.scores @ (fit.bread * observed.shape[0]), design)
    warn_small_probabilities(model.probability[observed])
    return model


def warn_small_probabilities(probability: np.ndarray) -> None:
    """Warn when observed units have observation probabilities below 0.05 (inverse weights above 20)."""
    smallest = float(probability.min())
    if smallest < SMALL_OBSERVATION_PROBABILITY:
        warnings.warn(
            f"some observed units have observation probabilities as small as {smallest:.3g}; their inverse "
            "weights dominate IPW and AIPW, whose intervals may then be unreliable.",
            PPIWarning,
            stacklevel=5,
        )


def subset_means(v: np.ndarray, subset: np.ndarray, arms: Arms) -> tuple[ArmMeans, np.ndarray]:
    """Mean of ``v`` over the units of ``subset`` in each arm, and each arm's subset size.

    Rows ``(n / n_sa) 1{i in subset, A_i = a} (v_i - vbar_sa)``; an arm with no unit
    in the subset gets mean 0 and zero rows.
    """
    n = v.shape[0]
    counts = np.bincount(arms.codes[subset], minlength=arms.count)
    safe = np.maximum(counts, 1)
    means = np.bincount(arms.codes[subset], weights=v[subset], minlength=arms.count) / safe
    scale = np.where(subset, n / safe[arms.codes], 0.0) * (v - means[arms.codes])
    return ArmMeans(means, arms.indicators() * scale[:, None], None), counts


def ppi_parts(
    y: np.ndarray, score: np.ndarray, observed: np.ndarray, arms: Arms
) -> tuple[ArmMeans, ArmMeans, np.ndarray]:
    """Outcomes missing completely at random within arm.

    Returns the observed outcomes' arm means, the score's gap ``mbar_obs - mbar_missing``
    per arm (zero where an arm has nothing to predict) and which arms have units
    to predict; ``theta(lam) = outcome - lam * gap``.
    """
    outcome, _ = subset_means(y, observed, arms)
    labeled, _ = subset_means(score, observed, arms)
    unlabeled, missing_counts = subset_means(score, ~observed, arms)
    predicted = missing_counts > 0
    gap = ArmMeans(
        np.where(predicted, labeled.values - unlabeled.values, 0.0),
        (labeled.rows - unlabeled.rows) * predicted,
    )
    return outcome, gap, predicted


def weighted_parts(
    y: np.ndarray,
    score: np.ndarray,
    observed: np.ndarray,
    arms: Arms,
    probability: np.ndarray,
    model: ObservationModel | None = None,
) -> tuple[ArmMeans, ArmMeans]:
    """Outcomes missing at random given covariates and arm, with observation probabilities.

    Parameters
    ----------
    y, score : (n,) arrays
        Outcomes (any value where missing) and prognostic score.
    observed : (n,) bool array
    arms : Arms
    probability : (n,) array
        Each unit's probability of having its outcome observed.
    model : ObservationModel, optional
        The logistic fit that produced ``probability``, with its influence rows;
        its estimation enters the rows.

    Returns
    -------
    outcome, gap : ArmMeans
        ``b_w(y)`` per arm and ``b_w(m) - b_all(m)``; ``theta(lam) = outcome - lam * gap``.

    Notes
    -----
    With ``w_i = R_i / pi_i``, arm ``a`` of ``n_a`` units and ``wbar_a`` the arm's mean
    weight, the Hajek mean ``b_w(v)`` solves ``sum_{i in a} w_i (v_i - b) = 0``. With
    fitted probabilities ``pi_i = expit(x_i' g)`` its linearisation is::

        b_w - b ~ [ mean_{i in a} w_i (v_i - b) - D_a' (g_hat - g) ] / wbar_a,
        D_a = mean_{i in a} w_i (1 - pi_i) (v_i - b) x_i,

    and ``g_hat - g ~ mean_i H^-1 x_i (R_i - pi_i)`` over all units: the rows of the
    stacked M-estimator (Robins, Rotnitzky & Zhao 1994; Tsiatis 2006, ch. 9).
    """
    n = y.shape[0]
    weight = np.where(observed, 1.0 / probability, 0.0)
    codes, indicators = arms.codes, arms.indicators()
    total = np.bincount(codes, weights=weight, minlength=arms.count)
    mean_weight = total / arms.sizes

    def hajek(v: np.ndarray) -> ArmMeans:
        means = np.bincount(codes, weights=weight * v, minlength=arms.count) / total
        centred = v - means[codes]
        rows = indicators * (n * weight * centred / total[codes])[:, None]
        if model is not None:
            tilt = weight * (1.0 - probability) * centred
            slopes = (model.design * tilt[:, None]).T @ indicators / arms.sizes
            rows = rows - model.influence @ slopes / mean_weight
        return ArmMeans(means, rows)

    outcome = hajek(np.where(observed, y, 0.0))
    weighted_score = hajek(score)
    everyone = np.bincount(codes, weights=score, minlength=arms.count) / arms.sizes
    everyone_rows = indicators * ((score - everyone[codes]) / arms.shares[codes])[:, None]
    gap = ArmMeans(weighted_score.values - everyone, weighted_score.rows - everyone_rows)
    return outcome, gap


def tuned_arm_lambdas(outcome: ArmMeans, gap: ArmMeans, active: np.ndarray) -> np.ndarray:
    """Per arm, the lambda minimising the variance of ``outcome - lam * gap``, clipped to [0, 1].

    ``cov(r^y, r^g) / var(r^g)`` from the rows (PPI++'s tuning); arms that are not
    ``active`` (nothing to predict) get NaN.
    """
    lam = np.full(outcome.values.shape[0], np.nan)
    if not active.any():
        return lam
    a, g = outcome.rows[:, active], gap.rows[:, active]
    diagonal = lambda matrix: np.diagonal(matrix)[:, None, None]  # noqa: E731
    components = PPIComponents(
        var_y=diagonal(mean_covariance(a)),
        cov_yf=diagonal(mean_covariance(a, g)),
        var_f=diagonal(mean_covariance(g)),
        var_fu=np.zeros((int(active.sum()), 1, 1)),
    )
    lam[active] = components.tuned_lambda(per_coefficient=True)[:, 0]
    return lam
