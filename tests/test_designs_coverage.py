"""Design-based coverage in a stratified two-stage survey, by seeded Monte Carlo (nominal 0.90).

The scenarios are those of ``simulations/designs.py`` (a finite population of pupils in
schools in three regions; every replication draws new samples from it, and the truths
are the population's own mean, census OLS and census logistic coefficients, computed
there with numpy):

* ``two_stage``: independent labeled and unlabeled stratified two-stage cluster samples
  with weights;
* ``two_phase``: one stratified two-stage sample, all of it predicted, and a hand-coded
  subsample drawn with probabilities depending on region and a pupil covariate.

For Mean, OLS and Logit: classical, PPI and PPI++ with the design cover; the same fits
with the design ignored (weights and labeling probabilities kept, schools and regions
dropped: an i.i.d. variance) under-cover for the mean and the regression; naive pooling
of the biased predictions fails. The median joins once ``ppinfer.Quantile`` takes a
design (marked place below).

A coverage ``p`` over ``REPS`` replications has Monte Carlo standard error
``sqrt(p (1 - p) / REPS)``; the checks allow 3.5 of them around 0.90 (and call a method
under-covering below 0.90 minus 3.5 of them). One test per (scenario, estimand), each a
few seconds on one core; ``python simulations/designs.py --reps 2000`` runs the larger
study (the first 300 replications of each scenario are the ones tested here).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "simulations" / "designs.py"


def _load_simulation():
    spec = importlib.util.spec_from_file_location("ppinfer_designs_simulation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


simulation = _load_simulation()

REPS = 300
NOMINAL = simulation.NOMINAL
MC_SE = float(np.sqrt(NOMINAL * (1 - NOMINAL) / REPS))
BAND = 3.5 * MC_SE

pytestmark = pytest.mark.montecarlo

VALID = ("classical", "ppi", "ppi++")
#: the design ignored: an i.i.d. variance of clustered data (checked for the mean and OLS;
#: the logistic fits' scores are less correlated within schools, see the study's results)
IGNORED = ("classical iid", "ppi++ iid")
IGNORED_CHECKED = ("mean", "ols")
#: naive pooling: biased predictions shift the level (the slopes may or may not suffer)
NAIVE_FAILS = {"mean": ["y"], "ols": ["const"], "logit": ["const"], "median": ["q=0.5"]}


def check(scenario: str, estimand: str) -> None:
    # the fits with the design ignored only where they are checked (they are a third of the work)
    runs = simulation.simulate(scenario, REPS, estimands=(estimand,), with_ignored=estimand in IGNORED_CHECKED)
    failures = []
    for method in VALID:
        coverage = runs.coverage(estimand, method)
        if np.any(np.abs(coverage - NOMINAL) > BAND):
            failures.append(f"{method}: coverage {np.round(coverage, 3)} outside {NOMINAL} +/- {BAND:.3f}")
    if estimand in IGNORED_CHECKED:
        for method in IGNORED:
            coverage = runs.coverage(estimand, method)
            if np.any(coverage >= NOMINAL - BAND):
                failures.append(f"{method}: coverage {np.round(coverage, 3)} not below {NOMINAL - BAND:.3f}")
    coverage = runs.coverage(estimand, "naive")
    names = runs.names[estimand]
    for name in NAIVE_FAILS[estimand]:
        if coverage[names.index(name)] >= NOMINAL - BAND:
            failures.append(f"naive {name}: coverage {coverage[names.index(name)]:.3f} not below {NOMINAL - BAND:.3f}")
    assert not failures, f"{scenario} {estimand} ({REPS} reps):\n" + "\n".join(failures)


@pytest.mark.parametrize("estimand", ["mean", "ols", "logit"])
def test_stratified_two_stage_cluster_sample_with_weights(estimand):
    check("two_stage", estimand)


@pytest.mark.parametrize("estimand", ["mean", "ols", "logit"])
def test_two_phase_labeling_inside_a_clustered_survey(estimand):
    check("two_phase", estimand)


# marked place: the median joins once ppinfer.Quantile takes design= (another branch)
@pytest.mark.skipif(not simulation.QUANTILE_TAKES_DESIGN, reason="ppinfer.Quantile does not take design= yet")
@pytest.mark.parametrize("scenario", ["two_stage", "two_phase"])
def test_median_under_the_survey_designs(scenario):
    check(scenario, "median")
