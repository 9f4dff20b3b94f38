"""Each source on its own schedule: a small pool of threads, at most one job per source at a time.

The service used to run passes over all due sources together and wait for the slowest, so
one server that accepted connections and never answered held every other mailbox's new
mail back (seen: 141 s with a 10 s timeout). Here a source's sync is a job of its own: a
hanging server occupies one thread while the others go on, and an IDLE wakeup for a
healthy mailbox runs at once on a free thread. A job asked for while its source is still
running is remembered and runs right after (nothing is lost, nothing runs twice at once).

Threads are daemons: a job stuck in a connect call cannot keep the process from stopping
(the pass itself stops between batches when asked; committed batches are durable).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("syncd.service")

T = TypeVar("T")


class SourceWorkers(Generic[T]):
    """Runs ``job(name)`` on ``size`` threads; reports each outcome to ``done(name, result, error)``."""

    def __init__(self, size: int, job: Callable[[str], T], done: Callable[[str, T | None, BaseException | None], None]):
        self.job = job
        self.done = done
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"source-{n}") for n in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, name: str) -> bool:
        """Queue a job for ``name``; when one is running or queued, run it again once it ends."""
        with self._lock:
            if name in self._running:
                self._again.add(name)
                return False
            self._running.add(name)
        self._queue.put(name)
        return True

    def busy(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def stop(self) -> None:
        for _thread in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            name = self._queue.get()
            if name is None:
                return
            result: T | None = None
            error: BaseException | None = None
            try:
                result = self.job(name)
            except BaseException as exc:  # noqa: BLE001 - handed to done(), which decides
                error = exc
            with self._lock:
                again = name in self._again
                self._again.discard(name)
                if not again:
                    self._running.discard(name)
            try:
                self.done(name, result, error)
            except Exception:
                log.exception("source=%s reporting the job's outcome failed", name)
            if again:
                self._queue.put(name)
