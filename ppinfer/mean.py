"""Compatibility alias of :mod:`ppinfer.models.mean`."""

from .models.mean import Mean  # noqa: F401

__all__ = ["Mean"]
