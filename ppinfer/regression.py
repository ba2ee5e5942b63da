"""Compatibility alias of :mod:`ppinfer.models.regression`."""

from .models.regression import GLM, OLS, Logit, Poisson, RegressionModel  # noqa: F401

__all__ = ["GLM", "OLS", "Logit", "Poisson", "RegressionModel"]
