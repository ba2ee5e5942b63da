"""Prediction-powered estimation of means."""

from __future__ import annotations

import numpy as np

from ..core.fitting import Fit, fit_mean
from ..core.validation import as_variable
from ..designs.base import design_from_keywords
from .base import with_design_keywords
from .ppi import PPIModel


class Mean(PPIModel):
    """Mean of an outcome, or of each column of a multi-column outcome.

    Parameters
    ----------
    y : array-like or pandas object, shape (n,) or (n, k)
        Gold-standard outcomes of the labeled units.
    yhat : array-like, same shape as ``y``
        Predictions for the labeled units. With one outcome column, an (n, K)
        array holds K synthetic draws per unit: their row mean is the prediction,
        and the summary reports the variance gained over a single draw.
    yhat_unlabeled : array-like, shape (N,), (N, k) or (N, K)
        Predictions for the unlabeled units.
    design : ppinfer.Design, optional
        The sampling design (weights, clusters, strata, fpc, two-phase labeling).
        Or give its options as keywords: ``weights``, ``weights_unlabeled``,
        ``clusters`` (alias ``groups``), ``clusters_unlabeled``
        (``groups_unlabeled``), ``strata``, ``strata_unlabeled``, ``fpc``,
        ``fpc_unlabeled``, ``label_prob``, ``label_strata``, ``stratum_weights``,
        ``nest``; see :class:`ppinfer.Design`. The ``strata`` keywords tune one
        lambda per stratum by default (stratified PPI).
    missing : {"raise", "drop"}
        What to do with rows holding NaN or infinite values: raise (default) or
        drop them (from every array of their sample together, design columns
        included).

    Notes
    -----
    With ``r = n / N`` and 1/n normalised (co)variances (Angelopoulos et al. 2023;
    Angelopoulos, Duchi & Zrnic 2023), for two simple random samples::

        theta(lam) = lam * mean(yhat_unlabeled) + mean(y - lam * yhat)
        Var        = lam^2 s2(yhat_unlabeled) / N + s2(y - lam * yhat) / n
        lam_hat    = cov(y, yhat) / (s2(yhat) + r s2(yhat_unlabeled)), clipped to [0, 1]

    Each column of a multi-column outcome gets its own tuned lambda. Weighted
    designs use weighted (Hajek) means; the variance is the design's
    (:class:`ppinfer.Design`). The default ``cov_type="HC2"`` scales the labeled
    part by ``n / (n - 1)`` (unbiased variances), and ``use_t=True`` refers the
    statistic to t with ``n - 1`` degrees of freedom (``n - 2`` with a tuned lambda;
    Welch-Satterthwaite with the unlabeled part).

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=200); yhat = y + rng.normal(0.5, 0.5, size=200)
    >>> yhat_unlabeled = rng.normal(size=5000) + rng.normal(0.5, 0.5, size=5000)
    >>> res = ppinfer.Mean(y, yhat, yhat_unlabeled).fit()
    >>> bool(res.conf_int().loc["y", "lower"] < 0 < res.conf_int().loc["y", "upper"])
    True
    """

    _title = "Mean"
    _per_coefficient = True
    _df_params = 1

    @with_design_keywords
    def __init__(self, y, yhat, yhat_unlabeled, *, design=None, missing: str = "raise", **design_options):
        outcome = as_variable(y, "y", ndim=2, default_name="y")
        self._setup(
            {"y": outcome, "yhat": as_variable(yhat, "yhat", ndim=2, default_name="yhat")},
            {"yhat_unlabeled": as_variable(yhat_unlabeled, "yhat_unlabeled", ndim=2, default_name="yhat")},
            missing=missing,
            design=design_from_keywords("Mean", design, design_options),
            outcome_columns=outcome.values.shape[1],
        )
        if self.labeled.nobs < 2:
            raise ValueError(f"y has {self.labeled.nobs} complete row(s); at least 2 are needed for a variance.")
        self.param_names = outcome.names
        self.endog_name = ", ".join(outcome.names)
        self._warn_design()

    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", evaluate_only: bool = False) -> Fit:
        responses = [np.asarray(response).reshape(response.shape[0], -1) for _, response, _, _ in blocks]
        return fit_mean(
            responses,
            weights=[weights for _, _, weights, _ in blocks],
            collectors=[factory for _, _, _, factory in blocks],
            at=start if evaluate_only else None,
        )

    def _design_rows(self, sample: str):
        return None
