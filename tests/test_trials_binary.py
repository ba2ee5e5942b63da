"""Binary and count endpoints: standardised contrasts, their variances, and their validity.

Reference values: statsmodels' GLM fits, standardised by hand (g-computation) for
the point estimates; the influence-function variance computed here with NumPy from
statsmodels' per-row scores and Hessian; Ye, Bannick, Yi & Shao's (2023) published
variance formula (asymptotically equal); Ge et al.'s (2011) conditional variance
from statsmodels' HC0 covariance; the textbook closed forms for unadjusted
proportions (Katz's log risk ratio and Woolf's log odds ratio variances); a
nonparametric bootstrap; and seeded simulations, whose true marginal risks come
from Gauss-Hermite quadrature. Monte Carlo tolerances are 3.5 Monte Carlo
standard errors.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit

from ppinfer.treatment import TreatmentEffect

CONTRASTS = ("diff", "rr", "or", "logrr", "logor")
Z = stats.norm.isf(0.025)


def contrast_value(name, p1, p0):
    if name == "diff":
        return p1 - p0
    if name in ("rr", "logrr"):
        return p1 / p0 if name == "rr" else np.log(p1 / p0)
    odds_ratio = p1 / (1 - p1) / (p0 / (1 - p0))
    return odds_ratio if name == "or" else np.log(odds_ratio)


def contrast_gradient(name, p1, p0):
    """(d/dp1, d/dp0) of each contrast, written out by hand."""
    odds_ratio = p1 / (1 - p1) / (p0 / (1 - p0))
    return {
        "diff": (1.0, -1.0),
        "rr": (1 / p0, -p1 / p0**2),
        "logrr": (1 / p1, -1 / p0),
        "or": (odds_ratio / (p1 * (1 - p1)), -odds_ratio / (p0 * (1 - p0))),
        "logor": (1 / (p1 * (1 - p1)), -1 / (p0 * (1 - p0))),
    }[name]


# -- simulated trials ------------------------------------------------------------------------------
BASELINE, SLOPES = -0.8, np.array([1.0, 0.5])
STRATUM_EFFECTS = np.array([-1.5, 0.0, 1.5])


def binary_trial(rng, n, allocation=0.5, log_or=-0.5, score="good", stratified=False):
    """Logistic outcomes in two covariates (and three strata); the score is the true control risk,
    a useless draw, or absent. With ``stratified``, arms are assigned by permuted blocks of 6
    within strata (4:2 for 2:1 allocation), else by a permutation of the whole sample."""
    X = rng.normal(size=(n, 2))
    strata = rng.integers(0, 3, size=n)
    linear = BASELINE + X @ SLOPES + (STRATUM_EFFECTS[strata] if stratified else 0.0)
    if stratified:
        A = np.empty(n)
        treated_per_block = int(round(6 * allocation))
        block = np.r_[np.ones(treated_per_block), np.zeros(6 - treated_per_block)]
        for stratum in range(3):
            members = np.flatnonzero(strata == stratum)
            blocks = np.concatenate([rng.permutation(block) for _ in range(len(members) // 6 + 1)])
            A[members] = blocks[: len(members)]
    else:
        n1 = int(round(n * allocation))
        A = rng.permutation(np.r_[np.ones(n1), np.zeros(n - n1)])
    y = rng.binomial(1, expit(linear + log_or * A)).astype(float)
    m = expit(linear) if score == "good" else rng.uniform(0.1, 0.5, size=n)
    return y, A, X, m, strata


@functools.cache
def true_risks(log_or, stratified=False):
    """Marginal risks of control and treated: E[expit(eta)] by Gauss-Hermite quadrature over the
    normal linear predictor (and the three equally likely strata)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    scale = np.sqrt(SLOPES @ SLOPES)
    shifts = STRATUM_EFFECTS if stratified else np.zeros(1)
    risks = []
    for arm in (0, 1):
        values = [weights @ expit(BASELINE + shift + log_or * arm + scale * nodes) / weights.sum() for shift in shifts]
        risks.append(np.mean(values))
    return np.array(risks)


def design_for(method, A, X, m):
    """The working model's design as statsmodels would be given it."""
    if method == "ancova":
        return np.column_stack([np.ones_like(A), A, X])
    if method == "procova":
        return np.column_stack([np.ones_like(A), A, m, X])
    centred = X - X.mean(axis=0)
    return np.column_stack([np.ones_like(A), A, centred, centred * A[:, None]])


