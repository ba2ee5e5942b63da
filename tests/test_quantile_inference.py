"""Quantile intervals, tests and degrees of freedom under sampling designs, exactly.

References are computed without the package's pair sums: the design variance of the
rectified CDF at every breakpoint by brute force (:mod:`quantile_reference`), the
tuned lambda by the mean's formula on those blocks, the degrees of freedom by hand
(PSUs minus strata, less one for a tuned lambda, Welch-Satterthwaite for independent
samples), Student's t quantiles from scipy, and the interval as the set of values the
two one-sided tests accept, found by testing every breakpoint and every gap.
"""

from __future__ import annotations

import doctest
import re
import warnings

import numpy as np
import pytest
from quantile_reference import inverted_interval, linearized, point_estimate, value_and_variance
from scipy import stats

import ppinfer

N_LABELED, N_UNLABELED, LEVELS = 96, 300, [0.3, 0.5, 0.8]


@pytest.fixture(scope="module")
def survey():
    """Three strata; labeled PSUs 5 per stratum, unlabeled 8; weights vary by stratum and
    unit; outcomes in tenths (ties); a random effect per PSU."""
    rng = np.random.default_rng(21)
    n, N = N_LABELED, N_UNLABELED
    s, su = np.arange(n) % 3, np.arange(N) % 3
    g = s * 100 + rng.integers(0, 5, n)
    gu = su * 100 + 50 + rng.integers(0, 8, N)
    shared = su * 100 + rng.integers(0, 7, N)  # first-phase PSUs of the unlabeled units (0-4 hold labeled ones)
    effect = rng.normal(size=400)
    y_all = np.round(1.0 + 0.8 * effect[np.r_[g, gu]] + 0.5 * s.max() + rng.normal(size=n + N), 1)
    f_all = np.round(0.3 + 0.8 * y_all + 0.6 * rng.normal(size=n + N), 1)
    return {
        "y": y_all[:n], "f": f_all[:n], "fu": f_all[n:], "s": s, "su": su, "g": g, "gu": gu, "shared": shared,
        "w": (1.0 + s) * rng.uniform(0.8, 1.2, n), "wu": (1.0 + su) * rng.uniform(0.8, 1.2, N),
        "pi": rng.uniform(0.25, 0.9, n),
    }


def breakpoints(d):
    return np.unique(np.concatenate([d["y"], d["f"], d["fu"]]))


def quiet(build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppinfer.FewClustersWarning)
        return build()


def test_t_interval_with_welch_satterthwaite_df_in_a_stratified_cluster_design(survey):
    """Independent samples, strata + PSUs + weights, CR1, lam = 0.4: per level the t
    critical value with df = (A + B)^2 / (A^2 / (G_l - H) + B^2 / (G_u - H)), A and B the
    labeled and unlabeled parts of s2 at the point estimate; the interval inverts the test."""
    d, lam, alpha = survey, 0.4, 0.1
    keywords = dict(weights=d["w"], weights_unlabeled=d["wu"], clusters=d["g"], clusters_unlabeled=d["gu"],
                    strata=d["s"], strata_unlabeled=d["su"])
    result = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=LEVELS, **keywords)).fit(lam=lam, cov_type="CR1")
    t = breakpoints(d)
    pieces = linearized(t, d["y"], d["f"], d["fu"], cov_type="CR1", weights=d["w"], weights_unlabeled=d["wu"],
                        units=d["g"], units_unlabeled=d["gu"], strata=d["s"], strata_unlabeled=d["su"])
    value, variance, labeled, unlabeled = value_and_variance(pieces, lam)
    df_labeled, df_unlabeled = 15 - 3, 24 - 3
    interval = result.conf_int(alpha=alpha)
    for k, q in enumerate(LEVELS):
        point = point_estimate(t, value, q)
        at = np.searchsorted(t, point)
        A, B = labeled[at], unlabeled[at]
        df = (A + B) ** 2 / (A**2 / df_labeled + B**2 / df_unlabeled)
        assert result.df.iloc[k] == pytest.approx(df, rel=1e-10)
        assert result.params.iloc[k] == point
        lower, upper = inverted_interval(t, value, variance, q, stats.t.isf(alpha / 2, df))
        assert tuple(interval.iloc[k]) == (lower, upper), q
        # interval-implied standard error: the 95% width over twice the t quantile used
        lower95, upper95 = inverted_interval(t, value, variance, q, stats.t.isf(0.025, df))
        assert result.bse.iloc[k] == pytest.approx((upper95 - lower95) / (2 * stats.t.isf(0.025, df)), rel=1e-12)
    assert result.lam.tolist() == [lam] * 3


