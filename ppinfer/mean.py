"""Prediction-powered estimation of means."""

from __future__ import annotations

import numpy as np

from .data import as_variable, make_sample
from .fitting import MEstimate, fit_mean
from .model import PPIModel


class Mean(PPIModel):
    """Mean of an outcome, or of each column of a multi-column outcome.

    Parameters
    ----------
    y : array-like or pandas object, shape (n,) or (n, k)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, same shape as ``y``
        Predictions for the labeled units.
    yhat_unlabeled : array-like, shape (N,) or (N, k)
        Predictions for the unlabeled units.
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from ``y`` and ``yhat`` together).

    Notes
    -----
    With ``r = n / N`` and 1/n normalised (co)variances (METHODS.md, section 1;
    Angelopoulos et al. 2023; Angelopoulos, Duchi & Zrnic 2023)::

        theta(lam) = lam * mean(yhat_unlabeled) + mean(y - lam * yhat)
        Var        = lam^2 s2(yhat_unlabeled) / N + s2(y - lam * yhat) / n
        lam_hat    = cov(y, yhat) / (s2(yhat) + r s2(yhat_unlabeled)), clipped to [0, 1]

    Each column of a multi-column outcome gets its own tuned lambda.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=200); yhat = y + rng.normal(0.5, 0.5, size=200)
    >>> yhat_unlabeled = rng.normal(size=5000) + rng.normal(0.5, 0.5, size=5000)
    >>> res = ppinfer.Mean(y, yhat, yhat_unlabeled).fit()
    >>> res.conf_int()  # doctest: +SKIP
    """

    _title = "Mean"
    _default_tuning = "per-coefficient"

    def __init__(self, y, yhat, yhat_unlabeled, *, missing: str = "raise"):
        outcome = as_variable(y, "y", ndim=2, default_name="y")
        predicted = as_variable(yhat, "yhat", ndim=2, default_name="yhat")
        predicted_unlabeled = as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")
        k = outcome.values.shape[1]
        for argument, variable in (("yhat", predicted), ("yhat_unlabeled", predicted_unlabeled)):
            if variable.values.shape[1] != k:
                raise ValueError(
                    f"{argument} has {variable.values.shape[1]} column(s) but y has {k}; "
                    "give one prediction per outcome column."
                )
        self.labeled = make_sample({"y": outcome, "yhat": predicted}, missing=missing, label="labeled")
        self.unlabeled = make_sample({"yhat_unlabeled": predicted_unlabeled}, missing=missing, label="unlabeled")
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed for a variance.")
        self.param_names = outcome.names
        self.endog_name = ", ".join(outcome.names)

    def _estimate(self, which: str, start: np.ndarray | None = None) -> MEstimate:
        if which == "y":
            return fit_mean(self.labeled["y"], keep_influence=True)
        if which == "yhat":
            return fit_mean(self.labeled["yhat"], keep_influence=True)
        if which == "unlabeled":
            return fit_mean(self.unlabeled["yhat_unlabeled"])
        return fit_mean(np.concatenate([self.labeled["y"], self.unlabeled["yhat_unlabeled"]]))
