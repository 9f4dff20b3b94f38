"""Graph messages and events as normalized records (pure functions over Graph's JSON).

Shapes from Microsoft's resource pages: message
(https://learn.microsoft.com/graph/api/resources/message) and event
(https://learn.microsoft.com/graph/api/resources/event).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from datetime import time as dtime
from typing import Any

from syncd.model.markers import PRIVATE_CATEGORIES
from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Problem, Role

#: Exchange writes ``0001-01-01T00:00:00Z`` for "no date" (unsent mail, attendee status):
#: anything before this is taken for no date at all.
EARLIEST_REAL = datetime(1971, 1, 1, tzinfo=timezone.utc)


def graph_time(value: object) -> datetime | None:
    """Graph's ISO times ("2026-10-01T09:00:00Z", or 7 fraction digits and no zone in events) as UTC."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.year < EARLIEST_REAL.year:
        return None
    return moment.astimezone(timezone.utc)


def graph_address(value: Any) -> tuple[str, str] | None:
    """(address, name) of a Graph recipient; Exchange-internal X.500 addresses have no '@' and are skipped."""
    if value is None:
        return None  # an event without an organizer (holiday and birthday calendars)
    if not isinstance(value, dict):
        raise MalformedItem(f"a recipient is a JSON {type(value).__name__}, not an object")
    email = value.get("emailAddress") or {}
    if not isinstance(email, dict):
        raise MalformedItem(f"emailAddress is a JSON {type(email).__name__}, not an object")
    address = str(email.get("address") or "").strip().lower()
    if address.count("@") != 1 or " " in address or address.startswith("@"):
        return None
    return address, " ".join(str(email.get("name") or "").split())[:200]


class MalformedItem(ValueError):
    """A Graph item whose field has a shape the resource page does not allow."""


def guarded(
    parse: Callable[..., ActivityRecord | Problem], item: dict[str, Any], key: str, where: str, **kwargs: Any
) -> ActivityRecord | Problem:
    """``parse(item)``, or a quarantine entry naming what was wrong with the item."""
    try:
        return parse(item, **kwargs)
    except (MalformedItem, TypeError, AttributeError, ValueError, KeyError) as exc:
        return Problem(key, f"malformed Graph item: {exc}"[:300], where, str(item.get("changeKey") or ""))


def clean_text(text: object, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


#: PidTagSensitivity's values ([MS-OXCMSG] 2.2.1.13): 0 normal, then these.
_SENSITIVITY = {"1": "personal", "2": "private", "3": "confidential"}


def mapi_sensitivity(item: dict[str, Any]) -> str | None:
    """Outlook's Sensitivity of a message, from the extended property the read expanded
    (returned as ``{"id": "Integer 0x36", "value": "2"}``), or None when normal or absent."""
    for prop in item.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower().replace("0x0036", "0x36") == "integer 0x36":
            return _SENSITIVITY.get(str(prop.get("value", "")).strip())
    return None


def message_record(
    item: dict[str, Any],
    *,
    folder: str,
    mailbox: str,
    owners: frozenset[str],
    snippet_chars: int,
    keep_body: bool = False,
) -> ActivityRecord | Problem:
    key = f"{folder}/{item['id']}"
    where = f"{mailbox} {folder} {item['id'][:24]}…"
    return guarded(
        _message,
        item,
        key,
        where,
        folder=folder,
        mailbox=mailbox,
        owners=owners,
        snippet_chars=snippet_chars,
        keep_body=keep_body,
    )


def _message(
    item: dict[str, Any],
    *,
    folder: str,
    mailbox: str,
    owners: frozenset[str],
    snippet_chars: int,
    keep_body: bool,
) -> ActivityRecord | Problem:
    key = f"{folder}/{item['id']}"
    version = str(item.get("changeKey") or "")
    where = f"{mailbox} {folder} {item['id'][:24]}…"
    participants: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    fields = (("from", Role.FROM), ("toRecipients", Role.TO), ("ccRecipients", Role.CC), ("bccRecipients", Role.BCC))
    for field_name, role in fields:
        values = item.get(field_name)
        if values is not None and not isinstance(values, (dict, list)):
            raise MalformedItem(f"{field_name} is a JSON {type(values).__name__}")
        for value in [values] if isinstance(values, dict) else values or []:
            found = graph_address(value)
            if found and (found[0], role) not in seen:
                seen.add((found[0], role))
                participants.append(Participant(found[0], found[1], role))
    if not participants:
        return Problem(key, "no valid sender or recipient address", where, version)
    occurred_at = graph_time(item.get("sentDateTime")) or graph_time(item.get("receivedDateTime"))
    if occurred_at is None:
        return Problem(key, "no sent or received date", where, version)
    sender = next((p.email for p in participants if p.role == Role.FROM), None)
    hints: list[tuple[str, str]] = []
    categories = _text_list(item.get("categories"), "categories")
    if categories:
        hints.append(("categories", "; ".join(categories)[:200]))
    sensitivity = mapi_sensitivity(item)
    if sensitivity:
        hints.append(("sensitivity", sensitivity))
    elif any(c.strip().casefold() in PRIVATE_CATEGORIES for c in categories):
        hints.append(("sensitivity", "private"))
    message_id = str(item.get("internetMessageId") or "").strip().strip("<>") or None
    conversation = item.get("conversationId")
    return ActivityRecord(
        key=key,
        kind=ActivityKind.EMAIL,
        occurred_at=occurred_at,
        direction=Direction.OUTBOUND if sender in owners else Direction.INBOUND,
        subject=clean_text(item.get("subject"), 998),
        snippet=clean_text(item.get("bodyPreview"), snippet_chars),
        participants=tuple(participants),
        message_id=message_id,
        thread_key=f"graph-conversation:{conversation}" if conversation else message_id,
        mailbox=mailbox,
        folder=folder,
        link=item.get("webLink") if isinstance(item.get("webLink"), str) else None,
        version=version,
        hints=tuple(hints),
        body=_body_text(item.get("body")) if keep_body else None,
    )


def _text_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedItem(f"{name} is a JSON {type(value).__name__}, not a list")
    return [str(v) for v in value]


def _body_text(value: object) -> str | None:
    """The body asked for as text (Prefer outlook.body-content-type="text")."""
    if not isinstance(value, dict):
        return None
    content = value.get("content")
    return str(content) if content else None


def _event_start(item: dict[str, Any], field_name: str = "start") -> datetime | None:
    value = item.get(field_name) or {}
    if item.get("isAllDay") and value.get("dateTime"):
        # An all-day event is a date: midnight UTC on it, whatever zone it was made in.
        return datetime.combine(date.fromisoformat(value["dateTime"][:10]), dtime(0), tzinfo=timezone.utc)
    moment = graph_time(value.get("dateTime"))
    zone = str(value.get("timeZone") or "UTC")
    if moment is not None and zone not in ("UTC", "tzone://Microsoft/Utc"):
        try:
            from zoneinfo import ZoneInfo

            moment = moment.replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)
        except (KeyError, ValueError):
            pass  # a Windows zone name: we asked for UTC (Prefer outlook.timezone), so take it as UTC
    return moment


