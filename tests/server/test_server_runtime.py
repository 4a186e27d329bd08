"""dvr-server's process settings: the garbage collector is kept off the request path."""

from __future__ import annotations

import gc

import pytest

from dvr.server.runtime import GC_YOUNG_THRESHOLD, tune_garbage_collector


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer(restore_gc):
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    start_up = [object() for _ in range(10)]  # noqa: F841 (alive at start-up)
    tune_garbage_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)


def test_a_larger_configured_threshold_is_kept(restore_gc):
    gc.set_threshold(50_000, 5, 5)
    tune_garbage_collector()
    assert gc.get_threshold() == (50_000, 5, 5)


def test_cycles_made_after_start_up_are_still_collected(restore_gc):
    tune_garbage_collector()

    class Node:
        pass

    a, b = Node(), Node()
    a.peer, b.peer = b, a
    del a, b
    assert gc.collect() >= 2
