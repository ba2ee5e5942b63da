"""Prediction-powered regression: OLS, logistic and Poisson, and any statsmodels GLM."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from dataclasses import dataclass

from ..core.families import Binomial, Family, Gaussian, GLMFamily, Poisson as PoissonFamily
from ..core.fitting import Fit, NormalEquations, fit_glm
from ..core.sources import Column, current_position, reduce_rows
from ..core.validation import (
    ChunkedInput, SampledGram, Variable, as_variable, check_full_rank, check_gram, full_rank, gram_of_rows,
    match_columns,
)
from ..core.warnings import SeparationWarning
from ..designs.base import LABELED, Design, design_from_keywords
from .base import document_design_keywords, with_design_keywords
from .mean import weights_key
from .ppi import PPIModel

if TYPE_CHECKING:
    from statsmodels.genmod.families import Family as StatsmodelsFamily

__all__ = ["OLS", "Logit", "Poisson", "GLM"]


@dataclass(frozen=True)
class _PredictionCheck:
    """A family's range check of predictions (run chunk by chunk in the scan)."""

    family: Family
    argument: str

    def __call__(self, values: np.ndarray) -> None:
        self.family.check_prediction(values, self.argument)


@dataclass(frozen=True)
class _PositiveCheck:
    """Exposures must be positive (run chunk by chunk in the scan of a sample read partition by partition)."""

    argument: str

    def __call__(self, values: np.ndarray) -> None:
        bad = values <= 0
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{self.argument} must be positive; found {int(bad.sum())} value(s) <= 0 (first: "
                f"{values[first].item()!r} at {current_position(first)})."
            )


#: fitted means this close to their bounds signal (quasi-)separation
SEPARATION_TOLERANCE = 1e-6


