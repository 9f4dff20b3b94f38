"""Read a source's next batch while the store commits the current one.

A batch costs two kinds of work: the connector's (network waits, parsing) and the
store's (SQLite or PostgreSQL, which release the GIL while they write). Running the
connector's generator in its own thread, one batch ahead, overlaps the two. Only that
thread ever touches the connector while the generator runs, so connections that are
not thread-safe (imaplib) stay safe; the consumer sees batches in the same order, and
an exception from the connector reaches it at the same place in the sequence.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterator[T], depth: int = 1, name: str = "read-ahead") -> Iterator[T]:
    """Yield what ``items`` yields, produced by a worker thread up to ``depth`` items early.

    Closing the returned generator early (a stop request, an error in the consumer) stops
    the worker at its next item and closes ``items`` in the worker's own thread.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(value: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            value = handoff.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            try:
                handoff.get(timeout=0.05)  # unblock a worker waiting to hand over
            except queue.Empty:
                pass
            worker.join(timeout=0.05)
