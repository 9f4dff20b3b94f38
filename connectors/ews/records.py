"""EWS items (exchangelib objects) as normalized records: messages and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from syncd.connectors.cursor import JsonCursor
from syncd.model.markers import PRIVATE_CATEGORIES
from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Problem, Role


@dataclass
class SyncCursor(JsonCursor):
    state: str | None
    since: str
    partial: bool = False


def mailbox_address(value: Any) -> tuple[str, str] | None:
    address = str(getattr(value, "email_address", "") or "").strip().lower()
    if address.count("@") != 1 or " " in address:
        return None  # Exchange-internal (X.500) addresses have no '@'
    return address, " ".join(str(getattr(value, "name", "") or "").split())[:200]


def ews_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # exchangelib's EWSDateTime refuses plain tzinfo objects; go through the timestamp.
        if value.tzinfo is None:
            return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=timezone.utc)
        return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return None


def clean_text(text: Any, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


def message_record(
    item: Any, *, key: str, folder: str, mailbox: str, owners: frozenset[str], snippet_chars: int
) -> ActivityRecord | Problem:
    version = str(item.changekey or "")
    participants: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    sender = getattr(item, "author", None) or getattr(item, "sender", None)
    groups = (
        (Role.FROM, [sender] if sender else []),
        (Role.TO, item.to_recipients or []),
        (Role.CC, item.cc_recipients or []),
        (Role.BCC, item.bcc_recipients or []),
    )
    for role, values in groups:
        for value in values:
            found = mailbox_address(value)
            if found and (found[0], role) not in seen:
                seen.add((found[0], role))
                participants.append(Participant(found[0], found[1], role))
    if not participants:
        return Problem(key, "no valid sender or recipient address", f"{mailbox} {folder}", version)
    occurred_at = ews_utc(item.datetime_sent) or ews_utc(item.datetime_received)
    if occurred_at is None:
        return Problem(key, "no sent or received date", f"{mailbox} {folder}", version)
    hints: list[tuple[str, str]] = []
    categories = [str(c) for c in item.categories or []]
    if categories:
        hints.append(("categories", "; ".join(categories)[:200]))
    sensitivity = str(item.sensitivity or "Normal").lower()
    if sensitivity != "normal":
        hints.append(("sensitivity", sensitivity))
    elif any(c.strip().casefold() in PRIVATE_CATEGORIES for c in categories):
        hints.append(("sensitivity", "private"))
    message_id = str(item.message_id or "").strip().strip("<>") or None
    conversation = getattr(getattr(item, "conversation_id", None), "id", None)
    from_address = next((p.email for p in participants if p.role == Role.FROM), None)
    return ActivityRecord(
        key=key,
        kind=ActivityKind.EMAIL,
        occurred_at=occurred_at,
        direction=Direction.OUTBOUND if from_address in owners else Direction.INBOUND,
        subject=clean_text(item.subject, 998),
        snippet=clean_text(getattr(item, "text_body", ""), snippet_chars),
        body=str(getattr(item, "text_body", "") or "") or None,
        participants=tuple(participants),
        message_id=message_id,
        thread_key=f"ews-conversation:{conversation}" if conversation else message_id,
        mailbox=mailbox,
        folder=folder,
        version=version,
        hints=tuple(hints),
    )


def event_record(
    item: Any, *, key: str, mailbox: str, owners: frozenset[str], snippet_chars: int
) -> ActivityRecord | Problem:
    version = str(item.changekey or "")
    start = ews_utc(item.start)
    if start is None:
        return Problem(key, "event without a start time", f"{mailbox} calendar", version)
    participants: list[Participant] = []
    organizer = mailbox_address(item.organizer) if item.organizer else None
    if organizer:
        participants.append(Participant(organizer[0], organizer[1], Role.ORGANIZER))
    seen = {p.email for p in participants}
    for attendee in [*(item.required_attendees or []), *(item.optional_attendees or [])]:
        found = mailbox_address(getattr(attendee, "mailbox", None))
        if not found or found[0] in seen:
            continue
        if str(getattr(attendee, "response_type", "") or "").lower() == "decline":
            continue
        seen.add(found[0])
        participants.append(Participant(found[0], found[1], Role.ATTENDEE))
    hints: list[tuple[str, str]] = []
    if item.is_cancelled:
        hints.append(("status", "cancelled"))
    sensitivity = str(item.sensitivity or "Normal").lower()
    if sensitivity != "normal":
        hints.append(("sensitivity", sensitivity))
    if item.is_all_day:
        hints.append(("all-day", "yes"))
    if str(item.type or "") == "RecurringMaster":
        hints.append(("recurring", "series"))
    end = ews_utc(item.end)
    if end is not None:
        hints.append(("ends-at", end.isoformat()))
    location = clean_text(item.location, 200)
    if location:
        hints.append(("location", location))
    preview = clean_text(getattr(item, "text_body", ""), snippet_chars)
    snippet = f"{location}: {preview}" if location and preview else location or preview
    direction = (
        Direction.UNKNOWN
        if organizer is None
        else (Direction.OUTBOUND if organizer[0] in owners else Direction.INBOUND)
    )
    uid = item.uid
    return ActivityRecord(
        key=key,
        kind=ActivityKind.MEETING,
        occurred_at=start,
        direction=direction,
        subject=clean_text(item.subject, 998),
        snippet=snippet[:snippet_chars],
        participants=tuple(participants),
        message_id=f"ews-event:{uid}" if uid else None,
        thread_key=f"ews-event:{uid}" if uid else None,
        mailbox=mailbox,
        folder="calendar",
        version=version,
        hints=tuple(hints),
    )
