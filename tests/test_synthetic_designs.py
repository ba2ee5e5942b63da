"""SyntheticGMM and MultipleImputation with sampling designs (weights, clusters, strata).

References: the two-step GMM of a mean with one synthetic source written out as
generalised least squares with NumPy (moment means, their design variance from
cluster totals centred within strata, the weight and the sandwich); statsmodels'
WLS and OLS with ``cov_type="cluster"``; Rubin's rules by hand on imputations
replayed from the same seed; and seeded simulations whose tolerances are 3.5
Monte Carlo standard errors.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import statsmodels.api as sm

import ppinfer
from ppinfer.imputation import MultipleImputation
from ppinfer.synthetic import SyntheticGMM


def clustered_survey(rng, G=40, *, strata=1, labeled=(2, 8), unlabeled=(10, 40), rho=0.5):
    """Clusters (schools) with a few labeled and many unlabeled units each; a cluster effect
    ``u_g`` shared by the outcome and the synthetic draws, which are biased and correlated
    ``rho`` with the outcome's unit-level residual."""
    n_g, N_g = rng.integers(*labeled, G), rng.integers(*unlabeled, G)
    cluster, cluster_u = np.repeat(np.arange(G), n_g), np.repeat(np.arange(G), N_g)
    stratum_of = np.arange(G) % strata
    u = rng.normal(size=G)
    e, eu = rng.normal(size=cluster.size), rng.normal(size=cluster_u.size)
    x, xu = rng.normal(size=cluster.size), rng.normal(size=cluster_u.size)
    y = 1.0 + u[cluster] + 0.5 * x + e
    noise = np.sqrt(1 - rho**2)
    z = 1.5 + 0.8 * u[cluster] + 0.6 * x + rho * e + noise * rng.normal(size=cluster.size)
    zu = 1.5 + 0.8 * u[cluster_u] + 0.6 * xu + rho * eu + noise * rng.normal(size=cluster_u.size)
    return dict(y=y, z=z, zu=zu, X=np.column_stack([np.ones_like(x), x]), Xu=np.column_stack([np.ones_like(xu), xu]),
                cluster=cluster, cluster_u=cluster_u, stratum=stratum_of[cluster], stratum_u=stratum_of[cluster_u])


def hand_gmm_mean(y, z, zu, w, wu, cluster, cluster_u, stratum, stratum_u, factor):
    """Two-step GMM of a mean with one source as GLS: ``gbar = a - G beta`` with
    ``a = (ybar_w, zbar_w, zbar_w over all units)``; ``V`` from the clusters' totals of
    ``w_i (g_i - gbar) / W``, centred within strata, times ``factor(G_h)``."""
    W_lab, W = w.sum(), w.sum() + wu.sum()
    S = W / W_lab
    a = np.array([w @ y / W_lab, w @ z / W_lab, (w @ z + wu @ zu) / W])
    G_matrix = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    nclusters = max(cluster.max(), cluster_u.max()) + 1

    def variance(beta):
        theta, eta = beta
        g = np.column_stack([S * (y - theta), S * (z - eta), z - eta])
        g_u = np.column_stack([np.zeros_like(zu), np.zeros_like(zu), zu - eta])
        mean = (w @ g + wu @ g_u) / W
        totals = np.zeros((nclusters, 3))
        np.add.at(totals, cluster, w[:, None] * (g - mean) / W)
        np.add.at(totals, cluster_u, wu[:, None] * (g_u - mean) / W)
        stratum_of = np.zeros(nclusters, dtype=int)
        stratum_of[cluster] = stratum
        out = np.zeros((3, 3))
        for h in np.unique(stratum_of):
            block = totals[stratum_of == h]
            centred = block - block.mean(axis=0)
            out += factor(block.shape[0]) * centred.T @ centred
        return out

    weight = np.linalg.inv(variance(np.array([a[0], a[2]])))
    beta = np.linalg.solve(G_matrix.T @ weight @ G_matrix, G_matrix.T @ weight @ a)
    covariance = np.linalg.inv(G_matrix.T @ np.linalg.inv(variance(beta)) @ G_matrix)
    return beta[0], np.sqrt(covariance[0, 0])


