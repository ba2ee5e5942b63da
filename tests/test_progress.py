"""Progress bars: shown only when asked for or watched, tqdm when installed, a plain line without it."""

from __future__ import annotations

import io
import sys

import pytest

from ppinfer import _progress
from ppinfer._progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_bar_passes_items_through_and_writes_nothing(capsys):
    assert list(progress(range(5), enabled=False)) == [0, 1, 2, 3, 4]
    with progress(total=3, enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")


def test_auto_shows_the_bar_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not _progress.shown("auto")
    list(progress(range(3), enabled="auto", description="work"))
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _progress.shown("auto")
    list(progress(range(3), enabled="auto", description="work"))
    assert "work" in sys.stderr.getvalue()


def test_auto_shows_the_bar_in_a_notebook(monkeypatch):
    class ZMQInteractiveShell:  # the shell class of a Jupyter kernel
        pass

    class FakeIPython:
        @staticmethod
        def get_ipython():
            return ZMQInteractiveShell()

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    assert _progress.shown("auto")


def test_tqdm_bar_when_installed(capsys):
    tqdm = pytest.importorskip("tqdm.auto")
    bar = progress(range(4), enabled=True, description="fitting", unit="folds")
    assert isinstance(bar, tqdm.tqdm)
    assert list(bar) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "fitting" in err and "4/4" in err


def test_plain_line_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert list(progress(range(4), enabled=True, description="simulating", unit="replications")) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert err.startswith("\rsimulating: ") and "4/4 replications (100%)" in err and err.endswith("\n")
    with progress(total=10, enabled=True, description="by hand", unit="steps") as bar:
        bar.update(4)
        bar.update(6)
    err = capsys.readouterr().err
    assert "10/10 steps (100%)" in err and err.count("\n") == 1  # closed once


@pytest.mark.parametrize("value", ["yes", 1, None, "Auto "])
def test_bad_setting_names_the_argument(value):
    with pytest.raises(TypeError, match=r"progress must be True, False or 'auto'"):
        progress(range(2), enabled=value)
