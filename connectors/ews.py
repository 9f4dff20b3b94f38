"""Exchange Server (on-premises) mailboxes through EWS with exchangelib: mail, calendar, contacts, write-back.

Exchange Online blocks EWS by default since 1 Oct 2026 and ends it on 1 Apr 2027:
Microsoft 365 mailboxes belong to ``connectors/graph.py``. This connector is for
Exchange Server 2016/2019/SE, reached at an explicit EWS endpoint (Autodiscover optional)
with NTLM, basic or OAuth credentials from secrets, TLS verified by default.

Each folder (inbox, sent items, configured ones, calendar) has its own cursor, JSON::

    {"state": the SyncFolderItems sync state after the last committed page,
     "since": first day of the mail window}

SyncFolderItems pages through changes since the state (``MaxChangesReturned`` = batch
size); every page's state is a valid resume point, so it commits with the page. The
server lists Create/Update changes by id and change key only (IdOnly shape plus the
received date); items inside the window are then read with one GetItem per page, asking
only for the fields the timeline needs. A rejected state (``ErrorInvalidSyncStateData``)
starts the folder over from no state; that round commits no cursor until its end, and
then removes what we hold that it did not list (item keys are ``<folder>/<ItemId>``, so
nothing doubles).

The calendar folder is synced the same way. SyncFolderItems returns a recurring series as
its master; the master's iCalendar form (MIME content) is read and expanded into one
activity per occurrence inside the window, as the CalDAV connector does; cancelled meetings
are kept and marked.

Write-back (each off by default): categories per customer via UpdateItem (the user's own
kept), and a contact per customer in a "Customers" folder under Contacts whose body holds
the recent timeline (CreateItem/UpdateItem). EWS throttling (ErrorServerBusy) ends the
pass for this mailbox only; it is retried next pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from syncd.connectors.base import Connector, SourceAuthError, SourceConfigError, SourceUnavailable
from syncd.connectors.icalevents import EventWindow, parse_resource
from syncd.connectors.graph import PRIVATE_CATEGORIES, ContactFields, contact_records, listing_batches, with_categories
from syncd.records import (
    ActivityKind,
    ActivityRecord,
    Batch,
    CustomerNote,
    Direction,
    Participant,
    Problem,
    ReadOptions,
    Role,
    SourceState,
)

log = logging.getLogger("syncd.connectors.ews")

EXCHANGE_ONLINE_HOSTS = ("outlook.office365.com", "outlook.office.com")
MESSAGE_FIELDS = ("author", "sender", "to_recipients", "cc_recipients", "bcc_recipients", "subject", "datetime_sent",
                  "datetime_received", "message_id", "conversation_id", "categories", "sensitivity", "text_body")
EVENT_FIELDS = ("subject", "start", "end", "is_all_day", "organizer", "required_attendees", "optional_attendees",
                "is_cancelled", "sensitivity", "uid", "location", "type", "categories", "text_body")
CONTACT_FIELDS = ("display_name", "email_addresses", "phone_numbers", "company_name", "business_homepage",
                  "categories")
SYNCD_CATEGORY = "syncd"  # marks the customer contacts syncd writes, so they are never read back as customers


def exchange_online_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in EXCHANGE_ONLINE_HOSTS or host.endswith(".office365.com")


@dataclass(frozen=True)
class EwsAccount:
    mailbox: str
    username: str
    password: Callable[[], str]
    auth_type: str = "ntlm"
    service_endpoint: str | None = None
    autodiscover: bool = False
    verify_tls: bool = True
    impersonation: bool = False
    client_id: str | None = None
    tenant_id: str | None = None
    timeout: float = 60


class ResyncNeeded(Exception):
    """The server rejected our sync state."""


def _errors() -> Any:
    from exchangelib import errors

    return errors


class EwsSession:
    """One exchangelib Account, made on first use, with exchangelib's errors mapped to ours."""

    def __init__(self, account: EwsAccount, source: str):
        self.settings = account
        self.source = source
        self._account: Any = None

    def account(self) -> Any:
        if self._account is not None:
            return self._account
        from exchangelib import BASIC, DELEGATE, IMPERSONATION, NTLM, OAUTH2, Account, Configuration, Credentials
        from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter

        # exchangelib's debug log holds request headers (the Basic/NTLM Authorization) and
        # whole SOAP bodies (mail content): never let it through, even under --debug.
        logging.getLogger("exchangelib").setLevel(logging.WARNING)
        s = self.settings
        BaseProtocol.TIMEOUT = s.timeout
        if not s.verify_tls:
            # exchangelib sets this per process; start-up logs a warning for every such source.
            BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
        if s.auth_type == "oauth":
            from exchangelib import Identity, OAuth2Credentials

            credentials: Any = OAuth2Credentials(client_id=s.client_id, client_secret=s.password(),
                                                 tenant_id=s.tenant_id, identity=Identity(primary_smtp_address=s.mailbox))
        else:
            credentials = Credentials(s.username, s.password())
        auth = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}[s.auth_type]
        access = IMPERSONATION if s.impersonation else DELEGATE
        with self.mapped("connect"):
            if s.autodiscover:
                self._account = Account(primary_smtp_address=s.mailbox, credentials=credentials, autodiscover=True,
                                        access_type=access)
            else:
                config = Configuration(service_endpoint=s.service_endpoint, credentials=credentials, auth_type=auth,
                                       max_connections=2)
                self._account = Account(primary_smtp_address=s.mailbox, config=config, autodiscover=False,
                                        access_type=access)
        return self._account

    def close(self) -> None:
        if self._account is not None:
            try:
                self._account.protocol.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self._account = None

    def mapped(self, what: str) -> "_Mapped":
        return _Mapped(self, what)


