"""A small IMAP server stand-in that answers the way a named real server was seen to answer.

Not a mail server: just the commands syncd's IMAP connector sends (CAPABILITY, LOGIN,
ENABLE, LIST, EXAMINE/SELECT, UID SEARCH, UID FETCH, UID STORE, UNSELECT, NOOP, LOGOUT),
over a real socket on 127.0.0.1, so imapclient and the raw FETCH reader run unchanged.
Each quirk is a switch, set from what the real server did (the behaviours the
"other servers" issue captured against Cyrus 3.6, Courier 5.0 and GNU Mailutils 3.15):
a real server of each kind cannot run in every CI, and the quirk must stay tested.
"""

from __future__ import annotations

import re
import select
import socketserver
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class StandinMessage:
    uid: int
    raw: bytes
    internal: datetime
    flags: set[str] = field(default_factory=set)

    def has_date_header(self) -> bool:
        head = self.raw.split(b"\r\n\r\n", 1)[0]
        return re.search(rb"(?im)^date:", head) is not None


@dataclass
class StandinFolder:
    name: str
    uidvalidity: int = 1
    flags: tuple[str, ...] = ()  # LIST attributes, e.g. ("\\sent",)
    messages: list[StandinMessage] = field(default_factory=list)
    next_uid: int = 1

    def recreate(self) -> None:
        """The folder deleted and made again (a server migration): same mail, new UIDs."""
        self.uidvalidity += 1
        old, self.messages, self.next_uid = self.messages, [], 1
        for item in old:
            self.append(item.raw, item.internal)

    def append(self, raw: bytes, internal: datetime) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages.append(StandinMessage(uid, raw, internal))
        return uid


@dataclass
class Quirks:
    """How the stand-in departs from RFC 3501, one switch per captured behaviour."""

    greeting: str = "IMAP4rev1 stand-in ready"
    capabilities: tuple[str, ...] = ("IMAP4rev1", "UIDPLUS", "IDLE")
    send_uidnext: bool = True  # Courier sends none in SELECT/EXAMINE
    preview_nil: bool = False  # Cyrus advertises PREVIEW and answers NIL
    search_date_skips_dateless: bool = False  # SINCE/BEFORE leave out mail without a Date header
    search_returns_at_most: int | None = None  # a UID SEARCH that misbehaves: the first N hits only
    idle_poll_seconds: float = 0.0  # Courier's IDLE: new mail is told this long after it came


@dataclass
class StandinMailbox:
    folders: dict[str, StandinFolder] = field(default_factory=dict)
    quirks: Quirks = field(default_factory=Quirks)
    lock: threading.Lock = field(default_factory=threading.Lock)
    commands: list[str] = field(default_factory=list)

    def folder(self, name: str, **kwargs: object) -> StandinFolder:
        if name not in self.folders:
            self.folders[name] = StandinFolder(name, **kwargs)  # type: ignore[arg-type]
        return self.folders[name]


def _imap_date(value: str) -> date:
    day, month, year = value.strip('"').split("-")
    return date(int(year), MONTHS.index(month.title()) + 1, int(day))


def _internal(value: datetime) -> str:
    return f'"{value.day:2d}-{MONTHS[value.month - 1]}-{value.year} {value:%H:%M:%S} +0000"'


def _uids(spec: str, present: list[int]) -> set[int]:
    top = max(present, default=0)
    wanted: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition(":")
        a = top if low == "*" else int(low)
        b = a if not high else (top if high == "*" else int(high))
        low_uid, high_uid = min(a, b), max(a, b)
        wanted.update(u for u in present if low_uid <= u <= high_uid)
    return wanted