@pytest.mark.parametrize("cov_type, factor", [("CR1", lambda G: G / (G - 1)), ("CR0", lambda G: 1.0)])
def test_gmm_mean_with_weights_clusters_and_strata_equals_the_hand_gls(cov_type, factor):
    rng = np.random.default_rng(1)
    d = clustered_survey(rng, G=48, strata=3)
    w, wu = rng.uniform(1, 3, d["y"].size), rng.uniform(1, 3, d["zu"].size)
    design = ppinfer.Design(weights=w, weights_unlabeled=wu, clusters=d["cluster"], clusters_unlabeled=d["cluster_u"],
                            strata=d["stratum"], strata_unlabeled=d["stratum_u"])
    res = SyntheticGMM(d["y"], d["z"], d["zu"], design=design).fit(cov_type=cov_type)
    theta, se = hand_gmm_mean(d["y"], d["z"], d["zu"], w, wu, d["cluster"], d["cluster_u"], d["stratum"],
                              d["stratum_u"], factor)
    assert res.params.iloc[0] == pytest.approx(theta, abs=1e-10)
    assert res.bse.iloc[0] == pytest.approx(se, rel=1e-8)
    assert res.cov_type == cov_type
    text = res.summary().as_text()
    assert f"{cov_type} cluster (48 clusters)" in text and "Strata" in text


def test_classical_and_naive_with_designs_equal_statsmodels():
    rng = np.random.default_rng(2)
    d = clustered_survey(rng, G=30)
    X, Xu = d["X"], d["Xu"]
    clustered = SyntheticGMM(d["y"], d["z"], d["zu"], X=X, X_unlabeled=Xu, clusters=d["cluster"],
                             clusters_unlabeled=d["cluster_u"])
    G = 30
    for cov_type, factor in (("CR0", 1.0), ("CR1", G / (G - 1))):
        res = clustered.fit(method="classical", cov_type=cov_type)
        ref = sm.OLS(d["y"], X).fit(cov_type="cluster", cov_kwds={"groups": d["cluster"], "use_correction": False})
        np.testing.assert_allclose(res.params, ref.params, rtol=1e-10)
        np.testing.assert_allclose(res.bse, ref.bse * np.sqrt(factor), rtol=1e-8)
    w, wu = rng.uniform(0.5, 2, d["y"].size), rng.uniform(0.5, 2, d["zu"].size)
    weighted = SyntheticGMM(d["y"], d["z"], d["zu"], X=X, X_unlabeled=Xu, weights=w, weights_unlabeled=wu)
    res = weighted.fit(method="classical")
    ref = sm.WLS(d["y"], X, weights=w).fit(cov_type="HC0")
    np.testing.assert_allclose(res.params, ref.params, rtol=1e-10)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-8)
    # naive pooling: the weighted least squares of the outcomes and every draw stacked
    naive = weighted.fit(method="naive")
    stacked = sm.WLS(np.r_[d["y"], d["z"], d["zu"]], np.vstack([X, X, Xu]), weights=np.r_[w, w, wu]).fit(
        cov_type="HC0")
    np.testing.assert_allclose(naive.params, stacked.params, rtol=1e-10)
    np.testing.assert_allclose(naive.bse, stacked.bse, rtol=1e-8)


def test_unit_weights_and_no_clusters_change_nothing():
    rng = np.random.default_rng(3)
    d = clustered_survey(rng, G=30)
    plain = SyntheticGMM(d["y"], d["z"], d["zu"]).fit()
    ones = SyntheticGMM(d["y"], d["z"], d["zu"], weights=np.ones(d["y"].size),
                        weights_unlabeled=np.ones(d["zu"].size)).fit()
    np.testing.assert_allclose(ones.params, plain.params, rtol=1e-12)
    np.testing.assert_allclose(ones.bse, plain.bse, rtol=1e-10)
    assert plain.cov_type == "HC0"


