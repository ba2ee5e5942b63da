"""Compatibility alias of :mod:`ppinfer.models.synthetic`."""

from .models.synthetic import SyntheticGMM, SyntheticGMMResults, SyntheticModel, synthetic_data  # noqa: F401

__all__ = ["SyntheticGMM", "SyntheticGMMResults", "SyntheticModel", "synthetic_data"]
