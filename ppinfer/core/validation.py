"""Input handling: arrays or pandas objects in, validated float arrays and names out.

Every model validates its data here, once, at construction. Each check raises a
``ValueError`` (wrong values or shapes) or ``TypeError`` (wrong kinds of object)
that names the argument at fault, and the position of the first bad value.

A sample held in memory is checked chunk by chunk (memory of one chunk beyond
its arrays). A sample whose rows stay in their source (a Dask collection,
Parquet files, a memory map of non-float64 values: see
:mod:`ppinfer.core.sources`) is checked in one pass over its partitions
(:class:`ChunkedSample`), which also collects what the model and its design
need (Gram matrix, labels, sums), and errors name the partition of a bad value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from .options import choose
from .sources import (
    Column, DaskSource, MemorySource, ParquetColumns, ParquetSource, Partition, RowSource, add_partials,
    current_position, is_dask, is_dask_frame, positions,
)

#: rows per chunk of the checks of a sample held in memory (at least: see :func:`_check_rows`); the
#: accumulators that multiply a design several times split a chunk into cache-sized pieces themselves
CHECK_ROWS = 1 << 15
#: values per chunk of those checks: chunks of a narrow sample have more rows, up to this many values
CHECK_VALUES = 11 * CHECK_ROWS

MISSING_OPTIONS = ("raise", "drop")


@dataclass(frozen=True)
class Variable:
    """A validated numeric input: its values, column names and (pandas) row index.

    ``values`` is a float array, or a :class:`ChunkedInput` for an argument whose
    rows stay in their source until the sample is scanned. ``partitioned`` is how
    to read an in-memory variable alongside a sample whose other rows stay in their
    source, when that differs from ``values``: the unlabeled design labels, whose
    ``values`` are codes shared with the labeled sample, are then read as labels
    and coded after the scan, like labels read from the source.
    """

    values: np.ndarray
    names: list[str]
    index: pd.Index | None = None
    partitioned: ChunkedInput | None = field(default=None, repr=False, compare=False)

    @property
    def nrows(self) -> int | None:
        return None if isinstance(self.values, ChunkedInput) else self.values.shape[0]


@dataclass(frozen=True)
class ChunkedInput:
    """An argument whose rows stay in their source: a Dask collection, Parquet columns
    (:func:`ppinfer.read_parquet`) or a memory map of non-float64 values.

    ``ncols`` is None for one value per row. ``kind`` is ``"numeric"`` or
    ``"labels"`` (design labels: any hashable values, coded after the scan, the
    labels in ``known`` first). A variable of a source built elsewhere (the
    formula interface's) gives ``source`` and its ``key`` there instead of ``value``.
    """

    value: object
    ncols: int | None
    argument: str
    kind: str = "numeric"
    known: np.ndarray | None = None
    source: RowSource | None = None
    key: str | None = None
    #: the column names are the data's own (a DataFrame's or the files'), matched by name
    named: bool = False

    def select(self, order: list[int], names: list[str]) -> "ChunkedInput":
        """The same input with its columns in ``order`` (names ``names``)."""
        value = self.value
        if isinstance(value, ParquetColumns):
            value = ParquetColumns(value.table, [value.names[k] for k in order], value.one_dimensional)
        elif is_dask_frame(value):
            value = value[names]
        else:
            value = value[:, order]
        return ChunkedInput(value, self.ncols, self.argument, self.kind, self.known, self.source, self.key,
                            self.named)


def is_chunked(value) -> bool:
    """Whether an argument's rows should stay in their source (see :class:`ChunkedInput`)."""
    return (is_dask(value) or isinstance(value, (ParquetColumns, ChunkedInput))
            or (isinstance(value, np.memmap) and value.dtype != np.float64))


def _chunked_variable(value, argument: str, *, ndim: int, default_name: str) -> Variable:
    """A :class:`Variable` whose values stay in their source; names and shape from its metadata."""
    from .sources import ParquetTable

    if isinstance(value, ChunkedInput):
        return Variable(value, [default_name] if value.ncols in (None, 1) else
                        [f"{default_name}{k + 1}" for k in range(value.ncols)])
    if isinstance(value, ParquetTable):
        raise TypeError(f"{argument} is a Parquet table: select its column(s), e.g. table[['x1', 'x2']].")
    names, named = None, False
    if isinstance(value, ParquetColumns):
        names, named = list(value.names), True
        shape = (None,) if value.one_dimensional else (None, len(value.names))
    elif is_dask_frame(value):  # a Dask DataFrame
        names, named = [str(c) for c in value.columns], True
        for column, dtype in value.dtypes.items():
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                raise TypeError(
                    f"{argument} column {str(column)!r} is not numeric (dtype {dtype}); encode it, or use "
                    "the formula interface, which expands categorical columns."
                )
        shape = (None, len(names))
    elif is_dask(value) and not hasattr(value, "chunks"):  # a Dask Series
        if not (pd.api.types.is_numeric_dtype(value.dtype) or pd.api.types.is_bool_dtype(value.dtype)):
            raise TypeError(f"{argument} is not numeric (dtype {value.dtype}).")
        names = [str(value.name)] if value.name is not None else None
        shape = (None,)
    else:  # a Dask array or a memory map
        shape = tuple(value.shape)
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
            raise TypeError(f"{argument} must be numeric; got dtype {value.dtype}.")
    if len(shape) == 0 or len(shape) > 2:
        raise ValueError(f"{argument} must be one- or two-dimensional; got shape {shape}.")
    ncols = None if len(shape) == 1 else shape[1]
    if ncols is not None and (ncols != ncols or ncols is None):
        raise ValueError(f"{argument} has an unknown number of columns; give a Dask array with known chunks.")
    if ndim == 1:
        if ncols not in (None, 1):
            raise ValueError(f"{argument} must be one-dimensional; got {ncols} columns.")
        ncols = None
    elif ncols is None:
        ncols = 1
    width = 1 if ncols is None else ncols
    if names is None:
        names = [default_name] if width == 1 else [f"{default_name}{k + 1}" for k in range(width)]
    return Variable(ChunkedInput(value, ncols, argument, named=named), names)


def as_variable(value, argument: str, *, ndim: int, default_name: str) -> Variable:
    """Convert an array-like or pandas object into a float :class:`Variable`.

    ``ndim=1`` accepts a vector (or a one-column matrix); ``ndim=2`` accepts a
    vector (one column) or a matrix. Default column names are ``default_name``
    for a single column and ``default_name1..k`` otherwise, as statsmodels does.
    A Dask collection, Parquet columns or a memory map of non-float64 values is
    not read here (see :class:`ChunkedInput`); a float64 memory map is used
    without a copy, whatever its strides.
    """
    if value is None:
        raise TypeError(f"{argument} is required; got None.")
    if is_chunked(value) or type(value).__name__ == "ParquetTable":
        return _chunked_variable(value, argument, ndim=ndim, default_name=default_name)
    mapped = isinstance(value, np.memmap)
    index = value.index if isinstance(value, (pd.Series, pd.DataFrame)) else None
    if isinstance(value, pd.DataFrame):
        names = [str(c) for c in value.columns]
        for column in value.columns:
            if not (
                pd.api.types.is_numeric_dtype(value[column]) or pd.api.types.is_bool_dtype(value[column])
            ):
                raise TypeError(
                    f"{argument} column {str(column)!r} is not numeric (dtype {value[column].dtype}); "
                    "encode it, or use the formula interface, which expands categorical columns."
                )
        array = value.to_numpy(dtype=float, na_value=np.nan)
    elif isinstance(value, pd.Series):
        names = [str(value.name)] if value.name is not None else None
        if not (pd.api.types.is_numeric_dtype(value) or pd.api.types.is_bool_dtype(value)):
            raise TypeError(f"{argument} is not numeric (dtype {value.dtype}).")
        array = value.to_numpy(dtype=float, na_value=np.nan)
    else:
        names = None
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{argument} must be numeric array-like; could not convert it ({error}).") from None
    if array.ndim == 0:
        raise ValueError(f"{argument} must be an array with one value per row; got a scalar.")
    if array.ndim > 2:
        raise ValueError(f"{argument} must be one- or two-dimensional; got shape {array.shape}.")
    if ndim == 1:
        if array.ndim == 2:
            if array.shape[1] != 1:
                raise ValueError(f"{argument} must be one-dimensional; got shape {array.shape}.")
            array = array[:, 0]
    elif array.ndim == 1:
        array = array[:, None]
    ncols = 1 if array.ndim == 1 else array.shape[1]
    if names is None:
        names = [default_name] if ncols == 1 else [f"{default_name}{k + 1}" for k in range(ncols)]
    # a memory map is read where it lies (chunk by chunk, even strided), as is an array stored by
    # rows or by columns (a pandas frame's values are often by columns); others are copied by rows
    kept = mapped or array.flags.c_contiguous or array.flags.f_contiguous
    return Variable(array if kept else np.ascontiguousarray(array), names, index)


class _Passes:
    """Counts the passes made over a sample's rows."""

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True)
class Sample:
    """Validated arrays of one sample (labeled or unlabeled), all with the same rows.

    ``summary`` holds what the scan at validation collected (see
    :func:`make_sample`); :meth:`column` and :meth:`reduce` give the fits the same
    view of the rows as a :class:`ChunkedSample`'s, with the whole arrays as one
    partition.
    """

    variables: dict[str, Variable]
    n_dropped: int = 0
    kept: np.ndarray | None = field(default=None, repr=False)
    summary: dict = field(default_factory=dict, repr=False)
    _passes: _Passes = field(default_factory=_Passes, repr=False, compare=False)

    #: the rows are in memory, one partition
    partitioned = False

    def __getitem__(self, key: str) -> np.ndarray:
        return self.variables[key].values

    def __contains__(self, key: str) -> bool:
        return key in self.variables

    def names(self, key: str) -> list[str]:
        return self.variables[key].names

    @property
    def nobs(self) -> int:
        return next(iter(self.variables.values())).nrows

    @property
    def passes(self) -> int:
        """Passes made over the rows by :meth:`reduce`."""
        return self._passes.count

    def column(self, key: str) -> Column:
        """The fits' handle of variable ``key``."""
        return Column(self, key, self.variables[key].values.shape)

    def reduce(self, function: Callable, combine: Callable = add_partials):
        """``function`` of the whole arrays as one partition (one pass)."""
        self._passes.count += 1
        arrays = {key: variable.values for key, variable in self.variables.items()}
        return function(Partition(arrays, self.nobs, 0, ""))

    def take(self, rows: np.ndarray) -> "Sample":
        """The sample restricted to (or resampled at) integer positions ``rows``."""
        return Sample({name: Variable(v.values[rows], v.names) for name, v in self.variables.items()})


