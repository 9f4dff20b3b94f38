"""Calendars on a CalDAV server (Nextcloud, SOGo, Fastmail, iCloud, Radicale), read-only.

Each calendar is a folder with its own cursor (JSON)::

    {"token": the RFC 6578 sync-token, or null in etag mode,
     "etags": {href: etag} (etag mode only: servers without sync-collection),
     "window": first day of the window the listing was made for}

A pass asks for what changed since the token (sync-collection REPORT). With no cursor,
a token the server rejects (RFC 6578 ``DAV:valid-sync-token``), or a window that has
moved on by a day (so recurring series grow into it), the calendar is listed in full
instead, and anything we hold from it that the listing no longer has is removed. Items
are keyed by resource href plus RECURRENCE-ID, and the activity identity is the event
UID, so a resync finds the same keys and creates no duplicate.

Servers that lack sync-collection are read by comparing each resource's ETag with the
one seen last time (``sync_method = "etag"`` forces this); only changed resources are
downloaded either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from syncd.connectors import caldav_discovery as discovery
from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.connectors.cursor import JsonCursor
from syncd.connectors.icalevents import EventWindow, occurrence_keys, parse_resource
from syncd.connectors.tls import security_error
from syncd.model.errors import SourceAuthError, SourceConfigError, SourceUnavailable
from syncd.model.records import ActivityRecord, Batch, Problem, ReadOptions, SourceState
from syncd.model.settings import MailSourceSettings, SecretSource, is_loopback, tls_warning

log = logging.getLogger("syncd.connectors.caldav")


@dataclass(frozen=True)
class CaldavAccount:
    url: str
    username: str
    password: Callable[[], str]
    owner: str
    owner_addresses: frozenset[str] = frozenset()
    verify_tls: bool = True
    calendars: tuple[str, ...] = ()
    past_days: int = 365
    future_days: int = 180
    sync_method: str = "auto"  # "auto": sync-token where offered; "etag": compare ETags
    floating_zone: str = "UTC"
    timeout: float = 60


@dataclass
class CalendarCursor(JsonCursor):
    window: str
    token: str | None = None
    etags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Changes:
    """What a calendar read found: resources to (re)parse, hrefs gone, and whether it was a full listing."""

    changed: list[tuple[str, str, str]]  # (href path, etag, iCalendar text)
    deleted: set[str]
    full: bool
    token: str | None
    etags: dict[str, str]


def _path(url: object) -> str:
    return unquote(urlsplit(str(url)).path)


class CaldavConnector(Connector):
    kind = "caldav"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        account: CaldavAccount,
        *,
        today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
    ):
        super().__init__(name, options)
        self.account = account
        self.today = today
        self.client: Any = None
        self.resolved: discovery.Resolved | None = None

    # ---- connection ----------------------------------------------------------------

    def _errors(self) -> Any:
        from caldav.lib import error

        return error

    def _connect(self) -> Any:
        import caldav

        if self.client is None:
            if self.resolved is None:
                self.resolved = discovery.resolve(self.account.url, self._http(), self.account.timeout)
            self.client = caldav.DAVClient(  # type: ignore[operator]
                url=self.resolved.url,
                username=self.account.username,
                password=self.account.password(),
                ssl_verify_cert=self.account.verify_tls,
                timeout=int(self.account.timeout),
            )
        return self.client

    def _http(self) -> Any:
        import requests

        session = requests.Session()
        session.auth = (self.account.username, self.account.password())
        session.verify = self.account.verify_tls
        return session

    def _discovery_failed(self, what: str) -> SourceConfigError:
        tried = self.resolved.tried if self.resolved else (self.account.url,)
        server = self.resolved.server if self.resolved else discovery.GENERIC
        if server is discovery.GENERIC:
            server = discovery.server_of(tried[-1], self._http(), self.account.timeout)
        return discovery.discovery_error(self.account.url, tried, self.account.username, what, server)

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self.client = None

    def _calendars(self) -> list[tuple[str, Any]]:
        """(folder label, calendar) for the configured calendars, or all the principal has."""
        client = self._connect()
        discovered: dict[str, Any] = {}
        wanted = self.account.calendars
        by_url = [e for e in wanted if e.startswith(("http://", "https://", "/"))]
        named = [e for e in wanted if e not in by_url]
        if named or not wanted:
            error = self._errors()
            try:
                principal = client.principal()
                calendars = principal.calendars()
            except error.AuthorizationError:
                raise
            except error.DAVError as exc:
                raise self._discovery_failed(f"found no principal: {discovery.first_line(exc)}") from None
            if not calendars:
                # caldav takes the URL itself for the principal when the server names none.
                raise self._discovery_failed(f"found no calendar at {_path(principal.url) or '/'}")
            for calendar in calendars:
                segment = _path(calendar.url).rstrip("/").rsplit("/", 1)[-1]
                label = calendar.get_display_name() or segment
                discovered[segment if label in discovered else label] = calendar
        found: list[tuple[str, Any]] = []
        for entry in by_url:
            calendar = client.calendar(url=entry)
            found.append((_path(calendar.url).rstrip("/").rsplit("/", 1)[-1], calendar))
        for entry in named:
            match = discovered.get(entry) or next(
                (c for c in discovered.values() if _path(c.url).rstrip("/").rsplit("/", 1)[-1] == entry), None
            )
            if match is None:
                raise SourceConfigError(
                    f"{self.account.url}: no calendar named {entry!r}; the account has "
                    f"{', '.join(sorted(discovered)) or 'none'}"
                )
            found.append((entry, match))
        if not wanted:
            found = sorted(discovered.items())
        return found

    # ---- reading ---------------------------------------------------------------------

    def window(self) -> tuple[str, EventWindow]:
        today = self.today()
        start = datetime.combine(today - timedelta(days=self.account.past_days), time(0), tzinfo=timezone.utc)
        end = datetime.combine(today + timedelta(days=self.account.future_days + 1), time(0), tzinfo=timezone.utc)
        return start.date().isoformat(), EventWindow(start, end, ZoneInfo(self.account.floating_zone))

    def read(self, state: SourceState) -> Iterator[Batch]:
        error = self._errors()
        try:
            calendars = self._calendars()
            for folder, calendar in calendars:
                yield from self._sync_calendar(folder, calendar, state)
        except error.AuthorizationError as exc:
            raise SourceAuthError(
                f"{self.account.url}: login as {self.account.username} refused ({getattr(exc, 'reason', '') or exc})"
            ) from None
        except error.DAVError as exc:
            self.close()
            raise SourceUnavailable(f"{self.account.url}: the server refused a request: {exc}") from None
        except Exception as exc:  # requests/niquests/urllib3 errors have no common base
            refused = security_error(exc, self.account.url, self.name)
            if refused is not None:
                self.close()
                raise refused from None
            if isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.split(".")[0] in (
                "niquests",
                "urllib3",
                "requests",
                "urllib3_future",
            ):
                self.close()
                raise SourceUnavailable(f"{self.account.url}: cannot reach the server: {_root_cause(exc)}") from None
            raise

    def _sync_calendar(self, folder: str, calendar: Any, state: SourceState) -> Iterator[Batch]:
        window_key, window = self.window()
        cursor = CalendarCursor.load(state.cursors.get(folder))
        calendar_path = _path(calendar.url)
        known = {k for k in state.known if k.startswith(calendar_path)}
        if cursor is not None and cursor.window != window_key:
            log.info("source=%s calendar=%s window moved to %s: listing in full", self.name, folder, window_key)
            cursor = None
        changes = self._changes(folder, calendar, cursor)
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        removed: set[str] = set()
        for href in changes.deleted:
            removed |= occurrence_keys(known, href)
        listed = 0
        for href, etag, text in changes.changed:
            found, bad = parse_resource(
                text,
                key_prefix=href,
                window=window,
                owner_addresses=self.account.owner_addresses | {self.account.owner},
                mailbox=self.account.owner,
                folder=folder,
                version=etag,
                snippet_chars=self.options.snippet_chars,
            )
            records.extend(found)
            problems.extend(bad)
            listed += len(found)
            current = {r.key for r in found} | {p.key for p in bad}
            # Occurrences of a series that aged out of the window stay: they are history.
            removed |= {k for k in occurrence_keys(known, href) - current if not _aged_out(k, window)}
        if changes.full:
            present = {href for href, _etag, _text in changes.changed}
            removed |= {k for k in known if k.split("#", 1)[0] not in present}
        new_cursor = CalendarCursor(window=window_key, token=changes.token, etags=changes.etags).dump()
        size = max(1, self.options.batch_size)
        # What the store already holds in this version is not handed on again (a stop in the
        # middle of a delta reads the delta again, and only the rest is new).
        read: list[ActivityRecord | Problem] = [*records, *problems]
        items = [item for item in read if state.known.get(item.key, None) != item.version]
        chunks = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            last = number == len(chunks)
            # The token covers the whole delta: it commits with the last batch, so a crash
            # in between reads the same delta again (idempotent), never skips part of it.
            yield Batch(
                records=tuple(r for r in chunk if isinstance(r, ActivityRecord)),
                problems=tuple(p for p in chunk if isinstance(p, Problem)),
                removed=tuple(sorted(removed)) if last else (),
                folder=folder,
                cursor=new_cursor if last else None,
                listing_complete=changes.full and last,
                listed=listed,
                pending=sum(len(c) for c in chunks[number:]),
            )

    def _changes(self, folder: str, calendar: Any, cursor: CalendarCursor | None) -> _Changes:
        error = self._errors()
        if self.account.sync_method == "etag" or (cursor is not None and cursor.token is None and cursor.etags):
            return self._etag_changes(calendar, cursor)
        if cursor is not None and cursor.token:
            try:
                result = calendar.get_objects_by_sync_token(
                    sync_token=cursor.token, load_objects=True, disable_fallback=True
                )
                return self._from_sync(result, full=False)
            except error.AuthorizationError as exc:
                if not _expired_token(exc):
                    raise
                log.warning(
                    "source=%s calendar=%s sync token rejected by the server: listing in full", self.name, folder
                )
            except (error.ReportError, error.DAVError) as exc:
                log.warning("source=%s calendar=%s sync REPORT failed (%s): listing in full", self.name, folder, exc)
        try:
            result = calendar.get_objects_by_sync_token(sync_token=None, load_objects=True, disable_fallback=True)
        except error.ReportError as exc:
            log.info("source=%s calendar=%s no sync-collection (%s): comparing ETags", self.name, folder, exc)
            return self._etag_changes(calendar, None)
        return self._from_sync(result, full=True)

    @staticmethod
    def _from_sync(result: Any, full: bool) -> _Changes:
        deleted = {_path(u) for u in getattr(result, "deleted_urls", set()) or set()}
        changed = []
        for item in result:
            href = _path(item.url)
            if href in deleted or item.data is None:
                deleted.add(href)
                continue
            etag = str((getattr(item, "props", None) or {}).get("{DAV:}getetag", "") or "")
            changed.append((href, etag, item.data))
        return _Changes(changed=changed, deleted=deleted, full=full, token=str(result.sync_token), etags={})

    def _etag_changes(self, calendar: Any, cursor: CalendarCursor | None) -> _Changes:
        """For servers without sync-collection: list the ETags, download only what changed."""
        from caldav.elements import dav

        response = calendar._query_properties([dav.GetEtag()], depth=1)  # PROPFIND Depth: 1
        listing: dict[str, str] = {}
        calendar_path = _path(calendar.url)
        for href, props in response.expand_simple_props([dav.GetEtag()]).items():
            path = _path(href)
            if path.rstrip("/") == calendar_path.rstrip("/"):
                continue  # the collection itself
            listing[path] = str(props.get(dav.GetEtag.tag) or "")
        before = cursor.etags if cursor is not None else {}
        changed = []
        for path, etag in sorted(listing.items()):
            if cursor is not None and before.get(path) == etag and etag:
                continue
            item = calendar.event_by_url(path)
            item.load()
            changed.append((path, etag, item.data))
        deleted = set(before) - set(listing)
        return _Changes(changed=changed, deleted=deleted, full=cursor is None, token=None, etags=listing)


def _root_cause(exc: Exception) -> str:
    """``[Errno 111] Connection refused`` rather than three nested wrappers' reprs."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return found.group(0).strip() if found else text[:300]


