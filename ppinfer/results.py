"""Results of a prediction-powered fit: a thin, read-only container.

Intervals, tests and the summary are written once here. How an interval is
obtained is delegated to an inference object: :class:`WaldInference` (estimate
plus/minus z times the standard error) for smooth M-estimators, or the rectified
CDF test inversion of :mod:`ppinfer.quantile`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.iolib.summary import Summary, forg
from statsmodels.iolib.table import SimpleTable
from statsmodels.iolib.tableformatting import fmt_params

from ._options import choose

ALTERNATIVES = {
    "two-sided": "two-sided",
    "two_sided": "two-sided",
    "larger": "larger",
    "greater": "larger",
    "smaller": "smaller",
    "less": "smaller",
}

METHOD_LABELS = {
    "ppi++": "PPI++",
    "ppi": "PPI",
    "classical": "Classical",
    "naive": "Naive pooling",
    "dm": "Difference in means",
    "ancova": "ANCOVA",
    "lin": "Lin (interacted ANCOVA)",
    "procova": "PROCOVA",
    "ppct": "PPCT (PPI for trials)",
    "aipw": "AIPW",
    "gmm": "Two-step GMM",
    "mi": "Multiple imputation",
}

NAIVE_WARNING = (
    "Warning: naive pooling treats predictions as if they were observed outcomes. Its "
    "estimate is biased whenever the predictions are, and its standard errors ignore the "
    "prediction error, so its intervals and p-values are not valid. Shown as a baseline only."
)


def check_alpha(alpha: float) -> float:
    """Return ``alpha`` as a float in (0, 1) or raise."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"alpha must be a number in (0, 1); got {alpha!r}.") from None
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha!r}.")
    return alpha


def critical_value(alpha: float, alternative: str) -> float:
    """Standard normal quantile for a two-sided or one-sided level ``alpha``."""
    return stats.norm.isf(alpha / 2.0 if alternative == "two-sided" else alpha)


class Inference(Protocol):
    """How intervals and test statistics are computed for a fit."""

    def interval(self, alpha: float, alternative: str) -> tuple[np.ndarray, np.ndarray]: ...

    def statistic(self, null: np.ndarray) -> np.ndarray: ...

    @property
    def covariance(self) -> np.ndarray: ...


class WaldInference:
    """z intervals and tests from an estimate and its covariance matrix."""

    def __init__(self, params: np.ndarray, covariance: np.ndarray):
        self.params = params
        self.covariance = covariance

    @cached_property
    def bse(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def critical(self, alpha: float, alternative: str) -> np.ndarray | float:
        """Multiplier of the standard error at level ``alpha`` (normal quantile)."""
        return critical_value(alpha, alternative)

    def interval(self, alpha, alternative):
        half = self.critical(alpha, alternative) * self.bse
        lower = np.full_like(self.params, -np.inf) if alternative == "smaller" else self.params - half
        upper = np.full_like(self.params, np.inf) if alternative == "larger" else self.params + half
        return lower, upper

    def statistic(self, null):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.params - null) / self.bse


