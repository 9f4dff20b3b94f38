"""A TEST DOUBLE of Microsoft Graph and the Entra ID token endpoint — not a Graph server.

It answers, on https://127.0.0.1:<free port>, with the response shapes Microsoft
documents for the calls syncd makes, and records every request so tests can assert what
was asked (``$select``, ``Prefer``, the Authorization header, delta tokens):

* ``/{tenant}/v2.0/.well-known/openid-configuration`` and ``/{tenant}/oauth2/v2.0/token``
  (client credentials with a secret or a certificate assertion, device code, refresh
  token) and ``/{tenant}/oauth2/v2.0/devicecode``;
* ``/v1.0/users/{mailbox}/mailFolders/{folder}/messages/delta`` and
  ``/calendarView/delta``: pages of ``value`` with ``@odata.nextLink`` and a final
  ``@odata.deltaLink``, ``@removed`` entries, 410 ``syncStateNotFound`` for an expired
  token;
* messages, events, ``outlook/masterCategories``, ``contactFolders`` and contacts;
* 429 with Retry-After (``throttle``), 503 without it (``unavailable``), 403
  ``ErrorAccessDenied`` for a mailbox whose consent was revoked (``deny``), 401
  ``InvalidAuthenticationToken`` for an unknown or revoked token (``revoke_tokens``);
* delta as documented beyond the happy path: an expired token as 410 or as 400
  ``syncStateNotFound``/``resyncRequired`` (delta-query-overview, "Token duration"), at most
  5,000 messages when the query has ``$filter`` (message-delta, "Remarks");
* ``@odata.etag`` on items and ``If-Match`` on PATCH answered 412
  ``ErrorIrresolvableConflict`` when the item changed meanwhile (``before_patch`` lets a
  test change it "as the user" between syncd's read and its write);
* ``/calendars`` and ``/calendars/{id}/calendarView/delta`` for calendars besides the
  default one; ``body`` only when ``$select`` asks for it;
* pages broken on purpose (``break_next_page``: not JSON, a JSON list, no links).

Change tracking is a per-collection change log; a delta token is the log position it was
issued at (base64 JSON), so tests can also expire tokens (``expire``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from support.doubles.drive_double import DriveDouble
from support.doubles.tls import make_tls


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Collection:
    """Items of one folder or calendar, with a change log for delta."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (sequence, item id)
    generation: int = 0
    expired_as: tuple[int, str] = (410, "syncStateNotFound")


@dataclass
class Mailbox:
    folders: dict[str, Collection] = field(default_factory=lambda: {"inbox": Collection(), "sentitems": Collection()})
    calendars: dict[str, tuple[str, Collection]] = field(default_factory=dict)  # id -> (name, events)
    folder_names: dict[str, str] = field(default_factory=dict)  # display name -> folder id
    calendar: Collection = field(default_factory=Collection)
    categories: list[dict[str, str]] = field(default_factory=list)
    contact_folders: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {displayName, contacts}
    default_contacts: dict[str, dict[str, Any]] = field(default_factory=dict)


