"""Checking option values and keyword arguments, with suggestions for near misses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def _suggestion(value: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def choose(value: Any, valid: Mapping[str, str] | Iterable[str], argument: str) -> str:
    """Return the canonical name of an option, or raise a ValueError listing the valid ones.

    ``valid`` is either a sequence of names or a mapping from accepted spellings
    (aliases included) to canonical names. Matching ignores case.
    """
    aliases = dict(valid) if isinstance(valid, Mapping) else {name: name for name in valid}
    canonical = sorted(set(aliases.values()), key=list(aliases.values()).index)
    if isinstance(value, str):
        key = value.strip().lower()
        for spelling, name in aliases.items():
            if spelling.lower() == key:
                return name
        hint = _suggestion(key, aliases)
    else:
        hint = ""
    raise ValueError(
        f"{argument}={value!r} is not valid; use one of {', '.join(map(repr, canonical))}.{hint}"
    )


def reject_unknown_keywords(function: str, unknown: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """Raise a TypeError naming unknown keyword arguments and the accepted ones."""
    if not unknown:
        return
    accepted = list(accepted)
    name = next(iter(unknown))
    raise TypeError(
        f"{function}() got an unexpected keyword argument {name!r}.{_suggestion(name, accepted)} "
        f"Accepted keywords: {', '.join(accepted)}."
    )