class BootstrapInference(WaldInference):
    """Percentile intervals from bootstrap replicates of the estimate.

    ``bse`` and ``covariance`` are the replicates' standard deviations and
    covariance; tests use the z statistic with the bootstrap standard error.
    """

    def __init__(self, params: np.ndarray, replicates: np.ndarray):
        super().__init__(params, np.atleast_2d(np.cov(replicates, rowvar=False)))
        self.replicates = replicates

    def interval(self, alpha, alternative):
        k = self.params.shape[0]
        if alternative == "two-sided":
            lower, upper = np.quantile(self.replicates, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
        elif alternative == "larger":
            lower, upper = np.quantile(self.replicates, alpha, axis=0), np.full(k, np.inf)
        else:
            lower, upper = np.full(k, -np.inf), np.quantile(self.replicates, 1.0 - alpha, axis=0)
        return lower, upper


class PPIResults:
    """Results of a prediction-powered (or baseline) fit.

    Attributes
    ----------
    params : pandas.Series
        Point estimates.
    bse : pandas.Series
        Standard errors.
    tvalues, pvalues : pandas.Series
        z statistics and two-sided p-values against 0 (``test`` for other nulls).
    method : str
        ``"ppi++"``, ``"ppi"``, ``"classical"`` or ``"naive"``.
    lam : float, pandas.Series or None
        The lambda used: one value, one per coefficient, or None for naive pooling.
    nobs, nobs_unlabeled : int
        Labeled rows used (after dropping incomplete rows) and unlabeled rows used.
    effective_nobs : pandas.Series
        ``n * Var_classical / Var_method`` per coefficient: the number of labeled
        rows a classical analysis would need for the same precision.
    """

    def __init__(
        self,
        *,
        params: pd.Series,
        inference: Inference,
        method: str,
        lam,
        nobs: int,
        nobs_unlabeled: int,
        classical_bse: np.ndarray,
        title: str,
        dep_variable: str,
        details: list[tuple[str, str]] | None = None,
        notes: list[str] | None = None,
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

    @property
    def params(self) -> pd.Series:
        return self._params.copy()

    @property
    def param_names(self) -> list[str]:
        return list(self._params.index)

    def _series(self, values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=self._params.index, name=name)

    @cached_property
    def bse(self) -> pd.Series:
        return self._series(self._inference.bse, "bse")

    @cached_property
    def tvalues(self) -> pd.Series:
        return self._series(self._inference.statistic(np.zeros(len(self._params))), "z")

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
        """z tests of ``theta = null`` against the chosen alternative, per parameter.

        Parameters
        ----------
        null : float, array-like or pandas.Series
            Null value(s): one for all parameters, one per parameter, or a Series
            indexed by parameter name.
        alternative : {"two-sided", "larger", "smaller"}
            ``"larger"`` is H1: theta > null.

        Returns
        -------
        pandas.DataFrame with columns ``estimate``, ``null``, ``statistic``, ``pvalue``.
        """
        alternative = choose(alternative, ALTERNATIVES, "alternative")
        null = self._null_values(null)
        statistic = self._inference.statistic(null)
        if alternative == "two-sided":
            pvalue = 2.0 * stats.norm.sf(np.abs(statistic))
        elif alternative == "larger":
            pvalue = stats.norm.sf(statistic)
        else:
            pvalue = stats.norm.cdf(statistic)
        return pd.DataFrame(
            {"estimate": self._params.to_numpy(), "null": null, "statistic": statistic, "pvalue": pvalue},
            index=self._params.index,
        )

    def _null_values(self, null) -> np.ndarray:
        k = len(self._params)
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
            raise TypeError(f"null must be a number, one number per parameter, or a Series; got {null!r}.") from None
        if values.ndim == 0:
            values = np.full(k, float(values))
        if values.shape != (k,):
            raise ValueError(f"null must be a scalar or have one value per parameter ({k}); got shape {values.shape}.")
        if not np.all(np.isfinite(values)):
            raise ValueError("null must be finite.")
        return values

    def summary(self, alpha: float = 0.05) -> Summary:
        """A statsmodels ``Summary``: fit details, then one row per parameter."""
        alpha = check_alpha(alpha)
        lam = self.lam
        by_parameter = isinstance(lam, pd.Series) and lam.index.equals(self._params.index)
        if lam is None:
            lam_text = "none"
        elif np.ndim(lam) == 0:
            lam_text = f"{lam:.4g}"
        else:
            lam_text = "per parameter (below)" if by_parameter else f"per {lam.index.name or 'group'} (below)"
        left = [
            ("Dep. Variable:", [self._dep_variable]),
            ("Estimator:", [self._title]),
            ("Method:", [METHOD_LABELS[self.method]]),
            ("Lambda:", [lam_text]),
        ]
        right = [
            ("No. labeled (n):", [str(self.nobs)]),
            ("No. unlabeled (N):", [str(self.nobs_unlabeled)]),
        ] + [(f"{key}:", [value]) for key, value in self._details]
        summary = Summary()
        summary.add_table_2cols(
            None,
            title=f"Prediction-powered inference: {self._title}",
            gleft=left,
            gright=right,
            yname=self._dep_variable,
            xname=self.param_names,
        )
        interval = self.conf_int(alpha)
        tests = self.test()
        headers = ["coef", "std err", "z", "P>|z|", f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]", "eff. n"]
        columns = [
            self._params, self.bse, tests["statistic"], tests["pvalue"],
            interval["lower"], interval["upper"], self.effective_nobs,
        ]
        if by_parameter:
            headers.append("lambda")
            columns.append(lam)
        rows = [
            [forg(column.iloc[k], prec=3 if j == 3 else 4) if j != 6 else f"{column.iloc[k]:.0f}"
             for j, column in enumerate(columns)]
            for k in range(len(self._params))
        ]
        summary.tables.append(SimpleTable(rows, headers, [str(i) for i in self._params.index], txt_fmt=fmt_params))
        notes = list(self._notes)
        if lam is not None and np.ndim(lam) > 0 and not by_parameter:
            notes.append(f"Lambda by {lam.index.name or 'group'}:\n" + lam.to_string(float_format=lambda v: f"{v:.4g}"))
        if self.method == "naive":
            notes.insert(0, NAIVE_WARNING)
        if notes:
            summary.add_extra_txt(notes)
        return summary

    def _with_inference(self, inference: Inference, detail: tuple[str, str]) -> "PPIResults":
        """A copy with another inference object (same estimates)."""
        copy = PPIResults(
            params=self._params,
            inference=inference,
            method=self.method,
            lam=self.lam,
            nobs=self.nobs,
            nobs_unlabeled=self.nobs_unlabeled,
            classical_bse=self._classical_bse,
            title=self._title,
            dep_variable=self._dep_variable,
            details=self._details + [detail],
            notes=self._notes,
        )
        return copy

    def __repr__(self) -> str:
        estimates = ", ".join(f"{name}={value:.4g}" for name, value in self._params.items())
        return (
            f"<PPIResults {self._title}, method={self.method!r}, n={self.nobs}, N={self.nobs_unlabeled}: "
            f"{estimates}>"
        )

    def _repr_html_(self) -> str:
        return self.summary().as_html()
