"""Tests of ppinfer.synthetic.SyntheticGMM (two-step GMM with synthetic data, Byun et al. 2025).

Reference values come from closed forms written out here with NumPy, from
statsmodels (OLS with HC0, and its generic GMM optimiser on hand-written moment
conditions) and from seeded Monte Carlo replications whose tolerances are 3.5
Monte Carlo standard errors. Run as a script to print every Monte Carlo figure.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit
from statsmodels.sandbox.regression.gmm import GMM

import ppinfer
from ppinfer import PPIWarning
from ppinfer.synthetic import SyntheticGMM

NOMINAL = 0.90
Z_CRIT = stats.norm.isf((1 - NOMINAL) / 2)
BETA = np.array([1.0, 1.0, 0.5])


def linear_sample(rng, size, *, rho, K, bias=0.5, slope=1.5):
    """Y = X beta + e; K synthetic draws with a shifted level, inflated slopes and
    residuals correlated ``rho`` with e (the real residual)."""
    X = np.column_stack([np.ones(size), rng.normal(size=(size, 2))])
    e = rng.normal(size=size)
    y = X @ BETA + e
    Z = (bias + X @ (slope * BETA))[:, None] + rho * e[:, None] + np.sqrt(1 - rho**2) * rng.normal(size=(size, K))
    return X, y, Z


def mean_sample(rng, size, *, rho, K=1):
    """Y = 1 + e; synthetic z = 0.5 + 2 (rho e + sqrt(1 - rho^2) u): corr(y, z) = rho."""
    e = rng.normal(size=size)
    y = 1.0 + e
    Z = 0.5 + 2.0 * (rho * e[:, None] + np.sqrt(1 - rho**2) * rng.normal(size=(size, K)))
    return y, Z


# -- exact identities ------------------------------------------------------------------------


@pytest.mark.parametrize("empty", [[], np.zeros((0,))])
def test_no_synthetic_source_is_classical_ols_hc0(empty):
    rng = np.random.default_rng(1)
    X, y, _ = linear_sample(rng, 200, rho=0.5, K=1)
    Xu, _, _ = linear_sample(rng, 500, rho=0.5, K=1)
    if isinstance(empty, np.ndarray):
        synthetic, synthetic_unlabeled = np.zeros((200, 0)), np.zeros((500, 0))
    else:
        synthetic, synthetic_unlabeled = [], []
    res = SyntheticGMM(y, synthetic, synthetic_unlabeled, X=X, X_unlabeled=Xu).fit()
    reference = sm.OLS(y, X).fit(cov_type="HC0")
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-10)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-8)
    assert res.j_statistic is None and res.sources == []


def test_mean_with_one_source_equals_closed_form():
    """Mean, one source: the two-step estimate is ybar - c d exactly (derivation in the test)."""
    rng = np.random.default_rng(2)
    n, N = 150, 900
    y, Z = mean_sample(rng, n, rho=0.7)
    _, Zu = mean_sample(rng, N, rho=0.7)
    z, zu = Z[:, 0], Zu[:, 0]
    M = n + N
    S = np.r_[np.full(n, M / n), np.zeros(N)]
    y_all = np.r_[y, np.zeros(N)]
    z_all = np.r_[z, zu]

    def omega(theta, eta):
        g = np.column_stack([S * (y_all - theta), S * (z_all - eta), z_all - eta])
        return np.cov(g.T, bias=True)

    # first step: theta0 = ybar (labeled), eta0 = mean of z over all units
    # moments transformed by T = [[1,0,0],[0,1,0],[0,1,-1]]: (ybar - theta, zbar - eta, d), d free of
    # parameters; minimising over (theta, eta) sets the first two to their regression on d
    T = np.array([[1.0, 0, 0], [0, 1, 0], [0, 1, -1]])
    V = T @ omega(y.mean(), z_all.mean()) @ T.T
    d = z.mean() - z_all.mean()
    theta = y.mean() - V[0, 2] / V[2, 2] * d
    eta = z.mean() - V[1, 2] / V[2, 2] * d
    G = -np.array([[1.0, 0], [0, 1], [0, 1]])
    variance = np.linalg.inv(G.T @ np.linalg.inv(omega(theta, eta)) @ G)[0, 0] / M

    res = SyntheticGMM(y, z, zu).fit()
    assert res.params.iloc[0] == pytest.approx(theta, rel=1e-12, abs=1e-12)
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-9)
    # the same estimate is PPI with lambda = c N / M (d = (N / M)(zbar - zbar_unlabeled)) ...
    lam = V[0, 2] / V[2, 2] * N / M
    ppi = ppinfer.Mean(y, z, zu).fit(lam=lam)
    assert ppi.params.iloc[0] == pytest.approx(theta, rel=1e-12)
    # ... and that lambda is close to the PPI++ one, cov(y, z) / (var(z) (1 + n / N))
    assert lam == pytest.approx(ppinfer.Mean(y, z, zu).fit().lam, abs=0.03)


class _HandMoments(GMM):
    """The synthetic-GMM moment conditions written out for statsmodels' GMM optimiser."""

    def __init__(self, X_all, y_all, Z_all, n, family_mean):
        self.X_all, self.y_all, self.Z_all, self.n, self.mu = X_all, y_all, Z_all, n, family_mean
        M, p = X_all.shape
        K = Z_all.shape[1]
        super().__init__(np.zeros(M), np.zeros((M, 1)), None, k_moms=p * (1 + 2 * K), k_params=p * (1 + K))

    def momcond(self, params):
        M, p = self.X_all.shape
        K = self.Z_all.shape[1]
        labeled = np.arange(M) < self.n
        S = np.where(labeled, M / self.n, 0.0)
        blocks = params.reshape(1 + K, p)
        real = S[:, None] * self.X_all * (self.y_all - self.mu(self.X_all @ blocks[0]))[:, None]
        synthetic = [self.X_all * (self.Z_all[:, m] - self.mu(self.X_all @ blocks[1 + m]))[:, None] for m in range(K)]
        return np.column_stack([real] + [S[:, None] * s for s in synthetic] + synthetic)


