"""The one duration grammar (pondfs.durations), against seconds computed by hand from
datetime.timedelta, which knows what a minute, hour, day and week are."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from pondfs.durations import parse_duration

ACCEPTED = {
    "90": timedelta(seconds=90),
    "0": timedelta(0),
    "0.5": timedelta(seconds=0.5),
    "30s": timedelta(seconds=30),
    "0.5s": timedelta(seconds=0.5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1.5h": timedelta(hours=1.5),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "2w": timedelta(weeks=2),
    "1d12h": timedelta(days=1, hours=12),
    "1h30m": timedelta(hours=1, minutes=30),
    "30m1h": timedelta(hours=1, minutes=30),
    "1w2d3h4m5s": timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5),
    "007m": timedelta(minutes=7),
}

REFUSED = ["", " ", "h", "1x", "1h ", " 1h", "1 h", "-1h", "+1h", "1e3", "1.h", ".5h",
           "1h30", "1hh", "1H", "1ms", "ten days", "1,5h", "∞"]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED.items())
def test_accepted(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected.total_seconds()


@pytest.mark.parametrize("text", REFUSED)
def test_refused_with_what_a_duration_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^not a duration: {re.escape(repr(text))} \(.*1d12h"):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 90, 1.5, b"1h"])
def test_only_text_is_a_duration(value: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_a_spec_duration_is_whole_seconds_above_zero() -> None:
    from pondfs.dynamic.computed import parse_duration as spec_duration
    from pondfs.resources import SpecError

    assert spec_duration("1d12h", "spec.resolutions[0]") == 129600
    assert spec_duration("90", "spec.resolutions[0]") == 90
    for text, reason in (("0h", "above 0"), ("0.5s", "whole number"),
                         ("90x", "not a duration: '90x'")):
        with pytest.raises(SpecError, match=rf"^spec.resolutions\[1\]: .*{reason}"):
            spec_duration(text, "spec.resolutions[1]")
