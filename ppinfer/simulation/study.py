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
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._options import choose
from ..results import METHOD_LABELS
from .processes import FOCUS_PARAMETER

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

    def plot(self, metric: str = "coverage", *, parameter: str = "focus", x: str = "n", methods=None,
             band: float = 1.96):
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

        Returns
        -------
        matplotlib.figure.Figure
            Rows of panels are estimands; columns are the combinations of the
            other scenario columns that vary.
        """
        import matplotlib.pyplot as plt

        metric = choose(metric, METRIC_ALIASES, "metric")
        column, axis_label = METRICS[metric]
        if x not in self.scenario_columns:
            raise ValueError(f"x={x!r} is not a scenario column; use one of {self.scenario_columns}.")
        frame = self._select(parameter, methods)
        drawn = [m for m in self.methods if m in set(frame["method"])]
        estimands = list(dict.fromkeys(frame["estimand"]))
        facets = [c for c in self.scenario_columns if c not in ("estimand", x) and frame[c].nunique(dropna=False) > 1]
        combos = frame[facets].drop_duplicates().sort_values(facets).to_dict("records") if facets else [{}]
        share = "all" if metric in ("coverage", "type1", "power") else "row"
        figure, axes = plt.subplots(
            len(estimands), len(combos), figsize=(2.9 * len(combos) + 1.0, 2.3 * len(estimands) + 0.9),
            squeeze=False, sharex=True, sharey=share,
        )
        level = {"coverage": self.nominal, "type1": self.alpha}.get(metric)
        for i, estimand in enumerate(estimands):
            for j, combo in enumerate(combos):
                ax = axes[i, j]
                panel = frame[frame["estimand"] == estimand]
                for key, value in combo.items():
                    panel = panel[panel[key].isna()] if pd.isna(value) else panel[panel[key] == value]
                if level is not None:
                    half = band * np.sqrt(level * (1.0 - level) / self.reps)
                    ax.axhspan(level - half, level + half, color="0.85", zorder=0)
                    ax.axhline(level, color="0.5", lw=0.8, zorder=1)
                for k, method in enumerate(drawn):
                    line = panel[panel["method"] == method].sort_values(x)
                    if line.empty:
                        continue
                    ax.errorbar(
                        line[x], line[column], yerr=band * line[f"{column}_mcse"] if f"{column}_mcse" in line else None,
                        marker="o", ms=3.5, lw=1.3, capsize=0, label=METHOD_LABELS.get(method, method),
                        color=METHOD_COLOURS.get(method, f"C{k + 4}"),
                    )
                if i == 0:
                    ax.set_title(", ".join(_setting(key, value) for key, value in combo.items()), fontsize=9)
                if j == 0:
                    shown = panel["parameter"].iloc[0] if not panel.empty else ""
                    ax.set_ylabel(f"{estimand} ({shown})\n{axis_label}", fontsize=9)
                if i == len(estimands) - 1:
                    ax.set_xlabel(x)
                ax.tick_params(labelsize=8)
                ax.grid(alpha=0.3, lw=0.5)
        values = frame[x].dropna()
        if x in ("n", "N") and len(values) and values.min() > 0 and values.max() / values.min() >= 8:
            from matplotlib.ticker import NullFormatter, NullLocator, ScalarFormatter

            for ax in axes.ravel():
                ax.set_xscale("log")
                ax.set_xticks(sorted(values.unique()))
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_locator(NullLocator())
                ax.xaxis.set_minor_formatter(NullFormatter())
        if metric in ("coverage", "type1", "power"):
            axes[0, 0].set_ylim(*self._rate_limits(frame, column, level, band))
        handles, names = axes[0, 0].get_legend_handles_labels()
        for ax in axes.ravel():
            more_handles, more_names = ax.get_legend_handles_labels()
            for handle, name in zip(more_handles, more_names):
                if name not in names:
                    handles.append(handle)
                    names.append(name)
        if level is not None:
            from matplotlib.patches import Patch

            handles.append(Patch(color="0.85"))
            names.append(f"nominal {level:g} \u00b1 {band:g} MC SE ({self.reps} reps)")
        figure.legend(handles, names, loc="lower center", ncol=min(len(names), 5), fontsize=8, frameon=False)
        figure.tight_layout(rect=(0, 0.4 / figure.get_figheight(), 1, 1))
        return figure

    def _rate_limits(self, frame: pd.DataFrame, column: str, level: float | None, band: float) -> tuple[float, float]:
        """The whole [0, 1] range, or the part near the nominal level when every point lies there."""
        values = frame[column].dropna()
        if level is None or values.empty:
            return -0.02, 1.02
        half = band * np.sqrt(level * (1.0 - level) / self.reps)
        low = min(values.min() - band * frame[f"{column}_mcse"].max(), level - half)
        high = max(values.max() + band * frame[f"{column}_mcse"].max(), level + half)
        if level > 0.5 and low > 0.5:
            return max(low - 0.01, 0.0), min(1.0, high) + 0.005
        if level < 0.5 and high < 0.5:
            return -0.005, high + 0.01
        return -0.02, 1.02

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


def load(path) -> Study:
    """Read a study written by :meth:`Study.to_csv`.

    Returns
    -------
    Study
        Its summary, plots and settings (replications are not stored in the file).
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


def concat(studies) -> Study:
    """One study from several run with the same settings (for example one per estimand).

    Raises
    ------
    ValueError
        If the studies differ in replications, seed, alpha, effect or methods, or
        share a scenario.
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
