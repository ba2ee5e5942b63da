"""Compatibility alias of :mod:`ppinfer.core.families`."""

from .core.families import Binomial, Family, Gaussian, Poisson  # noqa: F401

__all__ = ["Binomial", "Family", "Gaussian", "Poisson"]
