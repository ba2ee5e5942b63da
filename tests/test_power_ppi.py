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
    tuned = model.fit(method="ppi++", lam="per-coefficient").bse["x1"] ** 2
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
    with pytest.raises(ValueError, match="n must hold whole numbers of at least 2"):
        ppi_power(1, N=100, effect=0.2, rho=0.5)
