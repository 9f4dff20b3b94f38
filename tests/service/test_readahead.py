"""read_ahead: same items, same order, errors at the same place, early close stops the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from support.helpers import wait_for
from syncd.readahead import read_ahead


def test_items_arrive_in_order_and_produced_in_another_thread() -> None:
    threads: set[str] = set()

    def source() -> Iterator[int]:
        for n in range(50):
            threads.add(threading.current_thread().name)
            yield n

    assert list(read_ahead(source(), depth=2, name="producer")) == list(range(50))
    assert threads == {"producer"}


def test_an_error_from_the_source_is_raised_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("dropped")

    seen: list[int] = []
    with pytest.raises(ConnectionError, match="dropped"):
        for item in read_ahead(source()):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_early_stops_the_worker_and_closes_the_source_in_its_thread() -> None:
    closed_in: list[str] = []
    produced: list[int] = []

    def source() -> Iterator[int]:
        try:
            for n in range(1_000_000):
                produced.append(n)
                yield n
        finally:
            closed_in.append(threading.current_thread().name)

    reader = read_ahead(source(), depth=1, name="producer")
    assert next(reader) == 0
    reader.close()
    wait_for(lambda: closed_in, timeout=5, what="the source closed")
    assert closed_in == ["producer"]
    assert len(produced) <= 3  # one handed out, at most one waiting, one being offered
    assert not any(t.name == "producer" for t in threading.enumerate())
