"""Randomised trials: treatment effects with covariates and prognostic scores.

:class:`TreatmentEffect` (arrays) and :func:`treatment_effect` (a formula) estimate
contrasts of arm means for continuous, binary and count outcomes, with simple or
stratified randomisation, two or more arms, and outcomes missing for some units.
"""

from .formula import treatment_effect
from .model import TreatmentEffect
from .results import TrialResults

__all__ = ["TreatmentEffect", "TrialResults", "treatment_effect"]