def _header_fields(raw: bytes, names: list[str]) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0]
    lines = re.split(rb"\r\n(?![ \t])", head)
    wanted = {n.upper() for n in names}
    kept = [line for line in lines if line.split(b":", 1)[0].strip().upper().decode("latin-1") in wanted]
    return b"\r\n".join(kept) + b"\r\n\r\n"


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def send(self, data: bytes | str) -> None:
        self.wfile.write(data.encode() if isinstance(data, str) else data)

    def handle(self) -> None:
        box = self.server.mailbox
        quirks = box.quirks
        selected: StandinFolder | None = None
        self.send(f"* OK [CAPABILITY {' '.join(quirks.capabilities)}] {quirks.greeting}\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            tag, _, rest = text.partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            with box.lock:
                box.commands.append(rest)
            if command == "UID":
                command, _, args = args.partition(" ")
                command = "UID " + command.upper()
            if command == "CAPABILITY":
                self.send(f"* CAPABILITY {' '.join(quirks.capabilities)}\r\n")
            elif command == "LOGOUT":
                self.send(f"* BYE bye\r\n{tag} OK LOGOUT done\r\n")
                return
            elif command == "IDLE" and selected is not None:
                self._idle(selected)
            elif command in ("LOGIN", "NOOP", "ENABLE", "UNSELECT", "CHECK"):
                if command == "UNSELECT":
                    selected = None
            elif command == "LIST":
                with box.lock:
                    for folder in box.folders.values():
                        self.send(f'* LIST ({" ".join(folder.flags)}) "." "{folder.name}"\r\n')
            elif command in ("SELECT", "EXAMINE"):
                name = args.strip('"')
                with box.lock:
                    selected = box.folders.get(name)
                    if selected is None:
                        self.send(f"{tag} NO no such mailbox\r\n")
                        continue
                    self.send(f"* {len(selected.messages)} EXISTS\r\n* 0 RECENT\r\n")
                    self.send(f"* OK [UIDVALIDITY {selected.uidvalidity}] ok\r\n")
                    if quirks.send_uidnext:
                        self.send(f"* OK [UIDNEXT {selected.next_uid}] ok\r\n")
                    self.send("* OK [PERMANENTFLAGS (\\Seen \\*)] ok\r\n")
            elif command == "UID SEARCH" and selected is not None:
                with box.lock:
                    found = self._search(selected, args)
                self.send(f"* SEARCH {' '.join(str(u) for u in sorted(found))}\r\n".replace(" \r\n", "\r\n"))
            elif command == "UID FETCH" and selected is not None:
                with box.lock:
                    self._fetch(selected, args)
            elif command == "FETCH" and selected is not None:  # by sequence number
                spec, _, items = args.partition(" ")
                with box.lock:
                    numbers = _uids(spec, list(range(1, len(selected.messages) + 1)))
                    uids = ",".join(str(selected.messages[n - 1].uid) for n in sorted(numbers))
                    if uids:
                        self._fetch(selected, f"{uids} {items}")
            elif command == "UID STORE" and selected is not None:
                spec, _, change = args.partition(" ")
                flags = re.findall(r"[\\$\w]+", change.split("(", 1)[1]) if "(" in change else []
                with box.lock:
                    for message in selected.messages:
                        if message.uid in _uids(spec, [m.uid for m in selected.messages]):
                            message.flags.update(flags)
            else:
                self.send(f"{tag} BAD unknown command\r\n")
                continue
            self.send(f"{tag} OK {command} done\r\n")

    def _idle(self, folder: StandinFolder) -> None:
        """Tell EXISTS once each new message is ``idle_poll_seconds`` old, until DONE."""
        box = self.server.mailbox
        self.send("+ idling\r\n")
        with box.lock:
            told = len(folder.messages)
        while True:
            readable, _, _ = select.select([self.request], [], [], 0.05)
            if readable:
                self.rfile.readline()  # DONE
                return
            with box.lock:
                now = time.time()
                due = [
                    m for m in folder.messages[told:] if now - m.internal.timestamp() >= box.quirks.idle_poll_seconds
                ]
                if due and len(due) == len(folder.messages) - told:
                    told = len(folder.messages)
                    self.send(f"* {told} EXISTS\r\n")

    def _search(self, folder: StandinFolder, args: str) -> set[int]:
        quirks = self.server.mailbox.quirks
        present = [m.uid for m in folder.messages]
        tokens = args.split()
        if tokens and tokens[0].upper() == "CHARSET":
            tokens = tokens[2:]
        result = set(present)
        position = 0
        while position < len(tokens):
            key = tokens[position].upper()
            if key == "ALL":
                position += 1
            elif key == "UID":
                result &= _uids(tokens[position + 1], present)
                position += 2
            elif key in ("SINCE", "BEFORE"):
                bound = _imap_date(tokens[position + 1])
                chosen = set()
                for message in folder.messages:
                    if quirks.search_date_skips_dateless and not message.has_date_header():
                        continue
                    day = message.internal.date()
                    if (key == "SINCE" and day >= bound) or (key == "BEFORE" and day < bound):
                        chosen.add(message.uid)
                result &= chosen
                position += 2
            else:
                raise ValueError(f"stand-in: SEARCH key {key} not implemented")
        if quirks.search_returns_at_most is not None:
            result = set(sorted(result)[: quirks.search_returns_at_most])
        return result

    def _fetch(self, folder: StandinFolder, args: str) -> None:
        quirks = self.server.mailbox.quirks
        spec, _, items = args.partition(" ")
        wanted = _uids(spec, [m.uid for m in folder.messages])
        fields_match = re.search(r"HEADER\.FIELDS \(([^)]*)\)", items)
        partial = re.search(r"BODY\.PEEK\[TEXT\]<0\.(\d+)>", items)
        for sequence, message in enumerate(folder.messages, start=1):
            if message.uid not in wanted:
                continue
            parts: list[bytes] = [f"* {sequence} FETCH (UID {message.uid}".encode()]
            if "FLAGS" in items:
                parts.append(f" FLAGS ({' '.join(sorted(message.flags))})".encode())
            if "INTERNALDATE" in items:
                parts.append(f" INTERNALDATE {_internal(message.internal)}".encode())
            if "RFC822.SIZE" in items:
                parts.append(f" RFC822.SIZE {len(message.raw)}".encode())
            if fields_match:
                header = _header_fields(message.raw, fields_match.group(1).split())
                parts.append(f" BODY[HEADER.FIELDS ({fields_match.group(1)})] {{{len(header)}}}\r\n".encode() + header)
            if partial:
                body = message.raw.split(b"\r\n\r\n", 1)[-1][: int(partial.group(1))]
                parts.append(f" BODY[TEXT]<0> {{{len(body)}}}\r\n".encode() + body)
            if re.search(r"\bPREVIEW\b", items):
                if quirks.preview_nil:
                    parts.append(b" PREVIEW NIL")
                else:
                    text = message.raw.split(b"\r\n\r\n", 1)[-1][:200].decode("utf-8", "replace")
                    text = " ".join(text.split()).replace("\\", "").replace('"', "")
                    parts.append(f' PREVIEW "{text}"'.encode())
            parts.append(b")\r\n")
            self.send(b"".join(parts))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    mailbox: StandinMailbox


@dataclass
class ImapStandin:
    """``with ImapStandin(mailbox) as server:`` serves on ``server.port`` until the block ends."""

    mailbox: StandinMailbox
    host: str = "127.0.0.1"
    port: int = 0
    _server: _Server | None = None

    def __enter__(self) -> ImapStandin:
        server = _Server((self.host, 0), _Handler)
        server.mailbox = self.mailbox
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="imap-standin", daemon=True).start()
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def message(n: int, *, date_header: datetime | None, sender: str = "kunde@acme.example", body: str = "") -> bytes:
    """A small message; ``date_header=None`` leaves the Date header out."""
    lines = [
        f"From: Kunde {n} <{sender}>",
        "To: alice@ourco.example",
        f"Subject: Order {n}",
        f"Message-ID: <standin-{n}@acme.example>",
    ]
    if date_header is not None:
        lines.append(f"Date: {date_header.strftime('%a, %d %b %Y %H:%M:%S +0000')}")
    text = body or f"Hello, about order {n}."
    return ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 10, 0, tzinfo=timezone.utc)
