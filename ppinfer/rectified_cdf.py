"""Compatibility alias of :mod:`ppinfer.models.rectified_cdf`."""

from .models.rectified_cdf import Evaluation, PairSum, Points, RectifiedCDF, SortedValues  # noqa: F401

__all__ = ["Evaluation", "PairSum", "Points", "RectifiedCDF", "SortedValues"]
