"""Classical estimates under complex sampling designs equal R survey's linearization.

R's ``survey`` package (Lumley 2004; Lumley 2010, "Complex Surveys") estimates the
variance of a smooth statistic by Taylor linearization: each unit's influence row
``z_i``, summed within the primary sampling units (ultimate clusters), the PSU
totals centred within strata, with the factors ``(1 - f_h) n_h / (n_h - 1)``
(``n_h`` PSUs in stratum ``h``, ``f_h`` its sampling fraction; units are the PSUs of
an unclustered design). ``svymean`` has ``z_i = w_i (y_i - ybar) / sum w``,
``svytotal`` ``z_i = w_i y_i``, ``svyratio`` ``z_i = w_i (y_i - R x_i) / sum w x``
and ``svyglm`` ``z_i = w_i x_i (y_i - mu_i)' A^-1`` with ``A = sum w_i v(mu_i) x_i x_i'``
(canonical links). That is ppinfer's ``method="classical"`` with ``cov_type="CR1"``.

The references, computed without ppinfer:

* those formulas by hand in numpy (fits by weighted least squares and Newton's method
  written here), for fpc given as population sizes and as fractions, PSU labels
  reused across strata (``nest=TRUE``), clusters without strata, strata without
  clusters and weights alone;
* ``svy`` (Taylor linearization): means, totals, ratios, linear and logistic
  regressions match to 1e-8 (svy takes the fpc as population sizes only, so the
  fraction variant is given to it as sizes);
* ``samplics`` (archived predecessor of svy): means, totals, ratios and linear
  regressions match to 1e-8. Its logistic regression matches to about 1e-6 only:
  samplics keeps statsmodels' IRLS at its default tolerance and takes the bread
  from the last IRLS iteration (working weights of the previous iterate), so its
  standard errors are those of a fit one step short of convergence.

Two-phase designs (``label_prob``) are checked against the per-unit linearization
by hand: the influence rows ``w_i [lam psi^f_i + (R_i / pi_i)(psi^Y_i - lam psi^f_i)]``
(each fit's own normalisation) summed within first-phase PSUs and centred within
strata; and, for element sampling at phase one with simple random labeling within
labeling strata nested in the phase-one strata and an fpc, against R's
``twophase`` variance (its phase-one part estimated from the phase-two rows with
each unit's chance of being represented at phase two, plus the phase-two
``svyrecvar`` term), which ppinfer's formula equals exactly there. With clusters at
phase one, R estimates the phase-one variance from the PSUs represented at phase two
only (scaled by the share of phase-one PSUs represented), while ppinfer sums over every
first-phase PSU (it has all their rows): two different estimators of the same variance,
not compared here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import ppinfer

RTOL = 1e-8
#: the samples are small on purpose (hand-checkable); the warnings about that are expected
pytestmark = [
    pytest.mark.filterwarnings("ignore::ppinfer.FewClustersWarning"),
    pytest.mark.filterwarnings("ignore::ppinfer.SmallSampleWarning"),
]
#: the references are R survey's: per-stratum n_h / (n_h - 1), no leverage adjustment
CR1 = dict(method="classical", cov_type="CR1")


# --------------------------------------------------------------------------------------
# a stratified two-stage sample with weights
# --------------------------------------------------------------------------------------
@dataclass
class SurveySample:
    """One stratified two-stage sample: rows are sampled units.

    ``psu`` labels repeat across strata (``nest=True``); ``psu_id`` is unique.
    ``psu_population`` is the number of PSUs of the unit's stratum in the
    population, ``unit_population`` the number of units of its stratum.
    """

    frame: pd.DataFrame

    def __getattr__(self, name):
        frame = self.__dict__["frame"]
        if name in frame:
            return frame[name].to_numpy()
        raise AttributeError(name)

    @property
    def X(self) -> np.ndarray:
        return np.column_stack([np.ones(len(self.frame)), self.x])


def survey_sample(seed: int = 2024) -> SurveySample:
    """Four strata with 3-7 sampled PSUs (of 12-40 in the population), 3-9 sampled units
    per PSU; weights ``(M_h / m_h)(N_hj / n_hj)`` of a two-stage design; a PSU effect in
    the covariate and the outcome."""
    rng = np.random.default_rng(seed)
    psu_counts, psu_population = [3, 7, 5, 4], [12, 40, 25, 18]
    rows = []
    for h, (m, M) in enumerate(zip(psu_counts, psu_population)):
        for j in range(m):
            size, units = rng.integers(20, 60), rng.integers(3, 10)
            effect = rng.normal()
            for _ in range(units):
                rows.append((h, j, M, M / m * size / units, effect))
    frame = pd.DataFrame(rows, columns=["stratum", "psu", "psu_population", "w", "effect"])
    n = len(frame)
    frame["psu_id"] = frame.stratum * 100 + frame.psu
    frame["psu_fraction"] = frame.groupby("stratum").psu.transform("nunique") / frame.psu_population
    frame["unit_population"] = frame.groupby("stratum").w.transform("size") * (3 + frame.stratum)
    frame["x"] = 0.5 * frame.stratum + frame.effect + rng.normal(size=n)
    frame["y"] = 1.0 + 0.7 * frame.x + 0.8 * frame.effect + rng.normal(size=n)
    frame["size"] = rng.uniform(1.0, 3.0, n) + 0.2 * frame.stratum
    frame["b"] = (rng.uniform(size=n) < expit(-0.4 + 0.9 * frame.x)).astype(float)
    return SurveySample(frame)


#: design variants as ppinfer's Design options (column names of the sample); the references
#: read the same design through reference_design
VARIANTS = {
    "strata, clusters, fpc sizes, nest": dict(strata="stratum", clusters="psu", fpc="psu_population", nest=True),
    "strata, clusters, fpc fractions, nest": dict(strata="stratum", clusters="psu", fpc="psu_fraction", nest=True),
    "clusters only": dict(clusters="psu_id"),
    "strata, units, fpc sizes": dict(strata="stratum", fpc="unit_population"),
    "weights only": dict(),
}


def reference_design(sample: SurveySample, variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratum, PSU and sampling fraction of each row, as R's svydesign reads the variant."""
    options = VARIANTS[variant]
    n = len(sample.frame)
    strata = sample.stratum if "strata" in options else np.zeros(n, dtype=int)
    psu = sample.psu_id if "clusters" in options else np.arange(n)
    fpc = options.get("fpc")
    if fpc is None:
        fraction = np.zeros(n)
    elif fpc == "psu_fraction":
        fraction = sample.psu_fraction
    else:
        units = pd.Series(psu).groupby(strata).transform("nunique").to_numpy()
        fraction = units / getattr(sample, fpc)
    return strata, psu, fraction


