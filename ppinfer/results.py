"""Compatibility alias of :mod:`ppinfer.core.results` and :mod:`ppinfer.core.inference`."""

from .core.inference import (  # noqa: F401
    ALTERNATIVES, BootstrapInference, Inference, WaldInference, check_alpha, critical_value,
)
from .core.results import METHOD_LABELS, NAIVE_WARNING, PPIResults  # noqa: F401

__all__ = [
    "PPIResults",
    "Inference",
    "WaldInference",
    "BootstrapInference",
    "ALTERNATIVES",
    "METHOD_LABELS",
    "NAIVE_WARNING",
    "check_alpha",
    "critical_value",
]
