"""Prediction-powered regression: OLS, logistic and Poisson (canonical-link GLMs)."""

from __future__ import annotations

import warnings

import numpy as np

from ..core.families import Binomial, Family, Gaussian, Poisson as PoissonFamily
from ..core.fitting import Fit, fit_glm
from ..core.validation import as_variable, check_full_rank, match_columns
from ..core.warnings import SeparationWarning
from ..designs.base import LABELED, design_from_keywords
from .base import with_design_keywords
from .ppi import PPIModel

#: fitted means this close to their bounds signal (quasi-)separation
SEPARATION_TOLERANCE = 1e-6


class RegressionModel(PPIModel):
    """Prediction-powered GLM with canonical link (base of OLS, Logit, Poisson).

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units.
    X : array-like or DataFrame, shape (n, p)
        Labeled design. No intercept is added (as in statsmodels); add a column of
        ones, or use the formula interface (``ppinfer.ols`` etc.), which adds one.
    yhat : array-like, shape (n,) or (n, K)
        Predictions for the labeled units (K columns: K synthetic draws per unit,
        whose row mean is the prediction; the summary reports the variance gained
        over a single draw).
    X_unlabeled : array-like or DataFrame, shape (N, p)
        Unlabeled design, with the columns of ``X`` (matched by name for DataFrames).
    yhat_unlabeled : array-like, shape (N,) or (N, K)
        Predictions for the unlabeled units.
    X_predicted : array-like or DataFrame, shape (n, p), optional
        Predicted covariates: the labeled units' design built from predicted
        covariate values (the values ``X_unlabeled`` holds for the unlabeled
        units), with the columns of ``X``. Give it when some covariates are
        measured only on the labeled units and predicted elsewhere (a language
        model codes the text, a classifier reads the image); columns measured on
        every unit are the same as in ``X``. Default: ``X`` (measured covariates).
    design : ppinfer.Design, optional
        The sampling design (weights, clusters, strata, fpc, two-phase labeling).
        Or give its options as keywords: ``weights``, ``weights_unlabeled``,
        ``clusters`` (alias ``groups``), ``clusters_unlabeled``
        (``groups_unlabeled``), ``strata``, ``strata_unlabeled``, ``fpc``,
        ``fpc_unlabeled``, ``label_prob``, ``label_strata``, ``stratum_weights``,
        ``nest``; see :class:`ppinfer.Design`.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default), or drop them from every
        array of their sample (design columns included).

    Notes
    -----
    The plug-in ("predict-then-debias") estimator::

        theta(lam) = b(X, y) + lam * (b(X_unlabeled, yhat_unlabeled) - b(X, yhat))

    ``b(X, v)`` is the (quasi-)likelihood fit of ``v`` on ``X``. Its variance uses
    the influence rows ``psi_i = H^-1 x_i (v_i - mu(x_i' b))`` of each fit; for two
    simple random samples::

        V(lam) = Cov(psi^y - lam psi^yhat) / n + lam^2 Cov(psi^unlabeled) / N

    and in general the design's variance of the fits' contributions
    (:class:`ppinfer.Design`). ``lam=None`` with ``method="ppi++"`` minimises the
    trace of ``V``; ``lam="per-coefficient"`` minimises each diagonal entry.
    ``method="classical"`` is the labeled-only fit; with ``cov_type="HC0"`` and
    ``use_t=False`` it is statsmodels' ``GLM(...).fit(cov_type="HC0")`` exactly
    (the defaults are the leverage-adjusted ``"HC2"`` and t intervals with
    ``n - p`` degrees of freedom). For OLS with lambda = 1 the estimate equals
    ``OLS(X_unlabeled, yhat_unlabeled) + OLS(X, y - yhat)`` (Angelopoulos et al. 2023).

    With predicted covariates (``X_predicted``) the prediction fits use the
    predicted design on both samples (predict-then-debias, Kluger et al. 2025;
    design-based supervised learning, Egami et al. 2023)::

        theta(Lambda) = b(X, y) + Lambda (b(X_unlabeled, yhat_unlabeled) - b(X_predicted, yhat))

    with the same influence-function variance, the influence rows of
    ``b(X_predicted, yhat)`` built on ``X_predicted``. ``method="naive"`` pools
    ``(X, y)`` with ``(X_unlabeled, yhat_unlabeled)``, using the predicted
    covariates as if they were measured. ``lam="matrix"`` tunes a full p x p
    ``Lambda``, which helps when a predicted covariate's error moves several
    coefficients together.
    """

    _family: Family = Gaussian()
    _default_cov_type = "HC3"

    @with_design_keywords
    def __init__(self, y, X, yhat, X_unlabeled, yhat_unlabeled, *, X_predicted=None, design=None,
                 missing: str = "raise", **design_options):
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        matrix = as_variable(X, "X", ndim=2, default_name="x")
        labeled = {"y": outcome, "X": matrix, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")}
        if X_predicted is not None:
            labeled["X_predicted"] = match_columns(
                matrix, as_variable(X_predicted, "X_predicted", ndim=2, default_name="x"), "X_predicted")
        self._setup(
            labeled,
            {
                "X_unlabeled": match_columns(matrix, as_variable(X_unlabeled, "X_unlabeled", ndim=2, default_name="x")),
                "yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat"),
            },
            missing=missing,
            design=design_from_keywords(type(self).__name__, design, design_options),
        )
        self._family.check_outcome(self.labeled["y"], "y")
        self._family.check_prediction(self.labeled["yhat"], "yhat")
        self._family.check_prediction(self.unlabeled["yhat_unlabeled"], "yhat_unlabeled")
        check_full_rank(self.labeled["X"], matrix.names, "X")
        check_full_rank(self.unlabeled["X_unlabeled"], matrix.names, "X_unlabeled")
        if X_predicted is not None:
            check_full_rank(self.labeled["X_predicted"], matrix.names, "X_predicted")
        self.param_names = matrix.names
        self.endog_name = outcome.names[0]
        self._df_params = len(matrix.names)
        self._warn_design()

    def _design_rows(self, sample: str, predicted: bool = False) -> np.ndarray:
        if sample != LABELED:
            return self.unlabeled["X_unlabeled"]
        return self.labeled["X_predicted"] if predicted and "X_predicted" in self.labeled else self.labeled["X"]

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        return fit_glm(
            self._family,
            [(self._design_rows(sample, predicted), response) for sample, response, _, _ in blocks],
            weights=[weights for _, _, weights, _ in blocks],
            collectors=[factory for _, _, _, factory in blocks],
            start=start,
            what=f"{what} ({self._title})",
            iterate=not evaluate_only,
        )

    def _fitted_values(self, fit: Fit, predicted: bool = False) -> np.ndarray:
        return self._family.mean(self._design_rows(LABELED, predicted) @ fit.params)[:, None]

    def _cached_fit_y(self) -> Fit:
        new = "fit_y" not in self._cache
        fit = super()._cached_fit_y()
        if new and not self._family.linear:
            self._check_separation(fit)
        return fit

    def _check_separation(self, fit: Fit) -> None:
        eta = self.labeled["X"] @ fit.params
        mu = self._family.mean(eta)
        bounded = isinstance(self._family, Binomial)
        near = (mu < SEPARATION_TOLERANCE) | ((1.0 - mu < SEPARATION_TOLERANCE) if bounded else False)
        if np.any(near):
            warnings.warn(
                f"{int(np.sum(near))} labeled row(s) have fitted means within {SEPARATION_TOLERANCE:g} of their "
                "bound: the outcome is (nearly) separated by the design, so the estimates and standard errors "
                "are unreliable. Drop or merge the separating covariates, or use a penalised model.",
                SeparationWarning,
                stacklevel=5,
            )

    @classmethod
    def from_formula(cls, formula: str, data, unlabeled, yhat=None, yhat_unlabeled=None, **options):
        """Build the model from a formula; see :func:`ppinfer.ols`."""
        from ..core.formula import model_arguments

        arguments, dropped = model_arguments(
            formula, data, unlabeled, yhat, yhat_unlabeled, function=f"ppinfer.{cls.__name__.lower()}", **options
        )
        model = cls(**arguments)
        model._formula_dropped = dropped
        model._design_info = arguments["X"].design_info
        return model


