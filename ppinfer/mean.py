"""Prediction-powered estimation of means."""

from __future__ import annotations

import numpy as np

from .data import as_variable
from .fitting import MEstimate, fit_mean, grouped_scores
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
    weights, weights_unlabeled : array-like, optional
        Row weights of each sample (e.g. survey weights).
    label_prob : array-like, optional
        Known probability with which each labeled unit was chosen for labeling
        from all units (labeled and unlabeled); see :class:`~ppinfer.model.PPIModel`.
    groups, groups_unlabeled : array-like, optional
        Cluster labels for cluster-robust standard errors; a label present in both
        samples is one cluster.
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from every array of their sample together).

    ``yhat`` and ``yhat_unlabeled`` of shape (n, K) and (N, K) for a single
    outcome are K synthetic draws per unit: their row mean is the prediction, and
    the summary reports the variance gained over a single draw.

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

    def __init__(
        self,
        y,
        yhat,
        yhat_unlabeled,
        *,
        weights=None,
        weights_unlabeled=None,
        label_prob=None,
        groups=None,
        groups_unlabeled=None,
        strata=None,
        strata_unlabeled=None,
        stratum_weights=None,
        missing: str = "raise",
    ):
        outcome = as_variable(y, "y", ndim=2, default_name="y")
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
            outcome_columns=outcome.values.shape[1],
            groups=groups,
            groups_unlabeled=groups_unlabeled,
            weights=weights,
            weights_unlabeled=weights_unlabeled,
            label_prob=label_prob,
            strata=strata,
            strata_unlabeled=strata_unlabeled,
            stratum_weights=stratum_weights,
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed for a variance.")
        self.param_names = outcome.names
        self.endog_name = ", ".join(outcome.names)

    def _estimate_on(self, blocks, *, start=None, keep_influence=False, what="fit") -> MEstimate:
        codes, ngroups = self._clusters_for(blocks)
        responses = [np.asarray(b[1]).reshape(b[1].shape[0], -1) for b in blocks]
        weights = [b[2] for b in blocks]
        if any(w is not None for w in weights):
            weights = [np.ones(r.shape[0]) if w is None else w for r, w in zip(responses, weights)]
            weights = np.concatenate(weights)
        else:
            weights = None
        return fit_mean(
            np.concatenate(responses) if len(responses) > 1 else responses[0],
            keep_influence=keep_influence,
            weights=weights,
            groups=None if codes[0] is None else np.concatenate(codes),
            ngroups=ngroups,
        )

    def _grouped_scores(self, sample, response, params, weights, codes, ngroups):
        return grouped_scores(response, params, codes, ngroups, weights=weights)
