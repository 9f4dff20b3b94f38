"""Exchange Server (on-premises) mailboxes through EWS with exchangelib: mail, calendar, contacts, write-back.

Exchange Online blocks EWS by default since 1 Oct 2026 and ends it on 1 Apr 2027:
Microsoft 365 mailboxes belong to the graph kind. This connector is for
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

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from syncd.connectors.base import Connector
from syncd.connectors.ews.folders import folder_by_path
from syncd.connectors.ews.records import SyncCursor, event_record, ews_utc, mailbox_address, message_record
from syncd.connectors.ews.session import EwsAccount, EwsSession, ResyncNeeded, errors_module
from syncd.connectors.exchange import with_categories
from syncd.connectors.icalevents import EventWindow, parse_resource
from syncd.model.errors import SourceUnavailable
from syncd.model.markers import SYNCD_CATEGORY
from syncd.model.records import ActivityRecord, Batch, CustomerNote, LabelChange, Problem, ReadOptions, SourceState

log = logging.getLogger(__name__)

MESSAGE_FIELDS = (
    "author",
    "sender",
    "to_recipients",
    "cc_recipients",
    "bcc_recipients",
    "subject",
    "datetime_sent",
    "datetime_received",
    "message_id",
    "conversation_id",
    "categories",
    "sensitivity",
)
EVENT_FIELDS = (
    "subject",
    "start",
    "end",
    "is_all_day",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "is_cancelled",
    "sensitivity",
    "uid",
    "location",
    "type",
    "categories",
)


class EwsConnector(Connector):
    kind = "ews"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        account: EwsAccount,
        *,
        owner: str,
        owner_addresses: frozenset[str] = frozenset(),
        folders: tuple[str, ...] = ("inbox", "sentitems"),
        calendar: bool = True,
        backfill_days: int = 365,
        past_days: int = 365,
        future_days: int = 180,
        contacts_folder: str = "Customers",
        today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
    ):
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
            folder = folder_by_path(self.session.account(), label)
        try:
            if cursor is None:
                yield from self._round(label, folder, None, since, held if held else None, held)
            else:
                yield from self._round(label, folder, cursor.state, since, None, held)
        except ResyncNeeded as exc:
            log.warning(
                "source=%s folder=%s sync state rejected (%s): reading the folder afresh", self.name, label, exc
            )
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
            return lambda item: (ews_utc(getattr(item, "start", None)) or end) < end
        first = datetime.fromisoformat(since).replace(tzinfo=timezone.utc)
        return lambda item: (ews_utc(getattr(item, "datetime_received", None)) or first) >= first

    def _round(
        self, label: str, folder: Any, sync_state: str | None, since: str, resync: set[str] | None, held: set[str]
    ) -> Iterator[Batch]:
        from exchangelib.items import ID_ONLY
        from exchangelib.services import SyncFolderItems

        account = self.session.account()
        is_calendar = label == "calendar"
        fields = EVENT_FIELDS if is_calendar else MESSAGE_FIELDS
        if self.options.keep_bodies:
            # The body (and a snippet from it) only when the admin chose to keep bodies:
            # EWS has no server-made preview, and the least collected is the default.
            fields = (*fields, "text_body")
        window_field = "start" if is_calendar else "datetime_received"
        additional = {f for f in folder.normalize_fields(fields=[window_field]) if not f.field.is_attribute}
        in_window = self._window(label, since)
        seen: set[str] = set()
        while True:
            service = SyncFolderItems(account=account)
            with self.session.mapped(f"sync {label}"):
                changes = list(
                    service.call(
                        folder=folder,
                        shape=ID_ONLY,
                        additional_fields=additional,
                        sync_state=sync_state,
                        ignore=None,
                        max_changes_returned=max(1, self.options.batch_size),
                        sync_scope=None,
                    )
                )
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
            yield Batch(
                records=tuple(records),
                problems=tuple(problems),
                removed=tuple(removed),
                folder=label,
                cursor=cursor,
                listing_complete=complete,
                listed=len(seen),
                pending=0 if last else None,
            )
            if last:
                return
            sync_state = new_state

    def _fetch(
        self, label: str, items: list[Any], fields: tuple[str, ...]
    ) -> tuple[list[ActivityRecord], list[Problem]]:
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        if not items:
            return records, problems
        account = self.session.account()
        is_calendar = label == "calendar"
        with self.session.mapped(f"read items of {label}"):
            fetched = list(account.fetch(ids=[(i.id, i.changekey) for i in items], only_fields=list(fields)))
        errors = errors_module()
        for asked, item in zip(items, fetched, strict=True):
            key = f"{label}/{asked.id}"
            if isinstance(item, Exception):
                if isinstance(item, errors.ErrorItemNotFound):
                    continue  # deleted between the sync and the read: the next sync reports it
                problems.append(
                    Problem(
                        key,
                        f"cannot read the item: {type(item).__name__}: {item}",
                        f"{self.mailbox} {label}",
                        str(asked.changekey or ""),
                    )
                )
                continue
            if is_calendar and str(item.type or "") == "RecurringMaster":
                occurrences, trouble = self._occurrences(item, key)
                records += occurrences
                problems += trouble
                continue
            if is_calendar:
                parsed = event_record(
                    item, key=key, mailbox=self.mailbox, owners=self.owners, snippet_chars=self.options.snippet_chars
                )
                window = self._calendar_window()
                if isinstance(parsed, ActivityRecord) and not window.start <= parsed.occurred_at < window.end:
                    continue  # a single event outside the window (read because it might have been a series)
            else:
                parsed = message_record(
                    item,
                    key=key,
                    folder=label,
                    mailbox=self.mailbox,
                    owners=self.owners,
                    snippet_chars=self.options.snippet_chars,
                )
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
            return [], [
                Problem(
                    f"{key}#",
                    "the server sent no iCalendar data for this recurring series",
                    f"{self.mailbox} calendar",
                    version,
                )
            ]
        records, problems = parse_resource(
            content,
            key_prefix=key,
            window=self._calendar_window(),
            owner_addresses=self.owners,
            mailbox=self.mailbox,
            folder="calendar",
            version=version,
            snippet_chars=self.options.snippet_chars,
        )
        # Attendees' responses live on the item, not in the MIME: drop those who declined.
        declined = {
            m[0]
            for a in [*(master.required_attendees or []), *(master.optional_attendees or [])]
            if str(getattr(a, "response_type", "") or "").lower() == "decline"
            and (m := mailbox_address(getattr(a, "mailbox", None)))
        }
        if declined:
            records = [
                replace(r, participants=tuple(p for p in r.participants if p.email not in declined)) for r in records
            ]
        return records, problems

    @staticmethod
    def _stale_occurrences(
        items: list[Any], records: list[ActivityRecord], problems: list[Problem], held: set[str]
    ) -> list[str]:
        """Keys held for the events just read that they no longer produce: occurrences of a
        changed series that moved out or were deleted, or a single event that became a series."""
        fresh = {r.key for r in records} | {p.key for p in problems}
        stale: list[str] = []
        for item in items:
            key = f"calendar/{item.id}"
            stale += sorted(k for k in held if (k == key or k.startswith(key + "#")) and k not in fresh)
        return stale

    # ---- write-back --------------------------------------------------------------------

    def write_back(self, labels: dict[str, LabelChange]) -> set[str]:
        """A category per customer on each message and meeting (UpdateItem); the user's own kept."""
        written: set[str] = set()
        if not labels:
            return written
        account = self.session.account()
        keys = sorted(labels)
        errors = errors_module()
        with self.session.mapped("read categories"):
            items = list(account.fetch(ids=[(k.split("/", 1)[1], None) for k in keys], only_fields=["categories"]))
        for key, item in zip(keys, items, strict=True):
            if isinstance(item, Exception):
                if isinstance(item, errors.ErrorItemNotFound):
                    continue
                raise SourceUnavailable(f"{self.mailbox}: cannot read {key}: {item}")
            existing = [str(c) for c in item.categories or []]
            merged = with_categories(existing, labels[key].add, labels[key].remove)
            if merged != existing:
                item.categories = merged
                with self.session.mapped("set categories"):
                    item.save(update_fields=["categories"])
            written.add(key)
        return written

    def _customer_contacts(self, account: Any) -> tuple[Any, dict[str, Any]]:
        """syncd's own contacts folder (made on first use) and its contacts by display name."""
        from exchangelib.folders import Folder, FolderCollection

        with self.session.mapped("open the customer contacts folder"):
            parent = folder_by_path(account, "contacts")
            children = list(FolderCollection(account=account, folders=[parent]).find_folders(depth="Shallow"))
            folder = next(
                (
                    c
                    for c in children
                    if isinstance(c, Folder) and str(c.name).casefold() == self.contacts_folder.casefold()
                ),
                None,
            )
            if folder is None:
                folder = Folder(parent=parent, name=self.contacts_folder, folder_class="IPF.Contact")
                folder.save()
            existing = {
                str(c.display_name or "").casefold(): c
                for c in folder.all().only("display_name", "categories")
                if not isinstance(c, Exception)
            }
        return folder, existing

    def delete_contacts(self, names: dict[str, str]) -> set[str]:
        """syncd's contacts of erased customers, moved to Deleted Items (DeleteItem)."""
        if not names:
            return set()
        _folder, existing = self._customer_contacts(self.session.account())
        for name in names.values():
            found = existing.get(name.casefold())
            if found is not None:
                with self.session.mapped("delete a customer contact"):
                    found.move_to_trash()
        return set(names)

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        """A contact per customer in the Customers folder under Contacts, its body holding the timeline."""
        from exchangelib import Contact
        from exchangelib.indexed_properties import EmailAddress

        written: set[str] = set()
        if not notes:
            return written
        account = self.session.account()
        folder, existing = self._customer_contacts(account)
        for key, note in sorted(notes.items()):
            emails = [EmailAddress(email=e, label=f"EmailAddress{n + 1}") for n, e in enumerate(note.emails[:3])]
            found = existing.get(note.name.casefold())
            with self.session.mapped("write a customer contact"):
                if found is None:
                    Contact(
                        account=account,
                        folder=folder,
                        display_name=note.name,
                        file_as=note.name,
                        company_name=note.company,
                        email_addresses=emails or None,
                        body=note.text,
                        categories=[SYNCD_CATEGORY],
                    ).save()
                else:
                    found.body = note.text
                    found.email_addresses = emails or None
                    found.save(update_fields=["body", "email_addresses"])
            written.add(key)
        return written
