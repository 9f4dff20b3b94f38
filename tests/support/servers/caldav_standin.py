"""A CalDAV stand-in that answers discovery the way Cyrus's CalDAV (3.6) did at its root URL.

Not a calendar server: every PROPFIND gets a 207 whose properties are all "404 Not Found",
so a client that starts at the root finds no principal and no calendar home, and the
RFC 6764 ``/.well-known/caldav`` answers with a redirect to ``/dav/``, as Cyrus does.
Cyrus's own CalDAV cannot run in every CI (its package conflicts with Dovecot's); this
keeps the "silent empty sync" it caused tested.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMPTY_MULTISTATUS = """<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:response>
    <D:href>{path}</D:href>
    <D:propstat>
      <D:prop><D:current-user-principal/><C:calendar-home-set/><D:resourcetype/></D:prop>
      <D:status>HTTP/1.1 404 Not Found</D:status>
    </D:propstat>
  </D:response>
</D:multistatus>
"""


@dataclass
class CaldavStandin:
    server_header: str = "Cyrus-HTTP/3.6.1 Cyrus-SASL/2.1.28"
    well_known_target: str = "/dav/"
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> CaldavStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def version_string(self) -> str:
                return standin.server_header

            def _answer(self) -> None:
                standin.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path.rstrip("/") == "/.well-known/caldav":
                    self.send_response(301)
                    self.send_header("Location", standin.well_known_target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.command in ("GET", "HEAD", "OPTIONS"):
                    self.send_response(200)
                    self.send_header("DAV", "1, 2, 3, calendar-access")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = EMPTY_MULTISTATUS.format(path=self.path).encode()
                self.send_response(207)
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_OPTIONS = do_PROPFIND = do_REPORT = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="caldav-standin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
