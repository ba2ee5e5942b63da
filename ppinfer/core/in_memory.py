"""Estimators that read their samples in memory: a clear error for inputs whose rows stay
in their source.

Mean, the regressions and their formula functions read an unlabeled sample
partition by partition (Dask collections, Parquet files, memory maps of
non-float64 values: :mod:`ppinfer.core.sources`). Estimators that need every
row at once (synthetic-data GMM, multiple imputation, M-estimators with a
user's score, the bootstrap, trials) call :func:`refuse_streamed` on their
arguments first, so that such an input raises a ``TypeError`` naming the
argument and how to load it, instead of failing deep inside (or of being
computed into memory without a word).
"""

from __future__ import annotations

import os

import numpy as np


def streamed_kind(value, *, paths: bool = False, memory_maps: bool = True) -> tuple[str, str] | None:
    """Words naming ``value`` and how to load it into memory, if its rows stay in their
    source; None otherwise. ``paths``: a path (or list of paths) counts as Parquet files
    (for arguments that take a data frame, never a column name). ``memory_maps``: a memory
    map of non-float64 values counts (not for an argument converted with ``np.asarray``)."""
    from .sources import ParquetColumns, ParquetTable, is_dask
    from .validation import ChunkedInput

    if isinstance(value, ChunkedInput):
        if value.value is None:  # a variable of the formula interface's partitioned data
            return "a data frame read partition by partition", "pd.read_parquet(path) or .compute()"
        value = value.value
    if isinstance(value, ParquetTable):
        return "a Parquet table (ppinfer.read_parquet)", "pd.read_parquet(path)"
    if isinstance(value, ParquetColumns):
        return (f"Parquet columns {list(value.names)} (ppinfer.read_parquet)",
                f"pd.read_parquet(path, columns={list(value.names)!r})")
    if is_dask(value):
        return f"a Dask collection (a Dask {type(value).__name__})", ".compute()"
    if memory_maps and isinstance(value, np.memmap) and value.dtype != np.float64:
        return f"a memory map of {value.dtype} values", "np.asarray(values, dtype=float)"
    if paths and (isinstance(value, (str, os.PathLike)) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) for v in value))):
        return "a path (Parquet files)", "pd.read_parquet(path)"
    return None


def refuse_streamed(value, argument: str, estimator: str, *, target: str = "a NumPy array or pandas object",
                    what: str | None = None, paths: bool = False, memory_maps: bool = True) -> None:
    """Raise a ``TypeError`` if ``value`` (argument ``argument`` of ``estimator``) is read
    partition by partition (see :func:`streamed_kind`); ``target`` names what to load it into
    and ``what`` the sample it belongs to (default: from the argument's name); ``paths`` and
    ``memory_maps`` as for :func:`streamed_kind`."""
    found = streamed_kind(value, paths=paths, memory_maps=memory_maps)
    if found is None:
        return
    kind, fix = found
    if what is None:
        what = "the unlabeled sample" if "unlabeled" in argument else "the labeled sample"
    raise TypeError(
        f"{estimator} reads {what} in memory, not partition by partition: {argument} was given {kind}. "
        f"Load it into {target} first, e.g. with {fix}."
    )


def refuse_streamed_design(options: dict, names: dict, estimator: str, *, what: str | None = None) -> None:
    """:func:`refuse_streamed` for each of a design's options (``Design.options``; ``names`` their
    argument names, ``Design.names``)."""
    for key, value in options.items():
        refuse_streamed(value, names.get(key, key), estimator, what=what)


__all__ = ["streamed_kind", "refuse_streamed", "refuse_streamed_design"]