def event_record(
    item: dict[str, Any], *, mailbox: str, owners: frozenset[str], snippet_chars: int, folder: str = "calendar"
) -> ActivityRecord | Problem:
    key = f"{folder}/{item['id']}"
    where = f"{mailbox} {folder} {item['id'][:24]}…"
    return guarded(_event, item, key, where, mailbox=mailbox, owners=owners, snippet_chars=snippet_chars, folder=folder)


def _event(
    item: dict[str, Any], *, mailbox: str, owners: frozenset[str], snippet_chars: int, folder: str
) -> ActivityRecord | Problem:
    key = f"{folder}/{item['id']}"
    start = _event_start(item)
    change_key = str(item.get("changeKey") or "")
    where = f"{mailbox} {folder} {item['id'][:24]}…"
    if start is None:
        return Problem(key, "event without a start time", where, change_key)
    # The start rides in the version, so a later re-listing can tell an event that aged out
    # of the window (kept: it is history) from one that was deleted.
    version = f"{start.strftime('%Y%m%dT%H%M%SZ')}|{change_key}"[:128]
    participants: list[Participant] = []
    organizer = graph_address(item.get("organizer"))
    if organizer:
        participants.append(Participant(organizer[0], organizer[1], Role.ORGANIZER))
    seen = {p.email for p in participants}
    for attendee in item.get("attendees") or []:
        found = graph_address(attendee)
        if not found or found[0] in seen:
            continue
        if str(attendee.get("type", "")).lower() == "resource":
            continue  # a room or projector
        if str(((attendee.get("status") or {}).get("response")) or "").lower() == "declined":
            continue  # someone who said no was not in the meeting
        seen.add(found[0])
        participants.append(Participant(found[0], found[1], Role.ATTENDEE))
    hints: list[tuple[str, str]] = []
    if item.get("isCancelled"):
        hints.append(("status", "cancelled"))
    sensitivity = str(item.get("sensitivity") or "normal").lower()
    if sensitivity != "normal":
        hints.append(("sensitivity", sensitivity))
    if item.get("isAllDay"):
        hints.append(("all-day", "yes"))
    end = _event_start(item, "end")
    if end is not None:
        hints.append(("ends-at", end.isoformat()))
    location = clean_text((item.get("location") or {}).get("displayName"), 200)
    if location:
        hints.append(("location", location))
    categories = _text_list(item.get("categories"), "categories")
    if categories:
        hints.append(("categories", "; ".join(categories)[:200]))
    preview = clean_text(item.get("bodyPreview"), snippet_chars)
    snippet = f"{location}: {preview}" if location and preview else location or preview
    uid = item.get("iCalUId")
    series = item.get("seriesMasterId")
    direction = (
        Direction.UNKNOWN
        if organizer is None
        else (Direction.OUTBOUND if organizer[0] in owners else Direction.INBOUND)
    )
    return ActivityRecord(
        key=key,
        kind=ActivityKind.MEETING,
        occurred_at=start,
        direction=direction,
        subject=clean_text(item.get("subject"), 998),
        snippet=snippet[:snippet_chars],
        participants=tuple(participants),
        message_id=f"graph-event:{uid}" if uid else None,
        thread_key=f"graph-series:{series}" if series else (f"graph-event:{uid}" if uid else None),
        mailbox=mailbox,
        folder=folder,
        link=item.get("webLink") if isinstance(item.get("webLink"), str) else None,
        version=version,
        hints=tuple(hints),
    )
