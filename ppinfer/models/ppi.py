"""The prediction-powered estimator: three fits, their design variance, lambda, results.

A model holds validated labeled and unlabeled samples and a bound sampling
design, and fits three M-estimates lazily (cached): the labeled outcomes
``b_Y``, the labeled predictions ``b_f`` and the predictions of the unlabeled
rows (of every unit, in a two-phase design) ``b_u``. For a method and a lambda
rule, :meth:`PPIModel.fit` combines them,

    theta(lam) = b_Y + lam * (b_u - b_f),

with the variance the design gives their contributions
(:meth:`~ppinfer.designs.BoundDesign.variance`) and the tuning of
:class:`~ppinfer.core.covariance.PPIComponents`. Subclasses say only how one
response is fitted on blocks of rows (:meth:`PPIModel._fit_blocks`).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.covariance import (
    LEVERAGE_POWER, LambdaRule, PPIComponents, bell_mccaffrey_df, cr2_contributions, leverage, leverage_scale,
    parse_cov_type, psu_jacobians, satterthwaite_df,
)
from ..core.fitting import Fit, RowScores
from ..core.sources import Column
from ..core.inference import BootstrapInference, WaldInference
from ..core.options import choose
from ..core.results import PPIResults
from ..core.validation import Variable, make_sample
from ..core.warnings import ConstantOutcomeWarning, PPIWarning
from ..designs.base import (
    LABELED, UNLABELED, Contributions, Design, DesignCollectorFactory, group_sums, warn_few_clusters,
)
from ..designs.moments import ScannedScores
from .base import Estimator

METHODS = {
    "ppi++": "ppi++",
    "ppipp": "ppi++",
    "ppi_plusplus": "ppi++",
    "ppi": "ppi",
    "classical": "classical",
    "naive": "naive",
}
METHOD_LABELS = {"ppi++": "PPI++", "ppi": "PPI", "classical": "Classical", "naive": "Naive pooling"}
CI_TYPES = {"analytic": "analytic", "wald": "analytic", "bootstrap": "bootstrap"}
BOOTSTRAP_KINDS = ("percentile", "basic")
#: the methods :meth:`PPIModel.compare` fits by default
COMPARED_METHODS = ("classical", "naive", "ppi", "ppi++")


@dataclass(frozen=True)
class _Variance:
    """A method's covariance and what its degrees of freedom need."""

    covariance: np.ndarray
    labeled: np.ndarray  # per-parameter labeled part of the variance
    unlabeled: np.ndarray  # per-parameter unlabeled part


def _stack(left: Contributions | None, right: Contributions, width: int) -> Contributions:
    """Columns ``(left | right)``; a missing left part is zero."""
    if left is None:
        if right.rows is not None:
            return Contributions(rows=np.hstack([np.zeros((right.rows.shape[0], width)), right.rows]),
                                 centred=right.centred)
        if right.psu is not None:
            return Contributions(psu=np.hstack([np.zeros((right.psu.shape[0], width)), right.psu]),
                                 centred=right.centred)
        s1, s2, counts = right.moments
        H, q = s1.shape
        big = np.zeros((H, width + q, width + q))
        big[:, width:, width:] = s2
        return Contributions(moments=(np.hstack([np.zeros((H, width)), s1]), big, counts))
    centred = left.centred and right.centred
    if left.rows is not None:
        return Contributions(rows=np.hstack([left.rows, right.rows]), centred=centred)
    return Contributions(psu=np.hstack([left.psu, right.psu]), centred=centred)


@dataclass
class _CentredRows:
    """A kept block's scores centred within strata, with its rows' Hessian weights."""

    scores: np.ndarray
    curvature: np.ndarray


def _negate(part: Contributions) -> Contributions:
    if part.rows is not None:
        return Contributions(rows=-part.rows, centred=part.centred)
    if part.psu is not None:
        return Contributions(psu=-part.psu, centred=part.centred)
    s1, s2, counts = part.moments
    return Contributions(moments=(-s1, s2, counts))


def _subtract(a: Contributions, b: Contributions) -> Contributions:
    centred = a.centred and b.centred
    if a.rows is not None:
        return Contributions(rows=a.rows - b.rows, centred=centred)
    return Contributions(psu=a.psu - b.psu, centred=centred)


def predictions_of(values: np.ndarray, draws: int, draw: int | None = None) -> np.ndarray:
    """Predictions from a prediction array: its row mean over ``draws`` synthetic draws,
    one draw, or the array itself (one column dropped to a vector)."""
    if draws == 1:
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
    return values.mean(axis=1) if draw is None else np.ascontiguousarray(values[:, draw])


@dataclass(frozen=True)
class Predictions:
    """:func:`predictions_of` as a column transform (applied partition by partition)."""

    draws: int
    draw: int | None = None

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return predictions_of(values, self.draws, self.draw)


