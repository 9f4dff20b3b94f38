"""iCalendar resources -> meeting activities, one per occurrence inside the sync window.

Shared by every connector that sees iCalendar text (CalDAV now; an .ics export later).
Recurring series are expanded with ``recurring-ical-events`` within the window, with
their exceptions (EXDATE, moved or cancelled RECURRENCE-ID instances). Each occurrence
is keyed by its RECURRENCE-ID (the original start), so a moved occurrence updates the
same activity instead of adding one, and ``message_id`` is ``ical:<UID>#<RECURRENCE-ID>``
so the same meeting in two staff calendars is one activity seen twice.

Times: a zoned DTSTART is converted with its VTIMEZONE; a floating one is read in the
zone the admin configured; an all-day event starts at midnight UTC on its date (a date,
not a moment, so no zone may shift it to the day before).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Problem, Role

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class EventWindow:
    start: datetime
    end: datetime
    floating_zone: ZoneInfo


def _utc(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)  # floating time: the admin's zone
        return value.astimezone(timezone.utc)
    return datetime.combine(value, time(0, 0), tzinfo=timezone.utc)


def _address(value: object) -> str | None:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().lower()
    return text if text.count("@") == 1 and " " not in text else None


def _participants(event: icalendar.Event) -> list[Participant]:
    found: list[Participant] = []
    seen: set[str] = set()
    organizer = event.get("ORGANIZER")
    if organizer is not None:
        address = _address(organizer)
        if address:
            seen.add(address)
            found.append(Participant(address, str(organizer.params.get("CN", ""))[:200], Role.ORGANIZER))
    attendees = event.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    for attendee in attendees:
        address = _address(attendee)
        if not address or address in seen:
            continue
        if str(attendee.params.get("PARTSTAT", "")).upper() == "DECLINED":
            continue  # someone who said no was not in the meeting
        seen.add(address)
        found.append(Participant(address, str(attendee.params.get("CN", ""))[:200], Role.ATTENDEE))
    return found


def _recurrence_key(event: icalendar.Event, zone: ZoneInfo) -> str:
    rid = event.get("RECURRENCE-ID")
    if rid is None:
        return ""
    value = rid.dt
    if isinstance(value, datetime):
        return _utc(value, zone).strftime("%Y%m%dT%H%M%SZ")
    return str(value.strftime("%Y%m%d"))


def _is_recurring(component: icalendar.Calendar) -> bool:
    return any(e.get("RRULE") or e.get("RDATE") or e.get("RECURRENCE-ID") for e in component.walk("VEVENT"))


def _text(value: object, limit: int) -> str:
    return _SPACE.sub(" ", html.unescape(str(value or ""))).strip()[:limit]


def parse_resource(
    text: str | bytes,
    *,
    key_prefix: str,
    window: EventWindow,
    owner_addresses: frozenset[str],
    mailbox: str,
    folder: str,
    version: str,
    link: str | None = None,
    snippet_chars: int = 240,
) -> tuple[list[ActivityRecord], list[Problem]]:
    """The occurrences of one calendar resource (one UID) inside the window."""
    where = f"{folder} {key_prefix}"
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # noqa: BLE001 - icalendar raises ValueError and worse on bad input
        return [], [Problem(f"{key_prefix}#", f"unreadable iCalendar data: {exc}", where, version)]
    try:
        if _is_recurring(calendar):
            events = list(recurring_ical_events.of(calendar).between(window.start, window.end))
        else:
            events = [e for e in calendar.walk("VEVENT") if _in_window(e, window)]  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a broken RRULE must quarantine one event, not the calendar
        return [], [Problem(f"{key_prefix}#", f"cannot expand the event's recurrence: {exc}", where, version)]
    records: list[ActivityRecord] = []
    problems: list[Problem] = []
    for event in events:
        rid = _recurrence_key(event, window.floating_zone)
        key = f"{key_prefix}#{rid}"
        start = event.get("DTSTART")
        if start is None:
            problems.append(Problem(key, "event without DTSTART", where, version))
            continue
        uid = str(event.get("UID") or key_prefix)
        participants = _participants(event)
        organizer = next((p.email for p in participants if p.role == Role.ORGANIZER), None)
        if organizer is None:
            direction = Direction.UNKNOWN
        else:
            direction = Direction.OUTBOUND if organizer in owner_addresses else Direction.INBOUND
        hints: list[tuple[str, str]] = []
        status = str(event.get("STATUS") or "").upper()
        if status == "CANCELLED":
            hints.append(("status", "cancelled"))
        elif status == "TENTATIVE":
            hints.append(("status", "tentative"))
        sensitivity = str(event.get("CLASS") or "").upper()
        if sensitivity in ("PRIVATE", "CONFIDENTIAL"):
            hints.append(("sensitivity", sensitivity.lower()))
        if not isinstance(start.dt, datetime):
            hints.append(("all-day", "yes"))
        end = event.get("DTEND")
        if end is not None:
            hints.append(("ends-at", _utc(end.dt, window.floating_zone).isoformat()))
        location = _text(event.get("LOCATION"), 200)
        if location:
            hints.append(("location", location))
        description = _text(event.get("DESCRIPTION"), snippet_chars)
        snippet = f"{location}: {description}" if location and description else location or description
        records.append(
            ActivityRecord(
                key=key,
                kind=ActivityKind.MEETING,
                occurred_at=_utc(start.dt, window.floating_zone),
                direction=direction,
                subject=_text(event.get("SUMMARY"), 998),
                snippet=snippet[:snippet_chars],
                participants=tuple(participants),
                message_id=f"ical:{uid}#{rid}",
                thread_key=f"ical:{uid}",
                mailbox=mailbox,
                folder=folder,
                link=link,
                version=version,
                hints=tuple(hints),
            )
        )
    return records, problems


def _in_window(event: icalendar.Event, window: EventWindow) -> bool:
    start = event.get("DTSTART")
    if start is None:
        return True  # reported as a problem by the caller
    moment = _utc(start.dt, window.floating_zone)
    return window.start <= moment < window.end


def occurrence_keys(keys: Iterable[str], key_prefix: str) -> set[str]:
    """The known keys that belong to one resource."""
    marker = f"{key_prefix}#"
    return {k for k in keys if k.startswith(marker)}
