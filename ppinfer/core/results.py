"""Results of a prediction-powered fit: a thin, read-only container.

Intervals, tests and the summary are written once here; how an interval is
obtained is delegated to an inference object (:mod:`ppinfer.core.inference`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.iolib.summary import Summary, forg
from statsmodels.iolib.table import SimpleTable
from statsmodels.iolib.tableformatting import fmt_params

from .hypothesis import ContrastResults, WaldTestResults, linear_constraints, t_test, wald_test
from .inference import ALTERNATIVES, Inference, check_alpha, pvalues
from .options import choose

#: labels of the methods every prediction-powered model shares (models pass their own labels)
METHOD_LABELS = {
    "ppi++": "PPI++",
    "ppi": "PPI",
    "classical": "Classical",
    "naive": "Naive pooling",
}

NAIVE_WARNING = (
    "Warning: naive pooling treats predictions as if they were observed outcomes. Its "
    "estimate is biased whenever the predictions are, and its standard errors ignore the "
    "prediction error, so its intervals and p-values are not valid. Shown as a baseline only."
)


def format_pvalue(value: float) -> str:
    """p-values as statsmodels prints them, three decimals, with "<0.001" below."""
    if not np.isfinite(value):
        return "nan"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _match_widths(header: SimpleTable, table: SimpleTable) -> None:
    """Widen the header table (or the parameter table) so both print with the same width."""
    width = len(str(table).splitlines()[0])
    header_width = len(str(header).splitlines()[0])
    target, other = (header, width - header_width) if width > header_width else (table, header_width - width)
    if other <= 0:
        return
    fmt = target.output_formats["txt"]
    widths = list(target._get_colwidths("txt"))
    for k in range(other):
        widths[1 + (k % (len(widths) - 1))] += 1
    fmt["colwidths"] = widths


class PPIResults:
    """Results of a prediction-powered (or baseline) fit.

    Attributes
    ----------
    params : pandas.Series
        Point estimates.
    bse : pandas.Series
        Standard errors.
    tvalues, pvalues : pandas.Series
        Test statistics (t or z, see ``use_t``) and two-sided p-values against 0
        (``test`` for other nulls).
    df : pandas.Series or None
        Degrees of freedom of each parameter's t reference distribution (None
        for normal reference distributions).
    use_t : bool
        Whether intervals and tests use Student's t.
    cov_type : str or None
        The covariance estimator (``"HC0"`` ... ``"CR2"``), None where it does not apply.
    method : str
        ``"ppi++"``, ``"ppi"``, ``"classical"`` or ``"naive"`` (or a model's own method).
    lam : float, pandas.Series, pandas.DataFrame or None
        The lambda used: one value, one per coefficient (or per stratum), or None
        for naive pooling.
    nobs, nobs_unlabeled : int
        Labeled rows used (after dropping incomplete rows) and unlabeled rows used.
    effective_nobs : pandas.Series
        ``n * Var_classical / Var_method`` per coefficient: the number of labeled
        rows a classical analysis would need for the same precision.
    model : object or None
        The model that produced the results.

    Examples
    --------
    Every model's ``fit`` returns one; ``summary()`` prints the statsmodels-style table.

    >>> import numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2200)
    >>> y = 1.0 + 0.5 * x + rng.normal(size=2200)
    >>> yhat = y + rng.normal(0.2, 0.6, size=2200)
    >>> X = pd.DataFrame({"const": 1.0, "x": x})
    >>> res = ppinfer.OLS(y[:200], X[:200], yhat[:200], X[200:], yhat[200:]).fit()
    >>> res.method, res.nobs, res.nobs_unlabeled, round(res.lam, 2)
    ('ppi++', 200, 2000, 0.67)
    >>> res.params.round(2).to_dict()
    {'const': 1.02, 'x': 0.49}
    >>> print(res.conf_int(alpha=0.1).round(2))
           lower  upper
    const   0.95   1.09
    x       0.41   0.56

    Tests against other values than 0, and what the predictions are worth in
    labeled rows:

    >>> print(res.test(null={"x": 0.5})[["statistic", "pvalue"]].round(2))
           statistic  pvalue
    const      23.88    0.00
    x          -0.34    0.74
    >>> res.effective_nobs.round(-1).to_dict()
    {'const': 590.0, 'x': 460.0}
    >>> list(res.to_frame().columns)
    ['term', 'estimate', 'std_err', 'statistic', 'pvalue', 'lower', 'upper', 'method', 'lambda']
    """

    def __init__(
        self,
        *,
        params: pd.Series,
        inference: Inference,
        method: str,
        lam: float | pd.Series | pd.DataFrame | None,
        nobs: int,
        nobs_unlabeled: int,
        classical_bse: np.ndarray,
        title: str,
        dep_variable: str,
        details: list[tuple[str, str]] | None = None,
        notes: list[str] | None = None,
        method_label: str | None = None,
        cov_type: str | None = None,
        model: Any = None,
    ):
        self._params = params
        self._inference = inference
        self.method = method
        self.lam = lam
        self.nobs = nobs
        self.nobs_unlabeled = nobs_unlabeled
        self._classical_bse = classical_bse
        self._title = title
        self._dep_variable = dep_variable
        self._details = details or []
        self._notes = notes or []
        self._method_label = method_label or METHOD_LABELS.get(method, method)
        self.cov_type = cov_type
        self.model = model

    @property
    def params(self) -> pd.Series:
        return self._params.copy()

    @property
    def param_names(self) -> list[str]:
        return list(self._params.index)

    def _series(self, values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=self._params.index, name=name)

    @property
    def _df(self) -> np.ndarray | None:
        return getattr(self._inference, "df", None)

    @property
    def use_t(self) -> bool:
        return self._df is not None

    @property
    def df(self) -> pd.Series | None:
        return None if self._df is None else self._series(self._df, "df")

    @property
    def df_resid(self) -> float:
        """One denominator df for joint F tests: the smallest parameter df (inf without t)."""
        return float(np.min(self._df)) if self._df is not None else np.inf

    @cached_property
    def bse(self) -> pd.Series:
        return self._series(self._inference.bse, "bse")

    @cached_property
    def tvalues(self) -> pd.Series:
        return self._series(self._inference.statistic(np.zeros(len(self._params))), "t" if self.use_t else "z")

    @property
    def zvalues(self) -> pd.Series:
        return self.tvalues

    @cached_property
    def pvalues(self) -> pd.Series:
        return self.test().loc[:, "pvalue"].rename("pvalue")

    @cached_property
    def effective_nobs(self) -> pd.Series:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (self._classical_bse / self._inference.bse) ** 2
        return self._series(self.nobs * ratio, "effective_nobs")

    def cov_params(self) -> pd.DataFrame:
        """Estimated covariance matrix of the estimates."""
        return pd.DataFrame(self._inference.covariance, index=self._params.index, columns=self._params.index)

    def conf_int(self, alpha: float = 0.05, alternative: str = "two-sided") -> pd.DataFrame:
        """Confidence intervals at level ``1 - alpha``.

        Parameters
        ----------
        alpha : float
        alternative : {"two-sided", "larger", "smaller"}
            ``"larger"`` gives one-sided intervals ``(lower, inf)`` (matching the
            alternative theta > null), ``"smaller"`` gives ``(-inf, upper)``.

        Returns
        -------
        pandas.DataFrame with columns ``lower`` and ``upper``.
        """
        alpha = check_alpha(alpha)
        alternative = choose(alternative, ALTERNATIVES, "alternative")
        lower, upper = self._inference.interval(alpha, alternative)
        return pd.DataFrame({"lower": lower, "upper": upper}, index=self._params.index)

    def test(self, null=0.0, alternative: str = "two-sided") -> pd.DataFrame:
        """Tests of ``theta = null`` against the chosen alternative, per parameter.

        The statistic is referred to Student's t with the parameter's ``df`` when
        ``use_t``, else to the standard normal.

        Parameters
        ----------
        null : float, array-like, pandas.Series or mapping
            Null value(s): one for all parameters, one per parameter, a Series
            indexed by parameter name, or a mapping ``{name: value}`` (parameters
            not named keep the null 0).
        alternative : {"two-sided", "larger", "smaller"}
            ``"larger"`` is H1: theta > null.

        Returns
        -------
        pandas.DataFrame with columns ``estimate``, ``null``, ``statistic``, ``pvalue``.
        """
        alternative = choose(alternative, ALTERNATIVES, "alternative")
        null = self._null_values(null)
        statistic = self._inference.statistic(null)
        pvalue = pvalues(statistic, alternative, self._df)
        return pd.DataFrame(
            {"estimate": self._params.to_numpy(), "null": null, "statistic": statistic, "pvalue": pvalue},
            index=self._params.index,
        )

    def _null_values(self, null) -> np.ndarray:
        k = len(self._params)
        if isinstance(null, dict) or (hasattr(null, "keys") and not isinstance(null, pd.Series)):
            unknown = [name for name in null if name not in self._params.index]
            if unknown:
                raise ValueError(f"null names {unknown}, not parameters of the model ({self.param_names}).")
            values = pd.Series(0.0, index=self._params.index)
            for name, value in null.items():
                values[name] = value
            null = values
        if isinstance(null, pd.Series):
            unknown = [name for name in null.index if name not in self._params.index]
            if unknown or len(null) != k:
                raise ValueError(
                    f"null is a Series; its index must hold each parameter once ({self.param_names}); "
                    f"got {list(null.index)}."
                )
            null = null.reindex(self._params.index)
        try:
            values = np.asarray(null, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"null must be a number, one number per parameter, a Series or a mapping; got {null!r}.") from None
        if values.ndim == 0:
            values = np.full(k, float(values))
        if values.shape != (k,):
            raise ValueError(f"null must be a scalar or have one value per parameter ({k}); got shape {values.shape}.")
        if not np.all(np.isfinite(values)):
            raise ValueError("null must be finite.")
        return values

    # -- linear hypotheses ----------------------------------------------------------------
    def _constraint_df(self, R: np.ndarray) -> float | np.ndarray | None:
        """Degrees of freedom of constraints: per row, the smallest df of the parameters
        it involves (None without t)."""
        if self._df is None:
            return None
        involved = np.where(R != 0, self._df[None, :], np.inf)
        return involved.min(axis=1)

    def wald_test(self, constraints, *, use_f: bool | None = None) -> WaldTestResults:
        """Joint Wald test of the linear constraints ``R theta = q``.

        Parameters
        ----------
        constraints : str, list of str, mapping, (R, q) tuple or array
            In statsmodels' syntax, e.g. ``"x1 = x2, x3 = 0"``; a mapping
            ``{name: value}``; ``(R, q)``; or ``R`` alone (``q = 0``).
        use_f : bool, optional
            Refer ``W / J`` to F(J, df) (default when the results use t, with df the
            smallest degrees of freedom of the parameters involved); else ``W`` to
            chi-squared(J).

        Returns
        -------
        WaldTestResults
            ``statistic``, ``df_num``, ``df_denom``, ``pvalue``; ``summary_frame()``.

        Notes
        -----
        ``W = (R theta - q)' (R V R')^-1 (R theta - q)`` with ``V`` the estimated
        covariance (:meth:`cov_params`); equal to statsmodels' ``wald_test`` on
        the same estimates and covariance.
        """
        R, q = linear_constraints(constraints, self.param_names)
        use_f = self.use_t if use_f is None else bool(use_f)
        df = self._constraint_df(R)
        if use_f and df is None:
            raise ValueError("use_f=True needs t reference distributions: fit with use_t=True, or use a chi2 test.")
        return wald_test(self._params.to_numpy(), self._inference.covariance, R, q,
                         df=None if df is None else float(df.min()), use_f=use_f, param_names=self.param_names)

    def f_test(self, constraints) -> WaldTestResults:
        """Joint F test of linear constraints (:meth:`wald_test` with ``use_f=True``)."""
        return self.wald_test(constraints, use_f=True)

    def t_test(self, constraints) -> ContrastResults:
        """One test per linear constraint ``r' theta = q`` (t with the results' df, or z).

        Constraints may be dependent (all pairwise differences, say). Each row's
        degrees of freedom are the smallest of the parameters it involves.
        ``summary_frame(alpha)`` gives estimates, standard errors, statistics,
        p-values and intervals.
        """
        R, q = linear_constraints(constraints, self.param_names, independent=False)
        return t_test(self._params.to_numpy(), self._inference.covariance, R, q, df=self._constraint_df(R),
                      param_names=self.param_names)

    def summary(self, alpha: float = 0.05, *, title: str | None = None, yname: str | None = None,
                xname: list[str] | None = None) -> Summary:
        """A statsmodels ``Summary``: fit details, then one row per parameter.

        Parameters
        ----------
        alpha : float
            Level of the intervals shown.
        title : str, optional
            Title (default "Prediction-powered inference: <estimator>").
        yname : str, optional
            Name of the outcome shown.
        xname : list of str, optional
            Names of the parameters shown (one per parameter).
        """
        alpha = check_alpha(alpha)
        names = self.param_names if xname is None else [str(name) for name in xname]
        if len(names) != len(self.param_names):
            raise ValueError(f"xname must give one name per parameter ({len(self.param_names)}); got {len(names)}.")
        lam = self.lam
        by_parameter = isinstance(lam, pd.Series) and lam.index.equals(self._params.index)
        if lam is None:
            lam_text = "none"
        elif np.ndim(lam) == 0:
            lam_text = f"{lam:.4g}"
        else:
            lam_text = "per parameter (below)" if by_parameter else f"per {lam.index.name or 'group'} (below)"
        dep = self._dep_variable if yname is None else str(yname)
        left = [
            ("Dep. Variable:", [dep]),
            ("Estimator:", [self._title]),
            ("Method:", [self._method_label]),
            ("Lambda:", [lam_text]),
        ]
        if self.cov_type is not None:
            left.append(("Covariance Type:", [self.cov_type]))
        if self.use_t:
            df = self._df
            left.append(("Df (t):", [f"{df[0]:.4g}" if np.all(df == df[0]) else f"{df.min():.3g} to {df.max():.3g}"]))
        right = [
            ("No. labeled (n):", [str(self.nobs)]),
            ("No. unlabeled (N):", [str(self.nobs_unlabeled)]),
        ] + [(f"{key}:", [value]) for key, value in self._details]
        summary = Summary()
        summary.add_table_2cols(
            None,
            title=title or f"Prediction-powered inference: {self._title}",
            gleft=left,
            gright=right,
            yname=dep,
            xname=names,
        )
        interval = self.conf_int(alpha)
        tests = self.test()
        name = "t" if self.use_t else "z"
        headers = ["coef", "std err", name, f"P>|{name}|", f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]", "eff. n"]
        columns = [
            self._params, self.bse, tests["statistic"], tests["pvalue"],
            interval["lower"], interval["upper"], self.effective_nobs,
        ]
        if by_parameter:
            headers.append("lambda")
            columns.append(lam)

        def cell(j: int, value: float) -> str:
            if j == 3:
                return format_pvalue(value)
            if j == 6:
                return "nan" if not np.isfinite(value) else f"{value:.0f}"
            return forg(value, prec=4)

        rows = [[cell(j, column.iloc[k]) for j, column in enumerate(columns)] for k in range(len(self._params))]
        table = SimpleTable(rows, headers, names, txt_fmt=fmt_params)
        summary.tables.append(table)
        _match_widths(summary.tables[0], table)
        notes = list(self._notes)
        if lam is not None and np.ndim(lam) > 0 and not by_parameter:
            notes.append(f"Lambda by {lam.index.name or 'group'}:\n" + lam.to_string(float_format=lambda v: f"{v:.4g}"))
        if self.method == "naive":
            notes.insert(0, NAIVE_WARNING)
        if notes:
            summary.add_extra_txt(notes)
        return summary

    def to_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """A tidy table: one row per parameter with term, estimate, std_err, statistic,
        pvalue, lower, upper, method and lambda (the parameter's, or None)."""
        interval = self.conf_int(alpha)
        tests = self.test()
        lam = self.lam
        if lam is None:
            lams = [np.nan] * len(self._params)
        elif np.ndim(lam) == 0:
            lams = [float(lam)] * len(self._params)
        elif isinstance(lam, pd.Series) and lam.index.equals(self._params.index):
            lams = list(lam.to_numpy())
        else:
            lams = [np.nan] * len(self._params)  # by stratum: see res.lam
        return pd.DataFrame({
            "term": self.param_names,
            "estimate": self._params.to_numpy(),
            "std_err": self.bse.to_numpy(),
            "statistic": tests["statistic"].to_numpy(),
            "pvalue": tests["pvalue"].to_numpy(),
            "lower": interval["lower"].to_numpy(),
            "upper": interval["upper"].to_numpy(),
            "method": self.method,
            "lambda": lams,
        })

    def plot(self, alpha: float = 0.05, *, ax=None):
        """A forest plot of the estimates and their intervals (naive pooling in red); for a
        quantile, the rectified CDF around each estimate with its interval.

        Returns the matplotlib figure; ``model.compare().plot()`` draws several methods.
        """
        own = getattr(self._inference, "plot", None)
        if own is not None:
            return own(self._params.to_numpy(), alpha, ax=ax)
        from .plotting import forest_plot

        return forest_plot(self.to_frame(alpha), alpha=alpha, ax=ax)

    def predict(self, exog=None) -> pd.Series:
        """Fitted means at ``exog`` (default: the labeled rows) for regression results.

        ``exog`` is a design matrix with the model's columns (array or DataFrame), or,
        for a model built from a formula, a data frame with the formula's variables.
        """
        predict = getattr(self.model, "predict", None)
        if predict is None:
            raise AttributeError(f"{self._title} results have no predictions: predict() is for regressions.")
        return predict(self._params.to_numpy(), exog)

    def _with_inference(self, inference: Inference, detail: tuple[str, str]) -> "PPIResults":
        """A copy with another inference object (same estimates)."""
        copy = object.__new__(type(self))
        copy.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("bse", "tvalues", "pvalues",
                                                                                  "effective_nobs")})
        copy._inference = inference
        copy._details = self._details + [detail]
        return copy

    def __repr__(self) -> str:
        estimates = ", ".join(f"{name}={value:.4g}" for name, value in self._params.items())
        return (
            f"<PPIResults {self._title}, method={self.method!r}, n={self.nobs}, N={self.nobs_unlabeled}: "
            f"{estimates}>"
        )

    def _repr_html_(self) -> str:
        return self.summary().as_html()
