"""IMAP mailboxes with imapclient: incremental, resumable, read-only to the user's mail.

Each folder's sync is a small persisted state machine; its cursor (JSON) is committed
with every batch::

    (no cursor) --first pass--> BACKFILL --window read--> INCREMENTAL
         ^                         |  newest first, in batches;
         |                         |  what the store holds is skipped on resume
         +---- UIDVALIDITY changed (folder recreated): start over; the old keys are
               reported removed after the folder is read again, so no activity doubles
               (activities are keyed on Message-ID) and none blinks out of the timeline.

    cursor = {"v": UIDVALIDITY, "high": highest UID seen, "done": backfill finished,
              "modseq": HIGHESTMODSEQ, "next": UIDNEXT}   ("below" of older cursors is read, unused)

INCREMENTAL reads UIDs above ``high``. With CONDSTORE, a folder whose HIGHESTMODSEQ and
UIDNEXT have not moved is skipped without another command; when they have moved, a UID
SEARCH over the synced window finds expunged messages.

The user's mailbox is a working tool: folders are opened with EXAMINE (read-only) and
headers fetched with BODY.PEEK, so \\Seen never changes; write-back only adds keywords
with STORE +FLAGS.SILENT; nothing is moved, deleted or expunged (UNSELECT, never CLOSE,
which would expunge messages the user flagged \\Deleted).

Transient faults (dropped connection, BYE, timeout, server restart) reconnect with
exponential backoff and jitter and resume from the last cursor handed out; a refused
login raises ``SourceAuthError`` at once, because retrying a bad password locks accounts.
"""

from __future__ import annotations

import functools
import imaplib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential, wait_random

from syncd.connectors.base import Connector
from syncd.connectors.cursor import JsonCursor
from syncd.connectors.imap import wire as imapwire
from syncd.connectors.imap.listing import backfill_window, choose_folders
from syncd.connectors.imap.quirks import GENERIC, ServerQuirks, identify
from syncd.connectors.mailparse import parse_message
from syncd.connectors.tls import security_error
from syncd.model.errors import SourceAuthError, SourceUnavailable
from syncd.model.records import ActivityRecord, Batch, LabelChange, Problem, ReadOptions, SourceState

log = logging.getLogger("syncd.connectors.imap")

HEADER_FIELDS = (
    "FROM TO CC BCC DATE SUBJECT MESSAGE-ID IN-REPLY-TO REFERENCES AUTO-SUBMITTED PRECEDENCE LIST-ID "
    "LIST-UNSUBSCRIBE CONTENT-TYPE CONTENT-TRANSFER-ENCODING X-AUTO-RESPONSE-SUPPRESS"
)
HEADER_ITEM = f"BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})]"
TRANSIENT = (
    IMAPClientAbortError,
    imaplib.IMAP4.abort,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    ssl.SSLError,
    OSError,
    EOFError,
)


@dataclass(frozen=True)
class ImapAccount:
    """Everything the connector needs, already resolved from the config (secrets lazily)."""

    host: str
    port: int
    tls: str
    verify_tls: bool
    username: str
    owner: str
    owner_addresses: frozenset[str] = frozenset()
    password: Callable[[], str] | None = None
    oauth2_token: Callable[[], str] | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    backfill_days: int = 365
    timeout: float = 60
    server_preview: bool = True
    retry_attempts: int = 8
    retry_max_wait: float = 30


@dataclass
class FolderCursor(JsonCursor):
    v: int
    high: int = 0
    below: int = 0  # unused now: older cursors carry it (whether the store holds a UID is what counts)
    done: bool = False
    modseq: int | None = None
    next: int | None = None


@dataclass
class _Session:
    client: IMAPClient
    capabilities: set[bytes] = field(default_factory=set)
    quirks: ServerQuirks = GENERIC
    #: Set once a whole batch came back ``PREVIEW NIL``: the rest of the session asks for text.
    preview_unreliable: bool = False


