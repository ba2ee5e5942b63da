"""Sampling-design options of the core: deterministic equivalences and input validation.

Covers the keyword options of :class:`ppinfer.Mean` and ``ppinfer.OLS/Logit/Poisson``:
K synthetic draws, clusters (``groups``, a cluster may span both samples), weights,
known labeling probabilities (``label_prob``), strata, the bootstrap and the formula
interface. Every expected number comes from an independent source: statsmodels
(WLS / GLM with ``var_weights``, ``cov_type="cluster"``), or the formulas of
METHODS.md (sections 1, 2, 6) evaluated by hand with numpy in this file. Variances
use the 1/n normalisation (HC0); cluster-robust ones carry the factor G/(G-1) of the
sample's G non-empty clusters and no (n-1)/(n-k) factor.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy.special import expit

import ppinfer

#: the references below use the plain sandwich (HC0), or the cluster-robust one with G / (G - 1)
#: only (CR1), and normal quantiles: the fits compared with them ask for these explicitly
HC0 = dict(cov_type="HC0", use_t=False)
CR1 = dict(cov_type="CR1", use_t=False)

MODELS = {"ols": ppinfer.OLS, "logit": ppinfer.Logit, "poisson": ppinfer.Poisson}
SM_FAMILIES = {"ols": sm.families.Gaussian, "logit": sm.families.Binomial, "poisson": sm.families.Poisson}
ALL_METHODS = ("classical", "ppi", "ppi++", "naive")


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def glm_data(family: str, *, seed: int, n: int = 240, N: int = 900, clusters: tuple[int, int] | None = None):
    """Two samples with biased, noisy predictions; optional cluster effects.

    ``clusters=(G_labeled, G_unlabeled)`` draws cluster labels (strings) with a
    random effect in the outcome; labels ``c0 .. c{G_labeled-1}`` for the labeled
    rows and ``c{G_labeled//2} ..`` for the unlabeled ones, so about half of the
    labeled clusters also hold unlabeled units.
    """
    rng = np.random.default_rng(seed)
    m = n + N
    x = rng.normal(size=m)
    z = rng.uniform(-1.0, 1.0, m)
    X = np.column_stack([np.ones(m), x, z])
    groups = None
    effect = np.zeros(m)
    if clusters is not None:
        gl, gu = clusters
        codes = np.r_[rng.integers(0, gl, n), gl // 2 + rng.integers(0, gu, N)]
        effect = 0.5 * rng.normal(size=gl // 2 + gu)[codes]
        groups = np.array([f"c{k}" for k in codes], dtype=object)
    beta = {"ols": [1.0, 0.8, -0.5], "logit": [-0.3, 0.9, -0.6], "poisson": [0.4, 0.3, -0.25]}[family]
    eta = X @ np.array(beta) + effect
    noise = rng.normal(size=m)
    if family == "ols":
        y = eta + (0.5 + np.abs(x)) * rng.standard_t(5, m)
        yhat = 0.8 * y + 0.3 + 0.6 * noise
    elif family == "logit":
        y = (rng.uniform(size=m) < expit(eta)).astype(float)
        yhat = expit(eta + 1.2 * (y - 0.5) + 0.3 + 0.5 * noise)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
        yhat = np.exp(0.6 * np.log1p(y) + 0.2 + 0.3 * noise)
    out = dict(y=y[:n], X=X[:n], yhat=yhat[:n], X_unlabeled=X[n:], yhat_unlabeled=yhat[n:])
    if groups is not None:
        out["groups"], out["groups_unlabeled"] = groups[:n], groups[n:]
    return out


def mean_data(*, seed: int, n: int = 200, N: int = 800, bias: float = 0.4):
    rng = np.random.default_rng(seed)
    y = 1.0 + rng.normal(size=n)
    yhat = 0.7 * y + bias + 0.6 * rng.normal(size=n)
    yhat_unlabeled = 0.7 * (1.0 + rng.normal(size=N)) + bias + 0.6 * rng.normal(size=N)
    return y, yhat, yhat_unlabeled


def sm_glm(family: str, y, X, *, var_weights=None, **fit_options):
    """The statsmodels GLM fit of one response (fractional responses allowed, warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sm.GLM(y, X, family=SM_FAMILIES[family](), var_weights=var_weights).fit(**fit_options)


def cluster_bse(result, groups) -> np.ndarray:
    """statsmodels' cluster-robust SE without its correction, times sqrt(G/(G-1))."""
    G = np.unique(groups).size
    return np.asarray(result.bse) * np.sqrt(G / (G - 1.0))


def detail(res, key: str) -> str:
    """A fit detail as printed in the summary (``key: value``)."""
    match = re.search(re.escape(key) + r":\s+(\S+)", res.summary().as_text())
    assert match, f"{key!r} not in the summary"
    return match.group(1)


def s2(a, b=None):
    """1/n-normalised (co)variance."""
    b = a if b is None else b
    return float(np.mean((a - a.mean()) * (b - b.mean())))


# --------------------------------------------------------------------------------------
# 1. clusters: classical fits equal statsmodels' cluster-robust covariance
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(MODELS))
def test_classical_with_groups_equals_statsmodels_cluster(family):
    data = glm_data(family, seed=1, clusters=(30, 60))
    res = MODELS[family](**data).fit(**CR1, method="classical")
    y, X, g = data["y"], data["X"], data["groups"]
    kwds = {"groups": pd.factorize(g)[0], "use_correction": False}
    reference = sm_glm(family, y, X, cov_type="cluster", cov_kwds=kwds)
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.bse, cluster_bse(reference, g), rtol=1e-7)
    assert "cluster (" in res.summary().as_text()


def test_mean_classical_with_groups_equals_statsmodels_cluster_on_a_constant():
    y, f, fu = mean_data(seed=2)
    g = np.arange(y.size) % 17
    res = ppinfer.Mean(y, f, fu, groups=g).fit(**CR1, method="classical")
    reference = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster", cov_kwds={"groups": g, "use_correction": False})
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    np.testing.assert_allclose(res.bse, cluster_bse(reference, g), rtol=1e-10)


def test_ppi_with_clusters_in_separate_samples_is_two_cluster_robust_fits():
    """lam = 1, no cluster shared: Var = cluster Var of OLS(y - yhat) + cluster Var of OLS(yhat_unlabeled)."""
    data = glm_data("ols", seed=3, clusters=(30, 60))
    data["groups_unlabeled"] = np.array([f"u{k}" for k in data["groups_unlabeled"]], dtype=object)
    res = ppinfer.OLS(**data).fit(**CR1, method="ppi")
    y, X, f, Xu, fu = (data[k] for k in ("y", "X", "yhat", "X_unlabeled", "yhat_unlabeled"))
    g, gu = pd.factorize(data["groups"])[0], pd.factorize(data["groups_unlabeled"])[0]
    rect = sm.OLS(y - f, X).fit(cov_type="cluster", cov_kwds={"groups": g, "use_correction": False})
    pred = sm.OLS(fu, Xu).fit(cov_type="cluster", cov_kwds={"groups": gu, "use_correction": False})
    np.testing.assert_allclose(res.params, rect.params + pred.params, rtol=1e-10)
    expected = cluster_bse(rect, g) ** 2 + cluster_bse(pred, gu) ** 2
    np.testing.assert_allclose(res.bse**2, expected, rtol=1e-8)


