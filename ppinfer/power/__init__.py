"""Study design: sample sizes and power for trials and for prediction-powered studies."""

from .ppi import ppi_power, ppi_sample_size
from .trials import ate_power, ate_sample_size, binary_power, binary_sample_size

__all__ = ["ate_power", "ate_sample_size", "binary_power", "binary_sample_size", "ppi_power", "ppi_sample_size"]