#: a check of one variable's values (raises ``ValueError`` naming positions with
#: :func:`~ppinfer.core.sources.current_position`)
Check = tuple[str, Callable[[np.ndarray], None]]
#: partial sums collected by the scan: a function of a chunk's arrays (summed with ``add_partials``)
Accumulator = Callable[[Mapping[str, np.ndarray]], object]


def make_sample(variables: Mapping[str, Variable], *, missing: str, label: str, checks: Sequence[Check] = (),
                accumulators: Mapping[str, Accumulator] | None = None) -> "Sample | ChunkedSample":
    """Check that ``variables`` describe the same rows, then handle missing values.

    Lengths must agree; pandas inputs must share one index (positions are used,
    so a different index would silently pair the wrong rows). Rows with NaN or
    infinite values raise (``missing="raise"``) or are dropped from every array
    at once (``missing="drop"``), so that arrays such as cluster ids stay aligned.
    ``checks`` then run on each variable's (kept) values and ``accumulators`` are
    summed over the rows into ``sample.summary``, all in the same chunked scan.
    Variables whose rows stay in their source give a :class:`ChunkedSample`,
    checked in one pass over its partitions.
    """
    missing = choose(missing, MISSING_OPTIONS, "missing")
    accumulators = dict(accumulators or {})
    items = list(variables.items())
    if any(isinstance(v.values, ChunkedInput) for _, v in items):
        if label == "labeled":
            chunked = [name for name, v in items if isinstance(v.values, ChunkedInput)]
            raise TypeError(
                f"{chunked[0]}: the labeled sample must be held in memory (NumPy or pandas); only the "
                "unlabeled sample can be a Dask collection, Parquet files or a memory map."
            )
        return ChunkedSample.scan(variables, missing=missing, label=label, checks=checks,
                                  accumulators=accumulators)
    first_name, first = items[0]
    for name, variable in items[1:]:
        if variable.nrows != first.nrows:
            raise ValueError(
                f"{name} has {variable.nrows} rows but {first_name} has {first.nrows}; "
                f"the {label} arrays must have one row per {label} unit."
            )
    indexed = [(name, v.index) for name, v in items if v.index is not None]
    for name, index in indexed[1:]:
        if not index.equals(indexed[0][1]):
            raise ValueError(
                f"{name} and {indexed[0][0]} are pandas objects with different indexes; "
                "align them (or pass NumPy arrays, which are paired by position)."
            )
    n = first.nrows
    if n == 0:
        raise ValueError(f"{first_name} is empty: the {label} sample needs at least one row.")
    finite = np.ones(n, dtype=bool) if missing == "drop" else None
    checked = missing == "raise"
    summary = None
    step = _check_rows(items)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        arrays = {name: variable.values[rows] for name, variable in items}
        # with missing="raise" the sums come first: they are needed anyway, and some prove their
        # variables finite (a Gram matrix's diagonal), which then need no check of their own
        sums = _accumulate(accumulators, arrays) if checked else {}
        proven = _proven_finite(accumulators, sums)
        for name, variable in items:
            chunk = arrays[name]
            if name in proven or _all_finite(chunk):
                continue
            row_ok = _finite_rows(chunk)
            if row_ok.all():  # rows whose sums overflowed, all of them finite
                continue
            if finite is not None:
                finite[rows] &= row_ok
            else:
                _raise_not_finite(name, variable.values, start + int(np.flatnonzero(~row_ok)[0]))
        if checked:
            with positions(start):
                for key, check in checks:
                    check(arrays[key])
            summary = add_partials(summary, sums)
    if finite is None or finite.all():
        sample = Sample(dict(variables))
    else:
        if not finite.any():
            raise ValueError(f"every {label} row has a NaN or infinite value; nothing is left after dropping.")
        kept = {
            name: Variable(
                np.ascontiguousarray(v.values[finite]), v.names, None if v.index is None else v.index[finite]
            )
            for name, v in items
        }
        sample = Sample(kept, n_dropped=int((~finite).sum()), kept=finite)
    if not checked:
        kept_n = sample.nobs
        # checks name a bad row by its position in the arrays given, not among the kept rows
        given = None if sample.kept is None else np.flatnonzero(sample.kept)
        for start in range(0, kept_n, step):
            rows = slice(start, min(start + step, kept_n))
            summary = add_partials(summary, _check_chunk(sample.variables, rows, start, checks, accumulators,
                                                         None if given is None else given[rows]))
    if summary:
        sample.summary.update(summary)
    sample._passes.count = 1  # the scan
    return sample


