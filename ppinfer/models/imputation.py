"""Multiple imputation of the unlabeled outcomes, combined by Rubin's rules.

The classical alternative to prediction-powered inference that users ask about:
impute the missing outcomes of the unlabeled units from a model fitted to the
labeled ones, M times with parameter draws from their posterior, analyse each
completed dataset and combine. It is valid when the imputation model is correct
and congenial with the analysis model (Meng 1994); when the imputation model
omits a variable or an interaction that the analysis model uses, the imputed
outcomes carry none of that effect and the combined estimate is biased towards
it being absent, however many imputations are made. Prediction-powered and GMM
estimators (:mod:`ppinfer.models.synthetic`) need no such model.

With a sampling design (:class:`ppinfer.Design`), each completed dataset is
analysed with the design's weights and variance (the within-imputation variance),
and the completed-data degrees of freedom are the design's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..core.families import Binomial, Gaussian
from ..core.fitting import fit_glm
from ..core.inference import WaldInference
from ..core.options import choose
from ..core.results import PPIResults
from ..core.validation import check_full_rank
from ..designs.base import LABELED, UNLABELED, Design, design_from_keywords
from .base import with_design_keywords
from .synthetic import TITLES, SyntheticModel, synthetic_data

__all__ = ["MultipleImputation", "ImputationResults", "RubinCombination", "rubin_combine"]

DF_OPTIONS = {"barnard-rubin": "barnard-rubin", "barnard_rubin": "barnard-rubin", "z": "z", "normal": "z"}


@dataclass(frozen=True)
class RubinCombination:
    """Estimates of M completed-data analyses combined by Rubin's rules.

    Attributes
    ----------
    params : (p,) array
        ``Qbar``, the mean of the M estimates.
    covariance : (p, p) array
        ``T = Ubar + (1 + 1/M) B``.
    within, between : (p, p) arrays
        ``Ubar`` (mean completed-data covariance) and ``B`` (covariance of the
        estimates across imputations, divisor M - 1).
    df : (p,) array
        Degrees of freedom of each t reference distribution (``inf``: normal).
    riv, fmi : (p,) arrays
        Relative increase in variance ``(1 + 1/M) B / Ubar`` and fraction of
        missing information ``(riv + 2 / (df + 3)) / (riv + 1)``.
    imputations : int
    """

    params: np.ndarray
    covariance: np.ndarray
    within: np.ndarray
    between: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    fmi: np.ndarray
    imputations: int


def rubin_combine(estimates: ArrayLike, covariances: ArrayLike, *, df_complete: float | None = None) -> RubinCombination:
    """Combine M completed-data estimates and covariances by Rubin's rules.

    Parameters
    ----------
    estimates : array-like, shape (M, p)
        The p estimates of each of the M completed-data analyses (M >= 2).
    covariances : array-like, shape (M, p, p)
        Their covariance matrices, one per analysis.
    df_complete : float, optional
        Degrees of freedom of the completed-data analysis (``n_complete - p``);
        None for large samples (``inf``).

    Returns
    -------
    RubinCombination

    Notes
    -----
    Rubin (1987), *Multiple Imputation for Nonresponse in Surveys*; small-sample
    degrees of freedom from Barnard & Rubin (1999, Biometrika). Per coefficient,
    with ``lambda = (1 + 1/M) B / T``::

        nu_old = (M - 1) / lambda^2
        nu_obs = (nu_com + 1) / (nu_com + 3) * nu_com * (1 - lambda)
        nu     = nu_old nu_obs / (nu_old + nu_obs)

    ``nu_old = inf`` when ``B = 0``; ``nu_obs = inf`` when ``df_complete`` is None.

    Examples
    --------
    Three imputations, two coefficients:

    >>> import numpy as np
    >>> from ppinfer import rubin_combine
    >>> estimates = [[1.0, 0.50], [1.2, 0.45], [0.9, 0.55]]
    >>> covariances = [np.diag([0.04, 0.01])] * 3
    >>> combined = rubin_combine(estimates, covariances, df_complete=100)
    >>> combined.params.round(3), np.sqrt(np.diag(combined.covariance)).round(3)
    (array([1.033, 0.5  ]), array([0.267, 0.115]))
    >>> combined.riv.round(2), combined.df.round(1)
    (array([0.78, 0.33]), array([ 8.8, 22.3]))
    """
    Q = np.asarray(estimates, dtype=float)
    U = np.asarray(covariances, dtype=float)
    if Q.ndim != 2:
        raise ValueError(f"estimates must have shape (M, p); got {Q.shape}.")
    M, p = Q.shape
    if M < 2:
        raise ValueError(f"Rubin's rules need at least 2 imputations; got {M}.")
    if U.shape != (M, p, p):
        raise ValueError(f"covariances must have shape (M, p, p) = {(M, p, p)}; got {U.shape}.")
    if df_complete is not None and not df_complete > 0:
        raise ValueError(f"df_complete must be positive; got {df_complete!r}.")
    params = Q.mean(axis=0)
    within = U.mean(axis=0)
    centred = Q - params
    between = centred.T @ centred / (M - 1)
    total = within + (1.0 + 1.0 / M) * between
    excess = (1.0 + 1.0 / M) * np.diag(between)
    riv = excess / np.diag(within)
    share = excess / np.diag(total)
    with np.errstate(divide="ignore"):
        nu_old = np.where(share > 0, (M - 1) / np.where(share > 0, share, 1.0) ** 2, np.inf)
    if df_complete is None:
        df = nu_old
    else:
        nu_obs = (df_complete + 1.0) / (df_complete + 3.0) * df_complete * (1.0 - share)
        finite = np.isfinite(nu_old)
        df = nu_obs.copy()
        df[finite] = nu_old[finite] * nu_obs[finite] / (nu_old[finite] + nu_obs[finite])
    fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return RubinCombination(params, total, within, between, df, riv, fmi, M)


class ImputationResults(PPIResults):
    """Results of :class:`MultipleImputation`.

    Attributes (beyond :class:`~ppinfer.results.PPIResults`)
    ----------
    df, riv, fmi : pandas.Series
        Barnard-Rubin degrees of freedom, relative increase in variance and
        fraction of missing information, per parameter.
    within, between : pandas.DataFrame
        Rubin's within- and between-imputation covariances.
    estimates : pandas.DataFrame
        The M completed-data estimates (one row per imputation).

    Intervals and tests use t distributions with ``df`` degrees of freedom
    (normal where ``df`` is infinite): ``tvalues`` are ``coef / std err`` and
    ``pvalues`` their t p-values.
    """

    def __init__(self, *, combination: RubinCombination, estimates: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        index = self._params.index
        self.riv = pd.Series(combination.riv, index=index, name="riv")
        self.fmi = pd.Series(combination.fmi, index=index, name="fmi")
        self.within = pd.DataFrame(combination.within, index=index, columns=index)
        self.between = pd.DataFrame(combination.between, index=index, columns=index)
        self.estimates = pd.DataFrame(estimates, columns=index)
        self.imputations = combination.imputations


class MultipleImputation(SyntheticModel):
    """Multiple imputation of the unlabeled units' outcomes, analysed with Rubin's rules.

    Parameters
    ----------
    y : array-like, shape (n,)
        Outcomes of the labeled units.
    yhat, yhat_unlabeled : array-like, shapes (n,) / (n, K) and (N,) / (N, K), or None
        Predictions (or K synthetic draws, whose row mean is used) for the labeled
        and unlabeled units; they enter the imputation model as a covariate. None
        (both) imputes from the covariates alone.
    X, X_unlabeled : array-like or DataFrame, keyword-only
        Analysis designs (no intercept added); leave out for a mean.
    estimand : {"mean", "ols", "logit", "poisson"}, optional
        The analysis model (default ``"mean"`` without designs, ``"ols"`` with them).
    imputation_X, imputation_X_unlabeled : array-like or DataFrame, optional
        Covariates of the imputation model (default: the analysis designs; for a
        mean, an intercept). The predictions are appended as a last column.
    missing : {"raise", "drop"}
    design : ppinfer.Design, optional
        The sampling design of both samples (weights, clusters, strata, fpc; see
        :class:`ppinfer.Design`; two-phase designs are not supported), or its
        options as keywords (``weights``, ``weights_unlabeled``, ``clusters``, ...).

    Notes
    -----
    Imputation model, fitted to the labeled rows with design ``W = [imputation_X,
    yhat]`` (the family of the analysis model):

    - Gaussian (mean, OLS): the normal linear model ``y = W b + N(0, s^2)`` with the
      noninformative prior ``p(b, s^2) ~ 1/s^2``. Each imputation draws
      ``s^2* = SSR / chi2_{n-q}``, ``b* ~ N(b_hat, s^2* (W'W)^-1)`` and imputes
      ``y~ = W~ b* + N(0, s^2*)`` for the unlabeled units (Rubin 1987, p. 167).
    - Binomial (logit) and Poisson: the GLM fitted by maximum likelihood;
      ``b* ~ N(b_hat, I(b_hat)^-1)`` (the normal approximation to the posterior)
      and ``y~ ~ Bernoulli(expit(W~ b*))`` or ``Poisson(exp(W~ b*))``.

    Each completed dataset (real outcomes for the n labeled units, imputed ones
    for the N unlabeled units) is analysed with the analysis model and its HC0
    covariance; the M results are combined by :func:`rubin_combine` with
    ``df_complete = n + N - p`` (Barnard & Rubin 1999) or by the normal
    distribution (``df="z"``). With a design, the analysis is weighted, its
    covariance is the design's (clusters' totals of the contributions, centred
    within strata; ``"CR1"`` with clusters) and ``df_complete`` is the number of
    clusters minus the number of strata. The imputation model stays unweighted:
    it models ``y`` given its covariates, which the design does not change.

    Validity needs the imputation model to be correct for the relations the
    analysis studies. If it omits a covariate or an interaction of the analysis
    model (an *uncongenial* imputation model, Meng 1994), the imputed outcomes do
    not vary with it and the estimate is attenuated; the between-imputation
    variance does not see the bias, so intervals undercover. These are the rules
    for imputed missing outcomes; fully synthetic data sets (Raghunathan, Reiter
    & Rubin 2003) need other combining rules.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> from ppinfer.datasets import simulate
    >>> data = simulate("ols", n=300, N=3000, seed=1)
    >>> lab, unl = data.labeled, data.unlabeled
    >>> columns = ["Intercept", "x1", "x2"]
    >>> model = ppinfer.MultipleImputation(lab["y"], lab["yhat"], unl["yhat"], X=lab[columns],
    ...                                    X_unlabeled=unl[columns])
    >>> res = model.fit(imputations=20, seed=0)
    >>> res.summary()  # doctest: +SKIP
    """

    METHODS = {"mi": "mi"}
    METHOD_LABELS = {"mi": "Multiple imputation"}

    @with_design_keywords
    def __init__(self, y: ArrayLike, yhat: ArrayLike | None = None, yhat_unlabeled: ArrayLike | None = None, *,
                 X: ArrayLike | None = None, X_unlabeled: ArrayLike | None = None, estimand: str | None = None,
                 imputation_X: ArrayLike | None = None, imputation_X_unlabeled: ArrayLike | None = None,
                 missing: str = "raise", design: Design | None = None, **design_options: Any):
        if (yhat is None) != (yhat_unlabeled is None):
            raise ValueError("give both yhat and yhat_unlabeled, or neither.")
        if (imputation_X is None) != (imputation_X_unlabeled is None):
            raise ValueError("give both imputation_X and imputation_X_unlabeled, or neither.")
        auxiliary = None
        if imputation_X is not None:
            auxiliary = (imputation_X, imputation_X_unlabeled, ("imputation_X", "imputation_X_unlabeled"))
        self._setup(synthetic_data(
            y, [] if yhat is None else yhat, [] if yhat_unlabeled is None else yhat_unlabeled,
            X=X, X_unlabeled=X_unlabeled, estimand=estimand, missing=missing,
            design=design_from_keywords("MultipleImputation", design, design_options),
            names=("yhat", "yhat_unlabeled"), auxiliary=auxiliary, estimator="MultipleImputation",
        ))
        lab, unl = self.data.labeled, self.data.unlabeled
        if auxiliary is None:
            base_lab, base_unl, names = lab["X"], unl["X"], list(self.data.param_names)
            if self.data.estimand == "mean":
                names = ["Intercept"]
        else:
            base_lab, base_unl, names = lab["W"], unl["W"], list(self.data.auxiliary_names)
        if lab["synthetic"].shape[1]:
            base_lab = np.column_stack([base_lab, lab["synthetic"].mean(axis=1)])
            base_unl = np.column_stack([base_unl, unl["synthetic"].mean(axis=1)])
            names.append("yhat")
        check_full_rank(base_lab, names, "the imputation design [imputation_X, yhat] (labeled rows)")
        self._W_lab, self._W_unl, self.imputation_names = base_lab, base_unl, names

    @cached_property
    def _imputation_fit(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Posterior centre, a square root of the posterior covariance (up to s^2) and df."""
        W, y, family = self._W_lab, self.data.labeled["y"], self.data.family
        n, q = W.shape
        if isinstance(family, Gaussian):
            if n <= q:
                raise ValueError(f"the imputation model has {q} coefficients but only {n} labeled rows.")
            Q, R = np.linalg.qr(W)
            root = np.linalg.inv(R)  # q x q: b* = b_hat + s* R^-1 e has covariance s*^2 (W'W)^-1
            centre = root @ (Q.T @ y)
            residual_ss = float(np.sum((y - W @ centre) ** 2))
            return centre, root, residual_ss
        fit = fit_glm(family, [(W, y)], what="the imputation model")
        eta = W @ fit.params
        information = (W * family.mean_derivative(eta, family.mean(eta))[:, None]).T @ W
        # b* = b_hat + L^-T e has covariance I^-1 = L^-T L^-1
        return fit.params, np.linalg.inv(np.linalg.cholesky(information).T), np.nan

    def impute(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of the unlabeled outcomes from the imputation model's posterior predictive."""
        centre, root, residual_ss = self._imputation_fit
        family, W = self.data.family, self._W_unl
        if isinstance(family, Gaussian):
            n, q = self._W_lab.shape
            scale = np.sqrt(residual_ss / rng.chisquare(n - q))
            coefficients = centre + scale * (root @ rng.standard_normal(q))
            return W @ coefficients + scale * rng.standard_normal(W.shape[0])
        coefficients = centre + root @ rng.standard_normal(centre.size)
        mean = family.mean(W @ coefficients)
        if isinstance(family, Binomial):
            return (rng.random(W.shape[0]) < mean).astype(float)
        return rng.poisson(mean).astype(float)

    def fit(self, *, imputations: int = 20, seed=None, df: str = "barnard-rubin", cov_type: str | None = None,
            **unknown) -> ImputationResults:
        """Impute, analyse each completed dataset and combine.

        Parameters
        ----------
        imputations : int
            Number of imputations M (at least 2).
        seed : int, SeedSequence or Generator, optional
        df : {"barnard-rubin", "z"}
            t reference distributions with Barnard-Rubin degrees of freedom
            (default), or the normal distribution.
        cov_type : {"HC0", "CR0", "CR1"}, optional
            The completed-data analyses' variance: ``"HC0"`` (default without
            clusters), ``"CR1"`` (default with clusters) or ``"CR0"``.

        Returns
        -------
        ImputationResults
        """
        self._reject_unknown("fit", unknown, ("imputations", "seed", "df", "cov_type"))
        df = choose(df, DF_OPTIONS, "df")
        if isinstance(imputations, bool) or not isinstance(imputations, (int, np.integer)) or imputations < 2:
            raise ValueError(f"imputations must be an integer of at least 2; got {imputations!r}.")
        cov_type = self._cov_type(cov_type)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        lab, unl, family = self.data.labeled, self.data.unlabeled, self.data.family
        classical_params, classical_covariance = self._classical(cov_type)
        estimates, covariances = [], []
        for _ in range(imputations):
            completed = self._fit(
                [(LABELED, lab["X"], lab["y"]), (UNLABELED, unl["X"], self.impute(rng))], start=classical_params,
                what="the analysis of a completed dataset",
            )
            estimates.append(completed.params)
            covariances.append(self._covariance(completed, [LABELED, UNLABELED], cov_type, pooled=True))
        p = len(self.param_names)
        df_complete = None if df == "z" else self._complete_df()
        combination = rubin_combine(estimates, covariances, df_complete=df_complete)
        if df == "z":
            combination = RubinCombination(**{**combination.__dict__, "df": np.full(p, np.inf)})
        params = combination.params
        fmi = ", ".join(f"{name} {value:.2f}" for name, value in zip(self.param_names, combination.fmi))
        notes = [
            f"Multiple imputation: {imputations} imputations of the {self.nobs_unlabeled} unlabeled outcomes from a "
            f"{'normal linear' if isinstance(family, Gaussian) else family.name} model of y on "
            f"{self.imputation_names} fitted to the labeled rows; Rubin's rules"
            + (" with Barnard-Rubin degrees of freedom (t intervals)." if df != "z" else " with normal intervals."),
            f"Fraction of missing information: {fmi}.",
            "Valid only if the imputation model is correct for what the analysis studies: an imputation model "
            "that omits a covariate or interaction of the analysis model biases its coefficient.",
        ]
        return self._record(
            method="mi",
            params=params,
            inference=WaldInference(params, combination.covariance, combination.df),
            lam=None,
            classical_bse=np.sqrt(np.diag(classical_covariance)),
            details=[("Imputations (M)", str(imputations))] + self._design_details(cov_type),
            notes=notes,
            cov_type=cov_type,
            title=f"{TITLES[self.data.estimand]}, multiple imputation",
            results=ImputationResults,
            combination=combination,
            estimates=np.array(estimates),
        )

    def _complete_df(self) -> float:
        """Degrees of freedom of a completed-data analysis: ``n + N - p``, or with clusters the
        PSUs of both samples (units without clusters are their own) minus the strata."""
        design = self.design
        if not design.clustered:
            return float(self.nobs + self.nobs_unlabeled - len(self.param_names))
        units = sum(int(design.psu_counts(sample).sum()) for sample in (LABELED, UNLABELED))
        shared = 0
        if design.labeled.psu is not None and design.unlabeled.psu is not None:
            shared = np.intersect1d(design.labeled.psu, design.unlabeled.psu).size
        return float(max(units - shared - design.nstrata, 1))
