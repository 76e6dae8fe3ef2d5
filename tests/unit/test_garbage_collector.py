"""The server process's collector settings, applied once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tally.server.app import YOUNG_OBJECTS_PER_COLLECTION, tune_garbage_collector


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_what_the_server_holds_at_start_is_frozen_and_young_objects_wait_for_more_company() -> None:
    """After tuning, the objects alive at start are out of the collector's walks and gen 0 waits for 10,000."""
    before = gc.get_freeze_count()
    tune_garbage_collector()
    assert gc.get_freeze_count() > before
    assert gc.get_threshold()[0] == YOUNG_OBJECTS_PER_COLLECTION
