"""MIME message -> ActivityRecord, shared by every connector that sees RFC 5322 bytes.

Mail is untrusted and often broken: headers that do not parse, charsets Python does not
know, RFC 2047 words split mid-character, missing dates. Each header is read on its own
so one bad header never loses the others; an unreadable value falls back to the raw text.
Only a message that has no address at all, or no date from any source, cannot become an
activity: it becomes a ``Problem`` with the reason, for the quarantine.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime

from syncd.records import ActivityKind, ActivityRecord, Direction, Participant, Problem, Role

HINT_HEADERS = (
    "auto-submitted",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "x-auto-response-suppress",
    "content-type",
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>\s]+)>")
_QUOTE_INTRO = re.compile(r"^(on .{0,200} wrote:|am .{0,200} schrieb .{0,80}:|-----original message-----)", re.I)


def _clean(text: str) -> str:
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def _header_text(msg: EmailMessage, name: str) -> str | None:
    """The decoded header, or its raw text when decoding fails."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - the email package raises assorted errors on broken headers
        value = None
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                value = raw
                break
    if value is None:
        return None
    return str(value)


def _addresses(msg: EmailMessage, name: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    try:
        header = msg.get(name)
        if header is not None and hasattr(header, "addresses"):
            for address in header.addresses:
                result.append((address.display_name or "", address.addr_spec or ""))
            return result
    except Exception:  # noqa: BLE001 - fall back to the lenient parser below
        pass
    raw = [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]
    return [(display, addr) for display, addr in getaddresses(raw)]


def _participants(msg: EmailMessage) -> list[Participant]:
    found: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    for header, role in (("from", Role.FROM), ("to", Role.TO), ("cc", Role.CC), ("bcc", Role.BCC)):
        for display, addr in _addresses(msg, header):
            email_address = addr.strip().strip("<>").lower()
            if email_address.count("@") != 1 or " " in email_address:
                continue
            if (email_address, role) in seen:
                continue
            seen.add((email_address, role))
            found.append(Participant(email_address, _clean(display)[:200], role))
    return found


def _date(msg: EmailMessage) -> datetime | None:
    raw = _header_text(msg, "date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)  # RFC 5322 "-0000": zone unknown, taken as UTC
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def _message_ids(raw: str | None) -> list[str]:
    return _MSGID.findall(raw or "")


def _part_text(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError, AssertionError, KeyError):
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return ""
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)


def snippet_and_body(msg: EmailMessage, limit: int, keep_body: bool) -> tuple[str, str | None]:
    """The first text part as a short snippet, without quoted replies; the body if asked."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception:  # noqa: BLE001
        part = None
    if part is None:
        return "", None
    text = _part_text(part)  # type: ignore[arg-type]
    if part.get_content_subtype() == "html":
        text = _TAG.sub(" ", text)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if _QUOTE_INTRO.match(stripped):
            break  # everything below is the quoted earlier message
        if stripped.startswith(">"):
            continue
        lines.append(stripped)
    snippet = _clean(" ".join(lines))[:limit]
    return snippet, (text if keep_body else None)


def parse_message(
    raw: bytes,
    *,
    key: str,
    mailbox: str,
    folder: str,
    owner_addresses: frozenset[str],
    snippet_chars: int,
    keep_body: bool = False,
    fallback_date: Callable[[], datetime | None] | None = None,
    link: str | None = None,
    where: str = "",
) -> ActivityRecord | Problem:
    if not raw.strip():
        return Problem(key, "empty message file", where)
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # noqa: BLE001 - the parser should never raise, but has
        return Problem(key, f"unparseable message: {exc}", where)
    if not isinstance(msg, EmailMessage):
        return Problem(key, "unparseable message", where)
    participants = _participants(msg)
    if not participants:
        return Problem(key, "no valid From/To/Cc address in the message", where)
    occurred_at = _date(msg)
    hints: list[tuple[str, str]] = []
    if occurred_at is None and fallback_date is not None:
        occurred_at = fallback_date()
        if occurred_at is not None:
            hints.append(("x-syncd-date-source", "delivery"))
    if occurred_at is None:
        return Problem(key, "no usable Date header and no delivery date", where)
    ids = _message_ids(_header_text(msg, "message-id"))
    message_id = ids[0] if ids else None
    references = _message_ids(_header_text(msg, "references"))
    in_reply_to = _message_ids(_header_text(msg, "in-reply-to"))
    thread_key = (references or in_reply_to or [message_id])[0]
    sender = next((p.email for p in participants if p.role == Role.FROM), None)
    direction = Direction.OUTBOUND if sender in owner_addresses else Direction.INBOUND
    for name in HINT_HEADERS:
        value = _header_text(msg, name)
        if value:
            hints.append((name, _clean(value)[:200]))
    try:
        snippet, body = snippet_and_body(msg, snippet_chars, keep_body)
    except Exception:  # noqa: BLE001 - a snippet is a nicety; the activity stands without it
        snippet, body = "", None
    return ActivityRecord(
        key=key,
        kind=ActivityKind.EMAIL,
        occurred_at=occurred_at,
        direction=direction,
        subject=_clean(_header_text(msg, "subject") or "")[:998],
        snippet=snippet,
        participants=tuple(participants),
        message_id=message_id,
        thread_key=thread_key,
        mailbox=mailbox,
        folder=folder,
        link=link,
        body=body,
        hints=tuple(hints),
    )