class GraphDouble:
    def __init__(self, root: Path, tenant: str = "contoso-tenant"):
        self.tenant = tenant
        self.ca_bundle, self._ssl = make_tls(root / "tls")
        self.mailboxes: dict[str, Mailbox] = {}
        self.requests: list[Recorded] = []
        self.clients: dict[str, str | None] = {}  # client id -> secret (None: certificate)
        self.tokens: dict[str, str] = {}  # access token -> client id
        self.refresh_tokens: dict[str, str] = {}
        self.denied: set[str] = set()
        self.throttled: dict[str, list[int]] = {}  # mailbox -> Retry-After of the next 429s
        self.device_codes: dict[str, str] = {}  # device code -> user
        self.auto_approve: str | None = None  # a user who "signs in" as soon as a code is issued
        self.token_lifetime = 3599
        self.unavailable_left: dict[str, int] = {}  # mailbox -> how many 503s without Retry-After
        self.broken_pages: dict[str, list[str]] = {}  # mailbox -> how the next delta pages are broken
        self.before_patch: Any = None  # called (mailbox, item) before a PATCH is applied
        self.filter_cap = 5000  # message delta with $filter returns at most this many
        self.latency = 0.0  # seconds each Graph request takes (to see concurrency)
        self.in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> GraphDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, payload = double.handle(self.command, self.path, dict(self.headers.items()), raw)
                raw_text = headers.pop("X-Double-Raw", None) is not None
                raw_bytes = headers.pop("X-Double-Bytes", None) is not None
                if raw_bytes:
                    body = bytes(payload)
                elif raw_text:
                    body = str(payload).encode()
                else:
                    body = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if raw_bytes:
                    self.send_header("Content-Type", "application/octet-stream")
                elif raw_text:
                    self.send_header("Content-Type", "text/html")
                elif payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = self._ssl.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="graph-double", daemon=True)
        self._thread.start()
        self.drive = DriveDouble(self.base)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def graph_url(self) -> str:
        return f"{self.base}/v1.0"

    # ---- arranging the world -------------------------------------------------------------

    def mailbox(self, address: str) -> Mailbox:
        with self._lock:
            return self.mailboxes.setdefault(address.lower(), Mailbox())

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _put(self, collection: Collection, item: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            item.setdefault("id", "AAMk" + uuid.uuid4().hex)
            item["changeKey"] = "CQAAAB" + uuid.uuid4().hex[:12]
            collection.items[item["id"]] = item
            collection.log.append((self._next(), item["id"]))
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
        cc: list[str] | None = None,
        categories: list[str] | None = None,
        preview: str = "Hello.",
    ) -> dict[str, Any]:
        box = self.mailbox(mailbox)
        collection = box.folders.setdefault(folder, Collection())
        item = {
            "from": {"emailAddress": {"name": sender.split("@")[0].title(), "address": sender}},
            "toRecipients": [{"emailAddress": {"name": "", "address": a}} for a in to],
            "ccRecipients": [{"emailAddress": {"name": "", "address": a}} for a in cc or []],
            "bccRecipients": [],
            "subject": subject,
            "bodyPreview": preview,
            "receivedDateTime": when,
            "sentDateTime": when,
            "internetMessageId": f"<{message_id or uuid.uuid4().hex + '@test.example'}>",
            "conversationId": "AAQk" + uuid.uuid4().hex[:16],
            "categories": list(categories or []),
            "isDraft": False,
            "body": {"contentType": "text", "content": f"Full text of {subject}."},
            "internetMessageHeaders": [{"name": "X-Never", "value": "selected"}],
        }
        item["webLink"] = "https://outlook.office365.com/owa/?ItemID=" + quote(item["internetMessageId"])
        return self._put(collection, item)

    def change(self, mailbox: str, folder: str, item_id: str, **changes: Any) -> None:
        box = self.mailbox(mailbox)
        collection = box.calendar if folder == "calendar" else box.folders[folder]
        with self._lock:
            item = collection.items[item_id]
            item.update(changes)
            self._put(collection, item)

    def delete(self, mailbox: str, folder: str, item_id: str) -> None:
        box = self.mailbox(mailbox)
        collection = box.calendar if folder == "calendar" else box.folders[folder]
        with self._lock:
            del collection.items[item_id]
            collection.log.append((self._next(), item_id))

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
        sensitivity: str = "normal",
        uid: str | None = None,
        all_day: bool = False,
        location: str = "",
    ) -> dict[str, Any]:
        item = {
            "subject": subject,
            "bodyPreview": "Agenda.",
            "isAllDay": all_day,
            "isCancelled": cancelled,
            "sensitivity": sensitivity,
            "type": "singleInstance",
            "seriesMasterId": None,
            "iCalUId": uid or "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper(),
            "start": {"dateTime": start, "timeZone": "UTC"},
            "end": {"dateTime": end, "timeZone": "UTC"},
            "location": {"displayName": location},
            "organizer": {"emailAddress": {"name": "", "address": organizer}},
            "attendees": [
                {
                    "type": "required",
                    "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
                    "emailAddress": {"name": "", "address": address},
                }
                for address, response in attendees
            ],
            "categories": [],
            "webLink": "https://outlook.office365.com/owa/?itemid=event",
        }
        return self._put(self.mailbox(mailbox).calendar, item)

    def add_contact(
        self,
        mailbox: str,
        *,
        name: str,
        emails: list[str],
        company: str = "",
        folder: str | None = None,
        phones: list[str] = (),
    ) -> dict[str, Any]:
        box = self.mailbox(mailbox)
        contact = {
            "id": "AAMkC" + uuid.uuid4().hex,
            "displayName": name,
            "companyName": company,
            "emailAddresses": [{"name": name, "address": e} for e in emails],
            "businessPhones": list(phones),
            "mobilePhone": None,
            "homePhones": [],
            "businessHomePage": None,
            "personalNotes": "",
            "changeKey": uuid.uuid4().hex[:8],
        }
        with self._lock:
            if folder is None:
                box.default_contacts[contact["id"]] = contact
            else:
                target = next((f for f in box.contact_folders.values() if f["displayName"] == folder), None)
                if target is None:
                    target = {"id": "AAMkF" + uuid.uuid4().hex, "displayName": folder, "contacts": {}}
                    box.contact_folders[target["id"]] = target
                target["contacts"][contact["id"]] = contact
        return contact

    def delete_contact(self, mailbox: str, contact_id: str) -> None:
        box = self.mailbox(mailbox)
        with self._lock:
            box.default_contacts.pop(contact_id, None)
            for folder in box.contact_folders.values():
                folder["contacts"].pop(contact_id, None)

    def expire(self, mailbox: str, folder: str, status: int = 410, code: str = "syncStateNotFound") -> None:
        """Delta tokens issued so far for this folder are no longer known (``status``/``code`` next time)."""
        box = self.mailbox(mailbox)
        collection = box.calendar if folder == "calendar" else box.folders[folder]
        with self._lock:
            collection.generation += 1
            collection.expired_as = (status, code)

    def throttle(self, mailbox: str, *retry_after: int) -> None:
        with self._lock:
            self.throttled.setdefault(mailbox.lower(), []).extend(retry_after)

    def deny(self, mailbox: str) -> None:
        self.denied.add(mailbox.lower())

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused from now on (consent revoked and given again)."""
        with self._lock:
            self.tokens.clear()

    def unavailable(self, mailbox: str, count: int) -> None:
        """The next ``count`` requests for the mailbox get 503 without Retry-After."""
        with self._lock:
            self.unavailable_left[mailbox.lower()] = count

    def break_next_page(self, mailbox: str, *how: str) -> None:
        """The next delta pages of the mailbox come broken: "not-json", "list" or "no-links"."""
        with self._lock:
            self.broken_pages.setdefault(mailbox.lower(), []).extend(how)

    def add_calendar(self, mailbox: str, name: str) -> str:
        calendar_id = "AAMkCal" + uuid.uuid4().hex[:12]
        with self._lock:
            self.mailbox(mailbox).calendars[calendar_id] = (name, Collection())
        return calendar_id

    def add_event_to(self, mailbox: str, calendar_id: str, **event: Any) -> dict[str, Any]:
        item = self.add_event(mailbox, **event)
        box = self.mailbox(mailbox)
        with self._lock:
            del box.calendar.items[item["id"]]
            box.calendar.log = [(s, i) for s, i in box.calendar.log if i != item["id"]]
            return self._put(box.calendars[calendar_id][1], item)

    def recorded(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- dispatch ----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = headers.get("Content-Type", "")
        body: Any = None
        if path.startswith("/upload/"):
            with self._lock:
                self.requests.append(Recorded(method, path, query, headers, None))
                return self.drive.upload(method, path[len("/upload/") :], headers, raw)
        if raw and "octet-stream" in content_type:
            pass  # file content: handed to the drive as it is
        elif raw:
            body = (
                json.loads(raw)
                if "json" in content_type
                else {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
            )
        with self._lock:
            self.requests.append(Recorded(method, path, query, headers, body))
        try:
            if path.startswith(f"/{self.tenant}/"):
                return self._identity(method, path[len(self.tenant) + 2 :], body or {})
            rest = path[len("/v1.0/") :]
            if re.fullmatch(r"users/[^/]+/drive", rest) or rest.startswith(("drives/", "sites/")):
                auth = headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                    return (
                        401,
                        {},
                        {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}},
                    )
                with self._lock:
                    return self.drive.handle(method, rest, query, body, raw)
            if path.startswith("/v1.0/users/"):
                return self._graph(method, path[len("/v1.0/users/") :], query, headers, body)
        except KeyError as exc:
            return 404, {}, {"error": {"code": "ErrorItemNotFound", "message": f"not found: {exc}"}}
        return 404, {}, {"error": {"code": "BadRequest", "message": f"no route {method} {path}"}}

    # ---- identity ------------------------------------------------------------------------

    def _identity(self, method: str, rest: str, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        base = f"{self.base}/{self.tenant}"
        if rest == "v2.0/.well-known/openid-configuration":
            return (
                200,
                {},
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                },
            )
        if rest == "oauth2/v2.0/devicecode":
            code = uuid.uuid4().hex
            self.device_codes[code] = self.auto_approve or "pending"
            return (
                200,
                {},
                {
                    "device_code": code,
                    "user_code": "SYNCD-TEST",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": "To sign in, open https://microsoft.com/devicelogin and enter SYNCD-TEST.",
                },
            )
        if rest == "oauth2/v2.0/token":
            return self._token(form)
        return 404, {}, {"error": "not_found"}

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        client = form.get("client_id", "")
        grant = form.get("grant_type", "")

        def refused(error: str, text: str) -> tuple[int, dict[str, str], Any]:
            return (
                401 if error == "invalid_client" else 400,
                {},
                {
                    "error": error,
                    "error_description": f"{text}\r\nTrace ID: 0\r\nCorrelation ID: 0",
                    "error_codes": [7000215],
                },
            )

        if client not in self.clients:
            return refused("unauthorized_client", "AADSTS700016: Application not found in the directory.")
        access = "eyJ0eXAi." + uuid.uuid4().hex
        if grant == "client_credentials":
            secret = self.clients[client]
            if secret is None:
                if (
                    form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    or form.get("client_assertion", "").count(".") != 2
                ):
                    return refused("invalid_client", "AADSTS700027: Client assertion failed signature validation.")
            elif form.get("client_secret") != secret:
                return refused("invalid_client", "AADSTS7000215: Invalid client secret provided.")
            self.tokens[access] = client
            return (
                200,
                {},
                {
                    "token_type": "Bearer",
                    "expires_in": self.token_lifetime,
                    "ext_expires_in": self.token_lifetime,
                    "access_token": access,
                },
            )
        if grant in ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token"):
            if grant == "refresh_token":
                user = self.refresh_tokens.get(form.get("refresh_token", ""))
                if user is None:
                    return refused("invalid_grant", "AADSTS70008: The refresh token has expired.")
            else:
                user = self.device_codes.get(form.get("device_code", ""))
                if user is None or user == "pending":
                    return 400, {}, {"error": "authorization_pending", "error_description": "AADSTS70016: pending"}
            refresh = "rt-" + uuid.uuid4().hex
            self.refresh_tokens[refresh] = user
            self.tokens[access] = client
            now = int(time.time())
            claims = {
                "aud": client,
                "iss": f"{self.base}/{self.tenant}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "name": user,
                "oid": "00000000-0000-0000-0000-00000000beef",
                "preferred_username": user,
                "sub": "sub-" + user,
                "tid": self.tenant,
                "ver": "2.0",
            }
            id_token = ".".join(
                base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")
                for p in ({"alg": "none", "typ": "JWT"}, claims, {})
            )
            client_info = (
                base64.urlsafe_b64encode(
                    json.dumps({"uid": "00000000-0000-0000-0000-00000000beef", "utid": self.tenant}).encode()
                )
                .decode()
                .rstrip("=")
            )
            return (
                200,
                {},
                {
                    "token_type": "Bearer",
                    "scope": "https://graph.microsoft.com/.default",
                    "expires_in": self.token_lifetime,
                    "access_token": access,
                    "refresh_token": refresh,
                    "id_token": id_token,
                    "client_info": client_info,
                },
            )
        return refused("unsupported_grant_type", "AADSTS70003: unsupported grant")

    def approve_device_codes(self, user: str) -> None:
        """The user typed the code and consented (what happens in their browser)."""
        with self._lock:
            for code, state in self.device_codes.items():
                if state == "pending":
                    self.device_codes[code] = user

    # ---- Graph ----------------------------------------------------------------------------

    def _graph(
        self, method: str, rest: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return (
                401,
                {"WWW-Authenticate": 'Bearer realm=""'},
                {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty or invalid."}},
            )
        address, _, rest = rest.partition("/")
        address = address.lower()
        with self._lock:
            self.in_flight[address] = self.in_flight.get(address, 0) + 1
            self.peak_in_flight[address] = max(self.peak_in_flight.get(address, 0), self.in_flight[address])
        try:
            if self.latency:
                time.sleep(self.latency)  # the double's own service time, not a test's synchronisation
            return self._graph_mailbox(method, address, rest, query, headers, body)
        finally:
            with self._lock:
                self.in_flight[address] -= 1

    def _graph_mailbox(
        self, method: str, address: str, rest: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            if self.unavailable_left.get(address):
                self.unavailable_left[address] -= 1
                return 503, {}, {"error": {"code": "ServiceUnavailable", "message": "Service unavailable."}}
            pending = self.throttled.get(address)
            if pending:
                wait = pending.pop(0)
                return (
                    429,
                    {"Retry-After": str(wait)},
                    {
                        "error": {
                            "code": "ApplicationThrottled",
                            "message": "Application is over its MailboxConcurrency limit.",
                        }
                    },
                )
        if address in self.denied:
            return (
                403,
                {},
                {
                    "error": {
                        "code": "ErrorAccessDenied",
                        "message": "Access is denied. Check credentials and try again.",
                    }
                },
            )
        if address not in self.mailboxes:
            return (
                404,
                {},
                {"error": {"code": "ErrorInvalidUser", "message": f"The requested user '{address}' is invalid."}},
            )
        box = self.mailboxes[address]
        prefer = headers.get("Prefer", "")
        page_size = int(m.group(1)) if (m := re.search(r"odata\.maxpagesize=(\d+)", prefer)) else 10
        user = f"{self.graph_url}/users/{quote(address, safe='@')}"
        with self._lock:
            if m := re.fullmatch(r"mailFolders/([^/]+)/messages/delta", rest):
                folder = box.folder_names.get(m.group(1), m.group(1))
                return self._delta(
                    box.folders[folder],
                    f"{user}/mailFolders/{m.group(1)}/messages/delta",
                    query,
                    page_size,
                    self._message_filter,
                    address,
                    cap=self.filter_cap if "$filter" in query else None,
                )
            if rest == "calendarView/delta":
                return self._delta(
                    box.calendar, f"{user}/calendarView/delta", query, page_size, self._in_window, address
                )
            if m := re.fullmatch(r"calendars/([^/]+)/calendarView/delta", rest):
                collection = box.calendars[m.group(1)][1]
                return self._delta(collection, f"{user}/{rest}", query, page_size, self._in_window, address)
            if rest == "calendars":
                listed = [{"id": "AAMkDefault", "name": "Calendar", "isDefaultCalendar": True}]
                listed += [{"id": i, "name": n, "isDefaultCalendar": False} for i, (n, _c) in box.calendars.items()]
                return 200, {}, {"value": listed}
            if rest == "mailFolders" or re.fullmatch(r"mailFolders/[^/]+/childFolders", rest):
                wanted = _filter_name(query.get("$filter", ""))
                return (
                    200,
                    {},
                    {
                        "value": [
                            {"id": i, "displayName": n}
                            for n, i in box.folder_names.items()
                            if wanted is None or n == wanted
                        ]
                    },
                )
            if rest == "outlook/masterCategories":
                if method == "POST":
                    category = {"id": uuid.uuid4().hex, **body}
                    box.categories.append(category)
                    return 201, {}, category
                return 200, {}, {"value": list(box.categories)}
            if m := re.fullmatch(r"(messages|events)/([^/]+)", rest):
                item = self._find(box, m.group(1), m.group(2))
                owner = next(c for c in self._collections(box, m.group(1)) if item["id"] in c.items)
                if method == "PATCH":
                    if self.before_patch is not None:
                        self.before_patch(address, item)
                    wanted = headers.get("If-Match")
                    if wanted is not None and wanted != f'W/"{item["changeKey"]}"':
                        return (
                            412,
                            {},
                            {
                                "error": {
                                    "code": "ErrorIrresolvableConflict",
                                    "message": "The send or update operation could not be performed because the "
                                    "change key passed in the request does not match the current change key for "
                                    "the item.",
                                }
                            },
                        )
                    item.update(body)
                    self._put(owner, item)
                return 200, {}, {"@odata.etag": f'W/"{item["changeKey"]}"', **_selected(item, query.get("$select"))}
            if rest == "contactFolders":
                if method == "POST":
                    folder = {"id": "AAMkF" + uuid.uuid4().hex, "displayName": body["displayName"], "contacts": {}}
                    box.contact_folders[folder["id"]] = folder
                    return 201, {}, {"id": folder["id"], "displayName": folder["displayName"]}
                wanted = _filter_name(query.get("$filter", ""))
                return (
                    200,
                    {},
                    {
                        "value": [
                            {"id": f["id"], "displayName": f["displayName"]}
                            for f in box.contact_folders.values()
                            if wanted is None or f["displayName"] == wanted
                        ]
                    },
                )
            if m := re.fullmatch(r"contactFolders/([^/]+)/contacts", rest):
                folder = box.contact_folders[m.group(1)]
                if method == "POST":
                    contact = {"id": "AAMkC" + uuid.uuid4().hex, **body}
                    folder["contacts"][contact["id"]] = contact
                    return 201, {}, contact
                return self._list(list(folder["contacts"].values()), query, f"{user}/{rest}")
            if rest == "contacts":
                return self._list(list(box.default_contacts.values()), query, f"{user}/contacts")
            if m := re.fullmatch(r"contacts/([^/]+)", rest):
                holder = next((f for f in box.contact_folders.values() if m.group(1) in f["contacts"]), None)
                if holder is None:
                    return 404, {}, {"error": {"code": "ErrorItemNotFound", "message": "The item was not found."}}
                contact = holder["contacts"][m.group(1)]
                if method == "DELETE":  # "Delete contact": 204 No Content
                    del holder["contacts"][m.group(1)]
                    return 204, {}, None
                if method == "PATCH":
                    contact.update(body)
                return 200, {}, contact
        return 404, {}, {"error": {"code": "BadRequest", "message": f"no route {method} {rest}"}}

    @staticmethod
    def _collections(box: Mailbox, kind: str) -> list[Collection]:
        if kind == "events":
            return [box.calendar, *(c for _n, c in box.calendars.values())]
        return list(box.folders.values())

    def _find(self, box: Mailbox, kind: str, item_id: str) -> dict[str, Any]:
        for collection in self._collections(box, kind):
            if item_id in collection.items:
                return collection.items[item_id]
        raise KeyError(item_id)

    def _list(self, items: list[dict[str, Any]], query: dict[str, str], url: str) -> tuple[int, dict[str, str], Any]:
        top = int(query.get("$top", "10"))
        skip = int(query.get("$skip", "0"))
        page = items[skip : skip + top]
        payload: dict[str, Any] = {"value": [_selected(i, query.get("$select")) for i in page]}
        if skip + top < len(items):
            payload["@odata.nextLink"] = f"{url}?$top={top}&$skip={skip + top}&$select={query.get('$select', '')}"
        return 200, {}, payload

    @staticmethod
    def _message_filter(item: dict[str, Any], query: dict[str, str]) -> bool:
        found = re.search(r"receivedDateTime ge (\S+)", query.get("$filter", ""))
        return found is None or item["receivedDateTime"] >= found.group(1)

    @staticmethod
    def _in_window(item: dict[str, Any], query: dict[str, str]) -> bool:
        start = item["start"]["dateTime"][:19]
        return query["startDateTime"][:19] <= start < query["endDateTime"][:19]

    def _delta(
        self,
        collection: Collection,
        url: str,
        query: dict[str, str],
        page_size: int,
        wanted: Any,
        address: str = "",
        cap: int | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        broken = self.broken_pages.get(address)
        if broken:
            how = broken.pop(0)
            if how == "not-json":
                return 200, {"X-Double-Raw": "1"}, "<html><body>Service temporarily busy</body></html>"
            if how == "list":
                return 200, {}, [{"id": "x"}]
            if how == "no-links":
                return 200, {}, {"@odata.context": f"{url}(...)", "value": []}
        token = query.get("$deltatoken") or query.get("$skiptoken")
        if token:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            if state["generation"] != collection.generation:
                status, code = collection.expired_as
                return (
                    status,
                    {},
                    {
                        "error": {
                            "code": code,
                            "message": "The sync state generation is not found; generation=1;[highest=2].",
                        }
                    },
                )
        else:
            state = {
                "since": 0,
                "upto": self._seq,
                "offset": 0,
                "generation": collection.generation,
                "query": {k: v for k, v in query.items() if not k.startswith("$skip")},
            }
        if "$deltatoken" in query:  # a new round: changes after the last one
            state = {**state, "since": state["upto"], "upto": self._seq, "offset": 0}
        original = state["query"]
        last_change: dict[str, int] = {}
        for seq, item_id in collection.log:
            if state["since"] < seq <= state["upto"]:
                last_change[item_id] = seq
        changed = sorted(last_change, key=last_change.__getitem__)
        entries: list[dict[str, Any]] = []
        for item_id in changed:
            item = collection.items.get(item_id)
            if item is None or not wanted(item, original):
                if state["since"]:
                    entries.append(
                        {"@odata.type": "#microsoft.graph.message", "id": item_id, "@removed": {"reason": "deleted"}}
                    )
                continue
            entries.append(_expanded(item, _selected(item, original.get("$select")), original.get("$expand")))
        if cap is not None and not state["since"]:
            entries = entries[:cap]  # "Applying $filter in a delta query returns only up to 5,000 messages."
        page = entries[state["offset"] : state["offset"] + page_size]
        payload: dict[str, Any] = {"@odata.context": f"{url}(...)", "value": page}
        if state["offset"] + page_size < len(entries):
            token = _token({**state, "offset": state["offset"] + page_size})
            payload["@odata.nextLink"] = f"{url}?$skiptoken={token}"
        else:
            payload["@odata.deltaLink"] = f"{url}?$deltatoken={_token(state)}"
        return 200, {}, payload


def _token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def _expanded(item: dict[str, Any], shown: dict[str, Any], expand: str | None) -> dict[str, Any]:
    """``$expand=singleValueExtendedProperties($filter=id eq 'Integer 0x0036')`` (Outlook's
    Sensitivity, PidTagSensitivity) as Graph answers it: the property, its id in short hex
    ("Integer 0x36"), its value as a string, only when it is set on the item; nothing else
    is expanded by this double."""
    level = item.get("_pid_tag_sensitivity")  # set by tests through change(); not a Graph property
    if expand and "singleValueExtendedProperties" in expand and "0x0036" in expand and level is not None:
        shown = {**shown, "singleValueExtendedProperties": [{"id": "Integer 0x36", "value": str(level)}]}
    return shown


def _selected(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return {k: v for k, v in item.items() if k not in ("body", "internetMessageHeaders") and not k.startswith("_")}
    fields = {f.strip() for f in select.split(",")} | {"id"}
    return {k: v for k, v in item.items() if k in fields}


def _filter_name(expression: str) -> str | None:
    found = re.search(r"displayName eq '((?:[^']|'')*)'", expression)
    return found.group(1).replace("''", "'") if found else None
