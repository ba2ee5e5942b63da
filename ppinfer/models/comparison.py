"""Several methods side by side on one model, and forest plots of intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.plotting import INVALID_METHODS, forest_plot


class Comparison:
    """Methods fitted to the same model: one row per method and parameter.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``method``, ``term``, ``estimate``, ``std_err``, ``lower``,
        ``upper``, ``width_ratio`` (interval width relative to the reference
        method's, classical by default), ``effective_n`` (labeled rows a classical
        analysis would need for the same precision; NaN for invalid methods),
        ``lambda`` and ``valid`` (False for naive pooling).
    results : dict
        The results object of each method.
    """

    def __init__(self, results: dict, alpha: float, reference: str | None):
        self.results = dict(results)
        self.alpha = alpha
        rows = []
        widths = {}
        for method, res in self.results.items():
            interval = res.conf_int(alpha)
            widths[method] = (interval["upper"] - interval["lower"]).to_numpy()
        base = widths.get(reference) if reference is not None else None
        for method, res in self.results.items():
            frame = res.to_frame(alpha)
            valid = method not in INVALID_METHODS
            frame["width_ratio"] = widths[method] / base if base is not None else np.nan
            frame["effective_n"] = res.effective_nobs.to_numpy() if valid else np.nan
            frame["valid"] = valid
            frame["method"] = method
            rows.append(frame)
        table = pd.concat(rows, ignore_index=True)
        self.table = table[["method", "term", "estimate", "std_err", "lower", "upper", "width_ratio",
                            "effective_n", "lambda", "valid"]]

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def __repr__(self) -> str:
        shown = self.table.drop(columns="valid").copy()
        shown["method"] = [m + (" (invalid)" if m in INVALID_METHODS else "") for m in shown["method"]]
        return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.4g}")

    def plot(self, *, terms=None, ax=None):
        """A forest plot: each parameter's interval from every method (naive pooling in red).

        Returns the matplotlib figure.
        """
        return forest_plot(self.table, alpha=self.alpha, terms=terms, ax=ax)
