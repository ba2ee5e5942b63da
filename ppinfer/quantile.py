"""Compatibility alias of :mod:`ppinfer.models.quantile`."""

from .models.quantile import Quantile, QuantileInversion  # noqa: F401

__all__ = ["Quantile", "QuantileInversion"]