class PPIModel(Estimator):
    """Base class of prediction-powered models (not instantiated directly).

    Subclasses set ``_title``, ``_per_coefficient`` (the default tuning) and
    ``_df_params`` (parameters that use up degrees of freedom), call
    :meth:`_setup` with their validated variables, set ``param_names`` and
    ``endog_name``, and implement :meth:`_fit_blocks` and :meth:`_design_rows`.

    The fits of predictions (``b_f``, ``b_u``) may use a design of their own:
    with predicted covariates, the labeled rows' predicted design (Kluger et al.
    2025). Every use of design rows says which fit it serves (``predicted``).
    """

    METHODS = METHODS
    METHOD_LABELS = METHOD_LABELS
    _per_coefficient = False
    #: synthetic draws (prediction columns) per unit; their row mean is the prediction
    draws: int = 1

    # -- construction --------------------------------------------------------------
    def _setup(
        self,
        labeled: dict[str, Variable],
        unlabeled: dict[str, Variable],
        *,
        missing: str,
        design: Design,
        outcome_columns: int | None = None,
        checks=(),
        accumulators=None,
        linear_scores: tuple[str, str | None] | None = None,
    ) -> None:
        """Validate both samples together with the design's columns, then bind the design.

        ``labeled`` must hold ``"y"`` and ``"yhat"`` and ``unlabeled``
        ``"yhat_unlabeled"``; prediction arrays with more columns than the outcome
        are K synthetic draws per unit (only for a single outcome column;
        ``outcome_columns`` None takes the columns of the labeled ``y``).
        ``checks`` and ``accumulators`` run in the scan of the unlabeled sample
        (see :func:`~ppinfer.core.validation.make_sample`), with the design's own.
        ``linear_scores`` = (response key, denominator key or None) says the fit of the
        unlabeled predictions is linear in its parameter (a mean, total or ratio): the scan
        of a partitioned sample then sums its score moments (:mod:`ppinfer.designs.moments`),
        and that fit needs no pass of its own.
        """
        design_labeled, design_unlabeled = design.variables()
        self.labeled = make_sample({**labeled, **design_labeled}, missing=missing, label="labeled")
        unlabeled = {**unlabeled, **design_unlabeled}
        design_checks, design_sums = design.scan_plan(unlabeled)
        #: the response of the linear fit whose score moments the scan sums (None: no such fit)
        self._linear_response = None if linear_scores is None else linear_scores[0]
        if linear_scores is not None:
            design_sums.update(design.score_moments(unlabeled, *linear_scores))
        self.unlabeled = make_sample(unlabeled, missing=missing, label="unlabeled",
                                     checks=[*checks, *design_checks], accumulators={**(accumulators or {}),
                                                                                      **design_sums})
        self.design = design.bind(self.labeled, self.unlabeled)
        self._cache: dict = {}
        if outcome_columns is None:
            outcome_columns = 1 if self.labeled["y"].ndim == 1 else self.labeled["y"].shape[1]
        outcome = self.labeled["y"]
        if outcome.shape[0] > 1 and np.any(np.ptp(outcome.reshape(outcome.shape[0], -1), axis=0) == 0):
            warnings.warn(
                "y is constant in the labeled sample: its estimated variance is 0, so standard errors "
                "and interval widths are 0 (degenerate inference).",
                ConstantOutcomeWarning,
                stacklevel=3,
            )
        predicted = self.labeled["yhat"]
        columns = 1 if predicted.ndim == 1 else predicted.shape[1]
        unlabeled_columns = 1 if self.unlabeled["yhat_unlabeled"].ndim == 1 else self.unlabeled["yhat_unlabeled"].shape[1]
        if columns != unlabeled_columns:
            raise ValueError(
                f"yhat has {columns} column(s) but yhat_unlabeled has {unlabeled_columns}; "
                "give the same number of predictions (or synthetic draws) per unit in both samples."
            )
        if columns != outcome_columns:
            if outcome_columns != 1:
                raise ValueError(
                    f"yhat has {columns} column(s) but y has {outcome_columns}; give one prediction per "
                    "outcome column (synthetic draws are supported for a single outcome)."
                )
            self.draws = columns

    @property
    def unlabeled_passes(self) -> int:
        """Passes made so far over the unlabeled rows: the scan that validated them, then the fits'."""
        return self.unlabeled.passes

    def _unlabeled_sums(self, key: str):
        """What the scan summed for a Gaussian or mean fit of the unlabeled predictions (see
        :class:`~ppinfer.core.fitting.NormalEquations`), when the fit's weights are the ones it
        used; None otherwise."""
        if self.design.weights_derived:
            return None
        return self.unlabeled.summary.get(key)

    def _prepared(self, sample: str, response, weights, key: str):
        """The scan's sums (``key``) for a fit of the unlabeled predictions with the design's
        weights, and the transform that picks its predictions from them; None otherwise."""
        if sample != UNLABELED or not isinstance(response, Column) or not isinstance(response.transform, Predictions):
            return None
        if weights is not self.design.unlabeled.weights:
            return None
        sums = self._unlabeled_sums(key)
        return None if sums is None else (sums, response.transform)

    def _scanned_scores(self, sample: str, response, weights, factory) -> ScannedScores | None:
        """The scan's score moments of a linear fit (see :meth:`_setup`) when they serve this block:
        the unlabeled predictions with the design's weights and collector; None otherwise."""
        moments = self.unlabeled.summary.get("design:scores") if sample == UNLABELED else None
        if moments is None or not isinstance(response, Column) or not isinstance(response.transform, Predictions):
            return None
        if response.key != self._linear_response:
            return None
        design = self.design
        weighted, strata, psu = design.spec.unlabeled_keys(self.unlabeled.variables)
        if weights is not design.unlabeled.weights or (design.weights_derived and weighted):
            return None
        if factory is not None and not (isinstance(factory, DesignCollectorFactory)
                                        and factory.psu is design.unlabeled.psu
                                        and factory.strata is design.unlabeled.strata):
            return None
        stored = self.unlabeled.column(response.key).shape
        columns = 1 if len(stored) == 1 else stored[1]
        # the fit's response is a linear map of the stored columns (their row mean, one draw, or all)
        mapping = np.asarray(response.transform(np.eye(columns)), dtype=float).reshape(columns, -1)
        return ScannedScores(design, moments.linear(mapping), strata, psu)

    def _warn_design(self) -> None:
        """Warnings about the labeled sample's size and clusters (after ``param_names`` are set)."""
        self._warn_small_sample(self._df_params)
        warn_few_clusters(self.design, "CR2")

    @property
    def stratum_names(self) -> list[str]:
        return self.design.stratum_names

    @property
    def stratum_weights(self) -> pd.Series | None:
        """Population share of each stratum (stratified designs whose weights come from the shares)."""
        return self.design.stratum_shares

    # -- what subclasses provide ---------------------------------------------------------
    def _fit_blocks(self, blocks, *, start=None, what: str = "fit", predicted: bool = False) -> Fit:
        """Fit one response on blocks ``(sample, response, weights, collector factory)``, on the
        design rows of the outcome's fits or (``predicted``) of the predictions' fits."""
        raise NotImplementedError

    def _design_rows(self, sample: str, predicted: bool = False) -> np.ndarray | None:
        """The design matrix of a sample's rows (None for a mean): for the fits of the outcome,
        or (``predicted``) of the predictions, which differ with predicted covariates."""
        raise NotImplementedError

    _df_params = 1

    # -- the fits -----------------------------------------------------------------------
    def _prediction(self, sample: str, draw: int | None = None):
        """Predictions of a sample: the draws' row mean, or one draw (for the unlabeled
        sample, a :class:`~ppinfer.core.sources.Column` read by the fits pass by pass)."""
        if sample == LABELED:
            return predictions_of(self.labeled["yhat"], self.draws, draw)
        column = self.unlabeled.column("yhat_unlabeled")
        shape = column.shape[:1] if self.draws > 1 or column.ndim == 1 or column.shape[1] == 1 else column.shape
        return column.map(Predictions(self.draws, draw), shape)

    def _prediction_array(self, sample: str, draw: int | None = None) -> np.ndarray:
        """Predictions of a sample as one in-memory array (for estimators that need every value
        at once; an unlabeled sample read partition by partition raises)."""
        return self._in_memory(self._prediction(sample, draw))

    def _in_memory(self, values):
        """A column of the unlabeled sample as one in-memory array (arrays are returned as they are)."""
        if not isinstance(values, Column):
            return values
        if self.unlabeled.partitioned:
            raise TypeError(
                f"{type(self).__name__} needs the unlabeled predictions in memory; this unlabeled sample is read "
                f"from {self.unlabeled.source.kind} partition by partition. Load it into a NumPy array."
            )
        return values.of({key: variable.values for key, variable in self.unlabeled.variables.items()})

    def _labeled_fit(self, response: np.ndarray, what: str, predicted: bool = False) -> Fit:
        blocks = [(LABELED, response, self.design.fit_weights(LABELED), RowScores)]
        return self._fit_blocks(blocks, what=what, predicted=predicted)

    def _prediction_samples(self) -> list[str]:
        """The samples of the prediction fit's blocks: the unlabeled rows, and the labeled ones
        first in a two-phase design (a fit over all units)."""
        return [LABELED, UNLABELED] if self.design.two_phase else [UNLABELED]

    def _weight_ratio(self) -> float:
        """The labeled fits' total weight over the prediction fit's."""
        weights = self.design.fit_weights(LABELED)
        labeled = self.nobs if weights is None else float(weights.sum())
        return labeled / sum(self.design.sample(sample).weight_total() for sample in self._prediction_samples())

    def _start_hessian(self, fit_f: Fit) -> np.ndarray | None:
        """An approximation of the prediction fit's summed Hessian at ``fit_f``'s estimate, from
        the labeled prediction fit, for fits that can start with it (None: computed by the fit)."""
        return None

    def _prediction_fit(self, draw: int | None = None, start: Fit | None = None) -> Fit:
        """The fit of the unlabeled rows' predictions (of every unit's, in a two-phase design),
        started from the labeled prediction fit ``start``."""
        design = self.design
        guess = None if start is None else self._start_hessian(start)
        options = {} if guess is None else {"start_hessian": guess}
        start = None if start is None else start.params
        unlabeled = (UNLABELED, self._prediction(UNLABELED, draw), design.phase_one_weights(UNLABELED),
                     design.collector(UNLABELED))
        if design.two_phase:
            labeled = (LABELED, self._prediction(LABELED, draw), design.phase_one_weights(LABELED), RowScores)
            return self._fit_blocks([labeled, unlabeled], start=start, what="the fit of all units' predictions",
                                    predicted=True, **options)
        return self._fit_blocks([unlabeled], start=start, what="the fit of yhat_unlabeled", predicted=True, **options)

    def _fits(self, draw: int | None = None) -> tuple[Fit, Fit, Fit]:
        key = ("fits", draw)
        if key not in self._cache:
            fit_y = self._cached_fit_y()
            fit_f = self._labeled_fit(self._prediction(LABELED, draw), "the fit of yhat", predicted=True)
            fit_u = self._prediction_fit(draw, start=fit_f)
            self._cache[key] = (fit_y, fit_f, fit_u)
        return self._cache[key]

    def _cached_fit_y(self) -> Fit:
        if "fit_y" not in self._cache:
            self._cache["fit_y"] = self._labeled_fit(self.labeled["y"], "the fit of y")
        return self._cache["fit_y"]

    # -- contributions --------------------------------------------------------------------
    def _fit_parts(self, fit: Fit, samples: list[str], cov_type: str, extra_leverage=None,
                   predicted: bool = False) -> dict[str, Contributions]:
        """Each block's contributions to ``params - beta`` of one fit, corrected for ``cov_type``.

        PSU totals of every block are adjusted (CR2) with the fit's per-PSU
        Hessians summed over its blocks; unclustered rows kept one by one are
        scaled by their leverage (HC2, HC3, and CR2, which reduces to HC2 for
        units); rows reduced by stratum (a large sample) are left as they are:
        their leverages are of order p/N. A one-sample fit's kept rows (or PSU
        totals) are centred within strata before the leverage adjustment, so that
        HC2, HC3 and CR2 keep their unbiasedness (and equal statsmodels' and Bell
        and McCaffrey's without strata).
        """
        design = self.design
        raw, jacobians = {}, None
        precentre = cov_type in LEVERAGE_POWER and len(samples) == 1 and not design.combined
        for collected, sample in zip(fit.collected, samples):
            sample_design = design.sample(sample)
            if sample_design.psu is not None:
                if isinstance(collected, RowScores):
                    totals = group_sums(collected.scores, sample_design.psu, design.npsu)
                    if precentre:
                        totals = design.centre_within_strata(sample, totals, psu=True)
                    jac = (self._psu_jacobians(sample, collected, sample_design.psu, predicted)
                           if cov_type == "CR2" else None)
                else:
                    totals, jac = collected.totals, collected.jacobians
                    if precentre:
                        totals = design.centre_within_strata(sample, totals, psu=True)
                raw[sample] = ("psu", totals)
                if jac is not None:
                    jacobians = jac if jacobians is None else jacobians + jac
            elif isinstance(collected, RowScores):
                extra = extra_leverage if sample == LABELED else None
                if precentre:
                    collected = _CentredRows(design.centre_within_strata(sample, collected.scores),
                                             collected.curvature)
                raw[sample] = ("rows", self._row_contributions(sample, fit, collected, cov_type, extra, predicted))
            else:
                raw[sample] = ("moments", collected)
        parts = {}
        for sample, (kind, value) in raw.items():
            if kind == "psu":
                psu = cr2_contributions(value, jacobians, fit.bread) if cov_type == "CR2" else fit.contributions(value)
                parts[sample] = Contributions(psu=psu, centred=precentre)
            elif kind == "rows":
                parts[sample] = Contributions(rows=value, centred=precentre)
            else:
                parts[sample] = Contributions(
                    moments=(fit.contributions(value.s1), fit.sandwich(value.s2), value.counts)
                )
        return parts

    def _row_contributions(self, sample: str, fit: Fit, collected: RowScores, cov_type: str,
                           extra: np.ndarray | None = None, predicted: bool = False) -> np.ndarray:
        """Contributions of a block's rows kept one by one, each scaled by its leverage for
        ``HC2``, ``HC3`` and ``CR2`` (``extra``: leverage a tuned lambda adds to each row;
        ``predicted``: the fit is of the predictions, on their design)."""
        scores = collected.scores
        if cov_type in LEVERAGE_POWER:
            h = leverage(self._design_rows(sample, predicted), collected.curvature, fit.bread)
            if extra is not None:
                h = h[:, None] + extra if extra.ndim == 2 else h + extra
            scale = leverage_scale(h, cov_type)
            scores = scores * (scale if scale.ndim == 2 else scale[:, None])
        return fit.contributions(scores)

    def _psu_jacobians(self, sample: str, collected: RowScores, codes: np.ndarray,
                       predicted: bool = False) -> np.ndarray:
        """Per-PSU Hessians of a block's rows kept one by one (CR2 and its degrees of freedom)."""
        return psu_jacobians(self._design_rows(sample, predicted), collected.curvature, codes, self.design.npsu)

    def _unit_rows(self, fit: Fit, block: int = 0) -> np.ndarray:
        """Unadjusted contributions of a kept block's rows."""
        return fit.contributions(fit.collected[block].scores)

    def _tuning_leverage(self, fit_f: Fit, draw=None) -> np.ndarray:
        """The leverage a tuned lambda adds to each labeled row.

        Tuning lambda on the labeled rows fits one more coefficient, that of the
        prediction's residual ``z = f - mu(x' b_f)``: as in the regression estimator
        of survey sampling, the residuals ``y - lam f`` then have the leverage of the
        design augmented by ``z``, ``h_i + w_i z_i^2 / sum_j w_j z_j^2`` (exact for means
        and least squares; per outcome column for a multi-column mean)."""
        predictions = self._prediction(LABELED, draw)
        X = self._design_rows(LABELED, predicted=True)
        z = np.asarray(predictions).reshape(predictions.shape[0], -1) - self._fitted_values(fit_f, predicted=True)
        weights = self.design.fit_weights(LABELED)
        squares = z**2 if weights is None else weights[:, None] * z**2
        total = squares.sum(axis=0)
        scale = (np.asarray(predictions).reshape(z.shape) ** 2).sum(axis=0)
        # predictions with no residual variation (a fallback to lambda = 0) add nothing
        informative = total > 1e-12 * np.maximum(scale, np.finfo(float).tiny)
        extra = np.where(informative, squares / np.where(informative, total, 1.0), 0.0)
        return extra[:, 0] if extra.shape[1] == 1 and X is not None else extra

    def _fitted_values(self, fit: Fit, predicted: bool = False) -> np.ndarray:
        """The labeled rows' fitted means of a labeled fit, a column per outcome (``predicted``: a fit
        of the predictions, on their design)."""
        X = self._design_rows(LABELED, predicted)
        return fit.params[None, :] if X is None else (X @ fit.params)[:, None]

    def _ppi_parts(self, fits, cov_type: str, tuned: bool = False, draw=None):
        """Contributions ``(u | v)`` of each sample, and the second-phase rows of a two-phase design."""
        fit_y, fit_f, fit_u = fits
        design = self.design
        p = fit_y.params.shape[0]
        extra = None
        if tuned and cov_type in LEVERAGE_POWER and design.labeled.psu is None:
            extra = self._tuning_leverage(fit_f, draw)
        y_part = self._fit_parts(fit_y, [LABELED], cov_type, extra)[LABELED]
        f_part = self._fit_parts(fit_f, [LABELED], cov_type, extra, predicted=True)[LABELED]
        if design.two_phase:
            u_parts = self._fit_parts(fit_u, [LABELED, UNLABELED], cov_type, predicted=True)
            labeled = _stack(y_part, _subtract(f_part, u_parts[LABELED]), p)
            unlabeled = _stack(None, _negate(u_parts[UNLABELED]), p)
            phase_two = np.hstack([self._unit_rows(fit_y), self._unit_rows(fit_f)])
        else:
            u_part = self._fit_parts(fit_u, [UNLABELED], cov_type, predicted=True)[UNLABELED]
            labeled = _stack(y_part, f_part, p)
            unlabeled = _stack(None, _negate(u_part), p)
            phase_two = None
        return {LABELED: labeled, UNLABELED: unlabeled}, phase_two

    def _components(self, cov_type: str, by_stratum: bool = False, draw: int | None = None,
                    tuned: bool = False) -> PPIComponents:
        """The variance blocks of PPI for ``cov_type`` (per stratum with ``by_stratum``; with the
        leverage of a tuned lambda with ``tuned``)."""
        key = ("components", cov_type, by_stratum, draw, tuned)
        if key in self._cache:
            return self._cache[key]
        fits = self._fits(draw)
        p = fits[0].params.shape[0]
        parts, phase_two = self._ppi_parts(fits, cov_type, tuned, draw)
        design = self.design
        options = dict(cov_type=cov_type, nparams=self._df_params, by_stratum=by_stratum)
        u, v = slice(0, p), slice(p, 2 * p)
        if design.combined:
            total = design.variance(parts, phase_two=phase_two, **options)
            unlabeled_v = np.zeros_like(total[..., v, v])
            labeled = total
        else:
            labeled = design.variance({LABELED: parts[LABELED]}, **options)
            unlabeled_v = design.variance({UNLABELED: parts[UNLABELED]}, **options)[..., v, v]
        components = PPIComponents(labeled[..., u, u], labeled[..., u, v], labeled[..., v, v], unlabeled_v)
        self._cache[key] = components
        return components

    def components(self, cov_type: str | None = None, *, by_stratum: bool = False) -> PPIComponents:
        """The variance blocks ``V_Y``, ``C_Yf``, ``V_f``, ``V_fu`` of this model's PPI estimate.

        See :class:`~ppinfer.core.covariance.PPIComponents`; ``V(lam)`` is
        ``components.covariance(lam)``. Study planning (:mod:`ppinfer.power`)
        reads a pilot model's components here.
        """
        cov_type = self._cov_type(cov_type)
        return self._components(cov_type, by_stratum)

    def _classical_covariance(self, cov_type: str) -> np.ndarray:
        """Design variance of the labeled fit alone."""
        key = ("classical", cov_type)
        if key not in self._cache:
            fit_y = self._cached_fit_y()
            parts = {LABELED: self._fit_parts(fit_y, [LABELED], cov_type)[LABELED]}
            design = self.design
            if design.two_phase and design.clustered:
                # first-phase PSUs without labeled units count (with total 0)
                parts[UNLABELED] = Contributions(psu=np.zeros_like(parts[LABELED].psu))
            elif design.two_phase:
                counts = design.unlabeled.stratum_counts(design.nstrata)
                q = fit_y.params.shape[0]
                parts[UNLABELED] = Contributions(moments=(np.zeros((design.nstrata, q)),
                                                          np.zeros((design.nstrata, q, q)), counts))
            phase_two = self._unit_rows(fit_y) if design.two_phase else None
            self._cache[key] = design.variance(parts, cov_type=cov_type, nparams=self._df_params,
                                               phase_two=phase_two)
        return self._cache[key]

    # -- degrees of freedom --------------------------------------------------------------
    def _labeled_df(self, cov_type: str) -> np.ndarray:
        """Degrees of freedom of the labeled part, per parameter."""
        p = len(self.param_names)
        design = self.design
        sample = "all" if design.two_phase else LABELED
        df = np.full(p, design.residual_df(sample, self._df_params))
        if cov_type == "CR2" and design.labeled.psu is not None and not design.two_phase:
            fit_y = self._cached_fit_y()
            collected = fit_y.collected[0]
            jac = self._psu_jacobians(LABELED, collected, design.labeled.psu)
            present = np.zeros(design.npsu, dtype=bool)
            present[design.labeled.psu] = True
            df = bell_mccaffrey_df(jac[present], fit_y.bread)
        return np.maximum(df, 1.0)

    def _unlabeled_df(self) -> np.ndarray:
        p = len(self.param_names)
        return np.full(p, max(self.design.residual_df(UNLABELED, self._df_params), 1.0))

    # -- fitting ---------------------------------------------------------------------------
    def _cov_type(self, cov_type) -> str:
        if cov_type is None:
            return self.default_cov_type
        return parse_cov_type(cov_type, clustered=self.design.clustered)

    #: covariance estimator of unclustered designs (HC2 is unbiased for means; HC3 for regressions)
    _default_cov_type = "HC2"

    @property
    def default_cov_type(self) -> str:
        """``"CR2"`` for clustered designs, else the model's leverage-adjusted default (see :meth:`fit`)."""
        return "CR2" if self.design.clustered else self._default_cov_type

    def _rule(self, method: str, lam) -> LambdaRule | None:
        return LambdaRule.parse(
            method, lam, nparams=len(self.param_names), per_coefficient=self._per_coefficient,
            by_stratum=self.design.lambda_by_stratum, has_strata=self.design.has_strata,
        )

    def fit(
        self,
        *,
        method: str = "ppi++",
        lam=None,
        cov_type: str | None = None,
        use_t: bool | None = None,
        ci: str = "analytic",
        n_boot: int = 1000,
        seed=None,
        kind: str = "percentile",
        n_jobs: int = 1,
        progress="auto",
        **unknown,
    ) -> PPIResults:
        """Estimate the parameters with prediction-powered inference or a baseline.

        Parameters
        ----------
        method : {"ppi++", "ppi", "classical", "naive"}
            ``"ppi++"`` (default): power-tuned PPI. ``"ppi"``: lambda = 1.
            ``"classical"``: labeled data only (lambda = 0). ``"naive"``: the
            labeled outcomes and unlabeled predictions pooled as if all were data;
            invalid, kept as the baseline that shows why PPI is needed.
        lam : None, float, array-like, "overall", "per-coefficient", "per-stratum" or "matrix"
            With ``method="ppi++"`` only. None tunes lambda to minimise the
            estimated variance (the model's default rule); ``"overall"`` one
            lambda minimising the sum of the variances; ``"per-coefficient"`` one
            per parameter; ``"per-stratum"`` one per stratum of the design
            (stratified PPI, Fisch et al. 2024); ``"matrix"`` a p x p matrix
            ``Lambda = C (V_f + V_fu)^-1`` minimising the covariance matrix (not
            clipped; it spends p labeled degrees of freedom per parameter); a
            number (or one per parameter) fixes lambda.
        cov_type : {"HC0", "HC1", "HC2", "HC3", "CR0", "CR1", "CR2"}, optional
            Covariance estimator. Default ``"HC2"`` (leverage-adjusted sandwich),
            ``"CR2"`` (Bell-McCaffrey bias-reduced cluster-robust) with clusters.
            ``"HC0"`` is the plain sandwich (statsmodels' ``cov_type="HC0"``),
            ``"HC1"`` scales it by ``n / (n - p)``, ``"HC3"`` divides each row by
            ``1 - h_i``; ``"CR1"`` is the cluster-robust sandwich with the factor
            ``G / (G - 1)`` (per stratum, as R's survey package); ``"CR0"`` without it.
            Leverage corrections apply to the labeled rows (the unlabeled rows'
            leverages are of order p / N).
        use_t : bool, optional
            Refer statistics to Student's t (default True) with the degrees of
            freedom in ``res.df``: ``n - p`` (rows minus strata minus p - 1 in a
            stratified design) or, with clusters, PSUs minus strata, or Bell and
            McCaffrey's Satterthwaite degrees of freedom for ``"CR2"``; one less
            per lambda tuned on the labeled data; for PPI combined with the
            unlabeled part's by the Welch-Satterthwaite formula. False gives
            normal (z) intervals and tests.
        ci : {"analytic", "bootstrap"}
            ``"analytic"`` (default): intervals from the estimated variance.
            ``"bootstrap"``: intervals and standard errors from ``n_boot``
            replicates that resample the design's PSUs within strata (each sample
            on its own; all units together in a two-phase design), re-tuning
            lambda in each.
        n_boot : int
            Bootstrap replicates (``ci="bootstrap"`` only).
        seed : int, SeedSequence or Generator, optional
            Seed of the bootstrap (``ci="bootstrap"`` only).
        kind : {"percentile", "basic"}
            Bootstrap interval (``ci="bootstrap"`` only).
        n_jobs : int
            Processes for the bootstrap replicates (-1: all cores); the replicates are
            the same for any ``n_jobs`` (one seed per replicate).
        progress : {"auto", True, False}
            A progress bar for the bootstrap ("auto": on a terminal or in a notebook).

        Returns
        -------
        PPIResults

        Notes
        -----
        ``theta(lam) = b(Y) + lam * (b(unlabeled predictions) - b(labeled predictions))``
        with the design variance of the fits' contributions (Angelopoulos et al.
        2023, Science; Angelopoulos, Duchi & Zrnic 2023, PPI++).
        """
        self._reject_unknown("fit", unknown, ("method", "lam", "cov_type", "use_t", "ci", "n_boot", "seed", "kind",
                                              "n_jobs", "progress"))
        method = self._method(method)
        ci = choose(ci, CI_TYPES, "ci")
        rule = self._rule(method, lam)
        cov_type = self._cov_type(cov_type)
        use_t = True if use_t is None else bool(use_t)
        if ci == "bootstrap" and self.unlabeled.partitioned:
            self.unlabeled.take(None)  # raises: rows read partition by partition cannot be resampled
        passes = self.unlabeled.passes
        results = self._fit(method, rule, cov_type, use_t)
        results.unlabeled_passes = self.unlabeled.passes - passes
        if ci == "analytic":
            if seed is not None:
                raise ValueError("seed applies to ci='bootstrap' only.")
            return results
        kind = choose(kind, BOOTSTRAP_KINDS, "kind")
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
            raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}.")
        replicates = bootstrap_replicates(self, (method, rule, cov_type), int(n_boot), seed, n_jobs, progress)
        inference = BootstrapInference(results.params.to_numpy(), replicates, kind=kind)
        return results._with_inference(inference, ("Intervals", f"bootstrap ({int(n_boot)})"))

    def compare(self, methods=COMPARED_METHODS, *, alpha: float = 0.05, reference: str | None = "classical",
                **fit_options):
        """Several methods fitted side by side: estimates, standard errors, intervals, width
        relative to ``reference`` and effective sample sizes (naive pooling flagged invalid).

        ``fit_options`` (``cov_type``, ``use_t``, ``lam``...) go to every :meth:`fit`
        (``lam`` to PPI++ only). Returns a :class:`~ppinfer.models.comparison.Comparison`
        (``.table``, ``.plot()``).
        """
        from .comparison import Comparison

        lam = fit_options.pop("lam", None)
        results = {}
        for method in methods:
            options = dict(fit_options, method=method)
            if method in ("ppi++",) and lam is not None:
                options["lam"] = lam
            results[method] = self.fit(**options)
        reference = reference if reference in results else None
        return Comparison(results, alpha, reference)

    def _replicate(self, rng: np.random.Generator, task) -> np.ndarray:
        """The point estimate on one bootstrap resample (``task``: method, rule and cov_type)."""
        return self._resampled(rng)._point(*task)

    def _resampled(self, rng: np.random.Generator) -> "PPIModel":
        """A copy of the model on a bootstrap resample of the design (no validation, no cached fits)."""
        labeled_rows, unlabeled_rows, design = self.design.resample(rng)
        replica = copy.copy(self)
        replica._take_rows(labeled_rows, unlabeled_rows)
        replica.design = design
        replica._cache = {}
        return replica

    def _take_rows(self, labeled_rows: np.ndarray, unlabeled_rows: np.ndarray) -> None:
        """Restrict (or resample) both samples to rows at the given positions (a bootstrap replica)."""
        self.labeled = self.labeled.take(labeled_rows)
        self.unlabeled = self.unlabeled.take(unlabeled_rows)

    def _point(self, method: str, rule: LambdaRule | None, cov_type: str) -> np.ndarray:
        """The point estimate alone (bootstrap replicates); variances only as the tuning needs."""
        return self._fit(method, rule, cov_type, False, point_only=True)

    def _lambda_and_variance(self, rule: LambdaRule, cov_type: str, draw=None):
        components = self._components(cov_type, rule.by_stratum, draw, rule.tuned)
        lam = rule.lambdas(components)
        labeled, unlabeled = components.parts(lam)
        if rule.by_stratum:
            labeled, unlabeled = labeled.sum(axis=0), unlabeled.sum(axis=0)
        return lam, _Variance(labeled + unlabeled, np.diag(labeled), np.diag(unlabeled))

    def _deltas(self, draw=None) -> np.ndarray:
        """(strata, p) split of ``b_u - b_f`` by stratum (one Newton step from ``b_u``).

        With ``H`` the labeled prediction fit's Hessian at ``b_u`` and ``W`` the
        samples' total weights, ``Delta_h = H^-1 [W_lab / W_u sum_{u in h} w s(b_u) -
        sum_{lab in h} w s(b_u)]``: exactly ``b_u - b_f`` summed over strata for OLS,
        to first order otherwise (Fisch et al. 2024)."""
        key = ("deltas", draw)
        if key in self._cache:
            return self._cache[key]
        _, fit_f, fit_u = self._fits(draw)
        design = self.design
        H = design.nstrata
        anchor = fit_u.params
        # the labeled predictions' scores and Hessian at the anchor
        at_anchor = self._fit_blocks(
            [(LABELED, self._prediction(LABELED, draw), design.fit_weights(LABELED), RowScores)],
            start=anchor, what="the labeled predictions at the unlabeled fit", evaluate_only=True, predicted=True,
        )
        labeled_scores = at_anchor.collected[0].scores
        labeled_sums = group_sums(labeled_scores, design.labeled.stratum_codes(), H)
        unlabeled_sums = np.zeros_like(labeled_sums)
        for collected, sample in zip(fit_u.collected, self._prediction_samples()):
            if isinstance(collected, RowScores):
                unlabeled_sums += group_sums(collected.scores, design.sample(sample).stratum_codes(), H)
            elif collected.totals is not None:
                unlabeled_sums += group_sums(collected.totals, design.psu_strata, H)
            else:
                unlabeled_sums += collected.s1
        deltas = at_anchor.contributions(self._weight_ratio() * unlabeled_sums - labeled_sums)
        self._cache[key] = deltas
        return deltas

    def _fit(self, method: str, rule: LambdaRule | None, cov_type: str, use_t: bool, point_only: bool = False):
        fit_y = self._cached_fit_y()
        if method == "naive":
            return self._naive(cov_type, use_t, point_only)
        if method == "classical" or (not rule.tuned and not np.any(rule.fixed)):
            params = fit_y.params
            if point_only:
                return params
            covariance = self._classical_covariance(cov_type)
            df = self._labeled_df(cov_type) if use_t else None
            return self._results(method, params, WaldInference(params, covariance, df), 0.0, cov_type)
        if rule.tuned and not point_only:
            self._check_tuning_room(cov_type, rule)
        fixed_point = point_only and not rule.tuned
        lam, variance = (rule.fixed, None) if fixed_point else self._lambda_and_variance(rule, cov_type)
        _, fit_f, fit_u = self._fits()
        if rule.by_stratum:
            p, H = len(self.param_names), self.design.nstrata
            lam_by_stratum = np.broadcast_to(lam, (H, p, p) if rule.matrix else (H, p))
            params = fit_y.params + rule.correction(lam_by_stratum, self._deltas()).sum(axis=0)
        else:
            params = fit_y.params + rule.correction(lam, fit_u.params - fit_f.params)
        if point_only:
            return params
        df = None
        if use_t:
            spent = rule.tuned_count(self.design.nstrata, len(self.param_names))
            labeled_df = np.maximum(self._labeled_df(cov_type) - spent, 1.0)
            if self.design.combined:
                df = labeled_df
            else:
                df = satterthwaite_df([variance.labeled, variance.unlabeled], [labeled_df, self._unlabeled_df()])
        details = []
        if self.draws > 1 and method in ("ppi", "ppi++"):
            _, one_draw = self._lambda_and_variance(rule, cov_type, draw=0)
            ratio = np.mean(np.diag(one_draw.covariance) / np.diag(variance.covariance))
            details = [("Draws per unit (K)", str(self.draws)), ("Var 1 draw / K draws", f"{ratio:.3f}")]
        return self._results(method, params, WaldInference(params, variance.covariance, df),
                             self._report_lambda(lam, rule), cov_type, details)

    def _check_tuning_room(self, cov_type: str, rule: LambdaRule) -> None:
        """A tuned lambda is one more coefficient fitted on the labeled sample: it needs a
        degree of freedom left over, else its variance (and interval) cannot be estimated."""
        spent = rule.tuned_count(self.design.nstrata, len(self.param_names))
        room = self._labeled_df(cov_type) - spent
        if np.any(room < 1):
            raise ValueError(
                f"too few labeled rows to tune lambda: the labeled sample has {int(self._labeled_df(cov_type).min())} "
                f"degree(s) of freedom for the parameters' variances and tuning uses {spent} more. Fit with "
                "method='ppi' (lambda = 1), a fixed lam, or method='classical'; or label more units."
            )

    def _naive(self, cov_type: str, use_t: bool, point_only: bool):
        design = self.design
        labeled_weights = design.phase_one_weights(LABELED) if design.two_phase else design.fit_weights(LABELED)
        blocks = [
            (LABELED, self.labeled["y"], labeled_weights, RowScores),
            (UNLABELED, self._prediction(UNLABELED), design.phase_one_weights(UNLABELED), design.collector(UNLABELED)),
        ]
        pooled = self._fit_blocks(blocks, start=self._cached_fit_y().params, what="the naive pooled fit")
        if point_only:
            return pooled.params
        parts = self._fit_parts(pooled, [LABELED, UNLABELED], cov_type)
        covariance = design.variance(parts, cov_type=cov_type, nparams=self._df_params, pooled=True)
        df = None
        if use_t:
            df = self._labeled_df(cov_type) + self._unlabeled_df()
        return self._results("naive", pooled.params, WaldInference(pooled.params, covariance, df), None, cov_type)

    def _report_lambda(self, lam: np.ndarray, rule: LambdaRule):
        """Lambda as reported: one number when it is one, else a Series (per parameter or
        stratum) or a DataFrame (per stratum and parameter; a matrix Lambda, rows by stratum)."""
        index = pd.Index(self.param_names)
        lam = np.asarray(lam, dtype=float)
        if rule.matrix:
            if lam.ndim == 3:
                rows = pd.MultiIndex.from_product([self.design.stratum_names, index], names=["stratum", None])
                return pd.DataFrame(lam.reshape(-1, len(index)), index=rows, columns=index)
            return pd.DataFrame(lam, index=index.rename("coefficient"), columns=index)
        if rule.by_stratum:
            table = pd.DataFrame(np.broadcast_to(lam, (self.design.nstrata, len(index))),
                                 index=pd.Index(self.design.stratum_names, name="stratum"), columns=index)
            return table.iloc[:, 0].rename("lambda") if not rule.per_coefficient or table.shape[1] == 1 else table
        single = len(lam) == 1 or (not rule.per_coefficient and np.all(lam == lam[0]))
        return float(lam[0]) if single else pd.Series(lam, index=index, name="lambda")

    def _results(self, method, params, inference, lam, cov_type, details=(), classical_bse=None) -> PPIResults:
        if classical_bse is None:
            classical_bse = np.sqrt(np.maximum(np.diag(self._classical_covariance(cov_type)), 0.0))
        lines = list(self.design.describe())
        if self.design.clustered:
            count = self.design.npsu
            lines.insert(0, ("Covariance", f"{cov_type} cluster ({count} clusters)"))
        return self._record(
            method=method,
            params=params,
            inference=inference,
            lam=lam,
            classical_bse=classical_bse,
            details=lines + list(details),
            notes=[],
            cov_type=cov_type,
        )


