from __future__ import annotations

import pytest

from app.core.formats.stops import StopMatcher

TEXT = " The capital of France is Paris.\n\nUser: and"


@pytest.mark.parametrize("split", range(1, len(TEXT)))
def test_stop_string_cut_at_every_split(split: int) -> None:
    m = StopMatcher(("\nUser:",))
    shown = m.feed(TEXT[:split])
    if m.matched is None:
        shown += m.feed(TEXT[split:])
    assert m.matched == "\nUser:"
    assert shown == " The capital of France is Paris.\n"


def test_partial_stop_is_released_at_the_end() -> None:
    m = StopMatcher(("\nUser:",))
    assert m.feed("a\nUse") == "a"
    assert m.matched is None
    assert m.flush() == "\nUse"


def test_earliest_of_several_stops_wins_and_no_stops_passes_through() -> None:
    m = StopMatcher(("<end_of_turn>", "\nUser:"))
    assert m.feed("x\nUser: y<end_of_turn>") == "x"
    assert m.matched == "\nUser:"
    assert StopMatcher(()).feed("<|x|>") == "<|x|>"
