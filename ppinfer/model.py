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
from .fitting import MEstimate, cluster_sums
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
    {"_fit_y", "_fit_yhat", "_fit_unlabeled", "_components", "_single_draw_components", "_cdf", "_pooled_cdf",
     "_labeled_cdf", "_stratified"}
)


def _resample_within(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions resampled with replacement within each group code."""
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    return np.concatenate([rng.choice(rows, rows.size) for rows in members])


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
        strata=None,
        strata_unlabeled=None,
        stratum_weights=None,
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
        stratified = strata is not None or strata_unlabeled is not None
        if stratified and (strata is None or strata_unlabeled is None):
            raise ValueError("strata and strata_unlabeled must be given together: every unit needs its stratum.")
        if stratified and any(v is not None for v in (weights, weights_unlabeled, label_prob, groups, groups_unlabeled)):
            raise ValueError("strata cannot be combined with weights, label_prob or groups: the stratified "
                             "design weights each stratum by its population share.")
        if stratum_weights is not None and not stratified:
            raise ValueError("stratum_weights needs strata and strata_unlabeled.")
        labeled, unlabeled = dict(labeled), dict(unlabeled)
        stratum_labels = None
        if stratified:
            labeled["strata"], unlabeled["strata_unlabeled"], stratum_labels = as_cluster_labels(
                strata, strata_unlabeled, "strata", "strata_unlabeled"
            )
        cluster_labeled = cluster_unlabeled = None
        if groups is not None or groups_unlabeled is not None:
            cluster_labeled, cluster_unlabeled, _ = as_cluster_labels(groups, groups_unlabeled)
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
        outcome = self.labeled["y"]
        if outcome.shape[0] > 1 and np.any(np.ptp(outcome.reshape(outcome.shape[0], -1), axis=0) == 0):
            warnings.warn(
                "y is constant in the labeled sample: its estimated variance is 0, so standard errors "
                "and interval widths are 0 (degenerate inference).",
                PPIWarning,
                stacklevel=3,
            )
        if "label_prob" in self.labeled:
            values = self.labeled["label_prob"]
            if np.any(values <= 0) or np.any(values > 1):
                raise ValueError("label_prob must lie in (0, 1]: each labeled unit's probability of being labeled.")
        if stratified:
            self._setup_strata(stratum_labels, stratum_weights)
        (self._groups, self._groups_unlabeled), self._ngroups, _ = recode_clusters(
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

    _strata = _strata_unlabeled = None

    def _setup_strata(self, stratum_labels: np.ndarray, stratum_weights) -> None:
        """Stratum codes, the stratum weights (population shares) and each row's weight."""
        (codes, codes_unlabeled), nstrata, original = recode_clusters(
            self.labeled["strata"], self.unlabeled["strata_unlabeled"]
        )
        names = stratum_labels[original]
        counts = np.bincount(codes, minlength=nstrata)
        counts_unlabeled = np.bincount(codes_unlabeled, minlength=nstrata)
        thin = [str(names[k]) for k in range(nstrata) if counts[k] < 2 or counts_unlabeled[k] < 1]
        if thin:
            raise ValueError(f"strata {thin} need at least 2 labeled and 1 unlabeled unit each.")
        if stratum_weights is None:
            shares = counts_unlabeled / counts_unlabeled.sum()
        else:
            given = pd.Series(stratum_weights, dtype=float) if not isinstance(stratum_weights, pd.Series) else stratum_weights
            missing = [str(name) for name in names if name not in given.index]
            unknown = [str(name) for name in given.index if name not in set(names)]
            if missing or unknown:
                raise ValueError(
                    f"stratum_weights must give a weight to each stratum of the data and to no other: "
                    f"missing {missing}, strata without units {unknown}."
                )
            shares = given.reindex(list(names)).to_numpy()
            if not np.all(np.isfinite(shares)) or np.any(shares < 0) or not shares.sum() > 0:
                raise ValueError("stratum_weights must be finite, non-negative and have a positive sum.")
            shares = shares / shares.sum()
        self._strata, self._strata_unlabeled = codes, codes_unlabeled
        self.stratum_names = [str(names[k]) for k in range(nstrata)]
        self.stratum_weights = pd.Series(shares, index=self.stratum_names, name="stratum_weight")
        self._row_weights = (
            (shares / counts * counts.sum())[codes],
            (shares / counts_unlabeled * counts_unlabeled.sum())[codes_unlabeled],
        )

    def _prediction(self, sample: str, draw: int | None = None) -> np.ndarray:
        """Predictions of a sample: the draws' row mean, or one draw."""
        values = self.labeled["yhat"] if sample == "labeled" else self.unlabeled["yhat_unlabeled"]
        if self.draws == 1:
            return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
        return values.mean(axis=1) if draw is None else np.ascontiguousarray(values[:, draw])

    @property
    def design(self) -> str:
        """``"independent samples"``, ``"labeling probabilities"`` or ``"stratified"``."""
        if "label_prob" in self.labeled:
            return "labeling probabilities"
        return "stratified" if self._strata is not None else "independent samples"

    def _block(self, sample: str, response: np.ndarray, *, weighted: bool = True) -> Block:
        if self._strata is not None:
            return sample, response, self._row_weights[sample != "labeled"], None
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
        """Components with only the first synthetic draw as the prediction
        (per stratum in a stratified design)."""
        fit_f = self._fit_labeled(self._prediction("labeled", 0), "the fit of the first draw")
        fit_fu = self._fit_predictions(0, start=fit_f.params)
        if self.design == "stratified":
            return self._stratified_parts(fit_f, fit_fu, draw=0)[0]
        return self._components_for(self._fit_y, fit_f, fit_fu)

    def _grouped_scores(self, sample: str, response, params, weights, codes, ngroups):
        """Per-group score sums of one response on one sample (see
        :func:`~ppinfer.fitting.grouped_scores`)."""
        raise NotImplementedError

    @cached_property
    def _stratified(self) -> tuple[PPIComponents, np.ndarray]:
        return self._stratified_parts(self._fit_yhat, self._fit_unlabeled)

    def _stratified_parts(
        self, fit_f: MEstimate, fit_fu: MEstimate, draw: int | None = None
    ) -> tuple[PPIComponents, np.ndarray]:
        """Per-stratum variance blocks (K, p, p) and corrections ``Delta_k`` (K, p),
        given the stratum-weighted fits of the predictions (their draws' mean, or one draw).

        With ``b = b_s(unlabeled predictions)`` and ``H`` the labeled prediction
        fit's mean Hessian at ``b`` (stratum-weighted fits throughout),
        ``Delta_k = H^-1 [sum_{unlabeled, k} w s(b) / N - sum_{labeled, k} w s(b) / n]``
        splits ``b_s(unlabeled) - b_s(labeled predictions)`` (exactly for OLS, to
        first order otherwise) by stratum, so each stratum gets its own lambda:
        ``theta = b_s(Y) + sum_k lam_k Delta_k`` (Fisch et al. 2024). Variances are
        those of stratified samples: influence rows centred within strata.
        """
        n, N, K = self.nobs, self.nobs_unlabeled, len(self.stratum_names)
        anchor = fit_fu.params
        weights_labeled, weights_unlabeled = self._row_weights
        labeled = self._grouped_scores(
            "labeled", self._prediction("labeled", draw), anchor, weights_labeled, self._strata, K
        )
        unlabeled = self._grouped_scores(
            "unlabeled", self._prediction("unlabeled", draw), anchor, weights_unlabeled, self._strata_unlabeled, K
        )
        inverse = np.linalg.inv(labeled.hessian / n)
        deltas = (unlabeled.sums / N - labeled.sums / n) @ inverse
        centred_unlabeled = unlabeled.outer - np.einsum("kp,kq->kpq", unlabeled.sums, unlabeled.sums) / np.maximum(
            unlabeled.counts, 1
        )[:, None, None]
        # the unlabeled rows' influence uses their own fit's Hessian, as the plug-in estimator's does
        inverse_unlabeled = np.linalg.inv(unlabeled.hessian / N)
        var_fu = inverse_unlabeled @ centred_unlabeled @ inverse_unlabeled / N**2

        influence_y, influence_f = self._fit_y.influence, fit_f.influence
        components = PPIComponents(
            var_y=self._within_strata(influence_y, influence_y),
            cov_yf=self._within_strata(influence_y, influence_f),
            var_f=self._within_strata(influence_f, influence_f),
            var_fu=var_fu,
        )
        return components, deltas

    def _within_strata(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(K, p, p) per-stratum ``sum a_i b_i' / n^2`` of labeled rows centred within strata
        (the variance blocks of a stratified sample)."""
        K, n = len(self.stratum_names), self.nobs
        sizes = np.bincount(self._strata, minlength=K)[:, None]
        a = a - (cluster_sums(a, self._strata, K) / sizes)[self._strata]
        b = b - (cluster_sums(b, self._strata, K) / sizes)[self._strata]
        out = np.zeros((K, a.shape[1], b.shape[1]))
        for k in range(K):
            rows = self._strata == k
            out[k] = a[rows].T @ b[rows] / n**2
        return out

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
        clusters are drawn, each draw becoming a new cluster (when clusters may
        span both samples, a drawn cluster brings its units of both, and clusters
        with labeled units are drawn apart from the unlabeled-only ones); with
        labeling probabilities the units of both samples are resampled together,
        as they form one sample; with strata, rows are resampled within strata.
        """
        n, N = self.nobs, self.nobs_unlabeled
        groups, groups_unlabeled = self._groups, self._groups_unlabeled
        if self.design == "labeling probabilities":
            units = rng.integers(0, n + N, n + N)
            labeled_rows, unlabeled_rows = units[units < n], units[units >= n] - n
        elif self.design == "stratified":
            # within strata: stratum sizes, hence the row weights, stay as they are
            labeled_rows = _resample_within(self._strata, rng)
            unlabeled_rows = _resample_within(self._strata_unlabeled, rng)
        elif groups is None and groups_unlabeled is None:
            labeled_rows, unlabeled_rows = rng.integers(0, n, n), rng.integers(0, N, N)
        else:
            codes = [groups, groups_unlabeled]
            if groups is None:
                codes[0] = self._ngroups + np.arange(n)
            if groups_unlabeled is None:
                codes[1] = self._ngroups + n + np.arange(N)
            if groups is not None and groups_unlabeled is not None:
                # clusters may span both samples: draw whole clusters, those holding labeled
                # units apart from the others, so every replicate has as many labeled clusters
                with_labels = np.unique(groups)
                without = np.setdiff1d(np.unique(groups_unlabeled), with_labels)
                chosen = np.concatenate([rng.choice(with_labels, with_labels.size), rng.choice(without, without.size)])
                drawn = [chosen, chosen]
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
        if self._strata is not None:
            replica._strata, replica._strata_unlabeled = self._strata[labeled_rows], self._strata_unlabeled[unlabeled_rows]
            replica._row_weights = (self._row_weights[0][labeled_rows], self._row_weights[1][unlabeled_rows])
        present = [c for c in (groups, groups_unlabeled) if c is not None]
        replica._ngroups = int(max(c.max() for c in present)) + 1 if present else 0
        return replica

    @staticmethod
    def _lambda(components: PPIComponents, rule) -> np.ndarray:
        if isinstance(rule, np.ndarray):
            return rule
        return components.tuned_lambda(per_coefficient=rule == "per-coefficient")

    @classmethod
    def _combined(cls, components: PPIComponents, rule) -> tuple[np.ndarray, np.ndarray]:
        """Lambda and the covariance of the estimate; with per-stratum blocks
        (K, p, p), one lambda per stratum and the strata's variances summed."""
        if components.var_y.ndim == 3:
            if isinstance(rule, np.ndarray):
                rule = np.broadcast_to(rule, components.var_y.shape[:2])
            lam = cls._lambda(components, rule)
            return lam, components.covariance(lam).sum(axis=0)
        lam = cls._lambda(components, rule)
        return lam, components.covariance(lam)

    def _fit(self, method: str, rule) -> PPIResults:
        classical = self._fit_y
        # a stratified sample's classical variance is centred within strata
        classical_covariance = (
            self._within_strata(classical.influence, classical.influence).sum(axis=0)
            if self.design == "stratified"
            else classical.covariance
        )
        if method == "naive":
            labeled = self._block("labeled", self.labeled["y"], weighted=self.design != "labeling probabilities")
            unlabeled = self._block("unlabeled", self._prediction("unlabeled"))
            pooled = self._estimate_on([labeled, unlabeled], start=classical.params, what="the naive pooled fit")
            params, covariance, lam = pooled.params, pooled.covariance, None
        elif method == "classical":
            params, covariance, lam = classical.params, classical_covariance, rule
        elif self.design == "stratified":
            components, deltas = self._stratified
            lam, covariance = self._combined(components, rule)
            params = classical.params + (lam * deltas).sum(axis=0)
        else:
            lam, covariance = self._combined(self._components, rule)
            params = classical.params + lam * (self._fit_unlabeled.params - self._fit_yhat.params)
        details = []
        if self.draws > 1 and method in ("ppi", "ppi++"):
            one_draw = np.diag(self._combined(self._single_draw_components, rule)[1])
            details.append(("Draws per unit (K)", str(self.draws)))
            details.append(("Var 1 draw / K draws", f"{np.mean(one_draw / np.diag(covariance)):.3f}"))
        return self._results(
            method=method,
            lam=lam,
            params=params,
            inference=WaldInference(params, covariance),
            classical_bse=np.sqrt(np.diag(classical_covariance)),
            per_coefficient=isinstance(rule, str) and rule == "per-coefficient",
            details=details,
        )

    def _results(self, *, method, lam, params, inference, classical_bse, per_coefficient, details=()) -> PPIResults:
        """Wrap arrays into a results object; lambda is reported as one number when it is one."""
        index = pd.Index(self.param_names)
        if lam is not None:
            lam = np.asarray(lam, dtype=float)
            if lam.ndim == 2:  # one lambda (or one per coefficient) per stratum
                table = pd.DataFrame(lam, index=pd.Index(self.stratum_names, name="stratum"), columns=index)
                lam = table.iloc[:, 0].rename("lambda") if not per_coefficient or table.shape[1] == 1 else table
            else:
                single = len(lam) == 1 or (not per_coefficient and np.all(lam == lam[0]))
                lam = float(lam[0]) if single else pd.Series(lam, index=index, name="lambda")
        details = list(details)
        if self.design == "labeling probabilities":
            details.insert(0, ("Design", "known label prob."))
        elif self.design == "stratified":
            details.insert(0, ("Design", f"stratified ({len(self.stratum_names)} strata)"))
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