class ImapConnector(Connector):
    kind = "imap"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        account: ImapAccount,
        *,
        today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
    ):
        super().__init__(name, options)
        self.account = account
        self.today = today
        self.session: _Session | None = None

    # ---- connection ------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.account.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> _Session:
        account = self.account
        try:
            client = IMAPClient(
                account.host,
                port=account.port,
                ssl=account.tls == "implicit",
                ssl_context=self._ssl_context() if account.tls != "none" else None,
                timeout=account.timeout,
            )
            if account.tls == "starttls":
                client.starttls(self._ssl_context())
        except TRANSIENT as exc:
            refused = security_error(exc, f"{account.host}:{account.port}", self.name)
            if refused is not None:
                raise refused from None  # not a network blip: never retried as one
            raise ConnectionError(f"cannot connect to {account.host}:{account.port}: {exc}") from exc
        try:
            if account.oauth2_token is not None:
                client.oauth2_login(account.username, account.oauth2_token())
            else:
                assert account.password is not None
                client.login(account.username, account.password())
        except LoginError as exc:
            _quietly(client.logout)
            raise SourceAuthError(f"{account.host}: login as {account.username} refused: {_server_text(exc)}") from None
        capabilities = set(client.capabilities())
        if b"CONDSTORE" in capabilities:
            _quietly(lambda: client.enable("CONDSTORE"))
        quirks = identify(getattr(client, "welcome", None))
        if quirks is not GENERIC:
            log.info("source=%s server=%s (known quirks applied)", self.name, quirks.name)
        if quirks.advice:
            log.warning("source=%s server=%s: %s", self.name, quirks.name, quirks.advice)
        self.session = _Session(client, capabilities, quirks=quirks, preview_unreliable=quirks.preview_nil)
        return self.session

    def close(self) -> None:
        if self.session is not None:
            _quietly(self.session.client.logout)
            self.session = None

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            wait=wait_exponential(multiplier=0.5, max=self.account.retry_max_wait) + wait_random(0, 0.5),
            stop=stop_after_attempt(self.account.retry_attempts),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "source=%s transient error, reconnecting attempt=%d error=%r",
                self.name,
                state.attempt_number,
                str(state.outcome.exception()) if state.outcome else "",
            ),
        )

    # ---- folders -----------------------------------------------------------------

    def folders(self, client: IMAPClient) -> list[str]:
        """INBOX, the Sent folder (SPECIAL-USE, else by name), and included folders."""
        return choose_folders(client.list_folders(), self.account.include, self.account.exclude)

    # ---- reading -----------------------------------------------------------------

    def read(self, state: SourceState) -> Iterator[Batch]:
        cursors = dict(state.cursors)
        known = set(state.known)
        finished: set[str] = set()
        try:
            for attempt in self._retrying():
                with attempt:
                    if self.session is None:
                        self.connect()
                    assert self.session is not None
                    for folder in self.folders(self.session.client):
                        if folder in finished:
                            continue
                        for batch in self._sync_folder(self.session, folder, cursors.get(folder), known):
                            if batch.cursor is not None:
                                cursors[folder] = batch.cursor
                            known.update(r.key for r in batch.records)
                            known.update(p.key for p in batch.problems)
                            known.difference_update(batch.removed)
                            yield batch
                        finished.add(folder)
                    return
                # A failed attempt: drop the broken connection; the next one reconnects.
                if attempt.retry_state.outcome is not None and attempt.retry_state.outcome.failed:
                    self._drop()
        except TRANSIENT as exc:
            self._drop()
            raise SourceUnavailable(
                f"{self.account.host}: {exc} (gave up after {self.account.retry_attempts} attempts)"
            ) from None
        except IMAPClientError as exc:
            self._drop()
            raise SourceUnavailable(f"{self.account.host}: server refused a command: {_server_text(exc)}") from None

    def _drop(self) -> None:
        if self.session is not None:
            _quietly(self.session.client.shutdown)
            self.session = None

    def _sync_folder(self, session: _Session, folder: str, cursor_text: str | None, known: set[str]) -> Iterator[Batch]:
        client = session.client
        info = client.select_folder(folder, readonly=True)
        validity = int(info[b"UIDVALIDITY"])
        uidnext = int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None
        modseq = int(info[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in info else None
        prefix = f"{folder}/{validity}/"
        stale = sorted(
            k
            for k in known
            if k.startswith(f"{folder}/")
            and not k.startswith(prefix)
            and k.count("/") >= 2
            and k.rsplit("/", 2)[0] == folder
        )
        cursor = FolderCursor.load(cursor_text)
        if cursor is not None and cursor.v != validity:
            log.warning(
                "source=%s folder=%s UIDVALIDITY changed %s -> %s: resyncing the folder",
                self.name,
                folder,
                cursor.v,
                validity,
            )
            cursor = None
        if (
            cursor is not None
            and cursor.done
            and modseq is not None
            and cursor.modseq == modseq
            and cursor.next == uidnext
            and not stale
        ):
            return  # CONDSTORE says nothing changed: no further command for this folder
        if cursor is None:
            cursor = FolderCursor(v=validity)
        since = self.today() - timedelta(days=self.account.backfill_days)
        if not cursor.done:
            window, older = backfill_window(client, since, where=f"source={self.name} folder={folder}")
            if not cursor.high:
                # Everything in the folder now is backfill territory (only the window is read);
                # UIDs above this mark are mail that arrives later, whatever its date. Without
                # UIDNEXT (Courier) the top comes from the listing, never from the window.
                top = max(window[-1] if window else 0, older[-1] if older else 0)
                cursor.high = max(top, (uidnext or 1) - 1)
            # Whatever the window lists and the store lacks, not only what lies below the last
            # batch: a pass whose listing was held (a misbehaving SEARCH) is read again in full.
            todo = [u for u in reversed(window) if u <= cursor.high and f"{prefix}{u}" not in known]
            outside = sum(1 for u in older if u <= cursor.high)
            if outside:
                log.info(
                    "source=%s folder=%s not read: %d messages before the backfill window (%d days)",
                    self.name,
                    folder,
                    outside,
                    self.account.backfill_days,
                )

            yield from self._batches(session, folder, prefix, todo, cursor, lambda chunk: None)
            cursor.done = True
        else:
            outside = 0
        # Incremental: everything above the high-water mark, oldest first.
        arrived = sorted(u for u in client.search(["UID", f"{cursor.high + 1}:*"]) if u > cursor.high)

        def advanced(chunk: list[int]) -> None:
            cursor.high = max(chunk)

        yield from self._batches(
            session, folder, prefix, [u for u in arrived if f"{prefix}{u}" not in known], cursor, advanced
        )
        if arrived:
            cursor.high = max(cursor.high, arrived[-1])  # already-held UIDs (after a crash) count too
        # Expunged messages: what we hold for this folder that the server no longer lists.
        held = sorted(int(k[len(prefix) :]) for k in known if k.startswith(prefix) and k[len(prefix) :].isdigit())
        removed: list[str] = []
        listed = 0
        if held:
            present = set(client.search(["UID", f"{held[0]}:*"]))
            listed = len(present)
            removed = [f"{prefix}{u}" for u in held if u not in present]
        cursor.modseq, cursor.next = modseq, uidnext
        # Keys of an earlier UIDVALIDITY go only now, after the folder was read again.
        yield Batch(
            removed=tuple(stale + removed),
            folder=folder,
            cursor=cursor.dump(),
            listing_complete=bool(removed) and not stale,
            listed=listed,
            pending=0,
            outside_window=outside,  # on the last batch: its cursor (backfill done) may be held
        )

    def _batches(
        self,
        session: _Session,
        folder: str,
        prefix: str,
        uids: list[int],
        cursor: FolderCursor,
        advance: Callable[[list[int]], None],
    ) -> Iterator[Batch]:
        """Fetch ``uids`` in batches; ``advance`` moves the cursor past each before it is handed out."""
        for start in range(0, len(uids), self.options.batch_size):
            chunk = uids[start : start + self.options.batch_size]
            records, problems = self._fetch(session, folder, prefix, chunk)
            advance(chunk)
            yield Batch(
                records=tuple(records),
                problems=tuple(problems),
                folder=folder,
                cursor=cursor.dump(),
                pending=len(uids) - start - len(chunk),
            )

    def _fetch(
        self, session: _Session, folder: str, prefix: str, uids: Sequence[int]
    ) -> tuple[list[ActivityRecord], list[Problem]]:
        """Headers plus the first few KB of the body, never the whole message.

        The partial body is parsed together with the headers (Content-Type and transfer
        encoding included), so the snippet comes from the first text part even in
        multipart mail; attachments are never fetched.
        """
        # The server's PREVIEW (RFC 8970) is computed once and cached by the server; else
        # the first KB of the body, from which the snippet is made here.
        partial_item = f"BODY.PEEK[TEXT]<0.{self.snippet_bytes}>"
        preview = self.account.server_preview and b"PREVIEW" in session.capabilities and not session.preview_unreliable
        fetched = self._fetch_items(session, folder, uids, "PREVIEW" if preview else partial_item)
        if preview:
            # PREVIEW NIL (Cyrus): the server made no snippet; read the first KB of those instead.
            nil = [uid for uid, item in fetched.items() if item.preview is None]
            if nil:
                fetched.update(self._fetch_items(session, folder, nil, partial_item))
                if len(nil) == len(fetched) >= 3:
                    session.preview_unreliable = True
                    log.info("source=%s server answers PREVIEW NIL: reading text snippets instead", self.name)
        missing = [uid for uid in uids if uid not in fetched]
        if missing:
            # Expunged between SEARCH and FETCH, or a server that returned nothing: only the
            # first is silent; a message still listed becomes a quarantine entry.
            still_listed = set(session.client.search(["UID", imapwire.uid_set(missing)])) & set(missing)
        else:
            still_listed = set()
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        owners = self.account.owner_addresses | {self.account.owner}
        for uid in uids:
            data = fetched.get(uid)
            if data is None:
                if uid in still_listed:
                    problems.append(
                        Problem(
                            key=f"{prefix}{uid}",
                            reason="the server lists this message but returned nothing for FETCH",
                            where=f"{self.account.host} {self.account.username} {folder} UID {uid}",
                        )
                    )
                continue  # else expunged between SEARCH and FETCH
            keywords = " ".join(f for f in data.flags if not f.startswith("\\"))
            raw = data.header.rstrip(b"\r\n") + b"\r\n\r\n" + data.text if data.header.strip() else b""
            item = parse_message(
                raw,
                key=f"{prefix}{uid}",
                mailbox=self.account.owner,
                folder=folder,
                owner_addresses=owners,
                snippet_chars=self.options.snippet_chars,
                fallback_date=functools.partial(imapwire.internal_date, data.internal_date),
                where=f"{self.account.host} {self.account.username} {folder} UID {uid}",
                extra_hints=(("x-imap-keywords", keywords),) if keywords else (),
                snippet=data.preview if preview and data.preview is not None else None,
            )
            (records if isinstance(item, ActivityRecord) else problems).append(item)  # type: ignore[arg-type]
        return records, problems

    def _fetch_items(
        self, session: _Session, folder: str, uids: Sequence[int], body_item: str
    ) -> dict[int, imapwire.FetchedItem]:
        try:
            return imapwire.fetch(session.client._imap, uids, HEADER_ITEM, body_item)
        except imapwire.WireFormatError as exc:
            log.debug("source=%s folder=%s reading FETCH with imapclient: %s", self.name, folder, exc)
            return self._fetch_with_imapclient(session, uids, body_item)

    @staticmethod
    def _fetch_with_imapclient(
        session: _Session, uids: Sequence[int], body_item: str
    ) -> dict[int, imapwire.FetchedItem]:
        response = session.client.fetch(
            list(uids), ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", HEADER_ITEM, body_item]
        )
        found: dict[int, imapwire.FetchedItem] = {}
        for uid, data in response.items():
            header = partial = b""
            preview = data.get(b"PREVIEW")
            for item, value in data.items():
                if item.startswith(b"BODY[HEADER"):
                    header = value or b""
                elif item.startswith(b"BODY[TEXT]"):
                    partial = value or b""
            internal = data.get(b"INTERNALDATE")
            found[uid] = imapwire.FetchedItem(
                uid=uid,
                flags=tuple(f.decode("utf-8", "replace") for f in data.get(b"FLAGS", ())),
                internal_date=internal if isinstance(internal, (bytes, datetime)) else None,
                size=data.get(b"RFC822.SIZE"),
                header=header,
                text=partial,
                preview=preview.decode("utf-8", "replace") if isinstance(preview, bytes) else None,
            )
        return found

    @property
    def snippet_bytes(self) -> int:
        # Room for MIME part headers before the text, and for multi-byte characters.
        return max(1024, self.options.snippet_chars * 8)

    # ---- write-back ----------------------------------------------------------------

    def write_back(self, labels: dict[str, LabelChange]) -> set[str]:
        """Add the keywords (one per customer, ``syncd.outputs.labels``) to each message and
        take off those syncd wrote that no longer apply; never touches \\Seen or anything else."""
        written: set[str] = set()
        if not labels:
            return written
        by_folder: dict[tuple[str, int], dict[int, LabelChange]] = {}
        for key, change in labels.items():
            folder_name, validity_text, uid_text = key.rsplit("/", 2)
            by_folder.setdefault((folder_name, int(validity_text)), {})[int(uid_text)] = change
        for attempt in self._retrying():
            with attempt:
                session = self.session or self.connect()
                client = session.client
                for (folder, validity), items in by_folder.items():
                    info = client.select_folder(folder, readonly=False)
                    if int(info[b"UIDVALIDITY"]) != validity:
                        continue  # the folder was recreated; the next sync relabels it
                    permanent = set(info.get(b"PERMANENTFLAGS", ()))
                    groups: dict[tuple[str, ...], list[int]] = {}
                    removals: dict[tuple[str, ...], list[int]] = {}
                    for uid, change in items.items():
                        keywords = tuple(sorted(set(change.add)))
                        allowed = tuple(k for k in keywords if b"\\*" in permanent or k.encode() in permanent)
                        if allowed:
                            groups.setdefault(allowed, []).append(uid)
                        gone = tuple(sorted(set(change.remove) - set(change.add)))
                        if gone:
                            removals.setdefault(gone, []).append(uid)
                        if not allowed and (gone or not change.add):  # only taken off, or nothing left to do
                            written.add(f"{folder}/{validity}/{uid}")
                    for keywords, uids in groups.items():
                        client.add_flags(uids, [k.encode() for k in keywords], silent=True)
                        written.update(f"{folder}/{validity}/{uid}" for uid in uids)
                    for keywords, uids in removals.items():
                        client.remove_flags(uids, [k.encode() for k in keywords], silent=True)
                    if b"UNSELECT" in session.capabilities:
                        client.unselect_folder()
                    else:  # never CLOSE: it expunges what the user flagged \\Deleted
                        client.select_folder(folder, readonly=True)
        return written


def _server_text(exc: Exception) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith("b'") and text.endswith("'") else text


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass
