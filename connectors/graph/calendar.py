"""The default calendar of a Microsoft 365 mailbox, read by calendarView delta over a window.

The window is ``[today - past_days, today + future_days]``. It is fixed in Graph's delta
token, so when it has moved by a day the calendar is read afresh (as a resync, keeping
meetings that merely aged out of it: they are history, not deletions).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from syncd.connectors.graph.client import DeltaExpired, GraphClient
from syncd.connectors.graph.delta import DeltaCursor, delta_round
from syncd.connectors.graph.records import event_record
from syncd.model.records import ActivityRecord, Batch, Problem, SourceState

log = logging.getLogger(__name__)

LABEL = "calendar"


def calendar_window(today: date, past_days: int, future_days: int) -> tuple[str, datetime, datetime]:
    start = datetime.combine(today - timedelta(days=past_days), time(0), tzinfo=timezone.utc)
    end = datetime.combine(today + timedelta(days=future_days + 1), time(0), tzinfo=timezone.utc)
    return start.date().isoformat(), start, end


def sync_calendar(
    client: GraphClient,
    *,
    source: str,
    user: str,
    mailbox: str,
    owners: frozenset[str],
    state: SourceState,
    today: date,
    past_days: int,
    future_days: int,
    snippet_chars: int,
    prefer: tuple[str, ...],
) -> Iterator[Batch]:
    window, start, end = calendar_window(today, past_days, future_days)
    cursor = DeltaCursor.load(state.cursors.get(LABEL))
    held = {k for k in state.known if k.startswith(f"{LABEL}/")}
    prefer = (*prefer, 'outlook.timezone="UTC"')
    path = f"{user}/calendarView/delta"
    params = {"startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def parse(item: dict[str, Any]) -> ActivityRecord | Problem:
        return event_record(item, mailbox=mailbox, owners=owners, snippet_chars=snippet_chars)

    def aged_out(key: str) -> bool:
        stamp = state.known.get(key, "").split("|", 1)[0]
        try:
            return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) < start
        except ValueError:
            return False

    if cursor is not None and cursor.since != window:
        log.info("source=%s calendar window moved to %s: reading it afresh", source, window)
        cursor = None
    try:
        if cursor is None:
            yield from delta_round(client, LABEL, path, params, window, parse, held if held else None, prefer, aged_out)
        else:
            yield from delta_round(client, LABEL, cursor.link, None, window, parse, None, prefer)
    except DeltaExpired as expired:
        log.warning(
            "source=%s folder=calendar delta token expired (%d): reading the window afresh", source, expired.status
        )
        yield from delta_round(client, LABEL, path, params, window, parse, held, prefer, aged_out)
