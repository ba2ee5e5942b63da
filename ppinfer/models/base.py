"""What every ppinfer estimator shares: sample sizes, dropped rows, options, building results."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..core.inference import Inference
from ..core.options import choose, reject_unknown_keywords
from ..core.results import PPIResults
from ..core.validation import Sample
from ..core.warnings import SmallSampleWarning


class Estimator:
    """Base of ppinfer's models (not instantiated directly).

    A model holds validated samples (``labeled`` and, where there is one,
    ``unlabeled``), names (``param_names``, ``endog_name``) and a ``fit`` that
    returns :class:`~ppinfer.core.results.PPIResults` through :meth:`_record`.
    Subclasses set ``_title``, ``METHODS`` (accepted spellings) and
    ``METHOD_LABELS`` (how the summary names each method).
    """

    _title = "model"
    METHODS: dict[str, str] = {}
    METHOD_LABELS: dict[str, str] = {}
    labeled: Sample
    unlabeled: Sample | None = None
    param_names: list[str]
    endog_name: str
    #: rows dropped before validation (by a formula's missing-value handling), per sample
    _formula_dropped: tuple[int, int] = (0, 0)

    # -- sizes and rows -----------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Labeled rows used."""
        return self.labeled.nobs

    @property
    def nobs_unlabeled(self) -> int:
        """Unlabeled rows used (0 without an unlabeled sample)."""
        return 0 if self.unlabeled is None else self.unlabeled.nobs

    @property
    def rows_dropped(self) -> tuple[int, int]:
        """Rows dropped for missing values (``missing="drop"``, formulas included), per sample."""
        labeled = self.labeled.n_dropped + self._formula_dropped[0]
        unlabeled = (0 if self.unlabeled is None else self.unlabeled.n_dropped) + self._formula_dropped[1]
        return labeled, unlabeled

    def _dropped_details(self) -> list[tuple[str, str]]:
        labeled, unlabeled = self.rows_dropped
        if not (labeled or unlabeled):
            return []
        if self.unlabeled is None:
            return [("Rows dropped", str(labeled))]
        return [("Rows dropped", f"{labeled} + {unlabeled}")]

    def _warn_small_sample(self, nparams: int) -> None:
        """SmallSampleWarning when the labeled sample is small for the model."""
        n = self.nobs
        if n < 30 or n < 10 * nparams:
            warnings.warn(
                f"the labeled sample has {n} rows for {nparams} parameter(s): large-sample intervals may "
                "under-cover. ppinfer's defaults (use_t=True, leverage-adjusted cov_type) are meant for this; "
                "check coverage with ppinfer.simulation for your setting.",
                SmallSampleWarning,
                stacklevel=4,
            )

    # -- options ----------------------------------------------------------------------------
    def _method(self, method: str) -> str:
        return choose(method, self.METHODS, "method")

    @staticmethod
    def _reject_unknown(function: str, unknown: dict, accepted) -> None:
        reject_unknown_keywords(function, unknown, accepted)

    # -- results ------------------------------------------------------------------------------
    def _record(
        self,
        *,
        method: str,
        params: np.ndarray,
        inference: Inference,
        lam,
        classical_bse: np.ndarray,
        details=(),
        notes=(),
        cov_type: str | None = None,
        title: str | None = None,
        param_names: list[str] | None = None,
        results: type[PPIResults] = PPIResults,
        **extra,
    ) -> PPIResults:
        """The results object of one fit.

        ``param_names`` name the parameters when they depend on the fit (default
        :attr:`param_names`); ``results`` is the results class, and ``extra`` its
        own keyword arguments.
        """
        names = self.param_names if param_names is None else param_names
        return results(
            params=pd.Series(params, index=pd.Index(names), name="params"),
            inference=inference,
            method=method,
            lam=lam,
            nobs=self.nobs,
            nobs_unlabeled=self.nobs_unlabeled,
            classical_bse=classical_bse,
            title=title or self._title,
            dep_variable=self.endog_name,
            details=list(details) + self._dropped_details(),
            notes=list(notes),
            method_label=self.METHOD_LABELS.get(method, method),
            cov_type=cov_type,
            model=self,
            **extra,
        )

    def __repr__(self) -> str:
        sizes = f"n={self.nobs}" + (f", N={self.nobs_unlabeled}" if self.unlabeled is not None else "")
        names = ", ".join(self.param_names[:6]) + (", ..." if len(self.param_names) > 6 else "")
        return f"<ppinfer.{type(self).__name__} {self.endog_name!r} ({sizes}): {names}>"



