"""dvr-server's process settings: the garbage collector is kept off the request path."""

from __future__ import annotations

import gc
import weakref

import pytest

from dvr.gc_tuning import GC_YOUNG_THRESHOLD, tune_garbage_collector


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


class Node:
    peer: Node


def garbage_cycle() -> weakref.ref[Node]:
    """Two objects that only reference each other; a weak reference tells if they live."""
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    return weakref.ref(a)


@pytest.fixture
def collector_off():
    """Cycles made now stay until something collects them explicitly."""
    gc.disable()
    yield
    gc.enable()


def test_start_up_garbage_is_collected_before_the_rest_is_frozen(restore_gc, collector_off):
    gc.unfreeze()
    start_up_garbage = garbage_cycle()
    tune_garbage_collector()
    assert start_up_garbage() is None  # not frozen for the life of the process


def test_cycles_made_after_start_up_are_collected_automatically_but_less_often(restore_gc):
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    tune_garbage_collector()
    assert gc.isenabled()
    later = garbage_cycle()
    keep = [[] for _ in range(1_000)]  # > CPython's default threshold of 700 allocations
    assert later() is not None  # no young collection yet
    keep += [[] for _ in range(2 * GC_YOUNG_THRESHOLD)]
    assert later() is None  # collected without anyone calling gc.collect()
