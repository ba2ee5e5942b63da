"""Prediction-powered inference for any M-estimator, given as a per-row score function.

The user writes the estimating function ``psi(row; theta)`` of a statistic
(robust regression, instrumental variables, a ratio, a variance component) as
a vectorised function of the parameters and a data frame of rows. The model
applies it three times, as every PPI estimator does: to the labeled rows, to
the labeled rows with the predicted columns substituted for the true ones, and
to the unlabeled rows (whose predicted columns stand in for the true ones).
Fitting, the tuning of lambda, the design variance, ``cov_type`` and the
bootstrap are those of every other ppinfer estimator
(:class:`~ppinfer.models.ppi.PPIModel`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ..core.covariance import LEVERAGE_POWER, _sqrt_bread, parse_cov_type
from ..core.fitting import EstimatingRows, Fit, chunks, fit_estimating_equations
from ..core.formula import _frame as positional_frame, resolve_design
from ..core.in_memory import refuse_streamed, refuse_streamed_design
from ..core.validation import MISSING_OPTIONS, Variable, as_variable, check_predicted
from ..core.options import choose
from ..designs.base import LABELED, UNLABELED, Design, design_from_keywords, group_sums
from .base import with_design_keywords
from .ppi import PPIModel

__all__ = ["MEstimator"]


def _frame(value, argument: str) -> tuple[pd.DataFrame, pd.Index]:
    """A data frame with positional rows (from a DataFrame or a mapping of columns) and its index."""
    if isinstance(value, Mapping) and not isinstance(value, pd.DataFrame):
        value = pd.DataFrame(dict(value))
    frame, index = positional_frame(value, argument)
    if len(frame) == 0:
        raise ValueError(f"{argument} is empty: it needs at least one row.")
    return frame, index


def _refuse_streamed_frame(value, argument: str) -> None:
    """A TypeError for a data frame (or a column of a mapping) read partition by partition."""
    what = "the unlabeled sample" if argument == "unlabeled" else "the labeled sample"
    refuse_streamed(value, argument, "MEstimator", target="a pandas DataFrame", what=what, paths=True)
    if isinstance(value, Mapping) and not isinstance(value, pd.DataFrame):
        for key, column in value.items():
            refuse_streamed(column, f"{argument}[{key!r}]", "MEstimator", what=what, memory_maps=False)


def _start_values(start, param_names) -> tuple[np.ndarray, list[str]]:
    """Starting values as floats, and the parameters' names (from a Series or mapping, else given or
    ``par0, par1, ...`` as statsmodels names generic parameters)."""
    if start is None:
        raise TypeError("start is required: starting values of the parameters (their number sets p).")
    names = None
    if isinstance(start, pd.Series):
        names, start = [str(k) for k in start.index], start.to_numpy()
    elif isinstance(start, Mapping):
        names, start = [str(k) for k in start], list(start.values())
    try:
        values = np.atleast_1d(np.asarray(start, dtype=float))
    except (TypeError, ValueError):
        raise TypeError(f"start must be numbers (an array, Series or mapping); got {start!r}.") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"start must be one-dimensional with one value per parameter; got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"start must be finite; got {values.tolist()}.")
    if param_names is not None:
        param_names = [str(name) for name in param_names]
        if len(param_names) != values.size:
            raise ValueError(f"param_names has {len(param_names)} names but start has {values.size} values.")
        names = param_names
    return values, names or [f"par{k}" for k in range(values.size)]


def _leverage_adjusted(scores: np.ndarray, hessians: np.ndarray, bread: np.ndarray, power: float,
                       extra: np.ndarray | None) -> np.ndarray:
    """Contributions ``M (I - H_i M)^-power s_i`` of rows (or clusters) with Hessians ``H_i``.

    The matrix form of HC2 (``power = 1/2``), HC3 (1) and CR2: for a row of a
    GLM, ``H_i = c_i x_i x_i'`` and ``s_i`` is a multiple of ``x_i``, so it reduces
    to ``(1 - h_i)^-power M s_i`` with the leverage ``h_i = c_i x_i' M x_i``. With
    ``S`` the symmetric root of ``M``, ``M f(H M) s = S f(S H S) S s``. ``extra``
    (m,) or (m, p) is added to the eigenvalues (the leverage of a tuned lambda;
    per coefficient for (m, p)). An eigenvalue of 1 (a row fitted exactly) gets
    factor 0, as for the scalar leverage.
    """
    root, _ = _sqrt_bread(bread)
    inner = root @ hessians @ root
    values, vectors = np.linalg.eigh(0.5 * (inner + np.swapaxes(inner, 1, 2)))
    rotated = np.einsum("mji,mj->mi", vectors, scores @ root)  # Q' S s

    def factor(shift):
        shifted = np.clip(values + shift, 0.0, None)
        return np.where(shifted >= 1.0 - 1e-10, 0.0, np.maximum(1.0 - shifted, 1e-10) ** -power)

    if extra is None or extra.ndim == 1:
        shift = 0.0 if extra is None else extra[:, None]
        return np.einsum("mij,mj->mi", vectors, rotated * factor(shift)) @ root
    out = np.empty_like(scores)
    for k in range(scores.shape[1]):
        out[:, k] = (np.einsum("mij,mj->mi", vectors, rotated * factor(extra[:, k : k + 1])) @ root)[:, k]
    return out


class MEstimator(PPIModel):
    """Prediction-powered inference for any M-estimator, from its estimating function.

    The estimate ``theta`` solves ``sum_i psi(row_i; theta) = 0`` for a score
    ``psi`` you write; some of the columns it uses are measured on the labeled
    rows only and predicted on every row.

    Parameters
    ----------
    score : callable
        ``score(params, rows) -> array (m, p)``: the estimating function of each
        of the ``m`` rows of the pandas DataFrame ``rows`` at the parameters
        ``params`` (a float array of length p), vectorised over rows. ``rows``
        has the columns of ``data``; see ``predicted`` for which values the
        predicted columns hold. Its sum over rows must vanish at the estimate
        (for a likelihood, the score; for least squares, ``x (y - x'b)``).
    data : pandas.DataFrame or mapping of columns
        The labeled rows: the columns ``score`` uses, with the true values of
        the predicted columns and the prediction columns.
    unlabeled : pandas.DataFrame or mapping of columns
        The unlabeled rows: the columns ``score`` uses, except that each
        predicted column is replaced by its prediction column (it need not
        exist in ``unlabeled``).
    predicted : mapping of str to str
        Each predicted column of ``data`` to its prediction column (present in
        ``data`` and ``unlabeled``), e.g. ``{"y": "yhat"}``; several columns
        (an outcome and a covariate) may be predicted.
    start : array-like, pandas.Series or mapping
        Starting values of the parameters; their number sets p. A Series'
        index or a mapping's keys name the parameters.
    jacobian : callable, optional
        ``jacobian(params, rows)``: the derivatives ``d psi_ij / d params_k`` of
        each row as an array (m, p, p), or their sum over rows (p, p). Without
        it, central differences of ``score`` (steps ``eps^(1/3) max(|b_k|, 1)``)
        give them; a summed Jacobian is used for unweighted iterations only,
        since weights and the leverage corrections need the rows'.
    param_names : list of str, optional
        Names of the parameters (default: from ``start``, else ``par0, par1, ...``).
    design : ppinfer.Design, optional
        The sampling design, its options given as column names of ``data`` (and
        ``unlabeled``) or arrays; or give its options as keywords
        (``weights``, ``clusters``, ``strata``, ``fpc``, ``label_prob``, ...; see
        :class:`ppinfer.Design`).
    missing : {"raise", "drop"}
        Rows with NaN or infinite values in the predicted or prediction columns,
        or whose score is not finite at ``start`` (a missing value in a column
        the score uses): raise (default), or drop them from their sample.

    Notes
    -----
    With ``b(rows, v)`` the root of ``sum_i w_i psi_i(b) = 0`` over ``rows`` with
    the predicted columns set to ``v``, the estimate is

        theta(lam) = b(labeled, y) + lam * (b(unlabeled, yhat_unlabeled) - b(labeled, yhat))

    (predict-then-debias: Angelopoulos et al. 2023; Angelopoulos, Duchi & Zrnic
    2023 for the tuned lambda; Kluger et al. 2025 for predicted covariates).
    Each fit's influence rows are ``H^-1 w_i psi_i`` with ``H = -sum_i w_i d psi_i / d b``
    (Huber 1967; Stefanski & Boos 2002), and the variance is the design's
    variance of the three fits' contributions, as for every ppinfer estimator.
    The root is found by damped Newton iterations (MINPACK's hybrid method if
    they stall).

    Leverage corrections (``cov_type`` ``"HC2"``, ``"HC3"``, ``"CR2"``) use the
    matrix form ``H^-1 (I - H_i H^-1)^-a s_i`` with each row's (cluster's)
    Hessian ``H_i``; for a GLM's score it is the usual ``(1 - h_i)^-a`` scaling,
    so this class reproduces ``ppinfer.OLS`` and ``ppinfer.Logit``. With a tuned
    lambda the rows' leverage in the tuning, ``|v_i|^2 / sum_j |v_j|^2`` with
    ``v_i`` their contributions to the prediction fit, is added (the GLMs use
    their residuals instead; the two agree for a mean). They need a symmetric
    Hessian (equations that are the gradient of an objective); when it is not
    (instrumental variables), the default ``cov_type`` is ``"HC1"`` (``"CR1"``
    with clusters) and the leverage corrections are refused.

    Examples
    --------
    The ratio of two means, ``E[y] / E[x]``, with ``y`` predicted: the smallest
    M-estimator (``psi = y - theta x``).

    >>> import numpy as np
    >>> import pandas as pd
    >>> import ppinfer
    >>> rng = np.random.default_rng(0)
    >>> def sample(size):
    ...     x = rng.gamma(4.0, 1.0, size)
    ...     y = 2.0 * x + rng.normal(0.0, 2.0, size)
    ...     return pd.DataFrame({"x": x, "y": y, "yhat": 1.1 * y + rng.normal(0.0, 1.0, size)})
    >>> labeled, unlabeled = sample(300), sample(3000).drop(columns="y")
    >>> ratio = ppinfer.MEstimator(lambda theta, rows: rows["y"] - theta[0] * rows["x"], labeled, unlabeled,
    ...                            predicted={"y": "yhat"}, start={"ratio": 1.0})
    >>> res = ratio.fit()
    >>> res.params.round(3).to_dict()
    {'ratio': 2.012}

    Huber's robust regression (tuning constant 1.345, scale fixed at 2),
    written with its per-row scores ``x_i psi((y_i - x_i'b) / s)``:

    >>> def huber(b, rows):
    ...     X = np.column_stack([np.ones(len(rows)), rows["x"]])
    ...     residual = (rows["y"].to_numpy() - X @ b) / 2.0
    ...     return X * np.clip(residual, -1.345, 1.345)[:, None]
    >>> least_squares = np.polyfit(labeled["x"], labeled["y"], 1)[::-1]  # a start where psi' > 0
    >>> robust = ppinfer.MEstimator(huber, labeled, unlabeled, predicted={"y": "yhat"},
    ...                             start=pd.Series(least_squares, index=["const", "x"]))
    >>> robust.fit().params.round(2).to_dict()
    {'const': 0.13, 'x': 1.99}
    """

    _title = "M-estimator"

    @with_design_keywords(column_names=True)
    def __init__(self, score: Callable, data: pd.DataFrame | Mapping[str, ArrayLike],
                 unlabeled: pd.DataFrame | Mapping[str, ArrayLike], predicted: Mapping[str, str], *,
                 start: ArrayLike | pd.Series | Mapping[str, float], jacobian: Callable | None = None,
                 param_names: list[str] | None = None, design: Design | None = None, missing: str = "raise",
                 **design_options: Any):
        if not callable(score):
            raise TypeError(f"score must be a function score(params, rows) returning per-row scores; got {score!r}.")
        if jacobian is not None and not callable(jacobian):
            raise TypeError(f"jacobian must be a function jacobian(params, rows) or None; got {jacobian!r}.")
        missing = choose(missing, MISSING_OPTIONS, "missing")
        spec = design_from_keywords("MEstimator", design, design_options)
        self._score, self._jacobian = score, jacobian
        self._start, self.param_names = _start_values(start, param_names)
        for value, name in ((data, "data"), (unlabeled, "unlabeled")):
            _refuse_streamed_frame(value, name)
        refuse_streamed_design(spec.options, spec.names, "MEstimator")
        labeled_frame, labeled_index = _frame(data, "data")
        unlabeled_frame, unlabeled_index = _frame(unlabeled, "unlabeled")
        self._predicted = check_predicted(predicted, labeled_frame, unlabeled_frame, example="{'y': 'yhat'}")
        true_columns, prediction_columns = list(self._predicted), list(self._predicted.values())
        truth = as_variable(labeled_frame[true_columns], "data", ndim=2, default_name="y")
        predictions = as_variable(labeled_frame[prediction_columns], "data", ndim=2, default_name="yhat")
        predictions_unlabeled = as_variable(unlabeled_frame[prediction_columns], "unlabeled", ndim=2,
                                            default_name="yhat")
        if missing == "raise":
            for variable, name in ((truth, "data"), (predictions, "data"), (predictions_unlabeled, "unlabeled")):
                self._check_finite(variable, name)
        labeled_ok = self._finite_scores(labeled_frame, "data") & self._finite_scores(
            self._substituted(labeled_frame, predictions.values), "data")
        unlabeled_ok = self._finite_scores(self._substituted(unlabeled_frame, predictions_unlabeled.values),
                                           "unlabeled")
        if any(isinstance(value, str) for value in spec.options.values()):
            spec = resolve_design(spec, (labeled_frame, unlabeled_frame), (labeled_index, unlabeled_index),
                                  (pd.RangeIndex(len(labeled_frame)), pd.RangeIndex(len(unlabeled_frame))))
        self._setup(
            {"y": truth, "yhat": predictions,
             "score(start, data)": Variable(np.where(labeled_ok, 0.0, np.nan), ["score"])},
            {"yhat_unlabeled": predictions_unlabeled,
             "score(start, unlabeled)": Variable(np.where(unlabeled_ok, 0.0, np.nan), ["score"])},
            missing=missing,
            design=spec,
            outcome_columns=len(true_columns),
        )
        self._frames = {
            LABELED: labeled_frame if self.labeled.kept is None else labeled_frame[self.labeled.kept].reset_index(drop=True),
            UNLABELED: unlabeled_frame if self.unlabeled.kept is None
            else unlabeled_frame[self.unlabeled.kept].reset_index(drop=True),
        }
        self.endog_name = ", ".join(true_columns)
        self._df_params = len(self.param_names)
        #: whether the estimating equations' Hessian is symmetric (decided by the fit of y)
        self._symmetric: bool | None = None
        self._warn_design()

    # -- validation ---------------------------------------------------------------------------
    @staticmethod
    def _check_finite(variable: Variable, name: str) -> None:
        """Raise on NaN or infinite values, naming the data frame's column."""
        for column, values in zip(variable.names, variable.values.T):
            bad = ~np.isfinite(values)
            if bad.any():
                raise ValueError(
                    f"{name}[{column!r}] has {int(bad.sum())} row(s) with NaN or infinite values (first at row "
                    f"{np.flatnonzero(bad)[0]}); clean them, or pass missing='drop' to drop incomplete rows."
                )

    def _finite_scores(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        """Rows whose scores at the start are finite; all rows failing means a bad start or score."""
        ok = np.empty(len(frame), dtype=bool)
        for rows in chunks(len(frame)):
            try:
                scores = self._scores(self._start, frame.iloc[rows])
            except KeyError as error:
                raise ValueError(
                    f"score(params, rows) raised KeyError {error} on the rows of {name}: every column the score "
                    "uses must be a column of data and of unlabeled (the predicted ones excepted)."
                ) from error
            ok[rows] = np.all(np.isfinite(scores), axis=1)
        if not ok.any():
            raise ValueError(
                f"score(start, rows) is NaN or infinite on every row of {name}: check start (e.g. a scale "
                "parameter at 0) and that score computes from the columns of the rows it is given."
            )
        return ok

    def _scores(self, params: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        """The user's scores of ``rows``, checked to be (m, p)."""
        m, p = len(rows), len(self.param_names)
        value = np.asarray(self._score(params, rows), dtype=float)
        if value.ndim == 1 and p == 1 and value.shape[0] == m:
            return value[:, None]
        if value.shape != (m, p):
            hint = " (the per-row scores, not their sum)" if value.shape == (p,) and m != 1 else ""
            raise ValueError(
                f"score(params, rows) returned shape {value.shape} for {m} rows and {p} parameter(s); it must "
                f"return one row of {p} score(s) per row of rows, shape ({m}, {p}){hint}."
            )
        return value

    def _jacobians(self, params: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        """The user's Jacobian of ``rows``, checked to be (m, p, p) or (p, p)."""
        m, p = len(rows), len(self.param_names)
        value = np.asarray(self._jacobian(params, rows), dtype=float)
        if value.shape not in ((m, p, p), (p, p)):
            raise ValueError(
                f"jacobian(params, rows) returned shape {value.shape} for {m} rows and {p} parameter(s); it must "
                f"return the rows' derivatives d psi_ij / d params_k, shape ({m}, {p}, {p}), or their sum ({p}, {p})."
            )
        return value

    # -- the fits ----------------------------------------------------------------------------
    def _substituted(self, frame: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
        """``frame`` with the predicted columns set to ``values`` (m, k)."""
        values = np.asarray(self._in_memory(values), dtype=float).reshape(len(frame), -1)
        return frame.assign(**{column: values[:, k] for k, column in enumerate(self._predicted)})

    def _rows(self, sample: str, response: np.ndarray) -> EstimatingRows:
        frame = self._substituted(self._frames[sample], response)
        return EstimatingRows(
            len(frame),
            lambda params, rows: self._scores(params, frame.iloc[rows]),
            None if self._jacobian is None else lambda params, rows: self._jacobians(params, frame.iloc[rows]),
        )

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False,
                    predicted: bool = False) -> Fit:
        if start is None:
            start = self._cache["fit_y"].params if "fit_y" in self._cache else self._start
        fit = fit_estimating_equations(
            [self._rows(sample, response) for sample, response, _, _ in blocks],
            start,
            weights=[weights for _, _, weights, _ in blocks],
            collectors=[factory for _, _, _, factory in blocks],
            what=f"{what} ({self._title})",
            iterate=not evaluate_only,
            symmetric=self._symmetric,
        )
        if self._symmetric is None:
            self._symmetric = fit.symmetric
        return fit

    def _take_rows(self, labeled_rows: np.ndarray, unlabeled_rows: np.ndarray) -> None:
        if "fit_y" in self._cache:
            self._start = self._cache["fit_y"].params  # a warm start for the replica
        super()._take_rows(labeled_rows, unlabeled_rows)
        self._frames = {LABELED: self._frames[LABELED].iloc[labeled_rows].reset_index(drop=True),
                        UNLABELED: self._frames[UNLABELED].iloc[unlabeled_rows].reset_index(drop=True)}

    # -- variance ------------------------------------------------------------------------------
    @property
    def symmetric(self) -> bool:
        """Whether the estimating equations' Hessian is symmetric (the gradient of an objective)."""
        self._cached_fit_y()
        return self._symmetric

    @property
    def default_cov_type(self) -> str:
        """``"CR2"`` / ``"HC3"`` (clusters / none) for a symmetric Hessian, else ``"CR1"`` / ``"HC1"``."""
        if self.symmetric:
            return "CR2" if self.design.clustered else "HC3"
        return "CR1" if self.design.clustered else "HC1"

    def _cov_type(self, cov_type) -> str:
        if cov_type is None:
            return self.default_cov_type
        name = parse_cov_type(cov_type, clustered=self.design.clustered)
        if name in LEVERAGE_POWER and not self.symmetric:
            raise ValueError(
                f"cov_type={cov_type!r} adjusts for leverage, which needs a symmetric Hessian (estimating equations "
                "that are the gradient of an objective); these equations' Hessian is not symmetric (as for "
                "instrumental variables). Use 'HC1' or 'HC0' ('CR1' or 'CR0' with clusters)."
            )
        return name

    def _row_contributions(self, sample, fit, collected, cov_type, extra=None, predicted=False):
        if cov_type not in LEVERAGE_POWER:
            return fit.contributions(collected.scores)
        return _leverage_adjusted(collected.scores, collected.curvature, fit.bread, LEVERAGE_POWER[cov_type], extra)

    def _psu_jacobians(self, sample, collected, codes, predicted=False):
        hessians = collected.curvature
        p = hessians.shape[1]
        return group_sums(hessians.reshape(len(hessians), -1), codes, self.design.npsu).reshape(-1, p, p)

    def _tuning_leverage(self, fit_f: Fit, draw=None) -> np.ndarray:
        """Each labeled row's leverage in the tuning of lambda: ``|v_i|^2 / sum_j |v_j|^2``, ``v_i`` its
        contribution to the fit of the predictions (lambda is fitted by regressing the outcome fit's
        contributions on these)."""
        squares = (self._unit_rows(fit_f) ** 2).sum(axis=1)
        total = squares.sum()
        return squares / total if total > 0 else np.zeros_like(squares)