def test_tuned_lambda_and_t_interval_in_a_two_phase_clustered_survey(survey):
    """Two phases, clustered and stratified first phase: PPI++ tunes lambda at the lambda = 1
    point estimate with the mean's formula C / (V_f + V_fu) on the design (CR2) blocks;
    df = PSUs holding labeled units - strata - 1 (one design, one lambda tuned), as for a mean."""
    d, alpha = survey, 0.1
    # a Design object: one lambda by default (the strata keywords ask for one per stratum)
    design = ppinfer.Design(label_prob=d["pi"], clusters=d["g"], clusters_unlabeled=d["shared"], strata=d["s"],
                            strata_unlabeled=d["su"], weights=d["w"], weights_unlabeled=d["wu"])
    model = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=LEVELS, design=design))
    result = model.fit()
    assert result.cov_type == "CR2"
    t = breakpoints(d)
    pieces = linearized(t, d["y"], d["f"], d["fu"], cov_type="CR2", weights=d["w"], weights_unlabeled=d["wu"],
                        units=d["g"], units_unlabeled=d["shared"], strata=d["s"], strata_unlabeled=d["su"],
                        label_prob=d["pi"])
    df = np.unique(d["g"]).size - 3 - 1
    interval = result.conf_int(alpha=alpha)
    for k, q in enumerate(LEVELS):
        start = point_estimate(t, value_and_variance(pieces, 1.0)[0], q)
        _, _, var_y, cov_yf, var_f, var_fu = pieces[np.searchsorted(t, start)]
        lam = float(np.clip(cov_yf / (var_f + var_fu), 0.0, 1.0))
        assert result.lam.iloc[k] == pytest.approx(lam, rel=1e-10)
        value, variance, _, _ = value_and_variance(pieces, lam)
        assert result.params.iloc[k] == point_estimate(t, value, q)
        assert result.df.iloc[k] == df
        assert tuple(interval.iloc[k]) == inverted_interval(t, value, variance, q, stats.t.isf(alpha / 2, df))
    # the p-values refer the same statistics to the same t: the ends are accepted, beyond is not
    lower, upper = interval.iloc[1]
    pvalues = [result.test(null=v)["pvalue"].iloc[1] for v in (lower, upper, upper + 0.05)]
    assert pvalues[0] > alpha and pvalues[1] > alpha and pvalues[2] <= alpha


def test_use_t_false_gives_normal_critical_values(survey):
    d = survey
    keywords = dict(weights=d["w"], weights_unlabeled=d["wu"], strata=d["s"], strata_unlabeled=d["su"])
    result = ppinfer.Quantile(d["y"], d["f"], d["fu"], q=0.5, **keywords).fit(method="ppi", cov_type="HC3", use_t=False)
    assert result.df is None and not result.use_t
    t = breakpoints(d)
    pieces = linearized(t, d["y"], d["f"], d["fu"], cov_type="HC3", weights=d["w"], weights_unlabeled=d["wu"],
                        strata=d["s"], strata_unlabeled=d["su"])
    value, variance, _, _ = value_and_variance(pieces, 1.0)
    assert tuple(result.conf_int().iloc[0]) == inverted_interval(t, value, variance, 0.5, stats.norm.isf(0.025))
    assert "P>|z|" in result.summary().as_text()