def _check_rows(items) -> int:
    """Rows per chunk of a scan in memory: :data:`CHECK_ROWS`, or more for a narrow sample, so
    that a chunk holds about :data:`CHECK_VALUES` values (long chunks spread the scan's work
    per chunk over many rows; the accumulators' products take cache-sized pieces of them)."""
    width = sum(_width(variable.values) for _, variable in items)
    return max(CHECK_ROWS, CHECK_VALUES // max(width, 1))


#: zeros for :func:`_all_finite` (read only; pages never written stay the kernel's shared zero page)
_ZEROS = np.zeros(1 << 19)
_ZEROS.flags.writeable = False


def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite: ``0 * x`` is 0 for a finite ``x`` and NaN otherwise, so
    one dot product with zeros per piece of ``values`` decides, without a temporary the size
    of ``values`` (a plain dot product: no BLAS skips its zero factors). The rows of a 2-D
    array that is not contiguous (a memory map's columns), which would be copied to be
    flattened, are summed instead (one product with ones, read in place): a NaN or an
    infinite value makes its row's sum non-finite (so would finite values summing past the
    largest float; the caller then looks at the values themselves and finds nothing)."""
    if values.ndim == 2 and not values.flags.c_contiguous:
        with np.errstate(invalid="ignore", over="ignore"):
            return bool(np.isfinite(values @ np.ones(values.shape[1])).all())
    rows = max(1, _ZEROS.shape[0] // max(_width(values), 1))
    with np.errstate(invalid="ignore"):
        for start in range(0, values.shape[0], rows):
            flat = values[start : start + rows].reshape(-1)
            if np.isnan(flat @ _ZEROS[: flat.shape[0]]):
                return False
    return True


def _accumulate(accumulators: Mapping[str, "Accumulator"], arrays: Mapping[str, np.ndarray]) -> dict:
    """Each accumulator's partial sums of a chunk (NaNs, if any, are raised on by the caller)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return {name: accumulate(arrays) for name, accumulate in accumulators.items()}


def _proven_finite(accumulators: Mapping[str, "Accumulator"], sums: Mapping[str, object]) -> set[str]:
    """Variables whose values the accumulators' sums prove finite (an accumulator with a
    ``finite(result)`` method names them: a Gram matrix with a finite diagonal, a finite sum)."""
    proven: set[str] = set()
    for name, result in sums.items():
        finite = getattr(accumulators[name], "finite", None)
        if finite is not None and result is not None:
            proven.update(finite(result))
    return proven


def _finite_rows(values: np.ndarray) -> np.ndarray:
    if _all_finite(values):
        return np.ones(values.shape[0], dtype=bool)
    ok = np.isfinite(values)
    return ok.all(axis=1) if ok.ndim == 2 else ok


def _raise_not_finite(name: str, values: np.ndarray, first: int) -> None:
    count = 0
    for start in range(0, values.shape[0], CHECK_ROWS):
        count += int((~_finite_rows(values[start : start + CHECK_ROWS])).sum())
    raise ValueError(
        f"{name} has {count} row(s) with NaN or infinite values (first at position {first}); "
        "clean them, or pass missing='drop' to drop incomplete rows from every array."
    )


def _check_chunk(variables: Mapping[str, Variable], rows: slice, offset: int, checks, accumulators,
                 given: np.ndarray | None = None) -> dict:
    arrays = {name: v.values[rows] for name, v in variables.items()}
    with positions(offset, kept=None if given is None else given - offset):
        for key, check in checks:
            check(arrays[key])
    return {name: accumulate(arrays) for name, accumulate in accumulators.items()}


# -- samples whose rows stay in their source ------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    """How the scan reads one variable from a partition."""

    key: str  # the variable's key in the source's partitions
    argument: str
    kind: str
    ncols: int | None


@dataclass(frozen=True)
class _Reader:
    """Turns a source's partition into the sample's: float values of the declared shapes,
    and, with ``missing="drop"``, without the rows holding a NaN, an infinite value or a
    missing label. Runs on every pass (on Dask workers too)."""

    specs: dict
    missing: str

    def read(self, partition: Partition, *, validate: bool = False) -> tuple[Partition, int]:
        arrays, bad = {}, None
        for name, spec in self.specs.items():
            values = partition[spec.key]
            if spec.kind == "labels":
                values = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
                ok = ~pd.isna(values)
            else:
                if isinstance(values, np.ndarray) and values.dtype == object:  # pandas NA (a nullable column): missing
                    values = np.where(pd.isna(values), np.nan, values)
                try:
                    values = np.asarray(values, dtype=float)
                except (TypeError, ValueError) as error:
                    raise TypeError(
                        f"{spec.argument} must be numeric; could not convert {partition.describe()} ({error})."
                    ) from None
                values = self._shaped(values, spec, partition)
                check = validate or self.missing == "drop"
                ok = None if not check or _all_finite(values) else _finite_rows(values)
            if ok is not None and not ok.all():
                if self.missing == "raise":
                    if validate:
                        first = int(np.flatnonzero(~ok)[0])
                        what = "missing label(s)" if spec.kind == "labels" else "NaN or infinite value(s)"
                        raise ValueError(
                            f"{spec.argument} has {int((~ok).sum())} row(s) with {what} in {partition.describe()} "
                            f"(first at {partition.where(first)}); clean them, or pass missing='drop' to drop "
                            "incomplete rows from every array."
                        )
                else:
                    bad = ~ok if bad is None else bad | ~ok
            arrays[name] = values
        if bad is not None and bad.any():
            keep = ~bad
            arrays = {name: values[keep] for name, values in arrays.items()}
            kept = np.flatnonzero(keep) if partition.kept is None else partition.kept[keep]
            return Partition(arrays, int(keep.sum()), partition.offset, partition.label, partition.base,
                             kept=kept), int(bad.sum()) + partition.dropped
        return Partition(arrays, partition.nrows, partition.offset, partition.label, partition.base,
                         kept=partition.kept), partition.dropped

    @staticmethod
    def _shaped(values: np.ndarray, spec: _Spec, partition: Partition) -> np.ndarray:
        if spec.ncols is None:
            if values.ndim == 2 and values.shape[1] == 1:
                return values[:, 0]
            if values.ndim != 1:
                raise ValueError(f"{spec.argument} must be one-dimensional; {partition.describe()} has shape {values.shape}.")
            return values
        if values.ndim == 1:
            values = values[:, None]
        if values.shape[1] != spec.ncols:
            raise ValueError(
                f"{spec.argument} has {values.shape[1]} column(s) in {partition.describe()}; "
                f"expected {spec.ncols}."
            )
        return values


@dataclass(frozen=True)
class _Scan:
    """The validation pass: a partition's row counts, labels, checks and accumulators."""

    reader: _Reader
    checks: tuple
    accumulators: dict
    labels: tuple

    def __call__(self, partition: Partition) -> dict:
        clean, dropped = self.reader.read(partition, validate=True)
        with positions(clean.offset, clean.label, clean.base, clean.kept):
            for key, check in self.checks:
                check(clean[key])
        out = {"rows": clean.nrows, "dropped": dropped}
        out["labels"] = {key: LabelTally.of(clean[key]) for key in self.labels}
        out["summary"] = {name: accumulate(clean) for name, accumulate in self.accumulators.items()}
        return out


@dataclass(frozen=True)
class _Cleaned:
    """Applies ``function`` to the reader's version of each partition."""

    reader: _Reader
    function: Callable

    def __call__(self, partition: Partition):
        return self.function(self.reader.read(partition)[0])


class LabelTally:
    """Distinct labels in order of first appearance, with their row counts (mergeable)."""

    def __init__(self, uniques: pd.Index, counts: np.ndarray):
        self.uniques, self.counts = uniques, counts

    @classmethod
    def of(cls, values: np.ndarray) -> "LabelTally":
        codes, uniques = pd.factorize(values)
        return cls(pd.Index(uniques), np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(float))

    def merge(self, other: "LabelTally") -> "LabelTally":
        position = self.uniques.get_indexer(other.uniques)
        new = position < 0
        uniques = self.uniques.append(other.uniques[new])
        counts = np.concatenate([self.counts, other.counts[new]])
        counts[position[~new]] += other.counts[~new]
        return LabelTally(uniques, counts)


@dataclass(frozen=True)
class LabelCoder:
    """Labels to the integer codes of a shared code space (as floats, like in-memory codes)."""

    labels: pd.Index

    def __call__(self, values: np.ndarray) -> np.ndarray:
        codes = self.labels.get_indexer(values)
        if np.any(codes < 0):
            raise ValueError(f"label(s) {pd.unique(values[codes < 0])[:5].tolist()} were not seen when the sample was scanned.")
        return codes.astype(float)


class ChunkedSample:
    """A validated sample whose rows stay in their source, read partition by partition.

    Built by :func:`make_sample` from :class:`ChunkedInput` variables after one
    scan of the source (:meth:`scan`), which checks every value, counts the
    rows (and those dropped), runs the model's checks and sums its
    accumulators (``summary``), and collects the distinct design labels. Its
    variables are :class:`~ppinfer.core.sources.Column` handles; every pass over
    the rows is one :meth:`reduce` (counted in ``passes``).
    """

    partitioned = True
    kept = None

    def __init__(self, source: RowSource, reader: _Reader, variables: dict[str, Variable], nobs: int,
                 n_dropped: int, summary: dict, labels: dict):
        self.source, self.reader, self.variables = source, reader, variables
        self._nobs, self.n_dropped, self.summary, self.labels = nobs, n_dropped, summary, labels
        self._passes = _Passes()

    @classmethod
    def scan(cls, variables: Mapping[str, Variable], *, missing: str, label: str, checks=(), accumulators=None):
        items = {name: v if v.partitioned is None or isinstance(v.values, ChunkedInput) else
                 Variable(v.partitioned, v.names) for name, v in variables.items()}
        source, keys = _source_of(items, label)
        specs = {}
        for name, variable in items.items():
            value = variable.values
            if isinstance(value, ChunkedInput):
                specs[name] = _Spec(keys[name], value.argument, value.kind, value.ncols)
            else:
                specs[name] = _Spec(keys[name], name, "numeric", None if value.ndim == 1 else value.shape[1])
        reader = _Reader(specs, missing)
        label_keys = tuple(name for name, spec in specs.items() if spec.kind == "labels")
        result = source.reduce(_Scan(reader, tuple(checks), dict(accumulators or {}), label_keys))
        # a source without rows (a memory map or Parquet files of 0 rows) has no partition to reduce
        nobs, dropped = (0, 0) if result is None else (int(result["rows"]), int(result["dropped"]))
        if nobs == 0:
            what = "every row has a NaN or infinite value or a missing label" if dropped else "it has no rows"
            raise ValueError(f"the {label} sample is empty: {what}.")
        coders = {}
        for key in label_keys:
            known = items[key].values.known
            seen = result["labels"][key].uniques
            labels = pd.Index(known if known is not None else [], dtype=object)
            coders[key] = LabelCoder(labels.append(seen[~seen.isin(labels)]) if len(labels) else pd.Index(seen))
        kept = {}
        sample = cls(source, reader, kept, nobs, dropped, dict(result["summary"]), {})
        for name, variable in items.items():
            spec = specs[name]
            shape = (nobs,) if spec.ncols is None else (nobs, spec.ncols)
            if spec.kind == "labels":
                column = Column(sample, name, shape, coders[name])
                sample.labels[name] = (result["labels"][name], coders[name].labels)
            else:
                column = Column(sample, name, shape)
            kept[name] = Variable(column, variable.names)
        sample._passes.count = 1  # the scan
        return sample

    def __getitem__(self, key: str) -> Column:
        return self.variables[key].values

    def __contains__(self, key: str) -> bool:
        return key in self.variables

    def names(self, key: str) -> list[str]:
        return self.variables[key].names

    def column(self, key: str) -> Column:
        return self.variables[key].values

    @property
    def nobs(self) -> int:
        return self._nobs

    @property
    def passes(self) -> int:
        return self._passes.count

    def reduce(self, function: Callable, combine: Callable = add_partials):
        """``combine`` of ``function`` over the partitions, as the reader cleans them (one pass)."""
        self._passes.count += 1
        return self.source.reduce(_Cleaned(self.reader, function), combine)

    def take(self, rows):
        raise ValueError(
            f"the unlabeled sample is read from {self.source.kind} partition by partition, so its rows cannot "
            "be resampled: use ci='analytic' (the design-based variance), or load the sample into memory."
        )

    def __repr__(self) -> str:
        return f"<ChunkedSample of {self._nobs} rows from {self.source.kind}>"


def _in_memory(value) -> bool:
    """An input held in memory (a memory map, design labels), sliced alongside the partitions of any source."""
    return (isinstance(value, ChunkedInput) and value.source is None and not is_dask(value.value)
            and not isinstance(value.value, ParquetColumns))


def _as_array(value) -> np.ndarray:
    """An in-memory input's rows as one NumPy array (a NumPy array as given: no copy)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, pd.DataFrame):
        value = value.iloc[:, 0]
    return value.to_numpy() if isinstance(value, pd.Series) else np.asarray(value, dtype=object)


def _source_of(items: Mapping[str, Variable], label: str = "unlabeled") -> tuple[RowSource, dict[str, str]]:
    """One source holding every variable, and each variable's key in it.

    NumPy arrays (and memory maps, and labels held in memory) are sliced
    alongside the partitions of the other variables' source.
    """
    chunked = {name: v.values for name, v in items.items()
               if isinstance(v.values, ChunkedInput) and not _in_memory(v.values)}
    arrays = {name: _as_array(v.values.value) if _in_memory(v.values) else v.values for name, v in items.items()
              if name not in chunked}
    built = {id(c.source): c.source for c in chunked.values() if c.source is not None}
    keys = {name: (chunked[name].key or name) if name in chunked else name for name in items}
    _check_row_counts(items, label)
    if built:
        if len(built) > 1 or any(c.source is None for c in chunked.values()) or arrays:
            raise TypeError(
                "the unlabeled sample mixes a formula's data with other arrays; give every unlabeled column "
                "through the formula's data (column names)."
            )
        return next(iter(built.values())), keys
    values = {name: c.value for name, c in chunked.items()}
    if any(is_dask(v) for v in values.values()):
        if not all(is_dask(v) for v in values.values()):
            raise TypeError("the unlabeled sample mixes Dask collections with other sources; give them all as Dask collections.")
        return DaskSource({**values, **arrays}), keys
    if any(isinstance(v, ParquetColumns) for v in values.values()):
        tables = {tuple(v.table.paths) for v in values.values() if isinstance(v, ParquetColumns)}
        if len(tables) > 1 or not all(isinstance(v, ParquetColumns) for v in values.values()):
            raise TypeError("the unlabeled Parquet columns must come from one ppinfer.read_parquet table.")
        paths = list(next(iter(tables)))
        return ParquetSource(paths, {name: v.names for name, v in values.items()}, extra=arrays), keys
    return MemorySource({**values, **arrays}), keys


def _rows_of(value) -> int | None:
    """Rows of an unlabeled argument when known without reading it (None: unknown)."""
    if isinstance(value, ChunkedInput):
        if value.source is not None:
            return None
        value = value.value
    if is_dask(value):  # a DataFrame's or Series' partition lengths are unknown, an array's chunks may be (NaN)
        rows = value.shape[0] if hasattr(value, "chunks") else np.nan
        return None if np.isnan(rows) else int(rows)
    if isinstance(value, ParquetColumns):
        return value.shape[0]
    return len(value)


def _check_row_counts(items: Mapping[str, Variable], label: str) -> None:
    """Raise if two arguments of a partitioned sample have different numbers of rows."""
    first, tables = None, set()
    for name, variable in items.items():
        value = variable.values
        inner = value.value if isinstance(value, ChunkedInput) else value
        if isinstance(inner, ParquetColumns):
            if id(inner.table) in tables:  # columns of one table: its rows (the files' metadata read once)
                continue
            tables.add(id(inner.table))
        rows = _rows_of(value)
        if rows is None:
            continue
        argument = value.argument if isinstance(value, ChunkedInput) else name
        if first is None:
            first = (argument, rows)
        elif rows != first[1]:
            raise ValueError(
                f"{argument} has {rows} rows but {first[0]} has {first[1]}; "
                f"the {label} arrays must have one row per {label} unit."
            )


def match_columns(X: Variable, X_unlabeled: Variable, argument: str = "X_unlabeled") -> Variable:
    """Return ``X_unlabeled`` (named ``argument`` in messages) with the columns of ``X``, or raise if they differ.

    Two pandas designs (or a pandas design and a Dask DataFrame or Parquet
    columns) are matched by column name (and reordered if needed); otherwise
    the designs must have the same number of columns.
    """
    chunked = isinstance(X_unlabeled.values, ChunkedInput)
    named = X_unlabeled.index is not None or (chunked and X_unlabeled.values.named)
    if X.index is not None and named:
        missing = [c for c in X.names if c not in X_unlabeled.names]
        extra = [c for c in X_unlabeled.names if c not in X.names]
        if missing or extra or len(X.names) != len(X_unlabeled.names):
            raise ValueError(
                f"X and {argument} have different columns: "
                f"missing from {argument} {missing}, not in X {extra}."
            )
        if X_unlabeled.names != X.names:
            order = [X_unlabeled.names.index(c) for c in X.names]
            if chunked:
                return Variable(X_unlabeled.values.select(order, X.names), X.names)
            return Variable(np.ascontiguousarray(X_unlabeled.values[:, order]), X.names, X_unlabeled.index)
    else:
        width = X_unlabeled.values.ncols if chunked else X_unlabeled.values.shape[1]
        if X.values.shape[1] != width:
            raise ValueError(
                f"X has {X.values.shape[1]} columns but {argument} has {width}; "
                "both designs must have the same columns."
            )
    return Variable(X_unlabeled.values, X.names, X_unlabeled.index)


@dataclass(frozen=True)
class GramOf:
    """Accumulator of a design's Gram matrix ``X'X`` (for :func:`check_gram`)."""

    key: str

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        X = arrays[self.key]  # strided rows (a memory map's columns) go to BLAS as they are
        return X.T @ X

    def finite(self, gram: np.ndarray) -> tuple[str, ...]:
        """The design is finite if its Gram matrix's diagonal is (as for
        :class:`~ppinfer.core.fitting.NormalEquations`)."""
        return (self.key,) if np.all(np.isfinite(np.diagonal(gram))) else ()


#: rows of a design sampled by :class:`SampledGram` (every ``SAMPLED_ROW_STRIDE``-th row of each chunk)
SAMPLED_ROW_STRIDE = 16


@dataclass(frozen=True)
class SampledGram:
    """Accumulator of the Gram matrix of a design's rows sampled at a fixed stride, and their count.

    A design some of whose rows have full column rank has full rank itself, so the
    rank check of a design whose fits never need its whole Gram matrix (those of a
    GLM sum their own weighted ones) reads a sixteenth of the rows for it; only
    when the sampled rows are not of full rank (a rare category missed, rows
    sorted by a covariate) does the whole design decide (:func:`gram_of_rows`).
    Unlike :class:`GramOf`, it cannot prove the design finite: the scan checks the
    values themselves.
    """

    key: str
    stride: int = SAMPLED_ROW_STRIDE

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, float]:
        X = np.ascontiguousarray(arrays[self.key][:: self.stride])
        return X.T @ X, float(X.shape[0])


def gram_of_rows(X: np.ndarray) -> np.ndarray:
    """``X'X`` summed over chunks of :data:`CHECK_ROWS` rows (no copy of a strided design)."""
    gram = np.zeros((X.shape[1], X.shape[1]))
    for start in range(0, X.shape[0], CHECK_ROWS):
        chunk = X[start : start + CHECK_ROWS]
        gram += chunk.T @ chunk
    return gram