def test_logit_with_two_sources_matches_statsmodels_gmm():
    rng = np.random.default_rng(3)
    n, N, beta = 400, 1600, np.array([-0.5, 1.0, 0.5])

    def draw(size):
        X = np.column_stack([np.ones(size), rng.normal(size=(size, 2))])
        eps = rng.logistic(size=size)
        y = (X @ beta + eps > 0).astype(float)
        Z = ((0.7 + X @ (1.5 * beta))[:, None] + 0.8 * eps[:, None] + 0.6 * rng.logistic(size=(size, 2)) > 0)
        return X, y, Z.astype(float)

    X, y, Z = draw(n)
    Xu, _, Zu = draw(N)
    X_all, Z_all, y_all = np.r_[X, Xu], np.r_[Z, Zu], np.r_[y, np.zeros(N)]
    # first step from statsmodels: labeled logit for theta, all-unit logits for the sources
    start = np.concatenate(
        [sm.Logit(y, X).fit(disp=0).params] + [sm.Logit(Z_all[:, m], X_all).fit(disp=0).params for m in range(2)]
    )
    model = _HandMoments(X_all, y_all, Z_all, n, expit)
    omega = np.cov(model.momcond(start).T, bias=True)
    reference = model.fit(
        start_params=start, maxiter=0, inv_weights=omega * 1e-4,
        optim_args={"gtol": 1e-13, "disp": 0, "maxiter": 5000},
    ).params
    res = SyntheticGMM(y, Z, Zu, X=X, X_unlabeled=Xu, estimand="logit").fit(draws="separate")
    np.testing.assert_allclose(res.params, reference[:3], rtol=0, atol=2e-6)
    # efficient-GMM sandwich at the estimate, with a numerical Jacobian of the moment means
    full = reference
    step = 1e-6
    jacobian = np.column_stack([
        (model.momcond(full + step * unit).mean(0) - model.momcond(full - step * unit).mean(0)) / (2 * step)
        for unit in np.eye(full.size)
    ])
    omega_final = np.cov(model.momcond(full).T, bias=True)
    covariance = np.linalg.inv(jacobian.T @ np.linalg.inv(omega_final) @ jacobian) / (n + N)
    np.testing.assert_allclose(res.bse, np.sqrt(np.diag(covariance))[:3], rtol=1e-4)
    assert res.sources == ["synthetic1", "synthetic2"]