# -- the bootstrap, over processes -------------------------------------------------------------
_WORKER: dict = {}


def _start_worker(model: "PPIModel", task) -> None:
    _WORKER["model"], _WORKER["task"] = model, task


def _replicates_of(generators) -> np.ndarray:
    model, task = _WORKER["model"], _WORKER["task"]
    with warnings.catch_warnings():
        # a replicate with degenerate predictions falls back to lambda = 0 by design
        warnings.simplefilter("ignore", PPIWarning)
        return np.array([model._replicate(rng, task) for rng in generators])


def bootstrap_replicates(model, task, n_boot: int, seed, n_jobs: int, progress,
                         description: str = "bootstrap") -> np.ndarray:
    """``model._replicate(rng, task)`` (the estimate on one design resample) for ``n_boot``
    generators, one per replicate (spawned from ``seed``), so that the replicates do not
    depend on ``n_jobs``."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    from .._progress import check_progress, progress as meter

    check_progress(progress)
    if isinstance(seed, np.random.Generator):
        generators = seed.spawn(n_boot)
    else:
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        generators = [np.random.default_rng(child) for child in root.spawn(n_boot)]
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs must be a positive integer or -1 (all cores); got {n_jobs!r}.")
    workers = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    size = max(1, min(50, n_boot // (4 * workers) or 1))
    chunks = [generators[start : start + size] for start in range(0, n_boot, size)]
    out = []
    with meter(total=n_boot, enabled=progress, description=description, unit="replicates") as bar:
        if workers == 1:
            _start_worker(model, task)
            for chunk in chunks:
                out.append(_replicates_of(chunk))
                bar.update(len(chunk))
        else:
            with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(model, task)) as pool:
                for chunk, values in zip(chunks, pool.map(_replicates_of, chunks)):
                    out.append(values)
                    bar.update(len(chunk))
    _WORKER.clear()
    return np.concatenate(out)
