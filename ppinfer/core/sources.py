"""Sources of row chunks: where the rows of a large (unlabeled) sample live.

Every quantity ppinfer computes from the unlabeled sample is a sum over its
rows: the fits' scores and Hessians, the design's sums by stratum and PSU, the
validation's counts and Gram matrix. A *source* hands out the sample's rows in
*partitions* (the values of every variable for a range of rows, as NumPy
arrays), and a pass over the sample is a reduction: a function maps each
partition to partial sums, which are added up.

* :class:`MemorySource`: NumPy arrays and NumPy memory maps. In-memory arrays
  are one partition (the arrays themselves, no copy), so a pass is what it was
  before sources existed; a memory map whose values are not float64 is read in
  partitions of :data:`PARTITION_ROWS` rows and converted one at a time.
* :class:`DaskSource`: Dask arrays, Series and DataFrames (optional extra
  ``dask``). Each pass is one map-reduce over the collections' partitions,
  computed by the active ``dask.distributed`` client if there is one, else by
  Dask's default scheduler.
* :class:`ParquetSource`: Parquet files read with pyarrow (optional extra
  ``parquet``) row group by row group, in partitions of :data:`PARTITION_ROWS`
  rows.

Dask and pyarrow are imported only when such an object is given. The fits read
a sample's variables through :class:`Column` handles and
:func:`reduce_rows`, which calls a function on the whole arrays of an
in-memory sample or on every partition of a partitioned one.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: rows per partition of a source read piece by piece (a memory map converted, Parquet files)
PARTITION_ROWS = 1 << 20


# -- partitions ---------------------------------------------------------------------------------
@dataclass
class Partition(Mapping):
    """The values of every variable of a sample for one range of rows.

    ``offset`` is the position of the partition's first row in the sample
    (None when unknown: a Dask collection with partitions of unknown length);
    ``label`` names where the rows come from in messages (``"partition 3"``,
    ``"file part-0.parquet"``; empty for arrays in memory, whose rows are named
    by position alone) and ``base`` is the first row's number there.
    """

    arrays: dict[str, np.ndarray]
    nrows: int
    offset: int | None = 0
    label: str = ""
    base: int = 0
    #: rows the source's transform dropped (the formula's missing values)
    dropped: int = 0
    #: the partition's row numbers of the rows left after missing rows were dropped (None: no row dropped)
    kept: np.ndarray | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def where(self, row: int) -> str:
        """Words naming the partition's row ``row`` (counted from 0 within the partition)."""
        return describe_position(row if self.kept is None else int(self.kept[row]), self.offset, self.label, self.base)

    def describe(self) -> str:
        """Words naming the partition's rows."""
        if not self.label:
            return f"positions {self.offset or 0:,} to {(self.offset or 0) + self.nrows - 1:,}"
        return f"rows {self.base:,} to {self.base + self.nrows - 1:,} of {self.label}"

    def with_arrays(self, arrays: dict[str, np.ndarray], nrows: int, dropped: int = 0,
                    kept: np.ndarray | None = None) -> "Partition":
        return Partition(arrays, nrows, self.offset, self.label, self.base, self.dropped + dropped, kept)


def describe_position(row: int, offset: int | None = 0, label: str = "", base: int = 0) -> str:
    """``"position 12"``, or ``"row 5 of partition 3 (position 1,000,005 of the sample)"``."""
    if not label:
        return f"position {(offset or 0) + row}"
    overall = "" if offset is None else f" (position {offset + row:,} of the sample)"
    return f"row {base + row:,} of {label}{overall}"


#: the partition whose rows checks are looking at (messages name positions through it)
_CURRENT = contextvars.ContextVar("ppinfer_partition", default=None)


