"""The garbage collector's settings while a daemon ticks: set, shared, restored."""

from __future__ import annotations

import gc

from charged.daemon.gc_policy import YOUNG_THRESHOLD, ticking_gc


def test_the_start_is_frozen_and_young_collections_rarer_while_ticking() -> None:
    before = gc.get_threshold()
    with ticking_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (max(YOUNG_THRESHOLD, before[0]), before[1], before[2])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_nested_daemons_share_the_settings_and_the_last_one_out_restores_them() -> None:
    before = gc.get_threshold()
    with ticking_gc():
        tuned = gc.get_threshold()
        with ticking_gc():
            assert gc.get_threshold() == tuned
        assert gc.get_threshold() == tuned  # the outer daemon still ticks
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_an_error_inside_restores_the_settings() -> None:
    before = gc.get_threshold()
    try:
        with ticking_gc():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