def full_rank(gram: np.ndarray, nrows: int) -> bool:
    """Whether :func:`check_gram` accepts the design of ``gram`` over ``nrows`` rows."""
    try:
        check_gram(gram, nrows, [""] * gram.shape[0], "")
    except ValueError:
        return False
    return True


def check_full_rank(X: np.ndarray, names: Sequence[str], argument: str) -> None:
    """Raise if the design has too few rows or linearly dependent columns.

    Works from the Gram matrix, accumulated by chunks, so a design with millions
    of rows costs one pass (see :func:`check_gram`).
    """
    nrows, ncols = X.shape
    gram = gram_of_rows(X) if nrows > ncols else np.zeros((ncols, ncols))
    check_gram(gram, nrows, names, argument)


def check_gram(gram: np.ndarray, nrows: int, names: Sequence[str], argument: str) -> None:
    """Raise if a design with Gram matrix ``gram`` over ``nrows`` rows has too few rows
    or linearly dependent columns.

    A pivoted QR of the Gram matrix's square root names the columns that are
    combinations of the others.
    """
    ncols = gram.shape[0]
    if nrows <= ncols:
        raise ValueError(
            f"{argument} has {nrows} rows and {ncols} columns; at least {ncols + 1} rows are needed "
            "to estimate the coefficients and their standard errors."
        )
    scale = np.sqrt(np.diag(gram))
    if np.any(scale == 0):
        zero = [names[k] for k in np.flatnonzero(scale == 0)]
        raise ValueError(f"{argument} has all-zero column(s) {zero}; the design is singular.")
    eigenvalues, eigenvectors = np.linalg.eigh(gram / np.outer(scale, scale))
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T
    _, r, pivots = scipy.linalg.qr(root, pivoting=True)
    diagonal = np.abs(np.diag(r))
    rank = int((diagonal > diagonal[0] * 1e-7).sum())
    if rank < ncols:
        dependent = [names[k] for k in pivots[rank:]]
        raise ValueError(
            f"{argument} is rank deficient (rank {rank} < {ncols} columns): column(s) {dependent} are "
            "linear combinations of the others (collinear design). Drop them."
        )



