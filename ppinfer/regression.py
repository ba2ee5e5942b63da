"""Compatibility alias of :mod:`ppinfer.models.regression`."""

from .models.regression import OLS, Logit, Poisson, RegressionModel  # noqa: F401