def hand_g_computation(method, y, A, X, m, family=sm.families.Binomial()):
    """statsmodels GLM, standardised by hand: (p0, p1), the fit and the counterfactual designs."""
    fit = sm.GLM(y, design_for(method, A, X, m), family=family).fit()
    designs = [design_for(method, np.full_like(A, arm), X, m) for arm in (0, 1)]
    if method == "lin":  # centring at the observed mean, whatever the arm
        centred = X - X.mean(axis=0)
        designs = [np.column_stack([np.ones_like(A), np.full_like(A, arm), centred, centred * arm]) for arm in (0, 1)]
    risks = np.array([fit.predict(design).mean() for design in designs])
    return risks, fit, designs


# -- point estimates and variances against statsmodels --------------------------------------------
@pytest.mark.parametrize("method", ["ancova", "lin", "procova"])
def test_standardised_contrasts_equal_hand_g_computation(method):
    rng = np.random.default_rng(11)
    y, A, X, m, _ = binary_trial(rng, 500, allocation=0.6)
    risks, _, _ = hand_g_computation(method, y, A, X, m)
    te = TreatmentEffect(y, A, X=X, prognostic=m)
    assert te.family == "binomial"
    for contrast in CONTRASTS:
        res = te.fit(method=method, contrast=contrast)
        assert res.params.iloc[0] == pytest.approx(contrast_value(contrast, risks[1], risks[0]), abs=1e-10)
    np.testing.assert_allclose(res.arm_means["estimate"], risks, atol=1e-10)
    assert list(res.arm_means.index) == ["control", "treated"]


def hand_influence_rows(fit, designs, family_derivative, scale_rows=None):
    """Rows of the joint M-estimator of the GLM coefficients and the standardised risks, from
    statsmodels' per-row scores and Hessian: G_a' H^-1 s_i + (mu_i(a) - p_a)."""
    params = fit.params
    n = fit.model.exog.shape[0]
    scores = fit.model.score_obs(params)
    if scale_rows is not None:
        scores = scores * scale_rows[:, None]
    mean_hessian = -fit.model.hessian(params) / n
    rows = []
    for design in designs:
        eta = design @ params
        predictions = fit.model.family.link.inverse(eta)
        slope = family_derivative(predictions) @ design / n
        rows.append(scores @ np.linalg.solve(mean_hessian, slope) + predictions - predictions.mean())
    return np.column_stack(rows)


@pytest.mark.parametrize("method", ["ancova", "lin", "procova"])
def test_standardised_variance_equals_hand_sandwich(method):
    rng = np.random.default_rng(12)
    y, A, X, m, _ = binary_trial(rng, 400, allocation=2 / 3)
    risks, fit, designs = hand_g_computation(method, y, A, X, m)
    rows = hand_influence_rows(fit, designs, lambda p: p * (1 - p))
    te = TreatmentEffect(y, A, X=X, prognostic=m)
    for contrast in CONTRASTS:
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]  # (d/dp0, d/dp1)
        variance = np.sum((rows @ gradient) ** 2) / len(y) ** 2
        res = te.fit(method=method, contrast=contrast, cov_type="HC0")
        assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-8), contrast


def test_hc2_uses_the_weighted_hat_matrix():
    rng = np.random.default_rng(13)
    y, A, X, m, _ = binary_trial(rng, 300)
    risks, fit, designs = hand_g_computation("ancova", y, A, X, m)
    design = fit.model.exog
    weights = fit.fittedvalues * (1 - fit.fittedvalues)
    root = design * np.sqrt(weights)[:, None]
    leverage = np.einsum("ij,ij->i", root @ np.linalg.inv(root.T @ root), root)
    # the residual part (the scores) is rescaled by 1 / sqrt(1 - h); the covariates' part is not
    rows = hand_influence_rows(fit, designs, lambda p: p * (1 - p), scale_rows=1 / np.sqrt(1 - leverage))
    variance = np.sum((rows[:, 1] - rows[:, 0]) ** 2) / len(y) ** 2
    res = TreatmentEffect(y, A, X=X).fit(method="ancova", cov_type="HC2")
    assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-8)
    assert res.bse.iloc[0] > TreatmentEffect(y, A, X=X).fit(method="ancova", cov_type="HC0").bse.iloc[0]


