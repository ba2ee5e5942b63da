"""Compatibility aliases: the fits live in :mod:`ppinfer.core.fitting`."""

from .core.fitting import Fit, fit_glm, fit_mean  # noqa: F401

__all__ = ["Fit", "fit_glm", "fit_mean"]
