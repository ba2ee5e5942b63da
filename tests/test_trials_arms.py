"""Arms: which is treated, contrasts named by the arms, and trials with more than two arms.

References: closed forms of arm means and their (co)variances computed with NumPy,
statsmodels' OLS with arm indicators (coefficients and HC2 covariance), statsmodels'
``multipletests``, and seeded simulations of three-arm trials (familywise error
rates and simultaneous coverage, tolerances 3.5 Monte Carlo standard errors).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from ppinfer.multiplicity import max_z_critical_value
from ppinfer.treatment import TreatmentEffect, treatment_effect


def labelled_trial(n=200, effect=1.0, seed=0):
    """Arms 'placebo' and 'active' (effect +1 for active), a covariate and a prognostic score."""
    rng = np.random.default_rng(seed)
    age = rng.normal(size=n)
    arm = rng.permutation(np.repeat(["placebo", "active"], n // 2))
    y = 2.0 * age + effect * (arm == "active") + rng.normal(size=n)
    return pd.DataFrame({"y": y, "arm": arm, "age": age, "score": 2.0 * age + 0.3 * rng.normal(size=n)})


# -- which arm is treated (the sign of the effect) -------------------------------------------------
def test_labelled_arms_need_the_treated_arm():
    data = labelled_trial()
    # patsy would code 'placebo' against 'active' (alphabetical), flipping the sign silently
    message = r"treatment has arms \['active', 'placebo'\]; say which is which with treated="
    with pytest.raises(ValueError, match=message):
        treatment_effect("y ~ arm + age", data=data, prognostic="score")
    for keyword in ({"treated": "active"}, {"control": "placebo"}):
        te = treatment_effect("y ~ arm + age", data=data, prognostic="score", **keyword)
        res = te.fit()
        assert res.param_names == ["active - placebo"]
        active, placebo = data["y"][data["arm"] == "active"], data["y"][data["arm"] == "placebo"]
        dm = te.fit(method="dm")
        assert dm.params["active - placebo"] == pytest.approx(active.mean() - placebo.mean(), abs=1e-12)
        lower, upper = res.conf_int().loc["active - placebo"]
        assert lower < 1.0 < upper and res.params.iloc[0] > 0.5
        text = res.summary().as_text()
        assert "active - placebo" in text and "active 100 / placebo 100" in text


def test_zero_one_and_boolean_arms_are_read_without_a_label():
    data = labelled_trial()
    data["treated"] = (data["arm"] == "active").astype(int)
    data["flag"] = data["arm"] == "active"
    reference = treatment_effect("y ~ arm + age", data=data, treated="active").fit(method="ancova")
    for column in ("treated", "flag"):
        res = treatment_effect(f"y ~ {column} + age", data=data).fit(method="ancova")
        assert res.param_names == ["ate"]
        assert res.params["ate"] == pytest.approx(reference.params.iloc[0], abs=1e-12)
    # naming arm 0 the treated one reverses the contrast, and says so
    flipped = treatment_effect("y ~ treated + age", data=data, treated=0).fit(method="ancova")
    assert flipped.param_names == ["0 - 1"]
    assert flipped.params.iloc[0] == pytest.approx(-reference.params.iloc[0], abs=1e-12)


def test_arrays_and_categoricals_with_labels():
    data = labelled_trial()
    expected = treatment_effect("y ~ arm + age", data=data, treated="active").fit(method="ancova").params.iloc[0]
    te = TreatmentEffect(data["y"], data["arm"].astype("category"), X=data[["age"]], treated="active")
    assert te.fit(method="ancova").params["active - placebo"] == pytest.approx(expected, abs=1e-12)
    plain = TreatmentEffect(data["y"].to_numpy(), data["arm"].to_numpy(), X=data[["age"]].to_numpy(), control="placebo")
    assert plain.fit(method="ancova").params.iloc[0] == pytest.approx(expected, abs=1e-12)
    # a C() term with an explicit Treatment() reference names the control
    coded = treatment_effect("y ~ C(arm, Treatment('placebo')) + age", data=data).fit(method="ancova")
    assert coded.param_names == ["active - placebo"] and coded.params.iloc[0] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="say which is which"):
        treatment_effect("y ~ C(arm) + age", data=data)


def test_missing_arm_labels_raise_or_drop():
    data = labelled_trial()
    data.loc[[4, 9], "arm"] = None
    with pytest.raises(ValueError, match="treatment has 2 row"):
        TreatmentEffect(data["y"], data["arm"], treated="active")
    te = TreatmentEffect(data["y"], data["arm"], treated="active", missing="drop")
    assert te.nobs == len(data) - 2


def test_bad_arm_arguments():
    data = labelled_trial()
    with pytest.raises(ValueError, match="treated='verum' is not an arm of treatment; its levels are"):
        TreatmentEffect(data["y"], data["arm"], treated="verum")
    with pytest.raises(ValueError, match="treated and control are the same arm"):
        TreatmentEffect(data["y"], data["arm"], treated="active", control="active")
    three = np.repeat(["a", "b", "c"], 20)
    y = np.random.default_rng(1).normal(size=60)
    with pytest.raises(ValueError, match="treated='b' applies to two-arm trials; treatment has 3 arms"):
        TreatmentEffect(y, three, treated="b")
    with pytest.raises(ValueError, match="say which is which with control="):
        TreatmentEffect(y, three)
    with pytest.raises(ValueError, match="propensity applies to two-arm trials"):
        TreatmentEffect(y, three, control="a", prognostic=y, propensity=0.3)
    with pytest.raises(ValueError, match="treatment must be one label per unit"):
        TreatmentEffect(y, np.column_stack([three, three]), control="a")
    assert TreatmentEffect(y, pd.DataFrame({"arm": three}), control="a").treatment_name == "arm"
    with pytest.raises(ValueError, match="comparisons='everything' is not valid"):
        TreatmentEffect(y, three, control="a").fit(comparisons="everything")


# -- more than two arms -------------------------------------------------------------------------
def three_arm_trial(seed=0, n=(60, 50, 40), effects=(0.0, 0.3, 0.6)):
    rng = np.random.default_rng(seed)
    arm = np.repeat(["placebo", "low", "high"], n)
    x = rng.normal(size=sum(n))
    shift = dict(zip(["placebo", "low", "high"], effects))
    y = x + np.array([shift[a] for a in arm]) + (1 + 0.5 * (arm == "high")) * rng.normal(size=sum(n))
    return y, arm, x


def test_contrasts_against_control_and_pairwise_are_arm_mean_differences():
    y, arm, _ = three_arm_trial()
    te = TreatmentEffect(y, arm, control="placebo")
    means = {a: y[arm == a].mean() for a in ("placebo", "low", "high")}
    variances = {a: y[arm == a].var(ddof=1) / (arm == a).sum() for a in means}  # HC2: Neyman
    res = te.fit(method="dm")
    assert res.param_names == ["high - placebo", "low - placebo"]  # arms after the control, sorted
    np.testing.assert_allclose(res.params, [means["high"] - means["placebo"], means["low"] - means["placebo"]])
    covariance = np.array([[variances["high"] + variances["placebo"], variances["placebo"]],
                           [variances["placebo"], variances["low"] + variances["placebo"]]])
    np.testing.assert_allclose(res.cov_params(), covariance, rtol=1e-12)
    pairwise = te.fit(method="dm", comparisons="pairwise")
    assert pairwise.param_names == ["high - placebo", "low - placebo", "low - high"]
    assert pairwise.params["low - high"] == pytest.approx(means["low"] - means["high"], abs=1e-12)
    assert pairwise.bse["low - high"] ** 2 == pytest.approx(variances["low"] + variances["high"], rel=1e-12)
    np.testing.assert_allclose(res.arm_means["estimate"], [means["placebo"], means["high"], means["low"]])
    table = te.compare(methods=["dm"])
    assert list(table.index) == [("dm", "high - placebo"), ("dm", "low - placebo")]


def test_multi_arm_ancova_equals_statsmodels_with_arm_indicators():
    y, arm, x = three_arm_trial(seed=1)
    design = np.column_stack([np.ones_like(y), arm == "high", arm == "low", x]).astype(float)
    reference = sm.OLS(y, design).fit(cov_type="HC2")
    res = TreatmentEffect(y, arm, X=x, control="placebo").fit(method="ancova")
    np.testing.assert_allclose(res.params, reference.params[1:3], atol=1e-10)
    np.testing.assert_allclose(res.cov_params(), reference.cov_params()[1:3, 1:3], rtol=1e-9)


def test_multi_arm_formula_and_ratio_contrasts():
    y, arm, x = three_arm_trial(seed=2)
    dose = np.where(arm == "placebo", "0mg", np.where(arm == "low", "10mg", "20mg"))
    data = pd.DataFrame({"y": np.exp(y / 4), "dose": dose, "x": x})
    res = treatment_effect("y ~ dose + x", data=data, control="0mg").fit(method="ancova", contrast="rr")
    assert res.param_names == ["10mg / 0mg", "20mg / 0mg"]
    fitted = sm.OLS(data["y"], sm.add_constant(np.column_stack([data["dose"] == "10mg", data["dose"] == "20mg",
                                                                   x]).astype(float))).fit()
    base = fitted.params.iloc[0] + fitted.params.iloc[3] * x.mean()
    ratios = [(base + fitted.params.iloc[1]) / base, (base + fitted.params.iloc[2]) / base]
    np.testing.assert_allclose(res.params, ratios)


# -- Monte Carlo: several arms at once ----------------------------------------------------------
REPS = 800


@functools.cache
def three_arm_replications(effects, seed):
    """z statistics against the truth, two-sided p-values of no effect, and the max-|z| critical
    value, of dm and ancova contrasts."""
    rng = np.random.default_rng(seed)
    truth = np.array([effects[2] - effects[0], effects[1] - effects[0]])
    draws = {method: {"z": np.empty((REPS, 2)), "critical": np.empty(REPS), "raw": np.empty((REPS, 2))}
             for method in ("dm", "ancova")}
    for r in range(REPS):
        y, arm, x = three_arm_trial(seed=rng, effects=effects)
        te = TreatmentEffect(y, arm, X=x, control="placebo")
        for method, out in draws.items():
            res = te.fit(method=method)
            out["z"][r] = (res.params.to_numpy() - truth) / res.bse.to_numpy()
            out["raw"][r] = 2 * stats.norm.sf(np.abs(res.params.to_numpy() / res.bse.to_numpy()))
            correlation = res.cov_params().to_numpy() / np.outer(res.bse, res.bse)
            out["critical"][r] = max_z_critical_value(correlation, alpha=0.05)
    return draws


@pytest.mark.montecarlo
def test_familywise_error_and_simultaneous_coverage():
    # no effect: unadjusted tests reject some true null too often; Bonferroni and Holm keep the
    # familywise error under 5%; the max-|z| intervals cover both contrasts 95% of the time
    null = three_arm_replications((0.0, 0.0, 0.0), 301)
    tolerance = 3.5 * np.sqrt(0.05 * 0.95 / REPS)
    for method, out in null.items():
        unadjusted = np.mean((out["raw"] < 0.05).any(axis=1))
        bonferroni = np.mean((out["raw"] < 0.025).any(axis=1))  # = Holm's familywise error under the global null
        simultaneous = np.mean((np.abs(out["z"]) > out["critical"][:, None]).any(axis=1))
        assert unadjusted > 0.05 + tolerance, (method, unadjusted)
        assert bonferroni <= 0.05 + tolerance, (method, bonferroni)
        assert abs(simultaneous - 0.05) <= tolerance, (method, simultaneous)
    # with effects: simultaneous coverage of the true contrasts
    effects = three_arm_replications((0.0, 0.3, 0.6), 302)
    for method, out in effects.items():
        missed = np.mean((np.abs(out["z"]) > out["critical"][:, None]).any(axis=1))
        assert abs(missed - 0.05) <= tolerance, (method, missed)


if __name__ == "__main__":
    # every figure the Monte Carlo test checks: python tests/test_trials_arms.py
    for method, out in three_arm_replications((0.0, 0.0, 0.0), 301).items():
        print(f"no effect, {method}: familywise error unadjusted {np.mean((out['raw'] < 0.05).any(axis=1)):.4f}, "
              f"Bonferroni {np.mean((out['raw'] < 0.025).any(axis=1)):.4f}, max-|z| "
              f"{np.mean((np.abs(out['z']) > out['critical'][:, None]).any(axis=1)):.4f} "
              f"(MC SE {np.sqrt(0.0475 / REPS):.4f}); mean critical value {out['critical'].mean():.4f}")
    for method, out in three_arm_replications((0.0, 0.3, 0.6), 302).items():
        missed = np.mean((np.abs(out["z"]) > out["critical"][:, None]).any(axis=1))
        print(f"effects 0.3 and 0.6, {method}: max-|z| intervals miss a true contrast {missed:.4f}")
