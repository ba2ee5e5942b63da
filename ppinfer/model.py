"""The model base class: validated data in, ``fit(method=..., lam=...)`` out.

A model holds validated labeled and unlabeled samples and fits three
M-estimates lazily, once each (cached): the labeled outcomes, the labeled
predictions and the unlabeled predictions. ``fit`` combines them for the chosen
method with :class:`~ppinfer.covariance.PPIComponents`; subclasses only say how a
single M-estimate is computed.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ._options import choose, reject_unknown_keywords
from .covariance import PPIComponents
from .data import Sample
from .fitting import MEstimate
from .results import PPIResults, WaldInference

METHODS = {
    "ppi++": "ppi++",
    "ppipp": "ppi++",
    "ppi_plusplus": "ppi++",
    "ppi": "ppi",
    "classical": "classical",
    "naive": "naive",
}

TUNING = {
    "per-coefficient": "per-coefficient",
    "per_coefficient": "per-coefficient",
    "overall": "overall",
}

#: lambda fixed by each method that has no tuning
FIXED_LAMBDA = {"classical": 0.0, "ppi": 1.0}


def lambda_rule(method: str, lam, *, default_tuning: str, nparams: int):
    """Interpret ``lam`` for ``method``.

    Returns an array of shape (nparams,) for a fixed lambda, ``"overall"`` or
    ``"per-coefficient"`` for a tuned one, or None for naive pooling.
    """
    if method != "ppi++":
        if lam is not None:
            fixed = "no lambda" if method == "naive" else f"lambda = {FIXED_LAMBDA[method]:g}"
            raise ValueError(
                f"lam={lam!r} conflicts with method={method!r}, which uses {fixed}; "
                "pass lam together with method='ppi++'."
            )
        return None if method == "naive" else np.full(nparams, FIXED_LAMBDA[method])
    if lam is None:
        return default_tuning
    if isinstance(lam, str):
        return choose(lam, TUNING, "lam")
    try:
        values = np.asarray(lam, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"lam must be None, 'per-coefficient', a number or one number per parameter; got {lam!r}.") from None
    if values.ndim == 0:
        values = np.full(nparams, float(values))
    if values.shape != (nparams,):
        raise ValueError(f"lam must be a number or have one value per parameter ({nparams}); got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"lam must be finite; got {lam!r}.")
    return values


class PPIModel:
    """Base class of prediction-powered models (not instantiated directly).

    Subclasses set ``_title`` and ``_default_tuning``, build ``self.labeled`` and
    ``self.unlabeled`` (:class:`~ppinfer.data.Sample`, with arrays ``"y"``,
    ``"yhat"`` and ``"yhat_unlabeled"``), ``self.param_names`` and
    ``self.endog_name``, and implement :meth:`_estimate`.
    """

    _title = "model"
    _default_tuning = "overall"
    labeled: Sample
    unlabeled: Sample
    param_names: list[str]
    endog_name: str

    # -- what subclasses provide -------------------------------------------------
    def _estimate(self, which: str, start: np.ndarray | None = None) -> MEstimate:
        """The M-estimate for ``which`` in {"y", "yhat", "unlabeled", "pooled"}.

        Labeled fits ("y", "yhat") keep their influence rows; "pooled" fits the
        labeled outcomes and the unlabeled predictions together (naive pooling).
        """
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Labeled rows used."""
        return self.labeled.nobs

    @property
    def nobs_unlabeled(self) -> int:
        """Unlabeled rows used."""
        return self.unlabeled.nobs

    @cached_property
    def _fit_y(self) -> MEstimate:
        return self._estimate("y")

    @cached_property
    def _fit_yhat(self) -> MEstimate:
        return self._estimate("yhat")

    @cached_property
    def _fit_unlabeled(self) -> MEstimate:
        # the labeled fit of the predictions is close: a warm start saves passes
        return self._estimate("unlabeled", start=self._fit_yhat.params)

    @cached_property
    def _components(self) -> PPIComponents:
        return PPIComponents.from_estimates(self._fit_y, self._fit_yhat, self._fit_unlabeled)

    def fit(self, *, method: str = "ppi++", lam=None, **unknown) -> PPIResults:
        """Estimate the parameters with prediction-powered inference or a baseline.

        Parameters
        ----------
        method : {"ppi++", "ppi", "classical", "naive"}
            ``"ppi++"`` (default): power-tuned PPI. ``"ppi"``: lambda = 1.
            ``"classical"``: labeled data only (lambda = 0). ``"naive"``: the
            labeled outcomes and unlabeled predictions pooled as if all were data;
            invalid, kept as the baseline that shows why PPI is needed.
        lam : None, float, array-like or "per-coefficient"
            With ``method="ppi++"`` only. None tunes lambda to minimise the
            estimated variance (for regressions one lambda minimising the sum of
            the variances); ``"per-coefficient"`` tunes one lambda per
            coefficient; a number (or one per parameter) fixes lambda.

        Returns
        -------
        PPIResults

        Notes
        -----
        ``theta(lam) = b(Y) + lam * (b(unlabeled predictions) - b(labeled predictions))``
        with the influence-function variance of :mod:`ppinfer.covariance`
        (Angelopoulos et al. 2023, Science; Angelopoulos, Duchi & Zrnic 2023, PPI++).
        """
        reject_unknown_keywords("fit", unknown, ("method", "lam"))
        method = choose(method, METHODS, "method")
        rule = lambda_rule(method, lam, default_tuning=self._default_tuning, nparams=len(self.param_names))
        return self._fit(method, rule)

    def _fit(self, method: str, rule) -> PPIResults:
        classical = self._fit_y
        if method == "naive":
            pooled = self._estimate("pooled", start=classical.params)
            params, covariance, lam = pooled.params, pooled.covariance, None
        elif method == "classical":
            params, covariance, lam = classical.params, classical.covariance, rule
        else:
            components = self._components
            lam = rule if isinstance(rule, np.ndarray) else components.tuned_lambda(
                per_coefficient=rule == "per-coefficient"
            )
            params = classical.params + lam * (self._fit_unlabeled.params - self._fit_yhat.params)
            covariance = components.covariance(lam)
        return self._results(
            method=method,
            lam=lam,
            params=params,
            inference=WaldInference(params, covariance),
            classical_bse=np.sqrt(np.diag(classical.covariance)),
            per_coefficient=isinstance(rule, str) and rule == "per-coefficient",
        )

    def _results(self, *, method, lam, params, inference, classical_bse, per_coefficient) -> PPIResults:
        """Wrap arrays into a results object; lambda is reported as one number when it is one."""
        index = pd.Index(self.param_names)
        if lam is not None:
            lam = np.asarray(lam, dtype=float)
            single = len(lam) == 1 or (not per_coefficient and np.all(lam == lam[0]))
            lam = float(lam[0]) if single else pd.Series(lam, index=index, name="lambda")
        details = []
        dropped = self.labeled.n_dropped + self.unlabeled.n_dropped
        if dropped:
            details.append(("Rows dropped", f"{self.labeled.n_dropped} + {self.unlabeled.n_dropped}"))
        return PPIResults(
            params=pd.Series(params, index=index, name="params"),
            inference=inference,
            method=method,
            lam=lam,
            nobs=self.nobs,
            nobs_unlabeled=self.nobs_unlabeled,
            classical_bse=classical_bse,
            title=self._title,
            dep_variable=self.endog_name,
            details=details,
        )
