"""When each source is due: its interval normally, exponential backoff with jitter after failures.

A failing source (a wrong password, a server that is down) is retried at growing
intervals instead of every pass, so syncd never hammers a server or locks an account.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone

MAX_BACKOFF_SECONDS = 3600


def backoff_seconds(
    failures: int, base: float, cap: float = MAX_BACKOFF_SECONDS, rng: Callable[[], float] = random.random
) -> float:
    """``base * 2**(failures-1)``, capped, with +-20% jitter so many sources do not retry in step."""
    raw = min(cap, base * (2.0 ** max(0, failures - 1)))
    return raw * (0.8 + 0.4 * rng())


def retry_at(base: float) -> Callable[[int], datetime]:
    def schedule(failures: int) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=backoff_seconds(failures, base))

    return schedule


def due(names: Iterable[str], next_attempts: dict[str, datetime | None], now: datetime) -> list[str]:
    """The sources whose retry time has come (or that have none)."""
    return [n for n in names if (when := next_attempts.get(n)) is None or when <= now]