class _Mapped:
    """``with session.mapped("sync inbox"):`` turns exchangelib's errors into the connector contract's."""

    def __init__(self, session: EwsSession, what: str):
        self.session = session
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> bool:
        if exc is None or isinstance(exc, (SourceAuthError, SourceConfigError, SourceUnavailable, ResyncNeeded)):
            return False
        errors = _errors()
        where = f"{self.session.settings.service_endpoint or 'autodiscover'} {self.session.settings.mailbox}"
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if isinstance(exc, (errors.ErrorInvalidSyncStateData, errors.ErrorSyncFolderNotFound)):
            raise ResyncNeeded(text) from None
        if isinstance(exc, (errors.UnauthorizedError, errors.ErrorAccessDenied, errors.ErrorImpersonateUserDenied,
                            errors.ErrorImpersonationDenied)):
            raise SourceAuthError(f"{where}: {self.what} refused ({text})") from None
        if isinstance(exc, errors.ErrorNonExistentMailbox):
            raise SourceConfigError(f"{where}: {self.what}: no such mailbox ({text})") from None
        if isinstance(exc, (errors.TransportError, errors.ErrorServerBusy, errors.EWSError, OSError)) or \
                type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
            self.session.close()
            raise SourceUnavailable(f"{where}: {self.what} failed ({text})") from None
        return False


@dataclass
class SyncCursor:
    state: str | None
    since: str
    partial: bool = False

    @classmethod
    def load(cls, text: str | None) -> "SyncCursor | None":
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def dump(self) -> str:
        return json.dumps({"state": self.state, "since": self.since, "partial": self.partial}, sort_keys=True)


def _mailbox(value: Any) -> tuple[str, str] | None:
    address = str(getattr(value, "email_address", "") or "").strip().lower()
    if address.count("@") != 1 or " " in address:
        return None  # Exchange-internal (X.500) addresses have no '@'
    return address, " ".join(str(getattr(value, "name", "") or "").split())[:200]


def _utc(value: Any) -> datetime | None:
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


def _clean(text: Any, limit: int) -> str:
    return " ".join(str(text or "").split())[:limit]


