"""Cluster-randomised trials: clusters, weights and strata through the design.

References: statsmodels' ``OLS``/``WLS`` with ``cov_type="cluster"`` (CR0 and CR1),
Bell and McCaffrey's CR2 and its Satterthwaite degrees of freedom computed with
NumPy from the n x n hat matrix (as R's clubSandwich defines them), hand-written
cluster sums of influence rows (a logistic working model fitted by statsmodels'
GLM), and seeded simulations whose tolerances are 3.5 Monte Carlo standard errors.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

import ppinfer
from ppinfer.core.warnings import FewClustersWarning
from ppinfer.treatment import TreatmentEffect, treatment_effect


def cluster_trial(rng, G=24, *, effect=0.0, binary=False, sizes=(5, 40), strata=0, stratum_effects=None):
    """Clusters of unequal sizes randomised 1:1 (within ``strata`` groups of clusters, if any).

    A cluster effect ``u_g = 0.5 c_g + 0.5 v_g`` (``c_g`` a cluster-level baseline variable);
    a unit covariate ``x``; the prognostic score ``x + 0.5 c_g`` is a fixed function of
    baseline data. Binary outcomes: ``expit(-0.5 + u_g + x + effect A)``.
    """
    size = rng.integers(sizes[0], sizes[1] + 1, G)
    cluster = np.repeat(np.arange(G), size)
    if strata:
        stratum_of = np.repeat(np.arange(strata), G // strata)
        arm_of = np.concatenate([rng.permutation(np.repeat([0, 1], G // strata // 2)) for _ in range(strata)])
    else:
        stratum_of = np.zeros(G, dtype=int)
        arm_of = rng.permutation(np.repeat([0, 1], G // 2))
    c = rng.normal(size=G)
    u = 0.5 * c + 0.5 * rng.normal(size=G)
    if stratum_effects is not None:
        u = u + np.asarray(stratum_effects)[stratum_of]
    n = cluster.size
    x = rng.normal(size=n)
    A = arm_of[cluster].astype(float)
    eta = u[cluster] + x + effect * A
    if binary:
        y = (rng.random(n) < expit(-0.5 + eta)).astype(float)
    else:
        y = eta + rng.normal(size=n)
    score = x + 0.5 * c[cluster]
    return dict(y=y, A=A, x=x, score=score, cluster=cluster, stratum=stratum_of[cluster])


def hand_cr2(y, Z, cluster, contrast):
    """CR2 variance of ``contrast' b`` for OLS and its Bell-McCaffrey degrees of freedom, from the
    n x n hat matrix: residuals of cluster g adjusted by ``(I - H_gg)^(-1/2)``; under the working
    model (independent unit-variance errors) ``V = sum_g (q_g' e)^2``, df = ``(sum q_g'q_g)^2 /
    sum_gh (q_g'q_h)^2``."""
    n = y.size
    M = np.linalg.inv(Z.T @ Z)
    H = Z @ M @ Z.T
    e = y - H @ y
    meat, q = np.zeros((Z.shape[1],) * 2), []
    for g in np.unique(cluster):
        idx = np.flatnonzero(cluster == g)
        values, vectors = np.linalg.eigh(np.eye(idx.size) - H[np.ix_(idx, idx)])
        adjust = vectors @ np.diag(values**-0.5) @ vectors.T
        s = Z[idx].T @ adjust @ e[idx]
        meat += np.outer(s, s)
        select = np.zeros((idx.size, n))
        select[np.arange(idx.size), idx] = 1.0
        q.append((np.eye(n) - H).T @ select.T @ adjust @ Z[idx] @ M @ contrast)
    gram = np.array(q) @ np.array(q).T
    return float(contrast @ M @ meat @ M @ contrast), float(np.trace(gram) ** 2 / np.sum(gram**2))


# -- equality with statsmodels and hand computations --------------------------------------------
def test_ancova_with_clusters_equals_statsmodels_cluster_robust():
    rng = np.random.default_rng(1)
    d = cluster_trial(rng, G=26)
    te = TreatmentEffect(d["y"], d["A"], X=d["x"], clusters=d["cluster"])
    Z = np.column_stack([np.ones_like(d["y"]), d["A"], d["x"]])
    n, p = Z.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        cr0 = te.fit(method="ancova", cov_type="CR0", use_t=False)
        cr1 = te.fit(method="ancova", cov_type="CR1", use_t=False)
    sm0 = sm.OLS(d["y"], Z).fit(cov_type="cluster", cov_kwds={"groups": d["cluster"], "use_correction": False})
    sm1 = sm.OLS(d["y"], Z).fit(cov_type="cluster", cov_kwds={"groups": d["cluster"]})
    assert cr0.params["ate"] == pytest.approx(sm0.params[1], abs=1e-10)
    assert cr0.bse["ate"] == pytest.approx(sm0.bse[1], rel=1e-8)
    # statsmodels' CR1 is G / (G - 1) (n - 1) / (n - p) times CR0; ppinfer's (and R survey's) G / (G - 1)
    assert cr1.bse["ate"] == pytest.approx(sm1.bse[1] * np.sqrt((n - p) / (n - 1)), rel=1e-8)
    assert cr1.cov_type == "CR1" and "CR1 cluster (26 clusters)" in cr1.summary().as_text()


def test_cr2_and_its_degrees_of_freedom_equal_the_hat_matrix_computation():
    rng = np.random.default_rng(2)
    d = cluster_trial(rng, G=16, sizes=(3, 25))
    te = TreatmentEffect(d["y"], d["A"], X=d["x"], prognostic=d["score"], clusters=d["cluster"])
    ones = np.ones_like(d["y"])
    designs = {
        "ancova": np.column_stack([ones, d["A"], d["x"]]),
        "procova": np.column_stack([ones, d["A"], d["score"], d["x"]]),
        "dm": np.column_stack([ones, d["A"]]),
    }
    for method, Z in designs.items():
        res = te.fit(method=method)  # defaults with clusters: CR2, t with Bell-McCaffrey df
        variance, df = hand_cr2(d["y"], Z, d["cluster"], np.eye(Z.shape[1])[1])
        assert res.cov_type == "CR2" and res.use_t
        assert res.bse["ate"] ** 2 == pytest.approx(variance, rel=1e-8), method
        assert res.df["ate"] == pytest.approx(df, rel=1e-8), method
    # PPCT: in a difference of arms the score's overall mean cancels, leaving the difference in
    # means of y - lam * score: its CR2 variance and degrees of freedom are the arm regression's
    ppct = te.fit(method="ppct", lam=0.7)
    variance, df = hand_cr2(d["y"] - 0.7 * d["score"], designs["dm"], d["cluster"], np.array([0.0, 1.0]))
    assert ppct.bse["ate"] ** 2 == pytest.approx(variance, rel=1e-8)
    assert ppct.df["ate"] == pytest.approx(df, rel=1e-8)


def test_standardised_risk_difference_equals_hand_cluster_sums_of_influence_rows():
    """Logistic working model fitted by statsmodels; rows ``G_a' psi_i + mu_i(a) - p_a`` by NumPy,
    summed within clusters: CR0 is ``sum_g T_g T_g' / n^2``, CR1 times ``G / (G - 1)``."""
    rng = np.random.default_rng(3)
    d = cluster_trial(rng, G=30, binary=True, effect=0.6)
    y, A, x, cluster = d["y"], d["A"], d["x"], d["cluster"]
    n = y.size
    Z = np.column_stack([np.ones(n), A, x])
    fit = sm.GLM(y, Z, family=sm.families.Binomial()).fit(tol=1e-12)
    mu = fit.predict(Z)
    hessian = (Z * (mu * (1 - mu))[:, None]).T @ Z / n
    psi = Z * (y - mu)[:, None] @ np.linalg.inv(hessian)
    rows, means = [], []
    for arm in (0.0, 1.0):
        Za = np.column_stack([np.ones(n), np.full(n, arm), x])
        mu_a = expit(Za @ fit.params)
        slope = (Za * (mu_a * (1 - mu_a))[:, None]).mean(axis=0)
        means.append(mu_a.mean())
        rows.append(psi @ slope + mu_a - mu_a.mean())
    rd_rows = rows[1] - rows[0]
    totals = np.bincount(cluster, weights=rd_rows)
    G = totals.size
    te = TreatmentEffect(y, A, X=x, clusters=cluster)
    for cov_type, factor in (("CR0", 1.0), ("CR1", G / (G - 1))):
        res = te.fit(method="ancova", cov_type=cov_type)
        assert res.params["ate"] == pytest.approx(means[1] - means[0], abs=1e-9)
        assert res.bse["ate"] ** 2 == pytest.approx(factor * np.sum(totals**2) / n**2, rel=1e-7)
        assert res.df["ate"] == G - 2
    # the risk ratio by the delta method on the same cluster sums
    rr = te.fit(method="ancova", contrast="rr", cov_type="CR0")
    rr_rows = rows[1] / means[0] - means[1] / means[0] ** 2 * rows[0]
    assert rr.bse.iloc[0] ** 2 == pytest.approx(np.sum(np.bincount(cluster, weights=rr_rows) ** 2) / n**2, rel=1e-7)


def test_stratified_cluster_randomisation_corrects_the_cluster_rows():
    """The strata correction of Bugni, Canay & Shaikh (2018) applied to the clusters' rows
    ``T_g G / n`` with each arm's share of the clusters as its probability, by NumPy."""
    rng = np.random.default_rng(4)
    d = cluster_trial(rng, G=32, strata=4, stratum_effects=[-1.5, -0.5, 0.5, 1.5])
    y, A, cluster, stratum = d["y"], d["A"], d["cluster"], d["stratum"]
    n, G = y.size, cluster.max() + 1
    rows = np.zeros(n)
    for arm, sign in ((1.0, 1.0), (0.0, -1.0)):
        members = A == arm
        rows[members] = sign * (y[members] - y[members].mean()) * n / members.sum()
    t = np.bincount(cluster, weights=rows) * G / n
    arm_g = np.bincount(cluster, weights=A) / np.bincount(cluster)
    stratum_g = np.bincount(cluster, weights=stratum) // np.bincount(cluster)
    corrected = np.empty(G)
    for z in range(4):
        in_z = stratum_g == z
        cell = {a: in_z & (arm_g == a) for a in (0, 1)}
        m = {a: t[cell[a]].mean() for a in (0, 1)}
        for a in (0, 1):
            size = cell[a].sum()
            corrected[cell[a]] = (t[cell[a]] - m[a]) * np.sqrt(size / (size - 1)) + 0.5 * m[0] + 0.5 * m[1]
    te = TreatmentEffect(y, A, clusters=cluster, strata=stratum)
    res = te.fit(method="dm", cov_type="CR0", use_t=False)
    assert res.bse["ate"] ** 2 == pytest.approx(np.sum(corrected**2) / G**2, rel=1e-10)
    unstratified = TreatmentEffect(y, A, clusters=cluster).fit(method="dm", cov_type="CR0", use_t=False)
    assert unstratified.bse["ate"] ** 2 == pytest.approx(np.sum(t**2) / G**2, rel=1e-10)
    assert unstratified.bse["ate"] > 1.3 * res.bse["ate"]  # randomisation within strata removes their imbalance
    text = res.summary().as_text()
    assert "stratified by strata (4)" in text and "32 (control 16, treated 16)" in text


@pytest.mark.filterwarnings("ignore::ppinfer.core.warnings.FewClustersWarning")
def test_weights_give_weighted_arm_means_and_wls_sandwiches():
    rng = np.random.default_rng(5)
    d = cluster_trial(rng, G=20)
    y, A, x, cluster = d["y"], d["A"], d["x"], d["cluster"]
    w = 1.0 / np.bincount(cluster)[cluster]  # the average over clusters of their means
    cluster_means = np.bincount(cluster, weights=y) / np.bincount(cluster)
    arm_g = np.bincount(cluster, weights=A) / np.bincount(cluster)
    te = TreatmentEffect(y, A, X=x, weights=w, clusters=cluster)
    dm = te.fit(method="dm", cov_type="CR0")
    assert dm.params["ate"] == pytest.approx(cluster_means[arm_g == 1].mean() - cluster_means[arm_g == 0].mean())
    # unit weights and no clusters: WLS with HC sandwiches (statsmodels)
    unit_w = rng.uniform(0.5, 2.0, y.size)
    Z = np.column_stack([np.ones_like(y), A, x])
    weighted = TreatmentEffect(y, A, X=x, weights=unit_w)
    for cov_type in ("HC0", "HC1", "HC2", "HC3"):
        res = weighted.fit(method="ancova", cov_type=cov_type)
        ref = sm.WLS(y, Z, weights=unit_w).fit(cov_type=cov_type)
        assert res.params["ate"] == pytest.approx(ref.params[1], abs=1e-10)
        assert res.bse["ate"] == pytest.approx(ref.bse[1], rel=1e-8), cov_type
    clustered = TreatmentEffect(y, A, X=x, weights=unit_w, clusters=cluster).fit(method="ancova", cov_type="CR0")
    ref = sm.WLS(y, Z, weights=unit_w).fit(cov_type="cluster", cov_kwds={"groups": cluster, "use_correction": False})
    assert clustered.bse["ate"] == pytest.approx(ref.bse[1], rel=1e-8)
    # weighted difference in means, HC2: each arm's weighted residuals over (1 - w_i / W_a)^(1/2)
    res = weighted.fit(method="dm", cov_type="HC2")
    variance = 0.0
    for arm, sign in ((1.0, 1.0), (0.0, -1.0)):
        members = A == arm
        wa, ya = unit_w[members], y[members]
        mean = wa @ ya / wa.sum()
        variance += np.sum((wa * (ya - mean)) ** 2 / (1 - wa / wa.sum())) / wa.sum() ** 2
        assert res.arm_means.loc["treated" if arm else "control", "estimate"] == pytest.approx(mean)
    assert res.bse["ate"] ** 2 == pytest.approx(variance, rel=1e-10)
    assert "Weights" in res.summary().as_text()


def test_unit_clusters_reproduce_the_unit_level_variances():
    """Every unit its own cluster: CR0 is HC0 and CR2 is HC2, for every method."""
    rng = np.random.default_rng(6)
    d = cluster_trial(rng, G=12, sizes=(8, 12))
    own = np.arange(d["y"].size)
    clustered = TreatmentEffect(d["y"], d["A"], X=d["x"], prognostic=d["score"], clusters=own)
    unit = TreatmentEffect(d["y"], d["A"], X=d["x"], prognostic=d["score"])
    for method in unit.methods:
        for cr, hc in (("CR0", "HC0"), ("CR2", "HC2")):
            a = clustered.fit(method=method, cov_type=cr, use_t=False)
            b = unit.fit(method=method, cov_type=hc)
            assert a.params.iloc[0] == pytest.approx(b.params.iloc[0], abs=1e-12)
            assert a.bse.iloc[0] == pytest.approx(b.bse.iloc[0], rel=1e-9), (method, cr)


def test_missing_outcomes_with_clusters_sum_the_rows_within_clusters():
    rng = np.random.default_rng(7)
    d = cluster_trial(rng, G=30)
    y = d["y"].copy()
    y[rng.random(y.size) < 0.3] = np.nan
    te = TreatmentEffect(y, d["A"], prognostic=d["score"], clusters=d["cluster"])
    n, observed = y.size, np.isfinite(y)
    rows = np.zeros(n)
    for arm, sign in ((1.0, 1.0), (0.0, -1.0)):
        members = observed & (d["A"] == arm)
        rows[members] = sign * (y[members] - y[members].mean()) * n / members.sum()
    G = d["cluster"].max() + 1
    totals = np.bincount(d["cluster"], weights=rows)
    res = te.fit(method="dm")  # default CR1 (no leverage adjustment for the missing-outcome estimators)
    assert res.cov_type == "CR1" and not res.use_t
    assert res.bse["ate"] ** 2 == pytest.approx(G / (G - 1) * np.sum(totals**2) / n**2, rel=1e-10)
    assert te.fit(method="ppi++", cov_type="CR0").bse["ate"] < te.fit(method="dm", cov_type="CR0").bse["ate"]
    with pytest.raises(ValueError, match="cov_type='CR2' adjusts a working regression"):
        te.fit(cov_type="CR2")


def test_formula_and_design_object():
    rng = np.random.default_rng(8)
    d = cluster_trial(rng, G=20, strata=2)
    data = pd.DataFrame({"y": d["y"], "arm": np.where(d["A"] == 1, "active", "placebo"), "x": d["x"],
                         "school": [f"s{g}" for g in d["cluster"]], "region": d["stratum"], "s": d["score"]})
    arrays = TreatmentEffect(d["y"], data["arm"], X=d["x"], treated="active", clusters=d["cluster"],
                             strata=d["stratum"]).fit(method="ancova")
    by_keywords = treatment_effect("y ~ arm + x", data=data, treated="active", clusters="school",
                                   strata="region").fit(method="ancova")
    design = ppinfer.Design(clusters="school", strata="region")
    by_design = ppinfer.treatment_effect("y ~ arm + x", data=data, treated="active", design=design).fit(
        method="ancova")
    for res in (by_keywords, by_design):
        assert res.params.iloc[0] == pytest.approx(arrays.params.iloc[0], abs=1e-12)
        assert res.bse.iloc[0] == pytest.approx(arrays.bse.iloc[0], rel=1e-12)
        assert res.df.iloc[0] == pytest.approx(arrays.df.iloc[0], rel=1e-12)
        assert "stratified by region (2)" in res.summary().as_text()
    # nested labels: cluster labels reused across strata
    reused = d["cluster"] % 10
    nested = ppinfer.Design(clusters=reused, strata=d["stratum"], nest=True)
    res = TreatmentEffect(d["y"], d["A"], X=d["x"], design=nested).fit(method="ancova")
    assert res.bse.iloc[0] == pytest.approx(arrays.bse.iloc[0], rel=1e-12)
    # missing cluster labels drop with their rows
    labels = d["cluster"].astype(object)
    labels[3] = None
    dropped = TreatmentEffect(d["y"], d["A"], clusters=labels, missing="drop")
    assert dropped.nobs == d["y"].size - 1
    assert "Rows dropped: 1" in " ".join(dropped.fit(method="dm").summary().as_text().split())


def test_bad_designs():
    rng = np.random.default_rng(9)
    d = cluster_trial(rng, G=12)
    y, A, cluster = d["y"], d["A"], d["cluster"]
    spanning = cluster.copy()
    spanning[np.flatnonzero(A == 1)[0]] = cluster[np.flatnonzero(A == 0)[0]]
    with pytest.raises(ValueError, match="has units in arms \\['control', 'treated'\\].*pass them as strata"):
        TreatmentEffect(y, A, clusters=spanning)
    with pytest.raises(ValueError, match="arm\\(s\\) \\['treated'\\] have fewer than 2 clusters"):
        TreatmentEffect(y, A, clusters=np.where(A == 1, 99, cluster))
    with pytest.raises(ValueError, match="clusters must be nested in strata"):
        TreatmentEffect(y, A, clusters=cluster, strata=rng.integers(0, 2, y.size))
    with pytest.raises(ValueError, match=r"\['fpc'\] do not apply to a randomised trial"):
        TreatmentEffect(y, A, design=ppinfer.Design(clusters=cluster, fpc=np.full(y.size, 100.0)))
    with pytest.raises(ValueError, match="either as design= or as keywords"):
        TreatmentEffect(y, A, design=ppinfer.Design(clusters=cluster), weights=np.ones(y.size))
    with pytest.raises(TypeError, match="column names need the formula interface"):
        TreatmentEffect(y, A, clusters="school")
    with pytest.raises(ValueError, match="weights must be non-negative"):
        TreatmentEffect(y, A, weights=np.where(np.arange(y.size) == 0, -1.0, 1.0))
    with pytest.raises(ValueError, match="cov_type='HC2' treats units as independent.*'CR2'"):
        TreatmentEffect(y, A, clusters=cluster).fit(cov_type="HC2")
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="with clusters, pass cov_type to fit"):
        TreatmentEffect(y, A, clusters=cluster, cov_type="HC1")
    missing = y.copy()
    missing[:5] = np.nan
    with pytest.raises(ValueError, match="weights apply to complete outcomes"):
        TreatmentEffect(missing, A, prognostic=d["score"], weights=np.ones(y.size))
    with pytest.warns(FewClustersWarning, match="12 clusters"):
        TreatmentEffect(y, A, clusters=cluster).fit(method="dm", use_t=False)


