"""Methods of a simulation study and how their results are read.

A method is a built-in name (``"classical"``, ``"naive"``, ``"ppi"``, ``"ppi++"``),
which calls ``dataset.model().fit(method=name)``, or a user callable
``method(dataset) -> results``. The results (of either kind) must offer

``params``
    The estimates: a pandas Series indexed by parameter name (as every ppinfer
    and statsmodels result has), or an array / number in the order of
    ``dataset.truth``.
``conf_int(alpha)``
    Two-sided intervals at level ``1 - alpha``: a DataFrame with columns
    ``lower`` and ``upper`` (or any two columns, as statsmodels returns), indexed
    like ``params``, or an array of shape (k, 2).
``effective_nobs`` (optional)
    The labeled sample size a classical analysis would need for the same
    precision, per parameter; NaN in the summary when absent.

A user method is named by its ``name`` attribute, else its ``__name__``; pass a
dict ``{label: method}`` to choose the labels. Like processes, user methods must
be picklable to run with ``n_jobs > 1``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._options import choose
from ..models.ppi import METHODS as MODEL_METHODS
from .scenarios import process_name

__all__ = ["BUILTIN_METHODS", "ProtocolError"]

BUILTIN_METHODS = ("classical", "naive", "ppi", "ppi++")

#: the exceptions a failed fit may raise and that are recorded as failures (not re-raised)
FIT_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


class ProtocolError(TypeError):
    """A dataset or a method's results do not follow the documented protocol.

    Examples
    --------
    A user process whose datasets have no ``model()``, run with the built-in
    methods:

    >>> from ppinfer import simulation as sim
    >>> class Data:
    ...     truth = 0.0
    >>> def process(rng, n, N):
    ...     return Data()
    >>> sim.run(sim.grid(estimand=process, n=10, N=10), reps=1, seed=0, progress=False)
    Traceback (most recent call last):
    ...
    ppinfer.simulation.methods.ProtocolError: the built-in method 'classical' needs a dataset with a model() method; ...
    """


@dataclass(frozen=True)
class Method:
    """A labelled method: a built-in model method name or a user callable."""

    label: str
    builtin: str | None = None
    function: Callable | None = None

    def fit(self, dataset, model_cache: dict):
        """Results of this method on one dataset (one model per dataset, shared by the built-ins)."""
        if self.function is not None:
            return self.function(dataset)
        if "model" not in model_cache:
            build = getattr(dataset, "model", None)
            if build is None:
                raise ProtocolError(
                    f"the built-in method {self.builtin!r} needs a dataset with a model() method; "
                    f"the process returned {type(dataset).__name__}. Return a ppinfer.datasets.SimulatedData "
                    "(or any object with truth and model()), or pass your own method callables."
                )
            model_cache["model"] = build()
        names = getattr(dataset, "method_names", None) or {}
        return model_cache["model"].fit(method=names.get(self.builtin, self.builtin))


def as_methods(methods) -> list[Method]:
    """Validate ``methods`` (names, callables or a dict of them) into :class:`Method` objects."""
    if isinstance(methods, (str, bytes)) or callable(methods):
        methods = [methods]
    items = list(methods.items()) if isinstance(methods, Mapping) else [(None, m) for m in methods]
    if not items:
        raise ValueError(f"methods is empty; give at least one of {', '.join(BUILTIN_METHODS)} or a callable.")
    valid = {alias: name for alias, name in MODEL_METHODS.items() if name in BUILTIN_METHODS}
    result = []
    for label, method in items:
        if isinstance(method, str):
            name = choose(method, valid, "method")
            result.append(Method(str(label) if label is not None else name, builtin=name))
        elif callable(method):
            result.append(Method(str(label) if label is not None else process_name(method), function=method))
        else:
            raise TypeError(
                f"methods must be names ({', '.join(map(repr, BUILTIN_METHODS))}) or callables "
                f"(dataset) -> results; got {method!r}."
            )
    labels = [m.label for m in result]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"method labels must be distinct; {repeated} appear more than once (pass a dict of labels).")
    return result


def check_picklable(value, what: str) -> None:
    """Raise a TypeError if ``value`` cannot be sent to a worker process."""
    try:
        pickle.dumps(value)
    except Exception as error:  # pickle raises several types
        raise TypeError(
            f"{what} cannot be sent to worker processes ({type(error).__name__}: {error}). With n_jobs > 1 "
            "processes and methods must be picklable: define them at module level (not as lambdas or "
            "local functions) in an importable module, or run with n_jobs=1."
        ) from None


def truth_of(dataset) -> pd.Series:
    """The dataset's true parameter values as a float Series."""
    truth = dataset.get("truth") if isinstance(dataset, Mapping) else getattr(dataset, "truth", None)
    if truth is None:
        raise ProtocolError(
            f"the dataset ({type(dataset).__name__}) has no `truth`: give the true parameter value(s) as "
            "a pandas Series indexed by parameter name, a dict, or one number."
        )
    if isinstance(truth, pd.Series):
        series = truth.astype(float)
    elif isinstance(truth, Mapping):
        series = pd.Series({str(k): float(v) for k, v in truth.items()})
    elif np.ndim(truth) == 0:
        series = pd.Series([float(truth)], index=["theta"])
    else:
        raise ProtocolError(f"truth must be a Series, a dict or one number; got {type(truth).__name__}.")
    if series.empty or not np.all(np.isfinite(series.to_numpy())):
        raise ProtocolError(f"truth must hold finite values; got {series.to_dict()}.")
    return series