def message_record(item: Any, *, key: str, folder: str, mailbox: str, owners: frozenset[str],
                   snippet_chars: int) -> ActivityRecord | Problem:
    version = str(item.changekey or "")
    participants: list[Participant] = []
    seen: set[tuple[str, Role]] = set()
    sender = getattr(item, "author", None) or getattr(item, "sender", None)
    groups = ((Role.FROM, [sender] if sender else []), (Role.TO, item.to_recipients or []),
              (Role.CC, item.cc_recipients or []), (Role.BCC, item.bcc_recipients or []))
    for role, values in groups:
        for value in values:
            found = _mailbox(value)
            if found and (found[0], role) not in seen:
                seen.add((found[0], role))
                participants.append(Participant(found[0], found[1], role))
    if not participants:
        return Problem(key, "no valid sender or recipient address", f"{mailbox} {folder}", version)
    occurred_at = _utc(item.datetime_sent) or _utc(item.datetime_received)
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
        key=key, kind=ActivityKind.EMAIL, occurred_at=occurred_at,
        direction=Direction.OUTBOUND if from_address in owners else Direction.INBOUND,
        subject=_clean(item.subject, 998), snippet=_clean(getattr(item, "text_body", ""), snippet_chars),
        participants=tuple(participants), message_id=message_id,
        thread_key=f"ews-conversation:{conversation}" if conversation else message_id,
        mailbox=mailbox, folder=folder, version=version, hints=tuple(hints),
    )


def event_record(item: Any, *, key: str, mailbox: str, owners: frozenset[str],
                 snippet_chars: int) -> ActivityRecord | Problem:
    version = str(item.changekey or "")
    start = _utc(item.start)
    if start is None:
        return Problem(key, "event without a start time", f"{mailbox} calendar", version)
    participants: list[Participant] = []
    organizer = _mailbox(item.organizer) if item.organizer else None
    if organizer:
        participants.append(Participant(organizer[0], organizer[1], Role.ORGANIZER))
    seen = {p.email for p in participants}
    for attendee in [*(item.required_attendees or []), *(item.optional_attendees or [])]:
        found = _mailbox(getattr(attendee, "mailbox", None))
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
    end = _utc(item.end)
    if end is not None:
        hints.append(("ends-at", end.isoformat()))
    location = _clean(item.location, 200)
    if location:
        hints.append(("location", location))
    preview = _clean(getattr(item, "text_body", ""), snippet_chars)
    snippet = f"{location}: {preview}" if location and preview else location or preview
    direction = Direction.UNKNOWN if organizer is None else (
        Direction.OUTBOUND if organizer[0] in owners else Direction.INBOUND)
    uid = item.uid
    return ActivityRecord(
        key=key, kind=ActivityKind.MEETING, occurred_at=start, direction=direction, subject=_clean(item.subject, 998),
        snippet=snippet[:snippet_chars], participants=tuple(participants),
        message_id=f"ews-event:{uid}" if uid else None, thread_key=f"ews-event:{uid}" if uid else None,
        mailbox=mailbox, folder="calendar", version=version, hints=tuple(hints),
    )


def _folder_by_path(account: Any, label: str) -> Any:
    """A distinguished folder (inbox, sentitems, calendar...) or display names down from the mailbox root."""
    from exchangelib.folders import Folder, FolderCollection
    from exchangelib.properties import DistinguishedFolderId, Mailbox

    parts = [p for p in label.split("/") if p]
    first = parts[0].lower()
    by_id = {cls.DISTINGUISHED_FOLDER_ID: cls for cls in _distinguished_classes()}
    if first in by_id:
        cls = by_id[first]
        folder = cls._get_distinguished(folder=cls(
            _distinguished_id=DistinguishedFolderId(id=first, mailbox=Mailbox(email_address=account.primary_smtp_address)),
            root=account.root))
        rest = parts[1:]
    else:
        folder, rest = account.msg_folder_root, parts
    for part in rest:
        children = list(FolderCollection(account=account, folders=[folder]).find_folders(depth="Shallow"))
        match = next((c for c in children if isinstance(c, Folder) and str(c.name).casefold() == part.casefold()), None)
        if match is None:
            raise SourceConfigError(f"mailbox {account.primary_smtp_address}: no folder {label!r} ({part!r} not found)")
        folder = match
    return folder


def _distinguished_classes() -> list[Any]:
    from exchangelib.folders import Calendar, Contacts, DeletedItems, Drafts, Inbox, JunkEmail, Outbox, SentItems

    try:
        from exchangelib.folders import ArchiveInbox  # noqa: F401
    except ImportError:
        pass
    return [Inbox, SentItems, Calendar, Contacts, DeletedItems, Drafts, JunkEmail, Outbox]


