"""Data-generating processes of simulation studies.

A process is any callable ``process(rng, n, N, **options) -> dataset``: it draws a
labeled sample of ``n`` units and an unlabeled sample of ``N`` units with the
generator ``rng`` and returns a dataset that knows its true parameter values.

The dataset protocol
--------------------
``dataset.truth``
    The true value of each parameter studied: a pandas Series (or dict) indexed
    by parameter name, or one number for a single parameter. Only the
    parameters named here are scored.
``dataset.model()``
    Needed by the built-in methods (``"classical"``, ``"naive"``, ``"ppi"``,
    ``"ppi++"``): a model whose ``fit(method=...)`` returns results with
    ``params`` and ``conf_int(alpha)``, such as every ppinfer model.
``dataset.method_names`` (optional)
    A dict translating the built-in method names into the names the model's
    ``fit`` uses (the trial design maps ``"classical"`` to ``"dm"``).

:class:`ppinfer.datasets.SimulatedData` follows the protocol, so a user process
can return ``ppinfer.datasets.simulate(...)`` with its own settings. Processes
must be picklable (module-level functions or instances of module-level classes)
to run with ``n_jobs > 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..datasets import ESTIMANDS as CORE_ESTIMANDS
from ..datasets import predictions, simulate

__all__ = ["BUILTIN_ESTIMANDS", "CoreProcess", "TrialData", "simulate_trial"]

#: the built-in estimands: the core's simulated designs and the trial with missing outcomes
BUILTIN_ESTIMANDS = (*CORE_ESTIMANDS, "ate")

#: the parameter shown by default in figures and printed tables, per built-in estimand
FOCUS_PARAMETER = {"mean": "y", "quantile": "q=0.5", "ols": "x1", "logit": "x1", "poisson": "x1", "ate": "ate"}

#: prediction settings of the built-in processes when a grid does not set them
DEFAULT_QUALITY, DEFAULT_BIAS = 0.8, 0.0

#: the trial: coefficients of (Intercept, x1, x2), the treatment effect and the share treated
TRIAL_COEFFICIENTS = np.array([1.0, 1.0, 0.5])
TRIAL_EFFECT = 0.5
TRIAL_TREATED_SHARE = 0.5


class CoreProcess:
    """The simulated design of :func:`ppinfer.datasets.simulate` for one estimand.

    Calling it draws ``simulate(estimand, n, N, quality=prediction_quality,
    bias=prediction_bias)`` with the replication's generator. An instance of a
    module-level class, so it can be sent to worker processes.

    Parameters
    ----------
    estimand : {"mean", "quantile", "ols", "logit", "poisson"}
        The simulated design (see :func:`ppinfer.datasets.simulate`).

    Examples
    --------
    :func:`ppinfer.simulation.grid` builds one for each built-in estimand name:

    >>> import numpy as np
    >>> from ppinfer.simulation import CoreProcess
    >>> process = CoreProcess("ols")
    >>> data = process(np.random.default_rng(0), 100, 1000, prediction_quality=0.9)
    >>> data.labeled.shape, data.unlabeled.shape
    ((100, 5), (1000, 4))
    >>> data.truth.to_dict()
    {'Intercept': 1.0, 'x1': 1.0, 'x2': 0.5}
    >>> data.model()
    <ppinfer.OLS 'y' (n=100, N=1000): Intercept, x1, x2>
    """

    def __init__(self, estimand: str):
        self.name = estimand

    def __call__(self, rng: np.random.Generator, n: int, N: int, *,
                 prediction_quality: float = DEFAULT_QUALITY, prediction_bias: float = DEFAULT_BIAS):
        return simulate(self.name, n, N, quality=prediction_quality, bias=prediction_bias, seed=rng)

    def __eq__(self, other) -> bool:
        return isinstance(other, CoreProcess) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("CoreProcess", self.name))

    def __repr__(self) -> str:
        return f"CoreProcess({self.name!r})"


@dataclass(frozen=True)
class TrialData:
    """A randomised trial in which only some units' outcomes were measured.

    Attributes
    ----------
    y : (n + N,) array
        Outcomes; NaN for the ``N`` units whose outcome was not measured.
    treatment : (n + N,) array of 0/1
    X : (n + N, 2) array
        Baseline covariates (not used by the estimators of this design).
    prognostic : (n + N,) array
        A prediction of every unit's outcome.
    truth : pandas.Series
        The average treatment effect, as ``{"ate": value}``.

    Examples
    --------
    What :func:`simulate_trial` returns:

    >>> import numpy as np
    >>> from ppinfer.simulation import simulate_trial
    >>> trial = simulate_trial(np.random.default_rng(0), 200, 300)
    >>> int(np.isnan(trial.y).sum()), trial.truth.to_dict()
    (300, {'ate': 0.5})
    >>> trial.model().fit(method="ppi++").params.index.tolist()
    ['ate']
    """

    y: np.ndarray
    treatment: np.ndarray
    X: np.ndarray
    prognostic: np.ndarray
    truth: pd.Series
    #: harness method names and the trial estimator's names for them
    method_names: dict = field(
        default_factory=lambda: {"classical": "dm", "naive": "naive", "ppi": "ppi", "ppi++": "ppi++"}
    )

    def model(self, **options):
        """The missing-outcomes :class:`ppinfer.TreatmentEffect` on these data."""
        try:
            from ..treatment import TreatmentEffect
        except ImportError as error:  # the module is written separately
            raise ImportError(
                "the 'ate' estimand needs ppinfer.treatment.TreatmentEffect, which could not be "
                f"imported ({error})."
            ) from None
        return TreatmentEffect(self.y, self.treatment, prognostic=self.prognostic, **options)


def simulate_trial(
    rng: np.random.Generator,
    n: int,
    N: int,
    *,
    prediction_quality: float = DEFAULT_QUALITY,
    prediction_bias: float = DEFAULT_BIAS,
) -> TrialData:
    """A two-arm trial of ``n + N`` units whose outcomes are measured for ``n`` of them.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replication's random numbers.
    n : int
        Units whose outcome is measured (chosen at random, whatever their arm).
    N : int
        Units whose outcome is missing but predicted.
    prediction_quality, prediction_bias : float
        Correlation of the predictions with the outcome, and their bias (level
        shift in outcome standard deviations, slope inflated by ``1 + bias``), as
        in :func:`ppinfer.datasets.predictions`, relative to the outcome's
        population mean and standard deviation over both arms.

    Returns
    -------
    TrialData

    Notes
    -----
    ``Y = 1 + tau A + x1 + 0.5 x2 + e`` with ``x1, x2, e`` independent standard
    normal, ``A ~ Bernoulli(1/2)`` and ``tau = 0.5``: the average treatment
    effect. Predictions are built from the outcome over both arms, so they carry
    the treatment effect only partly (``quality * (1 + bias) * tau`` of it): pooling
    them as if they were outcomes (naive) biases the effect, which the per-arm
    prediction-powered means correct.

    Examples
    --------
    >>> import numpy as np
    >>> from ppinfer.simulation import simulate_trial
    >>> trial = simulate_trial(np.random.default_rng(0), 200, 300, prediction_quality=0.9)
    >>> trial.y.shape, int(np.isfinite(trial.y).sum())
    ((500,), 200)
    >>> np.unique(trial.treatment).tolist()
    [0.0, 1.0]

    As the ``"ate"`` estimand of a study:

    >>> from ppinfer import simulation as sim
    >>> len(sim.grid(estimand="ate", n=[100, 200], N=1000))
    2
    """
    if not 0.0 <= prediction_quality <= 1.0:
        raise ValueError(f"prediction_quality must lie in [0, 1]; got {prediction_quality!r}.")
    size = n + N
    treatment = (rng.random(size) < TRIAL_TREATED_SHARE).astype(float)
    X = rng.normal(size=(size, 2))
    y = TRIAL_COEFFICIENTS[0] + TRIAL_EFFECT * treatment + X @ TRIAL_COEFFICIENTS[1:] + rng.normal(size=size)
    share = TRIAL_TREATED_SHARE
    mean = TRIAL_COEFFICIENTS[0] + TRIAL_EFFECT * share
    sd = float(np.sqrt(TRIAL_EFFECT**2 * share * (1.0 - share) + np.sum(TRIAL_COEFFICIENTS[1:] ** 2) + 1.0))
    prognostic = predictions(y, prediction_quality, prediction_bias, rng, mean=mean, sd=sd)
    observed = np.zeros(size, dtype=bool)
    observed[rng.choice(size, size=n, replace=False)] = True
    y = np.where(observed, y, np.nan)
    return TrialData(y, treatment, X, prognostic, pd.Series([TRIAL_EFFECT], index=["ate"]))


simulate_trial.name = "ate"


def builtin_process(estimand: str):
    """The process of a built-in estimand (already validated)."""
    return simulate_trial if estimand == "ate" else CoreProcess(estimand)
