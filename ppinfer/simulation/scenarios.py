"""Scenarios of a simulation study and the grids that list them.

A scenario is one data-generating setting: a process (a built-in estimand or a
user's function), the labeled and unlabeled sample sizes ``n`` and ``N``, and the
process's other keyword options (for the built-in processes,
``prediction_quality`` and ``prediction_bias``). :func:`grid` crosses lists of
values into every combination.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._options import choose
from .processes import BUILTIN_ESTIMANDS, DEFAULT_BIAS, DEFAULT_QUALITY, builtin_process

__all__ = ["PRESETS", "Scenario", "ScenarioGrid", "grid", "preset"]

BUILTIN_OPTIONS = {"prediction_quality": DEFAULT_QUALITY, "prediction_bias": DEFAULT_BIAS}


def process_name(process: Callable) -> str:
    """How a process is named in tables: its ``name`` attribute, else its ``__name__``."""
    name = getattr(process, "name", None) or getattr(process, "__name__", None)
    return str(name) if name else type(process).__name__


@dataclass(frozen=True)
class Scenario:
    """One setting of a simulation study.

    Attributes
    ----------
    estimand : str
        The name of the process (a built-in estimand, or the user process's name).
    n, N : int
        Labeled and unlabeled sample sizes.
    options : tuple of (name, value) pairs
        Keyword arguments of the process.
    process : callable
        ``process(rng, n, N, **options) -> dataset``.

    Examples
    --------
    >>> import numpy as np
    >>> from ppinfer import simulation as sim
    >>> scenario = sim.grid(estimand="mean", n=100, N=1000, prediction_quality=0.9)[0]
    >>> scenario.as_dict()
    {'estimand': 'mean', 'n': 100, 'N': 1000, 'prediction_quality': 0.9, 'prediction_bias': 0.0}
    >>> data = scenario.draw(np.random.default_rng(0))   # one replication's dataset
    >>> len(data.labeled), len(data.unlabeled), data.truth.to_dict()
    (100, 1000, {'y': 1.0})
    """

    estimand: str
    n: int
    N: int
    options: tuple[tuple[str, Any], ...]
    process: Callable

    def draw(self, rng: np.random.Generator):
        """One dataset of this scenario."""
        return self.process(rng, self.n, self.N, **dict(self.options))

    def as_dict(self) -> dict[str, Any]:
        return {"estimand": self.estimand, "n": self.n, "N": self.N, **dict(self.options)}

    @property
    def description(self) -> str:
        """A canonical text of the scenario (what identifies its random numbers)."""
        options = "|".join(f"{key}={value!r}" for key, value in sorted(self.options))
        return f"{self.estimand}|n={self.n}|N={self.N}|{options}"

    @property
    def seed_key(self) -> tuple[int, int]:
        """Two 32-bit words derived from :attr:`description`, the scenario's ``spawn_key``."""
        digest = hashlib.sha256(self.description.encode()).digest()
        return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


class ScenarioGrid(Sequence):
    """An ordered list of :class:`Scenario` (what :func:`grid` returns).

    Grids can be added (``grid(...) + grid(...)``) to study settings that are not
    a full cross, such as a different ``N`` for one estimand; ``table`` shows
    every scenario as a row.

    Parameters
    ----------
    scenarios : sequence of Scenario
        Distinct scenarios, at least one.

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> scenarios = sim.grid(estimand="mean", n=[50, 200], N=1000) + sim.grid(estimand="ols", n=200, N=5000)
    >>> len(scenarios)
    3
    >>> print(scenarios.table)
      estimand    n     N  prediction_quality  prediction_bias
    0     mean   50  1000                 0.8              0.0
    1     mean  200  1000                 0.8              0.0
    2      ols  200  5000                 0.8              0.0
    >>> scenarios[1:].table["estimand"].tolist()
    ['mean', 'ols']
    """

    def __init__(self, scenarios: Sequence[Scenario]):
        scenarios = list(scenarios)
        if not scenarios:
            raise ValueError("a scenario grid needs at least one scenario.")
        for scenario in scenarios:
            if not isinstance(scenario, Scenario):
                raise TypeError(f"a scenario grid holds Scenario objects; got {type(scenario).__name__}.")
        seen: dict[str, int] = {}
        for position, scenario in enumerate(scenarios):
            if scenario.description in seen:
                raise ValueError(
                    f"scenario {scenario.description!r} appears twice (positions {seen[scenario.description]} "
                    f"and {position}); remove the duplicate."
                )
            seen[scenario.description] = position
        keys = {}
        for scenario in scenarios:
            other = keys.setdefault(scenario.seed_key, scenario.description)
            if other != scenario.description:  # pragma: no cover - a 64-bit hash collision
                raise ValueError(f"scenarios {other!r} and {scenario.description!r} share a seed key; rename one.")
        self._scenarios = scenarios

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ScenarioGrid(self._scenarios[index])
        return self._scenarios[index]

    def __len__(self) -> int:
        return len(self._scenarios)

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self._scenarios)

    def __add__(self, other: "ScenarioGrid") -> "ScenarioGrid":
        if isinstance(other, Scenario):
            other = ScenarioGrid([other])
        if not isinstance(other, ScenarioGrid):
            return NotImplemented
        return ScenarioGrid(self._scenarios + other._scenarios)

    @property
    def table(self) -> pd.DataFrame:
        """One row per scenario: ``estimand``, ``n``, ``N`` and the options."""
        return pd.DataFrame([scenario.as_dict() for scenario in self._scenarios])

    def __repr__(self) -> str:
        return f"<ScenarioGrid: {len(self)} scenarios>\n{self.table.to_string()}"