def check_predicted(predicted, labeled: pd.DataFrame, unlabeled: pd.DataFrame, *,
                    names: tuple[str, str] = ("data", "unlabeled"), used: Sequence[str] | None = None,
                    example: str = "{'y': 'y_llm'}") -> dict[str, str]:
    """The ``predicted`` mapping (measured column -> prediction column), checked: each measured
    column is one of ``labeled`` (and of ``used``, the variables a formula reads), each
    prediction column is in both data frames and is not itself a measured column."""
    if not isinstance(predicted, Mapping) or not predicted:
        raise TypeError(
            "predicted must map each measured column to its prediction column (a non-empty mapping), "
            f"e.g. predicted={example}; got {predicted!r}."
        )
    for measured, prediction in predicted.items():
        if not isinstance(measured, str) or not isinstance(prediction, str):
            raise TypeError(f"predicted maps column names to column names; got {measured!r}: {prediction!r}.")
        if measured not in labeled.columns:
            raise ValueError(f"predicted maps {measured!r}, which is not a column of {names[0]} (the measured values).")
        if used is not None and measured not in used:
            raise ValueError(
                f"predicted maps {measured!r}, which the formula does not use; the formula's variables are {list(used)}."
            )
        for frame, name in zip((labeled, unlabeled), names):
            if prediction not in frame.columns:
                raise ValueError(
                    f"predicted[{measured!r}] = {prediction!r} is not a column of {name}: the prediction of "
                    f"{measured!r} is needed for every row of both data frames."
                )
        if prediction in predicted or prediction == measured:
            raise ValueError(f"predicted: the prediction column {prediction!r} is itself a measured column.")
    return dict(predicted)