@pytest.mark.parametrize("method", ["classical", "ppi"])
def test_degrees_of_freedom_of_the_labeled_part(survey, method):
    """Classical: n - 1, or PSUs minus strata (CR1), or for CR2 with clusters Bell and
    McCaffrey's degrees of freedom of a mean (those of ppinfer.Mean on any outcome with
    the same weights and PSUs); equal-size PSUs without weights or strata give G - 1."""
    d = survey
    n = N_LABELED
    plain = ppinfer.Quantile(d["y"], d["f"], d["fu"]).fit(method="classical")
    assert plain.df.iloc[0] == n - 1 and plain.cov_type == "HC2"
    stratified = ppinfer.Quantile(d["y"], d["f"], d["fu"], strata=d["s"], strata_unlabeled=d["su"], weights=d["w"],
                                  weights_unlabeled=d["wu"]).fit(method="classical")
    assert stratified.df.iloc[0] == n - 3
    keywords = dict(clusters=d["g"], clusters_unlabeled=d["gu"], weights=d["w"], weights_unlabeled=d["wu"])
    model = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], **keywords))
    assert model.fit(method="classical", cov_type="CR1").df.iloc[0] == 15 - 1
    mean = quiet(lambda: ppinfer.Mean(d["y"], d["f"], d["fu"], **keywords))
    expected = mean.fit(method="classical").df.iloc[0]
    assert model.fit(method="classical").df.iloc[0] == pytest.approx(expected, rel=1e-12)
    assert expected < 15 - 1  # unequal PSUs and weights: fewer than G - 1
    equal = np.repeat(np.arange(12), 8)
    balanced = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], clusters=equal))
    assert balanced.fit(method="classical").df.iloc[0] == pytest.approx(11, rel=1e-10)
    if method == "ppi":
        # lambda fixed: nothing tuned; independent samples: Welch-Satterthwaite with N - 1 above G - 1
        res = balanced.fit(method="ppi")
        assert 11 <= res.df.iloc[0] <= 11 + N_UNLABELED - 1


def test_summary_shows_the_design_and_the_covariance_type(survey):
    d = survey
    keywords = dict(weights=d["w"], weights_unlabeled=d["wu"], clusters=d["g"], clusters_unlabeled=d["gu"],
                    strata=d["s"], strata_unlabeled=d["su"], fpc=np.full(N_LABELED, 40.0),
                    fpc_unlabeled=np.full(N_UNLABELED, 60.0))
    text = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=[0.25, 0.5], **keywords)).fit().summary().as_text()
    for line in ("Covariance Type:", "CR2", "Covariance:", "cluster (39 clusters)", "Strata:", "PSUs (lab / unl):",
                 "15 / 24", "Weights (lab / unl):", "Finite pop. corr.:", "Df (t):", "P>|t|", "Lambda by stratum"):
        assert line in text, line
    two_phase = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], label_prob=d["pi"])).fit().summary().as_text()
    assert re.search(r"Design:\s+two-phase", two_phase) and "Label prob.:" in two_phase and "HC2" in two_phase


def test_components_are_the_indicator_blocks_over_the_squared_density(survey):
    """At the classical estimate t: V_Y is the classical variance (interval-implied, normal
    critical values), and C_Yf / V_Y, V_f / V_Y and V_fu / V_Y are the indicators' ratios."""
    d = survey
    model = ppinfer.Quantile(d["y"], d["f"], d["fu"], q=[0.3, 0.5])
    components = model.components("HC0")
    classical = model.fit(method="classical", cov_type="HC0", use_t=False)
    np.testing.assert_allclose(np.diag(components.var_y), classical.bse**2, rtol=1e-12)
    assert np.isnan(components.var_y[0, 1])
    n, N = N_LABELED, N_UNLABELED
    for k, t in enumerate(classical.params):
        iy, i_f, iu = (d["y"] <= t).astype(float), (d["f"] <= t).astype(float), (d["fu"] <= t).astype(float)
        var_y = iy.var() / n
        assert components.cov_yf[k, k] / components.var_y[k, k] == pytest.approx(np.cov(iy, i_f, bias=True)[0, 1] / n / var_y)
        assert components.var_f[k, k] / components.var_y[k, k] == pytest.approx(i_f.var() / n / var_y)
        assert components.var_fu[k, k] / components.var_y[k, k] == pytest.approx(iu.var() / N / var_y)
    per_stratum = ppinfer.Quantile(d["y"], d["f"], d["fu"], strata=d["s"], strata_unlabeled=d["su"]).components(
        by_stratum=True)
    assert per_stratum.var_y.shape == (3, 1, 1)