def _predict(model: RegressionModel, params: np.ndarray, exog) -> "pd.Series":
    """Fitted means ``mu(x' b)`` at ``exog`` (see :meth:`ppinfer.core.results.PPIResults.predict`)."""
    import pandas as pd
    import patsy

    if exog is None:
        X, index = model.labeled["X"], None
    elif isinstance(exog, pd.DataFrame) and getattr(model, "_design_info", None) is not None:
        # a formula model: the formula's variables, transformed with the labeled data's specification
        (built,) = patsy.build_design_matrices([model._design_info], exog, NA_action="raise", return_type="dataframe")
        X, index = built.to_numpy(), exog.index
    elif isinstance(exog, pd.DataFrame) and set(model.param_names) <= set(map(str, exog.columns)):
        X, index = exog[model.param_names].to_numpy(dtype=float), exog.index
    else:
        X = np.asarray(exog, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        index = exog.index if isinstance(exog, (pd.Series, pd.DataFrame)) else None
        if X.ndim != 2 or X.shape[1] != len(params):
            raise ValueError(f"exog must have the model's {len(params)} columns {model.param_names}; got shape {X.shape}.")
    return pd.Series(model._family.mean(X @ params), index=index, name="predicted")


RegressionModel.predict = lambda self, params, exog=None: _predict(self, params, exog)
RegressionModel.predict.__doc__ = "Fitted means at ``exog`` for coefficients ``params``."


class OLS(RegressionModel):
    __doc__ = "Prediction-powered ordinary least squares.\n" + RegressionModel.__doc__.split("\n", 1)[1]
    _title = "OLS"
    _family = Gaussian()


class Logit(RegressionModel):
    __doc__ = (
        "Prediction-powered logistic regression: ``y`` in {0, 1}, ``yhat`` probabilities in [0, 1].\n"
        + RegressionModel.__doc__.split("\n", 1)[1]
    )
    _title = "Logit"
    _family = Binomial()


class Poisson(RegressionModel):
    __doc__ = (
        "Prediction-powered Poisson regression (log link): ``y`` counts, ``yhat`` >= 0.\n"
        + RegressionModel.__doc__.split("\n", 1)[1]
    )
    _title = "Poisson"
    _family = PoissonFamily()