# -- Monte Carlo ----------------------------------------------------------------------------------
def _rate_tolerance(p: float, reps: int) -> float:
    return 3.5 * np.sqrt(p * (1 - p) / reps)


NULL_REPS = 400
CONTINUOUS_METHODS = ("dm", "ancova", "ppct")


@functools.cache
def null_replications(seed=601):
    """20 clusters of 5-40 units, no effect: p-values of the cluster-robust fits (defaults: CR2,
    Bell-McCaffrey t) with and without the score, and of the unit-level difference in means."""
    rng = np.random.default_rng(seed)
    pvalues = {m: np.empty(NULL_REPS) for m in (*CONTINUOUS_METHODS, "unit-level dm")}
    for r in range(NULL_REPS):
        d = cluster_trial(rng, G=20)
        te = TreatmentEffect(d["y"], d["A"], X=d["x"], prognostic=d["score"], clusters=d["cluster"])
        for method in CONTINUOUS_METHODS:
            pvalues[method][r] = te.fit(method=method).pvalues["ate"]
        pvalues["unit-level dm"][r] = TreatmentEffect(d["y"], d["A"]).fit(method="dm").pvalues["ate"]
    return {m: float(np.mean(p < 0.05)) for m, p in pvalues.items()}


@pytest.mark.montecarlo
def test_cluster_randomised_type_one_error_and_unit_level_over_rejection():
    rates = null_replications()
    tolerance = _rate_tolerance(0.05, NULL_REPS)
    for method in CONTINUOUS_METHODS:
        assert abs(rates[method] - 0.05) <= tolerance, (method, rates[method])
    # the i.i.d. variance ignores the clusters' shared effects: far too many rejections
    assert rates["unit-level dm"] > 0.05 + 4 * tolerance, rates