def test_per_stratum_lambda_on_a_weighted_clustered_design(survey):
    """lam="per-stratum" on any design with strata: one lambda per stratum, df less 3."""
    d = survey
    keywords = dict(weights=d["w"], weights_unlabeled=d["wu"], clusters=d["g"], clusters_unlabeled=d["gu"],
                    strata=d["s"], strata_unlabeled=d["su"])
    model = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=0.5, **keywords))
    per_stratum = model.fit(cov_type="CR1")
    assert list(per_stratum.lam.index) == ["0", "1", "2"] and per_stratum.lam.index.name == "stratum"
    one = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=0.5, design=ppinfer.Design(**keywords)))
    overall = one.fit(cov_type="CR1")
    assert np.ndim(overall.lam) == 0
    assert one.fit(lam="per-stratum", cov_type="CR1").lam.equals(per_stratum.lam)
    assert per_stratum.df.iloc[0] < overall.df.iloc[0]  # three lambdas tuned, not one


def test_bootstrap_resamples_the_design(survey):
    d = survey
    keywords = dict(clusters=d["g"], clusters_unlabeled=d["shared"], label_prob=d["pi"])
    model = quiet(lambda: ppinfer.Quantile(d["y"], d["f"], d["fu"], q=0.5, **keywords))
    first = model.fit(ci="bootstrap", n_boot=30, seed=3)
    again = model.fit(ci="bootstrap", n_boot=30, seed=3)
    assert first.params.iloc[0] == model.fit().params.iloc[0]
    lower, upper = first.conf_int().iloc[0]
    assert lower <= first.params.iloc[0] <= upper and np.isfinite([lower, upper]).all()
    assert tuple(first.conf_int().iloc[0]) == tuple(again.conf_int().iloc[0])


def test_bad_design_options_name_the_argument(survey):
    d = survey
    y, f, fu = d["y"], d["f"], d["fu"]
    with pytest.raises(ValueError, match="design has clusters; use 'CR2'"):
        quiet(lambda: ppinfer.Quantile(y, f, fu, clusters=d["g"])).fit(cov_type="HC2")
    with pytest.raises(ValueError, match="lam='per-stratum' needs a design with strata"):
        ppinfer.Quantile(y, f, fu).fit(lam="per-stratum")
    with pytest.raises(TypeError, match="grups"):
        ppinfer.Quantile(y, f, fu, grups=d["g"])
    with pytest.raises(ValueError, match="either as design= or as keywords"):
        ppinfer.Quantile(y, f, fu, design=ppinfer.Design(), weights=d["w"])
    with pytest.raises(ValueError, match="weights is given but weights_unlabeled is not"):
        ppinfer.Quantile(y, f, fu, weights=d["w"])
    with pytest.raises(ValueError, match="too few labeled rows to tune lambda"), \
            pytest.warns(ppinfer.SmallSampleWarning):
        ppinfer.Quantile(y[:2], f[:2], fu).fit()
    with pytest.raises(ValueError, match="cov_type"):
        ppinfer.Quantile(y, f, fu).fit(cov_type="HC7")


def test_docstring_examples_run():
    import ppinfer.models.quantile

    failures, attempted = doctest.testmod(ppinfer.models.quantile, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted >= 10 and failures == 0