def _shared_cluster_mean_by_hand(y, f, fu, g, gu, lam=None):
    """Mean PPI(lam) variance with clusters spanning both samples (one G/(G-1) per sample).

    theta - mu ~ sum_g [a_g - lam (b_g - c_g)], a_g = c_L sum_{labeled i in g} (y_i - ybar) / n,
    b_g likewise with yhat, c_g = c_U sum_{unlabeled j in g} (fu_j - fubar) / N.
    """
    labels = np.unique(np.r_[g, gu])
    n, N = y.size, fu.size
    c_l = np.sqrt(np.unique(g).size / (np.unique(g).size - 1.0))
    c_u = np.sqrt(np.unique(gu).size / (np.unique(gu).size - 1.0))
    a = np.array([(y[g == k] - y.mean()).sum() for k in labels]) / n * c_l
    b = np.array([(f[g == k] - f.mean()).sum() for k in labels]) / n * c_l
    c = np.array([(fu[gu == k] - fu.mean()).sum() for k in labels]) / N * c_u
    d = b - c
    if lam is None:
        lam = float(np.clip(np.sum(a * d) / np.sum(d * d), 0.0, 1.0))
    estimate = y.mean() + lam * (fu.mean() - f.mean())
    return lam, estimate, float(np.sum((a - lam * d) ** 2))


@pytest.mark.parametrize("method", ["ppi", "ppi++", "classical"])
def test_mean_variance_with_clusters_spanning_both_samples(method):
    rng = np.random.default_rng(4)
    n, N, G = 150, 600, 40
    g, gu = rng.integers(0, G, n), rng.integers(10, G + 30, N)  # clusters 10..39 in both samples
    effect = rng.normal(size=G + 30)
    y = effect[g] + rng.normal(size=n)
    f = 0.8 * y + 0.3 + 0.5 * rng.normal(size=n) + 0.5 * effect[g]
    fu = 1.3 * effect[gu] + 0.3 + 0.7 * rng.normal(size=N)
    labels = np.array([f"school-{k}" for k in range(G + 30)], dtype=object)
    res = ppinfer.Mean(y, f, fu, groups=labels[g], groups_unlabeled=labels[gu]).fit(**CR1, method=method)
    lam = {"ppi": 1.0, "classical": 0.0, "ppi++": None}[method]
    lam, estimate, variance = _shared_cluster_mean_by_hand(y, f, fu, g, gu, lam)
    assert res.lam == pytest.approx(lam, rel=1e-10, abs=1e-12)
    assert res.params.iloc[0] == pytest.approx(estimate, rel=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)
    # treated as separate clusters, the cross-sample covariance disappears and the variance changes
    apart = ppinfer.Mean(y, f, fu, groups=g, groups_unlabeled=gu + 1000).fit(**CR1, method=method)
    if method != "classical":
        assert abs(apart.bse.iloc[0] ** 2 - variance) > 1e-3 * variance
    assert "cluster (70 clusters)" in res.summary().as_text()


def test_ols_variance_with_clusters_spanning_both_samples():
    """Influence rows by hand, summed within shared clusters before squaring (overall lambda)."""
    data = glm_data("ols", seed=5, clusters=(30, 50))
    y, X, f, Xu, fu = (data[k] for k in ("y", "X", "yhat", "X_unlabeled", "yhat_unlabeled"))
    g, gu = data["groups"], data["groups_unlabeled"]
    n, N = y.size, fu.size
    labels = np.unique(np.r_[g, gu])

    def influence(Xm, v):
        beta = np.linalg.lstsq(Xm, v, rcond=None)[0]
        return beta, Xm * (v - Xm @ beta)[:, None] @ np.linalg.inv(Xm.T @ Xm / Xm.shape[0])

    (by, py), (bf, pf), (bu, pu) = influence(X, y), influence(X, f), influence(Xu, fu)
    c_l = np.sqrt(np.unique(g).size / (np.unique(g).size - 1.0))
    c_u = np.sqrt(np.unique(gu).size / (np.unique(gu).size - 1.0))
    a = np.array([py[g == k].sum(axis=0) for k in labels]) / n * c_l
    d = np.array([pf[g == k].sum(axis=0) for k in labels]) / n * c_l - np.array(
        [pu[gu == k].sum(axis=0) for k in labels]
    ) / N * c_u
    lam = float(np.clip(np.trace(a.T @ d) / np.trace(d.T @ d), 0.0, 1.0))
    covariance = (a - lam * d).T @ (a - lam * d)
    res = ppinfer.OLS(**data).fit(**CR1)
    assert res.lam == pytest.approx(lam, rel=1e-9)
    np.testing.assert_allclose(res.params, by + lam * (bu - bf), rtol=1e-10)
    np.testing.assert_allclose(res.cov_params().to_numpy(), covariance, rtol=1e-8, atol=1e-14)


def test_groups_only_for_the_labeled_sample():
    """Unlabeled rows without groups are their own clusters: CR1's factor G / (G - 1) is N / (N - 1)."""
    data = glm_data("ols", seed=6, clusters=(30, 60))
    del data["groups_unlabeled"]
    res = ppinfer.OLS(**data).fit(**CR1, method="ppi")
    g = pd.factorize(data["groups"])[0]
    rect = sm.OLS(data["y"] - data["yhat"], data["X"]).fit(
        cov_type="cluster", cov_kwds={"groups": g, "use_correction": False}
    )
    pred = sm.OLS(data["yhat_unlabeled"], data["X_unlabeled"]).fit(cov_type="HC0")
    N = data["yhat_unlabeled"].size
    np.testing.assert_allclose(res.bse**2, cluster_bse(rect, g) ** 2 + pred.bse**2 * N / (N - 1), rtol=1e-8)


# --------------------------------------------------------------------------------------
# 2. weights
# --------------------------------------------------------------------------------------
def test_ols_weights_equal_statsmodels_wls_hc0():
    data = glm_data("ols", seed=7)
    rng = np.random.default_rng(70)
    w, wu = rng.uniform(0.2, 3.0, data["y"].size), rng.uniform(0.2, 3.0, data["yhat_unlabeled"].size)
    model = ppinfer.OLS(**data, weights=w, weights_unlabeled=wu)
    classical = model.fit(**HC0, method="classical")
    reference = sm.WLS(data["y"], data["X"], weights=w).fit(cov_type="HC0")
    np.testing.assert_allclose(classical.params, reference.params, rtol=1e-10)
    np.testing.assert_allclose(classical.bse, reference.bse, rtol=1e-9)
    # lam = 1: b_w(y) - b_w(yhat) = b_w(y - yhat), so the variance is two weighted HC0 variances
    ppi = model.fit(**HC0, method="ppi")
    rect = sm.WLS(data["y"] - data["yhat"], data["X"], weights=w).fit(cov_type="HC0")
    pred = sm.WLS(data["yhat_unlabeled"], data["X_unlabeled"], weights=wu).fit(cov_type="HC0")
    np.testing.assert_allclose(ppi.params, rect.params + pred.params, rtol=1e-10)
    np.testing.assert_allclose(ppi.bse**2, rect.bse**2 + pred.bse**2, rtol=1e-8)


