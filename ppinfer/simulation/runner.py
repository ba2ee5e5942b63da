"""Running a simulation study: seeded replications, in parallel processes.

Replication ``r`` of a scenario draws its data with the generator of
``numpy.random.SeedSequence(seed, spawn_key=(k1, k2, r))``, where ``(k1, k2)``
are two words of a hash of the scenario's description (:attr:`Scenario.seed_key`).
That is the child ``r`` of the scenario's child of ``SeedSequence(seed)``, the
same construction as ``SeedSequence.spawn``, indexed by what the scenario is
rather than by its position. Hence

* the numbers do not depend on ``n_jobs``, on which worker runs what, or on the
  order in which chunks finish;
* a scenario gives the same numbers in any grid it belongs to, and its first
  ``r`` replications are the same whatever ``reps`` (a study can be extended);
* every method is fitted to the same datasets (paired comparisons).

Work is split into chunks of replications of one scenario, run in worker
processes (``concurrent.futures.ProcessPoolExecutor``) when ``n_jobs > 1``.
Processes and methods are then sent to the workers by pickling: they must be
module-level functions or instances of module-level classes; where workers are
started fresh rather than forked (Windows, macOS, Python >= 3.14) they must also
be importable, i.e. defined in a module rather than in an interactive session.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from .._options import choose
from .._progress import check_progress, progress as progress_bar
from ..results import check_alpha
from .methods import FIT_ERRORS, Method, as_methods, check_picklable, read_results, truth_of
from .processes import simulate_trial
from .scenarios import Scenario, ScenarioGrid
from .study import Study, summarise

__all__ = ["SimulationError", "run"]

try:  # optional: pins BLAS to one thread per replication (small problems, many processes)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - without it BLAS keeps its default threads
    threadpool_limits = None

ERROR_OPTIONS = ("record", "raise")

#: replications per chunk at most (small chunks keep the progress bar moving)
MAX_CHUNK = 50


class SimulationError(RuntimeError):
    """A process or method failed inside a replication (the message says which).

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> def broken(rng, n, N):
    ...     raise ZeroDivisionError("no data today")
    >>> sim.run(sim.grid(estimand=broken, n=10, N=10), reps=1, seed=0, progress=False)
    Traceback (most recent call last):
    ...
    ppinfer.simulation.runner.SimulationError: the process of scenario 'broken|n=10|N=10|' failed on replication 0: ZeroDivisionError: no data today
    """


@dataclass
class ChunkResult:
    """Everything one chunk of replications of one scenario produced.

    Arrays are indexed (replication, method, parameter); ``failed`` is
    (replication, method).
    """

    scenario: int
    start: int
    parameters: list[str]
    truth: np.ndarray
    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    effective_n: np.ndarray
    failed: np.ndarray
    messages: dict[str, str]


def _replication_rng(entropy: int, scenario: Scenario, rep: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(*scenario.seed_key, rep)))


def simulate_chunk(
    index: int, scenario: Scenario, methods: list[Method], entropy: int, start: int, stop: int,
    alpha: float, errors: str,
) -> ChunkResult:
    """Run replications ``start..stop-1`` of one scenario (in a worker or in this process)."""
    count = stop - start
    parameters, arrays, messages = None, None, {}
    # one BLAS thread: the matrices are small, and threads of several workers would compete
    single_thread = threadpool_limits(1) if threadpool_limits is not None else contextlib.nullcontext()
    with single_thread, warnings.catch_warnings():
        # fallbacks (such as lambda = 0 for useless predictions) are part of what is studied
        warnings.simplefilter("ignore")
        for offset, rep in enumerate(range(start, stop)):
            rng = _replication_rng(entropy, scenario, rep)
            try:
                dataset = scenario.draw(rng)
            except Exception as error:
                raise SimulationError(
                    f"the process of scenario {scenario.description!r} failed on replication {rep}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            truth = truth_of(dataset)
            if parameters is None:
                parameters = list(truth.index)
                shape = (count, len(methods), len(parameters))
                arrays = {key: np.full(shape, np.nan) for key in ("estimate", "lower", "upper", "effective_n")}
                arrays["truth"] = np.full((count, len(parameters)), np.nan)
                arrays["failed"] = np.zeros((count, len(methods)), dtype=bool)
            elif list(truth.index) != parameters:
                raise SimulationError(
                    f"scenario {scenario.description!r}: the truth names parameters {list(truth.index)} on "
                    f"replication {rep} but {parameters} before; a scenario must study the same parameters."
                )
            arrays["truth"][offset] = truth.to_numpy()
            model_cache: dict = {}
            for m, method in enumerate(methods):
                try:
                    values = read_results(method.fit(dataset, model_cache), truth, alpha, method.label)
                except FIT_ERRORS as error:
                    if errors == "raise":
                        raise SimulationError(
                            f"method {method.label!r} failed on replication {rep} of scenario "
                            f"{scenario.description!r}: {type(error).__name__}: {error}"
                        ) from error
                    arrays["failed"][offset, m] = True
                    messages.setdefault(method.label, f"{type(error).__name__}: {error}")
                    continue
                for key, value in zip(("estimate", "lower", "upper", "effective_n"), values):
                    arrays[key][offset, m] = value
    return ChunkResult(index, start, parameters, messages=messages, **arrays)


def _workers(n_jobs) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise TypeError(f"n_jobs must be an integer (-1 for every core); got {n_jobs!r}.")
    if n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive number of processes, or -1 for every core; got {n_jobs}.")
    return int(n_jobs)


def _scenarios(scenarios) -> ScenarioGrid:
    if isinstance(scenarios, Scenario):
        return ScenarioGrid([scenarios])
    if isinstance(scenarios, ScenarioGrid):
        return scenarios
    if isinstance(scenarios, (list, tuple)):
        return ScenarioGrid(scenarios)
    raise TypeError(f"scenarios must come from ppinfer.simulation.grid(...); got {type(scenarios).__name__}.")


def _entropy(seed) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (or None for a fresh one); got {seed!r}.")
    return int(seed)


def run(
    scenarios: ScenarioGrid | Scenario,
    methods: Sequence[str | Callable] | Mapping[str, str | Callable] = ("classical", "naive", "ppi", "ppi++"),
    *,
    reps: int = 1000,
    seed: int | None = None,
    n_jobs: int = 1,
    alpha: float = 0.05,
    effect: float = 2.8,
    progress: bool | str = "auto",
    keep_replications: bool = False,
    errors: str = "record",
) -> Study:
    """Run every method on ``reps`` seeded replications of every scenario.

    Parameters
    ----------
    scenarios : ScenarioGrid
        From :func:`~ppinfer.simulation.grid` (or one :class:`Scenario`).
    methods : sequence or dict
        Built-in names ``"classical"``, ``"naive"``, ``"ppi"``, ``"ppi++"`` and/or
        callables ``method(dataset) -> results`` (see
        :mod:`ppinfer.simulation.methods`); a dict gives them labels.
    reps : int
        Replications per scenario (at least 1).
    seed : int, optional
        Root of every replication's random numbers. None draws a fresh one,
        stored in ``study.seed`` so the study can be repeated.
    n_jobs : int
        Worker processes; -1 uses every core. The numbers do not depend on it.
    alpha : float
        Intervals at level ``1 - alpha``; tests at level ``alpha``.
    effect : float
        The alternative of the power column, in standard deviations of the
        classical estimate (see :class:`Study`). 2.8 gives the classical method
        about 80% power.
    progress : {"auto", True, False}
        A progress bar of the replications on standard error (tqdm's when
        installed, else one line): ``"auto"`` shows it on a terminal or in a
        notebook only, True always, False never.
    keep_replications : bool
        Keep every replication's estimates and intervals in ``study.replications``.
    errors : {"record", "raise"}
        A fit raising ``ValueError`` or ``ArithmeticError`` (such as a logistic
        fit that does not converge on a small sample) is counted in the
        ``failures`` column by default, with a warning at the end; ``"raise"``
        stops the study instead. Other exceptions always stop it.

    Returns
    -------
    Study

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> scenarios = sim.grid(estimand="mean", n=[50, 200], N=10_000, prediction_quality=[0.5, 0.9])
    >>> study = sim.run(scenarios, reps=200, seed=1, progress=False)   # doctest: +SKIP
    >>> study.summary()                                                  # doctest: +SKIP
    """
    grid = _scenarios(scenarios)
    method_list = as_methods(methods)
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)):
        raise TypeError(f"reps must be an integer; got {reps!r}.")
    if reps < 1:
        raise ValueError(f"reps must be at least 1; got {reps}.")
    reps = int(reps)
    alpha = check_alpha(alpha)
    if isinstance(effect, bool) or not isinstance(effect, (int, float, np.number)) or not np.isfinite(effect):
        raise ValueError(f"effect must be a finite number (standard deviations of the classical estimate); got {effect!r}.")
    errors = choose(errors, ERROR_OPTIONS, "errors")
    workers = _workers(n_jobs)
    entropy = _entropy(seed)
    progress = check_progress(progress)
    if any(m.builtin for m in method_list) and any(s.process is simulate_trial for s in grid):
        try:
            importlib.import_module("ppinfer.treatment")
        except ImportError as error:
            raise ImportError(
                "the 'ate' estimand needs ppinfer.treatment (TreatmentEffect), which could not be imported "
                f"({error}); drop 'ate' from the grid."
            ) from None

    chunk = max(1, min(MAX_CHUNK, -(-reps * len(grid) // (8 * workers))))
    tasks = [
        (index, scenario, method_list, entropy, start, min(start + chunk, reps), alpha, errors)
        for index, scenario in enumerate(grid)
        for start in range(0, reps, chunk)
    ]
    if workers > 1:
        for scenario in grid:
            check_picklable(scenario.process, f"the process of scenario {scenario.estimand!r}")
        for method in method_list:
            if method.function is not None:
                check_picklable(method.function, f"method {method.label!r}")
    meter = progress_bar(total=reps * len(grid), enabled=progress, description="simulating", unit="replications")
    started = time.perf_counter()
    with meter:
        results = _run_tasks(tasks, workers, meter)
    elapsed = time.perf_counter() - started
    return _assemble(grid, method_list, results, reps=reps, seed=entropy, alpha=alpha, effect=float(effect),
                     elapsed=elapsed, keep_replications=keep_replications)


def _run_tasks(tasks: list[tuple], workers: int, meter) -> list[ChunkResult]:
    """Run the chunks here (one worker) or in worker processes, advancing the meter."""
    results: list[ChunkResult] = []
    if workers == 1:
        for task in tasks:
            results.append(simulate_chunk(*task))
            meter.update(task[5] - task[4])
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = {pool.submit(simulate_chunk, *task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    results.append(future.result())
                    task = futures[future]
                    meter.update(task[5] - task[4])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return results


def _assemble(grid, methods, results, *, reps, seed, alpha, effect, elapsed, keep_replications) -> Study:
    """Order the chunks by (scenario, first replication) and summarise each scenario."""
    results = sorted(results, key=lambda result: (result.scenario, result.start))
    labels = [m.label for m in methods]
    summary_rows, replication_frames, failures = [], [], {}
    for index, scenario in enumerate(grid):
        chunks = [result for result in results if result.scenario == index]
        stack = {
            key: np.concatenate([getattr(result, key) for result in chunks])
            for key in ("truth", "estimate", "lower", "upper", "effective_n", "failed")
        }
        parameters = chunks[0].parameters
        for result in chunks:
            if result.parameters != parameters:
                raise SimulationError(
                    f"scenario {scenario.description!r} studies parameters {parameters} in some replications "
                    f"and {result.parameters} in others."
                )
            for label, message in result.messages.items():
                failures.setdefault((scenario.description, label), message)
        rows, replications = summarise(
            scenario.as_dict(), labels, parameters, n=scenario.n, alpha=alpha, effect=effect,
            keep_replications=keep_replications, **stack,
        )
        summary_rows.extend(rows)
        if replications is not None:
            replication_frames.append(replications)
    if failures:
        shown = "; ".join(f"{label} in {description}: {message}" for (description, label), message in list(failures.items())[:5])
        warnings.warn(
            f"some fits failed and are counted in the summary's 'failures' column ({len(failures)} "
            f"scenario-method pairs), e.g. {shown}",
            RuntimeWarning,
            stacklevel=3,
        )
    return Study.from_rows(
        summary_rows, scenarios=grid.table, methods=labels, reps=reps, seed=seed, alpha=alpha, effect=effect,
        elapsed=elapsed, replications=replication_frames or None,
    )
