"""Microsoft 365 mailboxes through Microsoft Graph: mail folders, the calendar, contacts, write-back.

A thin layer over Graph's REST API (``requests``) and msal (``graph_auth``). Every folder
(``inbox``, ``sentitems``, configured ones, and ``calendar``) has its own cursor, JSON::

    {"link": the @odata.deltaLink of the last finished round, or the @odata.nextLink
             of a first round in progress ("partial": true),
     "since": first day of the mail window / "window": first day of the calendar window}

States per folder::

    (no cursor) --first round, page by page (nextLink committed with each page)--> DELTA
    DELTA --deltaLink: only changes, "@removed" entries are removals--> DELTA
    DELTA --410 Gone (syncStateNotFound / resyncRequired)--> RESYNC
    RESYNC --full round of the same window, no cursor until its end; then everything we
             hold from the folder that the round did not list is removed--> DELTA

Item keys are ``<folder>/<immutable id>`` (``Prefer: IdType="ImmutableId"``), so a
resync finds the same keys and nothing doubles; the activity identity of a message is
its internetMessageId, shared with IMAP and other mailboxes.

The calendar is read with calendarView delta over ``[today - past_days, today +
future_days]``. The window is fixed in Graph's delta token, so when it has moved by a day
the calendar is read afresh (as a RESYNC, keeping meetings that merely aged out of it).

Throttling: 429 (and 503) honour Retry-After up to ``throttle_max_wait_seconds``; a longer
wait ends this source's pass with ``SourceUnavailable``, so the other mailboxes, synced
in parallel threads, go on. Other 5xx and network errors back off exponentially with
jitter (tenacity). 401 is retried once with a fresh token; 401/403 after that is an
authentication error (consent revoked, application access policy), never retried fast.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from syncd.connectors.base import Connector, SourceAuthError, SourceConfigError, SourceUnavailable
from syncd.connectors.graph_auth import GraphTokens
from syncd.records import (
    ActivityKind,
    ActivityRecord,
    Batch,
    CustomerKind,
    CustomerNote,
    CustomerRecord,
    Direction,
    Participant,
    Problem,
    ReadOptions,
    Role,
    SourceState,
)

log = logging.getLogger("syncd.connectors.graph")

MESSAGE_FIELDS = ("from", "toRecipients", "ccRecipients", "bccRecipients", "subject", "bodyPreview",
                  "receivedDateTime", "sentDateTime", "internetMessageId", "conversationId", "webLink",
                  "categories", "changeKey", "isDraft")
CONTACT_FIELDS = ("displayName", "emailAddresses", "businessPhones", "mobilePhone", "homePhones", "companyName",
                  "businessHomePage", "changeKey", "personalNotes")
WELL_KNOWN_FOLDERS = {"inbox", "sentitems", "archive", "drafts", "deleteditems", "junkemail", "outbox",
                      "clutter", "conversationhistory", "scheduled"}
# Outlook has no message sensitivity in Graph v1.0 without extended properties; a category
# is how users mark mail private in the client (the field notes' "privacy from the mail client").
PRIVATE_CATEGORIES = {"private", "privat", "privé", "privato", "privado", "confidential", "personal"}
NOTE_MARKER = "[syncd] Customer timeline"
MAX_PAGE = 500


class DeltaExpired(Exception):
    """Graph no longer knows the delta token (410): the folder must be read afresh."""


class NotFound(Exception):
    """404 from Graph: the item or folder is gone."""


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class GraphMailbox:
    """One mailbox's settings, resolved from the config."""

    mailbox: str
    owner: str
    owner_addresses: frozenset[str] = frozenset()
    folders: tuple[str, ...] = ("inbox", "sentitems")
    backfill_days: int = 365
    calendar: bool = True
    past_days: int = 365
    future_days: int = 180
    contacts_folder: str = "Customers"


