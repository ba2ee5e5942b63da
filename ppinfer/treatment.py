"""Treatment effects in randomised trials (the implementation lives in :mod:`ppinfer.trials`)."""

from .trials import TreatmentEffect, TrialResults, treatment_effect

__all__ = ["TreatmentEffect", "TrialResults", "treatment_effect"]