class EwsConnector(Connector):
    kind = "ews"

    def __init__(self, name: str, options: ReadOptions, account: EwsAccount, *, owner: str,
                 owner_addresses: frozenset[str] = frozenset(), folders: tuple[str, ...] = ("inbox", "sentitems"),
                 calendar: bool = True, backfill_days: int = 365, past_days: int = 365, future_days: int = 180,
                 contacts_folder: str = "Customers",
                 today: Callable[[], date] = lambda: datetime.now(timezone.utc).date()):
        super().__init__(name, options)
        self.session = EwsSession(account, name)
        self.mailbox = account.mailbox
        self.owners = owner_addresses | {owner, account.mailbox}
        self.folders = folders
        self.calendar = calendar
        self.backfill_days = backfill_days
        self.past_days = past_days
        self.future_days = future_days
        self.contacts_folder = contacts_folder
        self.today = today

    def close(self) -> None:
        self.session.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        labels = list(self.folders) + (["calendar"] if self.calendar else [])
        for label in labels:
            yield from self._sync_folder(label, state)

    def _sync_folder(self, label: str, state: SourceState) -> Iterator[Batch]:
        cursor = SyncCursor.load(state.cursors.get(label))
        held = {k for k in state.known if k.startswith(f"{label}/")}
        since = cursor.since if cursor else (self.today() - timedelta(days=self.backfill_days)).isoformat()
        with self.session.mapped(f"open folder {label}"):
            folder = _folder_by_path(self.session.account(), label)
        try:
            if cursor is None:
                yield from self._round(label, folder, None, since, held if held else None, held)
            else:
                yield from self._round(label, folder, cursor.state, since, None, held)
        except ResyncNeeded as exc:
            log.warning("source=%s folder=%s sync state rejected (%s): reading the folder afresh", self.name, label, exc)
            yield from self._round(label, folder, None, since, held, held)

    def _calendar_window(self) -> EventWindow:
        today = self.today()
        start = datetime.combine(today - timedelta(days=self.past_days), datetime.min.time(), tzinfo=timezone.utc)
        end = datetime.combine(today + timedelta(days=self.future_days + 1), datetime.min.time(), tzinfo=timezone.utc)
        return EventWindow(start, end, ZoneInfo("UTC"))

    def _window(self, label: str, since: str) -> Callable[[Any], bool]:
        if label == "calendar":
            # A recurring series starts where its first occurrence is, perhaps years back, and
            # may still have occurrences in the window: anything starting before the window's
            # end is read; single events outside the window are dropped once read.
            end = self._calendar_window().end
            return lambda item: (_utc(getattr(item, "start", None)) or end) < end
        first = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        return lambda item: (_utc(getattr(item, "datetime_received", None)) or first) >= first

    def _round(self, label: str, folder: Any, sync_state: str | None, since: str,
               resync: set[str] | None, held: set[str]) -> Iterator[Batch]:
        from exchangelib.services import SyncFolderItems
        from exchangelib.items import ID_ONLY

        account = self.session.account()
        is_calendar = label == "calendar"
        fields = EVENT_FIELDS if is_calendar else MESSAGE_FIELDS
        window_field = "start" if is_calendar else "datetime_received"
        additional = {f for f in folder.normalize_fields(fields=[window_field]) if not f.field.is_attribute}
        in_window = self._window(label, since)
        seen: set[str] = set()
        while True:
            service = SyncFolderItems(account=account)
            with self.session.mapped(f"sync {label}"):
                changes = list(service.call(folder=folder, shape=ID_ONLY, additional_fields=additional,
                                            sync_state=sync_state, ignore=None,
                                            max_changes_returned=max(1, self.options.batch_size), sync_scope=None))
            wanted: list[Any] = []
            removed: list[str] = []
            for change_type, item in changes:
                if change_type == SyncFolderItems.READ_FLAG_CHANGE:
                    continue
                key = f"{label}/{item.id}"
                if change_type == SyncFolderItems.DELETE:
                    removed.append(key)
                    removed += sorted(k for k in held if k.startswith(key + "#"))  # its occurrences
                    continue
                seen.add(key)
                if in_window(item):
                    wanted.append(item)
            records, problems = self._fetch(label, wanted, fields)
            if is_calendar:
                removed += self._stale_occurrences(wanted, records, problems, held)
                seen.update(r.key for r in records)
                seen.update(p.key for p in problems)
            new_state = service.sync_state
            last = bool(service.includes_last_item_in_range) or new_state == sync_state
            cursor: str | None
            complete = False
            if resync is not None:
                cursor = None
                if last:
                    removed += sorted(k for k in resync if k not in seen)
                    cursor = SyncCursor(new_state, since).dump()
                    complete = True
            else:
                cursor = SyncCursor(new_state, since, partial=not last).dump()
            yield Batch(records=tuple(records), problems=tuple(problems), removed=tuple(removed), folder=label,
                        cursor=cursor, listing_complete=complete, listed=len(seen), pending=0 if last else None)
            if last:
                return
            sync_state = new_state

    def _fetch(self, label: str, items: list[Any], fields: tuple[str, ...]) -> tuple[list[ActivityRecord], list[Problem]]:
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        if not items:
            return records, problems
        account = self.session.account()
        is_calendar = label == "calendar"
        with self.session.mapped(f"read items of {label}"):
            fetched = list(account.fetch(ids=[(i.id, i.changekey) for i in items], only_fields=list(fields)))
        errors = _errors()
        for asked, item in zip(items, fetched):
            key = f"{label}/{asked.id}"
            if isinstance(item, Exception):
                if isinstance(item, errors.ErrorItemNotFound):
                    continue  # deleted between the sync and the read: the next sync reports it
                problems.append(Problem(key, f"cannot read the item: {type(item).__name__}: {item}",
                                        f"{self.mailbox} {label}", str(asked.changekey or "")))
                continue
            if is_calendar and str(item.type or "") == "RecurringMaster":
                occurrences, trouble = self._occurrences(item, key)
                records += occurrences
                problems += trouble
                continue
            if is_calendar:
                parsed = event_record(item, key=key, mailbox=self.mailbox, owners=self.owners,
                                      snippet_chars=self.options.snippet_chars)
                window = self._calendar_window()
                if isinstance(parsed, ActivityRecord) and not window.start <= parsed.occurred_at < window.end:
                    continue  # a single event outside the window (read because it might have been a series)
            else:
                parsed = message_record(item, key=key, folder=label, mailbox=self.mailbox, owners=self.owners,
                                        snippet_chars=self.options.snippet_chars)
            (records if isinstance(parsed, ActivityRecord) else problems).append(parsed)  # type: ignore[arg-type]
        return records, problems

    def _occurrences(self, master: Any, key: str) -> tuple[list[ActivityRecord], list[Problem]]:
        """A recurring series as its occurrences in the window: the series' iCalendar form
        (its MIME content: RRULE, EXDATEs and the changed occurrences) expanded the way the
        CalDAV connector expands its events. Keys are ``<key>#<RECURRENCE-ID>``."""
        account = self.session.account()
        with self.session.mapped("read a recurring series"):
            [full] = list(account.fetch(ids=[(master.id, master.changekey)], only_fields=["mime_content"]))
        version = str(master.changekey or "")
        content = getattr(full, "mime_content", None) if not isinstance(full, Exception) else None
        if not content:
            return [], [Problem(f"{key}#", "the server sent no iCalendar data for this recurring series",
                                f"{self.mailbox} calendar", version)]
        records, problems = parse_resource(
            content, key_prefix=key, window=self._calendar_window(), owner_addresses=self.owners,
            mailbox=self.mailbox, folder="calendar", version=version, snippet_chars=self.options.snippet_chars)
        # Attendees' responses live on the item, not in the MIME: drop those who declined.
        declined = {m[0] for a in [*(master.required_attendees or []), *(master.optional_attendees or [])]
                    if str(getattr(a, "response_type", "") or "").lower() == "decline"
                    and (m := _mailbox(getattr(a, "mailbox", None)))}
        if declined:
            records = [replace(r, participants=tuple(p for p in r.participants if p.email not in declined))
                       for r in records]
        return records, problems

    @staticmethod
    def _stale_occurrences(items: list[Any], records: list[ActivityRecord], problems: list[Problem],
                           held: set[str]) -> list[str]:
        """Keys held for the events just read that they no longer produce: occurrences of a
        changed series that moved out or were deleted, or a single event that became a series."""
        fresh = {r.key for r in records} | {p.key for p in problems}
        stale: list[str] = []
        for item in items:
            key = f"calendar/{item.id}"
            stale += sorted(k for k in held if (k == key or k.startswith(key + "#")) and k not in fresh)
        return stale

    # ---- write-back --------------------------------------------------------------------

    def write_back(self, labels: dict[str, tuple[str, ...]]) -> set[str]:
        """A category per customer on each message and meeting (UpdateItem); the user's own kept."""
        written: set[str] = set()
        if not labels:
            return written
        account = self.session.account()
        keys = sorted(labels)
        errors = _errors()
        with self.session.mapped("read categories"):
            items = list(account.fetch(ids=[(k.split("/", 1)[1], None) for k in keys], only_fields=["categories"]))
        for key, item in zip(keys, items):
            if isinstance(item, Exception):
                if isinstance(item, errors.ErrorItemNotFound):
                    continue
                raise SourceUnavailable(f"{self.mailbox}: cannot read {key}: {item}")
            existing = [str(c) for c in item.categories or []]
            merged = with_categories(existing, labels[key])
            if merged != existing:
                item.categories = merged
                with self.session.mapped("set categories"):
                    item.save(update_fields=["categories"])
            written.add(key)
        return written

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        """A contact per customer in the Customers folder under Contacts, its body holding the timeline."""
        from exchangelib import Contact
        from exchangelib.folders import Folder, FolderCollection
        from exchangelib.indexed_properties import EmailAddress

        written: set[str] = set()
        if not notes:
            return written
        account = self.session.account()
        with self.session.mapped("open the customer contacts folder"):
            parent = _folder_by_path(account, "contacts")
            children = list(FolderCollection(account=account, folders=[parent]).find_folders(depth="Shallow"))
            folder = next((c for c in children if isinstance(c, Folder)
                           and str(c.name).casefold() == self.contacts_folder.casefold()), None)
            if folder is None:
                folder = Folder(parent=parent, name=self.contacts_folder, folder_class="IPF.Contact")
                folder.save()
            existing = {str(c.display_name or "").casefold(): c
                        for c in folder.all().only("display_name", "categories") if not isinstance(c, Exception)}
        for key, note in sorted(notes.items()):
            emails = [EmailAddress(email=e, label=f"EmailAddress{n + 1}") for n, e in enumerate(note.emails[:3])]
            found = existing.get(note.name.casefold())
            with self.session.mapped("write a customer contact"):
                if found is None:
                    Contact(account=account, folder=folder, display_name=note.name, file_as=note.name,
                            company_name=note.company, email_addresses=emails or None, body=note.text,
                            categories=[SYNCD_CATEGORY]).save()
                else:
                    found.body = note.text
                    found.email_addresses = emails or None
                    found.save(update_fields=["body", "email_addresses"])
            written.add(key)
        return written


