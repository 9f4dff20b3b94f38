"""Calendars of a Microsoft 365 mailbox, read by calendarView delta over a window.

The default calendar (folder ``calendar``) and, where configured, others by name or all of
them (folder ``calendar:<name>``). The window is ``[today - past_days, today + future_days]``.
It is fixed in Graph's delta token, so when it has moved by a day the calendar is read
afresh (as a resync, keeping meetings that merely aged out of it: they are history).

``@removed`` in a calendarView delta means deleted *or* no longer in the window, and
Microsoft says to filter such entries by the date range the scenario needs
(https://learn.microsoft.com/graph/api/event-delta, "Remarks"). So an ``@removed`` for a
meeting we hold with a start before the window (one that aged out and was edited later,
say a note added to last year's meeting) is kept: it is history. Any other ``@removed`` is
applied: the meeting was deleted, or moved beyond the window's end, which syncd cannot
tell apart; such a meeting leaves the timeline and comes back, at its new time, when the
window reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import quote

from syncd.connectors.graph.client import DeltaExpired, GraphClient
from syncd.connectors.graph.delta import DeltaCursor, delta_round
from syncd.connectors.graph.records import event_record
from syncd.model.errors import SourceConfigError
from syncd.model.records import ActivityRecord, Batch, Problem, SourceState

log = logging.getLogger(__name__)

LABEL = "calendar"


def calendar_window(today: date, past_days: int, future_days: int) -> tuple[str, datetime, datetime]:
    start = datetime.combine(today - timedelta(days=past_days), time(0), tzinfo=timezone.utc)
    end = datetime.combine(today + timedelta(days=future_days + 1), time(0), tzinfo=timezone.utc)
    return start.date().isoformat(), start, end


def named_calendars(client: GraphClient, user: str, mailbox: str, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    """(folder label, calendar id) for configured calendar names, or every calendar for "*"."""
    found: dict[str, str] = {}
    for page in client.pages(f"{user}/calendars", params={"$select": "id,name,isDefaultCalendar"}):
        for calendar in page.get("value") or []:
            if isinstance(calendar, dict) and calendar.get("id") and not calendar.get("isDefaultCalendar"):
                name = str(calendar.get("name") or calendar["id"])
                if name in found:  # two calendars of one name: the second is told apart by its id
                    name = f"{name} ({str(calendar['id'])[-8:]})"
                found[name] = str(calendar["id"])
    if "*" in wanted:
        return [(calendar_label(name), cid) for name, cid in sorted(found.items())]
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SourceConfigError(
            f"mailbox {mailbox}: no calendar named {', '.join(map(repr, missing))}; it has "
            f"{', '.join(sorted(found)) or 'only its default calendar'}"
        )
    return [(calendar_label(name), found[name]) for name in wanted]


def calendar_label(name: str) -> str:
    """The folder label of a named calendar; a "/" in the name is escaped, since item keys
    are ``label/id`` and one label must never be a prefix of another's keys."""
    return f"{LABEL}:{quote(name, safe=' ')}"


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
    label: str = LABEL,
    calendar_id: str | None = None,
) -> Iterator[Batch]:
    window, start, end = calendar_window(today, past_days, future_days)
    cursor = DeltaCursor.load(state.cursors.get(label))
    held = {k for k in state.known if k.startswith(f"{label}/")}
    prefer = (*prefer, 'outlook.timezone="UTC"')
    path = f"{user}/calendars/{calendar_id}/calendarView/delta" if calendar_id else f"{user}/calendarView/delta"
    params = {"startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}

    def parse(item: dict[str, Any]) -> ActivityRecord | Problem:
        return event_record(item, mailbox=mailbox, owners=owners, snippet_chars=snippet_chars, folder=label)

    def aged_out(key: str) -> bool:
        stamp = state.known.get(key, "").split("|", 1)[0]
        try:
            return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) < start
        except ValueError:
            return False

    def still_wanted(entry: dict[str, Any]) -> bool:
        return not aged_out(f"{label}/{entry['id']}")

    if cursor is not None and cursor.since != window:
        log.info("source=%s calendar window moved to %s: reading it afresh", source, window)
        cursor = None
    try:
        if cursor is None:
            yield from delta_round(
                client, label, path, params, window, parse, held if held else None, prefer, aged_out, still_wanted
            )
        else:
            yield from delta_round(
                client, label, cursor.link, None, window, parse, None, prefer, aged_out, still_wanted
            )
    except DeltaExpired as expired:
        log.warning(
            "source=%s folder=%s delta token expired (%d): reading the window afresh", source, label, expired.status
        )
        yield from delta_round(client, label, path, params, window, parse, held, prefer, aged_out, still_wanted)