def check_range(values: np.ndarray, argument: str, *, low: float, high: float, what: str) -> None:
    """Raise if any value lies outside [low, high]."""
    bad = (values < low) | (values > high)
    if bad.any():
        first = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{argument} must be {what}; found {int(bad.sum())} value(s) outside "
            f"(first: {_scalar(values.ravel()[first])} at {current_position(first // _width(values))})."
        )


def check_binary(values: np.ndarray, argument: str) -> None:
    """Raise unless every value is 0 or 1."""
    bad = (values != 0) & (values != 1)
    if bad.any():
        first = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"{argument} must contain only 0 and 1; found {int(bad.sum())} other value(s) "
            f"(first: {_scalar(values.ravel()[first])} at {current_position(first // _width(values))})."
        )


def _scalar(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _width(values: np.ndarray) -> int:
    return 1 if values.ndim < 2 else values.shape[1]


def _labels(value, argument: str, native: bool = False) -> pd.Series:
    """Labels as a Series; ``native``: a NumPy array of numbers stays as it is (coded without a
    Python object per row), else arrays become objects so that labels of any types compare."""
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise ValueError(f"{argument} must be one column of labels; got {value.shape[1]} columns.")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series):
        return value
    if native and value.ndim == 1:
        return pd.Series(value, copy=False)
    array = np.asarray(value, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"{argument} must be one-dimensional (one label per row); got shape {array.shape}.")
    return pd.Series(array)