def test_redundant_sources_are_dropped_with_a_warning():
    rng = np.random.default_rng(4)
    X, y, Z = linear_sample(rng, 200, rho=0.6, K=1)
    Xu, _, Zu = linear_sample(rng, 800, rho=0.6, K=1)
    exact, exact_u = X @ [0.2, 1.0, -1.0], Xu @ [0.2, 1.0, -1.0]  # an exact function of the design
    reference = SyntheticGMM(y, Z, Zu, X=X, X_unlabeled=Xu).fit()
    with pytest.warns(PPIWarning, match="carry no information"):
        res = SyntheticGMM(
            y, [Z[:, 0], exact, Z[:, 0]], [Zu[:, 0], exact_u, Zu[:, 0]], X=X, X_unlabeled=Xu
        ).fit(draws="separate")
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-10)
    np.testing.assert_allclose(res.bse, reference.bse, rtol=1e-8)
    assert res.sources == ["synthetic1"]


def test_names_from_pandas_and_methods():
    rng = np.random.default_rng(5)
    X, y, Z = linear_sample(rng, 120, rho=0.6, K=2)
    Xu, _, Zu = linear_sample(rng, 400, rho=0.6, K=2)
    columns = ["Intercept", "age", "dose"]
    frame = lambda a, index=None: pd.DataFrame(a, columns=columns, index=index)  # noqa: E731
    synthetic = pd.DataFrame(Z, columns=["gpt", "claude"], index=np.arange(120) + 1000)
    model = SyntheticGMM(
        pd.Series(y, name="outcome", index=synthetic.index), synthetic, pd.DataFrame(Zu, columns=["gpt", "claude"]),
        X=frame(X, synthetic.index), X_unlabeled=frame(Xu),
    )
    with pytest.warns(PPIWarning, match="6 overidentifying moments .* 120 labeled rows"):
        res = model.fit(draws="separate")
    assert list(res.params.index) == columns and res.sources == ["gpt", "claude"]
    assert "outcome" in str(res.summary()) and "Gain from K" in str(res.summary())
    classical = model.fit(method="classical")
    np.testing.assert_allclose(classical.params, sm.OLS(y, X).fit().params, rtol=1e-10)
    # naive pooling: real rows and every synthetic draw, one OLS
    stacked_X = np.r_[X, X, X, Xu, Xu]
    stacked_y = np.r_[y, Z[:, 0], Z[:, 1], Zu[:, 0], Zu[:, 1]]
    np.testing.assert_allclose(model.fit(method="naive").params, sm.OLS(stacked_y, stacked_X).fit().params, rtol=1e-9)
    with pytest.warns(PPIWarning, match="3 overidentifying moments"):
        mean_of_draws = model.fit()  # draws="mean" by default: one source, the row mean
    assert mean_of_draws.sources == ["mean of draws"]
    with pytest.warns(PPIWarning):
        reference = SyntheticGMM(y, Z.mean(1), Zu.mean(1), X=X, X_unlabeled=Xu).fit()
    np.testing.assert_allclose(mean_of_draws.params, reference.params, rtol=1e-12)


def test_missing_rows_are_dropped_jointly():
    rng = np.random.default_rng(8)
    X, y, Z = linear_sample(rng, 100, rho=0.6, K=2)
    Xu, _, Zu = linear_sample(rng, 300, rho=0.6, K=2)
    y_missing, Zu_missing = y.copy(), Zu.copy()
    y_missing[[3, 50]] = np.nan
    Zu_missing[7, 1] = np.inf
    with pytest.raises(ValueError, match="y has 2 row"):
        SyntheticGMM(y_missing, Z, Zu, X=X, X_unlabeled=Xu)
    res = SyntheticGMM(y_missing, Z, Zu_missing, X=X, X_unlabeled=Xu, missing="drop").fit(method="classical")
    keep, keep_u = np.ones(100, bool), np.ones(300, bool)
    keep[[3, 50]], keep_u[7] = False, False
    reference = SyntheticGMM(y[keep], Z[keep], Zu[keep_u], X=X[keep], X_unlabeled=Xu[keep_u]).fit(method="classical")
    np.testing.assert_allclose(res.params, reference.params, rtol=1e-12)
    assert (res.nobs, res.nobs_unlabeled) == (98, 299)
    assert "Rows dropped" in str(res.summary())


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(synthetic_unlabeled=np.zeros((50, 3))), ValueError, "same draws or sources"),
        (dict(X=None), ValueError, "needs the designs X and X_unlabeled"),
        (dict(estimand="mena"), ValueError, "Did you mean 'mean'"),
        (dict(estimand="logit"), ValueError, "y must contain only 0 and 1"),
        (dict(synthetic=np.full((40, 2), np.nan)), ValueError, r"synthetic\[0\] has 40 row"),
        (dict(synthetic=np.zeros((41, 2))), ValueError, "rows"),
        (dict(synthetic="abc"), TypeError, "synthetic must be numeric"),
    ],
)
def test_bad_input_is_named(arguments, error, match):
    rng = np.random.default_rng(6)
    X, y, Z = linear_sample(rng, 40, rho=0.5, K=2)
    Xu, _, Zu = linear_sample(rng, 50, rho=0.5, K=2)
    kwargs = dict(y=y, synthetic=Z, synthetic_unlabeled=Zu, X=X, X_unlabeled=Xu)
    kwargs.update(arguments)
    with pytest.raises(error, match=match):
        SyntheticGMM(kwargs.pop("y"), kwargs.pop("synthetic"), kwargs.pop("synthetic_unlabeled"), **kwargs)


