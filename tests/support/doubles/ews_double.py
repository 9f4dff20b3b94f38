"""A TEST DOUBLE of an Exchange Server EWS endpoint — not an Exchange server.

It answers SOAP on http://127.0.0.1:<free port>/EWS/Exchange.asmx for the operations
syncd's EWS connector makes through exchangelib, in the shapes Microsoft documents:
ConvertId (exchangelib's version probe: the answer carries ServerVersionInfo), GetFolder,
FindFolder, CreateFolder, SyncFolderItems (sync states, MaxChangesReturned,
IncludesLastItemInRange, ErrorInvalidSyncStateData), GetItem, FindItem, UpdateItem and
CreateItem. Basic authentication only. Every request is recorded (operation, auth
header, sync state, the properties asked for) so tests assert what was asked.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

S = "http://schemas.xmlsoap.org/soap/envelope/"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
DISTINGUISHED = {
    "root": ("Root", "IPF.Note", "Folder"),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "Folder"),
    "inbox": ("Inbox", "IPF.Note", "Folder"),
    "sentitems": ("Sent Items", "IPF.Note", "Folder"),
    "calendar": ("Calendar", "IPF.Appointment", "CalendarFolder"),
    "contacts": ("Contacts", "IPF.Contact", "ContactsFolder"),
    "deleteditems": ("Deleted Items", "IPF.Note", "Folder"),
    "drafts": ("Drafts", "IPF.Note", "Folder"),
    "junkemail": ("Junk Email", "IPF.Note", "Folder"),
    "outbox": ("Outbox", "IPF.Note", "Folder"),
}


@dataclass
class Recorded:
    operation: str
    headers: dict[str, str]
    xml: str
    sync_state: str | None = None
    fields: list[str] = field(default_factory=list)
    impersonating: str | None = None


@dataclass
class Folder:
    id: str
    name: str
    folder_class: str
    tag: str
    parent: str | None
    distinguished: str | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    generation: int = 0


class EwsDouble:
    def __init__(self, users: dict[str, str] | None = None):
        self.users = dict(users or {"svc-syncd": "Ews-Pw-LEAKCHECK-4d2e"})
        self.mailboxes: dict[str, dict[str, Folder]] = {}
        self.requests: list[Recorded] = []
        self.denied: set[str] = set()
        self.busy: set[str] = set()
        #: mailbox -> BackOffMilliseconds of the next ErrorServerBusy SOAP faults, one per request
        self.busy_faults: dict[str, list[int]] = {}
        self.deleted: list[tuple[str, str, str]] = []  # (mailbox, item id, DeleteType) of DeleteItem
        self._seq = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._scheme = "http"

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self, tls: ssl.SSLContext | None = None) -> EwsDouble:
        """Serve on 127.0.0.1; with ``tls``, over https with that server context."""
        double = self
        self._scheme = "https" if tls is not None else "http"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = double.handle(dict(self.headers.items()), raw)
                data = body.encode("utf-8")
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="ews"')
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name="ews-double", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}/EWS/Exchange.asmx"

    # ---- arranging -------------------------------------------------------------------------

    def mailbox(self, address: str) -> dict[str, Folder]:
        with self._lock:
            address = address.lower()
            if address not in self.mailboxes:
                folders: dict[str, Folder] = {}
                for name, (display, cls, tag) in DISTINGUISHED.items():
                    parent = None if name == "root" else ("msgfolderroot" if name != "msgfolderroot" else "root")
                    folders[name] = Folder(
                        id=f"{name}-{uuid.uuid4().hex[:8]}",
                        name=display,
                        folder_class=cls,
                        tag=tag,
                        parent=parent,
                        distinguished=name,
                    )
                for folder in folders.values():
                    if folder.parent:
                        folder.parent = folders[folder.parent].id
                self.mailboxes[address] = {f.id: f for f in folders.values()}
            return self.mailboxes[address]

    def folder(self, mailbox: str, name: str) -> Folder:
        folders = self.mailbox(mailbox)
        return next(f for f in folders.values() if f.distinguished == name or f.name == name)

    def _put(self, folder: Folder, item: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            item.setdefault("id", "AAMkAD" + base64.b64encode(uuid.uuid4().bytes).decode())
            item["changekey"] = "CQAAABYA" + uuid.uuid4().hex[:10]
            folder.items[item["id"]] = item
            folder.created.setdefault(item["id"], self._seq)
            folder.log.append((self._seq, item["id"]))
            return item

    def add_message(
        self,
        mailbox: str,
        folder: str,
        *,
        sender: str,
        to: list[str],
        subject: str,
        when: str,
        message_id: str | None = None,
        categories: list[str] | None = None,
        sensitivity: str = "Normal",
    ) -> dict[str, Any]:
        item = {
            "kind": "Message",
            "Subject": subject,
            "From": sender,
            "Sender": sender,
            "ToRecipients": to,
            "DateTimeSent": when,
            "DateTimeReceived": when,
            "Sensitivity": sensitivity,
            "InternetMessageId": f"<{message_id or uuid.uuid4().hex + '@test.example'}>",
            "ConversationId": "AAQkAD" + uuid.uuid4().hex[:12],
            "Categories": list(categories or []),
            "TextBody": "Hello from the customer.",
        }
        return self._put(self.folder(mailbox, folder), item)

    def add_event(
        self,
        mailbox: str,
        *,
        subject: str,
        start: str,
        end: str,
        organizer: str,
        attendees: list[tuple[str, str]] = (),
        cancelled: bool = False,
        sensitivity: str = "Normal",
        ics: str | None = None,
    ) -> dict[str, Any]:
        """``ics``: the series' iCalendar form, making the event a recurring master whose
        MimeContent Exchange would send."""
        item = {
            "kind": "CalendarItem",
            "Subject": subject,
            "Start": start,
            "End": end,
            "Organizer": organizer,
            "RequiredAttendees": list(attendees),
            "IsCancelled": cancelled,
            "Sensitivity": sensitivity,
            "UID": "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper(),
            "Location": "Zagreb",
            "CalendarItemType": "RecurringMaster" if ics else "Single",
            "Categories": [],
            "TextBody": "Agenda.",
        }
        if ics:
            item["MimeContent"] = ics
        return self._put(self.folder(mailbox, "calendar"), item)

    def add_contact(
        self, mailbox: str, *, name: str, emails: list[str], company: str = "", folder: str = "contacts"
    ) -> dict[str, Any]:
        item = {
            "kind": "Contact",
            "DisplayName": name,
            "CompanyName": company,
            "EmailAddresses": list(emails),
            "Categories": [],
            "Body": "",
        }
        return self._put(self.folder(mailbox, folder), item)

    def change(self, mailbox: str, folder: str, item_id: str, **changes: Any) -> None:
        target = self.folder(mailbox, folder)
        with self._lock:
            target.items[item_id].update(changes)
            self._put(target, target.items[item_id])

    def delete(self, mailbox: str, folder: str, item_id: str) -> None:
        target = self.folder(mailbox, folder)
        with self._lock:
            self._seq += 1
            del target.items[item_id]
            target.log.append((self._seq, item_id))

    def expire(self, mailbox: str, folder: str) -> None:
        with self._lock:
            self.folder(mailbox, folder).generation += 1

    def recorded(self, operation: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if operation is None or r.operation == operation]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- SOAP ------------------------------------------------------------------------------

    def handle(self, headers: dict[str, str], raw: bytes) -> tuple[int, str]:
        auth = headers.get("Authorization", "")
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            user = password = ""
        envelope = ET.fromstring(raw)
        body = envelope.find(f"{{{S}}}Body")
        operation_elem = body[0] if body is not None and len(body) else None
        operation = operation_elem.tag.split("}", 1)[1] if operation_elem is not None else "?"
        impersonation = envelope.find(f".//{{{T}}}ExchangeImpersonation//{{{T}}}PrimarySmtpAddress")
        record = Recorded(
            operation=operation,
            headers=headers,
            xml=raw.decode("utf-8", "replace"),
            sync_state=_text(envelope.find(f".//{{{M}}}SyncState")),
            fields=[e.get("FieldURI", "") for e in envelope.iter(f"{{{T}}}FieldURI")],
            impersonating=_text(impersonation),
        )
        with self._lock:
            self.requests.append(record)
        if not auth.startswith("Basic ") or self.users.get(user) != password:
            return 401, ""
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return 500, _fault(f"the double does not serve {operation}")
        with self._lock:
            mailbox = self._mailbox_of(envelope, record)
            if mailbox in self.denied and operation != "ConvertId":
                return 200, _envelope(
                    operation,
                    _error(operation, "ErrorAccessDenied", "Access is denied. Check credentials and try again."),
                )
            if mailbox in self.busy and operation != "ConvertId":
                return 500, _busy_fault(120_000)
            pending = self.busy_faults.get(mailbox)
            if pending:
                return 500, _busy_fault(pending.pop(0))
            return 200, _envelope(operation, handler(operation_elem, mailbox))

    def _mailbox_of(self, envelope: ET.Element, record: Recorded) -> str:
        found = envelope.find(f".//{{{T}}}DistinguishedFolderId/{{{T}}}Mailbox/{{{T}}}EmailAddress")
        if record.impersonating:
            return record.impersonating.lower()
        if found is not None and found.text:
            return found.text.lower()
        # A folder or item id names its mailbox through our id tables.
        for elem in envelope.iter():
            if elem.tag in (f"{{{T}}}FolderId", f"{{{T}}}ItemId") and elem.get("Id"):
                for address, folders in self.mailboxes.items():
                    if elem.get("Id") in folders or any(elem.get("Id") in f.items for f in folders.values()):
                        return address
        return ""

    def _folder(self, mailbox: str, elem: ET.Element) -> Folder:
        folders = self.mailbox(mailbox)
        if elem.tag == f"{{{T}}}DistinguishedFolderId":
            return next(f for f in folders.values() if f.distinguished == elem.get("Id"))
        return folders[elem.get("Id", "")]

    def _find_item(self, mailbox: str, item_id: str) -> tuple[Folder, dict[str, Any]] | None:
        for folder in self.mailbox(mailbox).values():
            if item_id in folder.items:
                return folder, folder.items[item_id]
        return None

    def _op_ConvertId(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802 - EWS operation names
        return _error("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")

    def _op_GetFolder(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        messages = []
        for folder_id in _children(elem, f"{{{M}}}FolderIds"):
            try:
                folder = self._folder(mailbox, folder_id)
            except (StopIteration, KeyError):
                messages.append(_error("GetFolder", "ErrorFolderNotFound", "The specified folder could not be found."))
                continue
            messages.append(_success("GetFolder", f"<m:Folders>{_folder_xml(folder)}</m:Folders>"))
        return "".join(messages)

    def _op_FindFolder(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        messages = []
        for parent_elem in _children(elem, f"{{{M}}}ParentFolderIds"):
            parent = self._folder(mailbox, parent_elem)
            folders = self.mailbox(mailbox)
            if elem.get("Traversal") == "Deep":
                wanted, children = {parent.id}, []
                for folder in sorted(folders.values(), key=lambda f: f.id):
                    chain, at = [], folder
                    while at.parent is not None and at.parent in folders:
                        chain.append(at.parent)
                        at = folders[at.parent]
                    if parent.id in chain:
                        children.append(folder)
                del wanted
            else:
                children = [f for f in folders.values() if f.parent == parent.id]
            messages.append(
                _success(
                    "FindFolder",
                    f'<m:RootFolder TotalItemsInView="{len(children)}" '
                    f'IncludesLastItemInRange="true"><t:Folders>'
                    + "".join(_folder_xml(c) for c in children)
                    + "</t:Folders></m:RootFolder>",
                )
            )
        return "".join(messages)

    def _op_CreateFolder(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        parent = self._folder(mailbox, elem.find(f"{{{M}}}ParentFolderId")[0])  # type: ignore[index]
        created = []
        for spec in _children(elem, f"{{{M}}}Folders"):
            folder = Folder(
                id="folder-" + uuid.uuid4().hex[:10],
                name=_text(spec.find(f"{{{T}}}DisplayName")) or "",
                folder_class=_text(spec.find(f"{{{T}}}FolderClass")) or "IPF.Note",
                tag=spec.tag.split("}", 1)[1],
                parent=parent.id,
            )
            self.mailbox(mailbox)[folder.id] = folder
            created.append(
                _success(
                    "CreateFolder",
                    f'<m:Folders><t:{folder.tag}><t:FolderId Id="{folder.id}" '
                    f'ChangeKey="ck1"/></t:{folder.tag}></m:Folders>',
                )
            )
        return "".join(created)

    def _op_SyncFolderItems(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        folder = self._folder(mailbox, elem.find(f"{{{M}}}SyncFolderId")[0])  # type: ignore[index]
        limit = int(_text(elem.find(f"{{{M}}}MaxChangesReturned")) or "100")
        token = _text(elem.find(f"{{{M}}}SyncState"))
        since = 0
        if token:
            try:
                state = json.loads(base64.b64decode(token))
            except ValueError:
                state = {"gen": -1}
            if state.get("gen") != folder.generation or state.get("folder") != folder.id:
                return _error(
                    "SyncFolderItems",
                    "ErrorInvalidSyncStateData",
                    "Synchronization state data is corrupt or otherwise invalid.",
                )
            since = state["seq"]
        latest: dict[str, int] = {}
        for seq, item_id in folder.log:
            if seq > since:
                latest[item_id] = seq
        ordered = sorted(latest.items(), key=lambda pair: pair[1])
        taken = ordered[:limit]
        changes = []
        for item_id, _seq in taken:
            item = folder.items.get(item_id)
            if item is None:
                changes.append(f'<t:Delete><t:ItemId Id="{item_id}" ChangeKey="x"/></t:Delete>')
                continue
            change = "Create" if folder.created[item_id] > since else "Update"
            changes.append(f"<t:{change}>{_item_xml(item, brief=True)}</t:{change}>")
        last = len(taken) == len(ordered)
        new_seq = taken[-1][1] if taken and not last else max([since, *(s for s, _ in folder.log)])
        new_state = base64.b64encode(
            json.dumps({"folder": folder.id, "seq": new_seq, "gen": folder.generation}).encode()
        ).decode()
        return _success(
            "SyncFolderItems",
            f"<m:SyncState>{new_state}</m:SyncState>"
            f"<m:IncludesLastItemInRange>{'true' if last else 'false'}</m:IncludesLastItemInRange>"
            f"<m:Changes>{''.join(changes)}</m:Changes>",
        )

    def _op_GetItem(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        messages = []
        for item_id in _children(elem, f"{{{M}}}ItemIds"):
            found = self._find_item(mailbox, item_id.get("Id", ""))
            if found is None:
                messages.append(
                    _error("GetItem", "ErrorItemNotFound", "The specified object was not found in the store.")
                )
                continue
            messages.append(_success("GetItem", f"<m:Items>{_item_xml(found[1])}</m:Items>"))
        return "".join(messages)

    def _op_FindItem(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        messages = []
        for parent_elem in _children(elem, f"{{{M}}}ParentFolderIds"):
            folder = self._folder(mailbox, parent_elem)
            items = list(folder.items.values())
            messages.append(
                _success(
                    "FindItem",
                    f'<m:RootFolder IndexedPagingOffset="{len(items)}" '
                    f'TotalItemsInView="{len(items)}" IncludesLastItemInRange="true"><t:Items>'
                    + "".join(_item_xml(i, brief=True, names=True) for i in items)
                    + "</t:Items></m:RootFolder>",
                )
            )
        return "".join(messages)

    def _op_UpdateItem(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        messages = []
        for change in elem.iter(f"{{{T}}}ItemChange"):
            item_id = change.find(f"{{{T}}}ItemId").get("Id", "")  # type: ignore[union-attr]
            found = self._find_item(mailbox, item_id)
            if found is None:
                messages.append(_error("UpdateItem", "ErrorItemNotFound", "not found"))
                continue
            folder, item = found
            for update in _children(change, f"{{{T}}}Updates"):
                carrier = [c for c in update if not c.tag.endswith(("FieldURI", "IndexedFieldURI"))]
                if update.tag.endswith("DeleteItemField") or not carrier:
                    continue
                for value in carrier[0]:
                    _apply(item, value)
            self._put(folder, item)
            messages.append(
                _success(
                    "UpdateItem",
                    f'<m:Items><t:{item["kind"]}><t:ItemId Id="{item["id"]}" '
                    f'ChangeKey="{item["changekey"]}"/></t:{item["kind"]}></m:Items>'
                    "<m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>",
                )
            )
        return "".join(messages)

    def _op_DeleteItem(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        """DeleteItem (MoveToDeletedItems from move_to_trash): the item leaves its folder."""
        messages = []
        for item_id in _children(elem, f"{{{M}}}ItemIds"):
            found = self._find_item(mailbox, item_id.get("Id", ""))
            if found is None:
                messages.append(_error("DeleteItem", "ErrorItemNotFound", "not found"))
                continue
            folder, item = found
            del folder.items[item["id"]]
            self.deleted.append((mailbox, item["id"], elem.get("DeleteType", "")))
            messages.append(_success("DeleteItem", ""))
        return "".join(messages)

    def _op_CreateItem(self, elem: ET.Element, mailbox: str) -> str:  # noqa: N802
        target = elem.find(f"{{{M}}}SavedItemFolderId")
        folder = self._folder(mailbox, target[0]) if target is not None else self.folder(mailbox, "drafts")
        messages = []
        for spec in _children(elem, f"{{{M}}}Items"):
            item: dict[str, Any] = {"kind": spec.tag.split("}", 1)[1], "Categories": [], "EmailAddresses": []}
            for value in spec:
                _apply(item, value)
            self._put(folder, item)
            messages.append(
                _success(
                    "CreateItem",
                    f'<m:Items><t:{item["kind"]}><t:ItemId Id="{item["id"]}" '
                    f'ChangeKey="{item["changekey"]}"/></t:{item["kind"]}></m:Items>',
                )
            )
        return "".join(messages)


def _children(elem: ET.Element, tag: str) -> list[ET.Element]:
    """The children of ``elem``'s first ``tag`` child, or none (an Element's truth value is
    its length today and always True from Python 3.14 on: never test it)."""
    found = elem.find(tag)
    return list(found) if found is not None else []


def _apply(item: dict[str, Any], value: ET.Element) -> None:
    name = value.tag.split("}", 1)[1]
    if name == "Categories":
        item["Categories"] = [s.text or "" for s in value]
    elif name == "EmailAddresses":
        item["EmailAddresses"] = [e.text or "" for e in value]
    else:
        item[name] = value.text or ""


def _text(elem: ET.Element | None) -> str | None:
    return elem.text if elem is not None else None


def _mailbox_xml(address: str) -> str:
    return (
        f"<t:Mailbox><t:Name>{escape(address.split('@')[0].title())}</t:Name><t:EmailAddress>{escape(address)}"
        "</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>"
    )


def _item_xml(item: dict[str, Any], brief: bool = False, names: bool = False) -> str:
    kind = item["kind"]
    parts = [f'<t:ItemId Id="{escape(item["id"])}" ChangeKey="{item["changekey"]}"/>']
    if item.get("MimeContent") and not brief:
        encoded = base64.b64encode(item["MimeContent"].encode("utf-8")).decode("ascii")
        parts.insert(0, f'<t:MimeContent CharacterSet="UTF-8">{encoded}</t:MimeContent>')
    if brief:
        # SyncFolderItems with the IdOnly shape plus the window property we ask for.
        if kind == "Message":
            parts.append(f"<t:DateTimeReceived>{item['DateTimeReceived']}</t:DateTimeReceived>")
        elif kind == "CalendarItem":
            parts.append(f"<t:Start>{item['Start']}</t:Start>")
        elif names:
            parts.append(f"<t:DisplayName>{escape(item.get('DisplayName', ''))}</t:DisplayName>")
            parts.append(
                "<t:Categories>"
                + "".join(f"<t:String>{escape(c)}</t:String>" for c in item.get("Categories", []))
                + "</t:Categories>"
            )
        return f"<t:{kind}>{''.join(parts)}</t:{kind}>"
    if kind == "Message":
        parts += [
            f"<t:Subject>{escape(item['Subject'])}</t:Subject>",
            f"<t:Sensitivity>{item['Sensitivity']}</t:Sensitivity>",
            f"<t:DateTimeReceived>{item['DateTimeReceived']}</t:DateTimeReceived>",
            "<t:Categories>"
            + "".join(f"<t:String>{escape(c)}</t:String>" for c in item["Categories"])
            + "</t:Categories>",
            f"<t:DateTimeSent>{item['DateTimeSent']}</t:DateTimeSent>",
            f'<t:TextBody BodyType="Text">{escape(item["TextBody"])}</t:TextBody>',
            f'<t:ConversationId Id="{item["ConversationId"]}"/>',
            f"<t:Sender>{_mailbox_xml(item['Sender'])}</t:Sender>",
            "<t:ToRecipients>" + "".join(_mailbox_xml(a) for a in item["ToRecipients"]) + "</t:ToRecipients>",
            f"<t:InternetMessageId>{escape(item['InternetMessageId'])}</t:InternetMessageId>",
            f"<t:From>{_mailbox_xml(item['From'])}</t:From>",
        ]
    elif kind == "CalendarItem":
        attendees = "".join(
            f"<t:Attendee>{_mailbox_xml(a)}<t:ResponseType>{r}</t:ResponseType></t:Attendee>"
            for a, r in item["RequiredAttendees"]
        )
        parts += [
            f"<t:Subject>{escape(item['Subject'])}</t:Subject>",
            f"<t:Sensitivity>{item['Sensitivity']}</t:Sensitivity>",
            "<t:Categories>"
            + "".join(f"<t:String>{escape(c)}</t:String>" for c in item["Categories"])
            + "</t:Categories>",
            f'<t:TextBody BodyType="Text">{escape(item["TextBody"])}</t:TextBody>',
            f"<t:UID>{item['UID']}</t:UID>",
            f"<t:Start>{item['Start']}</t:Start>",
            f"<t:End>{item['End']}</t:End>",
            "<t:IsAllDayEvent>false</t:IsAllDayEvent>",
            f"<t:Location>{escape(item['Location'])}</t:Location>",
            f"<t:IsCancelled>{'true' if item['IsCancelled'] else 'false'}</t:IsCancelled>",
            f"<t:CalendarItemType>{item['CalendarItemType']}</t:CalendarItemType>",
            f"<t:Organizer>{_mailbox_xml(item['Organizer'])}</t:Organizer>",
            f"<t:RequiredAttendees>{attendees}</t:RequiredAttendees>",
        ]
    else:
        emails = "".join(
            f'<t:Entry Key="EmailAddress{n + 1}">{escape(e)}</t:Entry>'
            for n, e in enumerate(item.get("EmailAddresses", []))
        )
        parts += [
            "<t:Categories>"
            + "".join(f"<t:String>{escape(c)}</t:String>" for c in item.get("Categories", []))
            + "</t:Categories>",
            f'<t:Body BodyType="Text">{escape(item.get("Body", ""))}</t:Body>',
            f"<t:DisplayName>{escape(item.get('DisplayName', ''))}</t:DisplayName>",
            f"<t:CompanyName>{escape(item.get('CompanyName', ''))}</t:CompanyName>",
            f"<t:EmailAddresses>{emails}</t:EmailAddresses>",
        ]
    return f"<t:{kind}>{''.join(parts)}</t:{kind}>"


def _folder_xml(folder: Folder) -> str:
    parent = f'<t:ParentFolderId Id="{folder.parent}" ChangeKey="ck"/>' if folder.parent else ""
    return (
        f'<t:{folder.tag}><t:FolderId Id="{folder.id}" ChangeKey="ck"/>{parent}'
        f"<t:FolderClass>{folder.folder_class}</t:FolderClass><t:DisplayName>{escape(folder.name)}</t:DisplayName>"
        f"<t:TotalCount>{len(folder.items)}</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount>"
        f"<t:UnreadCount>0</t:UnreadCount></t:{folder.tag}>"
    )


def _success(operation: str, inner: str) -> str:
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
        f"{inner}</m:{operation}ResponseMessage>"
    )


def _error(operation: str, code: str, text: str) -> str:
    # A SyncFolderItems error message still carries (empty) SyncState and
    # IncludesLastItemInRange elements, as Exchange sends them; exchangelib reads both
    # before it looks at the response class.
    tail = (
        "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
        if operation == "SyncFolderItems"
        else ""
    )
    return (
        f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{escape(text)}</m:MessageText>'
        f"<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{tail}"
        f"</m:{operation}ResponseMessage>"
    )


def _envelope(operation: str, messages: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Header>'
        f'<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" '
        f'Version="Exchange2016" xmlns:h="{T}" xmlns="{T}"/></s:Header><s:Body>'
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{messages}</m:ResponseMessages>'
        f"</m:{operation}Response></s:Body></s:Envelope>"
    )


def _busy_fault(back_off_ms: int) -> str:
    """Exchange's answer when it throttles: an ErrorServerBusy SOAP fault (HTTP 500) whose
    MessageXml carries BackOffMilliseconds, as "EWS throttling in Exchange" shows it
    (https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Body><s:Fault>'
        '<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>'
        '<faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>'
        '<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy'
        '</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server '
        f'cannot service this request right now. Try again later.</e:Message><t:MessageXml xmlns:t="{T}">'
        f'<t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value></t:MessageXml></detail>'
        "</s:Fault></s:Body></s:Envelope>"
    )


def _fault(text: str) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Body><s:Fault>'
        f"<faultcode>s:Client</faultcode><faultstring>{escape(text)}</faultstring></s:Fault></s:Body></s:Envelope>"
    )
