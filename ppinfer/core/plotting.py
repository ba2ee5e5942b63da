"""Figures of results: forest plots of intervals."""

from __future__ import annotations

import pandas as pd

#: methods drawn (and flagged) as invalid baselines
INVALID_METHODS = ("naive",)
WARNING_COLOUR = "#c0392b"
COLOURS = ("#1f4e79", "#2e86c1", "#117a65", "#7d3c98", "#b9770e", "#566573")


def forest_plot(table: pd.DataFrame, *, alpha: float, terms=None, ax=None):
    """Intervals per parameter (rows) and method (markers), from a comparison table."""
    import matplotlib.pyplot as plt

    terms = list(dict.fromkeys(table["term"])) if terms is None else list(terms)
    methods = list(dict.fromkeys(table["method"]))
    if ax is None:
        figure, ax = plt.subplots(figsize=(6.5, 0.6 + 0.45 * len(terms) * max(len(methods), 1)))
    else:
        figure = ax.figure
    step = 1.0 / (len(methods) + 1)
    for j, method in enumerate(methods):
        colour = WARNING_COLOUR if method in INVALID_METHODS else COLOURS[j % len(COLOURS)]
        rows = table[table["method"] == method].set_index("term")
        for i, term in enumerate(terms):
            if term not in rows.index:
                continue
            row = rows.loc[term]
            y = i + (j + 1) * step - 0.5
            label = f"{method} (invalid)" if method in INVALID_METHODS else method
            ax.plot([row["lower"], row["upper"]], [y, y], color=colour, linewidth=2,
                    label=label if i == 0 else None)
            ax.plot([row["estimate"]], [y], "o", color=colour, markersize=4)
    ax.set_yticks(range(len(terms)))
    ax.set_yticklabels(terms)
    ax.invert_yaxis()
    ax.set_xlabel(f"estimate and {100 * (1 - alpha):g}% interval")
    ax.legend(loc="best", fontsize="small", frameon=False)
    figure.tight_layout()
    return figure
