"""The results of a simulation study: a tidy summary, figures, CSV files.

What each summary column means (one row per scenario, method and parameter;
rates over the replications where the method gave a finite estimate and
interval, ``reps - failures`` of them, each with its Monte Carlo standard error
in the ``*_mcse`` column):

``coverage``
    Fraction of level ``1 - alpha`` intervals containing the true value.
``type1_error``
    Rejection rate of the level-``alpha`` two-sided test of ``H0: theta = truth``
    (a true null), read from the interval by duality: the interval excludes the
    truth. It is ``1 - coverage``, listed because reviewers ask for it.
``power``
    Rejection rate of the two-sided test of the false null
    ``H0: theta = truth - effect_size``, again by duality (the interval excludes
    ``truth - effect_size``). ``effect_size = effect * sd``, with ``sd`` the Monte
    Carlo standard deviation of the classical estimates in the same scenario
    (the first method's when classical is not run), so the classical method's
    power is about ``Phi(effect - z) + Phi(-effect - z)`` (0.80 at the default
    ``effect = 2.8`` and ``alpha = 0.05``) and a method's power shows its gain.
``mean_width``, ``bias``, ``rmse``
    Mean interval width, mean of ``estimate - truth`` and root mean squared error.
``effective_n``
    Mean of the effective sample sizes the method reports
    (``n * Var_classical / Var_method`` estimated on each dataset).
``effective_n_empirical``
    ``n * MSE_classical / MSE_method`` over the replications: the labeled sample
    size at which a classical analysis would be as accurate.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .._options import choose
from ..results import METHOD_LABELS
from .processes import FOCUS_PARAMETER

__all__ = ["Study", "concat", "load"]

#: metric names accepted by ``Study.plot``: (summary column, axis label)
METRICS = {
    "coverage": ("coverage", "Coverage"),
    "width": ("mean_width", "Mean interval width"),
    "type1": ("type1_error", "Type I error"),
    "power": ("power", "Power"),
    "bias": ("bias", "Bias"),
    "rmse": ("rmse", "RMSE"),
    "effective_n": ("effective_n", "Effective n"),
}
METRIC_ALIASES = {
    **{name: name for name in METRICS},
    "mean_width": "width", "type1_error": "type1", "type_i_error": "type1", "type1error": "type1",
    "effective_nobs": "effective_n",
}

#: metrics shown zoomed around their nominal value, with invalid methods in panels of their own
NOMINAL_METRICS = ("coverage", "type1")
#: metrics that mean nothing for an invalid method (not drawn for it)
MEANINGLESS_IF_INVALID = ("power", "effective_n")
#: a method is invalid when its coverage falls this far plus 3.5 Monte Carlo SE below nominal
INVALID_MARGIN = 0.10

#: colours of the built-in methods in every figure
METHOD_COLOURS = {"classical": "0.35", "naive": "tab:red", "ppi": "tab:blue", "ppi++": "tab:green"}

#: short names of scenario columns in panel titles
SHORT_NAMES = {"prediction_quality": "quality", "prediction_bias": "bias"}

FILE_MARKER = "# ppinfer simulation study "


def _setting(column: str, value) -> str:
    """A scenario setting as a panel title shows it: ``quality 0.5``."""
    shown = f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)
    return f"{SHORT_NAMES.get(column, column)} {shown}"


def _rate(hits: np.ndarray) -> tuple[float, float]:
    if hits.size == 0:
        return np.nan, np.nan
    rate = float(hits.mean())
    return rate, float(np.sqrt(rate * (1.0 - rate) / hits.size))


def _mean(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return np.nan, np.nan
    spread = float(values.std(ddof=1)) if values.size > 1 else np.nan
    return float(values.mean()), spread / np.sqrt(values.size)


def summarise(
    scenario: dict, labels: list[str], parameters: list[str], *, n: int, alpha: float, effect: float,
    truth: np.ndarray, estimate: np.ndarray, lower: np.ndarray, upper: np.ndarray, effective_n: np.ndarray,
    failed: np.ndarray, keep_replications: bool = False,
):
    """Summary rows of one scenario (and, optionally, its replications as a long DataFrame).

    ``truth`` is (reps, parameters); ``estimate``, ``lower``, ``upper`` and
    ``effective_n`` are (reps, methods, parameters); ``failed`` is (reps, methods).
    """
    reps = truth.shape[0]
    usable = ~failed[:, :, None] & ~np.isnan(estimate) & ~np.isnan(lower) & ~np.isnan(upper)
    error = estimate - truth[:, None, :]
    reference = labels.index("classical") if "classical" in labels else 0
    rows = []
    for p, parameter in enumerate(parameters):
        keep = usable[:, reference, p]
        sd = float(np.std(error[keep, reference, p], ddof=1)) if keep.sum() > 1 else np.nan
        effect_size = effect * sd
        mse_reference = float(np.mean(error[keep, reference, p] ** 2)) if keep.any() else np.nan
        for m, label in enumerate(labels):
            ok = usable[:, m, p]
            t, lo, up, err = truth[ok, p], lower[ok, m, p], upper[ok, m, p], error[ok, m, p]
            coverage, coverage_se = _rate((lo <= t) & (t <= up))
            null = t - effect_size
            power, power_se = _rate((null < lo) | (null > up)) if np.isfinite(effect_size) else (np.nan, np.nan)
            width, width_se = _mean(up - lo)
            bias, bias_se = _mean(err)
            squared, squared_se = _mean(err**2)
            rmse = float(np.sqrt(squared)) if ok.any() else np.nan
            with np.errstate(divide="ignore", invalid="ignore"):
                rmse_se = squared_se / (2.0 * rmse) if ok.any() else np.nan
                empirical = n * mse_reference / squared if "classical" in labels and ok.any() else np.nan
            reported = effective_n[ok, m, p]
            reported = reported[np.isfinite(reported)]
            rows.append({
                **scenario,
                "method": label,
                "parameter": parameter,
                "reps": int(ok.sum()),
                "failures": int(reps - ok.sum()),
                "coverage": coverage,
                "coverage_mcse": coverage_se,
                "type1_error": np.nan if np.isnan(coverage) else 1.0 - coverage,
                "type1_error_mcse": coverage_se,
                "power": power,
                "power_mcse": power_se,
                "effect_size": effect_size,
                "mean_width": width,
                "mean_width_mcse": width_se,
                "bias": bias,
                "bias_mcse": bias_se,
                "rmse": rmse,
                "rmse_mcse": rmse_se,
                "effective_n": float(reported.mean()) if reported.size else np.nan,
                "effective_n_empirical": empirical,
            })
    replications = None
    if keep_replications:
        shape = estimate.shape
        rep, method, parameter = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
        replications = pd.DataFrame({
            **{key: [value] * estimate.size for key, value in scenario.items()},
            "rep": rep.ravel(),
            "method": np.asarray(labels, dtype=object)[method.ravel()],
            "parameter": np.asarray(parameters, dtype=object)[parameter.ravel()],
            "truth": np.broadcast_to(truth[:, None, :], shape).ravel(),
            "estimate": estimate.ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
            "effective_n": effective_n.ravel(),
            "failed": np.broadcast_to(failed[:, :, None], shape).ravel(),
        })
    return rows, replications


class Study:
    """The results of :func:`ppinfer.simulation.run` (or of :func:`load`).

    Attributes
    ----------
    scenarios : DataFrame
        One row per scenario.
    methods : list of str
        Method labels, in the order given.
    reps : int
        Replications per scenario.
    seed : int
        The root seed (run again with it to reproduce every number).
    alpha, effect : float
        Level of intervals and tests; alternative of the power column.
    elapsed : float or None
        Seconds the replications took (None for a loaded study).
    replications : DataFrame or None
        Every replication's estimate and interval (``keep_replications=True``).

    Notes
    -----
    The columns of :meth:`summary` are described in :mod:`ppinfer.simulation.study`.

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> study = sim.run(sim.grid(estimand="mean", n=[50, 200], N=1000), reps=20, seed=1, progress=False)
    >>> study
    <Study: 2 scenarios x 4 methods (classical, naive, ppi, ppi++), 20 replications each, seed 1, alpha 0.05>
    >>> print(study.summary(parameter="focus")[["n", "method", "coverage"]])
         n     method  coverage
    0   50  classical      0.90
    1   50      naive      0.95
    2   50        ppi      0.95
    3   50      ppi++      0.95
    4  200  classical      1.00
    5  200      naive      1.00
    6  200        ppi      0.85
    7  200      ppi++      0.90

    Twenty replications only show the mechanics: coverage estimated from
    ``reps`` replications has a Monte Carlo standard error of about
    ``sqrt(0.05 * 0.95 / reps)`` (the ``coverage_mcse`` column).
    """

    def __init__(self, summary: pd.DataFrame, *, scenario_columns: list[str], methods: list[str], reps: int,
                 seed: int, alpha: float, effect: float, elapsed: float | None = None,
                 replications: pd.DataFrame | None = None):
        self._summary = summary
        self.scenario_columns = list(scenario_columns)
        self.methods = list(methods)
        self.reps, self.seed, self.alpha, self.effect = reps, seed, alpha, effect
        self.elapsed = elapsed
        self.replications = replications

    @classmethod
    def from_rows(cls, rows: list[dict], *, scenarios: pd.DataFrame, replications, **settings) -> "Study":
        summary = pd.DataFrame(rows)
        if replications is not None:
            replications = pd.concat(replications, ignore_index=True)
        return cls(summary, scenario_columns=list(scenarios.columns), replications=replications, **settings)

    @property
    def scenarios(self) -> pd.DataFrame:
        return self._summary[self.scenario_columns].drop_duplicates().reset_index(drop=True)

    @property
    def nominal(self) -> float:
        return 1.0 - self.alpha

    def focus_parameter(self, estimand: str) -> str:
        """The parameter shown by default for an estimand (the first one for user processes)."""
        available = self._summary.loc[self._summary["estimand"] == estimand, "parameter"]
        preferred = FOCUS_PARAMETER.get(estimand)
        return preferred if preferred in set(available) else available.iloc[0]

    def _select(self, parameter, methods) -> pd.DataFrame:
        frame = self._summary
        if methods is not None:
            methods = [methods] if isinstance(methods, str) else list(methods)
            unknown = [m for m in methods if m not in self.methods]
            if unknown:
                raise ValueError(f"methods {unknown} are not in this study; it has {self.methods}.")
            frame = frame[frame["method"].isin(methods)]
        if parameter is None:
            return frame
        if parameter == "focus":
            wanted = frame["estimand"].map({e: self.focus_parameter(e) for e in frame["estimand"].unique()})
            return frame[frame["parameter"] == wanted]
        if parameter not in set(frame["parameter"]):
            raise ValueError(
                f"parameter={parameter!r} is not in this study; use 'focus', None (all) or one of "
                f"{sorted(set(frame['parameter']))}."
            )
        return frame[frame["parameter"] == parameter]

    def summary(self, *, parameter: str | None = None, methods=None) -> pd.DataFrame:
        """The tidy summary: scenario columns, method, parameter and every metric.

        Parameters
        ----------
        parameter : str, optional
            None (every parameter), ``"focus"`` (one per estimand: the mean, the
            median, the slope ``x1`` of a regression, the treatment effect) or a
            parameter name.
        methods : str or list of str, optional
            Keep these methods only.

        Returns
        -------
        DataFrame
            One row per scenario, method and parameter; column meanings in
            :mod:`ppinfer.simulation.study`.
        """
        return self._select(parameter, methods).reset_index(drop=True).copy()

    def invalid_methods(self, *, parameter: str | None = "focus") -> list[str]:
        """Methods whose coverage falls far below nominal in some scenario.

        Parameters
        ----------
        parameter : str or None
            ``"focus"`` (default), a parameter name, or None for every parameter.

        Returns
        -------
        list of str
            The methods, in the study's order, with a coverage below
            ``1 - alpha - 0.10 - 3.5 * sqrt(alpha (1 - alpha) / reps)`` in at least
            one scenario: farther below nominal than small-sample z intervals
            stray (0.90 at nominal 0.95 for n = 50 in the paper grid) plus what
            Monte Carlo error explains. Naive pooling with biased predictions is
            the typical case (coverage near 0).

        Examples
        --------
        >>> from ppinfer import simulation as sim
        >>> study = sim.run(sim.grid(estimand="mean", n=50, N=1000, prediction_bias=0.5),
        ...                 reps=30, seed=1, progress=False)
        >>> study.invalid_methods()
        ['naive']
        """
        frame = self._select(parameter, None)
        mc_se = np.sqrt(self.alpha * (1.0 - self.alpha) / self.reps)
        threshold = self.nominal - INVALID_MARGIN - 3.5 * mc_se
        lowest = frame.groupby("method", sort=False)["coverage"].min()
        return [m for m in self.methods if m in lowest.index and lowest[m] < threshold]

    def _invalid_for_plot(self, invalid, parameter, drawn: list[str]) -> list[str]:
        if isinstance(invalid, str) and invalid == "auto":
            chosen = self.invalid_methods(parameter=parameter)
        elif invalid is None:
            chosen = []
        else:
            chosen = [invalid] if isinstance(invalid, str) else list(invalid)
            unknown = [m for m in chosen if m not in self.methods]
            if unknown:
                raise ValueError(
                    f"invalid={invalid!r}: methods {unknown} are not in this study; it has {self.methods}. "
                    "Pass 'auto', None or a list of its methods."
                )
        return [m for m in drawn if m in chosen]

    def plot(self, metric: str = "coverage", *, parameter: str = "focus", x: str = "n", methods=None,
             band: float = 1.96, invalid="auto"):
        """A grid of panels of one metric against a scenario column, one line per method.

        Parameters
        ----------
        metric : {"coverage", "width", "type1", "power", "bias", "rmse", "effective_n"}
        parameter : str
            ``"focus"`` (default: one parameter per estimand) or a parameter name.
        x : str
            The scenario column on the horizontal axis (default ``"n"``).
        methods : list of str, optional
            Methods to draw (default: all).
        band : float
            Half-width of the nominal band in Monte Carlo standard errors: for
            coverage ``1 - alpha +- band * sqrt(alpha (1 - alpha) / reps)``, for
            type I error ``alpha +-`` the same. Points carry ``+- band`` Monte
            Carlo standard error bars.
        invalid : "auto", None or list of str
            Methods whose intervals are invalid. For coverage and type I error they
            are drawn in panels of their own, on the whole 0-1 scale, below each
            row of zoomed panels of the other methods; their power and effective n
            mean nothing and are not drawn. ``"auto"`` (default) takes
            :meth:`invalid_methods`; None draws every method alike.

        Returns
        -------
        matplotlib.figure.Figure
            Rows of panels are estimands; columns are the combinations of the
            other scenario columns that vary. For coverage and type I error the
            vertical axis is zoomed on the valid methods' points, their error
            bars and the nominal band.

        Examples
        --------
        >>> from ppinfer import simulation as sim
        >>> study = sim.run(sim.grid(estimand="mean", n=[50, 200], N=1000, prediction_bias=[0.0, 0.5]),
        ...                 reps=20, seed=1, progress=False)
        >>> figure = study.plot("coverage")   # naive pooling in its own row of panels
        >>> len(figure.axes)
        4
        """
        import matplotlib.pyplot as plt

        metric = choose(metric, METRIC_ALIASES, "metric")
        column, axis_label = METRICS[metric]
        if x not in self.scenario_columns:
            raise ValueError(f"x={x!r} is not a scenario column; use one of {self.scenario_columns}.")
        frame = self._select(parameter, methods)
        drawn = [m for m in self.methods if m in set(frame["method"])]
        invalid = self._invalid_for_plot(invalid, parameter, drawn)
        hidden = invalid if metric in MEANINGLESS_IF_INVALID else []
        apart = invalid if metric in NOMINAL_METRICS else []
        drawn = [m for m in drawn if m not in hidden]
        estimands = list(dict.fromkeys(frame["estimand"]))
        facets = [c for c in self.scenario_columns if c not in ("estimand", x) and frame[c].nunique(dropna=False) > 1]
        combos = frame[facets].drop_duplicates().sort_values(facets).to_dict("records") if facets else [{}]
        # one row of panels per estimand, and below it one for the invalid methods
        rows = [(estimand, is_apart) for estimand in estimands for is_apart in ([False, True] if apart else [False])]
        heights = [1.25 if is_apart else 2.3 for _, is_apart in rows]
        note = (
            f"Not drawn: {', '.join(METHOD_LABELS.get(m, m) for m in hidden)}, whose coverage falls far below "
            f"nominal: its {axis_label.lower()} means nothing." if hidden else ""
        )
        bottom = 0.4 + (0.25 if note else 0.0)
        figure, axes = plt.subplots(
            len(rows), len(combos), figsize=(2.9 * len(combos) + 1.0, sum(heights) + 0.5 + bottom),
            squeeze=False, sharex=True, sharey="row", gridspec_kw={"height_ratios": heights},
        )
        level = {"coverage": self.nominal, "type1": self.alpha}.get(metric)
        for i, (estimand, is_apart) in enumerate(rows):
            row_methods = [m for m in drawn if (m in apart) == is_apart]
            for j, combo in enumerate(combos):
                ax = axes[i, j]
                panel = frame[frame["estimand"] == estimand]
                for key, value in combo.items():
                    panel = panel[panel[key].isna()] if pd.isna(value) else panel[panel[key] == value]
                self._draw_panel(ax, panel, row_methods, x, column, level, band)
                if i == 0:
                    ax.set_title(", ".join(_setting(key, value) for key, value in combo.items()), fontsize=9)
                if j == 0 and is_apart:
                    ax.set_ylabel(f"invalid methods\n{axis_label}", fontsize=8)
                elif j == 0:
                    shown = panel["parameter"].iloc[0] if not panel.empty else ""
                    ax.set_ylabel(f"{estimand} ({shown})\n{axis_label}", fontsize=9)
                if i == len(rows) - 1:
                    ax.set_xlabel(x)
                ax.tick_params(labelsize=8)
                ax.grid(alpha=0.3, lw=0.5)
            if metric in NOMINAL_METRICS or metric == "power":
                valid = [m for m in drawn if m not in apart]
                limits = (-0.02, 1.02) if is_apart or level is None else self._zoomed_limits(frame, valid, column, level, band)
                axes[i, 0].set_ylim(*limits)
        self._log_axes(axes, frame, x, column, metric)
        self._legend(figure, axes, level, band, above=0.25 if note else 0.0)
        if note:
            figure.text(0.5, 0.06 / figure.get_figheight(), note, ha="center", va="bottom", fontsize=8, style="italic")
        figure.tight_layout(rect=(0, bottom / figure.get_figheight(), 1, 1))
        return figure

    def _draw_panel(self, ax, panel: pd.DataFrame, methods: list[str], x: str, column: str, level, band: float) -> None:
        """The nominal band and line, then one line with error bars per method."""
        if level is not None:
            half = band * np.sqrt(level * (1.0 - level) / self.reps)
            ax.axhspan(level - half, level + half, color="0.85", zorder=0)
            ax.axhline(level, color="0.5", lw=0.8, zorder=1)
        for method in methods:
            line = panel[panel["method"] == method].sort_values(x)
            if line.empty:
                continue
            ax.errorbar(
                line[x], line[column], yerr=band * line[f"{column}_mcse"] if f"{column}_mcse" in line else None,
                marker="o", ms=3.5, lw=1.3, capsize=0, label=METHOD_LABELS.get(method, method),
                color=METHOD_COLOURS.get(method, f"C{self.methods.index(method) + 4}"),
            )

    def _zoomed_limits(self, frame: pd.DataFrame, methods: list[str], column: str, level: float,
                       band: float) -> tuple[float, float]:
        """Vertical limits holding the nominal band and every point of ``methods`` with its error bar."""
        rows = frame[frame["method"].isin(methods)]
        values, errors = rows[column], band * rows[f"{column}_mcse"].fillna(0.0)
        half = band * np.sqrt(level * (1.0 - level) / self.reps)
        low = min(level - half, (values - errors).min(skipna=True)) if values.notna().any() else level - half
        high = max(level + half, (values + errors).max(skipna=True)) if values.notna().any() else level + half
        pad = max(0.005, 0.08 * (high - low))
        return max(low - pad, -0.02), min(high + pad, 1.02)

    @staticmethod
    def _log_axes(axes, frame: pd.DataFrame, x: str, column: str, metric: str) -> None:
        """Sample sizes spanning a factor 8 or more on a log axis; effective n then too."""
        values = frame[x].dropna()
        if not (x in ("n", "N") and len(values) and values.min() > 0 and values.max() / values.min() >= 8):
            return
        from matplotlib.ticker import NullFormatter, NullLocator, ScalarFormatter

        for ax in axes.ravel():
            ax.set_xscale("log")
            ax.set_xticks(sorted(values.unique()))
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
        if metric == "effective_n" and (frame[column].dropna() > 0).all():
            # effective n = gain x n: a log scale shows the gain as a constant distance above the classical line
            for ax in axes[:, 0]:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ScalarFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())

    def _legend(self, figure, axes, level, band: float, above: float) -> None:
        """One legend for every panel at the bottom, ``above`` inches over the figure's lower edge."""
        handles, names = [], []
        for ax in axes.ravel():
            for handle, name in zip(*ax.get_legend_handles_labels()):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        if level is not None:
            from matplotlib.patches import Patch

            handles.append(Patch(color="0.85"))
            names.append(f"nominal {level:g} \u00b1 {band:g} MC SE ({self.reps} reps)")
        figure.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, above / figure.get_figheight()),
                      ncol=min(len(names), 5), fontsize=8, frameon=False)

    def to_csv(self, path) -> None:
        """Write the summary to a CSV file, with the study's settings in a first comment line."""
        settings = {
            "reps": self.reps, "seed": self.seed, "alpha": self.alpha, "effect": self.effect,
            "methods": self.methods, "scenario_columns": self.scenario_columns,
        }
        path = Path(path)
        with path.open("w", newline="") as handle:
            handle.write(FILE_MARKER + json.dumps(settings) + "\n")
            self._summary.to_csv(handle, index=False)

    def __repr__(self) -> str:
        return (
            f"<Study: {len(self.scenarios)} scenarios x {len(self.methods)} methods ({', '.join(self.methods)}), "
            f"{self.reps} replications each, seed {self.seed}, alpha {self.alpha:g}>"
        )

    def _repr_html_(self) -> str:
        return f"<p>{self!r}</p>" + self.summary(parameter="focus").to_html(index=False, float_format="{:.4g}".format)


