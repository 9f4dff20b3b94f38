"""MIME message -> ActivityRecord, shared by every connector that sees RFC 5322 bytes.

Mail is untrusted and often broken: headers that do not parse, charsets Python does not
know, RFC 2047 words split mid-character, missing dates. Each header is read on its own
so one bad header never loses the others; an unreadable value falls back to the raw text.
Only a message that has no address at all, or no date from any source, cannot become an
activity: it becomes a ``Problem`` with the reason, for the quarantine.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from syncd.connectors.mimelite import RawHeaders, content_type, first_text_part, split_message
from syncd.model.records import ActivityKind, ActivityRecord, Direction, Participant, Problem, Role

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
    if text.isprintable():
        return " ".join(text.split())  # no control characters: the common case, checked in C
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def decode_words(value: object) -> str:
    """RFC 2047 words and raw 8-bit header bytes to text, never raising.

    Unknown charsets and undecodable bytes degrade to replacement characters rather
    than losing the header; raw 8-bit headers are tried as UTF-8 first (what most
    modern clients send unlabelled), then Latin-1.
    """
    if isinstance(value, str) and "=?" not in value:
        return value  # no encoded words: decode_header would hand it back unchanged
    try:
        parts = decode_header(value if isinstance(value, (str, Header)) else str(value))
    except (HeaderParseError, ValueError, TypeError):
        return str(value)
    chunks: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            chunks.append(chunk)
            continue
        if charset in (None, "unknown-8bit"):
            try:
                chunks.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                chunks.append(chunk.decode("latin-1"))
            continue
        try:
            chunks.append(chunk.decode(charset, errors="replace"))
        except LookupError:
            chunks.append(chunk.decode("utf-8", errors="replace"))
    return "".join(chunks)


def _unescape_8bit(value: str, charset_hint: str | None) -> str:
    """Raw 8-bit header bytes (kept as surrogates by the parser) as UTF-8, else the charset
    the message declares for its body (clients that send raw headers use the same one),
    else Latin-1, which never fails."""
    try:
        value.encode("utf-8")
        return value  # no raw bytes hidden as surrogates: the common case, checked in C
    except UnicodeEncodeError:
        pass
    raw = value.encode("ascii", errors="surrogateescape")
    for charset in ("utf-8", charset_hint):
        if charset:
            try:
                return raw.decode(charset)
            except (UnicodeDecodeError, LookupError):
                continue
    return raw.decode("latin-1")


def _charset_hint(raw: RawHeaders) -> str | None:
    """The charset the message declares for its body, if any."""
    return content_type(raw.first("content-type"))[1].get("charset")


class _Headers:
    """Header values by lower-cased name, raw 8-bit bytes read leniently (no header objects).

    ``policy.default`` builds a parsed object for every header read, which costs more
    than the rest of the pipeline; we need a dozen headers, decoded our own lenient way.
    """

    def __init__(self, raw: RawHeaders):
        self.values: dict[str, list[str]] = {}
        values = self.values
        for name, value in raw.items:
            if not value.isascii():
                value = _unescape_8bit(value, _charset_hint(raw))
            name = name.lower()
            if name in values:
                values[name].append(value)
            else:
                values[name] = [value]

    def first(self, name: str) -> str | None:
        found = self.values.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


def _plain_address_list(value: str) -> bool:
    """No quotes, comments, groups, escapes or encoded words: seven C searches, which on
    the hot path cost a third of a character-class regex or an any() over them."""
    return not (
        '"' in value or "(" in value or ")" in value or "\\" in value or ":" in value or ";" in value or "=" in value
    )


_NAME_ADDR = re.compile(r"\s*(.*?)\s*<([^<>]*)>\s*\Z", re.S)


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """``getaddresses`` for the plain shapes most mail has (``a@b``, ``Name <a@b>``), which
    it parses a character at a time; anything with quotes, comments, groups or encoded
    words goes to ``getaddresses`` itself."""
    found: list[tuple[str, str]] = []
    for value in values:
        if not _plain_address_list(value):
            found.extend(getaddresses([value]))
            continue
        for piece in value.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if "<" in piece:
                match = _NAME_ADDR.match(piece)
                if match is None or "<" in match.group(1):
                    found.extend(getaddresses([piece]))
                    continue
                found.append((" ".join(match.group(1).split()), "".join(match.group(2).split())))
            elif " " in piece or "\t" in piece or "\n" in piece:
                found.extend(getaddresses([piece]))
            else:
                found.append(("", piece))
    return found


_ADDRESS_HEADERS = (("from", Role.FROM), ("to", Role.TO), ("cc", Role.CC), ("bcc", Role.BCC))


@lru_cache(maxsize=8192)
def _header_participants(value: str, role: Role) -> tuple[Participant, ...]:
    """The valid addresses of one address header value, as participants in ``role``.

    Cached: a mailbox repeats the same few header values endlessly (the owner in every
    To or From, a customer's whole thread), and a Participant is immutable.
    """
    found: list[Participant] = []
    for display, addr in _addresses([value]):
        email_address = addr.strip().strip("<>").lower()
        if email_address.count("@") != 1 or " " in email_address or email_address.startswith("@"):
            continue
        found.append(Participant(email_address, _clean(decode_words(display))[:200] if display else "", role))
    return tuple(found)


def _participants(headers: _Headers) -> list[Participant]:
    found: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    values = headers.values
    for header, role in _ADDRESS_HEADERS:
        for value in values.get(header, ()):
            for participant in _header_participants(value, role):
                if (participant.email, role) not in seen:
                    seen.add((participant.email, role))
                    found.append(participant)
    return found


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
# "Mon, 23 Nov 2026 13:29:46 +0100", what nearly all mail has; anything else is
# left to parsedate_to_datetime.
_PLAIN_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d)(?::(\d\d))? "
    r"([+-])(\d\d)(\d\d)\s*(?:\([^()]*\)\s*)?\Z"
)


def _plain_date(raw: str) -> datetime | None:
    match = _PLAIN_DATE.match(raw)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = match.groups()
    number = _MONTHS.get(month.lower())
    if number is None:
        return None
    try:
        local = datetime(int(year), number, int(day), int(hour), int(minute), int(second or 0), tzinfo=timezone.utc)
    except ValueError:
        return None  # an impossible day or second: the general parser decides
    offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
    return local - offset if sign == "+" else local + offset


def _date(headers: _Headers) -> datetime | None:
    raw = headers.first("date")
    if not raw:
        return None
    plain = _plain_date(raw)
    if plain is not None:
        return plain
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


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)


def snippet_and_body(headers: RawHeaders, body: bytes, limit: int, keep_body: bool) -> tuple[str, str | None]:
    """The first text part as a short snippet, without quoted replies; the body if asked."""
    part = first_text_part(headers, body)
    if part is None:
        return "", None
    text = part.text
    if part.subtype == "html":
        text = html.unescape(_TAG.sub(" ", text))
    lines = []
    kept = 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(">"):
            continue
        if _QUOTE_INTRO.match(stripped):
            break  # everything below is the quoted earlier message
        lines.append(stripped)
        kept += len(stripped)
        if kept > limit * 2:
            break
    snippet = _clean(" ".join(lines))[:limit]
    return snippet, (part.text if keep_body else None)


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
    snippet: str | None = None,
    extra_hints: tuple[tuple[str, str], ...] = (),
) -> ActivityRecord | Problem:
    """Parse RFC 5322 bytes (a whole message, or only its headers plus a ``snippet`` the
    server made, as IMAP's PREVIEW gives) into an activity, or a Problem saying why not."""
    if not raw or raw.isspace():
        return Problem(key, "empty message file", where)
    try:
        raw_headers, raw_body = split_message(raw)
    except Exception as exc:  # noqa: BLE001 - the splitter should never raise; a bug must not lose mail
        return Problem(key, f"unparseable message: {exc}", where)
    headers = _Headers(raw_headers)
    participants = _participants(headers)
    if not participants:
        return Problem(key, "no valid From/To/Cc address in the message", where)
    occurred_at = _date(headers)
    hints: list[tuple[str, str]] = []
    if occurred_at is None and fallback_date is not None:
        occurred_at = fallback_date()
        if occurred_at is not None:
            hints.append(("x-syncd-date-source", "delivery"))
    if occurred_at is None:
        return Problem(key, "no usable Date header and no delivery date", where)
    ids = _message_ids(headers.first("message-id"))
    message_id = ids[0] if ids else None
    references = _message_ids(" ".join(headers.all("references")))
    in_reply_to = _message_ids(headers.first("in-reply-to"))
    linked = references or in_reply_to
    thread_key = linked[0] if linked else message_id
    sender = participants[0].email if participants[0].role == Role.FROM else None  # From comes first
    direction = Direction.OUTBOUND if sender in owner_addresses else Direction.INBOUND
    for name in HINT_HEADERS:
        value = headers.first(name)
        if value:
            hints.append((name, _clean(value)[:200]))
    hints.extend(extra_hints)
    body: str | None = None
    if snippet is None:
        try:
            snippet, body = snippet_and_body(raw_headers, raw_body, snippet_chars, keep_body)
        except Exception:  # noqa: BLE001 - a snippet is a nicety; the activity stands without it
            snippet, body = "", None
    else:
        snippet = _clean(snippet)[:snippet_chars]
    return ActivityRecord(
        key=key,
        kind=ActivityKind.EMAIL,
        occurred_at=occurred_at,
        direction=direction,
        subject=_clean(decode_words(headers.first("subject") or ""))[:998],
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
