"""The model base class: validated data in, ``fit(method=..., lam=...)`` out.

A model holds validated labeled and unlabeled samples and fits three
M-estimates lazily, once each (cached): the labeled outcomes, the labeled
predictions and the unlabeled predictions. ``fit`` combines them for the chosen
method with :class:`~ppinfer.covariance.PPIComponents`; subclasses only say how a
single M-estimate is computed.
"""

from __future__ import annotations

import copy
import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from ._options import choose, reject_unknown_keywords
from .covariance import PPIComponents
from .data import Sample, Variable, as_cluster_labels, as_variable, check_range, make_sample, recode_clusters
from .fitting import MEstimate
from .covariance import PPIWarning
from .results import BootstrapInference, PPIResults, WaldInference

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

CI_TYPES = {"analytic": "analytic", "wald": "analytic", "bootstrap": "bootstrap"}

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


#: cached fits, dropped from a bootstrap replica of a model
_CACHED = frozenset(
    {"_fit_y", "_fit_yhat", "_fit_unlabeled", "_components", "_single_draw_components", "_cdf", "_pooled_cdf"}
)

#: one block of rows to fit: (sample name, response, row weights, cluster codes)
Block = tuple[str, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


class PPIModel:
    """Base class of prediction-powered models (not instantiated directly).

    Subclasses set ``_title`` and ``_default_tuning``, call :meth:`_setup` with
    their validated variables, set ``param_names`` and ``endog_name``, and
    implement :meth:`_estimate_on`.

    Sampling designs
    ----------------
    Independent samples (default): the labeled and unlabeled rows are two
    samples from one population; optional ``weights`` / ``weights_unlabeled``
    weight each sample's fits, and ``groups`` / ``groups_unlabeled`` give cluster
    labels for cluster-robust variances (a cluster may span both samples).

    Known labeling probabilities (``label_prob``): all units (labeled and
    unlabeled) form one sample and unit ``i`` was labeled with known probability
    ``pi_i`` (active or stratified labeling). The labeled fits are weighted by
    ``1 / pi_i`` and the prediction fit uses every unit; see
    :meth:`~ppinfer.covariance.PPIComponents.from_labeling_probabilities`.
    """

    _title = "model"
    _default_tuning = "overall"
    labeled: Sample
    unlabeled: Sample
    param_names: list[str]
    endog_name: str
    #: synthetic draws (prediction columns) per unit; their row mean is the prediction
    draws: int = 1

    # -- construction --------------------------------------------------------------
    def _setup(
        self,
        labeled: dict[str, Variable],
        unlabeled: dict[str, Variable],
        *,
        missing: str,
        outcome_columns: int = 1,
        groups=None,
        groups_unlabeled=None,
        weights=None,
        weights_unlabeled=None,
        label_prob=None,
    ) -> None:
        """Validate and store both samples with the design options.

        ``labeled`` must hold ``"y"`` and ``"yhat"`` and ``unlabeled``
        ``"yhat_unlabeled"``; prediction arrays with more columns than the outcome
        are K synthetic draws per unit (only for a single outcome column).
        """
        if label_prob is not None and (weights is not None or weights_unlabeled is not None):
            raise ValueError("label_prob already sets the labeled rows' weights (1 / label_prob); "
                             "do not pass weights or weights_unlabeled with it.")
        if label_prob is not None and (groups is not None or groups_unlabeled is not None):
            raise ValueError("label_prob cannot be combined with groups: cluster-robust variances are "
                             "available for independent labeled and unlabeled samples only.")
        labeled, unlabeled = dict(labeled), dict(unlabeled)
        cluster_labeled, cluster_unlabeled = (
            as_cluster_labels(groups, groups_unlabeled) if groups is not None or groups_unlabeled is not None
            else (None, None)
        )
        extras = (
            (labeled, "groups", cluster_labeled),
            (unlabeled, "groups_unlabeled", cluster_unlabeled),
            (labeled, "weights", weights if weights is None else as_variable(weights, "weights", ndim=1, default_name="weights")),
            (unlabeled, "weights_unlabeled", None if weights_unlabeled is None else
             as_variable(weights_unlabeled, "weights_unlabeled", ndim=1, default_name="weights")),
            (labeled, "label_prob", None if label_prob is None else
             as_variable(label_prob, "label_prob", ndim=1, default_name="label_prob")),
        )
        for sample, key, variable in extras:
            if variable is not None:
                sample[key] = variable
        self.labeled = make_sample(labeled, missing=missing, label="labeled")
        self.unlabeled = make_sample(unlabeled, missing=missing, label="unlabeled")
        for sample, key in ((self.labeled, "weights"), (self.unlabeled, "weights_unlabeled")):
            if key in sample:
                check_range(sample[key], key, low=0.0, high=np.inf, what="non-negative")
                if not sample[key].sum() > 0:
                    raise ValueError(f"{key} must have a positive sum.")
        if "label_prob" in self.labeled:
            values = self.labeled["label_prob"]
            if np.any(values <= 0) or np.any(values > 1):
                raise ValueError("label_prob must lie in (0, 1]: each labeled unit's probability of being labeled.")
        (self._groups, self._groups_unlabeled), self._ngroups = recode_clusters(
            self.labeled["groups"] if "groups" in self.labeled else None,
            self.unlabeled["groups_unlabeled"] if "groups_unlabeled" in self.unlabeled else None,
        )
        for codes, key in ((self._groups, "groups"), (self._groups_unlabeled, "groups_unlabeled")):
            if codes is not None and np.unique(codes).size < 2:
                raise ValueError(f"{key} has fewer than 2 clusters; cluster-robust variances need at least 2.")
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

    def _prediction(self, sample: str, draw: int | None = None) -> np.ndarray:
        """Predictions of a sample: the draws' row mean, or one draw."""
        values = self.labeled["yhat"] if sample == "labeled" else self.unlabeled["yhat_unlabeled"]
        if self.draws == 1:
            return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        return values.mean(axis=1) if draw is None else np.ascontiguousarray(values[:, draw])

    @property
    def design(self) -> str:
        """``"independent samples"`` or ``"labeling probabilities"``."""
        return "labeling probabilities" if "label_prob" in self.labeled else "independent samples"

    def _block(self, sample: str, response: np.ndarray, *, weighted: bool = True) -> Block:
        if sample == "labeled":
            if "label_prob" in self.labeled:
                weights = 1.0 / self.labeled["label_prob"] if weighted else None
            else:
                weights = self.labeled["weights"] if "weights" in self.labeled else None
            return sample, response, weights, self._groups
        weights = self.unlabeled["weights_unlabeled"] if "weights_unlabeled" in self.unlabeled else None
        return sample, response, weights, self._groups_unlabeled

    # -- what subclasses provide -------------------------------------------------------
    def _estimate_on(self, blocks: list[Block], *, start=None, keep_influence=False, what="fit") -> MEstimate:
        """Fit one response on one or more blocks of rows (the sample names say
        which design each block uses). With cluster codes on some blocks only, the
        others are given one code per row."""
        raise NotImplementedError

    def _clusters_for(self, blocks: list[Block]) -> tuple[list, int]:
        """Cluster codes for each block, all-or-none, in one code space."""
        if all(b[3] is None for b in blocks):
            return [None] * len(blocks), 0
        codes, offset = [], self._ngroups
        for _, response, _, groups in blocks:
            if groups is None:  # units of an unclustered sample are their own clusters
                groups = offset + np.arange(response.shape[0])
                offset += response.shape[0]
            codes.append(groups)
        return codes, offset

    # -- shared ------------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Labeled rows used."""
        return self.labeled.nobs

    @property
    def nobs_unlabeled(self) -> int:
        """Unlabeled rows used."""
        return self.unlabeled.nobs

    def _fit_labeled(self, response: np.ndarray, what: str) -> MEstimate:
        return self._estimate_on([self._block("labeled", response)], keep_influence=True, what=what)

    def _fit_predictions(self, draw: int | None = None, start=None) -> MEstimate:
        """The fit of the unlabeled predictions (of all units' predictions when
        labeling probabilities are known)."""
        unlabeled = self._block("unlabeled", self._prediction("unlabeled", draw))
        if self.design == "labeling probabilities":
            blocks = [self._block("labeled", self._prediction("labeled", draw), weighted=False), unlabeled]
            return self._estimate_on(blocks, start=start, what="the fit of all units' predictions")
        return self._estimate_on([unlabeled], start=start, what="the fit of yhat_unlabeled")

    def _components_for(self, fit_y: MEstimate, fit_f: MEstimate, fit_fu: MEstimate) -> PPIComponents:
        if self.design == "labeling probabilities":
            return PPIComponents.from_labeling_probabilities(fit_y, fit_f, fit_fu, self.labeled["label_prob"])
        if self._groups is None:
            return PPIComponents.from_estimates(fit_y, fit_f, fit_fu)
        return PPIComponents.from_estimates(fit_y, fit_f, fit_fu, groups=self._groups, ngroups=self._ngroups)

    @cached_property
    def _fit_y(self) -> MEstimate:
        return self._fit_labeled(self.labeled["y"], "the fit of y")

    @cached_property
    def _fit_yhat(self) -> MEstimate:
        return self._fit_labeled(self._prediction("labeled"), "the fit of yhat")

    @cached_property
    def _fit_unlabeled(self) -> MEstimate:
        # the labeled fit of the predictions is close: a warm start saves passes
        return self._fit_predictions(start=self._fit_yhat.params)

    @cached_property
    def _components(self) -> PPIComponents:
        return self._components_for(self._fit_y, self._fit_yhat, self._fit_unlabeled)

    @cached_property
    def _single_draw_components(self) -> PPIComponents:
        """Components with only the first synthetic draw as the prediction."""
        fit_f = self._fit_labeled(self._prediction("labeled", 0), "the fit of the first draw")
        return self._components_for(self._fit_y, fit_f, self._fit_predictions(0, start=fit_f.params))

    def fit(
        self, *, method: str = "ppi++", lam=None, ci: str = "analytic", n_boot: int = 1000, seed=None, **unknown
    ) -> PPIResults:
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
        ci : {"analytic", "bootstrap"}
            ``"analytic"`` (default): intervals and tests from the estimated
            (influence-function) variance, or the quantile's test inversion.
            ``"bootstrap"``: percentile intervals and bootstrap standard errors
            from ``n_boot`` replicates that resample the labeled and unlabeled
            rows independently (whole clusters when ``groups`` are given, all
            units together when ``label_prob`` is), re-tuning lambda in each.
        n_boot : int
            Bootstrap replicates (``ci="bootstrap"`` only).
        seed : int, SeedSequence or Generator, optional
            Seed of the bootstrap (``ci="bootstrap"`` only).

        Returns
        -------
        PPIResults

        Notes
        -----
        ``theta(lam) = b(Y) + lam * (b(unlabeled predictions) - b(labeled predictions))``
        with the influence-function variance of :mod:`ppinfer.covariance`
        (Angelopoulos et al. 2023, Science; Angelopoulos, Duchi & Zrnic 2023, PPI++).
        The bootstrap refits every replicate: its cost is ``n_boot`` fits.
        """
        reject_unknown_keywords("fit", unknown, ("method", "lam", "ci", "n_boot", "seed"))
        method = choose(method, METHODS, "method")
        ci = choose(ci, CI_TYPES, "ci")
        rule = lambda_rule(method, lam, default_tuning=self._default_tuning, nparams=len(self.param_names))
        results = self._fit(method, rule)
        if ci == "analytic":
            if seed is not None:
                raise ValueError("seed applies to ci='bootstrap' only.")
            return results
        if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
            raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}.")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        replicates = np.empty((int(n_boot), len(self.param_names)))
        with warnings.catch_warnings():
            # a replicate with degenerate predictions falls back to lambda = 0 by design
            warnings.simplefilter("ignore", PPIWarning)
            for b in range(int(n_boot)):
                replicates[b] = self._resampled(rng)._fit(method, rule).params.to_numpy()
        inference = BootstrapInference(results.params.to_numpy(), replicates)
        return results._with_inference(inference, ("Intervals", f"bootstrap ({int(n_boot)})"))

    def _resampled(self, rng: np.random.Generator) -> "PPIModel":
        """A copy of the model on a bootstrap resample (no validation, no cached fits).

        Rows of each sample are resampled independently; with clusters, whole
        clusters are drawn (jointly across samples, since a cluster may span
        both), each draw becoming a new cluster; with labeling probabilities the
        units of both samples are resampled together, as they form one sample.
        """
        n, N = self.nobs, self.nobs_unlabeled
        groups, groups_unlabeled = self._groups, self._groups_unlabeled
        if self.design == "labeling probabilities":
            units = rng.integers(0, n + N, n + N)
            labeled_rows, unlabeled_rows = units[units < n], units[units >= n] - n
        elif groups is None and groups_unlabeled is None:
            labeled_rows, unlabeled_rows = rng.integers(0, n, n), rng.integers(0, N, N)
        else:
            codes = [groups, groups_unlabeled]
            if groups is None:
                codes[0] = self._ngroups + np.arange(n)
            if groups_unlabeled is None:
                codes[1] = self._ngroups + n + np.arange(N)
            if groups is not None and groups_unlabeled is not None:
                drawn = [rng.integers(0, self._ngroups, self._ngroups)] * 2
            else:
                drawn = [rng.choice(np.unique(c), np.unique(c).size) for c in codes]
            rows, new_codes = [], []
            for sample_codes, sample_draws in zip(codes, drawn):
                order = np.argsort(sample_codes, kind="stable")
                starts = np.searchsorted(sample_codes[order], sample_draws, side="left")
                stops = np.searchsorted(sample_codes[order], sample_draws, side="right")
                sizes = stops - starts
                take = np.concatenate([order[a:b] for a, b in zip(starts, stops)]) if sizes.sum() else np.array([], int)
                rows.append(take)
                new_codes.append(np.repeat(np.arange(sample_draws.size), sizes))
            labeled_rows, unlabeled_rows = rows
            if groups is not None:
                groups = new_codes[0]
            if groups_unlabeled is not None:
                groups_unlabeled = new_codes[1]
        replica = copy.copy(self)
        replica.__dict__ = {k: v for k, v in self.__dict__.items() if k not in _CACHED}
        replica.labeled = self.labeled.take(labeled_rows)
        replica.unlabeled = self.unlabeled.take(unlabeled_rows)
        replica._groups, replica._groups_unlabeled = groups, groups_unlabeled
        present = [c for c in (groups, groups_unlabeled) if c is not None]
        replica._ngroups = int(max(c.max() for c in present)) + 1 if present else 0
        return replica

    @staticmethod
    def _lambda(components: PPIComponents, rule) -> np.ndarray:
        if isinstance(rule, np.ndarray):
            return rule
        return components.tuned_lambda(per_coefficient=rule == "per-coefficient")

    def _fit(self, method: str, rule) -> PPIResults:
        classical = self._fit_y
        if method == "naive":
            labeled = self._block("labeled", self.labeled["y"], weighted=self.design != "labeling probabilities")
            unlabeled = self._block("unlabeled", self._prediction("unlabeled"))
            pooled = self._estimate_on([labeled, unlabeled], start=classical.params, what="the naive pooled fit")
            params, covariance, lam = pooled.params, pooled.covariance, None
        elif method == "classical":
            params, covariance, lam = classical.params, classical.covariance, rule
        else:
            components = self._components
            lam = self._lambda(components, rule)
            params = classical.params + lam * (self._fit_unlabeled.params - self._fit_yhat.params)
            covariance = components.covariance(lam)
        details = []
        if self.draws > 1 and method in ("ppi", "ppi++"):
            single = self._single_draw_components
            one_draw = np.diag(single.covariance(self._lambda(single, rule)))
            details.append(("Draws per unit (K)", str(self.draws)))
            details.append(("Var 1 draw / K draws", f"{np.mean(one_draw / np.diag(covariance)):.3f}"))
        return self._results(
            method=method,
            lam=lam,
            params=params,
            inference=WaldInference(params, covariance),
            classical_bse=np.sqrt(np.diag(classical.covariance)),
            per_coefficient=isinstance(rule, str) and rule == "per-coefficient",
            details=details,
        )

    def _results(self, *, method, lam, params, inference, classical_bse, per_coefficient, details=()) -> PPIResults:
        """Wrap arrays into a results object; lambda is reported as one number when it is one."""
        index = pd.Index(self.param_names)
        if lam is not None:
            lam = np.asarray(lam, dtype=float)
            single = len(lam) == 1 or (not per_coefficient and np.all(lam == lam[0]))
            lam = float(lam[0]) if single else pd.Series(lam, index=index, name="lambda")
        details = list(details)
        if self.design != "independent samples":
            details.insert(0, ("Design", "known label prob."))
        if self._groups is not None or self._groups_unlabeled is not None:
            details.insert(0, ("Covariance", f"cluster ({self._ngroups} clusters)"))
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
