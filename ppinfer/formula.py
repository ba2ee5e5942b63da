"""Formula entry points: ``ppinfer.ols("y ~ x1 + C(group)", data=..., unlabeled=..., yhat=...)``.

One-line aliases of the models' ``from_formula``; the parsing is
:mod:`ppinfer.core.formula`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd
from numpy.typing import ArrayLike

from .designs.base import Design
from .models.base import with_design_keywords

if TYPE_CHECKING:
    from statsmodels.genmod.families import Family as StatsmodelsFamily

    from .models.regression import GLM, OLS, Logit, Poisson

_FORMULA_DOC = """Prediction-powered {title} from a formula.

    Parameters
    ----------
    formula : str
        Patsy formula, e.g. ``"y ~ x1 + np.log(x2) + C(group)"``. An intercept is
        added unless the formula removes it (``- 1``). A transformed outcome
        (``"np.log(y) ~ x"``) has the same transformation applied to the
        predictions, which must be on the scale of the outcome column.
    data : pandas.DataFrame
        Labeled data: the outcome, the right-hand-side variables and (if ``yhat``
        is a column name) the predictions.
    unlabeled : pandas.DataFrame
        Unlabeled data: the right-hand-side variables and the predictions. Its
        design is built with ``data``'s specification (same columns and levels).
    yhat : str or array-like
        Predictions for the labeled rows: a column of ``data`` (and, unless
        ``yhat_unlabeled`` is given, of ``unlabeled``) or one value per row of ``data``.
    yhat_unlabeled : str or array-like, optional
        Predictions for the unlabeled rows, when not the column ``yhat`` of ``unlabeled``.
    predicted : mapping, optional
        Predicted variables, instead of ``yhat``: each measured variable the
        formula uses (the outcome, covariates or both) mapped to its prediction
        column, e.g. ``{{"y": "y_llm", "x2": "x2_llm"}}``. ``data`` holds the
        measured and the predicted values, ``unlabeled`` the predicted ones (and
        the variables measured on every unit). The fits of the predictions use
        the formula's design built on the prediction columns, with ``data``'s
        specification (levels, transformations); see ``X_predicted`` of the model.
    missing : {{"raise", "drop"}}
        Rows with missing values: raise (default) or drop them consistently; the
        summary counts every dropped row per sample.
    design : ppinfer.Design, optional
        The sampling design, its options given as column names (or arrays).
    weights, weights_unlabeled, clusters, clusters_unlabeled, groups, groups_unlabeled, strata, strata_unlabeled, fpc, fpc_unlabeled, label_prob, label_strata, stratum_weights, nest
        The design as keywords instead (see :class:`ppinfer.Design`): column
        names or arrays over the rows of ``data`` (or ``unlabeled``). A column
        name given for a labeled option must also be a column of ``unlabeled``
        (unless its ``*_unlabeled`` option is given).

    Returns
    -------
    {cls}
        Call ``.fit()`` on it. Parameter names are the formula's terms.

    Examples
    --------
    >>> import ppinfer
    >>> from ppinfer.datasets import simulate
    >>> data = simulate("{estimand}", n=300, N=3000, seed=1)
    >>> model = ppinfer.{function}("y ~ x1 + x2", data=data.labeled, unlabeled=data.unlabeled, yhat="yhat")
    >>> model.param_names
    ['Intercept', 'x1', 'x2']

    A covariate measured on the labeled units only and predicted on all, with a
    full-matrix lambda:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labeled = data.labeled.assign(x2_pred=lambda d: 0.2 + d["x2"] + rng.normal(0, 0.5, len(d)))
    >>> unlabeled = data.unlabeled.assign(x2_pred=lambda d: 0.2 + d["x2"] + rng.normal(0, 0.5, len(d)))
    >>> model = ppinfer.{function}("y ~ x1 + x2", data=labeled, unlabeled=unlabeled.drop(columns="x2"),
    ...                       predicted={{"y": "yhat", "x2": "x2_pred"}})
    >>> model.fit(lam="matrix").lam.shape
    (3, 3)
    """


@with_design_keywords(column_names=True)
def ols(formula: str, data: pd.DataFrame, unlabeled: pd.DataFrame, yhat: str | ArrayLike | None = None,
        yhat_unlabeled: str | ArrayLike | None = None, *, predicted: Mapping[str, str] | None = None,
        missing: str = "raise", design: Design | None = None, **design_options: Any) -> OLS:
    from .models.regression import OLS

    return OLS.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, predicted=predicted, missing=missing,
                            design=design, **design_options)


@with_design_keywords(column_names=True)
def logit(formula: str, data: pd.DataFrame, unlabeled: pd.DataFrame, yhat: str | ArrayLike | None = None,
          yhat_unlabeled: str | ArrayLike | None = None, *, predicted: Mapping[str, str] | None = None,
          missing: str = "raise", design: Design | None = None, **design_options: Any) -> Logit:
    from .models.regression import Logit

    return Logit.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, predicted=predicted, missing=missing,
                              design=design, **design_options)


@with_design_keywords(column_names=True)
def poisson(formula: str, data: pd.DataFrame, unlabeled: pd.DataFrame, yhat: str | ArrayLike | None = None,
            yhat_unlabeled: str | ArrayLike | None = None, *, predicted: Mapping[str, str] | None = None,
            missing: str = "raise", design: Design | None = None, **design_options: Any) -> Poisson:
    from .models.regression import Poisson

    return Poisson.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, predicted=predicted, missing=missing,
                                design=design, **design_options)


ols.__doc__ = _FORMULA_DOC.format(title="ordinary least squares", cls="ppinfer.OLS", estimand="ols", function="ols")
logit.__doc__ = _FORMULA_DOC.format(title="logistic regression", cls="ppinfer.Logit", estimand="logit",
                                    function="logit")
poisson.__doc__ = _FORMULA_DOC.format(title="Poisson regression", cls="ppinfer.Poisson", estimand="poisson",
                                      function="poisson")


@with_design_keywords(column_names=True)
def glm(formula: str, data: pd.DataFrame, unlabeled: pd.DataFrame, yhat: str | ArrayLike,
        yhat_unlabeled: str | ArrayLike | None = None, *, family: StatsmodelsFamily | None = None,
        offset: str | ArrayLike | None = None, offset_unlabeled: str | ArrayLike | None = None,
        exposure: str | ArrayLike | None = None, exposure_unlabeled: str | ArrayLike | None = None,
        hessian: str = "observed", missing: str = "raise", design: Design | None = None,
        **design_options: Any) -> GLM:
    from .models.regression import GLM

    return GLM.from_formula(formula, data, unlabeled, yhat, yhat_unlabeled, family=family, offset=offset,
                            offset_unlabeled=offset_unlabeled, exposure=exposure,
                            exposure_unlabeled=exposure_unlabeled, hessian=hessian, missing=missing, design=design,
                            **design_options)


_GLM_PARAMETERS = """    family : statsmodels family, optional
        A statsmodels family instance with its link, e.g.
        ``sm.families.Gamma(sm.families.links.Log())``; default Gaussian
        (identity link). See :class:`ppinfer.GLM`.
    offset, exposure : str or array-like, optional
        Offset of the linear predictor, or exposure (``log(exposure)`` is added;
        log link only): a column name (read from ``data`` and, unless the
        ``*_unlabeled`` option is given, from ``unlabeled``) or one value per row
        of ``data``.
    offset_unlabeled, exposure_unlabeled : str or array-like, optional
        The unlabeled rows' offset or exposure, when not the column ``offset``
        (``exposure``) of ``unlabeled``. With ``unlabeled`` a Dask DataFrame or
        Parquet files, a column name: it is read with each partition.
    hessian : {{"observed", "expected"}}
        The Hessian in the influence function (see :class:`ppinfer.GLM`).
"""

_GLM_EXAMPLES = """    Examples
    --------
    >>> import statsmodels.api as sm
    >>> import ppinfer
    >>> from ppinfer.datasets import simulate
    >>> data = simulate("poisson", n=300, N=3000, seed=1)
    >>> data.labeled["days"] = 1.0 + (data.labeled["x1"] > 0)
    >>> data.unlabeled["days"] = 1.0 + (data.unlabeled["x1"] > 0)
    >>> model = ppinfer.glm("y ~ x1 + x2", data=data.labeled, unlabeled=data.unlabeled, yhat="yhat",
    ...                     family=sm.families.NegativeBinomial(alpha=0.5), exposure="days")
    >>> model.param_names
    ['Intercept', 'x1', 'x2']
"""

glm.__doc__ = (
    _FORMULA_DOC.format(title="generalised linear model (any statsmodels family and link)", cls="ppinfer.GLM",
                        estimand="poisson", function="glm")
    .replace("    missing : ", _GLM_PARAMETERS.format() + "    missing : ", 1)
    .split("    Examples\n")[0]
    + _GLM_EXAMPLES
)