def test_conditional_variance_is_ge_et_al():
    # Ge et al. (2011) (beeca's "Ge" with HC0): the delta method on statsmodels' HC0 covariance
    # of the working model's coefficients, leaving out the covariates' variation
    rng = np.random.default_rng(14)
    y, A, X, m, _ = binary_trial(rng, 400)
    risks, fit, designs = hand_g_computation("lin", y, A, X, m)
    robust = sm.GLM(y, fit.model.exog, family=sm.families.Binomial()).fit(cov_type="HC0").cov_params()
    slopes = np.column_stack([(fit.predict(d) * (1 - fit.predict(d))) @ d / len(y) for d in designs])
    te = TreatmentEffect(y, A, X=X, lin_variance="conditional")
    for contrast in ("diff", "logor"):
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]
        ge = gradient @ slopes.T @ robust @ slopes @ gradient
        assert te.fit(method="lin", contrast=contrast, cov_type="HC0").bse.iloc[0] ** 2 == pytest.approx(ge, rel=1e-8)


def test_variance_agrees_with_ye_et_al_formula_in_large_samples():
    # Ye et al. (2023): V_aa = var_a(Y - mu_a)/pi_a + 2 cov_a(Y, mu_a) - var(mu_a),
    # V_10 = cov_1(Y, mu_0) + cov_0(Y, mu_1) - cov(mu_1, mu_0), all over n; a different plug-in
    # of the same asymptotic variance
    rng = np.random.default_rng(15)
    y, A, X, m, _ = binary_trial(rng, 6000, allocation=2 / 3)
    risks, fit, designs = hand_g_computation("ancova", y, A, X, m)
    mu = [fit.predict(d) for d in designs]
    arm = [A == 0, A == 1]
    pi = [np.mean(a) for a in arm]
    cov = lambda u, v, sel=slice(None): np.cov(u[sel], v[sel], ddof=0)[0, 1]  # noqa: E731
    V = np.empty((2, 2))
    for a in (0, 1):
        V[a, a] = np.var((y - mu[a])[arm[a]]) / pi[a] + 2 * cov(y, mu[a], arm[a]) - np.var(mu[a])
    V[0, 1] = V[1, 0] = cov(y, mu[0], arm[1]) + cov(y, mu[1], arm[0]) - cov(mu[1], mu[0])
    te = TreatmentEffect(y, A, X=X)
    for contrast in ("diff", "logrr", "logor"):
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]
        ye = gradient @ V @ gradient / len(y)
        ours = te.fit(method="ancova", contrast=contrast, cov_type="HC0").bse.iloc[0] ** 2
        assert ours == pytest.approx(ye, rel=0.02), contrast


def test_unadjusted_proportions_have_the_textbook_variances():
    rng = np.random.default_rng(16)
    y, A, _, _, _ = binary_trial(rng, 250, allocation=0.6)
    events = np.array([y[A == 0].sum(), y[A == 1].sum()])
    sizes = np.array([(A == 0).sum(), (A == 1).sum()])
    p = events / sizes
    te = TreatmentEffect(y, A)
    hc0 = {
        "diff": p[1] * (1 - p[1]) / sizes[1] + p[0] * (1 - p[0]) / sizes[0],
        "logrr": (1 - p[1]) / (sizes[1] * p[1]) + (1 - p[0]) / (sizes[0] * p[0]),  # Katz
        "logor": 1 / events[1] + 1 / (sizes[1] - events[1]) + 1 / events[0] + 1 / (sizes[0] - events[0]),  # Woolf
    }
    for contrast, variance in hc0.items():
        res = te.fit(method="dm", contrast=contrast, cov_type="HC0")
        assert res.params.iloc[0] == pytest.approx(contrast_value(contrast, p[1], p[0]), abs=1e-12)
        assert res.bse.iloc[0] ** 2 == pytest.approx(variance, rel=1e-12)
    # HC2: the unbiased variances p (1 - p) n / (n - 1) per arm
    neyman = p[1] * (1 - p[1]) / (sizes[1] - 1) + p[0] * (1 - p[0]) / (sizes[0] - 1)
    assert te.fit(method="dm").bse.iloc[0] ** 2 == pytest.approx(neyman, rel=1e-12)
    # ratios are tested against 1
    rr = te.fit(method="dm", contrast="rr")
    assert rr.pvalues.iloc[0] == pytest.approx(2 * stats.norm.sf(abs(rr.params.iloc[0] - 1) / rr.bse.iloc[0]))
    assert rr.test(null=0.0)["null"].iloc[0] == 0.0
    assert "of 1 (no effect)" in rr.summary().as_text()