COVERAGE_REPS = 400
BINARY_METHODS = ("dm", "ancova", "ppct", "aipw")


def _true_risk_difference(effect: float) -> float:
    """``E expit(-0.5 + effect + eta) - E expit(-0.5 + eta)``, ``eta ~ N(0, 1.5)``
    (cluster effect of variance 0.5 plus the unit covariate), by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    eta = np.sqrt(1.5) * nodes
    return float(weights @ (expit(-0.5 + effect + eta) - expit(-0.5 + eta)))


@functools.cache
def binary_replications(seed=602, effect=0.8):
    """30 clusters of 5-30 units, binary outcomes: whether each method's interval (risk
    difference; CR2 with t by default) covers the true risk difference."""
    rng = np.random.default_rng(seed)
    truth = _true_risk_difference(effect)
    covered = {m: np.empty(COVERAGE_REPS, dtype=bool) for m in (*BINARY_METHODS, "unit-level dm")}
    for r in range(COVERAGE_REPS):
        d = cluster_trial(rng, G=30, binary=True, effect=effect, sizes=(5, 30))
        te = TreatmentEffect(d["y"], d["A"], X=d["x"], prognostic=d["score"], propensity=0.5,
                             clusters=d["cluster"])
        fits = {m: te.fit(method=m) for m in BINARY_METHODS}
        fits["unit-level dm"] = TreatmentEffect(d["y"], d["A"]).fit(method="dm")
        for method, res in fits.items():
            lower, upper = res.conf_int().iloc[0]
            covered[method][r] = lower <= truth <= upper
    return {m: float(np.mean(c)) for m, c in covered.items()}


@pytest.mark.montecarlo
def test_cluster_randomised_binary_coverage_of_the_risk_difference():
    coverage = binary_replications()
    tolerance = _rate_tolerance(0.95, COVERAGE_REPS)
    for method in BINARY_METHODS:
        assert coverage[method] >= 0.95 - tolerance, (method, coverage[method])
        if method != "aipw":
            assert coverage[method] <= 0.95 + tolerance, (method, coverage[method])
    # AIPW with the known probability 1/2 is a Horvitz-Thompson contrast: its variance counts the
    # variation of the arms' unit counts that randomising exactly half the clusters removes, so it
    # is conservative here (valid, not exact)
    assert coverage["unit-level dm"] < 0.95 - 4 * tolerance, coverage


STRATA_REPS = 300


@functools.cache
def stratified_replications(seed=603, effect=0.5):
    """48 clusters of 3-20 units in 4 strata with large stratum effects, clusters randomised 1:1
    within strata: coverage with the strata (and clusters), and the standard errors without them."""
    rng = np.random.default_rng(seed)
    covered = {m: np.empty(STRATA_REPS, dtype=bool) for m in ("dm", "ppct")}
    ratio = np.empty(STRATA_REPS)
    estimates, variances = np.empty(STRATA_REPS), np.empty(STRATA_REPS)
    for r in range(STRATA_REPS):
        d = cluster_trial(rng, G=48, effect=effect, sizes=(3, 20), strata=4, stratum_effects=[-1.5, -0.5, 0.5, 1.5])
        te = TreatmentEffect(d["y"], d["A"], prognostic=d["score"], clusters=d["cluster"], strata=d["stratum"])
        for method in covered:
            res = te.fit(method=method)
            lower, upper = res.conf_int().iloc[0]
            covered[method][r] = lower <= effect <= upper
            if method == "dm":
                estimates[r], variances[r] = res.params.iloc[0], res.bse.iloc[0] ** 2
        unstratified = TreatmentEffect(d["y"], d["A"], clusters=d["cluster"]).fit(method="dm")
        ratio[r] = unstratified.bse.iloc[0] / np.sqrt(variances[r])
    return {m: float(np.mean(c)) for m, c in covered.items()}, float(np.mean(ratio)), estimates, variances


@pytest.mark.montecarlo
def test_stratified_cluster_randomisation_coverage():
    coverage, ratio, estimates, variances = stratified_replications()
    tolerance = _rate_tolerance(0.95, STRATA_REPS)
    for method, value in coverage.items():
        assert abs(value - 0.95) <= tolerance, (method, value)
    # the mean estimated variance matches the simulated variance of the estimates: the sample
    # variance's relative MC standard error is about sqrt(2 / reps)
    assert np.mean(variances) == pytest.approx(np.var(estimates, ddof=1), rel=3.5 * np.sqrt(2 / STRATA_REPS))
    # ignoring the randomisation strata counts their imbalance: standard errors far too large
    assert ratio > 1.3


if __name__ == "__main__":  # the Monte Carlo figures
    print("type I error at 0.05, 20 clusters:", null_replications(), f"({NULL_REPS} replications)")
    print("coverage of the risk difference at 0.95, 30 clusters:", binary_replications(),
          f"({COVERAGE_REPS} replications)")
    coverage, ratio, estimates, variances = stratified_replications()
    print("stratified cluster randomisation, coverage at 0.95:", coverage, f"({STRATA_REPS} replications);",
          f"mean estimated variance {np.mean(variances):.5f} vs simulated {np.var(estimates, ddof=1):.5f};",
          f"SE ignoring the strata / SE with them: {ratio:.2f}")
