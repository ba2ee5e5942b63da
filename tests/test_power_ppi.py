"""Planning prediction-powered studies: closed forms, pilots, costs, and a check by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import ppinfer
from ppinfer import simulation as sim
from ppinfer.datasets import simulate
from ppinfer.power import ppi_power, ppi_sample_size
from ppinfer.power.ppi import PredictionMoments

Z = stats.norm.isf(0.025)


def ppi_plus_plus_n(width: float, N: float, rho: float, sd: float) -> float:
    """Real root of  sd^2 (n + N (1 - rho^2)) / (n (n + N)) = v  (the optimal-lambda variance)."""
    v = (width / (2 * Z)) ** 2
    b = v * N - sd**2
    return (-b + math.sqrt(b * b + 4 * v * sd**2 * N * (1 - rho**2))) / (2 * v)


@pytest.mark.parametrize("rho, N, sd", [(0.8, 10_000, 1.0), (0.5, 500, 2.0), (0.95, 2_000, 0.3), (-0.7, 5_000, 1.0)])
def test_sample_size_for_a_width_matches_the_closed_form(rho, N, sd):
    width = 0.25 * sd
    design = ppi_sample_size(width=width, N=N, rho=rho, sd=sd)
    classical = math.ceil((2 * Z * sd / width) ** 2)
    assert design.n_classical == classical
    assert design.width <= width
    if rho < 0:
        # ppinfer clips lambda to [0, 1]: a negatively correlated prediction is not used
        assert design.n == classical and design.lam == 0.0
        return
    assert design.n == math.ceil(ppi_plus_plus_n(width, N, rho, sd))
    # N = inf leaves the factor 1 - rho^2
    unlimited = ppi_sample_size(width=width, N=math.inf, rho=rho, sd=sd)
    assert unlimited.n == math.ceil((2 * Z * sd / width) ** 2 * (1 - rho**2))


def test_variance_is_the_optimal_lambda_formula_and_lambda_is_clipped():
    moments = PredictionMoments.assumed(0.6, sd=2.0)
    variance, lam = moments.variance(100, 400)
    assert variance == pytest.approx(4.0 / 100 * (1 - 0.36 * 400 / 500))
    assert lam == pytest.approx(0.6 * 400 / 500)
    # predictions on a compressed scale: the optimal lambda exceeds 1 and is clipped, giving plain PPI
    compressed = PredictionMoments.assumed(0.9, sd=1.0, sd_prediction=0.5)
    v_ppi_plus_plus, lam = compressed.variance(50, 10_000)
    v_ppi, _ = compressed.variance(50, 10_000, "ppi")
    assert lam == 1.0 and v_ppi_plus_plus == pytest.approx(v_ppi)
    assert v_ppi == pytest.approx((1 - 2 * 0.9 * 0.5 + 0.25) / 50 + 0.25 / 10_000)


def test_power_and_sample_size_for_power_agree():
    effect = 0.2
    design = ppi_sample_size(power=0.8, effect=effect, N=10_000, rho=0.8)
    assert ppi_power(design.n, N=10_000, effect=effect, rho=0.8) >= 0.8 > ppi_power(design.n - 1, N=10_000, effect=effect, rho=0.8)
    # rho = 0: the classical two-sided z test, n ~ ((z_{1-a/2} + z_{0.8}) / effect)^2 up to the far tail
    classical = ppi_sample_size(power=0.8, effect=effect, N=10_000, rho=0.0)
    assert classical.n == math.ceil(((Z + stats.norm.isf(0.2)) / effect) ** 2)
    one_sided = ppi_sample_size(power=0.9, effect=effect, N=math.inf, rho=0.0, alternative="larger")
    assert one_sided.n == math.ceil(((stats.norm.isf(0.05) + stats.norm.isf(0.1)) / effect) ** 2)
    powers = ppi_power([50, 100, 400], N=1_000, effect=0.3, rho=0.5)
    assert powers.shape == (3,) and np.all(np.diff(powers) > 0)


def test_budget_split_matches_the_lagrange_solution():
    # minimise sd^2 (1 - rho^2) / n + sd^2 rho^2 / m  subject to  n cl + m cp = B  (m = n + N units predicted)
    rho, cl, cp, budget = 0.8, 100.0, 0.1, 20_000.0
    d = math.sqrt(cl * (1 - rho**2)) + math.sqrt(cp * rho**2)
    n_star = budget * math.sqrt((1 - rho**2) / cl) / d
    m_star = budget * math.sqrt(rho**2 / cp) / d
    design = ppi_sample_size(cost_label=cl, cost_predict=cp, budget=budget, rho=rho)
    assert abs(design.n - n_star) <= 1.0
    assert abs(design.n + design.N - m_star) <= cl / cp  # one labeled unit more or less shifts N by cl / cp
    assert design.cost <= budget
    assert design.se**2 == pytest.approx(d**2 / budget, rel=1e-4)
    # the cheapest design for the width this budget buys costs (about) the budget
    cheapest = ppi_sample_size(width=design.width * (1 + 1e-9), cost_label=cl, cost_predict=cp, rho=rho)
    assert cheapest.cost == pytest.approx(budget, rel=2e-3)
    # free predictions: label all the budget pays for and predict every available unit
    free = ppi_sample_size(cost_label=10.0, cost_predict=0.0, budget=2_000.0, rho=rho)
    assert (free.n, free.N, free.cost) == (200, math.inf, 2_000.0)
    assert free.se**2 == pytest.approx((1 - rho**2) / 200)
    # with few unlabeled units available, more must be labeled
    capped = ppi_sample_size(width=design.width, cost_label=cl, cost_predict=cp, rho=rho, N=1_000)
    assert capped.N <= 1_000 and capped.n > cheapest.n


def test_pilot_arrays_and_pilot_models_give_the_moments():
    data = simulate("mean", 4_000, 4_000, quality=0.7, bias=0.0, seed=1)
    y, yhat, unlabeled = data.labeled["y"], data.labeled["yhat"], data.unlabeled["yhat"]
    moments = PredictionMoments.from_pilot((y, yhat, unlabeled))
    assert moments.var_y == pytest.approx(np.var(y)) and moments.rho == pytest.approx(np.corrcoef(y, yhat)[0, 1])
    from_model = PredictionMoments.from_pilot(ppinfer.Mean(y, yhat, unlabeled))
    assert from_model.var_y == pytest.approx(moments.var_y) and from_model.cov_yf == pytest.approx(moments.cov_yf)
    assert from_model.var_fu == pytest.approx(moments.var_fu)
    # population truth: sd 1.5, rho 0.7; the pilot plan is close to the assumed one
    assumed = ppi_sample_size(width=0.2, N=10_000, rho=0.7, sd=1.5).n
    assert ppi_sample_size(width=0.2, N=10_000, pilot=(y, yhat, unlabeled)).n == pytest.approx(assumed, rel=0.1)
    # a regression coefficient: the classical moment is n times the HC0 variance of statsmodels
    ols = simulate("ols", 2_000, 5_000, quality=0.7, bias=0.3, seed=2)
    model = ols.model()
    moments = PredictionMoments.from_pilot(model, parameter="x1")
    hc0 = sm.OLS(ols.labeled["y"], ols.labeled[ols.covariates]).fit(cov_type="HC0").bse["x1"] ** 2
    assert moments.var_y == pytest.approx(2_000 * hc0)
    variance, _ = moments.variance(2_000, 5_000)
    tuned = model.fit(method="ppi++", lam="per-coefficient", cov_type="HC0").bse["x1"] ** 2
    assert variance == pytest.approx(tuned, rel=1e-6)


@pytest.mark.montecarlo
def test_planned_width_and_power_hold_in_simulation():
    # the built-in mean design: sd of Y = sqrt(1 + 1 + 0.25) = 1.5, predictions with correlation 0.8
    sd, rho, N, width, effect, reps = 1.5, 0.8, 2_000, 0.4, 0.25, 400
    design = ppi_sample_size(width=width, N=N, rho=rho, sd=sd, effect=effect)
    scenarios = sim.grid(estimand="mean", n=design.n, N=N, prediction_quality=rho, prediction_bias=0.0)
    study = sim.run(scenarios, ["ppi++"], reps=reps, seed=17, progress=False, keep_replications=True)
    row = study.summary().iloc[0]
    assert abs(row["mean_width"] - design.width) <= 3.5 * row["mean_width_mcse"] + 0.01 * width
    replications = study.replications
    null = replications["truth"] - effect
    rejected = np.mean((null < replications["lower"]) | (null > replications["upper"]))
    planned = ppi_power(design.n, N=N, effect=effect, rho=rho, sd=sd)
    assert planned == pytest.approx(design.power)
    assert abs(rejected - planned) <= 3.5 * math.sqrt(planned * (1 - planned) / reps), (rejected, planned)


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (dict(N=100, rho=0.5), ValueError, "exactly one target"),
        (dict(width=0.1, power=0.8, effect=0.1, N=100, rho=0.5), ValueError, "exactly one target"),
        (dict(power=0.8, N=100, rho=0.5), TypeError, "needs effect"),
        (dict(power=0.01, effect=0.1, N=100, rho=0.5), ValueError, "power must lie strictly between alpha"),
        (dict(width=-1.0, N=100, rho=0.5), ValueError, "width must be positive"),
        (dict(width=0.1, N=100), TypeError, "give a pilot study"),
        (dict(width=0.1, N=100, rho=1.5), ValueError, "rho is a correlation"),
        (dict(width=0.1, N=100, rho=0.5, sd=0), ValueError, "sd must be positive"),
        (dict(width=0.1, N=-5, rho=0.5), ValueError, "N must be a non-negative whole number"),
        (dict(width=0.1, rho=0.5), TypeError, "N .* is required"),
        (dict(width=0.1, N=100, rho=0.5, method="ppi+++"), ValueError, "method='ppi\\+\\+\\+' is not valid"),
        (dict(width=0.1, N=100, rho=0.5, cost_label=1.0), TypeError, "give both cost_label and cost_predict"),
        (dict(width=0.1, rho=0.5, cost_label=1.0, cost_predict=0.1, budget=100), ValueError, "not both"),
        (dict(rho=0.5, budget=100), TypeError, "a budget needs cost_label"),
        (dict(rho=0.5, cost_label=10.0, cost_predict=1.0, budget=15), ValueError, "does not pay for 2 labeled"),
        (dict(width=0.1, N=100, rho=0.5, pilot=([1, 2, 3], [1, 2, 3])), ValueError, "either a pilot or an assumed rho"),
        (dict(width=0.1, N=100, pilot=([1, 2, 3], [1, 2])), ValueError, "same length"),
        (dict(width=0.1, N=100, pilot="data.csv"), TypeError, "pilot must be"),
        (dict(width=0.1, N=100, pilot=([1.0, 2, 3], [1, 2, 3]), parameter="x1"), ValueError, "parameter applies"),
        (dict(power=0.8, effect=0.0, N=100, rho=0.5), ValueError, "effect must be nonzero"),
    ],
)
def test_bad_planning_input_is_refused(arguments, error, message):
    with pytest.raises(error, match=message):
        ppi_sample_size(**arguments)


def test_pilot_model_needs_a_parameter_name():
    model = simulate("ols", 100, 200, seed=3).model()
    with pytest.raises(ValueError, match="say which one to plan with parameter="):
        ppi_sample_size(width=0.1, N=100, pilot=model)
    with pytest.raises(ValueError, match="parameter='x9' is not a parameter"):
        ppi_sample_size(width=0.1, N=100, pilot=model, parameter="x9")
    with pytest.raises(ValueError, match="n must hold whole numbers of at least 3"):
        ppi_power(1, N=100, effect=0.2, rho=0.5)


# -- issue 8, item 6: plans that run, compared with the classical plan, capped by n_max -----------------


def test_quantile_pilot_gives_the_indicator_moments():
    # bivariate normal (Y, f) with correlation r: at the median the indicators 1{Y <= m}, 1{f <= m}
    # have correlation (2 / pi) arcsin(r) (Sheppard), and the sample median has variance
    # pi sd^2 / (2 n): sd = 1.5 in the built-in design
    data = simulate("quantile", 4_000, 8_000, quality=0.8, bias=0.0, seed=5)
    moments = PredictionMoments.from_pilot(data.model())
    assert moments.rho == pytest.approx(2 / math.pi * math.asin(0.8), abs=0.04)
    assert moments.var_y == pytest.approx(math.pi * 1.5**2 / 2, rel=0.12)
    design = ppi_sample_size(width=0.2, N=10_000, pilot=data.model())
    assert design.n_classical == pytest.approx((2 * Z / 0.2) ** 2 * math.pi * 1.5**2 / 2, rel=0.12)
    assert design.n < design.n_classical


def test_plans_meet_the_estimators_minimum_sizes():
    # OLS with 3 coefficients needs 4 rows in each sample, a mean 2; a loose target used to plan n = 2
    pilot = simulate("ols", 500, 2_000, quality=0.7, bias=0.0, seed=6).model()
    loose = ppi_sample_size(width=50.0, N=10_000, pilot=pilot, parameter="x1")
    assert loose.n == 4
    assert ppi_sample_size(width=50.0, N=10_000, rho=0.5).n == 2
    # a budget whose leftover buys fewer unlabeled rows than the estimator accepts
    for costs in [dict(cost_label=10.0, cost_predict=1.0, budget=100.0), dict(cost_label=10.0, cost_predict=3.0, budget=136.0)]:
        design = ppi_sample_size(pilot=pilot, parameter="x1", **costs)
        assert design.method == "classical" or (design.n >= 4 and design.N >= 4), design
    with pytest.raises(ValueError, match="N=3 unlabeled units .* at least 4"):
        ppi_sample_size(width=0.5, N=3, pilot=pilot, parameter="x1")
    with pytest.raises(ValueError, match="N=1 unlabeled units .* at least 2"):
        ppi_power(50, N=1, effect=0.3, rho=0.5)


@pytest.mark.parametrize(
    "arguments",
    [
        dict(width=50.0, N=10_000),
        dict(cost_label=10.0, cost_predict=1.0, budget=100.0),
        dict(cost_label=10.0, cost_predict=1.0, budget=2_000.0),
        dict(width=0.3, cost_label=5.0, cost_predict=0.01),
        dict(width=0.3, cost_label=5.0, cost_predict=0.0, n_max=3_000),
    ],
)
@pytest.mark.parametrize("estimand", ["mean", "ols"])
def test_every_plan_can_be_fitted(arguments, estimand):
    pilot = simulate(estimand, 500, 2_000, quality=0.8, bias=0.0, seed=7).model()
    design = ppi_sample_size(pilot=pilot, parameter="x1" if estimand == "ols" else None, **arguments)
    assert math.isfinite(design.N)
    if design.method == "classical":
        # no predictions bought: the labeled-only analysis (statsmodels) runs on n rows
        data = simulate(estimand, design.n, 1, seed=8)
        fit = sm.OLS(data.labeled["y"], data.labeled[data.covariates if estimand == "ols" else ["Intercept"]]).fit()
        assert np.all(np.isfinite(fit.HC0_se))
        return
    data = simulate(estimand, design.n, int(design.N), seed=8)
    results = data.model().fit(method=design.method)
    assert np.all(np.isfinite(results.bse)) and np.all(results.bse > 0)


def test_budget_plan_is_compared_with_the_classical_plan():
    # low correlation: 651 labels without predictions beat any split that also pays for predictions
    design = ppi_sample_size(cost_label=1.0, cost_predict=0.1, budget=651.0, rho=0.1)
    assert (design.method, design.n, design.N, design.cost) == ("classical", 651, 0, 651.0)
    assert design.se == pytest.approx(1 / math.sqrt(651))
    assert "classical" in repr(design) and "ppi++" in design.note
    # high correlation: the split wins and says by how much
    split = ppi_sample_size(cost_label=1.0, cost_predict=0.1, budget=651.0, rho=0.8)
    assert split.method == "ppi++" and split.se < 1 / math.sqrt(651)
    assert f"n={651}" in split.note and "classical" in repr(split)
    # the same comparison for a width target: the classical plan costs n_classical * cost_label
    width = 2 * Z / math.sqrt(651)
    cheapest = ppi_sample_size(width=width * (1 + 1e-9), cost_label=1.0, cost_predict=0.1, rho=0.1)
    assert (cheapest.method, cheapest.n, cheapest.cost) == ("classical", 651, 651.0)
    assert cheapest.n_classical == 651


def test_n_max_caps_the_total_rows():
    rho, sd, width = 0.8, 1.0, 0.2
    v = (width / (2 * Z)) ** 2
    # label n of n_max units and predict the rest: sd^2 (1 - rho^2) / n + sd^2 rho^2 / n_max <= v
    for n_max in (5_000, 2_000):
        design = ppi_sample_size(width=width, N=math.inf, rho=rho, sd=sd, n_max=n_max)
        assert design.n == math.ceil(sd**2 * (1 - rho**2) / (v - sd**2 * rho**2 / n_max))
        assert design.n + design.N == n_max
    # free predictions under a budget: as many labels as paid for, the rest of n_max predicted
    free = ppi_sample_size(cost_label=10.0, cost_predict=0.0, budget=2_000.0, rho=rho, n_max=5_000)
    assert (free.n, free.N) == (200, 4_800)
    # cheapest plan for a target within n_max
    capped = ppi_sample_size(width=width, cost_label=100.0, cost_predict=0.1, rho=rho, n_max=3_000)
    uncapped = ppi_sample_size(width=width, cost_label=100.0, cost_predict=0.1, rho=rho)
    assert uncapped.n + uncapped.N > 3_000 >= capped.n + capped.N and capped.n > uncapped.n
    assert capped.width <= width
    with pytest.raises(ValueError, match="n_max"):
        ppi_sample_size(width=0.01, N=math.inf, rho=rho, n_max=1_000)
    with pytest.raises(ValueError, match="n_max must be a whole number"):
        ppi_sample_size(width=width, N=100, rho=rho, n_max=2.5)


@pytest.mark.montecarlo
def test_classical_budget_plan_is_narrower_in_simulation():
    # the built-in mean design (sd 1.5) with predictions of correlation 0.1: the planner keeps the
    # classical plan; fitted, the best split with predictions is indeed wider, and both widths are as planned
    sd, rho, reps = 1.5, 0.1, 300
    plan = ppi_sample_size(cost_label=1.0, cost_predict=0.1, budget=651.0, rho=rho, sd=sd)
    n, N = 591, 9  # the best ppi++ split, from the plan's note
    assert plan.method == "classical" and f"(n={n}, N={N})" in plan.note
    rng = np.random.default_rng(23)
    widths = np.empty((reps, 2))
    for r in range(reps):
        data = simulate("mean", plan.n, N, quality=rho, bias=0.0, seed=rng)
        y = data.labeled["y"].to_numpy()
        widths[r, 0] = 2 * Z * y.std() / math.sqrt(plan.n)  # the classical interval: no predictions needed
        labeled = data.labeled.iloc[:n]
        fit = ppinfer.Mean(labeled["y"], labeled["yhat"], data.unlabeled["yhat"]).fit(method="ppi++")
        widths[r, 1] = np.diff(fit.conf_int().to_numpy()[0])[0]
    mean, mcse = widths.mean(axis=0), widths.std(axis=0, ddof=1) / math.sqrt(reps)
    difference = widths[:, 1] - widths[:, 0]
    assert difference.mean() > 3.5 * difference.std(ddof=1) / math.sqrt(reps), mean
    assert abs(mean[0] - plan.width) <= 3.5 * mcse[0] + 0.01 * plan.width
    split_width = 2 * Z * math.sqrt(plan.moments.variance(n, N)[0])
    assert abs(mean[1] - split_width) <= 3.5 * mcse[1] + 0.01 * plan.width, (mean, plan.width, split_width)
