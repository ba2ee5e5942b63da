"""Inference with synthetic outcomes: two-step GMM with real and synthetic moments.

A generative model (digital twins of trial patients, a language model answering a
survey as each respondent would) gives ``K`` synthetic outcomes per unit, for the
labeled units (which also have a real outcome) and for the unlabeled ones. The
synthetic draws may be biased in any way; :class:`SyntheticGMM` uses them only
through moment conditions whose expectations are known to agree between the
labeled units and all units, so its estimate stays consistent whatever their
quality and gains precision when the synthetic residuals predict the real ones
(Byun, Gupta, Lipton, Childers & Wilder 2025).

The samples may come from a complex design (:class:`ppinfer.Design`: weights,
clusters, strata, finite population corrections): the moments are weighted
means and their covariance is the design's, by linearization
(:meth:`ppinfer.designs.base.BoundDesign.variance`).

The input handling here (outcome, design, synthetic draws per unit, estimand) is
shared with :mod:`ppinfer.models.imputation`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ..core.covariance import parse_cov_type
from ..core.families import Binomial, Family, Gaussian, Poisson
from ..core.fitting import CHUNK_ROWS, Fit, fit_glm
from ..core.in_memory import refuse_streamed, refuse_streamed_design
from ..core.inference import WaldInference
from ..core.options import choose
from ..core.results import PPIResults
from ..core.validation import Sample, Variable, as_variable, check_full_rank, make_sample, match_columns
from ..core.warnings import PPIWarning
from ..designs.base import LABELED, UNLABELED, BoundDesign, Contributions, Design, DesignCollector, design_from_keywords
from .base import Estimator, with_design_keywords

__all__ = ["SyntheticGMM", "SyntheticGMMResults", "SyntheticModel", "synthetic_data"]

#: estimands and the canonical-link family of their estimating equations
ESTIMANDS = {"mean": "mean", "ols": "ols", "logit": "logit", "poisson": "poisson"}
FAMILIES: dict[str, Family] = {"mean": Gaussian(), "ols": Gaussian(), "logit": Binomial(), "poisson": Poisson()}
TITLES = {"mean": "Mean", "ols": "OLS", "logit": "Logit", "poisson": "Poisson"}

GMM_METHODS = {"gmm": "gmm", "classical": "classical", "naive": "naive"}
GMM_LABELS = {"gmm": "Two-step GMM", "classical": "Classical", "naive": "Naive pooling"}
DRAWS = {"separate": "separate", "each": "separate", "mean": "mean", "average": "mean"}

#: a moment block whose scaled covariance has a relative eigenvalue below this is redundant
REDUNDANCY_TOLERANCE = 1e-9
#: a source whose residuals are this small relative to its spread is an exact function of the design
RESIDUAL_TOLERANCE = 1e-8


# -- shared input handling ----------------------------------------------------------------


def source_variables(value, argument: str) -> list[Variable]:
    """Synthetic draws as one 1-D :class:`Variable` per source (or draw).

    Accepts a vector (one source), an (n, K) array or DataFrame (K sources, one
    per column) or a list of K vectors. An empty list means no synthetic source.
    """
    if isinstance(value, (list, tuple)):
        variables = []
        for k, item in enumerate(value):
            variable = as_variable(item, f"{argument}[{k}]", ndim=1, default_name=f"synthetic{k + 1}")
            variables.append(variable)
        return variables
    variable = as_variable(value, argument, ndim=2, default_name="synthetic")
    if variable.values.shape[1] == 1:
        names = variable.names if variable.names != ["synthetic"] else ["synthetic1"]
        return [Variable(variable.values[:, 0], names, variable.index)]
    return [
        Variable(np.ascontiguousarray(variable.values[:, k]), [variable.names[k]], variable.index)
        for k in range(variable.values.shape[1])
    ]


@dataclass(frozen=True)
class SyntheticData:
    """Validated labeled and unlabeled samples with K synthetic draws per unit.

    ``labeled`` holds ``"y"``, ``"X"`` and ``"synthetic"`` (n, K); ``unlabeled``
    holds ``"X"`` and ``"synthetic"`` (N, K).
    """

    estimand: str
    family: Family
    labeled: Sample
    unlabeled: Sample
    param_names: list[str]
    source_names: list[str]
    endog_name: str
    design: BoundDesign
    auxiliary_names: list[str] = field(default_factory=list)

    @property
    def nsources(self) -> int:
        return self.labeled["synthetic"].shape[1]


def _with_arrays(sample: Sample, arrays: dict[str, np.ndarray]) -> Sample:
    """``sample``'s record of dropped rows with the estimator's own arrays."""
    return Sample({key: Variable(value, [key]) for key, value in arrays.items()}, sample.n_dropped, sample.kept)


def _refuse_streamed_inputs(estimator, y, synthetic, synthetic_unlabeled, X, X_unlabeled, names, auxiliary,
                            design) -> None:
    """A TypeError for an input whose rows stay in their source (the estimators need them in memory)."""
    given = [(y, "y"), (X, "X"), (X_unlabeled, "X_unlabeled")]
    for value, name in ((synthetic, names[0]), (synthetic_unlabeled, names[1])):
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        given += [(item, f"{name}[{k}]" if isinstance(value, (list, tuple)) else name) for k, item in enumerate(items)]
    if auxiliary is not None:
        given += list(zip(auxiliary[:2], auxiliary[2]))
    for value, name in given:
        refuse_streamed(value, name, estimator)
    refuse_streamed_design(design.options, design.names, estimator)


def synthetic_data(
    y, synthetic, synthetic_unlabeled, *, X, X_unlabeled, estimand, missing: str, design: Design,
    names: tuple[str, str] = ("synthetic", "synthetic_unlabeled"), auxiliary: tuple | None = None,
    estimator: str = "SyntheticGMM",
) -> SyntheticData:
    """Validate the inputs of a synthetic-data estimator, with the design's columns.

    ``estimand=None`` means ``"mean"`` without designs and ``"ols"`` with them. The
    mean is the intercept-only Gaussian model (its parameter named after ``y``).
    ``names`` are the argument names of the synthetic inputs, for messages (an
    empty list of sources is allowed: no synthetic data).
    ``auxiliary = (value, value_unlabeled, (name, name_unlabeled))`` adds a second
    pair of designs, validated and row-aligned with the others and kept as ``"W"``
    (its column names as ``SyntheticData.auxiliary_names``). ``design`` is bound to
    the rows kept; two-phase designs (``label_prob``) are not supported. Both samples
    are read in memory: an input read partition by partition (Dask, Parquet, a memory
    map of non-float64 values) raises a ``TypeError`` naming ``estimator``.
    """
    _refuse_streamed_inputs(estimator, y, synthetic, synthetic_unlabeled, X, X_unlabeled, names, auxiliary, design)
    if design.two_phase:
        raise ValueError(
            "label_prob (a two-phase design) is not supported by the synthetic-data estimators: their labeled "
            "units are a sample of all units at random (within strata). Use weights, clusters, strata and fpc."
        )
    if estimand is None:
        estimand = "mean" if X is None and X_unlabeled is None else "ols"
    estimand = choose(estimand, ESTIMANDS, "estimand")
    family = FAMILIES[estimand]
    outcome = as_variable(y, "y", ndim=1, default_name="y")
    if estimand == "mean":
        if X is not None or X_unlabeled is not None:
            raise ValueError("X and X_unlabeled are for regressions; leave them out for estimand='mean'.")
    elif X is None or X_unlabeled is None:
        raise ValueError(f"estimand={estimand!r} needs the designs X and X_unlabeled.")
    labeled_sources = source_variables(synthetic, names[0])
    unlabeled_sources = source_variables(synthetic_unlabeled, names[1])
    if len(labeled_sources) != len(unlabeled_sources):
        raise ValueError(
            f"{names[0]} has {len(labeled_sources)} synthetic source(s) (columns) but {names[1]} has "
            f"{len(unlabeled_sources)}; give the same draws or sources for both samples."
        )
    labeled_vars = {"y": outcome}
    unlabeled_vars = {}
    if X is not None:
        matrix = as_variable(X, "X", ndim=2, default_name="x")
        matrix_unlabeled = match_columns(matrix, as_variable(X_unlabeled, "X_unlabeled", ndim=2, default_name="x"))
        labeled_vars["X"], unlabeled_vars["X_unlabeled"] = matrix, matrix_unlabeled
    auxiliary_names: list[str] = []
    if auxiliary is not None:
        value, value_unlabeled, (argument, argument_unlabeled) = auxiliary
        extra = as_variable(value, argument, ndim=2, default_name="w")
        extra_unlabeled = match_columns(extra, as_variable(value_unlabeled, argument_unlabeled, ndim=2, default_name="w"))
        labeled_vars[argument], unlabeled_vars[argument_unlabeled] = extra, extra_unlabeled
        auxiliary_names = extra.names
    labeled_vars.update({f"{names[0]}[{k}]": v for k, v in enumerate(labeled_sources)})
    unlabeled_vars.update({f"{names[1]}[{k}]": v for k, v in enumerate(unlabeled_sources)})
    if not unlabeled_vars:
        raise ValueError(f"{names[1]} holds no unlabeled units.")
    design_labeled, design_unlabeled = design.variables()
    labeled = make_sample({**labeled_vars, **design_labeled}, missing=missing, label="labeled")
    unlabeled = make_sample({**unlabeled_vars, **design_unlabeled}, missing=missing, label="unlabeled")
    bound = design.bind(labeled, unlabeled)
    n, N = labeled.nobs, unlabeled.nobs
    if X is None:
        param_names = outcome.names
        X_lab, X_unl = np.ones((n, 1)), np.ones((N, 1))
    else:
        param_names = labeled.names("X")
        X_lab, X_unl = labeled["X"], unlabeled["X_unlabeled"]
        check_full_rank(X_lab, param_names, "X")
        check_full_rank(X_unl, param_names, "X_unlabeled")
    if n < 2:
        raise ValueError(f"y has {n} complete row(s); at least 2 are needed for a variance.")
    K = len(labeled_sources)
    Z_lab = np.column_stack([labeled[f"{names[0]}[{k}]"] for k in range(K)]) if K else np.zeros((n, 0))
    Z_unl = np.column_stack([unlabeled[f"{names[1]}[{k}]"] for k in range(K)]) if K else np.zeros((N, 0))
    family.check_outcome(labeled["y"], "y")
    family.check_prediction(Z_lab, names[0])
    family.check_prediction(Z_unl, names[1])
    arrays_lab = {"y": labeled["y"], "X": X_lab, "synthetic": Z_lab}
    arrays_unl = {"X": X_unl, "synthetic": Z_unl}
    if auxiliary is not None:
        arrays_lab["W"], arrays_unl["W"] = labeled[auxiliary[2][0]], unlabeled[auxiliary[2][1]]
    return SyntheticData(
        estimand=estimand,
        family=family,
        labeled=_with_arrays(labeled, arrays_lab),
        unlabeled=_with_arrays(unlabeled, arrays_unl),
        param_names=param_names,
        source_names=[v.names[0] for v in labeled_sources],
        endog_name=outcome.names[0],
        design=bound,
        auxiliary_names=auxiliary_names,
    )


# -- the GMM problem ------------------------------------------------------------------------


@dataclass(frozen=True)
class MomentSums:
    """The GMM quantities at one parameter value.

    ``mean``: the moment means ``gbar`` (q,); ``jacobian``: d gbar / d beta (q, k);
    ``variance``: the design variance of ``gbar`` (q, q), or None.
    """

    mean: np.ndarray
    jacobian: np.ndarray
    variance: np.ndarray | None


def _collected(collector: DesignCollector) -> Contributions:
    """What a design collector gathered, as contributions (its scores are contributions already)."""
    if collector.totals is not None:
        return Contributions(psu=collector.totals)
    return Contributions(moments=(collector.s1, collector.s2, collector.counts))


class SyntheticMoments:
    """Moment conditions of the real outcome and K synthetic sources over the ``n + N`` units.

    Parameters are ``beta = (theta, eta_1, ..., eta_K)``, each of length p. With
    unit weights ``w_i`` (1 without weights) of total ``W`` over all units and
    ``W_lab`` over the labeled ones, ``S_i = W / W_lab`` for a labeled unit and 0
    otherwise, and the canonical-link estimating function
    ``psi(b; x, v) = x (v - mu(x' b))``, unit i contributes::

        g_i = [ S_i psi(theta; x_i, y_i),
                S_i psi(eta_1; x_i, z_i1), ..., S_i psi(eta_K; x_i, z_iK),
                    psi(eta_1; x_i, z_i1), ...,     psi(eta_K; x_i, z_iK) ]

    and the moments are their weighted mean ``gbar = sum_i w_i g_i / W``. Its variance
    is the design's (:meth:`~ppinfer.designs.base.BoundDesign.variance`) of the
    contributions ``w_i (g_i - gbar) / W``, both samples forming one design: for
    two simple random samples ``Omega / M``, ``Omega`` the centred covariance of the
    ``g_i`` over the ``M = n + N`` units. Sums run over rows by chunks; unlabeled
    units touch only the last K blocks of the moment sums.
    """

    def __init__(self, family: Family, X_lab, y, Z_lab, X_unl, Z_unl, *, design: BoundDesign, cov_type: str):
        self.family = family
        self.X_lab, self.y, self.Z_lab = X_lab, y, Z_lab
        self.X_unl, self.Z_unl = X_unl, Z_unl
        self.design, self.cov_type = design, cov_type
        self.weights = {LABELED: design.fit_weights(LABELED), UNLABELED: design.fit_weights(UNLABELED)}
        self.n, self.N = X_lab.shape[0], X_unl.shape[0]
        self.M = self.n + self.N
        self.total = {sample: (size if w is None else float(w.sum()))
                      for (sample, w), size in zip(self.weights.items(), (self.n, self.N))}
        self.p, self.K = X_lab.shape[1], Z_lab.shape[1]
        self.nmoments = self.p * (1 + 2 * self.K)
        self.nparams = self.p * (1 + self.K)

    def _chunks(self, sample: str, beta: np.ndarray):
        """Per chunk of a sample's rows: the rows, design rows, weights, residuals and curvatures
        of every response (labeled: y then the sources; unlabeled: the sources)."""
        B = beta.reshape(1 + self.K, self.p).T
        if sample == LABELED:
            X, V = self.X_lab, np.column_stack([self.y, self.Z_lab])
        else:
            X, V, B = self.X_unl, self.Z_unl, B[:, 1:]
        weights = self.weights[sample]
        for start in range(0, X.shape[0], CHUNK_ROWS):
            rows = slice(start, min(start + CHUNK_ROWS, X.shape[0]))
            Xc = X[rows]
            eta = Xc @ B
            mu = self.family.mean(eta)
            w = None if weights is None else weights[rows][:, None]
            yield rows, Xc, w, V[rows] - mu, self.family.mean_derivative(eta, mu)

    def _sums(self, sample: str, beta: np.ndarray):
        """Weighted score sums (p, responses) and Hessian sums (responses, p, p) over a sample."""
        columns = 1 + self.K if sample == LABELED else self.K
        score, hessian = np.zeros((self.p, columns)), np.zeros((columns, self.p, self.p))
        if columns == 0:
            return score, hessian
        for _, Xc, w, residual, curvature in self._chunks(sample, beta):
            if w is not None:
                residual, curvature = residual * w, curvature * w
            score += Xc.T @ residual
            for j in range(columns):
                hessian[j] += (Xc * curvature[:, j : j + 1]).T @ Xc
        return score, hessian

    def _contributions(self, sample: str, beta: np.ndarray, mean: np.ndarray) -> Contributions:
        """The design's reduction of a sample's contributions ``w_i (g_i - gbar) / W``."""
        factory = self.design.collector(sample)
        collector = factory(*factory.columns)
        scale = self.total[LABELED] + self.total[UNLABELED]
        share = scale / self.total[LABELED]
        K = self.K
        for rows, Xc, w, residual, _ in self._chunks(sample, beta):
            m = Xc.shape[0]
            if sample == LABELED:
                # the unit's moment blocks: scaled labeled blocks, then unscaled synthetic blocks
                factors = np.concatenate([share * residual, residual[:, 1:]], axis=1)
            else:
                factors = np.concatenate([np.zeros((m, (1 + K))), residual], axis=1) if K else np.zeros((m, 1))
            g = (factors[:, :, None] * Xc[:, None, :]).reshape(m, -1)
            z = (g - mean) / scale if w is None else (g - mean) * (w / scale)
            collector.add(rows, z, None, np.zeros(m))
        return _collected(collector)

    def residual_share(self, beta: np.ndarray) -> np.ndarray:
        """Per source: root mean squared residual over all units, relative to the draws' spread."""
        B = beta.reshape(1 + self.K, self.p).T[:, 1:]
        squares, spread = np.zeros(self.K), np.zeros(self.K)
        for X, Z in ((self.X_lab, self.Z_lab), (self.X_unl, self.Z_unl)):
            squares += ((Z - self.family.mean(X @ B)) ** 2).sum(axis=0)
        Z_all = np.concatenate([self.Z_lab, self.Z_unl])
        spread = Z_all.std(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(spread > 0, np.sqrt(squares / self.M) / np.where(spread > 0, spread, 1.0), 0.0)

    def evaluate(self, beta: np.ndarray, *, variance: bool) -> MomentSums:
        """Moment means, Jacobian and (optionally) the design variance of the means at ``beta``."""
        p, K = self.p, self.K
        labeled_total, total = self.total[LABELED], self.total[LABELED] + self.total[UNLABELED]
        score_l, hess_l = self._sums(LABELED, beta)
        score_u, hess_u = self._sums(UNLABELED, beta)
        all_units = (score_l[:, 1:] + score_u) / total
        mean = np.concatenate([(score_l / labeled_total).T.ravel(), all_units.T.ravel()])
        jacobian = np.zeros((self.nmoments, self.nparams))
        for j in range(1 + K):
            jacobian[j * p : (j + 1) * p, j * p : (j + 1) * p] = -hess_l[j] / labeled_total
        for m in range(K):
            rows = slice((1 + K + m) * p, (2 + K + m) * p)
            jacobian[rows, (1 + m) * p : (2 + m) * p] = -(hess_l[1 + m] + hess_u[m]) / total
        covariance = None
        if variance:
            parts = {sample: self._contributions(sample, beta, mean) for sample in (LABELED, UNLABELED)}
            covariance = self.design.variance(parts, cov_type=self.cov_type, nparams=p, pooled=True)
        return MomentSums(mean, jacobian, covariance)


def _scaled_inverse(omega: np.ndarray) -> np.ndarray:
    """``omega^-1`` computed on the correlation scale (moments differ in scale by 1/pi)."""
    scale = np.sqrt(np.diag(omega))
    inverse = np.linalg.inv(omega / np.outer(scale, scale))
    return inverse / np.outer(scale, scale)


def _relative_min_eigenvalue(omega: np.ndarray) -> float:
    scale = np.sqrt(np.diag(omega))
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        return 0.0
    eigenvalues = np.linalg.eigvalsh(omega / np.outer(scale, scale))
    return float(eigenvalues[0] / eigenvalues[-1])


def _moment_index(p: int, K: int, sources: list[int]) -> np.ndarray:
    """Rows of the real block and of the labeled and all-unit blocks of ``sources``."""
    blocks = [0] + [1 + m for m in sources] + [1 + K + m for m in sources]
    return np.concatenate([np.arange(b * p, (b + 1) * p) for b in blocks])


@dataclass(frozen=True)
class GMMFit:
    """A two-step GMM fit: estimates and covariance of all parameters, and the J test."""

    params: np.ndarray
    covariance: np.ndarray
    j_statistic: float
    j_df: int
    iterations: int


def two_step_gmm(moments: SyntheticMoments, start: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100) -> GMMFit:
    """Second GMM step from a consistent first step ``start``, by Gauss-Newton iterations.

    ``W = V(start)^-1``, ``V`` the design variance of the moment means (``Omega / M``
    for simple random samples); iterations ``beta <- beta - (G'WG)^-1 G'W gbar``
    (halved while the objective ``gbar' W gbar`` increases) stop when the step is
    below ``tol * (1 + max|beta|)``. The covariance is ``(G' V^-1 G)^-1`` with ``G``
    and ``V`` at the estimate; ``J = gbar' W gbar``.
    """
    first = moments.evaluate(start, variance=True)
    weight = _scaled_inverse(first.variance)
    beta, current = start.copy(), first
    objective = float(current.mean @ weight @ current.mean)
    for iteration in range(1, max_iter + 1):
        G = current.jacobian
        step = -np.linalg.solve(G.T @ weight @ G, G.T @ weight @ current.mean)
        scale = 1.0
        while True:
            candidate = beta + scale * step
            trial = moments.evaluate(candidate, variance=False)
            value = float(trial.mean @ weight @ trial.mean)
            if np.isfinite(value) and value <= objective * (1 + 1e-12) + 1e-300:
                break
            scale /= 2.0
            if scale < 1e-10:
                candidate, trial, value = beta, current, objective
                break
        size = np.max(np.abs(candidate - beta))
        beta, current, objective = candidate, trial, value
        if size <= tol * (1.0 + np.max(np.abs(beta))) or scale < 1e-10:
            break
    else:
        raise ValueError(
            f"the GMM iterations did not converge in {max_iter} steps; for a logistic or Poisson model "
            "the outcomes or synthetic draws may be separated by the design."
        )
    final = moments.evaluate(beta, variance=True)
    G = final.jacobian
    covariance = np.linalg.inv(G.T @ _scaled_inverse(final.variance) @ G)
    j_statistic = float(final.mean @ weight @ final.mean)
    return GMMFit(beta, covariance, j_statistic, moments.nmoments - moments.nparams, iteration)


# -- the model ------------------------------------------------------------------------------


class SyntheticGMMResults(PPIResults):
    """Results of :class:`SyntheticGMM`; adds the GMM diagnostics.

    Attributes
    ----------
    j_statistic, j_pvalue : float or None
        Hansen's J test of the overidentifying restrictions: that the synthetic
        moments have the same mean over the labeled units as over all units
        (labeling at random). None for the classical and naive fits.
    sources : list of str
        The synthetic sources the fit used (redundant ones are dropped).
    """

    def __init__(self, *, j_statistic=None, j_pvalue=None, sources=(), **kwargs):
        super().__init__(**kwargs)
        self.j_statistic = j_statistic
        self.j_pvalue = j_pvalue
        self.sources = list(sources)


#: covariance estimators of the synthetic-data estimators (no leverage adjustments)
SANDWICH_COV_TYPES = ("HC0", "CR0", "CR1")


def _plus(total: Contributions | None, part: Contributions) -> Contributions:
    """Contributions of two blocks of one sample's rows, added (PSU totals) or pooled (stratum sums)."""
    if total is None:
        return part
    if total.psu is not None:
        return Contributions(psu=total.psu + part.psu)
    return Contributions(moments=tuple(a + b for a, b in zip(total.moments, part.moments)))


class SyntheticModel(Estimator):
    """What the synthetic-data estimators share: validated data (``self.data``, from
    :func:`synthetic_data`) with its bound design, weighted fits, their design
    covariance and the classical labeled fit (not instantiated directly)."""

    data: SyntheticData

    def _setup(self, data: SyntheticData) -> None:
        self.data = data
        self.labeled, self.unlabeled = data.labeled, data.unlabeled
        self.design = data.design
        self.param_names = data.param_names
        self.endog_name = data.endog_name
        self._cache: dict = {}

    @property
    def default_cov_type(self) -> str:
        """``"CR1"`` for clustered designs, else ``"HC0"``."""
        return "CR1" if self.design.clustered else "HC0"

    def _cov_type(self, cov_type) -> str:
        if cov_type is None:
            return self.default_cov_type
        name = parse_cov_type(cov_type, clustered=self.design.clustered)
        if name not in SANDWICH_COV_TYPES:
            raise ValueError(
                f"cov_type={cov_type!r}: {type(self).__name__} uses the plain sandwich, 'HC0' (without clusters), "
                "or the cluster-robust 'CR1' or 'CR0'; leverage-adjusted variants are not available."
            )
        return name

    def _fit(self, blocks, *, start=None, what: str, collect: bool = True) -> Fit:
        """A weighted GLM fit of the estimand's family on blocks ``(sample, X, v)``; with
        ``collect``, each block's scores are reduced as the design needs."""
        design = self.design
        return fit_glm(
            self.data.family,
            [(X, v) for _, X, v in blocks],
            weights=[design.fit_weights(sample) for sample, _, _ in blocks],
            collectors=[design.collector(sample) for sample, _, _ in blocks] if collect else None,
            start=start,
            what=what,
        )

    def _covariance(self, fit: Fit, samples: list[str], cov_type: str, *, pooled: bool) -> np.ndarray:
        """The design covariance of a fit's coefficients from its blocks' reduced scores
        (``pooled``: every block's rows are units of one design, as in an analysis of the
        samples stacked)."""
        parts: dict[str, Contributions] = {}
        bread = fit.bread
        for collected, sample in zip(fit.collected, samples):
            if collected.totals is not None:
                part = Contributions(psu=collected.totals @ bread)
            else:
                part = Contributions(moments=(collected.s1 @ bread, bread @ collected.s2 @ bread, collected.counts))
            parts[sample] = _plus(parts.get(sample), part)
        return self.design.variance(parts, cov_type=cov_type, nparams=len(self.param_names), pooled=pooled)

    def _classical(self, cov_type: str) -> tuple[np.ndarray, np.ndarray]:
        """The labeled fit (weighted by the design) and its design covariance; cached."""
        key = ("classical", cov_type)
        if key not in self._cache:
            lab = self.data.labeled
            fit = self._fit([(LABELED, lab["X"], lab["y"])], what="the fit of y on X")
            self._cache[key] = fit.params, self._covariance(fit, [LABELED], cov_type, pooled=False)
        return self._cache[key]

    def _design_details(self, cov_type: str) -> list[tuple[str, str]]:
        lines = list(self.design.describe())
        if self.design.clustered:
            lines.insert(0, ("Covariance", f"{cov_type} cluster ({self.design.npsu} clusters)"))
        return lines


class SyntheticGMM(SyntheticModel):
    """Two-step GMM estimation with real outcomes and synthetic draws (Byun et al. 2025).

    Parameters
    ----------
    y : array-like, shape (n,)
        Real (gold-standard) outcomes of the labeled units.
    synthetic : array-like, shape (n,) or (n, K), DataFrame, or list of K vectors
        Synthetic outcomes of the labeled units: K draws of a generative model, or
        K different sources (models, prompts), one column each.
    synthetic_unlabeled : same kind, shape (N,) or (N, K)
        Synthetic outcomes of the unlabeled units, from the same generator.
    X, X_unlabeled : array-like or DataFrame, shape (n, p) and (N, p), keyword-only
        Designs of a regression (no intercept is added). Leave out for a mean.
    estimand : {"mean", "ols", "logit", "poisson"}, optional
        Default ``"mean"`` without designs, ``"ols"`` with them. Synthetic draws
        must lie in the outcome's range (probabilities in [0, 1] for ``"logit"``,
        non-negative values for ``"poisson"``).
    missing : {"raise", "drop"}
        Rows with NaN or infinite values: raise, or drop them from their sample
        (design columns included).
    design : ppinfer.Design, optional
        The sampling design of both samples: weights, clusters, strata, fpc (see
        :class:`ppinfer.Design`; two-phase designs are not supported). Or give its
        options as keywords: ``weights``, ``weights_unlabeled``, ``clusters``,
        ``clusters_unlabeled``, ``strata``, ``strata_unlabeled``, ``fpc``,
        ``fpc_unlabeled``, ``stratum_weights``, ``nest``.

    Notes
    -----
    Byun, Gupta, Lipton, Childers & Wilder (2025), "Valid inference with imperfect
    synthetic data", NeurIPS. Over all ``M = n + N`` units, with ``S_i = M / n`` for
    labeled units and 0 otherwise, and ``psi(b; x, v) = x (v - mu(x' b))`` the
    canonical-link estimating function of the estimand, the moment conditions are::

        E[ S_i psi(theta; x_i, y_i) ]                                  = 0   (real)
        E[ S_i psi(eta_m; x_i, z_im) ]  = E[ psi(eta_m; x_i, z_im) ]   = 0   (m = 1..K)

    (Byun et al. weight the labeled moments by the labeling indicator; dividing it by
    ``n / M`` changes no optimal-GMM estimate, which is invariant to rescaled moments,
    and makes each moment mean an estimate of ``E psi``.)
    ``theta`` is exactly identified by the real moments; each synthetic source has
    its own nuisance ``eta_m`` (the parameter of the synthetic population, biased or
    not), shared by its labeled and all-unit moments, so the synthetic moments
    restrict nothing but ``E[S psi_m] = E[psi_m]``, true under labeling at random
    whatever the generator. They add information through the correlation of the
    synthetic residuals with the real ones.

    Two-step GMM: the first step is exactly identified (``theta`` the labeled fit,
    ``eta_m`` the fit of source m over all units); ``Omega`` is the centered
    covariance of the unit moments there, ``W = Omega^-1``, and the second step
    minimises ``gbar' W gbar`` by Gauss-Newton iterations. The covariance is the
    efficient-GMM sandwich ``(G' Omega^-1 G)^-1 / M`` at the estimate (Hansen 1982).

    For a mean with one source the estimate is, exactly,
    ``ybar - c (zbar - zbar_all)`` with ``c = Omega_{1d} / Omega_{dd}`` (first-step
    ``Omega``) the regression coefficient of the real moment on the difference ``d``
    of the two synthetic moments;
    since ``zbar - zbar_all = (N / M)(zbar - zbar_unlabeled)`` this is PPI with
    ``lam = c N / M``, asymptotically the PPI++ lambda ``cov(y, z) / (var(z) (1 + n / N))``.
    The variance is never above the classical one asymptotically. In finite samples
    each source adds ``p`` overidentifying moments whose weights are estimated from
    the labeled rows: the variance grows by about ``p K / n`` relative to its limit
    and the sandwich does not see it (intervals undercover slightly when ``p K`` is
    not small against ``n``; a :class:`~ppinfer.PPIWarning` says so above
    ``p K > n / 50``). Exchangeable draws of one generator are therefore pooled into
    their mean by default (``draws="mean"``), as efficient for linear moments;
    ``draws="separate"`` gives distinct sources (models, prompts) their own moments.

    Hansen's J statistic tests the overidentifying restrictions, that is labeling at
    random: a small p-value says the labeled units differ from the others.

    With a design, unit ``i`` has weight ``w_i``, ``S_i = W / W_lab`` (the samples' total
    weight over the labeled units' total weight), the moments are weighted means and
    ``Omega / M`` is replaced by the design variance of the moment means, by
    linearization: the contributions ``w_i (g_i - gbar) / W`` summed within clusters
    (PSUs) and centred within strata, both samples one design (clusters may hold
    units of both), with ``"CR1"``'s factor ``G_h / (G_h - 1)`` by default. The
    weights and the sandwich ``(G' V^-1 G)^-1`` then account for the clustering,
    which an i.i.d. ``Omega`` ignores.

    Examples
    --------
    >>> import numpy as np, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> e, eu = rng.normal(size=300), rng.normal(size=3000)
    >>> y = 1 + e                                             # real outcomes, labeled units
    >>> draws = 1.5 + 0.8 * e[:, None] + rng.normal(size=(300, 5))      # K = 5, biased
    >>> draws_unlabeled = 1.5 + 0.8 * eu[:, None] + rng.normal(size=(3000, 5))
    >>> res = ppinfer.SyntheticGMM(y, draws, draws_unlabeled).fit()
    >>> res.summary()  # doctest: +SKIP
    """

    METHODS = GMM_METHODS
    METHOD_LABELS = GMM_LABELS

    @with_design_keywords
    def __init__(self, y: ArrayLike, synthetic: ArrayLike | list[ArrayLike],
                 synthetic_unlabeled: ArrayLike | list[ArrayLike], *, X: ArrayLike | None = None,
                 X_unlabeled: ArrayLike | None = None, estimand: str | None = None, missing: str = "raise",
                 design: Design | None = None, **design_options: Any):
        self._setup(synthetic_data(
            y, synthetic, synthetic_unlabeled, X=X, X_unlabeled=X_unlabeled, estimand=estimand, missing=missing,
            design=design_from_keywords("SyntheticGMM", design, design_options),
        ))

    @property
    def _title(self) -> str:
        return f"{TITLES[self.data.estimand]}, synthetic-data GMM"

    def _sources(self, draws: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        lab, unl = self.data.labeled, self.data.unlabeled
        Z_lab, Z_unl, names = lab["synthetic"], unl["synthetic"], list(self.data.source_names)
        if draws == "mean" and Z_lab.shape[1] > 1:
            return Z_lab.mean(axis=1, keepdims=True), Z_unl.mean(axis=1, keepdims=True), ["mean of draws"]
        return Z_lab, Z_unl, names

    def _first_step(self, moments: SyntheticMoments, classical: np.ndarray) -> np.ndarray:
        lab, unl = self.data.labeled, self.data.unlabeled
        etas = [
            self._fit(
                [(LABELED, lab["X"], moments.Z_lab[:, m]), (UNLABELED, unl["X"], moments.Z_unl[:, m])],
                start=classical, what=f"the fit of synthetic source {m + 1} over all units", collect=False,
            ).params
            for m in range(moments.K)
        ]
        return np.concatenate([classical, *etas])

    def _informative(self, moments: SyntheticMoments, start: np.ndarray, names: list[str]) -> tuple[list[int], list[str]]:
        """Sources kept, in order, skipping any whose moments are redundant given the others.

        A source is redundant when its residuals vanish (an exact function of the
        design, or constant) or repeat an earlier source's: its moments would make
        ``Omega`` singular and carry no information.
        """
        kept, dropped = [], []
        share = moments.residual_share(start)
        omega = moments.evaluate(start, variance=True).variance
        for m in range(moments.K):
            if share[m] <= RESIDUAL_TOLERANCE:
                dropped.append(names[m])
                continue
            index = _moment_index(moments.p, moments.K, kept + [m])
            if _relative_min_eigenvalue(omega[np.ix_(index, index)]) > REDUNDANCY_TOLERANCE:
                kept.append(m)
            else:
                dropped.append(names[m])
        return kept, dropped

    def fit(self, *, method: str = "gmm", draws: str = "mean", cov_type: str | None = None,
            **unknown) -> SyntheticGMMResults:
        """Estimate the parameters.

        Parameters
        ----------
        method : {"gmm", "classical", "naive"}
            ``"gmm"`` (default): two-step GMM with the real and synthetic moments.
            ``"classical"``: the labeled fit alone (HC0). ``"naive"``: the real
            outcomes and every synthetic draw (K per unit, labeled and unlabeled
            units) pooled as if all were observed outcomes; invalid whenever the
            generator is biased, kept as the baseline.
        draws : {"mean", "separate"}
            ``"mean"`` (default): the row mean of the K columns is one source
            (exchangeable draws of one generator: as efficient as separate moments
            for linear estimating functions, with K times fewer weights to
            estimate). ``"separate"``: each column is its own source with its own
            moments (distinct generators or prompts, as in Byun et al.).
        cov_type : {"HC0", "CR0", "CR1"}, optional
            The design variance: ``"HC0"`` (default without clusters), ``"CR1"``
            (default with clusters: ``G_h / (G_h - 1)`` per stratum) or ``"CR0"``.

        Returns
        -------
        SyntheticGMMResults
        """
        self._reject_unknown("fit", unknown, ("method", "draws", "cov_type"))
        method = self._method(method)
        draws = choose(draws, DRAWS, "draws")
        cov_type = self._cov_type(cov_type)
        classical_params, classical_covariance = self._classical(cov_type)
        classical_bse = np.sqrt(np.diag(classical_covariance))
        notes, details = [], [("Synthetic sources (K)", str(self.data.nsources))]
        j_statistic = j_pvalue = None
        sources: list[str] = []
        if method == "classical":
            params, covariance = classical_params, classical_covariance
        elif method == "naive":
            lab, unl = self.data.labeled, self.data.unlabeled
            K = lab["synthetic"].shape[1]
            blocks = [(LABELED, lab["X"], lab["y"])] + [
                (sample, data["X"], data["synthetic"][:, m])
                for sample, data in ((LABELED, lab), (UNLABELED, unl)) for m in range(K)
            ]
            pooled = self._fit(blocks, start=classical_params, what="the naive pooled fit")
            params = pooled.params
            covariance = self._covariance(pooled, [sample for sample, _, _ in blocks], cov_type, pooled=True)
            sources = list(self.data.source_names)
        else:
            fitted, sources, dropped = self._gmm(draws, cov_type, classical_params)
            p = len(self.param_names)
            params, covariance = fitted.params[:p], fitted.covariance[:p, :p]
            if fitted.j_df > 0:
                j_statistic = fitted.j_statistic
                j_pvalue = float(stats.chi2.sf(j_statistic, fitted.j_df))
                details.append(("Hansen J (df)", f"{j_statistic:.3g} ({fitted.j_df})"))
                details.append(("Prob (J)", f"{j_pvalue:.3g}"))
            K = self.data.nsources
            if draws == "mean" and K > 1:
                details[0] = ("Synthetic draws (K)", f"{K}, pooled: their mean")
            elif dropped:
                details[0] = ("Synthetic sources (K)", f"{len(sources)} used of {K}")
            if dropped:
                notes.append(
                    f"Synthetic source(s) {dropped} were dropped: their residuals are zero or repeat another "
                    "source's, so they carry no information (and would make the weight matrix singular)."
                )
            notes.extend(self._gain_note(draws, fitted, classical_bse, cov_type, classical_params))
            overidentifying = len(self.param_names) * len(sources)
            if overidentifying > self.nobs / 50:
                message = (
                    f"{overidentifying} overidentifying moments have weights estimated from {self.nobs} labeled "
                    "rows: expect standard errors a little too small (variance understated by about "
                    f"{100 * overidentifying / self.nobs:.0f}%)."
                    + (" Fewer sources, or draws='mean', avoid it." if draws == "separate" else "")
                )
                warnings.warn(message, PPIWarning, stacklevel=2)
                notes.append(message)
        notes.insert(0, {
            "gmm": "Two-step GMM with real and synthetic moments (Byun et al. 2025).",
            "classical": "Classical: the labeled data alone.",
            "naive": "Naive pooling: the real outcomes and all synthetic draws analysed as one sample.",
        }[method])
        return self._record(
            method=method,
            params=params,
            inference=WaldInference(params, covariance),
            lam=None,
            classical_bse=classical_bse,
            details=details + self._design_details(cov_type),
            notes=notes,
            cov_type=cov_type,
            results=SyntheticGMMResults,
            j_statistic=j_statistic,
            j_pvalue=j_pvalue,
            sources=sources,
        )

    def _moments(self, Z_lab, Z_unl, cov_type: str) -> SyntheticMoments:
        lab, unl = self.data.labeled, self.data.unlabeled
        return SyntheticMoments(self.data.family, lab["X"], lab["y"], Z_lab, unl["X"], Z_unl,
                                design=self.design, cov_type=cov_type)

    def _gmm(self, draws: str, cov_type: str, classical: np.ndarray) -> tuple[GMMFit, list[str], list[str]]:
        Z_lab, Z_unl, names = self._sources(draws)
        moments = self._moments(Z_lab, Z_unl, cov_type)
        nlabeled_moments = moments.p * (1 + moments.K)
        if nlabeled_moments >= self.nobs:
            raise ValueError(
                f"{nlabeled_moments} moment conditions involve the labeled rows but there are only {self.nobs} "
                "labeled rows; use fewer synthetic sources, or draws='mean'."
            )
        start = self._first_step(moments, classical)
        kept, dropped = self._informative(moments, start, names)
        if dropped:
            warnings.warn(
                f"synthetic source(s) {dropped} carry no information beyond the others (zero residuals, or "
                "repeats of another source) and were dropped.",
                PPIWarning,
                stacklevel=3,
            )
            p = moments.p
            start = np.concatenate([start[:p]] + [start[(1 + m) * p : (2 + m) * p] for m in kept])
            moments = self._moments(Z_lab[:, kept], Z_unl[:, kept], cov_type)
        return two_step_gmm(moments, start), [names[m] for m in kept], dropped

    def _gain_note(self, draws: str, fitted: GMMFit, classical_bse: np.ndarray, cov_type: str,
                   classical: np.ndarray) -> list[str]:
        """How the effective sample size grows from one synthetic draw to all K."""
        if self.data.nsources < 2:
            return []
        p = len(self.param_names)
        Z_lab, Z_unl, _ = self._sources("separate")
        one = self._moments(Z_lab[:, :1], Z_unl[:, :1], cov_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PPIWarning)
            single = two_step_gmm(one, self._first_step(one, classical))
        effective = lambda cov: self.nobs * classical_bse**2 / np.diag(cov)[:p]  # noqa: E731
        first, full = effective(single.covariance), effective(fitted.covariance)
        pairs = ", ".join(f"{name} {a:.0f} -> {b:.0f}" for name, a, b in zip(self.param_names, first, full))
        how = "their mean" if draws == "mean" else "separate moments"
        return [f"Gain from K: effective n with the first synthetic draw only -> with all {self.data.nsources} "
                f"({how}): {pairs} (classical: {self.nobs})."]
