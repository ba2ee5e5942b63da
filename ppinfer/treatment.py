"""Treatment effects in randomised trials, with a prognostic model's predictions.

A two-arm randomised trial gives an outcome ``y``, the assignment ``treatment``
(1 treated, 0 control), optional baseline covariates ``X`` and, optionally, a
prognostic score: a prediction of the outcome from baseline data made by a model
trained *outside* the trial (historical controls, a registry, an earlier trial).
Randomisation makes the score's arm difference zero in expectation, so using the
score never biases the estimate; it only removes outcome variance, and the
intervals and tests stay valid whatever the model's quality.

Two designs are recognised when the model is built:

* complete outcomes: ``"dm"``, ``"ancova"``, ``"lin"``, ``"procova"``, ``"ppct"`` and
  ``"aipw"``, each an M-estimator whose influence rows (rescaled to the chosen HC
  variant) give its variance, written once in :mod:`ppinfer.covariance`;
* outcomes missing for some units (``y`` NaN) but predicted by the score: each arm
  is a prediction-powered mean (:class:`ppinfer.Mean`), ``"ppi++"``, ``"ppi"``,
  ``"dm"`` (complete cases) or ``"naive"``, and the effect is their difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import patsy

from ._options import choose, reject_unknown_keywords
from .covariance import HC_TYPES, PPIComponents, hc_influence, ols_leverage, variance_of_mean
from .data import MISSING_OPTIONS, Variable, as_variable, check_binary, check_full_rank, make_sample
from .families import Gaussian
from .fitting import fit_glm, fit_mean
from .mean import Mean
from .model import lambda_rule
from .results import PPIResults, WaldInference

#: accepted spellings of each method
METHODS = {
    "dm": "dm",
    "difference-in-means": "dm",
    "difference_in_means": "dm",
    "unadjusted": "dm",
    "classical": "dm",
    "ancova": "ancova",
    "lin": "lin",
    "procova": "procova",
    "ppct": "ppct",
    "aipw": "aipw",
    "ppi++": "ppi++",
    "ppipp": "ppi++",
    "ppi_plusplus": "ppi++",
    "ppi": "ppi",
    "naive": "naive",
}

#: methods of each design, in the order of :meth:`TreatmentEffect.compare`
COMPLETE_METHODS = ("dm", "ancova", "lin", "procova", "ppct", "aipw")
MISSING_OUTCOME_METHODS = ("dm", "ppi", "ppi++", "naive")
#: methods that take ``lam``
TUNED_METHODS = ("ppct", "ppi++")

#: how ``"lin"``'s variance treats the covariates' centring mean (see :class:`TreatmentEffect`)
LIN_VARIANCES = ("superpopulation", "conditional")

#: default heteroskedasticity-consistent variant (see :class:`TreatmentEffect`)
DEFAULT_COV_TYPE = "HC2"

PARAM_NAME = "ate"


@dataclass(frozen=True)
class _Estimate:
    """A treatment-effect estimate and its influence rows.

    ``rows`` are mean-zero and rescaled so that ``variance_of_mean(rows)`` is the
    estimate's variance under the chosen HC variant.
    """

    value: float
    rows: np.ndarray

    @property
    def variance(self) -> float:
        return float(variance_of_mean(self.rows[:, None])[0, 0])


class TreatmentEffect:
    """Average treatment effect in a two-arm randomised trial, with a prognostic score.

    Parameters
    ----------
    y : array-like or pandas Series, shape (n,)
        Outcomes. With a ``prognostic`` score, NaN outcomes mark units whose outcome
        is missing but predicted (see "Missing outcomes" below).
    treatment : array-like, shape (n,)
        Assignment, 1 (or True) for treated and 0 for control.
    X : array-like or DataFrame, shape (n, k), optional
        Prespecified baseline covariates for ``"ancova"``, ``"lin"`` and ``"procova"``.
        No intercept column: the methods add their own.
    prognostic : array-like, shape (n,), optional
        Prognostic score ``m(x_i)``: each unit's outcome as predicted from baseline
        data by a model trained on data *outside* this trial (historical controls,
        registries, an earlier trial). It must not be fitted on this trial's
        outcomes: the estimators' validity rests on the score being a fixed function
        of baseline data. See the Examples for how to produce one.
    propensity : float or array-like, optional
        Known randomisation probability P(treatment = 1), used by ``"aipw"``: one
        number, or one per unit (stratified designs). Default: the observed treated
        fraction.
    cov_type : {"HC0", "HC1", "HC2", "HC3"}
        Heteroskedasticity-consistent (sandwich) variant of every regression-based
        variance; default ``"HC2"``. See Notes.
    lin_variance : {"superpopulation", "conditional"}
        ``"superpopulation"`` (default) adds to ``"lin"``'s sandwich the variance of
        the covariates' centring mean (Ye et al. 2022), needed when effects vary
        with ``X``; ``"conditional"`` treats that mean as fixed and equals
        statsmodels' HC variance of the interacted regression exactly.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values in ``treatment``, ``X``, ``prognostic`` (or
        ``y`` without a score): raise (default), or drop them from every array.

    Notes
    -----
    With ``n1`` treated and ``n0`` control units, ``A`` the assignment and ``m`` the
    score, the estimators are (METHODS.md, section 5):

    * ``"dm"``: ``Ybar1 - Ybar0``, the coefficient of ``A`` in the OLS of ``Y`` on
      ``(1, A)``; with HC2 its variance is exactly ``s1^2/n1 + s0^2/n0`` with
      unbiased within-arm variances (Neyman's variance; HC0 uses 1/n_k instead).
    * ``"ancova"``: coefficient of ``A`` in the OLS of ``Y`` on ``(1, A, X)``.
    * ``"lin"``: coefficient of ``A`` in the OLS of ``Y`` on ``(1, A, Xc, A Xc)``,
      ``Xc = X - mean(X)`` centred at the pooled mean (Lin 2013).
    * ``"procova"``: ANCOVA with the score as a covariate, on ``(1, A, m[, X])``
      (Schuler et al. 2022).
    * ``"ppct"`` (Poulet et al. 2025)::

          tau(lam) = mean_T(Y - lam m) - mean_C(Y - lam m)
          V(lam)   = s2_T(Y - lam m)/n1 + s2_C(Y - lam m)/n0
          lam_hat  = (cov_T(Y, m)/n1 + cov_C(Y, m)/n0) / (s2_T(m)/n1 + s2_C(m)/n0)

      which is the PPI combination ``b_Y + lam (0 - b_m)`` of the difference in means
      of ``Y`` and of ``m``, whose "unlabeled" counterpart is 0 with no variance
      (randomisation makes the score's arm difference zero in expectation); the
      variance and the tuning are :class:`ppinfer.covariance.PPIComponents`'s, and
      the tuned lambda is clipped to [0, 1] as everywhere in ppinfer.
    * ``"aipw"`` with known propensity ``pi`` and one score in both arms::

          phi_i = A_i (Y_i - m_i)/pi_i - (1 - A_i)(Y_i - m_i)/(1 - pi_i),
          tau = mean(phi),  V = s2(phi)/n.

      With a known ``pi`` the variance is that of an intercept-only regression of
      ``phi`` (HC1 and HC2 give ``s2`` with ``n - 1``); it is exact under Bernoulli
      randomisation and conservative when the arm sizes are fixed. Without one,
      ``pi = n1/n`` is estimated: the estimate is then ``mean_T(Y - m) - mean_C(Y - m)``
      (``"ppct"`` with lambda 1) and its variance, that of the joint M-estimator of
      ``pi`` and ``tau``, is the difference-in-means variance of ``Y - m``. AIPW trusts
      the score fully: a poor score can make it less precise than ``"dm"``, which
      ``"ppct"``'s tuned lambda avoids.

    Variances. Each method's influence rows are rescaled to the chosen HC variant
    (:func:`ppinfer.covariance.hc_influence`), so ``"ancova"`` and ``"procova"``
    reproduce statsmodels' ``OLS(...).fit(cov_type=cov_type)`` exactly. The FDA
    guidance (2023) asks for "a robust standard error method such as the
    Huber-White sandwich" whenever the model has no treatment-by-covariate
    interactions (nominal OLS errors are acceptable only under 1:1 allocation) and,
    for models with interactions, robust methods that cover them (Ye et al. 2022).
    The default HC2 is a Huber-White sandwich with MacKinnon and White's leverage
    correction: it makes the unadjusted analysis the familiar Neyman/Welch
    variance exactly, is unbiased under homoskedasticity, and is what Lin (2013)
    and Imbens & Kolesar (2016) advise for small trials; HC0 is the plain
    sandwich, HC3 the more conservative jackknife-like variant.

    For ``"lin"`` the sandwich of the interacted regression treats the centring
    mean ``mean(X)`` as fixed and so misses, when effects vary with ``X``, the term
    ``(b1 - b0)' Cov(X) (b1 - b0) / n`` (``b1 - b0`` the interaction
    coefficients). Following the FDA's pointer to Ye et al. (2022) for models with
    interactions, ppinfer adds the influence rows ``(b1 - b0)'(x_i - mean(X))`` of the
    centring, giving the sandwich of the joint M-estimator (centring means and
    regression); the point estimate equals statsmodels', the variance is
    statsmodels' HC variance plus that term (and a sample cross term that vanishes
    asymptotically). ``lin_variance="conditional"`` leaves the term out. With
    strongly varying effects (2:1 allocation, 3000 replications) the conditional
    variance rejected a true effect 12.9% of the time at nominal 5%, the
    superpopulation one 4.4%.

    Missing outcomes. When ``prognostic`` is given and some ``y`` are NaN, units
    without an outcome enter as unlabeled units of their arm, each arm's mean is a
    prediction-powered mean (:class:`ppinfer.Mean`) of the observed outcomes with
    the score as the prediction, and ``tau = theta_1 - theta_0`` with variance the
    sum of the arms' (independent) variances. This assumes that outcomes are
    missing completely at random within each arm (an endpoint read by a model for
    a random subset, not dropout). The variances there use ``ppinfer.Mean``'s 1/n
    normalisation and ``cov_type`` is not used. To analyse complete cases with a
    score instead, drop the units without an outcome before building the model.

    References
    ----------
    FDA (2023). Adjusting for Covariates in Randomized Clinical Trials for Drugs and
    Biological Products. Guidance for Industry, U.S. Food and Drug Administration.

    Lin, W. (2013). Agnostic notes on regression adjustments to experimental data:
    reexamining Freedman's critique. *Annals of Applied Statistics* 7(1), 295-318.

    Schuler, A., Walsh, D., Hall, D., Walsh, J., Fisher, C. (2022). Increasing the
    efficiency of randomized trial estimates via linear adjustment for a prognostic
    score. *The International Journal of Biostatistics* 18(2), 329-356.

    Poulet, P.-E., Tran, M., Tezenas du Montcel, S., Dubois, B., Durrleman, S.,
    Jedynak, B. (2025). Prediction-powered inference for clinical trials:
    application to linear covariate adjustment. *BMC Medical Research Methodology*
    25, 204.

    Ye, T., Shao, J., Yi, Y., Zhao, Q. (2022). Toward better practice of covariate
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
    >>> x = rng.normal(size=(200, 2)); arm = rng.permutation(np.repeat([0, 1], 100))
    >>> y = x @ [1.0, 0.5] + 0.3 * arm + rng.normal(size=200)
    >>> score = model.predict(sm.add_constant(x))
    >>> te = ppinfer.TreatmentEffect(y, arm, X=x, prognostic=score)
    >>> res = te.fit(method="ppct")
    >>> res.conf_int()                                          # doctest: +SKIP
    >>> te.compare()                                            # doctest: +SKIP
    """

    _title = "Average treatment effect"

    def __init__(
        self,
        y,
        treatment,
        X=None,
        prognostic=None,
        propensity=None,
        *,
        cov_type: str = DEFAULT_COV_TYPE,
        lin_variance: str = "superpopulation",
        missing: str = "raise",
    ):
        self.cov_type = choose(cov_type, HC_TYPES, "cov_type")
        self.lin_variance = choose(lin_variance, LIN_VARIANCES, "lin_variance")
        missing = choose(missing, MISSING_OPTIONS, "missing")
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        variables = {"y": outcome, "treatment": as_variable(treatment, "treatment", ndim=1, default_name="treatment")}
        if X is not None:
            variables["X"] = as_variable(X, "X", ndim=2, default_name="x")
        if prognostic is not None:
            variables["prognostic"] = as_variable(prognostic, "prognostic", ndim=1, default_name="prognostic")
        propensity_value = self._propensity_variable(propensity)
        if isinstance(propensity_value, Variable):
            variables["propensity"] = propensity_value
        observed = None
        if prognostic is not None:
            # a NaN outcome with a score is a unit to predict, not a row to raise on or drop
            observed = ~np.isnan(outcome.values)
            variables["y"] = Variable(np.where(observed, outcome.values, 0.0), outcome.names, outcome.index)
        sample = make_sample(variables, missing=missing, label="trial")
        self.sample = sample
        self.observed = np.ones(sample.nobs, dtype=bool) if observed is None else (
            observed if sample.kept is None else observed[sample.kept]
        )
        self.endog_name = outcome.names[0]
        self.treatment_name = sample.names("treatment")[0]
        self.covariate_names = sample.names("X") if "X" in sample else []
        check_binary(sample["treatment"], "treatment")
        self._check_arms()
        #: the known randomisation probability of each unit, or None (estimated by n1 / n)
        self.propensity = None
        if isinstance(propensity_value, Variable):
            self._check_propensity(sample["propensity"])
            self.propensity = sample["propensity"]
        elif propensity_value is not None:
            self.propensity = np.full(sample.nobs, propensity_value)

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
                "propensity must be the randomisation probability P(treatment = 1), strictly between "
                f"0 and 1; found {int(bad.sum())} value(s) outside (first: {values[first]!r})."
            )

    def _check_arms(self) -> None:
        treated = self.sample["treatment"] == 1
        what = "observed outcome(s)" if self.missing_outcomes else "unit(s)"
        for arm, in_arm in (("treated", treated), ("control", ~treated)):
            count = int((in_arm & self.observed).sum())
            if count < 2:
                raise ValueError(
                    f"treatment has {count} {arm} {what}; each arm needs at least 2 to estimate "
                    "its mean and variance. Check the coding of treatment (1 = treated, 0 = control)."
                )

    # -- the data --------------------------------------------------------------------
    @property
    def missing_outcomes(self) -> bool:
        """Whether some units have no outcome but a prognostic score (the missing-outcome design)."""
        return not self.observed.all()

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
        return MISSING_OUTCOME_METHODS if self.missing_outcomes else COMPLETE_METHODS

    def _unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot be fitted to this trial, or None if it can."""
        if self.missing_outcomes and method not in MISSING_OUTCOME_METHODS:
            return (
                f"some outcomes are missing ({self.nobs_unlabeled} NaN in y, predicted by the prognostic "
                f"score), so the per-arm prediction-powered means apply; drop the units without an "
                f"outcome to use {method!r} on complete cases"
            )
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
    def fit(self, *, method: str | None = None, lam=None, **unknown) -> PPIResults:
        """Estimate the average treatment effect (treated minus control).

        Parameters
        ----------
        method : str, optional
            Complete outcomes: ``"dm"``, ``"ancova"``, ``"lin"``, ``"procova"``,
            ``"ppct"`` or ``"aipw"`` (see the class Notes). Missing outcomes:
            ``"ppi++"``, ``"ppi"`` (lambda = 1), ``"dm"`` (complete cases) or
            ``"naive"`` (predictions pooled with the outcomes as if observed:
            invalid, a baseline only). Default: ``"ppi++"`` with missing outcomes,
            else ``"ppct"`` with a prognostic score, else ``"ancova"`` with
            covariates, else ``"dm"``.
        lam : float, optional
            With ``"ppct"`` or ``"ppi++"`` only: a fixed lambda instead of the tuned one.

        Returns
        -------
        PPIResults
            One parameter, ``"ate"``. ``effective_nobs`` is relative to ``"dm"``.
        """
        reject_unknown_keywords("fit", unknown, ("method", "lam"))
        method = self._default_method if method is None else choose(method, METHODS, "method")
        reason = self._unavailable(method)
        if reason is not None:
            raise ValueError(
                f"method={method!r} is not available for this trial: {reason}. "
                f"Available: {', '.join(map(repr, self.methods))}."
            )
        if lam is not None and method not in TUNED_METHODS:
            raise ValueError(
                f"lam={lam!r} conflicts with method={method!r}; lam applies only to "
                f"{' and '.join(map(repr, TUNED_METHODS))}."
            )
        rule = lambda_rule("ppi++", lam, default_tuning="overall", nparams=1) if method in TUNED_METHODS else None
        fixed = rule if isinstance(rule, np.ndarray) else None
        if self.missing_outcomes:
            return self._fit_missing(method, fixed)
        return self._fit_complete(method, fixed)

    def compare(self, *, methods=None, alpha: float = 0.05) -> pd.DataFrame:
        """Every available method side by side.

        Parameters
        ----------
        methods : sequence of str, optional
            Methods to fit; default every method available for this trial
            (:attr:`methods`) except ``"naive"``, which is invalid.
        alpha : float
            Level of the two-sided intervals.

        Returns
        -------
        pandas.DataFrame
            Indexed by method, with columns ``estimate``, ``se``, ``lower``,
            ``upper`` (the ``1 - alpha`` interval), ``pvalue`` (two-sided, of no
            effect), ``relative_efficiency`` (``Var_dm / Var_method``: how many times
            more units the difference in means would need for the same precision)
            and ``effective_n`` (``n`` times the relative efficiency).
        """
        if methods is None:
            methods = [m for m in self.methods if m != "naive"]
        elif isinstance(methods, str):
            methods = [methods]
        rows = {}
        for method in methods:
            res = self.fit(method=method)
            interval = res.conf_int(alpha)
            efficiency = res.effective_nobs.iloc[0] / res.nobs
            rows[res.method] = {
                "estimate": res.params.iloc[0],
                "se": res.bse.iloc[0],
                "lower": interval["lower"].iloc[0],
                "upper": interval["upper"].iloc[0],
                "pvalue": res.pvalues.iloc[0],
                "relative_efficiency": efficiency,
                "effective_n": res.effective_nobs.iloc[0],
            }
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "method"
        return table

    # -- complete outcomes -------------------------------------------------------------
    @cached_property
    def _dm_outcome(self) -> _Estimate:
        return self._regression_estimate(self._arm_design(), self.sample["y"], "the difference in means")

    @cached_property
    def _dm_prognostic(self) -> _Estimate:
        return self._regression_estimate(self._arm_design(), self.sample["prognostic"], "the difference in means of the score")

    def _arm_design(self, *columns: np.ndarray) -> np.ndarray:
        n = self.sample.nobs
        return np.column_stack([np.ones(n), self.sample["treatment"], *columns])

    def _regression_estimate(self, design: np.ndarray, response: np.ndarray, what: str) -> _Estimate:
        """Coefficient of the treatment (column 1) of an OLS fit, with HC-rescaled influence rows."""
        fit = fit_glm(Gaussian(), [(design, response)], keep_influence=True, what=what)
        leverage = ols_leverage(design) if self.cov_type in ("HC2", "HC3") else None
        rows = hc_influence(fit.influence, self.cov_type, leverage=leverage, nparams=design.shape[1])
        return _Estimate(float(fit.params[1]), rows[:, 1])

    def _checked(self, design: np.ndarray, extra: list[str], method: str) -> np.ndarray:
        try:
            check_full_rank(design, ["Intercept", self.treatment_name, *extra], f"the {method} design")
        except ValueError as error:
            hint = (
                " A score that is a linear function of X adds nothing to X: use 'ancova', or PROCOVA "
                "with the score alone (a TreatmentEffect without X)."
                if method == "procova" else ""
            )
            raise ValueError(f"{error}{hint}") from None
        return design

    def _estimate(self, method: str, lam: np.ndarray | None) -> tuple[_Estimate, float | None]:
        """The estimate of a complete-outcome method, and the lambda used (ppct)."""
        X = self.sample["X"] if "X" in self.sample else np.empty((self.sample.nobs, 0))
        if method == "dm":
            return self._dm_outcome, None
        if method == "ancova":
            design = self._checked(self._arm_design(X), self.covariate_names, method)
            return self._regression_estimate(design, self.sample["y"], "the ANCOVA fit"), None
        if method == "procova":
            design = self._checked(
                self._arm_design(self.sample["prognostic"], X), ["prognostic", *self.covariate_names], method
            )
            return self._regression_estimate(design, self.sample["y"], "the PROCOVA fit"), None
        if method == "lin":
            return self._lin_estimate(X), None
        if method == "ppct":
            return self._ppct_estimate(lam)
        return self._aipw_estimate(), None

    def _lin_estimate(self, X: np.ndarray) -> _Estimate:
        treatment = self.sample["treatment"]
        centred = X - X.mean(axis=0)
        names = self.covariate_names
        design = self._checked(
            self._arm_design(centred, centred * treatment[:, None]),
            [*names, *(f"{self.treatment_name}:{name}" for name in names)],
            "lin",
        )
        fit = fit_glm(Gaussian(), [(design, self.sample["y"])], keep_influence=True, what="the Lin fit")
        leverage = ols_leverage(design) if self.cov_type in ("HC2", "HC3") else None
        rows = hc_influence(fit.influence, self.cov_type, leverage=leverage, nparams=design.shape[1])[:, 1]
        # the ATE is mu1(mean X) - mu0(mean X): the centring mean's own influence enters
        # through the interaction coefficients b1 - b0 (Ye et al. 2022)
        if self.lin_variance == "conditional":
            return _Estimate(float(fit.params[1]), rows)
        interactions = fit.params[2 + X.shape[1]:]
        return _Estimate(float(fit.params[1]), rows + centred @ interactions)

    def _ppct_estimate(self, lam: np.ndarray | None) -> tuple[_Estimate, float]:
        outcome, score = self._dm_outcome, self._dm_prognostic
        components = PPIComponents(
            var_y=variance_of_mean(outcome.rows[:, None]),
            cov_yf=variance_of_mean(outcome.rows[:, None], score.rows[:, None]),
            var_f=variance_of_mean(score.rows[:, None]),
            # the score's arm difference is 0 in expectation, known exactly: no variance
            var_fu=np.zeros((1, 1)),
        )
        lam = components.tuned_lambda(per_coefficient=True) if lam is None else lam
        value = outcome.value + lam[0] * (0.0 - score.value)
        return _Estimate(value, outcome.rows - lam[0] * score.rows), float(lam[0])

    def _aipw_estimate(self) -> _Estimate:
        residual = self.sample["y"] - self.sample["prognostic"]
        if self.propensity is None:
            # pi estimated by n1 / n: the estimate is the difference in means of y - m, and
            # the joint M-estimator (pi, tau) has that difference's influence rows
            return self._regression_estimate(self._arm_design(), residual, "the AIPW fit")
        A, pi = self.sample["treatment"], self.propensity
        phi = A * residual / pi - (1.0 - A) * residual / (1.0 - pi)
        fit = fit_mean(phi, keep_influence=True)
        n = phi.shape[0]
        # the variance of a mean is that of an intercept-only regression (leverage 1/n)
        rows = hc_influence(fit.influence, self.cov_type, leverage=np.full(n, 1.0 / n), nparams=1)
        return _Estimate(float(fit.params[0]), rows[:, 0])

    def _fit_complete(self, method: str, lam: np.ndarray | None) -> PPIResults:
        estimate, lam_used = self._estimate(method, lam)
        treated = int(self.sample["treatment"].sum())
        details = [
            ("Treated / control", f"{treated} / {self.sample.nobs - treated}"),
            ("Covariance", self.cov_type),
        ]
        if method == "aipw":
            pi = self.propensity
            shown = "n1 / n" if pi is None else f"{pi[0]:.4g}" if np.all(pi == pi[0]) else "per unit"
            details.append(("Propensity", shown))
        notes = []
        if method in ("procova", "ppct", "aipw"):
            notes.append(
                "The prognostic score must come from a model trained outside this trial; "
                "the estimate is unbiased under randomisation whatever the score's quality."
            )
        if method == "lin" and self.lin_variance == "superpopulation":
            notes.append(
                "Standard error includes the variance of the covariates' centring mean (Ye et al. 2022)."
            )
        return self._results(method, estimate.value, estimate.variance, lam_used, self._dm_outcome.variance,
                             details, notes)

    # -- missing outcomes --------------------------------------------------------------
    def _arm_fit(self, in_arm: np.ndarray, method: str, lam: np.ndarray | None) -> tuple[float, float, float | None]:
        """Mean of one arm: estimate, variance and lambda (None without one)."""
        labeled = in_arm & self.observed
        unlabeled = in_arm & ~self.observed
        y, score = self.sample["y"], self.sample["prognostic"]
        if method == "dm" or not unlabeled.any():
            # no unit to predict in this arm: its mean is the observed outcomes' mean
            fit = fit_mean(y[labeled])
            return float(fit.params[0]), float(fit.covariance[0, 0]), None
        mean_model = Mean(y[labeled], score[labeled], score[unlabeled])
        res = mean_model.fit(method=method) if lam is None else mean_model.fit(method=method, lam=float(lam[0]))
        return float(res.params.iloc[0]), float(res.bse.iloc[0]) ** 2, res.lam

    def _fit_missing(self, method: str, lam: np.ndarray | None) -> PPIResults:
        treated = self.sample["treatment"] == 1
        theta1, var1, lam1 = self._arm_fit(treated, method, lam)
        theta0, var0, lam0 = self._arm_fit(~treated, method, lam)
        _, var_dm1, _ = self._arm_fit(treated, "dm", None)
        _, var_dm0, _ = self._arm_fit(~treated, "dm", None)
        count = lambda mask: int(mask.sum())  # noqa: E731
        details = [
            ("Observed T / C", f"{count(treated & self.observed)} / {count(~treated & self.observed)}"),
            ("Predicted T / C", f"{count(treated & ~self.observed)} / {count(~treated & ~self.observed)}"),
            ("Covariance", "HC0 (per-arm means)"),
        ]
        lam = None
        if method in ("ppi", "ppi++"):
            # an arm with nothing to predict has no lambda
            lam = pd.Series([lam1, lam0], index=pd.Index(["treated", "control"], name="arm"), dtype=float)
        notes = [
            "Units without an outcome enter as unlabeled units of their arm, predicted by the prognostic "
            "score; outcomes are assumed missing completely at random within each arm."
        ]
        return self._results(method, theta1 - theta0, var1 + var0, lam, var_dm1 + var_dm0, details, notes)

    # -- results -------------------------------------------------------------------------
    def _results(self, method, value, variance, lam, dm_variance, details, notes) -> PPIResults:
        params = np.array([value])
        return PPIResults(
            params=pd.Series(params, index=[PARAM_NAME], name="params"),
            inference=WaldInference(params, np.array([[variance]])),
            method=method,
            lam=lam,
            nobs=self.nobs,
            nobs_unlabeled=self.nobs_unlabeled,
            classical_bse=np.sqrt([dm_variance]),
            title=self._title,
            dep_variable=self.endog_name,
            details=details + ([("Rows dropped", str(self.sample.n_dropped))] if self.sample.n_dropped else []),
            notes=notes,
        )

    def __repr__(self) -> str:
        design = "missing outcomes" if self.missing_outcomes else "complete outcomes"
        return (
            f"<TreatmentEffect {self.endog_name!r} by {self.treatment_name!r}: n={self.sample.nobs}, "
            f"{design}, methods {', '.join(self.methods)}>"
        )