def linearization_variance(z: np.ndarray, strata: np.ndarray, psu: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """``sum_h (1 - f_h) n_h / (n_h - 1) sum_j (Z_hj - Zbar_h)(Z_hj - Zbar_h)'`` (R's svyrecvar)."""
    z = z.reshape(z.shape[0], -1)
    V = np.zeros((z.shape[1], z.shape[1]))
    for h in np.unique(strata):
        rows = strata == h
        totals = pd.DataFrame(z[rows]).groupby(psu[rows]).sum().to_numpy()
        count = totals.shape[0]
        centred = totals - totals.mean(axis=0)
        V += (1.0 - fraction[rows][0]) * count / (count - 1.0) * centred.T @ centred
    return V


# --------------------------------------------------------------------------------------
# estimators by hand
# --------------------------------------------------------------------------------------
def weighted_least_squares(X, y, w):
    A = (X * w[:, None]).T @ X
    beta = np.linalg.solve(A, (X * w[:, None]).T @ y)
    return beta, (X * (w * (y - X @ beta))[:, None]) @ np.linalg.inv(A)


def weighted_logit(X, y, w):
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        mu = expit(X @ beta)
        step = np.linalg.solve((X * (w * mu * (1 - mu))[:, None]).T @ X, X.T @ (w * (y - mu)))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-14:
            break
    mu = expit(X @ beta)
    A = (X * (w * mu * (1 - mu))[:, None]).T @ X
    return beta, (X * (w * (y - mu))[:, None]) @ np.linalg.inv(A)


def by_hand(estimator: str, sample: SurveySample):
    """Estimate and influence rows (R survey's) of one estimator on the sample."""
    w, y = sample.w, sample.y
    if estimator == "mean":
        mean = w @ y / w.sum()
        return np.array([mean]), w * (y - mean) / w.sum()
    if estimator == "total":
        return np.array([w @ y]), w * y
    if estimator == "ratio":
        ratio = (w @ y) / (w @ sample.size)
        return np.array([ratio]), w * (y - ratio * sample.size) / (w @ sample.size)
    if estimator == "ols":
        return weighted_least_squares(sample.X, y, w)
    return weighted_logit(sample.X, sample.b, w)


def ppinfer_classical(estimator: str, sample: SurveySample, variant: str):
    """ppinfer's classical fit (CR1) of the labeled sample under the variant's design; the
    unlabeled sample (the same rows, not used by a classical fit) carries the weights and
    strata that a design needs on both sides."""
    options = VARIANTS[variant]
    columns = {key: getattr(sample, value) for key, value in options.items() if key != "nest"}
    design = ppinfer.Design(
        weights=sample.w, weights_unlabeled=sample.w, nest=options.get("nest", False),
        strata_unlabeled=columns.get("strata"), **columns,
    )
    y, f = sample.y, sample.y + 0.3
    if estimator == "mean":
        model = ppinfer.Mean(y, f, f, design=design)
    elif estimator == "total":
        model = ppinfer.Total(y, f, f, design=design)
    elif estimator == "ratio":
        model = ppinfer.Ratio(y, sample.size, f, sample.size, f, design=design)
    elif estimator == "ols":
        model = ppinfer.OLS(y, sample.X, f, sample.X, f, design=design)
    else:
        model = ppinfer.Logit(sample.b, sample.X, sample.b, sample.X, sample.b, design=design)
    return model.fit(**CR1)


ESTIMATORS = ("mean", "total", "ratio", "ols", "logit")


@pytest.fixture(scope="module")
def sample() -> SurveySample:
    return survey_sample()


# --------------------------------------------------------------------------------------
# by hand (R survey's documented formulas)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_classical_equals_r_survey_linearization_by_hand(sample, estimator, variant):
    estimate, z = by_hand(estimator, sample)
    se = np.sqrt(np.diag(linearization_variance(z, *reference_design(sample, variant))))
    res = ppinfer_classical(estimator, sample, variant)
    np.testing.assert_allclose(res.params.to_numpy(), estimate, rtol=RTOL)
    np.testing.assert_allclose(res.bse.to_numpy(), se, rtol=RTOL)


def test_fpc_as_fractions_equals_fpc_as_population_sizes(sample):
    """R's svydesign reads an fpc <= 1 as a sampling fraction and > 1 as a population size."""
    sizes = ppinfer_classical("ols", sample, "strata, clusters, fpc sizes, nest")
    fractions = ppinfer_classical("ols", sample, "strata, clusters, fpc fractions, nest")
    np.testing.assert_allclose(fractions.bse.to_numpy(), sizes.bse.to_numpy(), rtol=1e-12)
    without = ppinfer.Mean(sample.y, sample.y, sample.y, weights=sample.w, weights_unlabeled=sample.w,
                           strata=sample.stratum, strata_unlabeled=sample.stratum, clusters=sample.psu_id)
    with_fpc = ppinfer_classical("mean", sample, "strata, clusters, fpc sizes, nest")
    assert with_fpc.bse.iloc[0] < without.fit(**CR1).bse.iloc[0]


def test_mean_degrees_of_freedom_are_psus_minus_strata(sample):
    """R's degf(design): PSUs minus strata (units minus strata without clusters)."""
    clustered = ppinfer_classical("mean", sample, "strata, clusters, fpc sizes, nest")
    assert clustered.df.iloc[0] == sample.frame.psu_id.nunique() - 4
    units = ppinfer_classical("mean", sample, "strata, units, fpc sizes")
    assert units.df.iloc[0] == len(sample.frame) - 4


def test_psu_labels_reused_across_strata_need_nest(sample):
    """Without nest=True, a PSU label in two strata is an error (R: 'clusters not nested in strata')."""
    with pytest.raises(ValueError, match="nest=True"):
        ppinfer.Mean(sample.y, sample.y, sample.y, weights=sample.w, weights_unlabeled=sample.w,
                     strata=sample.stratum, strata_unlabeled=sample.stratum, clusters=sample.psu)


def test_fpc_below_the_sample_size_is_an_error(sample):
    with pytest.raises(ValueError, match="population"):
        ppinfer.Mean(sample.y, sample.y, sample.y, weights=sample.w, weights_unlabeled=sample.w,
                     strata=sample.stratum, strata_unlabeled=sample.stratum, clusters=sample.psu_id,
                     fpc=np.full(len(sample.frame), 2.0))


# --------------------------------------------------------------------------------------
# svy and samplics
# --------------------------------------------------------------------------------------
def svy_sample(sample: SurveySample, variant: str):
    svy = pytest.importorskip("svy")
    pl = pytest.importorskip("polars")
    options = VARIANTS[variant]
    frame = sample.frame.copy()
    design = {"wgt": "w"}
    if "strata" in options:
        design["stratum"] = "stratum"
    if "clusters" in options:
        design["psu"] = "psu_id" if "strata" not in options else "psu"
    if "fpc" in options:
        # svy takes population sizes only: the fraction variant as the sizes it stands for
        design["pop_size"] = "psu_population" if options["fpc"] == "psu_fraction" else options["fpc"]
    return svy.Sample(pl.from_pandas(frame), svy.Design(**design))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_classical_equals_svy(sample, estimator, variant):
    survey = svy_sample(sample, variant)
    if estimator in ("mean", "total"):
        table = getattr(survey.estimation, estimator)("y", method="taylor").to_polars()
        estimate, se = table["est"].to_numpy(), table["se"].to_numpy()
    elif estimator == "ratio":
        table = survey.estimation.ratio("y", "size", method="taylor").to_polars()
        estimate, se = table["est"].to_numpy(), table["se"].to_numpy()
    else:
        outcome, family = ("y", "gaussian") if estimator == "ols" else ("b", "binomial")
        table = survey.glm.fit(y=outcome, x=["x"], family=family).to_polars()
        estimate, se = table["estimate"].to_numpy(), table["std_err"].to_numpy()
    res = ppinfer_classical(estimator, sample, variant)
    np.testing.assert_allclose(res.params.to_numpy(), estimate, rtol=RTOL)
    np.testing.assert_allclose(res.bse.to_numpy(), se, rtol=RTOL)


def samplics_design(sample: SurveySample, variant: str) -> dict:
    """samplics' arguments: its ``fpc`` is the factor ``1 - f_h`` by stratum."""
    strata, psu, fraction = reference_design(sample, variant)
    options = VARIANTS[variant]
    design = {"samp_weight": sample.w}
    if "strata" in options:
        design["stratum"] = strata
        design["fpc"] = {h: 1.0 - fraction[strata == h][0] for h in np.unique(strata)}
    else:
        design["fpc"] = 1.0 - fraction[0]
    if "clusters" in options:
        design["psu"] = psu
    return design


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_classical_equals_samplics(sample, estimator, variant):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # samplics is archived
        samplics = pytest.importorskip("samplics")
    design = samplics_design(sample, variant)
    if estimator in ("mean", "total", "ratio"):
        estimator_ = samplics.TaylorEstimator(getattr(samplics.PopParam, estimator))
        extra = {"x": sample.size} if estimator == "ratio" else {}
        estimator_.estimate(sample.y, **extra, **design)
        estimate, se, rtol = np.array([estimator_.point_est]), np.array([estimator_.stderror]), RTOL
    else:
        linear = estimator == "ols"
        model = samplics.SurveyGLM(samplics.ModelType.LINEAR if linear else samplics.ModelType.LOGISTIC)
        model.estimate(sample.y if linear else sample.b, x=sample.X, **design)
        estimate, se = model.beta["point_est"], model.beta["stderror"]
        # logistic: samplics' bread is from the last IRLS iteration (see the module docstring)
        rtol = RTOL if linear else 1e-5
    res = ppinfer_classical(estimator, sample, variant)
    np.testing.assert_allclose(res.params.to_numpy(), estimate, rtol=RTOL)
    np.testing.assert_allclose(res.bse.to_numpy(), se, rtol=rtol)


# --------------------------------------------------------------------------------------
# two-phase designs: the per-unit linearization by hand
# --------------------------------------------------------------------------------------
def two_phase_sample(seed: int = 7, *, clustered: bool = True, noise: float = 0.5):
    """A stratified (clustered) first phase with weights; every unit predicted, a subsample
    labeled with probability depending on the stratum and a covariate."""
    rng = np.random.default_rng(seed)
    if clustered:
        psu_per_stratum = [6, 8, 5]
        sizes = rng.integers(4, 12, sum(psu_per_stratum))
        psu = np.repeat(np.arange(sizes.size), sizes)
        strata = np.repeat(np.repeat(np.arange(3), psu_per_stratum), sizes)
    else:
        strata = np.repeat(np.arange(3), [60, 80, 50])
        psu = np.arange(strata.size)
    n = strata.size
    x = rng.normal(size=n) + 0.3 * strata
    effect = rng.normal(size=psu.max() + 1)[psu]
    y = 1.0 + x + effect + rng.normal(size=n)
    f = 0.6 + 1.2 * x + 0.7 * effect + noise * rng.normal(size=n)
    w = (2.0 + strata) * rng.uniform(1.0, 1.5, n)
    pi = np.clip(0.25 + 0.1 * strata + 0.15 * np.tanh(x), 0.05, 1.0)
    labeled = rng.uniform(size=n) < pi
    return dict(strata=strata, psu=psu, x=x, y=y, f=f, w=w, pi=pi, labeled=labeled, clustered=clustered)


def two_phase_model(data, estimator: str, **extra):
    L, U = data["labeled"], ~data["labeled"]
    clusters = dict(clusters=data["psu"][L], clusters_unlabeled=data["psu"][U]) if data["clustered"] else {}
    design = ppinfer.Design(
        weights=data["w"][L], weights_unlabeled=data["w"][U], strata=data["strata"][L],
        strata_unlabeled=data["strata"][U], label_prob=data["pi"][L], **clusters, **{key: value[L] for key, value in extra.items() if key != "fpc"},
        **({"fpc": extra["fpc"][L], "fpc_unlabeled": extra["fpc"][U]} if "fpc" in extra else {}),
    )
    y, f = data["y"], data["f"]
    if estimator == "mean":
        return ppinfer.Mean(y[L], f[L], f[U], design=design)
    if estimator == "total":
        return ppinfer.Total(y[L], f[L], f[U], design=design)
    X = np.column_stack([np.ones(y.size), data["x"]])
    return ppinfer.OLS(y[L], X[L], f[L], X[U], f[U], design=design)


def two_phase_rows(data, estimator: str):
    """Estimates and per-unit influence rows (every first-phase unit; zero where unlabeled)
    of the fits of Y and f on the labeled units (weights w / pi) and of f on all units (w)."""
    L, w, pi = data["labeled"], data["w"], data["pi"]
    labeled_weights = np.where(L, w / pi, 0.0)
    X = np.column_stack([np.ones(w.size), data["x"]])
    if estimator == "mean":
        X = X[:, :1]
    fits = []
    for response, weights in ((data["y"], labeled_weights), (data["f"], labeled_weights), (data["f"], w)):
        if estimator == "total":
            fits.append((np.array([weights @ response]), (weights * response)[:, None]))
        else:
            fits.append(weighted_least_squares(X, response, weights))
    return fits


@pytest.mark.parametrize("estimator", ["mean", "ols"])
@pytest.mark.parametrize("lam", [0.0, 1.0, 0.4])
def test_two_phase_variance_is_the_per_unit_linearization(estimator, lam):
    data = two_phase_sample()
    (b_y, z_y), (b_f, z_f), (b_u, z_u) = two_phase_rows(data, estimator)
    z = z_y + lam * (z_u - z_f)
    V = linearization_variance(z, data["strata"], data["psu"], np.zeros(z.shape[0]))
    model = two_phase_model(data, estimator)
    res = model.fit(method="ppi++", lam=lam, cov_type="CR1") if lam else model.fit(**CR1)
    np.testing.assert_allclose(res.params.to_numpy(), b_y + lam * (b_u - b_f), rtol=RTOL)
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(V)), rtol=RTOL)