def _axis(values, argument: str) -> list:
    """A grid axis as a non-empty list without duplicates (a scalar is one value)."""
    if isinstance(values, (str, bytes)) or callable(values) or not isinstance(values, (Sequence, np.ndarray, pd.Index, pd.Series)):
        values = [values]
    values = [value.item() if isinstance(value, np.generic) else value for value in values]
    if not values:
        raise ValueError(f"{argument} is empty; give at least one value.")
    for first, value in enumerate(values):
        try:
            repeated = value in values[first + 1 :]
        except (TypeError, ValueError):  # values that cannot be compared are not repeated values
            repeated = False
        if repeated:
            raise ValueError(f"{argument} lists {value!r} more than once; each value of a grid axis must be distinct.")
    return values


def _size(value, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) != int(value):
        raise ValueError(f"{argument} must hold whole numbers; got {value!r}.")
    if int(value) < minimum:
        raise ValueError(f"{argument} must be at least {minimum}; got {value!r}.")
    return int(value)


def _number(value, argument: str, *, low: float = -np.inf, high: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{argument} must hold finite numbers; got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{argument} must lie in [{low:g}, {high:g}]; got {value!r}.")
    return float(value)


def _accepted_options(process: Callable, name: str, options: Sequence[str]) -> None:
    """Raise unless ``process`` takes ``(rng, n, N)`` and accepts each option as a keyword."""
    try:
        signature = inspect.signature(process)
    except (TypeError, ValueError):  # builtins without signatures: trust the caller
        return
    parameters = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    positional = [
        p for p in parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters.values())
    if len(positional) < 3 and not varargs:
        raise ValueError(
            f"process {name!r} must take the arguments (rng, n, N); its signature is {signature}."
        )
    keywords = {
        p.name for p in parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    } - {p.name for p in positional[:3]}
    unknown = [option for option in options if option not in keywords and not takes_any]
    if unknown:
        raise ValueError(
            f"inconsistent grid: process {name!r} does not accept the option(s) {unknown}; "
            f"its keywords are {sorted(keywords) or 'none'}. Give these options only with processes that take them."
        )
    required = [
        p.name for p in parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty and p.name not in options
    ]
    if required:
        raise ValueError(f"inconsistent grid: process {name!r} requires the option(s) {required}; add them to the grid.")


def grid(
    *,
    estimand: str | Callable | Sequence[str | Callable],
    n: int | Sequence[int],
    N: int | Sequence[int],
    prediction_quality: float | Sequence[float] | None = None,
    prediction_bias: float | Sequence[float] | None = None,
    **options: Any,
) -> ScenarioGrid:
    """Every combination of the given settings, as a :class:`ScenarioGrid`.

    Parameters
    ----------
    estimand : str, callable, or a list of them
        Built-in estimands ``"mean"``, ``"quantile"``, ``"ols"``, ``"logit"``,
        ``"poisson"`` (the designs of :func:`ppinfer.datasets.simulate`) and
        ``"ate"`` (a trial whose outcomes are missing for ``N`` units, see
        :func:`~ppinfer.simulation.processes.simulate_trial`), or user processes
        ``process(rng, n, N, **options) -> dataset`` (see
        :mod:`ppinfer.simulation.processes` for the dataset protocol).
    n, N : int or list of int
        Labeled (at least 2) and unlabeled (at least 1) sample sizes.
    prediction_quality : float or list, optional
        Correlation of predictions and outcome, in [0, 1] (built-in processes;
        default 0.8).
    prediction_bias : float or list, optional
        Shift of the predictions' level (in outcome standard deviations) and of
        their slope (built-in processes; default 0).
    **options
        Further axes, passed as keywords to every process (so every process in
        the grid must accept them): for example ``noise=["normal", "t3"]`` for a
        user process with a ``noise`` keyword.

    Returns
    -------
    ScenarioGrid

    Raises
    ------
    ValueError
        For an unknown estimand (the message lists the valid ones), an empty or
        repeated axis value, sizes that are not whole numbers of the minimum
        size, a quality outside [0, 1], or an option a process does not accept
        (an inconsistent grid).

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> scenarios = sim.grid(estimand=["mean", "ols"], n=[100, 500], N=10_000,
    ...                      prediction_quality=[0.5, 0.9], prediction_bias=[0.0, 0.5])
    >>> len(scenarios)
    16
    """
    processes = []
    for value in _axis(estimand, "estimand"):
        if isinstance(value, str):
            name = choose(value, BUILTIN_ESTIMANDS, "estimand")
            processes.append((name, builtin_process(name), True))
        elif callable(value):
            processes.append((process_name(value), value, False))
        else:
            raise TypeError(
                f"estimand values must be built-in names ({', '.join(BUILTIN_ESTIMANDS)}) or processes "
                f"(rng, n, N) -> dataset; got {value!r}."
            )
    names = [name for name, _, _ in processes]
    repeated = {name for name in names if names.count(name) > 1}
    if repeated:
        raise ValueError(f"estimand names must be distinct; {sorted(repeated)} appear more than once (set a `name` attribute).")
    sizes = [_size(value, "n", 2) for value in _axis(n, "n")]
    unlabeled_sizes = [_size(value, "N", 1) for value in _axis(N, "N")]
    axes: dict[str, list] = {}
    if prediction_quality is not None:
        axes["prediction_quality"] = [
            _number(v, "prediction_quality", low=0.0, high=1.0) for v in _axis(prediction_quality, "prediction_quality")
        ]
    if prediction_bias is not None:
        axes["prediction_bias"] = [_number(v, "prediction_bias") for v in _axis(prediction_bias, "prediction_bias")]
    reserved = {"rng", "seed"} & set(options)
    if reserved:
        raise ValueError(f"{sorted(reserved)} cannot be grid options: the harness gives each replication its generator.")
    for key, values in options.items():
        axes[key] = _axis(values, key)
    scenarios = []
    for name, process, builtin in processes:
        process_axes = dict(axes)
        if builtin:
            for key, default in BUILTIN_OPTIONS.items():
                process_axes.setdefault(key, [default])
        _accepted_options(process, name, list(process_axes))
        keys = list(process_axes)
        for size, unlabeled, values in itertools.product(sizes, unlabeled_sizes, itertools.product(*process_axes.values())):
            scenarios.append(Scenario(name, size, unlabeled, tuple(zip(keys, values)), process))
    return ScenarioGrid(scenarios)


#: named studies of ``ppinfer simulate --preset``: the grid's settings and the replications
PRESETS = {
    "quick": {
        "grid": dict(estimand=list(BUILTIN_ESTIMANDS), n=[100, 500], N=[5_000],
                     prediction_quality=[0.5, 0.9], prediction_bias=[0.0, 0.5]),
        "reps": 100,
    },
    "paper": {
        "grid": dict(estimand=list(BUILTIN_ESTIMANDS), n=[50, 100, 200, 500, 1000], N=[10_000],
                     prediction_quality=[0.0, 0.5, 0.9], prediction_bias=[0.0, 0.5]),
        "reps": 1000,
    },
}


def preset(name: str, *, estimand: str | Sequence[str] | None = None) -> tuple[ScenarioGrid, int]:
    """The scenarios and replications of a named study (``"quick"`` or ``"paper"``).

    Parameters
    ----------
    name : {"quick", "paper"}
        The study: ``"quick"`` (every built-in estimand, n in {100, 500}, 100
        replications) or ``"paper"`` (n from 50 to 1000, 1000 replications).
    estimand : str or list of str, optional
        Keep these of the preset's estimands only.

    Returns
    -------
    (ScenarioGrid, int)
        The scenarios and the replications per scenario.

    Examples
    --------
    >>> from ppinfer import simulation as sim
    >>> scenarios, reps = sim.preset("quick", estimand="mean")
    >>> len(scenarios), reps
    (8, 100)
    >>> study = sim.run(scenarios[:2], reps=10, seed=0, progress=False)   # fewer replications, for speed
    >>> study
    <Study: 2 scenarios x 4 methods (classical, naive, ppi, ppi++), 10 replications each, seed 0, alpha 0.05>
    """
    settings = PRESETS[choose(name, tuple(PRESETS), "preset")]
    axes = dict(settings["grid"])
    if estimand is not None:
        chosen = [choose(e, axes["estimand"], "estimand") for e in _axis(estimand, "estimand")]
        axes["estimand"] = chosen
    return grid(**axes), settings["reps"]
