"""Prediction-powered regression: OLS, logistic and Poisson (canonical-link GLMs)."""

from __future__ import annotations


from .data import as_variable, check_full_rank, match_columns
from .families import Binomial, Family, Gaussian, Poisson as PoissonFamily
from .fitting import MEstimate, fit_glm, grouped_scores
from .model import PPIModel


class RegressionModel(PPIModel):
    """Prediction-powered GLM with canonical link (base of OLS, Logit, Poisson).

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units.
    X : array-like or DataFrame, shape (n, p)
        Labeled design. No intercept is added (as in statsmodels); add a column of
        ones, or use the formula interface (``ppinfer.ols`` etc.), which adds one.
    yhat : array-like, shape (n,)
        Predictions for the labeled units.
    X_unlabeled : array-like or DataFrame, shape (N, p)
        Unlabeled design, with the columns of ``X`` (matched by name for DataFrames).
    yhat_unlabeled : array-like, shape (N,)
        Predictions for the unlabeled units.
    weights, weights_unlabeled : array-like, optional
        Row weights of each sample (e.g. survey weights).
    label_prob : array-like, optional
        Known probability with which each labeled unit was chosen for labeling
        from all units (labeled and unlabeled): the labeled fits are weighted by
        ``1 / label_prob`` and the prediction fit uses every unit (active or
        stratified labeling; Zrnic & Candes 2024, Egami et al. 2023).
    groups, groups_unlabeled : array-like, optional
        Cluster labels for cluster-robust standard errors (with the small-sample
        factor G / (G - 1)); a label present in both samples is one cluster.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default), or drop them from every
        array of their sample (cluster labels and weights included).

    ``yhat`` and ``yhat_unlabeled`` with K columns are K synthetic draws per
    unit: their row mean is the prediction, and the summary reports the variance
    gained over a single draw.

    Notes
    -----
    The plug-in ("predict-then-debias") estimator of METHODS.md, section 2::

        theta(lam) = b(X, y) + lam * (b(X_unlabeled, yhat_unlabeled) - b(X, yhat))

    ``b(X, v)`` is the (quasi-)likelihood fit of ``v`` on ``X``. Its variance uses
    the influence rows ``psi_i = H^-1 x_i (v_i - mu(x_i' b))`` of each fit::

        V(lam) = Cov(psi^y - lam psi^yhat) / n + lam^2 Cov(psi^unlabeled) / N

    ``lam=None`` with ``method="ppi++"`` minimises the trace of ``V``;
    ``lam="per-coefficient"`` minimises each diagonal entry. ``method="classical"``
    is the labeled-only fit with HC0 standard errors (identical to statsmodels'
    ``cov_type="HC0"``). For OLS with lambda = 1 the estimate equals
    ``OLS(X_unlabeled, yhat_unlabeled) + OLS(X, y - yhat)`` (Angelopoulos et al. 2023).
    """

    _family: Family = Gaussian()
    _outcome_kind = "outcome"

    def __init__(
        self,
        y,
        X,
        yhat,
        X_unlabeled,
        yhat_unlabeled,
        *,
        weights=None,
        weights_unlabeled=None,
        label_prob=None,
        groups=None,
        groups_unlabeled=None,
        strata=None,
        strata_unlabeled=None,
        stratum_weights=None,
        missing: str = "raise",
    ):
        outcome = as_variable(y, "y", ndim=1, default_name="y")
        design = as_variable(X, "X", ndim=2, default_name="x")
        self._setup(
            {"y": outcome, "X": design, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {
                "X_unlabeled": match_columns(design, as_variable(X_unlabeled, "X_unlabeled", ndim=2, default_name="x")),
                "yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat"),
            },
            missing=missing,
            groups=groups,
            groups_unlabeled=groups_unlabeled,
            weights=weights,
            weights_unlabeled=weights_unlabeled,
            label_prob=label_prob,
            strata=strata,
            strata_unlabeled=strata_unlabeled,
            stratum_weights=stratum_weights,
        )
        self._family.check_outcome(self.labeled["y"], "y")
        self._family.check_prediction(self.labeled["yhat"], "yhat")
        self._family.check_prediction(self.unlabeled["yhat_unlabeled"], "yhat_unlabeled")
        check_full_rank(self.labeled["X"], design.names, "X")
        check_full_rank(self.unlabeled["X_unlabeled"], design.names, "X_unlabeled")
        self.param_names = design.names
        self.endog_name = outcome.names[0]

    def _estimate_on(self, blocks, *, start=None, keep_influence=False, what="fit") -> MEstimate:
        codes, ngroups = self._clusters_for(blocks)
        designs = {"labeled": self.labeled["X"], "unlabeled": self.unlabeled["X_unlabeled"]}
        return fit_glm(
            self._family,
            [(designs[sample], response) for sample, response, _, _ in blocks],
            start=start,
            keep_influence=keep_influence,
            weights=[b[2] for b in blocks],
            groups=codes if codes[0] is not None else None,
            ngroups=ngroups,
            what=f"{what} ({self._title})",
        )

    def _grouped_scores(self, sample, response, params, weights, codes, ngroups):
        X = self.labeled["X"] if sample == "labeled" else self.unlabeled["X_unlabeled"]
        return grouped_scores(response, params, codes, ngroups, family=self._family, X=X, weights=weights)

    @classmethod
    def from_formula(
        cls, formula: str, data, unlabeled, yhat, yhat_unlabeled=None, *, missing: str = "raise", **options
    ):
        """Build the model from a formula; see :func:`ppinfer.ols`."""
        from .formula import design_from_formula

        arguments = design_from_formula(
            formula, data, unlabeled, yhat, yhat_unlabeled, missing=missing,
            function=f"ppinfer.{cls.__name__.lower()}", **options,
        )
        return cls(**arguments)


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