def as_cluster_labels(
    labeled, unlabeled, argument: str = "groups", argument_unlabeled: str = "groups_unlabeled"
) -> tuple[Variable | None, Variable | None, np.ndarray]:
    """Labels of any hashable type, coded in one space shared by both samples.

    A cluster with units in both samples keeps one code, so its labeled and
    unlabeled contributions can be combined. Missing labels become NaN (raised
    on, or dropped with their row, by :func:`make_sample`). Either input may be
    None. Also returns the distinct labels, indexed by code. Unlabeled labels
    whose rows stay in their source are coded when the sample is scanned, after
    the labeled ones (:class:`ChunkedInput` of kind ``"labels"``); the distinct
    labels returned are then the labeled sample's. Unlabeled labels in memory
    are coded here, and also read as labels (``Variable.partitioned``) if the
    unlabeled sample's other rows turn out to stay in their source.
    """
    if unlabeled is not None and is_chunked(unlabeled):
        left, _, uniques = as_cluster_labels(labeled, None, argument, argument_unlabeled)
        if isinstance(unlabeled, ChunkedInput):
            chunked = ChunkedInput(unlabeled.value, None, argument_unlabeled, "labels", uniques, unlabeled.source,
                                   unlabeled.key)
        else:
            chunked = _chunked_labels(unlabeled, argument_unlabeled, uniques)
        return left, Variable(chunked, [argument_unlabeled]), uniques
    given = [(name, value) for name, value in ((argument, labeled), (argument_unlabeled, unlabeled)) if value is not None]
    # NumPy numbers of one dtype in both samples are coded as they are (exactly, and without a
    # Python object per row); mixed or other types as objects (3 and 3.0 are then one label)
    native = all(isinstance(value, np.ndarray) and value.dtype.kind in "iuf" for _, value in given) and \
        len({value.dtype for _, value in given}) == 1
    series = {name: _labels(value, name, native) for name, value in given}
    if not series:
        return None, None, np.array([], dtype=object)
    codes, uniques = pd.factorize(pd.concat([s.reset_index(drop=True) for s in series.values()], ignore_index=True))
    codes = np.where(codes < 0, np.nan, codes.astype(float))
    out, start = {}, 0
    for name, value in given:
        stop = start + len(series[name])
        index = value.index if isinstance(value, (pd.Series, pd.DataFrame)) else None
        partitioned = None
        if name == argument_unlabeled:  # the labels as given (made an array only if read in partitions)
            partitioned = ChunkedInput(value, None, name, "labels", np.asarray(uniques, dtype=object))
        out[name] = Variable(codes[start:stop], [name], index, partitioned)
        start = stop
    return out.get(argument), out.get(argument_unlabeled), np.asarray(uniques, dtype=object)