def test_mean_rejects_designs_and_bad_fit_options():
    rng = np.random.default_rng(7)
    y, Z = mean_sample(rng, 30, rho=0.5, K=2)
    _, Zu = mean_sample(rng, 60, rho=0.5, K=2)
    with pytest.raises(ValueError, match="leave them out for estimand='mean'"):
        SyntheticGMM(y, Z, Zu, X=np.ones((30, 1)), X_unlabeled=np.ones((60, 1)), estimand="mean")
    model = SyntheticGMM(y, Z, Zu)
    with pytest.raises(ValueError, match="Did you mean 'separate'"):
        model.fit(draws="seperate")
    with pytest.raises(TypeError, match="Accepted keywords: method, draws"):
        model.fit(lam=0.5)
    with pytest.raises(ValueError, match="only 30 labeled rows"):
        SyntheticGMM(y, np.tile(Z, 20), np.tile(Zu, 20)).fit(draws="separate")
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        SyntheticGMM((y > 1).astype(float), Z, Zu, X=np.ones((30, 1)), X_unlabeled=np.ones((60, 1)), estimand="logit")


# -- Monte Carlo -------------------------------------------------------------------------------

N_LABELED, N_UNLABELED = 300, 3000
PI = N_LABELED / (N_LABELED + N_UNLABELED)
#: also fit what only the printed figures show (naive pooling of the means' cells); set when run as a script
REPORT = False


def mc_se(probability: float, reps: int) -> float:
    return float(np.sqrt(probability * (1 - probability) / reps))


