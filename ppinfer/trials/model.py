"""Treatment effects in randomised trials, with a prognostic model's predictions.

A randomised trial gives an outcome ``y``, each unit's arm, optional baseline
covariates ``X`` and, optionally, a prognostic score: a prediction of the outcome
from baseline data made by a model trained *outside* the trial (historical
controls, a registry, an earlier trial). Randomisation makes the score's arm
difference zero in expectation, so using the score never biases the estimate; it
only removes outcome variance, and the intervals and tests stay valid whatever the
model's quality.

Every method estimates the arm means (risks, for a binary endpoint) with
influence rows (:mod:`ppinfer.trials.arm_means`, :mod:`ppinfer.trials.missing`);
stratified randomisation corrects the rows (:mod:`ppinfer.trials.randomisation`)
and a contrast of two arms takes them through the delta method
(:mod:`ppinfer.trials.contrasts`). Variances are ``sum r r' / n^2`` of the rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..core.covariance import PPIComponents, parse_cov_type
from ..core.families import Binomial, Gaussian, Poisson
from ..core.in_memory import refuse_streamed, refuse_streamed_design
from ..core.inference import WaldInference
from ..core.options import choose
from ..core.validation import MISSING_OPTIONS, Variable, as_variable, check_full_rank, make_sample
from ..core.warnings import FewClustersWarning
from ..designs.base import Design
from ..models.base import Estimator
from .arm_means import (
    ArmMeans,
    Clusters,
    WorkingModel,
    arm_means,
    arm_satterthwaite_df,
    augmented,
    mean_covariance,
    prognostic_score_gap,
    standardised,
)
from .arms import Arms, arm_codes
from .contrasts import COMPARISONS, Contrast, arm_pairs, choose_contrast, contrast_gradient, contrast_rows
from .design import TrialDesign, design_variables, trial_design
from .missing import (
    ObservationModel,
    fit_observation_model,
    ppi_parts,
    subset_means,
    tuned_arm_lambdas,
    warn_small_probabilities,
    weighted_parts,
)
from .randomisation import stratified_rows
from .results import TrialResults

__all__ = ["TreatmentEffect"]

#: accepted spellings of each method
METHODS = {
    "dm": "dm",
    "difference-in-means": "dm",
    "difference_in_means": "dm",
    "unadjusted": "dm",
    "classical": "dm",
    "complete-case": "dm",
    "ancova": "ancova",
    "standardised": "ancova",
    "standardized": "ancova",
    "lin": "lin",
    "anhecova": "lin",
    "procova": "procova",
    "ppct": "ppct",
    "aipw": "aipw",
    "ipw": "ipw",
    "ppi++": "ppi++",
    "ppipp": "ppi++",
    "ppi_plusplus": "ppi++",
    "ppi": "ppi",
    "naive": "naive",
}
#: how the summary names each method
METHOD_LABELS = {
    "dm": "Difference in means",
    "ancova": "ANCOVA",
    "lin": "Lin (interacted ANCOVA)",
    "procova": "PROCOVA",
    "ppct": "PPCT (PPI for trials)",
    "aipw": "AIPW",
    "ipw": "IPW",
    "ppi++": "PPI++",
    "ppi": "PPI",
    "naive": "Naive pooling",
}

#: methods of each design, in the order of :meth:`TreatmentEffect.compare`
COMPLETE_METHODS = ("dm", "ancova", "lin", "procova", "ppct", "aipw")
MCAR_METHODS = ("dm", "ppi", "ppi++", "naive")
MAR_METHODS = ("dm", "ipw", "aipw", "ppi++", "naive")
#: methods that take ``lam``
TUNED_METHODS = ("ppct", "ppi++")
#: methods fitted by standardisation over a working GLM, and the covariates they use
STANDARDISED_METHODS = ("ancova", "lin", "procova")

#: how ``"lin"``'s variance treats the covariates' centring mean (see :class:`TreatmentEffect`)
LIN_VARIANCES = ("superpopulation", "conditional")

#: working models of the standardised methods
FAMILIES = {
    "gaussian": "gaussian",
    "linear": "gaussian",
    "normal": "gaussian",
    "binomial": "binomial",
    "logistic": "binomial",
    "logit": "binomial",
    "poisson": "poisson",
    "log-linear": "poisson",
}
FAMILY_MODELS = {"gaussian": Gaussian, "binomial": Binomial, "poisson": Poisson}
FAMILY_DESCRIPTIONS = {"gaussian": "linear", "binomial": "logistic", "poisson": "Poisson (log link)"}

#: heteroskedasticity-consistent variants of trials randomised by unit, as statsmodels names them
HC_TYPES = {"hc0": "HC0", "hc1": "HC1", "hc2": "HC2", "hc3": "HC3"}
#: default heteroskedasticity-consistent variant of complete-outcome designs (see :class:`TreatmentEffect`)
DEFAULT_COV_TYPE = "HC2"
#: the missing-outcome estimators' variance (1/n normalisations throughout)
MISSING_COV_TYPE = "HC0"
#: defaults of cluster-randomised trials: complete outcomes, and missing outcomes (no leverage adjustment)
CLUSTER_COV_TYPE = "CR2"
MISSING_CLUSTER_COV_TYPE = "CR1"
#: below this many clusters, intervals need CR2 with t reference distributions
FEW_CLUSTERS = 30


@dataclass(frozen=True)
class _Estimate:
    """Contrasts of arm means: values (J,), influence rows (n, J), lambda used, t degrees of freedom."""

    arms: ArmMeans
    values: np.ndarray
    rows: np.ndarray
    lam: object
    #: degrees of freedom per contrast, or None for those of the rows (see :meth:`TreatmentEffect._df`)
    df: np.ndarray | None


class TreatmentEffect(Estimator):
    """Treatment effects in a randomised trial, with covariates and a prognostic score.

    Parameters
    ----------
    y : array-like or pandas Series, shape (n,)
        Outcomes: continuous, binary (0/1) or counts. With a ``prognostic`` score,
        NaN outcomes mark units whose outcome is missing (see "Missing outcomes").
    treatment : array-like or pandas Series, shape (n,)
        Each unit's arm, any labels. 0/1 or boolean means control/treated; any
        other coding needs ``treated`` or ``control``.
    X : array-like or DataFrame, shape (n, k), optional
        Prespecified baseline covariates for ``"ancova"``, ``"lin"`` and
        ``"procova"``, and for the observation model of missing outcomes. No
        intercept column.
    prognostic : array-like, shape (n,), optional
        Prognostic score ``m(x_i)``: each unit's outcome as predicted from baseline
        data by a model trained on data *outside* this trial. It must not be
        fitted on this trial's outcomes: the estimators' validity rests on the score
        being a fixed function of baseline data.
    propensity : float or array-like, optional
        Known randomisation probability of the treated arm, used by ``"aipw"`` in
        two-arm trials: one number, or one per unit. Default: the observed share.
    treated, control : optional
        The treated and the control arm's labels. Two arms need one of them unless
        ``treatment`` is 0/1 or boolean; more arms need ``control``.
    strata : array-like, shape (n,), optional
        Randomisation strata of a stratified (permuted-block) randomisation. The
        variances then account for the balance within strata (see Notes).
    clusters : array-like, shape (n,), optional
        Cluster of each unit, in a cluster-randomised trial: clusters (schools,
        practices, villages) are the units of randomisation, each in one arm. Every
        method's variance then sums the units' influence rows within clusters (see
        "Cluster-randomised trials").
    weights : array-like, shape (n,), optional
        Non-negative unit weights: every method then estimates weighted arm means
        (for instance ``1 / cluster size`` for the average over clusters rather than
        over units). Complete outcomes only.
    design : ppinfer.Design, optional
        The design as an object instead of ``weights``, ``clusters`` and ``strata``
        (which it may hold; ``nest=True`` if cluster labels repeat across strata).
        Other design options do not apply to a trial.
    observed_prob : array-like, shape (n,), optional
        Known probability that each unit's outcome is observed (missing outcomes
        only); see "Missing outcomes".
    family : {"gaussian", "binomial", "poisson"}, optional
        Working model of the standardised methods: linear, logistic or log-linear.
        Default ``"binomial"`` for a 0/1 outcome, else ``"gaussian"``.
    lin_variance : {"superpopulation", "conditional"}
        ``"conditional"`` leaves out of ``"lin"``'s variance the variation of the
        covariates' average: statsmodels' HC variance of the interacted regression
        for a linear working model, Ge et al.'s (2011) delta-method variance for a
        logistic one; it is too small when effects vary with the covariates.
        Default ``"superpopulation"``.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values in ``treatment``, ``X``, ``prognostic``,
        ``strata`` (or ``y`` without a score): raise (default), or drop them.
    cov_type : str, optional
        Deprecated: pass ``cov_type`` to :meth:`fit`. Still used as fit's default.

    Notes
    -----
    Arm means. With arm ``a`` of ``n_a`` units and ``pi_a = n_a / n`` the methods
    estimate each arm's mean ``p_a`` (a risk for a binary outcome):

    * ``"dm"``: the arm's sample mean.
    * ``"ancova"``, ``"lin"``, ``"procova"``: standardisation (g-computation) over a
      working GLM (``family``) of ``y`` on the arm indicators and ``X`` (``"ancova"``),
      the arm indicators, ``X`` centred and its interactions with the arms
      (``"lin"``, Lin 2013; ANHECOVA), or the arm indicators, the score and ``X``
      (``"procova"``, Schuler et al. 2022): ``p_a = mean_i mu(z_i(a)' b)``. For the
      identity link, the difference of two arms is the arm's regression
      coefficient (statsmodels' ``OLS``).
    * ``"ppct"`` (Poulet et al. 2025): ``p_a = mean_a(y - lam m) + lam mbar``; the
      difference of two arms is ``mean_T(Y - lam m) - mean_C(Y - lam m)`` with
      ``lam`` tuned to minimise the contrast's estimated variance (clipped to
      [0, 1]; one ``lam`` for all contrasts), so that ``lam = 0`` (``"dm"``) is
      among the candidates.
    * ``"aipw"``: ``p_a = mean(1{A=a}(y - m)/pi_a + m)`` with the known randomisation
      probability; without one, ``pi_a = n_a/n`` and this is ``"ppct"`` at
      ``lam = 1``. AIPW trusts the score fully: a poor score can make it less
      precise than ``"dm"``.

    Contrasts (``fit(contrast=...)``): differences ``p_t - p_c``, ratios ``p_t / p_c``
    (risk ratios), odds ratios and the logs of the ratios, each by the delta method
    from the arm means' joint influence rows. Their logs are better behaved in
    small samples: ratios' intervals are symmetric on the ratio scale. Tests are
    against no effect: 0 for differences and logs, 1 for ratios.

    Variances. Each method's arm means are an M-estimator; its influence rows give
    the variance. For a standardised method they are those of the joint
    estimator of the working model's coefficients ``b`` and the arm means::

        r_ia = G_a' H^-1 z_i (y_i - mu_i) + (mu_i(a) - p_a),  G_a = mean_i mu'_i(a) z_i(a),

    asymptotically ``1{A_i=a}(y_i - mu_i)/pi_a + mu_i(a) - p_a``, the influence
    function of Ge et al. (2011) plus the covariates' variation, as in Ye,
    Bannick, Yi & Shao (2023) and R's beeca ("Ye") and RobinCar2; valid whether or
    not the working model is right. The residual part of each row is rescaled to
    the ``cov_type`` variant by its (GLM) leverage, so ``"ancova"`` and
    ``"procova"`` with a linear working model reproduce statsmodels'
    ``OLS(...).fit(cov_type=cov_type)`` exactly and ``"dm"`` with HC2 is Neyman's
    ``s1^2/n1 + s0^2/n0``. The FDA guidance (2023) asks for a robust (Huber-White)
    variance; the default HC2 adds MacKinnon and White's leverage correction, as
    Lin (2013) and Imbens & Kolesar (2016) advise for small trials.

    Stratified randomisation. With ``strata``, the rows ``r_i`` are replaced by
    ``r_i - sum_b (1{A_i=b} - pi_b) M_b(Z_i)``, ``M_b(z)`` the mean row of arm ``b`` in
    stratum ``z``: permuted blocks within strata remove the arms' chance imbalance
    within strata, whose variance simple-randomisation rows count (Bugni, Canay &
    Shaikh 2018; Ye, Shao, Yi & Zhao 2023); deviations from the estimated cell
    (arm and stratum) means are inflated by ``n_c / (n_c - 1)``. Without ``strata``
    the variance is conservative when the outcome varies between strata, unless
    the working model has arm-specific stratum effects (``"lin"`` with the strata
    as covariates, for which the correction changes little).

    Missing outcomes. When ``prognostic`` is given and some ``y`` are NaN, each
    arm's mean is a prediction-powered mean of the observed outcomes with the
    score as the prediction (:mod:`ppinfer.trials.missing`):

    * with neither ``X`` nor ``observed_prob``, outcomes are taken to be missing
      completely at random within each arm: methods ``"ppi++"``, ``"ppi"``,
      ``"dm"`` (complete cases) and ``"naive"`` (predictions pooled with the
      outcomes as if observed; invalid, a baseline only);
    * with ``observed_prob``, or with ``X`` (a logistic regression of having an
      outcome on ``X`` within each arm estimates the probabilities, and its
      estimation enters the variance), outcomes may be missing at random given
      the covariates and arm: ``"ipw"`` (inverse probability weighting),
      ``"aipw"`` (augmented with the score), ``"ppi++"`` (lambda tuned per arm;
      ``lam = 0`` is IPW, 1 AIPW), and the complete-case ``"dm"`` and ``"naive"``,
      which are biased when missingness depends on the covariates.

    Variances there use 1/n normalisations (HC0).

    Cluster-randomised trials. With ``clusters``, the rows of the ``G`` clusters are
    the totals ``T_g`` of their units' rows and the variance is ``c sum_g T_g T_g' / n^2``
    (the cluster-robust sandwich; statsmodels' ``OLS(...).fit(cov_type="cluster")``
    for ``"ancova"`` up to its ``(n - 1) / (n - p)`` factor). ``cov_type="CR2"``
    (default) adjusts the residual part of cluster ``g``'s rows by ``(I - H_gg)^(-1/2)``,
    ``H_gg`` its block of the working model's hat matrix (Bell & McCaffrey 2002;
    Pustejovsky & Tipton 2018), so that ``"dm"`` divides each arm's cluster totals
    by ``(1 - W_g / W_a)^(1/2)``; ``"CR1"`` takes ``c = G / (G - 1)``; ``"CR0"`` neither.
    With ``use_t`` (the default with clusters) intervals use t distributions with
    Bell and McCaffrey's Satterthwaite degrees of freedom for CR2 (``G - 2`` for a
    difference in means with equal cluster sizes) and ``G - K`` (``K`` arms)
    otherwise. Clusters randomised within strata: the strata correction below
    acts on the clusters' rows, with each arm's share of the clusters as its
    randomisation probability. Missing outcomes take ``"CR1"`` (default) or ``"CR0"``.

    References
    ----------
    Bell, R. M., McCaffrey, D. F. (2002). Bias reduction in standard errors for linear
    regression with multi-stage samples. *Survey Methodology* 28(2), 169-181.

    Bugni, F. A., Canay, I. A., Shaikh, A. M. (2018). Inference under covariate-adaptive
    randomization. *JASA* 113, 1784-1796.

    FDA (2023). Adjusting for Covariates in Randomized Clinical Trials for Drugs and
    Biological Products. Guidance for Industry.

    Ge, M., Durham, L. K., Meyer, R. D., Xie, W., Thomas, N. (2011). Covariate-adjusted
    difference in proportions from clinical trials using logistic regression and
    weighted risk differences. *Drug Information Journal* 45, 481-493.

    Lin, W. (2013). Agnostic notes on regression adjustments to experimental data:
    reexamining Freedman's critique. *Annals of Applied Statistics* 7(1), 295-318.

    Pustejovsky, J. E., Tipton, E. (2018). Small-sample methods for cluster-robust
    variance estimation and hypothesis testing in fixed effects models. *Journal of
    Business & Economic Statistics* 36(4), 672-683.

    Poulet, P.-E., Tran, M., Tezenas du Montcel, S., Dubois, B., Durrleman, S.,
    Jedynak, B. (2025). Prediction-powered inference for clinical trials:
    application to linear covariate adjustment. *BMC Medical Research Methodology* 25, 204.

    Schuler, A., Walsh, D., Hall, D., Walsh, J., Fisher, C. (2022). Increasing the
    efficiency of randomized trial estimates via linear adjustment for a prognostic
    score. *The International Journal of Biostatistics* 18(2), 329-356.

    Ye, T., Bannick, M., Yi, Y., Shao, J. (2023). Robust variance estimation for
    covariate-adjusted unconditional treatment effect in randomized clinical
    trials with binary outcomes. *Statistical Theory and Related Fields* 7(2), 159-163.

    Ye, T., Shao, J., Yi, Y., Zhao, Q. (2023). Toward better practice of covariate
    adjustment in analyzing randomized clinical trials. *JASA* 118, 2370-2382.

    Examples
    --------
    A prognostic score comes from a model fitted on data kept apart from the trial,
    here historical control patients, then applied to the trial's baseline data:

    >>> import numpy as np, statsmodels.api as sm, ppinfer
    >>> rng = np.random.default_rng(1)
    >>> x_hist = rng.normal(size=(500, 2))                       # historical controls
    >>> y_hist = x_hist @ [1.0, 0.5] + rng.normal(size=500)
    >>> model = sm.OLS(y_hist, sm.add_constant(x_hist)).fit()   # any ML model works
    >>> x = rng.normal(size=(200, 2))
    >>> arm = rng.permutation(np.repeat(["placebo", "active"], 100))
    >>> y = x @ [1.0, 0.5] + 0.3 * (arm == "active") + rng.normal(size=200)
    >>> score = model.predict(sm.add_constant(x))
    >>> te = ppinfer.TreatmentEffect(y, arm, X=x, prognostic=score, treated="active")
    >>> res = te.fit(method="ppct")
    >>> res.params.index.tolist()
    ['active - placebo']
    >>> bool(res.conf_int().loc["active - placebo", "lower"] > 0)
    True

    A cluster-randomised trial: 20 practices randomised, their patients analysed
    (cluster-robust CR2 variance and Bell-McCaffrey t intervals by default):

    >>> practice = np.repeat(np.arange(20), 10)
    >>> arm = np.repeat(rng.permutation(np.repeat([0, 1], 10)), 10)
    >>> y = rng.normal(size=20)[practice] + 0.5 * arm + rng.normal(size=200)
    >>> res = ppinfer.TreatmentEffect(y, arm, clusters=practice).fit(method="dm")
    >>> res.cov_type, res.use_t, bool(res.df["ate"] < 20)
    ('CR2', True, True)
    """

    _title = "Average treatment effect"

    METHODS = METHODS
    METHOD_LABELS = METHOD_LABELS

    def __init__(
        self,
        y: ArrayLike,
        treatment: ArrayLike,
        X: ArrayLike | None = None,
        prognostic: ArrayLike | None = None,
        propensity: float | ArrayLike | None = None,
        *,
        treated: Any = None,
        control: Any = None,
        strata: ArrayLike | None = None,
        clusters: ArrayLike | None = None,
        weights: ArrayLike | None = None,
        design: Design | None = None,
        observed_prob: ArrayLike | None = None,
        family: str | None = None,
        lin_variance: str = "superpopulation",
        missing: str = "raise",
        cov_type: str | None = None,
    ):
        spec = trial_design("TreatmentEffect", design, weights=weights, clusters=clusters, strata=strata)
        for value, name in ((y, "y"), (treatment, "treatment"), (X, "X"), (prognostic, "prognostic"),
                            (propensity, "propensity"), (observed_prob, "observed_prob")):
            refuse_streamed(value, name, "TreatmentEffect", what="the trial")
        refuse_streamed_design(spec.options, spec.names, "TreatmentEffect", what="the trial")
        self.cov_type = DEFAULT_COV_TYPE
        if cov_type is not None:
            warnings.warn(
                "TreatmentEffect(cov_type=...) is deprecated; pass cov_type to fit(), as in statsmodels. "
                "It is used as fit()'s default for now.",
                FutureWarning,
                stacklevel=2,
            )
            if "clusters" in spec.options:
                raise ValueError("with clusters, pass cov_type to fit() ('CR2', the default, 'CR1' or 'CR0').")
            self.cov_type = choose(cov_type, HC_TYPES, "cov_type")
        self.lin_variance = choose(lin_variance, LIN_VARIANCES, "lin_variance")
        missing = choose(missing, MISSING_OPTIONS, "missing")
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        if isinstance(treatment, pd.DataFrame) and treatment.shape[1] == 1:
            treatment = treatment.iloc[:, 0]
        if np.ndim(treatment) != 1:
            raise ValueError(f"treatment must be one label per unit; got shape {np.shape(treatment)}.")
        labels = treatment if isinstance(treatment, pd.Series) else pd.Series(np.asarray(treatment, dtype=object))
        codes, arm_labels, binary_coded = arm_codes(labels, treated=treated, control=control)
        variables = {
            "y": outcome,
            "treatment": Variable(
                codes, [str(labels.name) if labels.name is not None else "treatment"],
                labels.index if isinstance(treatment, pd.Series) else None,
            ),
        }
        if X is not None:
            variables["X"] = as_variable(X, "X", ndim=2, default_name="x")
        if prognostic is not None:
            variables["prognostic"] = as_variable(prognostic, "prognostic", ndim=1, default_name="prognostic")
        propensity_value = self._propensity_variable(propensity)
        if isinstance(propensity_value, Variable):
            variables["propensity"] = propensity_value
        columns = design_variables(spec)
        variables.update(columns.variables)
        if observed_prob is not None:
            variables["observed_prob"] = as_variable(
                observed_prob, "observed_prob", ndim=1, default_name="observed_prob"
            )
        observed = None
        if prognostic is not None:
            # a NaN outcome with a score is a unit to predict, not a row to raise on or drop
            observed = ~np.isnan(outcome.values)
            variables["y"] = Variable(np.where(observed, outcome.values, 0.0), outcome.names, outcome.index)
        sample = make_sample(variables, missing=missing, label="trial")
        #: every randomised unit (those without an outcome too); ``labeled`` for the estimator base
        self.sample = self.labeled = sample
        self.observed = np.ones(sample.nobs, dtype=bool) if observed is None else (
            observed if sample.kept is None else observed[sample.kept]
        )
        self.arms = Arms(arm_labels, sample["treatment"].astype(np.intp), binary_coded)
        self.endog_name = outcome.names[0]
        self.treatment_name = sample.names("treatment")[0]
        self.covariate_names = sample.names("X") if "X" in sample else []
        self._check_arms()
        self.design = TrialDesign.bind(spec, columns, sample, self.arms)
        if self.design.weights is not None and self.missing_outcomes:
            raise ValueError(
                "weights apply to complete outcomes; with missing outcomes (NaN in y, predicted by the prognostic "
                "score) the per-arm prediction-powered means are unweighted. Drop the weights, or the units "
                "without an outcome."
            )
        #: the known randomisation probability of the treated arm per unit, or None (n1 / n)
        self.propensity = None
        if propensity is not None and self.arms.count != 2:
            raise ValueError(
                f"propensity applies to two-arm trials; treatment has {self.arms.count} arms. Leave it out: "
                "'aipw' then uses each arm's observed share."
            )
        if isinstance(propensity_value, Variable):
            self._check_propensity(sample["propensity"])
            self.propensity = sample["propensity"]
        elif propensity_value is not None:
            self.propensity = np.full(sample.nobs, propensity_value)
        self.observed_prob = self._checked_observed_prob(observed_prob)
        self.family = self._choose_family(family)
        self.param_names = []  # the parameters are contrasts, named by each fit
        self._cache: dict = {}

    #: constructor options that :meth:`from_formula` passes on as they are
    FORMULA_OPTIONS = ("treated", "control", "family", "lin_variance", "missing", "cov_type")

    @classmethod
    def from_formula(
        cls,
        formula: str,
        data,
        prognostic=None,
        propensity=None,
        *,
        treatment: str | None = None,
        strata=None,
        clusters=None,
        weights=None,
        design: Design | None = None,
        observed_prob=None,
        **options,
    ) -> "TreatmentEffect":
        """A :class:`TreatmentEffect` from a formula, ``"outcome ~ arm + covariates"``.

        Parameters
        ----------
        formula : str
            Patsy formula. The left-hand side is the outcome. On the right, the
            treatment term is the first term (or the term named by ``treatment``): a
            column of arm labels (``arm``), or a categorical expression such as
            ``C(group, Treatment("placebo"))``, whose reference level is then the
            control. Every other term is a baseline covariate of ``X``, expanded by
            patsy as in statsmodels (categoricals get reference coding). The
            formula's intercept is ignored: the methods add their own.
        data : pandas.DataFrame
            The trial, one row per randomised unit.
        prognostic : str or array-like, optional
            The prognostic score: a column of ``data`` or one value per row.
        propensity : float, str or array-like, optional
            Known randomisation probability of the treated arm: a number, a column of
            ``data`` or one value per row.
        treatment : str, optional
            Name of the treatment term when it is not the first one.
        strata, clusters, weights, observed_prob : str or array-like, optional
            Randomisation strata, clusters (units randomised by cluster), unit
            weights, and known observation probabilities of the outcomes: columns of
            ``data`` or one value per row.
        design : ppinfer.Design, optional
            The design (``weights``, ``clusters``, ``strata``) as an object, its
            options given as column names of ``data`` or arrays.
        **options
            ``treated``, ``control``, ``family``, ``lin_variance``, ``missing``,
            ``cov_type``: as in :class:`TreatmentEffect`. Rows with a missing value in
            a right-hand side variable raise or are dropped (``missing``); a missing
            outcome with a prognostic score makes the unit one whose outcome is
            predicted.

        Returns
        -------
        TreatmentEffect

        Examples
        --------
        >>> import numpy as np, pandas as pd, ppinfer
        >>> rng = np.random.default_rng(0)
        >>> trial = pd.DataFrame({"arm": rng.permutation(np.repeat(["placebo", "active"], 50)),
        ...                       "age": rng.normal(60, 8, 100)})
        >>> trial["y"] = 1.0 * (trial["arm"] == "active") + 0.05 * trial["age"] + rng.normal(size=100)
        >>> te = ppinfer.treatment_effect("y ~ arm + age", data=trial, treated="active")
        >>> res = te.fit(method="ancova")
        >>> res.params.index.tolist()
        ['active - placebo']
        """
        from ..core.formula import trial_arguments

        unknown = {key: value for key, value in options.items() if key not in cls.FORMULA_OPTIONS}
        cls._reject_unknown("treatment_effect", unknown, ("prognostic", "propensity", "treatment", "strata",
                                                          "clusters", "weights", "design", "observed_prob",
                                                          *cls.FORMULA_OPTIONS))
        spec = trial_design("treatment_effect", design, weights=weights, clusters=clusters, strata=strata)
        refuse_streamed(data, "data", "treatment_effect", target="a pandas DataFrame", what="the trial", paths=True)
        for value, name in ((prognostic, "prognostic"), (propensity, "propensity"), (observed_prob, "observed_prob")):
            refuse_streamed(value, name, "treatment_effect", what="the trial")
        refuse_streamed_design(spec.options, spec.names, "treatment_effect", what="the trial")
        arguments, coded_control = trial_arguments(
            formula, data, treatment=treatment, design=spec,
            columns={"prognostic": prognostic, "propensity": propensity, "observed_prob": observed_prob},
        )
        if options.get("control") is None and options.get("treated") is None:
            options["control"] = coded_control
        return cls(arguments.pop("y"), arguments.pop("treatment"), **arguments, **options)

    # -- validation ----------------------------------------------------------------
    @staticmethod
    def _propensity_variable(propensity):
        if propensity is None:
            return None
        if np.ndim(propensity) == 0 and not isinstance(propensity, (pd.Series, pd.DataFrame)):
            value = as_variable([propensity], "propensity", ndim=1, default_name="propensity").values[0]
            TreatmentEffect._check_propensity(np.array([value]))
            return float(value)
        return as_variable(propensity, "propensity", ndim=1, default_name="propensity")

    @staticmethod
    def _check_propensity(values: np.ndarray) -> None:
        bad = ~((values > 0.0) & (values < 1.0))
        if bad.any():
            first = np.flatnonzero(bad)[0]
            raise ValueError(
                "propensity must be the randomisation probability of the treated arm, strictly between "
                f"0 and 1; found {int(bad.sum())} value(s) outside (first: {values[first]!r})."
            )

    def _check_arms(self) -> None:
        what = "observed outcome(s)" if self.missing_outcomes else "unit(s)"
        counts = np.bincount(self.arms.codes[self.observed], minlength=self.arms.count)
        for name, count in zip(self.arms.names, counts):
            if count < 2:
                raise ValueError(
                    f"arm {name!r} of treatment has {count} {what}; each arm needs at least 2 to estimate its "
                    f"mean and variance. Check the coding of treatment (arms: {list(self.arms.labels)})."
                )

    def _checked_observed_prob(self, observed_prob) -> np.ndarray | None:
        if observed_prob is None:
            return None
        if not self.missing_outcomes:
            raise ValueError(
                "observed_prob is the probability that a unit's outcome is observed; it applies when some "
                "outcomes are missing (NaN in y) and a prognostic score predicts them. Every outcome is "
                "observed here (or no prognostic score was given)."
            )
        values = self.sample["observed_prob"]
        bad = ~((values > 0.0) & (values <= 1.0))
        if bad.any():
            first = np.flatnonzero(bad)[0]
            raise ValueError(
                f"observed_prob must lie in (0, 1]; found {int(bad.sum())} value(s) outside (first: "
                f"{values[first]!r} at position {first})."
            )
        warn_small_probabilities(values[self.observed])
        return values

    def _choose_family(self, family) -> str:
        outcomes = self.sample["y"][self.observed]
        if family is None:
            return "binomial" if np.all((outcomes == 0) | (outcomes == 1)) else "gaussian"
        name = choose(family, FAMILIES, "family")
        FAMILY_MODELS[name]().check_outcome(outcomes, "y")
        return name

    # -- the data --------------------------------------------------------------------
    @property
    def missing_outcomes(self) -> bool:
        """Whether some units have no outcome but a prognostic score (the missing-outcome design)."""
        return not self.observed.all()

    @property
    def missingness(self) -> str:
        """How outcomes are missing: ``"complete"`` (none are), ``"mcar"`` (completely at random
        within arm: no covariates nor known probabilities) or ``"mar"`` (at random given the
        covariates and arm)."""
        if not self.missing_outcomes:
            return "complete"
        return "mar" if self.observed_prob is not None or "X" in self.sample else "mcar"

    @property
    def nobs(self) -> int:
        """Units with an observed outcome."""
        return int(self.observed.sum())

    @property
    def nobs_unlabeled(self) -> int:
        """Units without an outcome (predicted by the score)."""
        return int((~self.observed).sum())

    @property
    def methods(self) -> tuple[str, ...]:
        """Methods available for this trial's data, in the order of :meth:`compare`."""
        return tuple(m for m in self._design_methods if self._unavailable(m) is None)

    @property
    def _design_methods(self) -> tuple[str, ...]:
        return {"complete": COMPLETE_METHODS, "mcar": MCAR_METHODS, "mar": MAR_METHODS}[self.missingness]

    def _unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot be fitted to this trial, or None if it can."""
        if self.missing_outcomes and method not in self._design_methods:
            if method in COMPLETE_METHODS:
                return (
                    f"some outcomes are missing ({self.nobs_unlabeled} NaN in y, predicted by the prognostic "
                    f"score), so the per-arm prediction-powered means apply; drop the units without an "
                    f"outcome to use {method!r} on complete cases"
                )
            return f"{method!r} belongs to the other missing-outcome design (see TreatmentEffect's Notes)"
        if not self.missing_outcomes and method not in COMPLETE_METHODS:
            return (
                f"{method!r} applies when some outcomes are missing (NaN in y) and predicted by the "
                "prognostic score; every outcome is observed here (use 'ppct' for the score)"
            )
        if method in ("ancova", "lin") and "X" not in self.sample:
            return f"{method!r} adjusts for baseline covariates; pass X"
        if method in ("procova", "ppct", "aipw") and "prognostic" not in self.sample:
            return f"{method!r} uses the prognostic score; pass prognostic"
        return None

    @property
    def _default_method(self) -> str:
        if self.missing_outcomes:
            return "ppi++"
        if "prognostic" in self.sample:
            return "ppct"
        return "ancova" if "X" in self.sample else "dm"

    # -- fitting ---------------------------------------------------------------------
    def fit(
        self,
        *,
        method: str | None = None,
        contrast: str = "diff",
        comparisons: str = "control",
        lam: float | None = None,
        cov_type: str | None = None,
        use_t: bool | None = None,
        **unknown,
    ) -> TrialResults:
        """Estimate treatment effects: contrasts of arm means.

        Parameters
        ----------
        method : str, optional
            Complete outcomes: ``"dm"``, ``"ancova"``, ``"lin"``, ``"procova"``,
            ``"ppct"`` or ``"aipw"``. Missing outcomes: ``"ppi++"``, ``"ppi"``,
            ``"dm"``, ``"naive"`` (completely at random within arm) or ``"ppi++"``,
            ``"ipw"``, ``"aipw"``, ``"dm"``, ``"naive"`` (at random given
            covariates). See the class Notes. Default: ``"ppi++"`` with missing
            outcomes, else ``"ppct"`` with a prognostic score, else ``"ancova"``
            with covariates, else ``"dm"``.
        contrast : {"diff", "rr", "or", "logrr", "logor"}
            Difference of arm means, their ratio (risk ratio), odds ratio, or the
            log of either ratio.
        comparisons : {"control", "pairwise"}
            With more than two arms: every arm against the control (default) or
            every pair of arms.
        lam : float, optional
            With ``"ppct"`` or ``"ppi++"`` only: a fixed lambda instead of the tuned one.
        cov_type : {"HC0", "HC1", "HC2", "HC3"} or, with clusters, {"CR0", "CR1", "CR2"}, optional
            Variant of the sandwich variance; default ``"HC2"`` (the constructor's
            deprecated ``cov_type`` if given), ``"CR2"`` with clusters. Missing-outcome
            designs use HC0 (``"CR1"`` or ``"CR0"`` with clusters).
        use_t : bool, optional
            Intervals and p-values from t distributions: ``n - p`` degrees of freedom
            for the standardised methods (``p`` coefficients of the working model),
            ``n - 1`` for ``"aipw"`` with a known propensity, and Welch-Satterthwaite
            degrees of freedom over the arms for ``"dm"``, ``"ppct"`` and ``"aipw"``;
            with clusters, Bell and McCaffrey's degrees of freedom (CR2) or ``G - K``.
            Default False, True with clusters. Complete outcomes only.

        Returns
        -------
        TrialResults
            One parameter per contrast, named by the arms (``"active - placebo"``;
            ``"ate"`` for the difference of a 0/1 assignment).
            ``effective_nobs`` is relative to ``"dm"``.

        Examples
        --------
        A binary endpoint, standardised over a logistic working model:

        >>> import numpy as np, ppinfer
        >>> rng = np.random.default_rng(2)
        >>> x = rng.normal(size=400)
        >>> arm = rng.permutation(np.repeat(["placebo", "active"], 200))
        >>> risk = 1 / (1 + np.exp(-(-1.0 + x - 0.6 * (arm == "active"))))
        >>> y = (rng.random(400) < risk).astype(float)
        >>> te = ppinfer.TreatmentEffect(y, arm, X=x, treated="active")
        >>> res = te.fit(method="ancova", contrast="rr")
        >>> res.params.index.tolist(), res.contrast.null
        (['active / placebo'], 1.0)
        >>> res.arm_means.index.tolist()
        ['placebo', 'active']
        """
        self._reject_unknown("fit", unknown, ("method", "contrast", "comparisons", "lam", "cov_type", "use_t"))
        method = self._default_method if method is None else self._method(method)
        reason = self._unavailable(method)
        if reason is not None:
            raise ValueError(
                f"method={method!r} is not available for this trial: {reason}. "
                f"Available: {', '.join(map(repr, self.methods))}."
            )
        contrast = choose_contrast(contrast)
        comparisons = choose(comparisons, COMPARISONS, "comparisons")
        cov_type = self._choose_cov_type(cov_type)
        lam = self._fixed_lambda(lam, method)
        if use_t is None:
            use_t = self.design.clustered and not self.missing_outcomes
        if not isinstance(use_t, (bool, np.bool_)):
            raise TypeError(f"use_t must be True or False; got {use_t!r}.")
        if use_t and self.missing_outcomes:
            raise ValueError(
                "use_t=True applies to complete-outcome designs; the missing-outcome estimators use normal "
                "intervals (use_t=False)."
            )
        pairs = arm_pairs(self.arms.count, comparisons)
        self._warn_few_clusters(cov_type, bool(use_t))
        estimate = self._estimate(method, contrast, pairs, lam, cov_type)
        return self._results(method, contrast, pairs, estimate, cov_type, bool(use_t))

    def compare(
        self,
        *,
        methods=None,
        contrast: str = "diff",
        comparisons: str = "control",
        alpha: float = 0.05,
        cov_type: str | None = None,
        use_t: bool | None = None,
    ) -> pd.DataFrame:
        """Every available method side by side.

        Parameters
        ----------
        methods : sequence of str, optional
            Methods to fit; default every method available for this trial
            (:attr:`methods`) except ``"naive"``, which is invalid.
        contrast, comparisons, cov_type, use_t
            As in :meth:`fit`.
        alpha : float
            Level of the two-sided intervals.

        Returns
        -------
        pandas.DataFrame
            Indexed by method (and by contrast when there are several), with
            columns ``estimate``, ``se``, ``lower``, ``upper`` (the ``1 - alpha``
            interval), ``pvalue`` (two-sided, of no effect), ``relative_efficiency``
            (``Var_dm / Var_method``: how many times more units the difference in
            means would need for the same precision) and ``effective_n`` (``n``
            times the relative efficiency).

        Examples
        --------
        >>> import numpy as np, ppinfer
        >>> rng = np.random.default_rng(3)
        >>> x = rng.normal(size=200); arm = rng.permutation(np.repeat([0, 1], 100))
        >>> y = x + 0.5 * arm + rng.normal(size=200)
        >>> table = ppinfer.TreatmentEffect(y, arm, X=x).compare()
        >>> table.index.tolist()
        ['dm', 'ancova', 'lin']
        """
        if methods is None:
            methods = [m for m in self.methods if m != "naive"]
        elif isinstance(methods, str):
            methods = [methods]
        frames = {}
        for method in methods:
            res = self.fit(method=method, contrast=contrast, comparisons=comparisons, cov_type=cov_type, use_t=use_t)
            interval = res.conf_int(alpha)
            frames[res.method] = pd.DataFrame({
                "estimate": res.params,
                "se": res.bse,
                "lower": interval["lower"],
                "upper": interval["upper"],
                "pvalue": res.pvalues,
                "relative_efficiency": res.effective_nobs / res.nobs,
                "effective_n": res.effective_nobs,
            })
        table = pd.concat(frames, names=["method", "contrast"])
        if table.index.get_level_values("contrast").nunique() == 1:
            table = table.droplevel("contrast")
        return table

    def _choose_cov_type(self, cov_type) -> str:
        if self.design.clustered:
            if cov_type is None:
                return MISSING_CLUSTER_COV_TYPE if self.missing_outcomes else CLUSTER_COV_TYPE
            name = parse_cov_type(cov_type, clustered=True)
            if name == "CR2" and self.missing_outcomes:
                raise ValueError(
                    "cov_type='CR2' adjusts a working regression's residuals; the missing-outcome estimators have "
                    "none. Use 'CR1' (the default) or 'CR0'."
                )
            return name
        if self.missing_outcomes:
            if cov_type is not None and choose(cov_type, HC_TYPES, "cov_type") != MISSING_COV_TYPE:
                raise ValueError(
                    f"cov_type={cov_type!r}: the missing-outcome estimators' variances use 1/n normalisations "
                    f"({MISSING_COV_TYPE}); leave cov_type out."
                )
            return MISSING_COV_TYPE
        return self.cov_type if cov_type is None else choose(cov_type, HC_TYPES, "cov_type")

    def _warn_few_clusters(self, cov_type: str, use_t: bool) -> None:
        """FewClustersWarning when a trial with few clusters is analysed without CR2 and t intervals."""
        G = self.design.nclusters
        if G and G < FEW_CLUSTERS and not (cov_type == "CR2" and use_t):
            warnings.warn(
                f"the trial has {G} clusters: cluster-robust standard errors with normal intervals (or without "
                "CR2) can be too small. Prefer cov_type='CR2' with use_t=True (the defaults).",
                FewClustersWarning,
                stacklevel=3,
            )

    @staticmethod
    def _fixed_lambda(lam, method: str) -> float | None:
        if lam is None:
            return None
        if method not in TUNED_METHODS:
            raise ValueError(
                f"lam={lam!r} conflicts with method={method!r}; lam applies only to "
                f"{' and '.join(map(repr, TUNED_METHODS))}."
            )
        if isinstance(lam, bool) or np.ndim(lam) != 0:
            raise TypeError(f"lam must be one number (or None for the tuned lambda); got {lam!r}.")
        try:
            value = float(lam)
        except (TypeError, ValueError):
            raise TypeError(f"lam must be one number (or None for the tuned lambda); got {lam!r}.") from None
        if not np.isfinite(value):
            raise ValueError(f"lam must be finite; got {lam!r}.")
        return value

    # -- arm means -------------------------------------------------------------------
    def _arm_means(self, name: str, cov_type: str) -> ArmMeans:
        """Arm means of one estimator (or one part of one), with the rows of the units of
        randomisation (clusters' totals in a cluster-randomised trial), corrected for strata; cached."""
        key = (name, cov_type)
        if key not in self._cache:
            estimate = self._compute_arm_means(name, cov_type)
            design = self.design
            if design.clustered:
                rows = design.cluster_rows(estimate.rows)
                if cov_type == "CR1":
                    rows = rows * np.sqrt(design.nclusters / (design.nclusters - 1.0))
                estimate = estimate.with_rows(rows)
            if design.strata is not None:
                estimate = estimate.with_rows(stratified_rows(estimate.rows, design.unit_arms(self.arms),
                                                              design.unit_strata(), design.stratum_labels))
            self._cache[key] = estimate
        return self._cache[key]

    def _compute_arm_means(self, name: str, cov_type: str) -> ArmMeans:
        y, arms = self.sample["y"], self.arms
        if self.missing_outcomes:
            return self._missing_arm_means(name)
        design = {"weights": self.design.weights, "clusters": self._clusters}
        if name == "dm":
            return arm_means(y, arms, cov_type, **design)
        if name == "score gap":
            return prognostic_score_gap(self.sample["prognostic"], arms, cov_type, **design)
        if name == "aipw":
            return augmented(y, self.sample["prognostic"], arms, self.propensity, cov_type, **design)
        model = self._working_model(name)
        return standardised(
            model, y, arms, cov_type, conditional=name == "lin" and self.lin_variance == "conditional",
            what=f"the {name} working model", clusters=self._clusters,
        )

    @property
    def _clusters(self) -> Clusters | None:
        design = self.design
        return Clusters(design.clusters, design.nclusters) if design.clustered else None

    def _working_model(self, method: str) -> WorkingModel:
        X = self.sample["X"] if "X" in self.sample else np.empty((self.sample.nobs, 0))
        names = list(self.covariate_names)
        if method == "procova":
            X = np.column_stack([self.sample["prognostic"], X])
            names = ["prognostic", *names]
        model = WorkingModel(FAMILY_MODELS[self.family](), X, interacted=method == "lin", weights=self.design.weights)
        design = model.design(self.arms.codes, self.arms.count)
        arm_names = [f"{self.treatment_name}[{name}]" for name in self.arms.names]
        try:
            check_full_rank(design, model.column_names(arm_names, names), f"the {method} design")
        except ValueError as error:
            hint = (
                " A score that is a linear function of X adds nothing to X: use 'ancova', or PROCOVA "
                "with the score alone (a TreatmentEffect without X)."
                if method == "procova" else ""
            )
            raise ValueError(f"{error}{hint}") from None
        return model

    def _missing_arm_means(self, name: str) -> ArmMeans:
        y, score, observed, arms = self.sample["y"], self.sample["prognostic"], self.observed, self.arms
        if name == "dm":
            return subset_means(y, observed, arms)[0]
        if name == "naive":
            return subset_means(np.where(observed, y, score), np.ones_like(observed), arms)[0]
        if self.missingness == "mcar":
            outcome, gap, _ = ppi_parts(y, score, observed, arms)
        else:
            outcome, gap = weighted_parts(y, score, observed, arms, self.observation_probability,
                                          self._observation_model)
        return outcome if name == "outcome" else gap

    # -- missing outcomes: the observation probabilities -----------------------------
    @property
    def observation_probability(self) -> np.ndarray | None:
        """Each unit's probability of an observed outcome: known, or fitted (``"mar"`` design)."""
        if self.missingness != "mar":
            return None
        if self.observed_prob is not None:
            return self.observed_prob
        return self._observation_model.probability

    @property
    def _observation_model(self) -> ObservationModel | None:
        """The logistic fits of having an outcome on X within each arm (``"mar"`` design without
        known probabilities); cached."""
        if self.observed_prob is not None or self.missingness != "mar":
            return None
        if "observation model" not in self._cache:
            self._cache["observation model"] = fit_observation_model(
                self.observed, self.arms, self.sample["X"], self.covariate_names
            )
        return self._cache["observation model"]

    # -- contrasts -------------------------------------------------------------------
    def _estimate(self, method, contrast: Contrast, pairs, lam, cov_type) -> _Estimate:
        if self._rectified_method(method):
            return self._rectified(method, contrast, pairs, lam, cov_type)
        arms = self._arm_means(method, cov_type)
        values, rows = self._contrast(contrast, arms, pairs)
        return _Estimate(arms, values, rows, None, None if arms.df is None else np.full(len(pairs), arms.df))

    def _rectified_method(self, method: str) -> bool:
        """Whether the method's arm means are ``outcome - lam * gap`` (with a fixed or tuned lam)."""
        if method == "aipw":
            return self.missing_outcomes or self.propensity is None
        return method in ("ppct", "ppi", "ppi++", "ipw")

    def _contrast(self, contrast: Contrast, arms: ArmMeans, pairs) -> tuple[np.ndarray, np.ndarray]:
        contrast.check(arms.values, self.arms.names)
        return contrast_rows(contrast, arms.values, arms.rows, pairs)

    def _rectified(self, method, contrast: Contrast, pairs, lam, cov_type) -> _Estimate:
        """``outcome - lam * gap``: PPCT and AIPW (complete outcomes), PPI and IPW/AIPW (missing)."""
        if self.missing_outcomes:
            outcome, gap = self._arm_means("outcome", cov_type), self._arm_means("gap", cov_type)
            active = np.abs(gap.rows).sum(axis=0) > 0
            fixed = {"ipw": 0.0, "aipw": 1.0, "ppi": 1.0}.get(method, lam)
            per_arm = tuned_arm_lambdas(outcome, gap, active) if fixed is None else np.where(active, fixed, np.nan)
            combined = outcome.minus(np.nan_to_num(per_arm), gap)
            values, rows = self._contrast(contrast, combined, pairs)
            shown = None
            if method in ("ppi", "ppi++"):
                shown = pd.Series(per_arm, index=pd.Index(self.arms.names, name="arm"), dtype=float)
            return _Estimate(combined, values, rows, shown, None)
        outcome, gap = self._arm_means("dm", cov_type), self._arm_means("score gap", cov_type)
        if method == "aipw":
            lam = 1.0
        elif lam is None:
            contrast.check(outcome.values, self.arms.names)
            _, outcome_rows = contrast_rows(contrast, outcome.values, outcome.rows, pairs)
            _, gap_rows = contrast_rows(contrast, outcome.values, gap.rows, pairs)
            components = PPIComponents(
                var_y=mean_covariance(outcome_rows),
                cov_yf=mean_covariance(outcome_rows, gap_rows),
                var_f=mean_covariance(gap_rows),
                # randomisation makes the score's arm gaps zero in expectation, known exactly
                var_fu=np.zeros((len(pairs), len(pairs))),
            )
            lam = float(components.tuned_lambda(per_coefficient=False)[0])
        combined = outcome.minus(lam, gap)
        values, rows = self._contrast(contrast, combined, pairs)
        return _Estimate(combined, values, rows, None if method == "aipw" else lam, None)

    # -- results -------------------------------------------------------------------------
    def _parameter_names(self, contrast: Contrast, pairs) -> pd.Index:
        key = ("parameter names", contrast.name, tuple(pairs))
        if key not in self._cache:
            names = self.arms.names
            if self.arms.binary_coded and contrast.name == "diff":
                self._cache[key] = pd.Index(["ate"])
            else:
                self._cache[key] = pd.Index([contrast.label(names[t], names[c]) for t, c in pairs])
        return self._cache[key]

    def _classical_bse(self, contrast: Contrast, pairs, cov_type) -> np.ndarray:
        """Standard errors of the difference in means (complete cases), for ``effective_nobs``."""
        key = ("classical", contrast.name, tuple(pairs), cov_type)
        if key not in self._cache:
            classical = self._estimate("dm", contrast, pairs, None, cov_type)
            self._cache[key] = np.sqrt(np.diag(mean_covariance(classical.rows)))
        return self._cache[key]

    def _results(self, method, contrast, pairs, estimate: _Estimate, cov_type, use_t):
        covariance = mean_covariance(estimate.rows)
        df = self._df(estimate, contrast, pairs, cov_type) if use_t else None
        return self._record(
            method=method,
            params=estimate.values,
            param_names=list(self._parameter_names(contrast, pairs)),
            inference=WaldInference(estimate.values, covariance, df),
            lam=estimate.lam,
            classical_bse=self._classical_bse(contrast, pairs, cov_type),
            details=self._details(method, contrast, cov_type, use_t),
            notes=self._notes(method, contrast),
            cov_type=cov_type,
            results=TrialResults,
            contrast=contrast,
            arm_names=self.arms.names,
            arm_values=estimate.arms.values,
            arm_covariance=mean_covariance(estimate.arms.rows),
        )

    def _df(self, estimate: _Estimate, contrast: Contrast, pairs, cov_type: str) -> np.ndarray:
        """Degrees of freedom of the contrasts' t reference distributions.

        Randomised by unit: the working regression's ``n - p``, or Welch-Satterthwaite over the
        arms when the rows are arm-wise. By cluster: Bell and McCaffrey's for CR2 (from the
        working model's cluster Hessians), else ``G - K``.
        """
        if not self.design.clustered:
            return estimate.df if estimate.df is not None else arm_satterthwaite_df(estimate.rows, self.arms)
        hat = estimate.arms.hat
        if cov_type == "CR2" and hat is not None:
            gradient = contrast_gradient(contrast, estimate.arms.values, pairs)
            return np.maximum(hat.df(gradient), 1.0)
        return np.full(len(pairs), float(self.design.nclusters - self.arms.count))

    def _details(self, method, contrast: Contrast, cov_type, use_t) -> list[tuple[str, str]]:
        arms = self.arms
        counts = np.bincount(arms.codes[self.observed], minlength=arms.count)
        if self.missing_outcomes:
            missing = np.bincount(arms.codes[~self.observed], minlength=arms.count)
            details = [("Observed / predicted",
                        ", ".join(f"{name} {n} / {m}" for name, n, m in zip(arms.names, counts, missing)))]
        elif arms.count == 2:
            shown = f"{counts[1]} / {counts[0]}"
            if not arms.binary_coded:
                shown = f"{arms.names[1]} {counts[1]} / {arms.names[0]} {counts[0]}"
            details = [("Treated / control", shown)]
        else:
            details = [("Control arm", arms.names[0]),
                       ("Arm sizes", ", ".join(f"{name} {n}" for name, n in zip(arms.names, counts)))]
        details.append(("Contrast", contrast.description))
        if method in STANDARDISED_METHODS:
            details.append(("Working model", f"{FAMILY_DESCRIPTIONS[self.family]}, standardised"))
        design = self.design
        if design.clustered:
            details.append(("Covariance", f"{cov_type} cluster ({design.nclusters} clusters)"))
        elif self.missing_outcomes:
            details.append(("Covariance", "HC0 (per-arm means)"))
        details.extend(design.describe())
        if design.strata is not None:
            details.append(("Randomisation", f"stratified by {design.strata_name} ({len(design.stratum_labels)})"))
        if use_t:
            details.append(("Reference", "t distribution"))
        if method == "aipw" and not self.missing_outcomes:
            pi = self.propensity
            shown = "n1 / n" if pi is None else f"{pi[0]:.4g}" if np.all(pi == pi[0]) else "per unit"
            details.append(("Propensity", shown))
        if self.missingness == "mar":
            details.append(("Observation prob.", "known" if self.observed_prob is not None else "logistic on X by arm"))
        return details

    def _notes(self, method, contrast: Contrast) -> list[str]:
        notes = []
        if method in ("procova", "ppct", "aipw") and not self.missing_outcomes:
            notes.append(
                "The prognostic score must come from a model trained outside this trial; "
                "the estimate is unbiased under randomisation whatever the score's quality."
            )
        if method == "lin" and self.lin_variance == "superpopulation":
            notes.append("Standard error includes the variance of the covariates' average (Ye et al. 2023).")
        if contrast.null != 0.0:
            notes.append(f"Tests and p-values are against a {contrast.description} of {contrast.null:g} (no effect).")
        if self.missingness == "mcar":
            notes.append(
                "Units without an outcome enter as unlabeled units of their arm, predicted by the prognostic "
                "score; outcomes are assumed missing completely at random within each arm."
            )
        elif self.missingness == "mar":
            notes.append(
                "Outcomes are assumed missing at random given the arm and the covariates; observed units are "
                "weighted by their inverse observation probabilities."
            )
            if method in ("dm", "naive"):
                notes.append("Complete cases ignore the covariates: biased when missingness depends on them.")
        return notes

    def __repr__(self) -> str:
        design = {"complete": "complete outcomes", "mcar": "missing outcomes (MCAR within arm)",
                  "mar": "missing outcomes (MAR given covariates)"}[self.missingness]
        return (
            f"<TreatmentEffect {self.endog_name!r} by {self.treatment_name!r} ({self.arms.count} arms, control "
            f"{self.arms.names[0]!r}): n={self.sample.nobs}, {design}, methods {', '.join(self.methods)}>"
        )