@document_design_keywords
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
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise (default), or drop them from every
        array of their sample (design columns included).
    [design keywords]

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
    def __init__(self, y: ArrayLike, X: ArrayLike, yhat: ArrayLike, X_unlabeled: ArrayLike,
                 yhat_unlabeled: ArrayLike, *, X_predicted: ArrayLike | None = None, design: Design | None = None,
                 missing: str = "raise", **design_options: Any):
        labeled, unlabeled = self._variables(y, X, yhat, X_unlabeled, yhat_unlabeled, X_predicted=X_predicted)
        # _setup and _warn_design are called here, not in a helper, so that warnings point at the caller
        design = design_from_keywords(type(self).__name__, design, design_options)
        self._setup(labeled, unlabeled, missing=missing, design=design, **self._scan(design))
        self._check_data(labeled)
        self._warn_design()

    @staticmethod
    def _variables(y, X, yhat, X_unlabeled, yhat_unlabeled, extra: tuple[dict, dict] = ({}, {}), X_predicted=None):
        """Each sample's variables (with ``extra`` ones, such as offsets), before validation together."""
        matrix = as_variable(X, "X", ndim=2, default_name="x")
        labeled = {"y": as_variable(y, "y", ndim=1, default_name="y"), "X": matrix,
                   "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat"), **extra[0]}
        if X_predicted is not None:
            labeled["X_predicted"] = match_columns(
                matrix, as_variable(X_predicted, "X_predicted", ndim=2, default_name="x"), "X_predicted")
        unlabeled = {
            "X_unlabeled": match_columns(matrix, as_variable(X_unlabeled, "X_unlabeled", ndim=2, default_name="x")),
            "yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat"),
            **extra[1],
        }
        return labeled, unlabeled

    def _check_data(self, labeled: dict) -> None:
        """Ranges for the family, full-rank designs; names."""
        matrix, outcome = labeled["X"], labeled["y"]
        self._family.check_outcome(self.labeled["y"], "y")
        self._family.check_prediction(self.labeled["yhat"], "yhat")
        check_full_rank(self.labeled["X"], matrix.names, "X")
        self._check_unlabeled_design(matrix.names)
        if "X_predicted" in self.labeled:
            check_full_rank(self.labeled["X_predicted"], matrix.names, "X_predicted")
        self.param_names = matrix.names
        self.endog_name = outcome.names[0]
        self._df_params = len(matrix.names)

    def _scan(self, design: Design) -> dict:
        """What the validation scan of the unlabeled rows does besides checking values: the
        predictions' range check, and the Gram matrix (the rank check's; its diagonal proves the
        design finite), with, for a Gaussian fit, the rest of the normal equations that the fit of
        the unlabeled predictions solves."""
        if self._family.linear:
            sums = {"normal": NormalEquations("X_unlabeled", "yhat_unlabeled", weights_key(design))}
        else:  # an iterated fit needs no Gram matrix: the rank is checked on sampled rows
            sums = {"gram": SampledGram("X_unlabeled")}
        return dict(checks=[("yhat_unlabeled", _PredictionCheck(self._family, "yhat_unlabeled"))],
                    accumulators=sums)

    def _check_unlabeled_design(self, names: list[str]) -> None:
        """Rank of the unlabeled design, from the Gram matrix the scan summed, or from its
        sampled rows' when those have full rank (otherwise one more pass sums the whole
        design's); an all-zero column of a formula's categorical level is named as such."""
        from ..core.formula import check_zero_columns

        summary = self.unlabeled.summary
        if "normal" in summary:
            gram = summary["normal"][0]
        else:
            sampled, nrows = summary["gram"]
            if full_rank(sampled, int(nrows)):
                return
            gram = reduce_rows(gram_of_rows, self.unlabeled.column("X_unlabeled"))
        check_zero_columns([name for name, value in zip(names, np.diag(gram)) if value == 0], "unlabeled")
        check_gram(gram, self.nobs_unlabeled, names, "X_unlabeled")

    def _design_rows(self, sample: str, predicted: bool = False):
        if sample != LABELED:
            return self.unlabeled.column("X_unlabeled")
        return self.labeled["X_predicted"] if predicted and "X_predicted" in self.labeled else self.labeled["X"]

    def _offset(self, sample: str):
        """The offset of a sample's linear predictor (None: no offset)."""
        return None

    def _linear_predictor(self, sample: str, params: np.ndarray, predicted: bool = False) -> np.ndarray:
        offset = self._offset(sample)
        eta = self._design_rows(sample, predicted) @ params
        return eta if offset is None else eta + offset

    def _start_hessian(self, fit_f: Fit) -> np.ndarray | None:
        # the labeled rows' Hessian, scaled from their total weight to the prediction fit's
        if self._family.linear:
            return None
        return np.linalg.inv(fit_f.bread) / self._weight_ratio()

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False, start_hessian: np.ndarray | None = None) -> Fit:
        normal = []
        for sample, response, weights, _ in blocks:
            found = None if self._offset(sample) is not None else self._prepared(sample, response, weights, "normal")
            if found is None:
                normal.append(None)
            else:
                (gram, weighted_gram, cross, _), predictions = found
                normal.append((gram if weighted_gram is None else weighted_gram, predictions(cross)))
        return fit_glm(
            self._family,
            [(self._design_rows(sample, predicted), response) for sample, response, _, _ in blocks],
            weights=[weights for _, _, weights, _ in blocks],
            collectors=[factory for _, _, _, factory in blocks],
            offsets=[self._offset(sample) for sample, _, _, _ in blocks],
            start=start,
            what=f"{what} ({self._title})",
            iterate=not evaluate_only,
            normal_equations=normal,
            start_hessian=start_hessian,
        )

    def _fitted_values(self, fit: Fit, predicted: bool = False) -> np.ndarray:
        return self._family.mean(self._linear_predictor(LABELED, fit.params, predicted))[:, None]

    def _cached_fit_y(self) -> Fit:
        new = "fit_y" not in self._cache
        fit = super()._cached_fit_y()
        if new and not self._family.linear:
            self._check_separation(fit)
        return fit

    def _check_separation(self, fit: Fit) -> None:
        bounds = self._family.separation_bounds
        if bounds is None:
            return
        mu = self._family.mean(self._linear_predictor(LABELED, fit.params))
        near = (mu - bounds[0] < SEPARATION_TOLERANCE) | (bounds[1] - mu < SEPARATION_TOLERANCE)
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