def variance_ratio(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Var(a) / Var(b) over paired replications, with its Monte Carlo SE (delta method)."""
    a, b = a - a.mean(0), b - b.mean(0)
    ratio = (a**2).mean(0) / (b**2).mean(0)
    influence = a**2 / (a**2).mean(0) - b**2 / (b**2).mean(0)
    return ratio, ratio * influence.std(0, ddof=1) / np.sqrt(a.shape[0])


@functools.cache
def replicate(estimand: str, rho: float, K: int, reps: int, seed: int, draws: str = "mean") -> dict:
    """Seeded replications: estimates, coverage and J p-values of gmm, classical and (for OLS, whose
    test checks it, or with :data:`REPORT`) naive."""
    start = time.perf_counter()
    methods = ("gmm", "classical", "naive") if estimand == "ols" or REPORT else ("gmm", "classical")
    out = {m: {"params": [], "covered": []} for m in methods}
    j_pvalues = []
    truth = BETA if estimand == "ols" else np.array([1.0])
    for child in np.random.SeedSequence(seed).spawn(reps):
        rng = np.random.default_rng(child)
        if estimand == "ols":
            X, y, Z = linear_sample(rng, N_LABELED, rho=rho, K=K)
            Xu, _, Zu = linear_sample(rng, N_UNLABELED, rho=rho, K=K)
            model = SyntheticGMM(y, Z, Zu, X=X, X_unlabeled=Xu)
        else:
            y, Z = mean_sample(rng, N_LABELED, rho=rho, K=K)
            _, Zu = mean_sample(rng, N_UNLABELED, rho=rho, K=K)
            model = SyntheticGMM(y, Z, Zu)
        for method, store in out.items():
            res = model.fit(method=method, draws=draws)
            store["params"].append(res.params.to_numpy())
            store["covered"].append(np.abs(res.params.to_numpy() - truth) <= Z_CRIT * res.bse.to_numpy())
            if method == "gmm":
                j_pvalues.append(res.j_pvalue)
    result = {m: {k: np.array(v) for k, v in store.items()} for m, store in out.items()}
    result["j_pvalues"] = np.array(j_pvalues)
    result["reps"], result["seconds"] = reps, time.perf_counter() - start
    return result


#: OLS with two biased synthetic sources (level +0.5, slopes x1.5), residual correlation 0.6
OLS_CELL = dict(estimand="ols", rho=0.6, K=2, reps=800, seed=2025_0601, draws="separate")
#: means with one source of residual correlation rho (0: useless)
MEAN_CELLS = {rho: dict(estimand="mean", rho=rho, K=1, reps=1000, seed=2025_0700 + int(10 * rho)) for rho in (0.0, 0.5, 0.9)}


@pytest.mark.montecarlo
def test_coverage_with_biased_synthetic_draws():
    mc = replicate(**OLS_CELL)
    tolerance = 3.5 * mc_se(NOMINAL, mc["reps"])
    coverage = mc["gmm"]["covered"].mean(0)
    assert np.all(np.abs(coverage - NOMINAL) <= tolerance), coverage
    assert np.all(mc["naive"]["covered"].mean(0) < 0.5)  # biased synthetic draws: naive pooling misses
    # Hansen's J test of labeling at random holds its level
    rejection = np.mean(mc["j_pvalues"] <= 0.10)
    assert abs(rejection - 0.10) <= 3.5 * mc_se(0.10, mc["reps"]), rejection
    # the gain matches theory: Var ratio 1 - (1 - pi) rho_K^2, rho_K the correlation of the draws' mean
    rho_mean = 0.6 / np.sqrt(0.36 + 0.64 / 2)
    ratio, se = variance_ratio(mc["gmm"]["params"], mc["classical"]["params"])
    expected = 1 - (1 - PI) * rho_mean**2
    assert np.all(np.abs(ratio - expected) <= 3.5 * se), (ratio, expected)


@pytest.mark.montecarlo
def test_efficiency_grows_with_residual_correlation_and_never_below_classical():
    ratios = {}
    for rho, cell in MEAN_CELLS.items():
        mc = replicate(**cell)
        coverage = mc["gmm"]["covered"].mean()
        assert abs(coverage - NOMINAL) <= 3.5 * mc_se(NOMINAL, mc["reps"]), (rho, coverage)
        ratio, se = variance_ratio(mc["gmm"]["params"], mc["classical"]["params"])
        theory = 1 - (1 - PI) * rho**2
        assert abs(ratio[0] - theory) <= 3.5 * se[0], (rho, ratio, theory)
        ratios[rho] = (ratio[0], se[0])
    # useless synthetic data: not less efficient than classical beyond Monte Carlo error
    assert ratios[0.0][0] <= 1 + 3.5 * ratios[0.0][1]
    # strictly better as the correlation grows
    assert ratios[0.9][0] + 3.5 * ratios[0.9][1] < ratios[0.5][0] - 3.5 * ratios[0.5][1]
    assert ratios[0.5][0] + 3.5 * ratios[0.5][1] < ratios[0.0][0]


if __name__ == "__main__":
    REPORT = True
    for label, cell in [("ols", OLS_CELL)] + [(f"mean rho={rho}", c) for rho, c in MEAN_CELLS.items()]:
        mc = replicate(**cell)
        ratio, se = variance_ratio(mc["gmm"]["params"], mc["classical"]["params"])
        print(f"== {label}: {mc['reps']} reps, {mc['seconds']:.1f} s")
        for method in ("gmm", "classical", "naive"):
            print(f"  {method:9s} coverage {np.round(mc[method]['covered'].mean(0), 3)}")
        print(f"  Var(gmm)/Var(classical) {np.round(ratio, 4)} (MC SE {np.round(se, 4)})")
        print(f"  J rejection at 0.10: {np.mean(mc['j_pvalues'] <= 0.10):.3f}")
