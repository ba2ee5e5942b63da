"""The demonstration: every estimator on simulated data with biased predictions.

Run with ``ppinfer demo`` or ``python -m ppinfer demo``. For each estimand it draws a
labeled sample (outcomes and predictions) and a large unlabeled sample
(predictions only) whose predictions are biased in level and slope, fits the
classical, naive pooling, PPI and PPI++ estimators, and prints their estimates
and 95% intervals beside the true value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .datasets import simulate
from .results import METHOD_LABELS

DEMO_METHODS = ("classical", "naive", "ppi", "ppi++")

#: (estimand, parameter shown) pairs of the demonstration
DEMO_PARAMETERS = (
    ("mean", "y"),
    ("quantile", "q=0.5"),
    ("ols", "x1"),
    ("logit", "x1"),
    ("poisson", "x1"),
)


def demo_table(n: int = 500, N: int = 50_000, *, quality: float = 0.8, bias: float = 0.5, seed: int = 2026,
               alpha: float = 0.05) -> pd.DataFrame:
    """Fit each estimator with each method on one simulated dataset per estimand.

    Returns
    -------
    DataFrame
        One row per (estimand, method): the parameter shown, its true value, the
        estimate, the interval, its width, whether it covers the truth, lambda and
        the effective number of labeled rows.
    """
    seeds = np.random.SeedSequence(seed).spawn(len(DEMO_PARAMETERS))
    rows = []
    for (estimand, parameter), child in zip(DEMO_PARAMETERS, seeds):
        data = simulate(estimand, n, N, quality=quality, bias=bias, seed=np.random.default_rng(child))
        model = data.model()
        truth = data.truth[parameter]
        for method in DEMO_METHODS:
            res = model.fit(method=method)
            lower, upper = res.conf_int(alpha).loc[parameter]
            lam = res.lam if res.lam is None or np.ndim(res.lam) == 0 else res.lam[parameter]
            rows.append(
                {
                    "estimand": estimand,
                    "parameter": parameter,
                    "method": METHOD_LABELS[method],
                    "truth": truth,
                    "estimate": res.params[parameter],
                    "lower": lower,
                    "upper": upper,
                    "width": upper - lower,
                    "covers": bool(lower <= truth <= upper),
                    "lambda": np.nan if lam is None else lam,
                    "effective_n": res.effective_nobs[parameter],
                }
            )
    return pd.DataFrame(rows)


def run(n: int = 500, N: int = 50_000, *, quality: float = 0.8, bias: float = 0.5, seed: int = 2026) -> pd.DataFrame:
    """Print the demonstration table and return it."""
    table = demo_table(n, N, quality=quality, bias=bias, seed=seed)
    print(
        f"ppinfer demonstration: n = {n} labeled, N = {N} unlabeled, predictions with correlation "
        f"{quality:g} to the outcome,\nbiased by {bias:g} SD in level and {bias:.0%} in slope. "
        "95% intervals; 'covers' = the interval contains the true value.\n"
    )
    formats = {
        "truth": "{:.3f}".format, "estimate": "{:.3f}".format, "lower": "{:.3f}".format,
        "upper": "{:.3f}".format, "width": "{:.3f}".format, "lambda": "{:.2f}".format,
        "effective_n": "{:.0f}".format,
    }
    for estimand, block in table.groupby("estimand", sort=False):
        parameter = block["parameter"].iloc[0]
        print(f"{estimand}: parameter {parameter!r}, true value {block['truth'].iloc[0]:.3f}")
        shown = block.drop(columns=["estimand", "parameter", "truth"]).set_index("method")
        print(shown.to_string(formatters=formats, na_rep="-"))
        print()
    print(
        "Naive pooling treats predictions as data: with biased predictions its narrow intervals miss\n"
        "the truth. PPI removes the bias with the labeled sample; PPI++ tunes lambda so its interval is\n"
        "never meaningfully wider than the classical (labeled-only) one, and narrower when predictions help."
    )
    return table