def test_ppct_and_aipw_with_binary_outcomes_equal_closed_forms():
    rng = np.random.default_rng(17)
    y, A, X, m, _ = binary_trial(rng, 300)
    te = TreatmentEffect(y, A, prognostic=m, propensity=0.5)
    n = len(y)
    # AIPW with known propensity: p_a = mean(1{A=a}(y - m)/pi_a + m)
    terms = np.column_stack([(1 - A) * (y - m) / 0.5 + m, A * (y - m) / 0.5 + m])
    risks = terms.mean(axis=0)
    for contrast in ("diff", "logrr"):
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]
        phi = (terms - risks) @ gradient
        res = te.fit(method="aipw", contrast=contrast, cov_type="HC0")
        assert res.params.iloc[0] == pytest.approx(contrast_value(contrast, risks[1], risks[0]), abs=1e-12)
        assert res.bse.iloc[0] ** 2 == pytest.approx(np.sum(phi**2) / n**2, rel=1e-10)
    # PPCT at a fixed lambda: p_a = mean_a(y - lam m) + lam mean(m)
    lam = 0.7
    risks = np.array([(y - lam * m)[A == a].mean() + lam * m.mean() for a in (0, 1)])
    rows = np.column_stack([
        (A == a) * (y - lam * m - (y - lam * m)[A == a].mean()) / np.mean(A == a) + lam * (m - m.mean())
        for a in (0, 1)
    ])
    for contrast in ("diff", "logor"):
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]
        res = te.fit(method="ppct", contrast=contrast, lam=lam, cov_type="HC0")
        assert res.params.iloc[0] == pytest.approx(contrast_value(contrast, risks[1], risks[0]), abs=1e-12)
        assert res.bse.iloc[0] ** 2 == pytest.approx(np.sum((rows @ gradient) ** 2) / n**2, rel=1e-10)


def test_tuned_ppct_minimises_the_contrasts_variance():
    rng = np.random.default_rng(18)
    y, A, X, m, _ = binary_trial(rng, 400)
    te = TreatmentEffect(y, A, prognostic=m)
    for contrast in ("diff", "logor"):
        tuned = te.fit(method="ppct", contrast=contrast)
        assert 0.0 < tuned.lam < 1.0
        grid = [te.fit(method="ppct", contrast=contrast, lam=lam).bse.iloc[0] for lam in np.linspace(0, 1, 41)]
        # the tuning uses the gradient at the unadjusted risks: within a hair of the grid's best
        assert tuned.bse.iloc[0] <= min(grid) * (1 + 1e-3)