def _chunked_labels(value, argument: str, known: np.ndarray) -> ChunkedInput:
    """Design labels whose rows stay in their source (one column)."""
    if isinstance(value, ParquetColumns):
        if len(value.names) != 1:
            raise ValueError(f"{argument} must be one column of labels; got {value.names}.")
    elif is_dask_frame(value):
        if len(value.columns) != 1:
            raise ValueError(f"{argument} must be one column of labels; got {len(value.columns)} columns.")
    elif getattr(value, "ndim", 1) != 1:
        raise ValueError(f"{argument} must be one-dimensional (one label per row).")
    return ChunkedInput(value, None, argument, "labels", known)


def recode_clusters(*codes: np.ndarray | None) -> tuple[list[np.ndarray | None], int, np.ndarray]:
    """Integer codes ``0..G-1`` over the clusters present in any of the arrays,
    their number, and the original code of each."""
    present = [c for c in codes if c is not None]
    if not present:
        return [None] * len(codes), 0, np.array([], dtype=np.intp)
    unique, inverse = np.unique(np.concatenate(present), return_inverse=True)
    out, start = [], 0
    for c in codes:
        if c is None:
            out.append(None)
            continue
        out.append(inverse[start : start + c.shape[0]].astype(np.intp))
        start += c.shape[0]
    return out, int(unique.size), unique.astype(np.intp)
