"""Generalised linear model families.

Each family supplies what the M-estimation core needs: the inverse link ``mean``,
the working quantities of its estimating function (:meth:`Family.working`: the
score of a row is ``x_i r_i`` and its Hessian ``x_i x_i' c_i``), a loss whose
gradient is that score (used for step halving), and the range its responses
must lie in. With a canonical link ``r_i = v_i - mu_i`` and ``c_i = mu'(eta_i)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .validation import check_binary, check_range


class Family:
    """Canonical-link family: estimating function ``x_i (v_i - mean(x_i' b))``."""

    name = "family"
    #: one Newton step from any start solves the equations exactly
    linear = False
    #: ``K`` with ``|b'''(eta)| <= K b''(eta)`` for the cumulant ``b`` (None: no such bound);
    #: bounds the loss along a Newton step (see :func:`ppinfer.core.fitting.fit_glm`)
    concordance: float | None = None

    def mean(self, eta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mean_derivative(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def working(self, v: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score factor ``r`` and Hessian weight ``c`` of each row at ``eta``.

        A row's score is ``x r`` and minus its derivative with respect to the
        coefficients is ``x x' c``. For a canonical link, ``r = v - mu`` and
        ``c = mu'(eta)``, so the observed and expected Hessians coincide.
        """
        mu = self.mean(eta)
        return v - mu, self.mean_derivative(eta, mu)

    def loss(self, v: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Per-row negative (quasi-)log-likelihood, up to terms free of ``eta``."""
        raise NotImplementedError

    def start(self, v: np.ndarray) -> np.ndarray:
        """Linear predictor to start iterations from (as GLM software does)."""
        raise NotImplementedError

    def check_outcome(self, v: np.ndarray, argument: str) -> None:
        """Raise if gold-standard outcomes are out of range for the model."""

    def check_prediction(self, v: np.ndarray, argument: str) -> None:
        """Raise if predictions are out of range for the model."""


class Gaussian(Family):
    name = "Gaussian (identity link)"
    linear = True

    def mean(self, eta):
        return eta

    def mean_derivative(self, eta, mu):
        return np.ones_like(eta)

    def loss(self, v, eta):
        return 0.5 * (v - eta) ** 2

    def start(self, v):
        return np.asarray(v, dtype=float)


class Binomial(Family):
    name = "Binomial (logit link)"
    concordance = 1.0  # |mu (1 - mu) (1 - 2 mu)| <= mu (1 - mu)

    def mean(self, eta):
        return expit(eta)

    def mean_derivative(self, eta, mu):
        return mu * (1.0 - mu)

    def loss(self, v, eta):
        return np.logaddexp(0.0, eta) - v * eta

    def start(self, v):
        mu = (v + 0.5) / 2.0
        return np.log(mu / (1.0 - mu))

    def check_outcome(self, v, argument):
        check_binary(v, argument)

    def check_prediction(self, v, argument):
        check_range(v, argument, low=0.0, high=1.0, what="probabilities in [0, 1]")


class Poisson(Family):
    name = "Poisson (log link)"
    concordance = 1.0  # b''' = b'' = exp(eta)

    def mean(self, eta):
        with np.errstate(over="ignore"):
            return np.exp(eta)

    def mean_derivative(self, eta, mu):
        return mu

    def loss(self, v, eta):
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(eta) - v * eta

    def start(self, v):
        return np.log((v + v.mean()) / 2.0 + 0.1)

    def check_outcome(self, v, argument):
        check_range(v, argument, low=0.0, high=np.inf, what="non-negative counts")

    def check_prediction(self, v, argument):
        check_range(v, argument, low=0.0, high=np.inf, what="non-negative (predicted counts)")