def _model_doc(title: str, examples: str) -> str:
    """A subclass's docstring: its title, the shared Parameters and Notes, its own Examples."""
    return f"{title}\n" + RegressionModel.__doc__.split("\n", 1)[1].rstrip() + "\n\n" + examples


class OLS(RegressionModel):
    __doc__ = _model_doc("Prediction-powered ordinary least squares.", """    Examples
    --------
    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def draw(size):
    ...     x = rng.normal(size=size)
    ...     y = 1.0 + 2.0 * x + rng.normal(size=size)
    ...     yhat = y + rng.normal(0.3, 0.5, size=size)   # biased, noisy predictions
    ...     return pd.DataFrame({"const": 1.0, "x": x}), y, yhat
    >>> X, y, yhat = draw(200)
    >>> X_unlabeled, _, yhat_unlabeled = draw(5000)
    >>> model = ppinfer.OLS(y, X, yhat, X_unlabeled, yhat_unlabeled)
    >>> model
    <ppinfer.OLS 'y' (n=200, N=5000): const, x>
    >>> res = model.fit()                     # PPI++: lambda tuned
    >>> res.params.round(1).to_dict()
    {'const': 1.0, 'x': 2.0}
    >>> print(res.conf_int().round(1))
           lower  upper
    const    0.9    1.1
    x        1.9    2.0

    The predictions halve the standard errors of the labeled-only fit:

    >>> classical = model.fit(method="classical")
    >>> (res.bse / classical.bse).round(1).to_dict()
    {'const': 0.5, 'x': 0.4}
    """)
    _title = "OLS"
    _family = Gaussian()


class Logit(RegressionModel):
    __doc__ = _model_doc(
        "Prediction-powered logistic regression: ``y`` in {0, 1}, ``yhat`` probabilities in [0, 1].",
        """    Examples
    --------
    The classifier's probabilities use a feature ``z`` that is not in the regression:

    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def draw(size):
    ...     x, z = rng.normal(size=(2, size))
    ...     eta = -0.5 + x + 2.0 * z
    ...     y = (rng.uniform(size=size) < 1 / (1 + np.exp(-eta))).astype(float)
    ...     yhat = 1 / (1 + np.exp(-eta - rng.normal(0.0, 0.5, size)))
    ...     return pd.DataFrame({"const": 1.0, "x": x}), y, yhat
    >>> X, y, yhat = draw(300)
    >>> X_unlabeled, _, yhat_unlabeled = draw(3000)
    >>> model = ppinfer.Logit(y, X, yhat, X_unlabeled, yhat_unlabeled)
    >>> res = model.fit()
    >>> res.params.round(2).to_dict()
    {'const': -0.32, 'x': 0.69}
    >>> bool((res.bse < model.fit(method="classical").bse).all())
    True
    """)
    _title = "Logit"
    _family = Binomial()


class Poisson(RegressionModel):
    __doc__ = _model_doc(
        "Prediction-powered Poisson regression (log link): ``y`` counts, ``yhat`` >= 0.",
        """    Examples
    --------
    Counts from a cluster sample of 40 sites; the design keywords ``clusters``
    and ``clusters_unlabeled`` give cluster-robust (CR2) standard errors:

    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def draw(size):
    ...     x, z = rng.normal(size=(2, size))
    ...     mu = np.exp(0.5 + 0.4 * x + 0.5 * z)
    ...     y = rng.poisson(mu).astype(float)
    ...     yhat = mu * rng.lognormal(0.0, 0.1, size)
    ...     return pd.DataFrame({"const": 1.0, "x": x}), y, yhat, rng.integers(0, 40, size)
    >>> X, y, yhat, site = draw(400)
    >>> X_unlabeled, _, yhat_unlabeled, site_unlabeled = draw(4000)
    >>> model = ppinfer.Poisson(y, X, yhat, X_unlabeled, yhat_unlabeled,
    ...                         clusters=site, clusters_unlabeled=site_unlabeled)
    >>> res = model.fit()
    >>> res.cov_type, res.params.round(1).to_dict()
    ('CR2', {'const': 0.6, 'x': 0.4})
    """)
    _title = "Poisson"
    _family = PoissonFamily()