def load(path: str | os.PathLike) -> Study:
    """Read a study written by :meth:`Study.to_csv`.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.

    Returns
    -------
    Study
        Its summary, plots and settings (replications are not stored in the file).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from ppinfer import simulation as sim
    >>> study = sim.run(sim.grid(estimand="mean", n=50, N=500), reps=20, seed=1, progress=False)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "study.csv"
    ...     study.to_csv(path)
    ...     again = sim.load(path)
    >>> again
    <Study: 1 scenarios x 4 methods (classical, naive, ppi, ppi++), 20 replications each, seed 1, alpha 0.05>
    >>> again.summary().equals(study.summary())
    True
    """
    path = Path(path)
    with path.open() as handle:
        first = handle.readline()
        if not first.startswith(FILE_MARKER):
            raise ValueError(f"{path} was not written by Study.to_csv (its first line is not the settings comment).")
        settings = json.loads(first[len(FILE_MARKER):])
        summary = pd.read_csv(handle)
    for column in ("n", "N"):
        if column in summary:
            summary[column] = summary[column].astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Study(summary, **settings)


def concat(studies: Iterable[Study]) -> Study:
    """One study from several run with the same settings (for example one per estimand).

    Parameters
    ----------
    studies : iterable of Study
        Studies of distinct scenarios, with the same replications, seed, alpha,
        effect and methods.

    Returns
    -------
    Study

    Raises
    ------
    ValueError
        If the studies differ in replications, seed, alpha, effect or methods, or
        share a scenario.

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> means = sim.run(sim.grid(estimand="mean", n=50, N=500), reps=20, seed=1, progress=False)
    >>> slopes = sim.run(sim.grid(estimand="ols", n=50, N=500), reps=20, seed=1, progress=False)
    >>> both = sim.concat([means, slopes])
    >>> print(both.summary(parameter="focus")[["estimand", "method", "coverage"]])
      estimand     method  coverage
    0     mean  classical      0.95
    1     mean      naive      1.00
    2     mean        ppi      1.00
    3     mean      ppi++      1.00
    4      ols  classical      1.00
    5      ols      naive      0.05
    6      ols        ppi      0.90
    7      ols      ppi++      0.95
    """
    studies = list(studies)
    if not studies:
        raise ValueError("concat needs at least one study.")
    first = studies[0]
    for other in studies[1:]:
        for attribute in ("reps", "seed", "alpha", "effect", "methods"):
            if getattr(other, attribute) != getattr(first, attribute):
                raise ValueError(
                    f"studies with different {attribute} cannot be combined: {getattr(first, attribute)!r} "
                    f"and {getattr(other, attribute)!r}."
                )
    columns = list(dict.fromkeys(c for study in studies for c in study.scenario_columns))
    summary = pd.concat([study._summary for study in studies], ignore_index=True)
    ordered = columns + [c for c in summary.columns if c not in columns]
    summary = summary[ordered]
    if summary.duplicated(columns + ["method", "parameter"]).any():
        raise ValueError("the studies share scenarios; combine studies of different scenarios only.")
    replications = [s.replications for s in studies if s.replications is not None]
    elapsed = [s.elapsed for s in studies]
    return Study(
        summary, scenario_columns=columns, methods=first.methods, reps=first.reps, seed=first.seed,
        alpha=first.alpha, effect=first.effect, elapsed=None if None in elapsed else float(sum(elapsed)),
        replications=pd.concat(replications, ignore_index=True) if len(replications) == len(studies) else None,
    )
