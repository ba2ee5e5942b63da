"""Compatibility aliases: the variance algebra lives in :mod:`ppinfer.core.covariance`."""

from .core.covariance import PPIComponents  # noqa: F401
from .core.warnings import PPIWarning  # noqa: F401

__all__ = ["PPIComponents", "PPIWarning"]