#: accepted pairs of a sample's argument and its unlabeled counterpart, for messages
_OFFSET_ARGUMENTS = (("offset", "offset_unlabeled"), ("exposure", "exposure_unlabeled"))


@document_design_keywords
class GLM(RegressionModel):
    """Prediction-powered generalised linear model with any statsmodels family and link.

    Parameters
    ----------
    y : array-like, shape (n,)
        Gold-standard outcomes of the labeled units, in the family's range
        (Binomial: proportions in [0, 1]; Poisson, NegativeBinomial: >= 0;
        Gamma, InverseGaussian: > 0; Tweedie: >= 0 for ``var_power`` < 2).
    X : array-like or DataFrame, shape (n, p)
        Labeled design. No intercept is added (as in statsmodels); add a column of
        ones, or use :func:`ppinfer.glm`, which adds one.
    yhat : array-like, shape (n,) or (n, K)
        Predictions for the labeled units, in the family's range (K columns: K
        synthetic draws per unit, whose row mean is the prediction).
    X_unlabeled : array-like or DataFrame, shape (N, p)
        Unlabeled design, with the columns of ``X``.
    yhat_unlabeled : array-like, shape (N,) or (N, K)
        Predictions for the unlabeled units.
    family : statsmodels family, optional
        A statsmodels family instance with its link, e.g.
        ``sm.families.Gamma(sm.families.links.Log())``,
        ``sm.families.Binomial(sm.families.links.Probit())``,
        ``sm.families.NegativeBinomial(alpha=0.5)``,
        ``sm.families.Tweedie(var_power=1.5)``. Default Gaussian (identity link),
        as in statsmodels. Scale parameters (``alpha``, ``var_power``) are
        fixed, not estimated.
    offset, offset_unlabeled : array-like, shape (n,) and (N,), optional
        Offsets added to the linear predictor of each sample (both or neither).
    exposure, exposure_unlabeled : array-like, shape (n,) and (N,), optional
        Positive exposures of each sample; ``log(exposure)`` is added to the
        linear predictor (log link only), as in statsmodels. An unlabeled
        exposure read partition by partition (Dask, Parquet) is checked in the
        validation pass and its logarithm taken as each partition is read.
    hessian : {"observed", "expected"}
        The Hessian of the estimating function in the influence function (the
        bread of the sandwich). ``"observed"`` (default) stays valid when the
        model is misspecified, as it is for the fits of predictions;
        ``"expected"`` (the Fisher information) assumes the mean model is
        correct. The two coincide for canonical links. See Notes.
    X_predicted : array-like or DataFrame, shape (n, p), optional
        Predicted covariates of the labeled units, with the columns of ``X``
        (see :class:`ppinfer.OLS`). Default: ``X``.
    design : ppinfer.Design, optional
        The sampling design as one object (weights, clusters, strata, fpc,
        two-phase labeling), or None for two independent simple random samples.
        Give it or the design keywords below, not both.
    missing : {"raise", "drop"}
        Rows with NaN or infinite values (offsets and exposures included): raise
        (default), or drop them from every array of their sample.
    [design keywords]

    Notes
    -----
    Each of the three fits ``b(X, v)`` solves the quasi-score equations
    ``sum_i w_i x_i (v_i - mu_i) mu'(eta_i) / V(mu_i) = 0`` with
    ``eta_i = x_i' b + offset_i`` (McCullagh & Nelder 1989), and the estimate is

        theta(lam) = b(X, y) + lam * (b(X_unlabeled, yhat_unlabeled) - b(X, yhat))

    (Angelopoulos et al. 2023; PPI++: Angelopoulos, Duchi & Zrnic 2023). A fit's
    influence rows are ``H^-1 x_i r_i`` with ``r_i = (v_i - mu_i) mu'_i / V_i``
    and ``H = sum_i w_i c_i x_i x_i'``. With a non-canonical link the observed
    weight ``c_i = mu'^2 / V - (v_i - mu_i) d/deta[mu' / V]`` differs from the
    expected ``mu'^2 / V``. The M-estimator's influence function needs the
    expected derivative of the estimating function under the distribution the
    rows come from, which the observed Hessian estimates whatever that
    distribution is; the expected Hessian estimates it only if the GLM's mean
    is correct. Predictions are not draws from the model, so the fits of
    ``yhat`` are misspecified by design: ``hessian="observed"`` is the default.
    It is also what statsmodels' sandwich uses (``GLM(...).fit(cov_type="HC0")``
    takes ``model.hessian(params)``, observed by default, as its bread, also
    after IRLS), so ``method="classical"`` with ``cov_type="HC0"`` and
    ``use_t=False`` equals that fit exactly. ``ppinfer.OLS``, ``Logit`` and
    ``Poisson`` equal ``GLM`` with the Gaussian, Binomial and Poisson families
    and their canonical links.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import statsmodels.api as sm
    >>> import ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def draw(size):
    ...     x = rng.normal(size=size)
    ...     y = rng.gamma(2.0, np.exp(0.5 + 0.3 * x) / 2.0)
    ...     yhat = 1.2 * y * rng.lognormal(0.0, 0.2, size)  # biased, noisy predictions
    ...     return sm.add_constant(pd.DataFrame({"x": x})), y, yhat
    >>> X, y, yhat = draw(400)
    >>> X_unlabeled, _, yhat_unlabeled = draw(4000)
    >>> model = ppinfer.GLM(y, X, yhat, X_unlabeled, yhat_unlabeled,
    ...                     family=sm.families.Gamma(sm.families.links.Log()))
    >>> res = model.fit()
    >>> res.params.round(2).to_dict()
    {'const': 0.5, 'x': 0.31}
    >>> bool(res.bse["x"] < model.fit(method="classical").bse["x"])
    True
    """

    _title = "GLM"

    @with_design_keywords
    def __init__(self, y: ArrayLike, X: ArrayLike, yhat: ArrayLike, X_unlabeled: ArrayLike,
                 yhat_unlabeled: ArrayLike, *, family: StatsmodelsFamily | None = None,
                 offset: ArrayLike | None = None, offset_unlabeled: ArrayLike | None = None,
                 exposure: ArrayLike | None = None, exposure_unlabeled: ArrayLike | None = None,
                 hessian: str = "observed", X_predicted: ArrayLike | None = None, design: Design | None = None,
                 missing: str = "raise", **design_options: Any):
        if family is None:
            import statsmodels.api as sm

            family = sm.families.Gaussian()
        self._family = GLMFamily(family, hessian=hessian)
        extra = self._offset_variables(
            dict(offset=offset, offset_unlabeled=offset_unlabeled, exposure=exposure,
                 exposure_unlabeled=exposure_unlabeled)
        )
        labeled, unlabeled = self._variables(y, X, yhat, X_unlabeled, yhat_unlabeled, extra, X_predicted)
        design = design_from_keywords(type(self).__name__, design, design_options)
        self._setup(labeled, unlabeled, missing=missing, design=design, **self._scan(design))
        self._check_data(labeled)
        self._warn_design()

    def _offset_variables(self, given: dict) -> tuple[dict, dict]:
        """Validated offsets and log exposures of each sample."""
        labeled, unlabeled = {}, {}
        #: exposures read partition by partition: checked in the scan, their logarithm taken as they are read
        self._streamed_exposure: list[str] = []
        for key, other in _OFFSET_ARGUMENTS:
            if (given[key] is None) != (given[other] is None):
                present, absent = (key, other) if given[key] is not None else (other, key)
                raise ValueError(
                    f"{present} is given but {absent} is not: give both samples' {key}s (an {key} on one sample "
                    "only would fit a different model to each)."
                )
            if given[key] is None:
                continue
            if key == "exposure" and not self._family.log_link:
                raise ValueError(
                    f"exposure needs the log link (log(exposure) is added to the linear predictor); the model has "
                    f"the {type(self._family.link).__name__} link. Pass offset= instead."
                )
            for name, target in ((key, labeled), (other, unlabeled)):
                variable = as_variable(given[name], name, ndim=1, default_name=name)
                if key == "exposure" and isinstance(variable.values, ChunkedInput):
                    self._streamed_exposure.append(name)
                elif key == "exposure":
                    values = variable.values
                    bad = np.isfinite(values) & (values <= 0)
                    if bad.any():
                        first = np.flatnonzero(bad)[0]
                        raise ValueError(
                            f"{name} must be positive; found {int(bad.sum())} value(s) <= 0 (first: "
                            f"{values[first]!r} at position {first})."
                        )
                    with np.errstate(divide="ignore", invalid="ignore"):
                        variable = Variable(np.log(values), variable.names, variable.index)
                target[name] = variable
        return labeled, unlabeled

    def _scan(self, design: Design) -> dict:
        plan = super()._scan(design)
        plan["checks"] += [(name, _PositiveCheck(name)) for name in self._streamed_exposure]
        return plan

    def _offset(self, sample: str) -> np.ndarray | None:
        data, suffix = (self.labeled, "") if sample == LABELED else (self.unlabeled, "_unlabeled")
        parts = []
        for key, _ in _OFFSET_ARGUMENTS:
            if key + suffix in data:
                part = data[key + suffix]
                if key + suffix in self._streamed_exposure:  # a Column of exposures: its logarithm
                    part = part.map(np.log, part.shape)
                parts.append(part)
        if len(parts) == 2 and isinstance(parts[0], Column):
            return parts[0].combine(parts[1], np.add, parts[0].shape)
        return None if not parts else parts[0] if len(parts) == 1 else parts[0] + parts[1]

    @property
    def family(self):
        """The statsmodels family (with its link) of the model."""
        return self._family.family

    def _results(self, method, params, inference, lam, cov_type, details=()):
        described = [("Family", self._family.name)]
        if not self._family.canonical:
            described.append(("Hessian", self._family.hessian))
        return super()._results(method, params, inference, lam, cov_type, described + list(details))

    @classmethod
    def from_formula(cls, formula: str, data, unlabeled, yhat, yhat_unlabeled=None, *, family=None, offset=None,
                     offset_unlabeled=None, exposure=None, exposure_unlabeled=None, hessian: str = "observed",
                     **options):
        """Build the model from a formula; see :func:`ppinfer.glm`."""
        import pandas as pd

        from ..core.formula import column, is_partitioned_table, model_arguments, partitioned_columns

        partitioned = is_partitioned_table(unlabeled)
        given = dict(offset=offset, offset_unlabeled=offset_unlabeled, exposure=exposure,
                     exposure_unlabeled=exposure_unlabeled)
        # the unlabeled rows' offsets named by column are read with the unlabeled design's rows (partition
        # by partition, for a Dask DataFrame or Parquet files); arrays are aligned with them here
        named, arrays = {}, {}
        for key, other in _OFFSET_ARGUMENTS:
            value, value_other = given[key], given[other]
            if isinstance(value, str) and value_other is None:
                columns = partitioned_columns(unlabeled) if partitioned else (
                    unlabeled.columns if isinstance(unlabeled, pd.DataFrame) else None)
                if columns is not None and value not in columns:
                    raise ValueError(
                        f"{key}={value!r} is a column of data but not of unlabeled: give the unlabeled rows' {key} "
                        f"too (a column {value!r} in unlabeled, or {other}=...)."
                    )
                value_other = value
            if value_other is None:
                continue
            if isinstance(value_other, str):
                named[other] = value_other
            elif partitioned:
                raise TypeError(
                    f"{other} must be a column name of unlabeled when unlabeled is a Dask DataFrame or Parquet "
                    "files (arrays cannot be paired with its rows)."
                )
            else:
                arrays[other] = value_other
        arguments, dropped = model_arguments(formula, data, unlabeled, yhat, yhat_unlabeled,
                                             function="ppinfer.glm", unlabeled_columns=named, **options)
        resolved = {key: arguments.pop(key) for key in named}
        for key, _ in _OFFSET_ARGUMENTS:
            if given[key] is not None:
                resolved[key] = column(given[key], data.reset_index(drop=True), data.index, arguments["X"].index, key,
                                       "data")
        for key, entry in arrays.items():
            resolved[key] = column(entry, unlabeled.reset_index(drop=True), unlabeled.index,
                                   arguments["X_unlabeled"].index, key, "unlabeled")
        model = cls(**arguments, family=family, hessian=hessian, **resolved)
        model._formula_dropped = dropped
        return model