def test_multiple_imputation_with_clusters_is_rubin_on_cluster_robust_analyses():
    rng = np.random.default_rng(4)
    d = clustered_survey(rng, G=24)
    X, Xu = d["X"], d["Xu"]
    model = MultipleImputation(d["y"], d["z"], d["zu"], X=X, X_unlabeled=Xu, clusters=d["cluster"],
                               clusters_unlabeled=d["cluster_u"])
    res = model.fit(imputations=5, seed=7)
    # replay the imputations (each draws once from the generator) and analyse them by statsmodels
    replay = np.random.default_rng(7)
    groups = np.r_[d["cluster"], d["cluster_u"]]
    estimates, covariances = [], []
    for _ in range(5):
        completed = sm.OLS(np.r_[d["y"], model.impute(replay)], np.vstack([X, Xu])).fit(
            cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False})
        estimates.append(completed.params)
        covariances.append(completed.cov_params() * 24 / 23)  # CR1: G / (G - 1)
    Q, U = np.array(estimates), np.array(covariances)
    between = np.cov(Q, rowvar=False)
    total = U.mean(axis=0) + 1.2 * between
    np.testing.assert_allclose(res.params, Q.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(res.bse, np.sqrt(np.diag(total)), rtol=1e-8)
    # Barnard-Rubin with the completed data's df: 24 clusters, one stratum
    share = 1.2 * np.diag(between) / np.diag(total)
    nu_old = 4 / share**2
    nu_obs = (23 + 1) / (23 + 3) * 23 * (1 - share)
    np.testing.assert_allclose(res.df, nu_old * nu_obs / (nu_old + nu_obs), rtol=1e-10)


def test_bad_designs_are_named():
    rng = np.random.default_rng(5)
    d = clustered_survey(rng, G=12)
    with pytest.raises(ValueError, match="label_prob \\(a two-phase design\\) is not supported"):
        SyntheticGMM(d["y"], d["z"], d["zu"], label_prob=np.full(d["y"].size, 0.2))
    model = SyntheticGMM(d["y"], d["z"], d["zu"], clusters=d["cluster"], clusters_unlabeled=d["cluster_u"])
    with pytest.raises(ValueError, match="cov_type='HC0' treats units as independent"):
        model.fit(cov_type="HC0")
    with pytest.raises(ValueError, match="leverage-adjusted variants are not available"):
        model.fit(cov_type="CR2")
    with pytest.raises(TypeError, match="Did you mean 'clusters'"):
        SyntheticGMM(d["y"], d["z"], d["zu"], cluster=d["cluster"])
    with pytest.raises(ValueError, match="weights is given but weights_unlabeled is not"):
        MultipleImputation(d["y"], d["z"], d["zu"], weights=np.ones(d["y"].size))
    with pytest.raises(TypeError, match="Accepted keywords: imputations, seed, df, cov_type"):
        MultipleImputation(d["y"], d["z"], d["zu"]).fit(lam=1)


# -- Monte Carlo ----------------------------------------------------------------------------------
REPS = 500
NOMINAL = 0.90


@functools.cache
def clustered_replications(seed=701):
    """60 clusters, 2-8 labeled and 10-40 unlabeled units each, clusters spanning both samples:
    coverage of the mean by the cluster-robust GMM (default CR1) and the i.i.d. GMM."""
    rng = np.random.default_rng(seed)
    covered = {"cluster-robust": np.empty(REPS, dtype=bool), "iid": np.empty(REPS, dtype=bool)}
    widths = {key: np.empty(REPS) for key in covered}
    for r in range(REPS):
        d = clustered_survey(rng, G=60)
        fits = {
            "cluster-robust": SyntheticGMM(d["y"], d["z"], d["zu"], clusters=d["cluster"],
                                           clusters_unlabeled=d["cluster_u"]).fit(),
            "iid": SyntheticGMM(d["y"], d["z"], d["zu"]).fit(),
        }
        for key, res in fits.items():
            lower, upper = res.conf_int(1 - NOMINAL).iloc[0]
            covered[key][r] = lower <= 1.0 <= upper
            widths[key][r] = upper - lower
    return {key: float(c.mean()) for key, c in covered.items()}, {key: float(v.mean()) for key, v in widths.items()}


@pytest.mark.montecarlo
def test_cluster_robust_gmm_covers_where_the_iid_gmm_does_not():
    coverage, widths = clustered_replications()
    tolerance = 3.5 * np.sqrt(NOMINAL * (1 - NOMINAL) / REPS)
    assert abs(coverage["cluster-robust"] - NOMINAL) <= tolerance, coverage
    assert coverage["iid"] < NOMINAL - 2 * tolerance, coverage
    assert widths["iid"] < widths["cluster-robust"]


if __name__ == "__main__":  # the Monte Carlo figures
    coverage, widths = clustered_replications()
    print("coverage", coverage, "mean widths", widths, "nominal", NOMINAL, "reps", REPS)
