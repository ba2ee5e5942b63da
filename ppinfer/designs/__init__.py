"""Sampling designs: weights, primary sampling units, strata, finite population
corrections and a second (labeling) phase, as one object every estimator uses."""

from .base import BoundDesign, Design, DesignWarning, design_from_keywords

__all__ = ["Design", "BoundDesign", "DesignWarning", "design_from_keywords"]