@pytest.mark.parametrize("family", ["logit", "poisson"])
def test_glm_weights_equal_statsmodels_glm_var_weights_hc0(family):
    """``var_weights`` solves sum w x (v - mu) = 0 with meat sum w^2 r^2 x x' (freq_weights does not)."""
    data = glm_data(family, seed=8)
    rng = np.random.default_rng(80)
    w, wu = rng.uniform(0.2, 3.0, data["y"].size), rng.uniform(0.2, 3.0, data["yhat_unlabeled"].size)
    model = MODELS[family](**data, weights=w, weights_unlabeled=wu)
    classical = model.fit(**HC0, method="classical")
    reference = sm_glm(family, data["y"], data["X"], var_weights=w, cov_type="HC0")
    np.testing.assert_allclose(classical.params, reference.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(classical.bse, reference.bse, rtol=1e-6)
    ppi = model.fit(**HC0, method="ppi")
    fit_f = sm_glm(family, data["yhat"], data["X"], var_weights=w)
    fit_u = sm_glm(family, data["yhat_unlabeled"], data["X_unlabeled"], var_weights=wu)
    np.testing.assert_allclose(ppi.params, reference.params + fit_u.params - fit_f.params, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("family", list(MODELS))
def test_weights_with_groups_equal_statsmodels_weighted_cluster(family):
    data = glm_data(family, seed=40, clusters=(30, 60))
    rng = np.random.default_rng(400)
    w, wu = rng.uniform(0.3, 3.0, data["y"].size), rng.uniform(0.3, 3.0, data["yhat_unlabeled"].size)
    res = MODELS[family](**data, weights=w, weights_unlabeled=wu).fit(**CR1, method="classical")
    g = pd.factorize(data["groups"])[0]
    reference = sm_glm(family, data["y"], data["X"], var_weights=w, cov_type="cluster",
                       cov_kwds={"groups": g, "use_correction": False})
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.bse, cluster_bse(reference, g), rtol=1e-7)


@pytest.mark.parametrize("lam", [None, 0.0, 1.0, 0.4])
def test_weighted_mean_by_hand(lam):
    y, f, fu = mean_data(seed=9)
    rng = np.random.default_rng(90)
    w, wu = rng.uniform(0.2, 3.0, y.size), rng.uniform(0.2, 3.0, fu.size)

    def wmean(v, weights):
        return float(np.sum(weights * v) / np.sum(weights))

    def wvar_of_mean(v, weights):
        return float(np.sum(weights**2 * (v - wmean(v, weights)) ** 2) / np.sum(weights) ** 2)

    var_u = wvar_of_mean(fu, wu)
    if lam is None:
        yc, fc = y - wmean(y, w), f - wmean(f, w)
        numerator = np.sum(w**2 * yc * fc) / np.sum(w) ** 2
        lam_used = float(np.clip(numerator / (wvar_of_mean(f, w) + var_u), 0.0, 1.0))
    else:
        lam_used = lam
    estimate = lam_used * wmean(fu, wu) + wmean(y - lam_used * f, w)
    variance = lam_used**2 * var_u + wvar_of_mean(y - lam_used * f, w)
    options = {"method": "ppi++"} if lam is None else {"method": "ppi++", "lam": lam}
    res = ppinfer.Mean(y, f, fu, weights=w, weights_unlabeled=wu).fit(**HC0, **options)
    assert res.lam == pytest.approx(lam_used, rel=1e-10, abs=1e-14)
    assert res.params.iloc[0] == pytest.approx(estimate, rel=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)
    if lam == 0.0:
        reference = sm.WLS(y, np.ones_like(y), weights=w).fit(cov_type="HC0")
        assert res.bse.iloc[0] == pytest.approx(float(reference.bse[0]), rel=1e-10)


def test_unit_weights_change_nothing():
    data = glm_data("logit", seed=10)
    plain = ppinfer.Logit(**data).fit()
    weighted = ppinfer.Logit(
        **data, weights=np.full(data["y"].size, 2.5), weights_unlabeled=np.ones(data["yhat_unlabeled"].size)
    ).fit()
    np.testing.assert_allclose(weighted.params, plain.params, rtol=1e-8)
    np.testing.assert_allclose(weighted.bse, plain.bse, rtol=1e-7)


# --------------------------------------------------------------------------------------
# 3. strata
# --------------------------------------------------------------------------------------
def stratified_mean_data(seed: int = 11):
    rng = np.random.default_rng(seed)
    sizes = {"north": (40, 500), "south": (90, 300), "east": (25, 200)}
    shift = {"north": 0.0, "south": 1.5, "east": -1.0}
    quality = {"north": 0.9, "south": 0.4, "east": 0.0}
    y, f, fu, s, su = [], [], [], [], []
    for name, (n_k, N_k) in sizes.items():
        yk = shift[name] + rng.normal(size=n_k)
        y.append(yk)
        f.append(quality[name] * yk + 0.3 + rng.normal(size=n_k))
        fu.append(quality[name] * (shift[name] + rng.normal(size=N_k)) + 0.3 + rng.normal(size=N_k))
        s += [name] * n_k
        su += [name] * N_k
    return np.concatenate(y), np.concatenate(f), np.concatenate(fu), np.array(s), np.array(su)


def stratified_mean_by_hand(y, f, fu, s, su, weights, lam=None):
    """sum_k W_k theta_k(lam_k), sum_k W_k^2 V_k(lam_k): METHODS.md section 1 per stratum."""
    estimate, variance, lams = 0.0, 0.0, {}
    for name, W in weights.items():
        yk, fk, fuk = y[s == name], f[s == name], fu[su == name]
        n_k, N_k = yk.size, fuk.size
        if lam is None:
            lam_k = float(np.clip(s2(yk, fk) / (s2(fk) + n_k / N_k * s2(fuk)), 0.0, 1.0))
        else:
            lam_k = lam
        estimate += W * (lam_k * fuk.mean() + np.mean(yk - lam_k * fk))
        variance += W**2 * (lam_k**2 * s2(fuk) / N_k + s2(yk - lam_k * fk) / n_k)
        lams[name] = lam_k
    return estimate, variance, lams


@pytest.mark.parametrize("method", ["classical", "ppi", "ppi++"])
@pytest.mark.parametrize("given_weights", [False, True])
def test_stratified_mean_by_hand(method, given_weights):
    y, f, fu, s, su = stratified_mean_data()
    if given_weights:
        raw = {"north": 5.0, "south": 3.0, "east": 2.0}  # not normalised: the package normalises
        weights = {k: v / 10.0 for k, v in raw.items()}
        model = ppinfer.Mean(y, f, fu, strata=s, strata_unlabeled=su, stratum_weights=raw)
    else:
        weights = {k: np.mean(su == k) for k in ("north", "south", "east")}
        model = ppinfer.Mean(y, f, fu, strata=s, strata_unlabeled=su)
    lam = {"classical": 0.0, "ppi": 1.0, "ppi++": None}[method]
    estimate, variance, lams = stratified_mean_by_hand(y, f, fu, s, su, weights, lam)
    res = model.fit(**HC0, method=method)
    assert res.params.iloc[0] == pytest.approx(estimate, rel=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)
    for name, value in weights.items():
        assert model.stratum_weights[name] == pytest.approx(value, rel=1e-12)
    if method == "ppi++":
        assert isinstance(res.lam, pd.Series)
        assert sorted(res.lam.index) == sorted(lams)
        for name, value in lams.items():
            assert res.lam[name] == pytest.approx(value, rel=1e-10, abs=1e-14)
        assert len(set(np.round(res.lam.to_numpy(), 6))) == 3  # one lambda per stratum
        assert "Lambda by stratum" in res.summary().as_text()


def test_stratified_mean_ppi_pp_is_each_strata_own_mean_fit():
    """Each stratum's PPI++ mean fitted alone, combined with the default weights N_k / N."""
    y, f, fu, s, su = stratified_mean_data(seed=12)
    res = ppinfer.Mean(y, f, fu, strata=s, strata_unlabeled=su).fit(**HC0)
    estimate = variance = 0.0
    for name in np.unique(s):
        part = ppinfer.Mean(y[s == name], f[s == name], fu[su == name]).fit(**HC0)
        W = np.mean(su == name)
        estimate += W * part.params.iloc[0]
        variance += W**2 * part.bse.iloc[0] ** 2
        assert res.lam[name] == pytest.approx(part.lam, rel=1e-10, abs=1e-14)
    assert res.params.iloc[0] == pytest.approx(estimate, rel=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)


@pytest.mark.parametrize("family", list(MODELS))
def test_single_stratum_equals_unstratified(family):
    """Exact for OLS (every method). For GLMs the stratified correction is a one-step
    expansion of b(yhat_unlabeled) - b(yhat): exact for classical and naive, and within
    a small fraction of a standard error for the PPI methods (the gap is O(1/n))."""
    data = glm_data(family, seed=13)
    plain = MODELS[family](**data)
    one = MODELS[family](
        **data, strata=np.full(data["y"].size, "all"), strata_unlabeled=np.full(data["yhat_unlabeled"].size, "all")
    )
    for method, lam in [("classical", None), ("ppi", None), ("ppi++", None), ("ppi++", "per-coefficient"),
                        ("ppi++", 0.3), ("naive", None)]:
        options = {"method": method} if lam is None else {"method": method, "lam": lam}
        a, b = plain.fit(**options), one.fit(**options)
        if family == "ols" or method in ("classical", "naive"):
            np.testing.assert_allclose(b.params, a.params, rtol=1e-9, atol=1e-12, err_msg=f"{method} {lam}")
            np.testing.assert_allclose(b.bse, a.bse, rtol=1e-9, err_msg=f"{method} {lam}")
            if method == "ppi++":
                np.testing.assert_allclose(np.asarray(b.lam, dtype=float).ravel(),
                                           np.asarray(a.lam, dtype=float).ravel(), rtol=1e-9)
        else:
            gap = np.abs(b.params - a.params).to_numpy() / a.bse.to_numpy()
            assert np.all(gap < 0.05), f"{method} {lam}: gap / se = {gap}"
            np.testing.assert_allclose(b.bse, a.bse, rtol=0.02, err_msg=f"{method} {lam}")


def _stratified_ols_design(seed=14):
    rng = np.random.default_rng(seed)
    names, sizes = ["a", "b", "c"], [(50, 400), (80, 700), (40, 300)]
    rows, rows_u = [], []
    for k, (name, (n_k, N_k)) in enumerate(zip(names, sizes)):
        for count, store in ((n_k, rows), (N_k, rows_u)):
            x = rng.normal(k * 0.5, 1.0, count)
            y = 1.0 + k + (1.0 + 0.5 * k) * x + rng.normal(size=count) * (1 + k)
            f = 0.5 + 1.2 * x + (0.8 - 0.3 * k) * (y - 1.0 - 1.2 * x) + rng.normal(size=count)
            store.append(pd.DataFrame({"x": x, "y": y, "f": f, "s": name}))
    labeled, unlabeled = pd.concat(rows, ignore_index=True), pd.concat(rows_u, ignore_index=True)
    X = np.column_stack([np.ones(len(labeled)), labeled["x"]])
    Xu = np.column_stack([np.ones(len(unlabeled)), unlabeled["x"]])
    return labeled, unlabeled, X, Xu


def test_stratified_ols_by_hand():
    """lam = 1: b_s(y) + b_s(fu) - b_s(f) with stratum-weighted least squares (weights W_k n / n_k and
    W_k N / N_k); variance from influence rows centred within strata, summed over strata."""
    labeled, unlabeled, X, Xu = _stratified_ols_design()
    W = {"a": 0.2, "b": 0.5, "c": 0.3}
    y, f, s, fu, su = labeled["y"].to_numpy(), labeled["f"].to_numpy(), labeled["s"].to_numpy(), unlabeled[
        "f"].to_numpy(), unlabeled["s"].to_numpy()
    n, N = y.size, fu.size
    w = np.array([W[k] * n / np.sum(s == k) for k in s])
    wu = np.array([W[k] * N / np.sum(su == k) for k in su])
    model = ppinfer.OLS(y, X, f, Xu, fu, strata=s, strata_unlabeled=su, stratum_weights=W)

    def fit(Xm, v, weights):
        beta = sm.WLS(v, Xm, weights=weights).fit().params
        hessian = (Xm * weights[:, None]).T @ Xm / Xm.shape[0]
        return beta, (Xm * (weights * (v - Xm @ beta))[:, None]) @ np.linalg.inv(hessian)

    def within(rows, codes):
        out = 0.0
        for k in np.unique(codes):
            centred = rows[codes == k] - rows[codes == k].mean(axis=0)
            out = out + centred.T @ centred
        return out / rows.shape[0] ** 2

    (by, py), (bf, pf), (bu, pu) = fit(X, y, w), fit(X, f, w), fit(Xu, fu, wu)
    classical = model.fit(**HC0, method="classical")
    np.testing.assert_allclose(classical.params, by, rtol=1e-10)
    np.testing.assert_allclose(classical.cov_params().to_numpy(), within(py, s), rtol=1e-9)
    ppi = model.fit(**HC0, method="ppi")
    np.testing.assert_allclose(ppi.params, by + bu - bf, rtol=1e-10)
    np.testing.assert_allclose(ppi.cov_params().to_numpy(), within(py - pf, s) + within(pu, su), rtol=1e-9)
    tuned = model.fit(**HC0, lam="per-coefficient")
    assert isinstance(tuned.lam, pd.DataFrame)
    assert tuned.lam.shape == (3, 2) and list(tuned.lam.columns) == model.param_names
    assert sorted(tuned.lam.index) == ["a", "b", "c"]
    overall = model.fit(**HC0)
    assert isinstance(overall.lam, pd.Series) and sorted(overall.lam.index) == ["a", "b", "c"]


# --------------------------------------------------------------------------------------
# 4. synthetic draws
# --------------------------------------------------------------------------------------
def draws_data(seed=15, n=200, N=800, K=5):
    rng = np.random.default_rng(seed)
    x, xu = rng.normal(size=n), rng.normal(size=N)
    y = 1.0 + x + rng.normal(size=n)
    yhat = 1.3 + 1.2 * x[:, None] + 0.5 * (y - 1 - x)[:, None] + 1.5 * rng.normal(size=(n, K))
    yu_latent = rng.normal(size=N)
    yhat_u = 1.3 + 1.2 * xu[:, None] + 0.5 * yu_latent[:, None] + 1.5 * rng.normal(size=(N, K))
    return x, xu, y, yhat, yhat_u


@pytest.mark.parametrize("method", ALL_METHODS)
def test_mean_with_draws_equals_mean_of_row_means(method):
    _, _, y, yhat, yhat_u = draws_data()
    model = ppinfer.Mean(y, yhat, yhat_u)
    assert model.draws == 5
    res = model.fit(method=method)
    reference = ppinfer.Mean(y, yhat.mean(axis=1), yhat_u.mean(axis=1)).fit(method=method)
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-10)
    if method in ("ppi", "ppi++"):
        assert detail(res, "Draws per unit (K)") == "5"
        one = ppinfer.Mean(y, yhat[:, 0], yhat_u[:, 0]).fit(method=method)
        ratio = (one.bse.iloc[0] / res.bse.iloc[0]) ** 2
        assert float(detail(res, "Var 1 draw / K draws")) == pytest.approx(ratio, abs=5.1e-4)
        assert ratio > 1.0  # averaging 5 draws helps here


