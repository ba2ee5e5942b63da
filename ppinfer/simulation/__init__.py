"""Coverage simulation studies: is inference with these predictions valid, and what does it gain?

>>> from ppinfer import simulation as sim
>>> scenarios = sim.grid(estimand=["mean", "ols"], n=[100, 500], N=10_000,
...                      prediction_quality=[0.5, 0.9], prediction_bias=[0.0, 0.5])
>>> study = sim.run(scenarios, reps=500, seed=2026, n_jobs=-1)     # doctest: +SKIP
>>> study.summary(parameter="focus")                                # doctest: +SKIP
>>> study.plot("coverage").savefig("coverage.png")                  # doctest: +SKIP
>>> study.to_csv("study.csv"); sim.load("study.csv")                # doctest: +SKIP

A user process ``process(rng, n, N, **options) -> dataset`` and user methods
``method(dataset) -> results`` plug in (protocols in
:mod:`ppinfer.simulation.processes` and :mod:`ppinfer.simulation.methods`);
``ppinfer simulate --preset quick`` runs a small study from the command line.
"""

from .methods import BUILTIN_METHODS, ProtocolError
from .processes import BUILTIN_ESTIMANDS, CoreProcess, TrialData, simulate_trial
from .runner import SimulationError, run
from .scenarios import PRESETS, Scenario, ScenarioGrid, grid, preset
from .study import Study, concat, load

__all__ = [
    "BUILTIN_ESTIMANDS",
    "BUILTIN_METHODS",
    "CoreProcess",
    "ProtocolError",
    "Scenario",
    "ScenarioGrid",
    "SimulationError",
    "Study",
    "TrialData",
    "concat",
    "grid",
    "preset",
    "PRESETS",
    "load",
    "run",
    "simulate_trial",
]