def test_two_phase_ppi_pp_lambda_minimises_the_linearized_variance():
    """PPI++'s lambda is ``Cov(Z_y, Z_f - Z_u) / Var(Z_f - Z_u)`` of the design (mean); noisy
    predictions keep it inside (0, 1), where it is not clipped."""
    data = two_phase_sample(noise=2.0)
    (_, z_y), (_, z_f), (_, z_u) = two_phase_rows(data, "mean")
    V = linearization_variance(np.column_stack([z_y, z_f - z_u]), data["strata"], data["psu"], np.zeros(z_y.size))
    lam = V[0, 1] / V[1, 1]
    assert 0.1 < lam < 0.9
    res = two_phase_model(data, "mean").fit(method="ppi++", cov_type="CR1")
    np.testing.assert_allclose(res.lam, lam, rtol=RTOL)
    np.testing.assert_allclose(res.bse.iloc[0] ** 2, V[0, 0] - V[0, 1] ** 2 / V[1, 1], rtol=RTOL)


def test_two_phase_with_fpc_and_label_strata_clustered_by_hand():
    """With an fpc or labeling strata the second phase gets its own term: the first-phase
    part ``sum_h (1 - f_h) c_h [C_h - P_h]`` of the per-unit rows ``z`` (``P_h`` the Poisson
    second-phase part ``sum_i (1 - pi_i) r_i r_i'`` of the rectifier rows ``r``) plus the
    labeling design's variance, centred within labeling strata (simple random sampling)."""
    data = two_phase_sample()
    strata, psu, L = data["strata"], data["psu"], data["labeled"]
    label_strata = strata * 2 + (data["x"] > 0)
    population = np.array([30, 50, 40])[strata]
    (b_y, z_y), _, _ = two_phase_rows(data, "mean")
    psu_count = pd.Series(psu).groupby(strata).transform("nunique").to_numpy()
    fraction = psu_count / population
    main = linearization_variance(z_y, strata, psu, fraction)
    factor = (1 - fraction) * psu_count / (psu_count - 1.0)
    r, pi, k = z_y[L, 0], data["pi"][L], label_strata[L]
    poisson = np.sum(factor[L] * (1 - pi) * r**2)
    sizes = pd.Series(k).map(pd.Series(k).value_counts()).to_numpy()
    centred = r - pd.Series(r).groupby(k).transform("mean").to_numpy()
    labeling = np.sum((1 - pi) * sizes / (sizes - 1.0) * centred**2)
    res = two_phase_model(data, "mean", fpc=population, label_strata=label_strata).fit(**CR1)
    np.testing.assert_allclose(res.params.iloc[0], b_y[0], rtol=RTOL)
    np.testing.assert_allclose(res.bse.iloc[0] ** 2, main[0, 0] - poisson + labeling, rtol=RTOL)