#: the design keywords' Parameters entries, shared by every estimator's docstring
DESIGN_KEYWORDS_DOC = """    weights, weights_unlabeled : array-like, shape (n,) and (N,), optional
        Design keyword: sampling weights of each sample's rows (inverse inclusion
        probabilities, or any positive weights); both or neither.
    clusters, clusters_unlabeled : array-like, shape (n,) and (N,), optional
        Design keyword: the cluster (primary sampling unit) of each row; a label
        present in both samples is one cluster. Cluster-robust variances
        (``cov_type="CR2"`` by default) follow.
    strata, strata_unlabeled : array-like, shape (n,) and (N,), optional
        Design keyword: the sampling stratum of each row. Without weights each
        stratum counts with its share of the unlabeled sample (or
        ``stratum_weights``), and ``fit`` tunes one lambda per stratum by
        default (stratified PPI).
    fpc, fpc_unlabeled : array-like, shape (n,) and (N,), optional
        Design keyword: finite population correction of each row's stratum, its
        population size or its sampling fraction in [0, 1].
    label_prob : array-like, shape (n,), optional
        Design keyword (two-phase design): the known probability, in (0, 1], with
        which each labeled row was chosen for labeling from the first-phase
        sample that the labeled and unlabeled rows make up together.
    label_strata : array-like, shape (n,), optional
        Design keyword (two-phase design): the strata within which the labeled
        rows were drawn.
    groups, groups_unlabeled : array-like, shape (n,) and (N,), optional
        Older names of ``clusters`` and ``clusters_unlabeled``.
    stratum_weights : mapping, optional
        Design keyword: the population share of each stratum, setting the weights
        of a stratified design (instead of ``weights``).
    nest : bool, optional
        Design keyword: cluster labels are unique only within strata.
"""
_DESIGN_KEYWORDS_MARKER = "    [design keywords]\n"


def document_design_keywords(cls):
    """Class decorator: put the design keywords' Parameters entries where the docstring
    has the line ``[design keywords]``."""
    if cls.__doc__ is None or _DESIGN_KEYWORDS_MARKER not in cls.__doc__:
        raise ValueError(f"{cls.__name__}'s docstring has no '[design keywords]' line to fill")
    cls.__doc__ = cls.__doc__.replace(_DESIGN_KEYWORDS_MARKER, DESIGN_KEYWORDS_DOC)
    return cls


def with_design_keywords(init=None, *, column_names: bool = False):
    """Give an ``__init__(..., **design_options)`` an explicit signature listing the design
    keywords (:data:`ppinfer.designs.base.KEYWORDS`), so ``help()`` and IDEs show them; the
    keywords themselves are checked, with suggestions for near misses, by
    :func:`ppinfer.designs.base.design_from_keywords`.

    Used bare (``@with_design_keywords``) or with ``column_names=True`` for the entry
    points that also take column names (the formula functions), which only changes the
    keywords' annotations.
    """
    import inspect

    from ..designs.base import KEYWORDS

    if init is None:
        return lambda function: with_design_keywords(function, column_names=column_names)
    row_option = "ArrayLike | str | None" if column_names else "ArrayLike | None"
    annotations = {"stratum_weights": "Mapping[Any, float] | None", "nest": "bool | None"}
    signature = inspect.signature(init)
    kept = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=annotations.get(name, row_option)) for name in KEYWORDS]
    init.__signature__ = signature.replace(parameters=kept + extra)
    return init
