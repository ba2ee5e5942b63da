"""Compatibility alias of :mod:`ppinfer.core.validation`."""

from .core.validation import *  # noqa: F401,F403
from .core.validation import (  # noqa: F401
    MISSING_OPTIONS, Sample, Variable, as_cluster_labels, as_variable, check_binary, check_full_rank,
    check_range, make_sample, match_columns, recode_clusters,
)