def treatment_effect(
    formula: str,
    data,
    prognostic=None,
    propensity=None,
    *,
    treatment: str | None = None,
    cov_type: str = DEFAULT_COV_TYPE,
    lin_variance: str = "superpopulation",
    missing: str = "raise",
) -> TreatmentEffect:
    """A :class:`TreatmentEffect` from a formula, ``"outcome ~ treatment + covariates"``.

    Parameters
    ----------
    formula : str
        Patsy formula. The left-hand side is the outcome. On the right, the
        treatment term is the first term (or the term named by ``treatment``); it
        must give one 0/1 column: a 0/1 or boolean column, or a two-level
        categorical coded against the control level, e.g.
        ``C(Group, Treatment("C"))``. Every other term is a baseline covariate of
        ``X``, expanded by patsy as in statsmodels (categoricals get reference
        coding). The formula's intercept is ignored: the methods add their own.
    data : pandas.DataFrame
        The trial, one row per randomised unit.
    prognostic : str or array-like, optional
        The prognostic score: a column of ``data`` or one value per row.
    propensity : float, str or array-like, optional
        Known randomisation probability: a number, a column of ``data`` or one value per row.
    treatment : str, optional
        Name of the treatment term when it is not the first one.
    cov_type, lin_variance, missing
        As in :class:`TreatmentEffect`. Rows with a missing value in a right-hand
        side variable raise or are dropped; a missing outcome with a prognostic
        score makes the unit an unlabeled unit (missing-outcome design).

    Returns
    -------
    TreatmentEffect

    Examples
    --------
    >>> te = ppinfer.treatment_effect("y ~ arm + age + C(sex)", data=trial, prognostic="score")  # doctest: +SKIP
    >>> te.fit().summary()                                                                     # doctest: +SKIP
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string like 'y ~ arm + age'; got {formula!r}.")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}.")
    frame = data.reset_index(drop=True)
    try:
        description = patsy.ModelDesc.from_formula(formula)
    except patsy.PatsyError as error:
        raise ValueError(f"could not parse formula {formula!r}: {error}") from None
    terms = [term for term in description.rhs_termlist if term != patsy.INTERCEPT]
    if not terms:
        raise ValueError(f"formula {formula!r} has no treatment term on its right-hand side.")
    names = [term.name() for term in terms]
    if treatment is None:
        treatment_term = terms[0]
    elif treatment in names:
        treatment_term = terms[names.index(treatment)]
    else:
        raise ValueError(f"treatment={treatment!r} is not a term of the formula; its terms are {names}.")
    covariate_terms = [term for term in terms if term != treatment_term]

    def build(term_list, argument):
        # rows with missing values come back as NaN rows, for TreatmentEffect's missing= handling
        try:
            matrix = patsy.dmatrix(
                patsy.ModelDesc([], [patsy.INTERCEPT, *term_list]), frame, NA_action="drop",
                return_type="dataframe",
            )
        except patsy.PatsyError as error:
            raise ValueError(f"could not build {argument} from formula {formula!r}: {error}") from None
        return matrix.drop(columns="Intercept").reindex(frame.index)

    outcome = build(description.lhs_termlist, "the outcome")
    if outcome.shape[1] != 1:
        raise ValueError(
            f"the formula's outcome must be one numeric column; patsy expanded it into {list(outcome.columns)}."
        )
    assignment = build([treatment_term], "the treatment")
    if assignment.shape[1] != 1:
        raise ValueError(
            f"the treatment term {treatment_term.name()!r} expands into {assignment.shape[1]} columns "
            f"{list(assignment.columns)}; it must give one 0/1 column (a 0/1 or boolean variable, or a "
            "two-level categorical such as C(group, Treatment('control')))."
        )
    covariates = build(covariate_terms, "the covariates") if covariate_terms else None

    def column(value, argument):
        if isinstance(value, str):
            if value not in frame.columns:
                raise ValueError(f"{argument}={value!r} is not a column of data.")
            return frame[value]
        if value is None or np.ndim(value) == 0:
            return value
        values = value.reset_index(drop=True) if isinstance(value, pd.Series) else np.asarray(value)
        if len(values) != len(frame):
            raise ValueError(f"{argument} has {len(values)} values but data has {len(frame)} rows.")
        return pd.Series(values, index=frame.index, name=argument) if not isinstance(values, pd.Series) else values

    return TreatmentEffect(
        outcome.iloc[:, 0],
        assignment.iloc[:, 0],
        X=covariates,
        prognostic=column(prognostic, "prognostic"),
        propensity=column(propensity, "propensity"),
        cov_type=cov_type,
        lin_variance=lin_variance,
        missing=missing,
    )