def test_ols_with_draws_and_the_single_draw_ratio():
    x, xu, y, yhat, yhat_u = draws_data(seed=16)
    X, Xu = np.column_stack([np.ones_like(x), x]), np.column_stack([np.ones_like(xu), xu])
    model = ppinfer.OLS(y, X, yhat, Xu, yhat_u)
    assert model.draws == 5
    res = model.fit()
    reference = ppinfer.OLS(y, X, yhat.mean(axis=1), Xu, yhat_u.mean(axis=1)).fit()
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-10)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-9)
    one = ppinfer.OLS(y, X, yhat[:, 0], Xu, yhat_u[:, 0]).fit()
    ratio = np.mean((one.bse.to_numpy() / res.bse.to_numpy()) ** 2)
    assert float(detail(res, "Var 1 draw / K draws")) == pytest.approx(ratio, abs=5.1e-4)
    assert "Draws per unit" not in model.fit(method="classical").summary().as_text()


def _draws_design_options(design: str, n: int, N: int, rng: np.random.Generator) -> dict:
    return {
        "groups": dict(groups=rng.integers(0, 30, n), groups_unlabeled=rng.integers(0, 30, N)),
        "weights": dict(weights=rng.uniform(0.5, 2, n), weights_unlabeled=rng.uniform(0.5, 2, N)),
        "label_prob": dict(label_prob=np.full(n, 0.2)),
        "strata": dict(strata=rng.integers(0, 3, n), strata_unlabeled=rng.integers(0, 3, N)),
    }[design]


