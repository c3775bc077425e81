"""Durations as people write them, one grammar for every duration pondfs reads (a backup's
``--keep-within``, a reduce's resolutions, ...).

A duration is a number of seconds alone (``90``, ``0.5``) or one or more terms, each a
number and a unit, largest first or not: ``30s``, ``15m``, ``1h``, ``1d12h``, ``2w``, with
units s, m, h, d (86,400 s) and w (7 d). Numbers are whole or decimal, never negative; no
spaces. A number without a unit after a term (``1h30``) is refused: it reads as 1h30m to
some and 1h30s to others.
"""

from __future__ import annotations

import re

#: Seconds in each unit.
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_NUMBER = r"\d+(?:\.\d+)?"
_TERM = re.compile(rf"({_NUMBER})([smhdw])")
_DURATION = re.compile(rf"{_NUMBER}|(?:{_NUMBER}[smhdw])+")


def parse_duration(text: str) -> float:
    """Seconds in the duration ``text`` (see the module docstring); ValueError saying what a
    duration looks like otherwise.

    >>> parse_duration("1d12h"), parse_duration("90"), parse_duration("0.5s")
    (129600.0, 90.0, 0.5)
    """
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"not a duration: {text!r} (a number and a unit s, m, h, d or w, or "
                         "several: 90s, 30m, 1h, 1d12h; a number alone is seconds)")
    terms = _TERM.findall(text)
    if not terms:
        return float(text)
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in terms)


def format_duration(seconds: float) -> str:
    """A duration for people, whole seconds, at most two terms that parse_duration reads back.

    >>> format_duration(273600), format_duration(7500), format_duration(45.5)
    ('3d4h', '2h5m', '45s')
    """
    seconds = int(seconds)
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                            ("m", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size}{unit}" + (f"{rest}{smaller}" if rest else "")
    return f"{seconds}s"
