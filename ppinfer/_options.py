"""Compatibility alias of :mod:`ppinfer.core.options`."""

from .core.options import choose, reject_unknown_keywords  # noqa: F401