@pytest.mark.parametrize("design", ["groups", "weights", "label_prob", "strata"])
def test_single_draw_ratio_under_each_design(design):
    """K draws with a design option: the reported ratio is that of the same design fitted on draw 1."""
    rng = np.random.default_rng(34)
    n, N, K = 300, 1200, 5
    options = _draws_design_options(design, n, N, rng)
    level = 3.0 * options["strata"] if design == "strata" else 0.0
    level_u = 3.0 * options["strata_unlabeled"] if design == "strata" else 0.0
    y = level + rng.normal(size=n)
    yhat = y[:, None] + 0.5 + 1.5 * rng.normal(size=(n, K))
    yhat_u = (level_u + rng.normal(size=N))[:, None] + 0.5 + 1.5 * rng.normal(size=(N, K))
    res = ppinfer.Mean(y, yhat, yhat_u, **options).fit()
    reference = ppinfer.Mean(y, yhat.mean(axis=1), yhat_u.mean(axis=1), **options).fit()
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-10)
    one = ppinfer.Mean(y, yhat[:, 0], yhat_u[:, 0], **options).fit()
    ratio = (one.bse.iloc[0] / res.bse.iloc[0]) ** 2
    assert float(detail(res, "Var 1 draw / K draws")) == pytest.approx(ratio, abs=5.1e-4)


def test_one_draw_column_is_an_ordinary_prediction():
    _, _, y, yhat, yhat_u = draws_data(K=1)
    model = ppinfer.Mean(y, yhat, yhat_u)
    assert model.draws == 1
    assert "Draws per unit" not in model.fit().summary().as_text()


