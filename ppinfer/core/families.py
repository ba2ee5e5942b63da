"""Generalised linear model families.

Each family supplies what the M-estimation core needs: the inverse link ``mean``,
the working quantities of its estimating function (:meth:`Family.working`: the
score of a row is ``x_i r_i`` and its Hessian ``x_i x_i' c_i``), a loss whose
gradient is that score (used for step halving), and the range its responses
must lie in. With a canonical link ``r_i = v_i - mu_i`` and ``c_i = mu'(eta_i)``.
:class:`GLMFamily` wraps any statsmodels family and link in the same interface.
"""

from __future__ import annotations

import numpy as np

from .validation import check_binary, check_range


class Family:
    """Canonical-link family: estimating function ``x_i (v_i - mean(x_i' b))``."""

    name = "family"
    #: one Newton step from any start solves the equations exactly
    linear = False
    #: ``K`` with ``|b'''(eta)| <= K b''(eta)`` for the cumulant ``b`` (None: no such bound);
    #: bounds the loss along a Newton step (see :func:`ppinfer.core.fitting.fit_glm`)
    concordance: float | None = None
    #: the Hessian of the estimating function does not depend on the responses (canonical
    #: link): the Fisher-scoring and the variance Hessians coincide
    canonical = True
    #: bounds of the mean near which fitted values signal separation (None: no such bounds)
    separation_bounds: tuple[float, float] | None = None

    @property
    def fisher_differs(self) -> bool:
        """The variance Hessian differs from the expected (Fisher-scoring) one."""
        return False

    def mean(self, eta: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def mean_derivative(self, eta: np.ndarray, mu: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def working(self, v: np.ndarray, eta: np.ndarray, *, fisher: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Score factor ``r`` and Hessian weight ``c`` of each row at ``eta``.

        A row's score is ``x r`` and minus its derivative with respect to the
        coefficients is ``x x' c``. For a canonical link, ``r = v - mu`` and
        ``c = mu'(eta)``, so the observed and expected Hessians coincide.
        ``fisher=True`` asks for the expected (Fisher-scoring) weight, used for
        iterations far from the solution; without it, the weight of the
        Hessian the variance uses.
        """
        mu = self.mean(eta)
        return v - mu, self.mean_derivative(eta, mu)

    def loss(self, v: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Per-row negative (quasi-)log-likelihood, up to terms free of ``eta``."""
        raise NotImplementedError

    def start(self, v: np.ndarray) -> np.ndarray:
        """Linear predictor to start iterations from (as GLM software does)."""
        raise NotImplementedError

    def initial_params(self, X: np.ndarray, v: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
        """Coefficients to start iterations from: least squares of :meth:`start` on ``X``."""
        target = self.start(v)
        return np.linalg.lstsq(X, target if offset is None else target - offset, rcond=None)[0]

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
    separation_bounds = (0.0, 1.0)

    def mean(self, eta):
        # 1 / (1 + e^-eta): as accurate as scipy's expit (within 4e-16 relatively) and twice as fast
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-eta))

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
    separation_bounds = (0.0, np.inf)

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


#: accepted spellings of the Hessian a GLM's variance uses
HESSIANS = {"observed": "observed", "expected": "expected", "oim": "observed", "eim": "expected"}


def _power_link(link, power: float) -> bool:
    from statsmodels.genmod.families import links

    return isinstance(link, links.Power) and np.isclose(link.power, power)


def _is_canonical(family) -> bool:
    """Whether ``family.link`` is the canonical link of ``family`` (``mu'(eta) = V(mu)``)."""
    from statsmodels.genmod import families as sm_families
    from statsmodels.genmod.families import links

    link = family.link
    if isinstance(family, sm_families.Gaussian):
        return _power_link(link, 1.0)
    if isinstance(family, sm_families.Binomial):
        return type(link) is links.Logit
    if isinstance(family, sm_families.Poisson):
        return type(link) is links.Log
    if isinstance(family, sm_families.Gamma):
        return _power_link(link, -1.0)
    if isinstance(family, sm_families.InverseGaussian):
        return _power_link(link, -2.0)
    if isinstance(family, sm_families.NegativeBinomial):
        return isinstance(link, links.NegativeBinomial) and np.isclose(link.alpha, family.alpha)
    if isinstance(family, sm_families.Tweedie):
        power = 1.0 - family.var_power
        return type(link) is links.Log if power == 0.0 else _power_link(link, power)
    return False


class GLMFamily(Family):
    """A statsmodels family and link as the estimating function of a GLM.

    Parameters
    ----------
    family : statsmodels.genmod.families.Family
        Any statsmodels family instance with its link, e.g.
        ``sm.families.Gamma(sm.families.links.Log())``: Gaussian, Binomial,
        Poisson, Gamma, InverseGaussian, NegativeBinomial (fixed ``alpha``),
        Tweedie (fixed ``var_power``).
    hessian : {"observed", "expected"}
        The Hessian of the estimating function that the variance (the bread of
        the sandwich) uses; see Notes.

    Notes
    -----
    With mean ``mu = g^-1(eta)``, ``mu' = d mu / d eta`` and variance function
    ``V``, a row's quasi-score is ``x r`` with

        r = (v - mu) mu' / V(mu)

    (McCullagh & Nelder 1989, sec. 9.2; the scale cancels from the sandwich).
    Minus its derivative with respect to the coefficients is ``x x' c`` with

        c_expected = mu'^2 / V(mu)
        c_observed = c_expected - (v - mu) d/deta [mu' / V(mu)]

    The two agree for a canonical link (``mu' = V``) and, in expectation, when
    the model is correct. The influence function of an M-estimator is
    ``H^-1 x r`` with ``H`` the expected derivative of the estimating function
    under the distribution the data come from; when the model is misspecified,
    as it is for predictions (which are not draws from the model) and for any
    working model, that expectation is estimated by the observed Hessian,
    not by the Fisher information of the model. ``hessian="observed"`` (the
    default) is therefore the consistent choice; it is also what statsmodels'
    ``GLM(...).fit(cov_type="HC0")`` uses (its sandwich takes
    ``model.hessian(params)``, observed by default, also after IRLS).
    ``hessian="expected"`` uses the Fisher information (valid when the mean
    model is correct). Iterations use Fisher scoring (always a descent
    direction of the deviance) until close to the solution, then Newton steps
    with the variance Hessian.
    """

    def __init__(self, family, hessian: str = "observed"):
        from statsmodels.genmod.families import Family as StatsmodelsFamily
        from statsmodels.genmod.families import links

        from .options import choose

        if not isinstance(family, StatsmodelsFamily):
            raise TypeError(
                "family must be a statsmodels family instance, e.g. sm.families.Gamma(sm.families.links.Log()); "
                f"got {family!r}."
            )
        self.family = family
        self.link = family.link
        self.hessian = choose(hessian, HESSIANS, "hessian")
        self.canonical = _is_canonical(family)
        self.log_link = type(self.link) is links.Log
        from statsmodels.genmod import families as sm_families

        self.linear = isinstance(family, sm_families.Gaussian) and _power_link(self.link, 1.0)
        self.name = f"{type(family).__name__} ({type(self.link).__name__} link)"
        self._ranges(sm_families)

    def _ranges(self, sm_families) -> None:
        """Ranges of outcomes (``_outcome``) and of the mean (``_mean_range``) of the family."""
        family = self.family
        nonnegative = (0.0, np.inf, "non-negative")
        positive = (np.finfo(float).tiny, np.inf, "positive")
        if isinstance(family, sm_families.Binomial):
            self._outcome = (0.0, 1.0, "proportions in [0, 1]")
            self._mean_range = (0.0, 1.0)
            self.separation_bounds = (0.0, 1.0)
        elif isinstance(family, (sm_families.Poisson, sm_families.NegativeBinomial)):
            self._outcome = nonnegative
            self._mean_range = (0.0, np.inf)
            self.separation_bounds = (0.0, np.inf)
        elif isinstance(family, (sm_families.Gamma, sm_families.InverseGaussian)):
            self._outcome = positive
            self._mean_range = (0.0, np.inf)
        elif isinstance(family, sm_families.Tweedie):
            p = family.var_power
            self._outcome = None if p == 0 else (positive if p >= 2 else nonnegative)
            self._mean_range = (-np.inf, np.inf) if p == 0 else (0.0, np.inf)
        else:  # Gaussian, or another family on the real line
            self._outcome = None
            self._mean_range = (-np.inf, np.inf)

    @property
    def fisher_differs(self) -> bool:
        return not self.canonical and self.hessian == "observed"

    def __repr__(self) -> str:
        return f"GLMFamily({self.name}, hessian={self.hessian!r})"

    def mean(self, eta):
        with np.errstate(over="ignore", invalid="ignore"):
            return self.link.inverse(eta)

    def mean_derivative(self, eta, mu):
        with np.errstate(over="ignore", invalid="ignore"):
            return self.link.inverse_deriv(eta)

    def working(self, v, eta, *, fisher=False):
        mu = self.mean(eta)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            slope = self.link.inverse_deriv(eta)
            variance = self.family.variance(mu)
            ratio = slope / variance
            residual = v - mu
            weight = slope * ratio
            if not (fisher or self.canonical or self.hessian == "expected"):
                # d/deta [mu' / V] = mu'' / V - mu'^2 V' / V^2
                change = self.link.inverse_deriv2(eta) / variance - ratio * ratio * self.family.variance.deriv(mu)
                weight = weight - residual * change
        return residual * ratio, weight

    def loss(self, v, eta):
        """Half the unit deviance (its derivative in ``eta`` is ``-r``); infinite outside the mean's range."""
        mu = self.mean(eta)
        low, high = self._mean_range
        inside = (mu > low) & (mu < high) if np.isfinite(low) or np.isfinite(high) else np.isfinite(mu)
        with np.errstate(all="ignore"):
            deviance = self.family.resid_dev(v, np.where(inside, mu, 0.5)) ** 2
        return np.where(inside, 0.5 * deviance, np.inf)

    def start(self, v):
        with np.errstate(all="ignore"):
            return self.link(self.family.starting_mu(v))

    def initial_params(self, X, v, offset=None):
        """Least squares of the link of statsmodels' starting means; if that puts a fitted mean
        outside the family's range (an inverse or log link), the fit of the link of the mean."""
        params = super().initial_params(X, v, offset)
        eta = X @ params + (0.0 if offset is None else offset)
        if np.all(np.isfinite(self.loss(v, eta))):
            return params
        with np.errstate(all="ignore"):
            level = self.link(np.full(v.shape, self.family.starting_mu(np.array([v.mean()]))[0]))
        return np.linalg.lstsq(X, level if offset is None else level - offset, rcond=None)[0]

    def check_outcome(self, v, argument):
        self._check(v, argument, "outcomes")

    def check_prediction(self, v, argument):
        self._check(v, argument, "predictions")

    def _check(self, v, argument, what):
        if self._outcome is None:
            return
        low, high, description = self._outcome
        family = type(self.family).__name__
        check_range(v, argument, low=low, high=high, what=f"{description} ({what} of a {family} model)")