def test_poisson_working_model_for_counts():
    rng = np.random.default_rng(19)
    n = 400
    X = rng.normal(size=(n, 2))
    A = rng.permutation(np.repeat([0.0, 1.0], n // 2))
    counts = rng.poisson(np.exp(0.3 + 0.5 * X[:, 0] - 0.3 * A)).astype(float)
    te = TreatmentEffect(counts, A, X=X, family="poisson")
    risks, fit, designs = hand_g_computation("ancova", counts, A, X, None, family=sm.families.Poisson())
    rows = hand_influence_rows(fit, designs, lambda mu: mu)
    for contrast in ("diff", "rr", "logrr"):
        res = te.fit(method="ancova", contrast=contrast, cov_type="HC0")
        gradient = np.array(contrast_gradient(contrast, risks[1], risks[0]))[::-1]
        assert res.params.iloc[0] == pytest.approx(contrast_value(contrast, risks[1], risks[0]), abs=1e-10)
        assert res.bse.iloc[0] ** 2 == pytest.approx(np.sum((rows @ gradient) ** 2) / n**2, rel=1e-8)
    with pytest.raises(ValueError, match="contrast='or' \\(odds ratio\\) needs arm means strictly between 0 and 1"):
        te.fit(method="ancova", contrast="or")


def test_family_choice_and_bad_family():
    rng = np.random.default_rng(20)
    y, A, X, m, _ = binary_trial(rng, 200)
    assert TreatmentEffect(y, A, X=X).family == "binomial"
    linear = TreatmentEffect(y, A, X=X, family="gaussian")
    reference = sm.OLS(y, np.column_stack([np.ones_like(y), A, X])).fit(cov_type="HC2")
    assert linear.fit(method="ancova").params.iloc[0] == pytest.approx(reference.params[1], abs=1e-10)
    assert "logistic, standardised" in TreatmentEffect(y, A, X=X).fit(method="ancova").summary().as_text()
    with pytest.raises(ValueError, match="y must contain only 0 and 1"):
        TreatmentEffect(y + 0.5, A, X=X, family="binomial")
    with pytest.raises(ValueError, match="family='logistik' is not valid.*Did you mean 'logistic'"):
        TreatmentEffect(y, A, X=X, family="logistik")
    with pytest.raises(ValueError, match="contrast='odds' is not valid"):
        TreatmentEffect(y, A, X=X).fit(contrast="odds")


def test_bootstrap_variance_agrees():
    # the nonparametric bootstrap of the hand g-computation (statsmodels) against the
    # influence-function variance; the bootstrap variance has Monte Carlo SE ~ V sqrt(2 / B)
    rng = np.random.default_rng(21)
    y, A, X, m, _ = binary_trial(rng, 400)
    boot = np.random.default_rng(22)
    draws = []
    replicates = 400
    for _ in range(replicates):
        rows = boot.integers(0, len(y), len(y))
        risks, _, _ = hand_g_computation("ancova", y[rows], A[rows], X[rows], m[rows])
        draws.append([risks[1] - risks[0], np.log(risks[1] / (1 - risks[1]) / (risks[0] / (1 - risks[0])))])
    bootstrap = np.var(np.array(draws), axis=0, ddof=1)
    te = TreatmentEffect(y, A, X=X)
    for k, contrast in enumerate(("diff", "logor")):
        variance = te.fit(method="ancova", contrast=contrast, cov_type="HC0").bse.iloc[0] ** 2
        assert abs(bootstrap[k] / variance - 1) <= 3.5 * np.sqrt(2 / replicates), contrast


# -- Monte Carlo validity ---------------------------------------------------------------------------
METHODS = ("dm", "ancova", "lin", "procova", "ppct", "aipw")
#: 500 replications per scenario: 3.5 MC SE = 0.034 on a 5% miss rate, 0.22 on a variance ratio
SCENARIOS = {
    # coverage of a true effect, 1:1, the score is the true control risk
    "1:1, good score, log OR -0.5": dict(n=400, allocation=0.5, log_or=-0.5, score="good", stratified=False,
                                         seed=201, reps=500, contrasts=CONTRASTS),
    # type I error, 2:1, a score unrelated to the outcome (a ratio is 1 exactly when its log is 0)
    "2:1, useless score, no effect": dict(n=300, allocation=2 / 3, log_or=0.0, score="useless", stratified=False,
                                          seed=202, reps=500, contrasts=("diff", "logrr", "logor")),
}


@functools.cache
def binary_replications(name):
    spec = SCENARIOS[name]
    rng = np.random.default_rng(spec["seed"])
    reps = spec["reps"]
    estimates = {(m, c): np.empty((reps, 2)) for m in METHODS for c in spec["contrasts"]}
    for r in range(reps):
        y, A, X, m, strata = binary_trial(rng, spec["n"], spec["allocation"], spec["log_or"], spec["score"],
                                          spec["stratified"])
        te = TreatmentEffect(y, A, X=X, prognostic=m, strata=strata if spec["stratified"] else None)
        for method in METHODS:
            for contrast in spec["contrasts"]:
                res = te.fit(method=method, contrast=contrast)
                estimates[method, contrast][r] = res.params.iloc[0], res.bse.iloc[0]
    return estimates


def truths(name):
    spec = SCENARIOS[name]
    p0, p1 = true_risks(spec["log_or"], spec["stratified"])
    return {contrast: contrast_value(contrast, p1, p0) for contrast in CONTRASTS}


def miss_rate(draws, truth):
    return np.mean(np.abs(draws[:, 0] - truth) > Z * draws[:, 1])


def check_coverage(name):
    draws, truth = binary_replications(name), truths(name)
    reps = SCENARIOS[name]["reps"]
    tolerance = 3.5 * np.sqrt(0.05 * 0.95 / reps)
    for (method, contrast), values in draws.items():
        missed = miss_rate(values, truth[contrast])
        assert abs(missed - 0.05) <= tolerance, (name, method, contrast, missed)
    return draws


def asymptotic_variances(log_or, allocation):
    """Asymptotic n x variance of the risk difference, unadjusted and adjusted for the true
    risk (a correct working model): sum_a E[mu_a (1 - mu_a)] / pi_a + Var(mu_1 - mu_0) against
    sum_a p_a (1 - p_a) / pi_a (Ye et al. 2023), by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    eta = BASELINE + np.sqrt(SLOPES @ SLOPES) * nodes
    mu0, mu1 = expit(eta), expit(eta + log_or)
    p0, p1 = weights @ mu0, weights @ mu1
    pi = np.array([1 - allocation, allocation])
    unadjusted = p1 * (1 - p1) / pi[1] + p0 * (1 - p0) / pi[0]
    difference = mu1 - mu0
    adjusted = (weights @ (mu1 * (1 - mu1)) / pi[1] + weights @ (mu0 * (1 - mu0)) / pi[0]
                + weights @ (difference - weights @ difference) ** 2)
    return unadjusted, adjusted


# one test per set of replications (they are cached per process, and xdist may run tests of a
# module in different processes)
@pytest.mark.montecarlo
def test_good_score_every_contrast_and_method_covers_with_accurate_variances_and_theoretical_gain():
    name = "1:1, good score, log OR -0.5"
    draws = check_coverage(name)
    reps, n = SCENARIOS[name]["reps"], SCENARIOS[name]["n"]
    # mean estimated variance / variance of the estimates over replications (log odds ratio);
    # the ratio's Monte Carlo SE is about sqrt(2 / reps)
    for method in METHODS:
        values = draws[method, "logor"]
        ratio = np.mean(values[:, 1] ** 2) / np.var(values[:, 0], ddof=1)
        assert abs(ratio - 1) <= 3.5 * np.sqrt(2 / reps), (method, ratio)
    # the efficiency gain of adjusting for the covariates (a correct working model) against theory
    unadjusted, adjusted = asymptotic_variances(-0.5, 0.5)
    theory = unadjusted / adjusted
    for method in ("ancova", "procova"):
        ratio, se = variance_ratio(draws["dm", "diff"][:, 0], draws[method, "diff"][:, 0])
        # finite-sample allowance 3/n for the fitted coefficients
        assert abs(ratio - theory) <= 3.5 * se + 3 * theory / n, (method, ratio, theory, se)


@pytest.mark.montecarlo
def test_useless_score_type_one_error_of_every_contrast_and_method():
    draws = check_coverage("2:1, useless score, no effect")
    # with a useless score PPCT keeps the unadjusted precision (its lambda is near 0)
    ratio, se = variance_ratio(draws["dm", "diff"][:, 0], draws["ppct", "diff"][:, 0])
    assert ratio >= 1 - 3.5 * se, (ratio, se)


def variance_ratio(reference, other):
    """Var(reference) / Var(other) over paired replications, with its delta-method Monte Carlo SE."""
    a, b = reference - reference.mean(), other - other.mean()
    ratio = np.mean(a**2) / np.mean(b**2)
    return ratio, ratio * np.std(a**2 / np.mean(a**2) - b**2 / np.mean(b**2), ddof=1) / np.sqrt(len(a))


if __name__ == "__main__":
    # every figure the Monte Carlo tests check: python tests/test_trials_binary.py
    for name in SCENARIOS:
        draws, truth = binary_replications(name), truths(name)
        reps = SCENARIOS[name]["reps"]
        print(f"{name} ({reps} reps): miss rate of the true value, nominal 0.05, MC SE {np.sqrt(.0475 / reps):.4f}")
        table = pd.DataFrame({c: {m: miss_rate(draws[m, c], truth[c]) for m in METHODS}
                              for c in SCENARIOS[name]["contrasts"]})
        print(table.round(4))
        ratios = {m: np.mean(draws[m, "logor"][:, 1] ** 2) / np.var(draws[m, "logor"][:, 0], ddof=1) for m in METHODS}
        print("  mean estimated / simulated variance (log OR):", {m: round(v, 3) for m, v in ratios.items()})
        print("  relative efficiency vs dm (risk difference):",
              {m: round(np.var(draws["dm", "diff"][:, 0]) / np.var(draws[m, "diff"][:, 0]), 3) for m in METHODS})
    unadjusted, adjusted = asymptotic_variances(-0.5, 0.5)
    print(f"theory (correct working model): {unadjusted / adjusted:.3f}")