class GraphClient:
    """Graph REST calls with the token, throttling and error mapping syncd needs; nothing else."""

    def __init__(self, base_url: str, tokens: GraphTokens, *, source: str, timeout: float = 60,
                 max_wait: float = 60, attempts: int = 5, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.source = source
        self.timeout = timeout
        self.max_wait = max_wait
        self.attempts = attempts
        self.sleep = sleep
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("https://", "http://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return float((wait_exponential(multiplier=0.5, max=30) + wait_random(0, 0.5))(state))

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                prefer: tuple[str, ...] = ()) -> dict[str, Any]:
        retrying = Retrying(retry=retry_if_exception_type(_Transient), wait=self._wait,
                            stop=stop_after_attempt(self.attempts), sleep=self.sleep, reraise=True,
                            before_sleep=lambda s: log.warning(
                                "source=%s graph transient error, retrying attempt=%d error=%r", self.source,
                                s.attempt_number, str(s.outcome.exception()) if s.outcome else ""))
        try:
            return retrying(self._once, method, path, params, body, prefer)
        except _Transient as exc:
            raise SourceUnavailable(f"Graph: {exc} (gave up after {self.attempts} attempts)") from None

    def _once(self, method: str, path: str, params: dict[str, str] | None, body: Any,
              prefer: tuple[str, ...], refreshed: bool = False) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.tokens.token(force_refresh=refreshed)}",
                   "Accept": "application/json"}
        if prefer:
            headers["Prefer"] = ", ".join(prefer)
        try:
            response = self.session.request(method, self.url(path), params=params, json=body, headers=headers,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise _Transient(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        status = response.status_code
        if status < 300:
            return response.json() if response.content else {}
        code, message = _error(response)
        what = f"{method} {_path_only(path)}: {status} {code}: {message}"
        if status == 401 and not refreshed:
            return self._once(method, path, params, body, prefer, refreshed=True)
        if status in (401, 403):
            raise SourceAuthError(f"Graph refused access ({what}); check the app's permissions, admin consent and "
                                  f"application access policy for this mailbox")
        if status == 404:
            raise NotFound(what)
        if status == 410:
            raise DeltaExpired(what)
        if status in (429, 503) or status >= 500:
            retry_after = _retry_after(response)
            if retry_after is not None and retry_after > self.max_wait:
                raise SourceUnavailable(f"Graph throttled this mailbox: Retry-After {retry_after:.0f}s exceeds "
                                        f"throttle_max_wait_seconds; retried next pass")
            if status == 429:
                log.warning("source=%s graph throttled retry_after=%s", self.source, retry_after)
            raise _Transient(what, retry_after if retry_after is not None else (1.0 if status == 429 else None))
        if status == 400 and code in ("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ErrorMailboxNotFound"):
            raise SourceConfigError(what)
        raise SourceUnavailable(what)

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.request("GET", path, **kwargs)

    def pages(self, path: str, params: dict[str, str] | None = None,
              prefer: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink."""
        page = self.get(path, params=params, prefer=prefer)
        while True:
            yield page
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get(link, prefer=prefer)


def _path_only(path: str) -> str:
    """A URL without its query (delta and skip tokens are state, not for logs)."""
    return path.split("?", 1)[0]


def _error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", response.text[:200]
    if isinstance(error, str):  # the token endpoint's shape
        return error, ""
    return str(error.get("code", "")), str(error.get("message", ""))[:300]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: Graph sends seconds; back off exponentially instead


def graph_time(value: str | None) -> datetime | None:
    """Graph's ISO times ("2026-10-01T09:00:00Z", or 7 fraction digits and no zone in events) as UTC."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, tail = text.split(".", 1)
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _address(value: Any) -> tuple[str, str] | None:
    """(address, name) of a Graph recipient; Exchange-internal X.500 addresses have no '@' and are skipped."""
    email = (value or {}).get("emailAddress") or {}
    address = str(email.get("address") or "").strip().lower()
    if address.count("@") != 1 or " " in address or address.startswith("@"):
        return None
    return address, " ".join(str(email.get("name") or "").split())[:200]


def _clean(text: str | None, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


def message_record(item: dict[str, Any], *, folder: str, mailbox: str, owners: frozenset[str],
                   snippet_chars: int) -> ActivityRecord | Problem:
    key = f"{folder}/{item['id']}"
    version = str(item.get("changeKey") or "")
    where = f"{mailbox} {folder} {item['id'][:24]}…"
    participants: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    fields = (("from", Role.FROM), ("toRecipients", Role.TO), ("ccRecipients", Role.CC), ("bccRecipients", Role.BCC))
    for field_name, role in fields:
        values = item.get(field_name)
        for value in ([values] if isinstance(values, dict) else values or []):
            found = _address(value)
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
    categories = [str(c) for c in item.get("categories") or []]
    if categories:
        hints.append(("categories", "; ".join(categories)[:200]))
    if any(c.strip().casefold() in PRIVATE_CATEGORIES for c in categories):
        hints.append(("sensitivity", "private"))
    message_id = str(item.get("internetMessageId") or "").strip().strip("<>") or None
    conversation = item.get("conversationId")
    return ActivityRecord(
        key=key, kind=ActivityKind.EMAIL, occurred_at=occurred_at,
        direction=Direction.OUTBOUND if sender in owners else Direction.INBOUND,
        subject=_clean(item.get("subject"), 998), snippet=_clean(item.get("bodyPreview"), snippet_chars),
        participants=tuple(participants), message_id=message_id,
        thread_key=f"graph-conversation:{conversation}" if conversation else message_id,
        mailbox=mailbox, folder=folder, link=item.get("webLink"), version=version, hints=tuple(hints),
    )


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


def event_record(item: dict[str, Any], *, mailbox: str, owners: frozenset[str],
                 snippet_chars: int) -> ActivityRecord | Problem:
    key = f"calendar/{item['id']}"
    start = _event_start(item)
    change_key = str(item.get("changeKey") or "")
    where = f"{mailbox} calendar {item['id'][:24]}…"
    if start is None:
        return Problem(key, "event without a start time", where, change_key)
    # The start rides in the version, so a later re-listing can tell an event that aged out
    # of the window (kept: it is history) from one that was deleted.
    version = f"{start.strftime('%Y%m%dT%H%M%SZ')}|{change_key}"[:128]
    participants: list[Participant] = []
    organizer = _address(item.get("organizer"))
    if organizer:
        participants.append(Participant(organizer[0], organizer[1], Role.ORGANIZER))
    seen = {p.email for p in participants}
    for attendee in item.get("attendees") or []:
        found = _address(attendee)
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
    location = _clean((item.get("location") or {}).get("displayName"), 200)
    if location:
        hints.append(("location", location))
    categories = [str(c) for c in item.get("categories") or []]
    if categories:
        hints.append(("categories", "; ".join(categories)[:200]))
    preview = _clean(item.get("bodyPreview"), snippet_chars)
    snippet = f"{location}: {preview}" if location and preview else location or preview
    uid = item.get("iCalUId")
    series = item.get("seriesMasterId")
    direction = Direction.UNKNOWN if organizer is None else (
        Direction.OUTBOUND if organizer[0] in owners else Direction.INBOUND)
    return ActivityRecord(
        key=key, kind=ActivityKind.MEETING, occurred_at=start, direction=direction,
        subject=_clean(item.get("subject"), 998), snippet=snippet[:snippet_chars], participants=tuple(participants),
        message_id=f"graph-event:{uid}" if uid else None,
        thread_key=f"graph-series:{series}" if series else (f"graph-event:{uid}" if uid else None),
        mailbox=mailbox, folder="calendar", link=item.get("webLink"), version=version, hints=tuple(hints),
    )


def with_categories(existing: list[str], names: tuple[str, ...]) -> list[str]:
    """The user's categories, in their order, then the customers' missing ones (case-insensitive)."""
    folded = {c.casefold() for c in existing}
    return existing + [n for n in dict.fromkeys(names) if n.casefold() not in folded]


@dataclass
class DeltaCursor:
    link: str
    since: str = ""
    partial: bool = False

    @classmethod
    def load(cls, text: str | None) -> "DeltaCursor | None":
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None  # unreadable: a fresh round, which is safe

    def dump(self) -> str:
        return json.dumps({"link": self.link, "since": self.since, "partial": self.partial}, sort_keys=True)


def _odata_quote(value: str) -> str:
    return value.replace("'", "''")


class GraphConnector(Connector):
    """Mail folders and the calendar of one Microsoft 365 mailbox."""

    kind = "graph"

    def __init__(self, name: str, options: ReadOptions, account: GraphMailbox, client: GraphClient, *,
                 today: Callable[[], date] = lambda: datetime.now(timezone.utc).date()):
        super().__init__(name, options)
        self.account = account
        self.client = client
        self.today = today
        self._categories: set[str] | None = None

    @property
    def user(self) -> str:
        return f"users/{quote(self.account.mailbox, safe='@')}"

    @property
    def prefer(self) -> tuple[str, ...]:
        return ('IdType="ImmutableId"', f"odata.maxpagesize={min(MAX_PAGE, max(1, self.options.batch_size))}")

    def close(self) -> None:
        self.client.close()

    # ---- reading -------------------------------------------------------------------

    def read(self, state: SourceState) -> Iterator[Batch]:
        try:
            for label in self.account.folders:
                yield from self._sync_folder(label, state)
            if self.account.calendar:
                yield from self._sync_calendar(state)
        except (DeltaExpired, NotFound) as exc:
            raise SourceUnavailable(f"mailbox {self.account.mailbox}: {exc}") from None

    def _folder_path(self, label: str) -> str:
        """The Graph path of a configured folder: a well-known name, or display names down from the top."""
        parts = [p for p in label.split("/") if p]
        first = parts[0]
        if first.lower() in WELL_KNOWN_FOLDERS:
            folder_id = first.lower()
        else:
            folder_id = self._child_id(f"{self.user}/mailFolders", first, label)
        for part in parts[1:]:
            folder_id = self._child_id(f"{self.user}/mailFolders/{folder_id}/childFolders", part, label)
        return f"{self.user}/mailFolders/{folder_id}"

    def _child_id(self, collection: str, name: str, label: str) -> str:
        try:
            found = self.client.get(collection, params={"$filter": f"displayName eq '{_odata_quote(name)}'",
                                                        "$select": "id,displayName"}, prefer=self.prefer[:1])
        except NotFound:
            found = {"value": []}
        values = found.get("value") or []
        if not values:
            raise SourceConfigError(f"mailbox {self.account.mailbox}: no mail folder {label!r} ({name!r} not found)")
        return str(values[0]["id"])

    def _sync_folder(self, label: str, state: SourceState) -> Iterator[Batch]:
        cursor = DeltaCursor.load(state.cursors.get(label))
        held = {k for k in state.known if k.startswith(f"{label}/")}
        since = cursor.since if cursor and cursor.since else (
            self.today() - timedelta(days=self.account.backfill_days)).isoformat()

        def first_round() -> tuple[str, dict[str, str]]:
            path = f"{self._folder_path(label)}/messages/delta"
            return path, {"$select": ",".join(MESSAGE_FIELDS), "$filter": f"receivedDateTime ge {since}T00:00:00Z"}

        def parse(item: dict[str, Any]) -> ActivityRecord | Problem:
            return message_record(item, folder=label, mailbox=self.account.mailbox,
                                  owners=self.account.owner_addresses | {self.account.owner},
                                  snippet_chars=self.options.snippet_chars)

        try:
            if cursor is None:
                path, params = first_round()
                # A lost cursor with items held is a resync: the round decides what is gone.
                yield from self._round(label, path, params, since, parse, held if held else None)
            else:
                yield from self._round(label, cursor.link, None, since, parse, None)
        except DeltaExpired:
            log.warning("source=%s folder=%s delta token expired (410): reading the folder afresh", self.name, label)
            path, params = first_round()
            yield from self._round(label, path, params, since, parse, held)

    def _round(self, label: str, path: str, params: dict[str, str] | None, since: str,
               parse: Callable[[dict[str, Any]], ActivityRecord | Problem], resync: set[str] | None,
               prefer: tuple[str, ...] = (), keep: Callable[[str], bool] = lambda key: False) -> Iterator[Batch]:
        """One delta round from ``path``. With ``resync`` (the keys held for this folder), the
        round is a full listing: no cursor until its end, then the unlisted keys are removed,
        except those ``keep`` says to keep."""
        seen: set[str] = set()
        url: str | None = path
        first = True
        while url:
            page = self.client.get(url, params=params if first else None, prefer=prefer or self.prefer)
            first = False
            records: list[ActivityRecord] = []
            problems: list[Problem] = []
            removed: list[str] = []
            for item in page.get("value") or []:
                if "id" not in item:
                    continue
                key = f"{label}/{item['id']}"
                if "@removed" in item:
                    removed.append(key)
                    continue
                if item.get("isDraft"):
                    continue
                parsed = parse(item)
                (records if isinstance(parsed, ActivityRecord) else problems).append(parsed)  # type: ignore[arg-type]
                seen.add(key)
            next_link = page.get("@odata.nextLink")
            delta_link = page.get("@odata.deltaLink")
            cursor: str | None
            complete = False
            if resync is not None:
                cursor = None
                if not next_link and delta_link:
                    removed += sorted(k for k in resync if k not in seen and not keep(k))
                    cursor = DeltaCursor(delta_link, since).dump()
                    complete = True
            elif next_link:
                cursor = DeltaCursor(next_link, since, partial=True).dump()
            else:
                cursor = DeltaCursor(delta_link, since).dump() if delta_link else None
            yield Batch(records=tuple(records), problems=tuple(problems), removed=tuple(removed), folder=label,
                        cursor=cursor, listing_complete=complete, listed=len(seen), pending=None if next_link else 0)
            url = next_link

    def _window(self) -> tuple[str, datetime, datetime]:
        today = self.today()
        start = datetime.combine(today - timedelta(days=self.account.past_days), dtime(0), tzinfo=timezone.utc)
        end = datetime.combine(today + timedelta(days=self.account.future_days + 1), dtime(0), tzinfo=timezone.utc)
        return start.date().isoformat(), start, end

    def _sync_calendar(self, state: SourceState) -> Iterator[Batch]:
        label = "calendar"
        window, start, end = self._window()
        cursor = DeltaCursor.load(state.cursors.get(label))
        held = {k for k in state.known if k.startswith(f"{label}/")}
        prefer = (*self.prefer, 'outlook.timezone="UTC"')
        path = f"{self.user}/calendarView/delta"
        params = {"startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def parse(item: dict[str, Any]) -> ActivityRecord | Problem:
            return event_record(item, mailbox=self.account.mailbox,
                                owners=self.account.owner_addresses | {self.account.owner},
                                snippet_chars=self.options.snippet_chars)

        def aged_out(key: str) -> bool:
            stamp = state.known.get(key, "").split("|", 1)[0]
            try:
                return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) < start
            except ValueError:
                return False

        if cursor is not None and cursor.since != window:
            log.info("source=%s calendar window moved to %s: reading it afresh", self.name, window)
            cursor = None
        try:
            if cursor is None:
                yield from self._round(label, path, params, window, parse, held if held else None, prefer, aged_out)
            else:
                yield from self._round(label, cursor.link, None, window, parse, None, prefer)
        except DeltaExpired:
            log.warning("source=%s folder=calendar delta token expired (410): reading the window afresh", self.name)
            yield from self._round(label, path, params, window, parse, held, prefer, aged_out)

    # ---- write-back ------------------------------------------------------------------

    def _master_categories(self) -> set[str]:
        if self._categories is None:
            found = self.client.get(f"{self.user}/outlook/masterCategories")
            self._categories = {str(c.get("displayName", "")).casefold() for c in found.get("value") or []}
        return self._categories

    def write_back(self, labels: dict[str, tuple[str, ...]]) -> set[str]:
        """A category per customer on each message and event; the user's own categories stay."""
        written: set[str] = set()
        if not labels:
            return written
        master = self._master_categories()
        for name in sorted({n for names in labels.values() for n in names}):
            if name.casefold() not in master:
                self.client.request("POST", f"{self.user}/outlook/masterCategories",
                                    body={"displayName": name, "color": "preset7"})
                master.add(name.casefold())
        for key, names in sorted(labels.items()):
            folder, _, item_id = key.partition("/")
            collection = "events" if folder == "calendar" else "messages"
            path = f"{self.user}/{collection}/{quote(item_id, safe='')}"
            try:
                current = self.client.get(path, params={"$select": "categories"}, prefer=self.prefer[:1])
            except NotFound:
                continue  # deleted since it was read; the next pass removes it
            existing = [str(c) for c in current.get("categories") or []]
            merged = with_categories(existing, names)
            if merged != existing:
                try:
                    self.client.request("PATCH", path, body={"categories": merged}, prefer=self.prefer[:1])
                except NotFound:
                    continue
            written.add(key)
        return written

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        """One contact per customer in the contacts folder, its notes holding the timeline."""
        written: set[str] = set()
        if not notes:
            return written
        folder_id = self._contact_folder(self.account.contacts_folder, create=True)
        existing: dict[str, dict[str, Any]] = {}
        for page in self.client.pages(f"{self.user}/contactFolders/{folder_id}/contacts",
                                      params={"$select": "displayName,personalNotes", "$top": "500"}):
            for contact in page.get("value") or []:
                existing.setdefault(str(contact.get("displayName", "")).casefold(), contact)
        for key, note in sorted(notes.items()):
            body: dict[str, Any] = {
                "displayName": note.name, "personalNotes": note.text,
                "emailAddresses": [{"address": e, "name": note.name} for e in note.emails[:3]],
            }
            if note.company:
                body["companyName"] = note.company
            found = existing.get(note.name.casefold())
            if found is None:
                self.client.request("POST", f"{self.user}/contactFolders/{folder_id}/contacts", body=body)
            elif found.get("personalNotes") != note.text:
                self.client.request("PATCH", f"{self.user}/contacts/{quote(str(found['id']), safe='')}", body=body)
            written.add(key)
        return written

    def _contact_folder(self, name: str, create: bool) -> str:
        found = self.client.get(f"{self.user}/contactFolders",
                                params={"$filter": f"displayName eq '{_odata_quote(name)}'"})
        values = found.get("value") or []
        if values:
            return str(values[0]["id"])
        if not create:
            raise SourceConfigError(f"mailbox {self.account.mailbox}: no contact folder {name!r}")
        created = self.client.request("POST", f"{self.user}/contactFolders", body={"displayName": name})
        return str(created["id"])


class GraphContactsConnector(Connector):
    """Customers from a contact folder: each contact a person, each company name a company.

    A listing connector: contact folders are small next to mailboxes, and a company is
    derived from all its people, so the folder is listed in full every pass (a page per
    500 contacts) and only new or changed records are handed on. Contacts syncd itself
    writes (write_contacts) are recognised by their notes and never read back as customers.
    """

    kind = "graph_contacts"

    def __init__(self, name: str, options: ReadOptions, mailbox: str, folder: str, client: GraphClient):
        super().__init__(name, options)
        self.mailbox = mailbox
        self.folder = folder
        self.client = client

    def close(self) -> None:
        self.client.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        user = f"users/{quote(self.mailbox, safe='@')}"
        if self.folder.casefold() == "contacts":
            path = f"{user}/contacts"
        else:
            folders = self.client.get(f"{user}/contactFolders",
                                      params={"$filter": f"displayName eq '{_odata_quote(self.folder)}'"})
            values = folders.get("value") or []
            if not values:
                raise SourceConfigError(f"mailbox {self.mailbox}: no contact folder {self.folder!r}")
            path = f"{user}/contactFolders/{values[0]['id']}/contacts"
        found: list[ContactFields] = []
        for page in self.client.pages(path, params={"$select": ",".join(CONTACT_FIELDS), "$top": "500"},
                                      prefer=('IdType="ImmutableId"',)):
            for contact in page.get("value") or []:
                if str(contact.get("personalNotes") or "").startswith(NOTE_MARKER):
                    continue  # our own write-back
                emails = [a[0] for a in (_address({"emailAddress": e}) for e in contact.get("emailAddresses") or [])
                          if a]
                phones = [*(contact.get("businessPhones") or []), contact.get("mobilePhone"),
                          *(contact.get("homePhones") or [])]
                found.append(ContactFields(f"contact/{contact['id']}", _clean(contact.get("displayName"), 500),
                                           tuple(emails), tuple(str(p) for p in phones if p),
                                           _clean(contact.get("companyName"), 500),
                                           str(contact.get("businessHomePage") or "").strip()))
        yield from listing_batches(contact_records(found, f"{self.mailbox} contacts {self.folder}"), state,
                                   self.options.batch_size)


@dataclass(frozen=True)
class ContactFields:
    """What a customer source needs of one Exchange contact, whichever API read it."""

    key: str
    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    company: str
    homepage: str


def contact_records(contacts: list[ContactFields], where: str) -> list[CustomerRecord]:
    """Each contact a person; each company name a company (its domains from the contacts' home pages)."""
    companies: dict[str, CustomerRecord] = {}
    people: list[CustomerRecord] = []
    for contact in contacts:
        company_key = None
        if contact.company:
            company_key = "company:" + contact.company.casefold()
            homepage = (contact.homepage,) if contact.homepage else ()
            existing = companies.get(company_key)
            domains = homepage if existing is None else tuple(dict.fromkeys(existing.domains + homepage))
            companies[company_key] = _versioned(CustomerRecord(key=company_key, kind=CustomerKind.COMPANY,
                                                               name=contact.company, domains=domains, where=where))
        emails = tuple(dict.fromkeys(e.strip().lower() for e in contact.emails if e.count("@") == 1))
        name = contact.name or (emails[0] if emails else "")
        if name:
            people.append(_versioned(CustomerRecord(key=contact.key, kind=CustomerKind.PERSON, name=name,
                                                    emails=emails, phones=tuple(dict.fromkeys(contact.phones)),
                                                    company_key=company_key, where=where)))
    return list(companies.values()) + people


def listing_batches(records: list[CustomerRecord], state: SourceState, batch_size: int) -> Iterator[Batch]:
    """New or changed records in batches, then the removals of a full listing."""
    changed = [r for r in records if state.known.get(r.key) != r.version]
    size = max(1, batch_size)
    for start in range(0, len(changed), size):
        yield Batch(records=tuple(changed[start : start + size]))
    listed = {r.key for r in records}
    yield Batch(removed=tuple(sorted(k for k in state.known if k not in listed)), listing_complete=True,
                listed=len(listed))


def _versioned(record: CustomerRecord) -> CustomerRecord:
    import hashlib

    digest = hashlib.sha256(json.dumps([record.kind.value, record.name, record.emails, record.phones,
                                        record.domains, record.company_key]).encode()).hexdigest()[:32]
    return CustomerRecord(key=record.key, kind=record.kind, name=record.name, emails=record.emails,
                          phones=record.phones, domains=record.domains, company_key=record.company_key,
                          owner=record.owner, version=digest, where=record.where)
