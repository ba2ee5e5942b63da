"""Progress bars for long loops: tqdm when it is installed, a plain line otherwise.

Every long-running function takes ``progress="auto"``: a bar is drawn only when
someone is watching (standard error is a terminal, or the code runs in a Jupyter
notebook), ``True`` draws it anyway, ``False`` never does. With tqdm installed
(``pip install "ppinfer[progress]"``) the bar is ``tqdm.auto``'s (a widget in
notebooks); without it, one line on standard error rewritten in place.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

PROGRESS_OPTIONS = (True, False, "auto")


def check_progress(value: Any, argument: str = "progress") -> bool | str:
    """Return ``value`` if it is True, False or "auto"; raise a TypeError otherwise."""
    if isinstance(value, (bool, str)) and value in PROGRESS_OPTIONS:
        return value
    raise TypeError(
        f"{argument} must be True, False or 'auto' (a bar only on a terminal or in a notebook); got {value!r}."
    )


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: only a running IPython has it loaded
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    # Jupyter kernels run ZMQInteractiveShell; Google Colab its own Shell
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def shown(enabled: bool | str) -> bool:
    """Whether a bar with this ``progress`` setting is drawn here and now."""
    enabled = check_progress(enabled)
    if enabled == "auto":
        return _stderr_is_terminal() or _in_notebook()
    return enabled


class _Silent:
    """The meter when nothing is shown: iteration passes through, updates do nothing."""

    def __init__(self, iterable: Iterable | None):
        self._iterable = iterable

    def __iter__(self) -> Iterator:
        return iter(self._iterable)

    def update(self, count: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Line(_Silent):
    """One line on standard error, rewritten at most four times a second: done, elapsed, time left."""

    def __init__(self, iterable: Iterable | None, total: int | None, description: str, unit: str):
        super().__init__(iterable)
        self.total, self.description, self.unit = total, description, unit
        self.done, self._closed = 0, False
        self._start = self._shown = time.perf_counter()

    def __iter__(self) -> Iterator:
        for item in self._iterable:
            yield item
            self.update()
        self.close()

    def update(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self._shown >= 0.25 or (self.total is not None and self.done >= self.total):
            self._shown = now
            self._write(now)

    def _write(self, now: float) -> None:
        elapsed = now - self._start
        if self.total:
            left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            text = (f"{self.done}/{self.total} {self.unit} ({self.done / self.total:.0%}), "
                    f"{elapsed:.0f} s elapsed, about {left:.0f} s left")
        else:
            text = f"{self.done} {self.unit}, {elapsed:.0f} s elapsed"
        sys.stderr.write(f"\r{self.description}: {text}   ")
        sys.stderr.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    enabled: bool | str = "auto",
    description: str = "",
    unit: str = "it",
):
    """A progress bar around ``iterable``, or one to advance by hand with ``update(count)``.

    Parameters
    ----------
    iterable : iterable, optional
        Items to pass through. Without it, call ``update(count)`` as work is done
        and ``close()`` at the end (or use the bar as a context manager).
    total : int, optional
        Number of items (or units of work); ``len(iterable)`` when it has one.
    enabled : {"auto", True, False}
        ``"auto"`` draws the bar only when standard error is a terminal or the
        code runs in a notebook; ``True`` always; ``False`` never.
    description : str
        What is being done, shown before the bar.
    unit : str
        Name of one item ("replications", "folds").

    Returns
    -------
    iterable with ``update`` and ``close``
        A ``tqdm.auto.tqdm`` bar when tqdm is installed and the bar is shown;
        else a plain one-line meter on standard error, or a silent pass-through.

    Examples
    --------
    >>> from ppinfer._progress import progress
    >>> [x * x for x in progress(range(4), enabled=False)]
    [0, 1, 4, 9]
    >>> with progress(total=10, enabled=False) as bar:
    ...     bar.update(10)
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not shown(enabled):
        return _Silent(iterable)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Line(iterable, total, description, unit)
    return tqdm(iterable, total=total, desc=description, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True)