def _expired_token(exc: Exception) -> bool:
    """RFC 6578 3.2: an unknown or expired token is a 403 with DAV:valid-sync-token.

    A 403 naming no precondition is taken as an expired token too: the full listing that
    follows fails with the same error if it really was a permission problem.
    """
    preconditions = " ".join(str(p) for p in (getattr(exc, "preconditions", None) or ()))
    return not preconditions or "valid-sync-token" in preconditions


def _aged_out(key: str, window: EventWindow) -> bool:
    rid = key.rsplit("#", 1)[-1]
    if not rid:
        return False
    try:
        moment = datetime.strptime(rid, "%Y%m%dT%H%M%SZ") if "T" in rid else datetime.strptime(rid, "%Y%m%d")
    except ValueError:
        return False
    return moment.replace(tzinfo=timezone.utc) < window.start


class CaldavSettings(MailSourceSettings):
    """Calendars on a CalDAV server (Nextcloud, SOGo, Fastmail, iCloud, Radicale): meetings."""

    kind: Literal["caldav"]
    url: str = Field(description="The server's CalDAV URL (principal discovery starts here).")
    username: str = Field(description="Login name.")
    password_secret: SecretSource = Field(description="Password (or app password), from a secret.")
    verify_tls: bool = Field(
        default=True, description="Check the server certificate. false logs a warning at every start."
    )
    calendars: list[str] = Field(
        default_factory=list,
        description="Calendars to read, by display name, last URL segment or full URL. Empty: every calendar "
        "of the account.",
    )
    past_days: int = Field(default=365, ge=0, le=3650, description="How far back meetings are read.")
    future_days: int = Field(default=180, ge=0, le=3650, description="How far ahead meetings are read.")
    sync_method: Literal["auto", "etag"] = Field(
        default="auto",
        description="auto: RFC 6578 sync-token where the server offers it, else ETag comparison. "
        "etag: always compare ETags (for servers whose sync-collection is broken).",
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Network timeout per request.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a server on this machine)")
        host = value.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
        if value.startswith("http://") and not is_loopback(host):
            raise ValueError(
                "plain http:// is only allowed for a server on this machine (127.0.0.1, localhost); use https://"
            )
        return value

    def security_warnings(self) -> tuple[str, ...]:
        return () if self.verify_tls else (tls_warning(self.name, self.url),)


def _build(settings: CaldavSettings, context: ConnectorContext) -> CaldavConnector:
    secret = settings.password_secret

    def password() -> str:
        return context.read_secret(secret, f"source {settings.name} password_secret")

    account = CaldavAccount(
        url=settings.url,
        username=settings.username,
        password=password,
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses),
        verify_tls=settings.verify_tls,
        calendars=tuple(settings.calendars),
        past_days=settings.past_days,
        future_days=settings.future_days,
        sync_method=settings.sync_method,
        floating_zone=context.timezone,
        timeout=settings.timeout_seconds,
    )
    return CaldavConnector(settings.name, context.options, account)


KIND = SourceKind(
    name="caldav",
    settings=CaldavSettings,
    build=_build,
    summary="Calendars on a CalDAV server: meetings in a window, incremental by sync-token, recurring series expanded.",
    capabilities=Capabilities(calendar=True),
)