def r_twophase_variance(z: np.ndarray, data, label_strata: np.ndarray, population: np.ndarray) -> float:
    """R's twophase variance for element sampling at both phases (survey:::twophasevar):
    phase one per stratum ``(1 - n_h / N_h) n_h / (n_h - 1) sum_lab (p_i z_i - zbar_h)^2 / p_i``
    with ``zbar_h = sum_lab z_i / n_h`` and ``p_i`` the share of its labeling stratum's
    phase-one units that were labeled; phase two ``svyrecvar`` within labeling strata with
    their phase-one sizes as population sizes."""
    strata, L = data["strata"], data["labeled"]
    variance = 0.0
    for h in np.unique(strata):
        in_h = strata == h
        n_h = in_h.sum()
        rows = in_h & L
        p = (pd.Series(L[rows]).groupby(label_strata[rows]).transform("size").to_numpy()
             / pd.Series(label_strata[in_h]).value_counts().reindex(label_strata[rows]).to_numpy())
        zbar = z[rows].sum() / n_h
        variance += (1 - n_h / population[in_h][0]) * n_h / (n_h - 1) * np.sum((p * z[rows] - zbar) ** 2 / p)
    for k in np.unique(label_strata[L]):
        rows = L & (label_strata == k)
        m, M = rows.sum(), (label_strata == k).sum()
        variance += (1 - m / M) * m / (m - 1) * np.sum((z[rows] - z[rows].mean()) ** 2)
    return variance