# --------------------------------------------------------------------------------------
# 5. known labeling probabilities
# --------------------------------------------------------------------------------------
def label_prob_data(seed=17, M=1200):
    """All units; unit i labeled with probability pi_i depending on x (known)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=M)
    y = 1.0 + x + rng.normal(size=M)
    f = 0.6 + 1.4 * x + 0.4 * (y - 1 - x) + 0.5 * rng.normal(size=M)
    pi = 0.1 + 0.5 * expit(1.5 * x)
    labeled = rng.uniform(size=M) < pi
    return x, y, f, pi, labeled


def label_prob_mean_by_hand(y, f, fu, pi, lam):
    """Two-phase linearization (every unit of the first phase its own PSU, HC0): unit i contributes

        z_i = R_i [a_i - lam b_i] + lam c_i,   a = w (y - ybar_w) / S,   b = w (f - fbar_w) / S,
        c = (f - fbar_all) / M  (all M units),

    with w = 1/pi, S = sum of w over the labeled units and Hajek means ybar_w, fbar_w. So
    V(lam) = sum_lab (a - lam (b - c))^2 + lam^2 sum_unl c^2, minimised by
    lam = sum_lab a (b - c) / (sum_lab (b - c)^2 + sum_unl c^2).
    """
    w = 1.0 / pi
    S = w.sum()
    ybar, fbar = np.sum(w * y) / S, np.sum(w * f) / S
    f_all = np.r_[f, fu]
    M, fa = f_all.size, f_all.mean()
    a = w * (y - ybar) / S
    d = w * (f - fbar) / S - (f - fa) / M
    c = (fu - fa) / M
    if lam is None:
        lam = float(np.clip(np.sum(a * d) / (np.sum(d * d) + np.sum(c * c)), 0.0, 1.0))
    return lam, ybar + lam * (fa - fbar), float(np.sum((a - lam * d) ** 2) + lam**2 * np.sum(c * c))


@pytest.mark.parametrize("method", ["classical", "ppi", "ppi++"])
def test_label_prob_mean_by_hand(method):
    x, y, f, pi, labeled = label_prob_data()
    model = ppinfer.Mean(y[labeled], f[labeled], f[~labeled], label_prob=pi[labeled])
    res = model.fit(**HC0, method=method)
    lam = {"classical": 0.0, "ppi": 1.0, "ppi++": None}[method]
    lam, estimate, variance = label_prob_mean_by_hand(y[labeled], f[labeled], f[~labeled], pi[labeled], lam)
    assert res.lam == pytest.approx(lam, rel=1e-10, abs=1e-14)
    assert res.params.iloc[0] == pytest.approx(estimate, rel=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-10)
    assert "known label prob." in res.summary().as_text()
    if method == "classical":
        reference = sm.WLS(y[labeled], np.ones(labeled.sum()), weights=1 / pi[labeled]).fit(cov_type="HC0")
        assert res.params.iloc[0] == pytest.approx(float(reference.params[0]), rel=1e-12)
        assert res.bse.iloc[0] == pytest.approx(float(reference.bse[0]), rel=1e-10)


def test_label_prob_all_one_is_the_labeled_mean_plus_prediction_shift():
    """pi = 1: unit weights; the variance is that of the per-unit linearization (never negative:
    the formula of earlier versions, s2(y)/n - s2(f)/n + s2(f_all)/M, could be)."""
    y, f, fu = mean_data(seed=18)
    res = ppinfer.Mean(y, f, fu, label_prob=np.ones(y.size)).fit(**HC0, method="ppi")
    f_all = np.r_[f, fu]
    assert res.params.iloc[0] == pytest.approx(y.mean() - f.mean() + f_all.mean(), rel=1e-12)
    _, _, expected = label_prob_mean_by_hand(y, f, fu, np.ones(y.size), 1.0)
    assert res.bse.iloc[0] ** 2 == pytest.approx(expected, rel=1e-10)
    # a direct evaluation of the same sum
    M, n = f_all.size, y.size
    z_labeled = (y - y.mean()) / n - ((f - f.mean()) / n - (f - f_all.mean()) / M)
    z_unlabeled = (fu - f_all.mean()) / M
    assert res.bse.iloc[0] ** 2 == pytest.approx(np.sum(z_labeled**2) + np.sum(z_unlabeled**2), rel=1e-10)


def test_label_prob_ols_point_estimates_and_classical_equal_weighted_fits():
    x, y, f, pi, labeled = label_prob_data(seed=19)
    X = np.column_stack([np.ones_like(x), x])
    model = ppinfer.OLS(y[labeled], X[labeled], f[labeled], X[~labeled], f[~labeled], label_prob=pi[labeled])
    w = 1.0 / pi[labeled]
    classical = model.fit(**HC0, method="classical")
    reference = sm.WLS(y[labeled], X[labeled], weights=w).fit(cov_type="HC0")
    np.testing.assert_allclose(classical.params, reference.params, rtol=1e-10)
    np.testing.assert_allclose(classical.bse, reference.bse, rtol=1e-9)
    ppi = model.fit(**HC0, method="ppi")
    rect = sm.WLS(y[labeled] - f[labeled], X[labeled], weights=w).fit()
    everyone = sm.OLS(np.r_[f[labeled], f[~labeled]], np.r_[X[labeled], X[~labeled]]).fit()
    np.testing.assert_allclose(ppi.params, rect.params + everyone.params, rtol=1e-10)
    naive = model.fit(**HC0, method="naive")
    pooled = sm.OLS(np.r_[y[labeled], f[~labeled]], np.r_[X[labeled], X[~labeled]]).fit(cov_type="HC0")
    np.testing.assert_allclose(naive.params, pooled.params, rtol=1e-10)
    np.testing.assert_allclose(naive.bse, pooled.bse, rtol=1e-9)


# --------------------------------------------------------------------------------------
# 6. missing="drop" keeps design arrays aligned
# --------------------------------------------------------------------------------------
def _with_nan(values, rows):
    out = np.array(values, dtype=float)
    out[rows] = np.nan
    return out


@pytest.mark.parametrize("option", ["groups", "weights", "strata"])
def test_missing_drop_keeps_design_arrays_aligned(option):
    data = glm_data("ols", seed=20, clusters=(25, 40))
    n, N = data["y"].size, data["yhat_unlabeled"].size
    rng = np.random.default_rng(200)
    drop, drop_u = np.array([0, 3, 17, 50]), np.array([1, 2, 99, 400])
    extras = {
        "groups": dict(groups=data["groups"], groups_unlabeled=data["groups_unlabeled"]),
        "weights": dict(weights=rng.uniform(0.2, 3.0, n), weights_unlabeled=rng.uniform(0.2, 3.0, N)),
        "strata": dict(strata=np.array(list("ab"))[np.arange(n) % 2], strata_unlabeled=np.array(list("ab"))[np.arange(N) % 2]),
    }[option]
    base = {k: data[k] for k in ("y", "X", "yhat", "X_unlabeled", "yhat_unlabeled")}
    dirty = dict(base, y=_with_nan(base["y"], drop), yhat_unlabeled=_with_nan(base["yhat_unlabeled"], drop_u))
    keep, keep_u = np.setdiff1d(np.arange(n), drop), np.setdiff1d(np.arange(N), drop_u)
    clean = {k: (v[keep] if k in ("y", "X", "yhat") else v[keep_u]) for k, v in base.items()}
    clean_extras = {k: (v[keep_u] if k.endswith("unlabeled") else v[keep]) for k, v in extras.items()}
    dropped = ppinfer.OLS(**dirty, **extras, missing="drop")
    reference = ppinfer.OLS(**clean, **clean_extras)
    for method in ALL_METHODS:
        a, b = dropped.fit(method=method), reference.fit(method=method)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-12)
        np.testing.assert_allclose(a.bse, b.bse, rtol=1e-10)
    assert "Rows dropped" in dropped.fit().summary().as_text()


def test_missing_group_label_drops_the_row():
    y, f, fu = mean_data(seed=21)
    g = (np.arange(y.size) % 12).astype(object)
    g[[4, 9]] = None
    res = ppinfer.Mean(y, f, fu, groups=pd.Series(g), missing="drop").fit(method="classical")
    keep = np.setdiff1d(np.arange(y.size), [4, 9])
    reference = ppinfer.Mean(y[keep], f[keep], fu, groups=g[keep].astype(int)).fit(method="classical")
    assert res.nobs == y.size - 2
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        ppinfer.Mean(y, f, fu, groups=pd.Series(g))


def test_missing_label_prob_drops_the_row():
    x, y, f, pi, labeled = label_prob_data(seed=22)
    p = _with_nan(pi[labeled], [0, 5])
    res = ppinfer.Mean(y[labeled], f[labeled], f[~labeled], label_prob=p, missing="drop").fit()
    keep = np.setdiff1d(np.arange(labeled.sum()), [0, 5])
    reference = ppinfer.Mean(y[labeled][keep], f[labeled][keep], f[~labeled], label_prob=pi[labeled][keep]).fit()
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-12)


# --------------------------------------------------------------------------------------
# 7. bootstrap
# --------------------------------------------------------------------------------------
def test_bootstrap_is_reproducible_and_seeded():
    y, f, fu = mean_data(seed=23)
    model = ppinfer.Mean(y, f, fu)
    a = model.fit(ci="bootstrap", n_boot=200, seed=5)
    b = model.fit(ci="bootstrap", n_boot=200, seed=5)
    c = model.fit(ci="bootstrap", n_boot=200, seed=6)
    pd.testing.assert_frame_equal(a.conf_int(), b.conf_int())
    pd.testing.assert_series_equal(a.bse, b.bse)
    assert not np.allclose(a.conf_int().to_numpy(), c.conf_int().to_numpy())
    gen = model.fit(ci="bootstrap", n_boot=200, seed=np.random.default_rng(5))
    pd.testing.assert_frame_equal(gen.conf_int(), a.conf_int())
    analytic = model.fit()
    pd.testing.assert_series_equal(a.params, analytic.params)  # same estimate, other intervals
    assert "bootstrap (200)" in a.summary().as_text()


@pytest.mark.parametrize("n_boot", [0, 1, -5, 2.5, True, "100", None])
def test_bootstrap_n_boot_validation(n_boot):
    y, f, fu = mean_data(seed=24)
    with pytest.raises(ValueError, match="n_boot"):
        ppinfer.Mean(y, f, fu).fit(ci="bootstrap", n_boot=n_boot)


def test_seed_without_bootstrap_and_unknown_ci():
    y, f, fu = mean_data(seed=24)
    with pytest.raises(ValueError, match="seed"):
        ppinfer.Mean(y, f, fu).fit(seed=1)
    with pytest.raises(ValueError, match="ci"):
        ppinfer.Mean(y, f, fu).fit(ci="bootstrapp")


def _large_design_models(seed=25):
    """Large samples under each design: the bootstrap SE should be near the analytic one."""
    rng = np.random.default_rng(seed)
    n, N = 1000, 4000
    out = {}
    y, f, fu = mean_data(seed=seed, n=n, N=N)
    out["independent"] = ppinfer.Mean(y, f, fu)
    g, gu = rng.integers(0, 100, n), rng.integers(50, 200, N)
    effect = rng.normal(size=200)
    out["clusters"] = ppinfer.Mean(y + effect[g], f + effect[g], fu + effect[gu], groups=g, groups_unlabeled=gu)
    x, yy, ff, pi, labeled = label_prob_data(seed=seed, M=n + N)
    out["label_prob"] = ppinfer.Mean(yy[labeled], ff[labeled], ff[~labeled], label_prob=pi[labeled])
    s, su = rng.integers(0, 3, n), rng.integers(0, 3, N)
    out["strata"] = ppinfer.Mean(y + s, f + 0.5 * s, fu + 0.5 * su, strata=s, strata_unlabeled=su)
    out["weights"] = ppinfer.Mean(y, f, fu, weights=rng.uniform(0.3, 3, n), weights_unlabeled=rng.uniform(0.3, 3, N))
    return out


@pytest.mark.parametrize("design", ["independent", "clusters", "label_prob", "strata", "weights"])
def test_bootstrap_se_near_analytic_se_on_a_large_sample(design):
    model = _large_design_models()[design]
    for method in ("ppi++", "ppi", "classical"):
        boot = model.fit(method=method, ci="bootstrap", n_boot=300, seed=7)
        analytic = model.fit(method=method)
        ratio = boot.bse.iloc[0] / analytic.bse.iloc[0]
        assert 0.85 < ratio < 1.15, f"{design} {method}: bootstrap / analytic SE = {ratio:.3f}"
        lower, upper = boot.conf_int().iloc[0]
        assert lower < boot.params.iloc[0] < upper


def test_cluster_bootstrap_with_few_labeled_clusters_among_many():
    """8 labeled clusters (shared) among 100: every replicate must keep labeled clusters to fit."""
    rng = np.random.default_rng(35)
    n, N = 60, 1000
    y = rng.normal(size=n)
    f, fu = y + rng.normal(size=n), rng.normal(size=N)
    model = ppinfer.Mean(y, f, fu, groups=rng.integers(0, 8, n), groups_unlabeled=rng.integers(0, 100, N))
    for seed in range(5):
        res = model.fit(ci="bootstrap", n_boot=200, seed=seed)
        assert np.isfinite(res.bse.iloc[0])


def test_bootstrap_ols_slope():
    data = glm_data("ols", seed=26, n=1000, N=4000)
    model = ppinfer.OLS(**data)
    boot = model.fit(ci="bootstrap", n_boot=300, seed=3)
    analytic = model.fit()
    ratio = boot.bse.to_numpy() / analytic.bse.to_numpy()
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio
    interval = boot.conf_int()
    assert np.all((interval["lower"] < boot.params) & (boot.params < interval["upper"]))
    one_sided = boot.conf_int(alternative="larger")
    assert np.all(np.isinf(one_sided["upper"])) and np.all(one_sided["lower"] > interval["lower"])


# --------------------------------------------------------------------------------------
# 8. formula interface
# --------------------------------------------------------------------------------------
def _frames(seed=27):
    data = glm_data("ols", seed=seed, clusters=(20, 40))
    rng = np.random.default_rng(seed)
    labeled = pd.DataFrame({"y": data["y"], "x": data["X"][:, 1], "z": data["X"][:, 2], "pred": data["yhat"],
                            "school": data["groups"], "w": rng.uniform(0.5, 2, data["y"].size)})
    unlabeled = pd.DataFrame({"x": data["X_unlabeled"][:, 1], "z": data["X_unlabeled"][:, 2],
                              "pred": data["yhat_unlabeled"], "school": data["groups_unlabeled"],
                              "w": rng.uniform(0.5, 2, data["yhat_unlabeled"].size)})
    return data, labeled, unlabeled


def test_formula_groups_and_weights_columns_equal_array_interface():
    data, labeled, unlabeled = _frames()
    arrays = {k: data[k] for k in ("y", "X", "yhat", "X_unlabeled", "yhat_unlabeled")}
    by_name = ppinfer.ols("y ~ x + z", data=labeled, unlabeled=unlabeled, yhat="pred", groups="school").fit()
    by_array = ppinfer.OLS(**arrays, groups=data["groups"], groups_unlabeled=data["groups_unlabeled"]).fit()
    np.testing.assert_allclose(by_name.params, by_array.params, rtol=1e-12)
    np.testing.assert_allclose(by_name.bse, by_array.bse, rtol=1e-12)
    arrays_given = ppinfer.ols("y ~ x + z", data=labeled, unlabeled=unlabeled, yhat="pred",
                               groups=data["groups"], groups_unlabeled=data["groups_unlabeled"]).fit()
    np.testing.assert_allclose(arrays_given.bse, by_array.bse, rtol=1e-12)
    weighted = ppinfer.ols("y ~ x + z", data=labeled, unlabeled=unlabeled, yhat="pred", weights="w").fit()
    reference = ppinfer.OLS(**arrays, weights=labeled["w"].to_numpy(), weights_unlabeled=unlabeled["w"].to_numpy()).fit()
    np.testing.assert_allclose(weighted.bse, reference.bse, rtol=1e-12)


def test_formula_label_prob_column():
    x, y, f, pi, labeled = label_prob_data(seed=28)
    frame = pd.DataFrame({"y": y, "x": x, "f": f, "pi": pi})
    res = ppinfer.ols("y ~ x", data=frame[labeled], unlabeled=frame[~labeled], yhat="f", label_prob="pi").fit()
    X = np.column_stack([np.ones_like(x), x])
    reference = ppinfer.OLS(y[labeled], X[labeled], f[labeled], X[~labeled], f[~labeled], label_prob=pi[labeled]).fit()
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-12)


def test_formula_missing_drop_keeps_groups_aligned():
    data, labeled, unlabeled = _frames(seed=29)
    labeled.loc[[2, 7, 30], "x"] = np.nan
    unlabeled.loc[[0, 11], "z"] = np.nan
    res = ppinfer.ols("y ~ x + z", data=labeled, unlabeled=unlabeled, yhat="pred", groups="school",
                      missing="drop").fit()
    keep, keep_u = labeled["x"].notna().to_numpy(), unlabeled["z"].notna().to_numpy()
    reference = ppinfer.OLS(
        data["y"][keep], data["X"][keep], data["yhat"][keep], data["X_unlabeled"][keep_u],
        data["yhat_unlabeled"][keep_u], groups=data["groups"][keep], groups_unlabeled=data["groups_unlabeled"][keep_u],
    ).fit()
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-12)


# --------------------------------------------------------------------------------------
# 9. validation: one clear error naming the argument
# --------------------------------------------------------------------------------------
def _mean_args(seed=30):
    y, f, fu = mean_data(seed=seed, n=40, N=120)
    return y, f, fu


BAD_DESIGNS = [
    ("strata without strata_unlabeled", dict(strata="S"), "strata_unlabeled"),
    ("strata_unlabeled without strata", dict(strata_unlabeled="S"), "strata"),
    ("strata and weights for one sample", dict(strata="S", strata_unlabeled="S", weights="W"), "weights_unlabeled"),
    ("strata and groups", dict(strata="S", strata_unlabeled="S", groups="G"), "strata"),
    ("stratum_weights without strata", dict(stratum_weights={"a": 1.0}), "stratum_weights"),
    ("label_prob and labeled weights only", dict(label_prob="P", weights="W"), "weights_unlabeled"),
    ("label_prob and unlabeled weights only", dict(label_prob="P", weights_unlabeled="WU"), "weights"),
    ("label_prob and groups", dict(label_prob="P", groups="G"), "label_prob"),
    ("label_prob and groups_unlabeled", dict(label_prob="P", groups_unlabeled="GU"), "label_prob"),
    ("label_prob zero", dict(label_prob="P0"), "label_prob"),
    ("label_prob above one", dict(label_prob="P>1"), "label_prob"),
    ("label_prob negative", dict(label_prob="P<0"), "label_prob"),
    ("label_prob wrong length", dict(label_prob="P_short"), "label_prob"),
    ("negative weights", dict(weights="W<0"), "weights"),
    ("negative weights_unlabeled", dict(weights_unlabeled="WU<0"), "weights_unlabeled"),
    ("zero-sum weights", dict(weights="W0"), "weights"),
    ("zero-sum weights_unlabeled", dict(weights_unlabeled="WU0"), "weights_unlabeled"),
    ("weights wrong length", dict(weights="W_short"), "weights"),
    ("two-column weights", dict(weights="W2"), "weights"),
    ("single cluster", dict(groups="G1"), "groups"),
    ("single unlabeled cluster", dict(groups_unlabeled="GU1"), "groups_unlabeled"),
    ("groups wrong length", dict(groups="G_short"), "groups"),
    ("two-column groups", dict(groups="G2"), "groups"),
    ("stratum with one labeled unit", dict(strata="S_thin", strata_unlabeled="S"), "strata"),
    ("stratum with no unlabeled unit", dict(strata="S", strata_unlabeled="S_missing_c"), "strata"),
    ("stratum_weights missing a stratum", dict(strata="S", strata_unlabeled="S", stratum_weights={"a": 1, "b": 2}),
     "stratum_weights"),
    ("negative stratum weight", dict(strata="S", strata_unlabeled="S", stratum_weights={"a": 1, "b": 2, "c": -1}),
     "stratum_weights"),
]


def _resolve(options: dict, n: int, N: int) -> dict:
    rng = np.random.default_rng(31)
    S = np.array(list("abc"))[np.arange(n) % 3]
    SU = np.array(list("abc"))[np.arange(N) % 3]
    thin = S.copy()
    thin[thin == "c"] = "a"
    thin[0] = "c"
    values = {
        "S": (S, SU), "S_thin": (thin, None), "S_missing_c": (None, np.where(SU == "c", "a", SU)),
        "W": (rng.uniform(0.5, 2, n), None), "WU": (None, rng.uniform(0.5, 2, N)),
        "W<0": (np.r_[-1.0, np.ones(n - 1)], None), "WU<0": (None, np.r_[np.ones(N - 1), -0.5]),
        "W0": (np.zeros(n), None), "WU0": (None, np.zeros(N)),
        "W_short": (np.ones(n - 1), None), "W2": (np.ones((n, 2)), None),
        "P": (np.full(n, 0.3), None), "P0": (np.r_[0.0, np.full(n - 1, 0.3)], None),
        "P>1": (np.r_[np.full(n - 1, 0.3), 1.2], None), "P<0": (np.r_[-0.2, np.full(n - 1, 0.3)], None),
        "P_short": (np.full(n - 3, 0.3), None),
        "G": (np.arange(n) % 5, None), "GU": (None, np.arange(N) % 5), "G1": (np.zeros(n), None),
        "GU1": (None, np.zeros(N)), "G_short": (np.arange(n - 1) % 4, None), "G2": (np.zeros((n, 2)), None),
    }
    out = {}
    for key, code in options.items():
        if key == "stratum_weights":
            out[key] = code
            continue
        labeled, unlabeled = values[code]
        out[key] = unlabeled if key.endswith("_unlabeled") else labeled
    return out


@pytest.mark.parametrize("case, options, argument", BAD_DESIGNS, ids=[b[0] for b in BAD_DESIGNS])
@pytest.mark.parametrize("estimator", ["mean", "ols"])
def test_bad_design_options_raise_naming_the_argument(case, options, argument, estimator):
    y, f, fu = _mean_args()
    kwargs = _resolve(options, y.size, fu.size)
    with pytest.raises(ValueError, match=re.escape(argument)):
        if estimator == "mean":
            ppinfer.Mean(y, f, fu, **kwargs)
        else:
            rng = np.random.default_rng(32)
            X = np.column_stack([np.ones(y.size), rng.normal(size=y.size)])
            Xu = np.column_stack([np.ones(fu.size), rng.normal(size=fu.size)])
            ppinfer.OLS(y, X, f, Xu, fu, **kwargs)


def test_draws_with_different_counts_in_the_two_samples():
    _, _, y, yhat, yhat_u = draws_data()
    with pytest.raises(ValueError, match="yhat_unlabeled"):
        ppinfer.Mean(y, yhat, yhat_u[:, :3])
    with pytest.raises(ValueError, match="yhat_unlabeled"):
        ppinfer.Mean(y, yhat[:, 0], yhat_u)


def test_draws_for_a_multi_column_mean():
    rng = np.random.default_rng(33)
    y = rng.normal(size=(50, 2))
    with pytest.raises(ValueError, match="yhat"):
        ppinfer.Mean(y, rng.normal(size=(50, 4)), rng.normal(size=(200, 4)))


def test_stratum_weights_with_zero_total():
    y, f, fu = _mean_args()
    kwargs = _resolve(dict(strata="S", strata_unlabeled="S"), y.size, fu.size)
    with pytest.raises(ValueError, match="stratum_weights"):
        ppinfer.Mean(y, f, fu, **kwargs, stratum_weights={"a": 0.0, "b": 0.0, "c": 0.0})


def test_stratum_weights_for_a_stratum_without_units():
    y, f, fu = _mean_args()
    kwargs = _resolve(dict(strata="S", strata_unlabeled="S"), y.size, fu.size)
    with pytest.raises(ValueError, match="stratum_weights"):
        ppinfer.Mean(y, f, fu, **kwargs, stratum_weights={"a": 1.0, "b": 1.0, "c": 1.0, "d": 7.0})


def test_unknown_design_keyword_is_a_type_error():
    y, f, fu = _mean_args()
    with pytest.raises(TypeError):
        ppinfer.Mean(y, f, fu, group=np.arange(y.size) % 3)
    data, labeled, unlabeled = _frames()
    with pytest.raises(TypeError, match="weights"):
        ppinfer.ols("y ~ x", data=labeled, unlabeled=unlabeled, yhat="pred", weight="w")
    with pytest.raises(ValueError, match="groups"):
        ppinfer.ols("y ~ x", data=labeled, unlabeled=unlabeled, yhat="pred", groups="no_such_column")


def test_formula_strata_columns_equal_array_interface():
    rng = np.random.default_rng(41)
    frames = []
    for size in (240, 2400):
        x = rng.normal(size=size)
        stratum = rng.choice(["north", "south", "west"], size)
        y = 1 + x + (stratum == "south") + rng.normal(size=size)
        frames.append(pd.DataFrame({"y": y, "x": x, "s": stratum, "pred": y + 0.5 + rng.normal(size=size)}))
    labeled, unlabeled = frames
    shares = {"north": 0.5, "south": 0.3, "west": 0.2}
    by_name = ppinfer.ols("y ~ x", data=labeled, unlabeled=unlabeled, yhat="pred", strata="s",
                          stratum_weights=shares).fit()
    X, Xu = np.column_stack([np.ones(240), labeled.x]), np.column_stack([np.ones(2400), unlabeled.x])
    by_array = ppinfer.OLS(labeled.y, X, labeled.pred, Xu, unlabeled.pred, strata=labeled.s.to_numpy(),
                           strata_unlabeled=unlabeled.s.to_numpy(), stratum_weights=shares).fit()
    np.testing.assert_allclose(by_name.params, by_array.params, rtol=1e-12)
    np.testing.assert_allclose(by_name.bse, by_array.bse, rtol=1e-12)
