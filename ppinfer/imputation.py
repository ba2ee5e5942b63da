"""Compatibility alias of :mod:`ppinfer.models.imputation`."""

from .models.imputation import ImputationResults, MultipleImputation, RubinCombination, rubin_combine  # noqa: F401

__all__ = ["ImputationResults", "MultipleImputation", "RubinCombination", "rubin_combine"]