class EwsContactsConnector(Connector):
    """Customers from a contact folder (default: the mailbox's Contacts), listed in full each pass."""

    kind = "ews_contacts"

    def __init__(self, name: str, options: ReadOptions, account: EwsAccount, folder: str):
        super().__init__(name, options)
        self.session = EwsSession(account, name)
        self.folder = folder

    def close(self) -> None:
        self.session.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        account = self.session.account()
        with self.session.mapped(f"read contacts {self.folder}"):
            label = self.folder if self.folder.casefold() == "contacts" else f"contacts/{self.folder}"
            folder = _folder_by_path(account, label)
            ids = [(c.id, c.changekey) for c in folder.all().only("display_name") if not isinstance(c, Exception)]
            contacts = [c for c in account.fetch(ids=ids, only_fields=list(CONTACT_FIELDS))
                        if not isinstance(c, Exception)] if ids else []
        found: list[ContactFields] = []
        for contact in contacts:
            if SYNCD_CATEGORY in (contact.categories or []):
                continue  # our own write-back
            found.append(ContactFields(
                f"contact/{contact.id}", _clean(contact.display_name, 500),
                tuple(str(e.email) for e in contact.email_addresses or [] if e.email),
                tuple(str(p.phone_number) for p in contact.phone_numbers or [] if p.phone_number),
                _clean(contact.company_name, 500), str(contact.business_homepage or "").strip()))
        yield from listing_batches(contact_records(found, f"{account.primary_smtp_address} contacts {self.folder}"),
                                   state, self.options.batch_size)