@pytest.mark.parametrize("estimator", ["mean", "total"])
def test_two_phase_element_sampling_equals_r_twophase(estimator):
    """Stratified element sampling at phase one (with fpc), simple random labeling within
    labeling strata nested in the phase-one strata, ``label_prob = m_k / M_k``: ppinfer's
    variance equals R's ``svymean`` / ``svytotal`` on ``twophase(...)``."""
    rng = np.random.default_rng(11)
    data = two_phase_sample(clustered=False)
    strata = data["strata"]
    label_strata = strata * 2 + (data["x"] > np.median(data["x"]))
    labeled = np.zeros(strata.size, dtype=bool)
    for k, share in zip(np.unique(label_strata), [0.3, 0.5, 0.25, 0.4, 0.35, 0.6]):
        members = np.flatnonzero(label_strata == k)
        labeled[rng.choice(members, max(2, round(share * members.size)), replace=False)] = True
    counts = pd.Series(label_strata[labeled]).value_counts()
    data.update(labeled=labeled, pi=counts.reindex(label_strata).fillna(0).to_numpy()
                / pd.Series(label_strata).value_counts().reindex(label_strata).to_numpy())
    population = np.array([400, 300, 500])[strata]
    (estimate, z), _, _ = two_phase_rows(data, estimator)
    expected = r_twophase_variance(z[:, 0], data, label_strata, population)
    res = two_phase_model(data, estimator, fpc=population, label_strata=label_strata).fit(**CR1)
    np.testing.assert_allclose(res.params.iloc[0], estimate[0], rtol=RTOL)
    np.testing.assert_allclose(res.bse.iloc[0] ** 2, expected, rtol=RTOL)
