"""Per-mailbox request budgets: how many calls an app may make to one mailbox, and how many at once.

Outlook's limits for Microsoft Graph (https://learn.microsoft.com/graph/throttling-limits,
"Outlook service limits") are per app and mailbox: 10,000 requests in 10 minutes and 4
concurrent requests. In syncd a mailbox is read folder by folder, its calendar after, its
categories and contacts written after that, and a second source (its contacts as
customers) may name the same mailbox: one ``MailboxBudget`` per mailbox, kept by the
service across passes, holds all of them under the limits instead of letting Graph answer
429 first. The budget is an object handed down (``ConnectorContext.budgets``), never a
module global.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

GRAPH_REQUESTS_PER_WINDOW = 10_000
GRAPH_WINDOW_SECONDS = 600.0
GRAPH_CONCURRENT = 4


class MailboxBudget:
    """A sliding window of request start times plus a semaphore; ``slot()`` waits for both."""

    def __init__(
        self,
        per_window: int = GRAPH_REQUESTS_PER_WINDOW,
        window_seconds: float = GRAPH_WINDOW_SECONDS,
        concurrent: int = GRAPH_CONCURRENT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.per_window = per_window
        self.window_seconds = window_seconds
        self.clock = clock
        self.sleep = sleep
        self._started: deque[float] = deque()
        self._lock = threading.Lock()
        self._running = threading.BoundedSemaphore(concurrent)
        self.waited = 0.0  # seconds spent waiting for the window (for the log and the tests)
        self.peak_concurrent = 0
        self._now_running = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._running.acquire()
        try:
            self._take_window_slot()
            with self._lock:
                self._now_running += 1
                self.peak_concurrent = max(self.peak_concurrent, self._now_running)
            try:
                yield
            finally:
                with self._lock:
                    self._now_running -= 1
        finally:
            self._running.release()

    def _take_window_slot(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                while self._started and now - self._started[0] >= self.window_seconds:
                    self._started.popleft()
                if len(self._started) < self.per_window:
                    self._started.append(now)
                    return
                wait = self.window_seconds - (now - self._started[0])
                self.waited += wait
            self.sleep(max(wait, 0.01))


@dataclass
class RequestBudgets:
    """The budgets of every mailbox a service talks to, made on first use."""

    make: Callable[[], MailboxBudget] = MailboxBudget
    _budgets: dict[str, MailboxBudget] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_mailbox(self, service: str, mailbox: str) -> MailboxBudget:
        key = f"{service}:{mailbox.strip().lower()}"
        with self._lock:
            if key not in self._budgets:
                self._budgets[key] = self.make()
            return self._budgets[key]