@contextmanager
def positions(offset: int | None, label: str = "", base: int = 0, kept: np.ndarray | None = None):
    """Within the block, :func:`current_position` names rows of the given partition (``kept``: the
    partition's row numbers of the rows the checks see, when missing rows were dropped)."""
    token = _CURRENT.set((offset, label, base, kept))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_position(row: int) -> str:
    """The words for a row found bad by a check: its position in the sample (and partition)."""
    context = _CURRENT.get()
    if context is None:
        return f"position {row}"
    offset, label, base, kept = context
    return describe_position(row if kept is None else int(kept[row]), offset, label, base)


# -- combining partial results ----------------------------------------------------------------------
def add_partials(a, b):
    """Add two partial results of a reduction: numbers and arrays add, tuples and dicts
    add entry by entry, objects with a ``merge`` method merge, None is nothing."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(add_partials(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = add_partials(out.get(key), value)
        return out
    merge = getattr(a, "merge", None)
    if merge is not None:
        return merge(b)
    return a + b


# -- sources ---------------------------------------------------------------------------------------
class RowSource:
    """Partitions of a table of named variables (see the module's docstring).

    Subclasses give :meth:`reduce`; ``keys`` are the variables each partition holds.
    """

    keys: tuple[str, ...] = ()
    #: partitions live elsewhere than in this process's memory as one array each
    partitioned = True
    #: what a user would call the source, for messages
    kind = "source"

    def reduce(self, function: Callable[[Partition], object], combine: Callable = add_partials):
        """``combine`` of ``function(partition)`` over all partitions, in row order."""
        raise NotImplementedError

    @property
    def nrows(self) -> int | None:
        """Rows in the source when known without reading it (else None)."""
        return None


def _tree_reduce(values: list, combine: Callable):
    """Combine neighbours pairwise until one value is left (keeps row order)."""
    while len(values) > 1:
        values = [combine(values[k], values[k + 1]) if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class MemorySource(RowSource):
    """NumPy arrays and memory maps, all with the same rows.

    Float64 arrays (memory maps included, strided ones too) are one partition
    used as they are; arrays of another type are converted partition by
    partition (``partition_rows`` rows), so a memory map of float32 values is
    never copied whole.
    """

    kind = "NumPy arrays"

    def __init__(self, arrays: Mapping[str, np.ndarray], partition_rows: int | None = None):
        self.arrays = dict(arrays)
        self.keys = tuple(self.arrays)
        lengths = {key: value.shape[0] for key, value in self.arrays.items()}
        self._nrows = next(iter(lengths.values()))
        convert = any(value.dtype != np.float64 and value.dtype.kind in "biuf" for value in self.arrays.values())
        self.partitioned = convert
        self.partition_rows = (partition_rows or PARTITION_ROWS) if convert else max(self._nrows, 1)

    @property
    def nrows(self) -> int:
        return self._nrows

    def reduce(self, function, combine=add_partials):
        if not self.partitioned:
            return function(Partition(self.arrays, self._nrows, 0, ""))
        total = None
        for start in range(0, self._nrows, self.partition_rows):
            stop = min(start + self.partition_rows, self._nrows)
            arrays = {key: np.asarray(value[start:stop]) for key, value in self.arrays.items()}
            part = function(Partition(arrays, stop - start, start, ""))
            total = part if total is None else combine(total, part)
        return total


def is_dask(value) -> bool:
    """A Dask collection (array, Series, DataFrame), recognised without importing Dask."""
    return type(value).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(value, "__dask_graph__")


def is_dask_frame(value) -> bool:
    """A Dask DataFrame (not a Series, whose newer versions also answer to ``columns``)."""
    return is_dask(value) and type(value).__name__ == "DataFrame"


def dask_client():
    """The active ``dask.distributed`` client, or None (Dask's default scheduler is used)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _block_values(block) -> np.ndarray:
    """A Dask partition's values as a NumPy array (a pandas piece of a DataFrame: its values)."""
    to_numpy = getattr(block, "to_numpy", None)
    return to_numpy() if to_numpy is not None and not isinstance(block, np.ndarray) else np.asarray(block)


def _dask_partition(index: int, offset, keys: tuple, transform, *blocks) -> Partition:
    """Build partition ``index`` from the collections' blocks (run on a Dask worker)."""
    label = f"partition {index}"
    if transform is not None:
        place = Partition({}, len(blocks[0]), offset, label)
        return place.with_arrays(*transform(blocks[0], place))
    arrays = {key: _block_values(block) for key, block in zip(keys, blocks)}
    lengths = {key: value.shape[0] for key, value in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"the unlabeled arrays' partitions do not line up: {label} has {lengths} rows; give Dask "
            "collections with the same partitions (from one DataFrame, or arrays with equal row chunks)."
        )
    return Partition(arrays, next(iter(lengths.values())), offset, label)


def _apply_to_partition(function, index, offset, keys, transform, *blocks):
    return function(_dask_partition(index, offset, keys, transform, *blocks))


class DaskSource(RowSource):
    """Dask arrays, Series and DataFrames with the same rows, read partition by partition.

    Parameters
    ----------
    collections : mapping of key to Dask collection
        Arrays are paired by row chunks (rechunked to the first array's when
        their chunks differ); DataFrames and Series by partition number.
    transform : callable, optional
        ``transform(frame_piece, partition) -> (arrays, nrows, dropped, kept)`` builds a
        partition's variables from a piece of one DataFrame (given as the only
        collection), as the formula interface does; ``partition`` (without
        arrays) names its rows in messages.
    """

    kind = "Dask collections"

    def __init__(self, collections: Mapping[str, object], transform: Callable | None = None):
        import dask.array as da

        items = dict(collections)
        self.keys = tuple(items)
        self.transform = transform
        arrays = {key: value for key, value in items.items() if isinstance(value, da.Array)}
        chunks = None
        for value in arrays.values():
            if not any(np.isnan(c) for c in value.chunks[0]):
                chunks = value.chunks[0]
                break
        blocks, counts = {}, set()
        for key, value in items.items():
            if isinstance(value, da.Array):
                # chunks of unknown size cannot be rechunked: such blocks are paired by number, as a DataFrame's
                if chunks is not None and value.chunks[0] != chunks and not np.isnan(value.chunks[0]).any():
                    value = value.rechunk({0: chunks})
                if value.ndim == 2 and len(value.chunks[1]) > 1:
                    value = value.rechunk({1: -1})
                delayed = value.to_delayed()
                blocks[key] = list(delayed.ravel()) if value.ndim == 1 else list(delayed[:, 0])
            elif isinstance(value, np.ndarray):
                if chunks is None:
                    raise TypeError(
                        f"{key} is a NumPy array but the other unlabeled arrays are Dask collections with "
                        "partitions of unknown length; give it as a Dask collection with the same partitions."
                    )
                blocks[key] = list(da.from_array(value, chunks=(chunks,) + value.shape[1:]).to_delayed().ravel()
                                   if value.ndim == 1 else da.from_array(value, chunks=(chunks, -1)).to_delayed()[:, 0])
            else:
                blocks[key] = list(value.to_delayed())
            counts.add(len(blocks[key]))
        if len(counts) > 1:
            raise ValueError(
                "the unlabeled Dask collections have different numbers of partitions "
                f"({ {key: len(b) for key, b in blocks.items()} }); build them from one DataFrame, or give "
                "arrays with the same row chunks."
            )
        self.npartitions = counts.pop()
        self._blocks = [tuple(blocks[key][k] for key in self.keys) for k in range(self.npartitions)]
        self._offsets = [None] * self.npartitions
        if chunks is not None and len(chunks) == self.npartitions:
            self._offsets = [int(x) for x in np.concatenate([[0], np.cumsum(chunks)[:-1]])]
        self._nrows = int(sum(chunks)) if chunks is not None else None

    @property
    def nrows(self) -> int | None:
        return self._nrows

    def reduce(self, function, combine=add_partials):
        from dask import delayed

        apply = delayed(_apply_to_partition, pure=False)
        parts = [apply(function, k, self._offsets[k], self.keys, self.transform, *blocks)
                 for k, blocks in enumerate(self._blocks)]
        total = _tree_reduce(parts, delayed(combine, pure=False))
        client = dask_client()
        return client.compute(total).result() if client is not None else total.compute()


def parquet_paths(path) -> list[str]:
    """The Parquet files of a path: a file, a directory of ``*.parquet`` files, a glob
    pattern, or a list of these."""
    import glob

    given = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    files: list[str] = []
    for item in given:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*.parquet"))
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
        else:
            found = [item] if os.path.exists(item) else []
        if not found:
            raise ValueError(f"no Parquet file at {item!r}: give a file, a directory of .parquet files or a pattern.")
        files.extend(found)
    return files


#: bytes pyarrow buffers per column when it streams a row group larger than a partition
STREAM_BUFFER_BYTES = 1 << 20


def _row_group_tables(path: str, columns: Sequence[str], batch_rows: int) -> Iterator:
    """The file's rows in order, as pyarrow Tables of one row group each (or of part of one).

    A row group of at most ``batch_rows`` rows is read whole with
    ``read_row_group``: faster than ``iter_batches``, which also pre-buffers the
    column chunks of every row group of the file at once (about 900 MiB for the
    benchmark's 480 MB files). A larger row group is streamed in record batches
    of ``batch_rows`` rows without pre-buffering, so that memory stays of the
    order of a partition whatever the files' row groups.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    streamed = None
    for group in range(file.num_row_groups):
        if file.metadata.row_group(group).num_rows <= batch_rows:
            yield file.read_row_group(group, columns=columns)
            continue
        if streamed is None:
            streamed = pq.ParquetFile(path, pre_buffer=False, buffer_size=STREAM_BUFFER_BYTES)
        for batch in streamed.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns):
            yield pa.Table.from_batches([batch])


def _numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuf"


def _fill_rows(block: np.ndarray, start: int, columns: list[np.ndarray]) -> None:
    """Write ``columns`` (1-D, equal lengths) side by side into the Fortran-ordered ``block``
    from row ``start``: one contiguous copy per column (NumPy converts integers and booleans
    to float)."""
    m = columns[0].shape[0]
    for j, values in enumerate(columns):
        block[start : start + m, j] = values


class _ArrayFiller:
    """One partition's arrays, filled from the row-group slices that hold its rows.

    A variable of several columns gets one Fortran-ordered float64 block,
    allocated once; each slice's columns are converted to NumPy (a view of
    pyarrow's buffer for float64 values) and copied into place as the slice
    arrives, so a row group's memory is released once its rows are copied, even
    when the partition continues in the next row group. Each column is one
    contiguous copy, and the fits read the block as it is (BLAS takes its
    chunks, and the scaled columns of a chunk are contiguous rows of its
    transpose): at N = 10^7 from the benchmark's files, an OLS fit took 2.4
    plain reads against 3.1 with a C-ordered block. A variable
    of one column keeps the values as they come (labels stay labels), as does a
    block with a column that is not numeric (the sample's reader says which
    variable is not numeric).
    """

    def __init__(self, columns: Mapping[str, list[str]], nrows: int):
        self.columns, self.nrows, self.filled = columns, nrows, 0
        self.blocks = {key: np.empty((nrows, len(names)), order="F") for key, names in columns.items()
                       if len(names) > 1}
        self.pieces = {key: [] for key in columns if key not in self.blocks}

    @property
    def room(self) -> int:
        return self.nrows - self.filled

    def add(self, table) -> None:
        """Copy the rows of ``table`` (a slice of a row group) after those already added."""
        for key, names in self.columns.items():
            values = [table.column(name).to_numpy(zero_copy_only=False) for name in names]
            block = self.blocks.get(key)
            if block is not None and all(_numeric(v) for v in values):
                _fill_rows(block, self.filled, values)
                continue
            if block is not None:  # not numbers: raw values from here on
                self.pieces[key] = [block[: self.filled]] if self.filled else []
                del self.blocks[key]
            self.pieces[key].append(values[0] if len(values) == 1 else np.column_stack(values))
        self.filled += table.num_rows

    def arrays(self) -> dict[str, np.ndarray]:
        out = dict(self.blocks)
        for key, pieces in self.pieces.items():
            out[key] = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return out


class _FrameFiller:
    """One partition's rows as the Arrow slices that hold them, joined into one pandas
    DataFrame (a formula's input)."""

    def __init__(self, nrows: int):
        self.nrows, self.filled, self.tables = nrows, 0, []

    @property
    def room(self) -> int:
        return self.nrows - self.filled

    def add(self, table) -> None:
        self.tables.append(table)
        self.filled += table.num_rows

    def frame(self):
        import pyarrow as pa

        return (self.tables[0] if len(self.tables) == 1 else pa.concat_tables(self.tables)).to_pandas()


class ParquetSource(RowSource):
    """Columns of Parquet files read with pyarrow, row group by row group.

    Each file's rows are cut into partitions of ``batch_rows`` rows (the last
    one of a file fewer), whatever the files' row groups: a row group is read
    whole (or streamed, when it is larger than a partition) and its rows copied
    into the partitions that hold them. Memory is that of a row group and a
    partition's arrays, not of a file.

    Parameters
    ----------
    paths : sequence of str
        The files, read in order (their rows follow each other).
    columns : mapping of key to list of column names
        The file columns of each variable: one column is given as it is read,
        several as one float64 array of those columns (in that order).
    transform : callable, optional
        ``transform(frame, partition) -> (arrays, nrows, dropped, kept)`` builds the
        variables from a pandas DataFrame of the partition's columns ``read`` (the
        formula interface).
    read : sequence of str, optional
        Columns to read when ``transform`` is given.
    extra : mapping of key to NumPy array, optional
        In-memory arrays with the files' rows, sliced alongside.
    batch_rows : int, optional
        Rows per partition (:data:`PARTITION_ROWS`).
    """

    kind = "Parquet files"

    def __init__(self, paths: Sequence[str], columns: Mapping[str, list[str]] | None = None, *,
                 transform: Callable | None = None, read: Sequence[str] | None = None,
                 extra: Mapping[str, np.ndarray] | None = None, batch_rows: int | None = None):
        import pyarrow.parquet as pq

        self.paths = list(paths)
        self.columns = {key: list(names) for key, names in (columns or {}).items()}
        self.transform = transform
        self.extra = dict(extra or {})
        self.read = list(read) if read is not None else list(dict.fromkeys(c for names in self.columns.values()
                                                                               for c in names))
        self.keys = tuple(self.columns) + tuple(self.extra)
        self.batch_rows = batch_rows or PARTITION_ROWS
        self.lengths = [pq.ParquetFile(path).metadata.num_rows for path in self.paths]
        for path in self.paths:
            schema = pq.ParquetFile(path).schema_arrow
            missing = [c for c in self.read if c not in schema.names]
            if missing:
                raise ValueError(f"Parquet file {path!r} has no column(s) {missing}; it has {schema.names}.")
        for key, value in self.extra.items():
            if value.shape[0] != sum(self.lengths):
                raise ValueError(f"{key} has {value.shape[0]} rows but the Parquet files have {sum(self.lengths)}.")

    @property
    def nrows(self) -> int:
        return sum(self.lengths)

    def partitions(self) -> Iterator[Partition]:
        """The partitions in row order; each names its file and its first row there."""
        offset = 0
        for path, length in zip(self.paths, self.lengths):
            label = f"file {os.path.basename(path)}"
            for within, filler in self._filled(path, length):
                yield self._partition(filler, offset + within, label, within)
                del filler  # not held while the next partition is read
            offset += length

    def _partition(self, filler, offset: int, label: str, within: int) -> Partition:
        """The partition of a filled filler: its rows of the sample start at ``offset``."""
        place = Partition({}, filler.nrows, offset, label, within)
        if self.transform is not None:
            return place.with_arrays(*self.transform(filler.frame(), place))
        arrays = filler.arrays()
        for key, value in self.extra.items():
            arrays[key] = value[offset : offset + filler.nrows]
        return place.with_arrays(arrays, filler.nrows)

    def _filled(self, path: str, length: int) -> Iterator[tuple[int, object]]:
        """The file's partitions, filled from its row groups: (first row in the file, filler)."""
        filler, within = None, 0
        for table in _row_group_tables(path, self.read, self.batch_rows):
            start = 0
            while start < table.num_rows:
                if filler is None:
                    size = min(self.batch_rows, length - within)
                    filler = _FrameFiller(size) if self.transform is not None else _ArrayFiller(self.columns, size)
                take = min(filler.room, table.num_rows - start)
                filler.add(table.slice(start, take))
                start += take
                if filler.room == 0:
                    yield within, filler
                    within += filler.nrows
                    filler = None
            del table  # released before the next row group is read

    def reduce(self, function, combine=add_partials):
        total = None
        for partition in self.partitions():
            part = function(partition)
            total = part if total is None else combine(total, part)
            del partition  # freed before the next partition is read
        return total


class ParquetTable:
    """Parquet files as an unlabeled sample, read in batches when the model needs them.

    Select columns for the array interface (``table["x1"]``, ``table[["x1",
    "x2"]]``) or give the table as ``unlabeled`` to a formula
    (``ppinfer.ols(formula, data, unlabeled=table, yhat="pred")``; a path
    works there too). Nothing is read until the model is built.

    Parameters
    ----------
    path : str, path-like, or a list of them
        A Parquet file, a directory of ``.parquet`` files or a glob pattern.

    Examples
    --------
    >>> import ppinfer  # doctest: +SKIP
    >>> table = ppinfer.read_parquet("predictions/*.parquet")  # doctest: +SKIP
    >>> model = ppinfer.OLS(y, X, yhat, table[["x1", "x2"]], table["pred"])  # doctest: +SKIP
    """

    def __init__(self, path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                "reading Parquet files needs pyarrow: pip install 'ppinfer[parquet]'."
            ) from None
        self.paths = parquet_paths(path)
        self.column_names = list(pq.ParquetFile(self.paths[0]).schema_arrow.names)

    def __getitem__(self, columns) -> "ParquetColumns":
        names = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in names if c not in self.column_names]
        if unknown:
            raise KeyError(f"{unknown} not column(s) of the Parquet files; they have {self.column_names}.")
        return ParquetColumns(self, names, one_dimensional=isinstance(columns, str))

    @property
    def columns(self) -> list[str]:
        return list(self.column_names)

    def __len__(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(path).metadata.num_rows for path in self.paths)

    def __repr__(self) -> str:
        return f"<ParquetTable: {len(self.paths)} file(s), columns {self.column_names}>"


@dataclass(frozen=True)
class ParquetColumns:
    """Columns of a :class:`ParquetTable`, as one array argument."""

    table: ParquetTable
    names: list[str]
    one_dimensional: bool = False

    @property
    def shape(self) -> tuple:
        rows = len(self.table)
        return (rows,) if self.one_dimensional else (rows, len(self.names))

    @property
    def ndim(self) -> int:
        return 1 if self.one_dimensional else 2


def read_parquet(path) -> ParquetTable:
    """Parquet files as an unlabeled sample read in batches (see :class:`ParquetTable`).

    Parameters
    ----------
    path : str, path-like, or a list of them
        A Parquet file, a directory of ``.parquet`` files or a glob pattern.

    Returns
    -------
    ParquetTable

    Examples
    --------
    >>> import os, tempfile, numpy as np, pandas as pd, ppinfer
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=20_000)
    >>> folder = tempfile.mkdtemp()
    >>> pd.DataFrame({"x": x[300:], "pred": 1 + 2 * x[300:]}).to_parquet(os.path.join(folder, "part0.parquet"))
    >>> data = pd.DataFrame({"x": x[:300], "pred": 1 + 2 * x[:300]})
    >>> data["y"] = data["pred"] + rng.normal(size=300)
    >>> res = ppinfer.ols("y ~ x", data, unlabeled=ppinfer.read_parquet(folder), yhat="pred").fit()
    >>> res.nobs_unlabeled, res.unlabeled_passes
    (19700, 1)
    """
    return ParquetTable(path)


# -- the fits' view of a sample -------------------------------------------------------------------------
@dataclass(eq=False)
class Column:
    """One variable of a sample as the fits read it: its values in each partition.

    ``transform`` maps the stored values of a partition to the column's (the
    row mean of synthetic draws, one draw, codes of labels). A column pickles
    without its sample, so that functions holding it can be sent to Dask workers.
    """

    sample: object = field(repr=False)
    key: str | tuple
    shape: tuple
    transform: Callable | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def of(self, partition: Mapping[str, np.ndarray]) -> np.ndarray:
        if isinstance(self.key, tuple):  # a function of other columns
            return self.transform(*(column.of(partition) for column in self.key))
        values = partition[self.key]
        return values if self.transform is None else self.transform(values)

    def combine(self, other: "Column", function: Callable, shape: tuple) -> "Column":
        """The column ``function(this column's values, other's values)``."""
        return Column(self.sample, (self, other), shape, function)

    def map(self, transform: Callable, shape: tuple) -> "Column":
        """The column of ``transform`` applied to this column's values, partition by partition."""
        inner = self.transform
        composed = transform if inner is None else _Composed(inner, transform)
        return Column(self.sample, self.key, shape, composed)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["sample"] = None
        return state


@dataclass(frozen=True)
class _Composed:
    first: Callable
    second: Callable

    def __call__(self, *values):
        return self.second(self.first(*values))


def reduce_rows(function: Callable, *values, combine: Callable = add_partials):
    """``function(*arrays)`` summed over the rows of a sample.

    ``values`` are :class:`Column` handles of one sample, NumPy arrays over all
    of its rows (for a sample held in memory only) or None. Without columns,
    or for a sample in memory, ``function`` is called once on the whole arrays;
    for a partitioned sample, once per partition, and the results are added
    with ``combine`` (:func:`add_partials`).
    """
    columns = [v for v in values if isinstance(v, Column)]
    if not columns:
        return function(*values)
    sample = columns[0].sample
    if any(c.sample is not sample for c in columns):
        raise ValueError("reduce_rows: the columns belong to different samples.")
    if sample.partitioned and any(isinstance(v, np.ndarray) for v in values):
        raise TypeError("reduce_rows: a partitioned sample's rows cannot be paired with an in-memory array.")
    return sample.reduce(_RowFunction(function, values), combine)


@dataclass(frozen=True)
class _RowFunction:
    function: Callable
    values: tuple

    def __call__(self, partition):
        return self.function(*(v.of(partition) if isinstance(v, Column) else v for v in self.values))


def total_of(results: Sequence) -> object:
    """Sum of a sequence of partial results (:func:`add_partials`)."""
    total = None
    for part in results:
        total = add_partials(total, part)
    return total


__all__ = [
    "PARTITION_ROWS", "Partition", "RowSource", "MemorySource", "DaskSource", "ParquetSource", "ParquetTable",
    "ParquetColumns", "read_parquet", "Column", "reduce_rows", "add_partials", "is_dask", "is_dask_frame", "dask_client",
    "positions", "current_position", "describe_position",
]
