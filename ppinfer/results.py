"""Compatibility alias of :mod:`ppinfer.core.results` and :mod:`ppinfer.core.inference`."""

from .core.inference import (  # noqa: F401
    ALTERNATIVES, BootstrapInference, Inference, WaldInference, check_alpha, critical_value,
)
from .core.results import METHOD_LABELS, NAIVE_WARNING, PPIResults  # noqa: F401