def _aligned(values, truth: pd.Series, what: str, label: str, index=None) -> np.ndarray:
    """``values`` (named by ``index``, or in truth's order) for the parameters of ``truth``."""
    if isinstance(values, pd.Series):
        values, index = values.to_numpy(dtype=float), list(values.index)
    array = np.atleast_1d(np.asarray(values, dtype=float))
    names = list(truth.index)
    if index is not None and index != names and not (names == ["theta"] and len(index) == 1):
        missing = [name for name in names if name not in index]
        if missing:
            raise ProtocolError(
                f"method {label!r}: its {what} have no entry for parameter(s) {missing} of the dataset's truth "
                f"(it has {index})."
            )
        array = array[[index.index(name) for name in names]]
    if array.shape != (len(names),):
        raise ProtocolError(
            f"method {label!r}: its {what} have shape {array.shape}; expected one value per parameter of the "
            f"truth ({len(names)}), or a Series indexed by parameter name."
        )
    return array


def read_results(results, truth: pd.Series, alpha: float, label: str):
    """Estimates, interval ends and effective sample sizes of ``results``, aligned with ``truth``."""
    if not hasattr(results, "params") or not hasattr(results, "conf_int"):
        raise ProtocolError(
            f"method {label!r} returned {type(results).__name__}, which lacks params and conf_int(alpha); "
            "see ppinfer.simulation.methods for the protocol."
        )
    estimate = _aligned(results.params, truth, "params", label)
    interval = results.conf_int(alpha)
    index = None
    if isinstance(interval, pd.DataFrame):
        columns = list(interval.columns)
        ends = [columns.index("lower"), columns.index("upper")] if {"lower", "upper"} <= set(columns) else [0, 1]
        index, interval = list(interval.index), interval.to_numpy(dtype=float)[:, ends]
    array = np.asarray(interval, dtype=float).reshape(-1, 2)
    lower = _aligned(array[:, 0], truth, "interval ends", label, index)
    upper = _aligned(array[:, 1], truth, "interval ends", label, index)
    effective = getattr(results, "effective_nobs", None)
    effective = np.full(len(truth), np.nan) if effective is None else _aligned(effective, truth, "effective_nobs", label)
    return estimate, lower, upper, effective
