"""A throwaway Radicale (CalDAV) for the calendar tests: own storage, users, port.

Runs ``python -m radicale`` from this environment on 127.0.0.1 and a free high port,
with htpasswd users (plain text: loopback only) under a temp folder, and is stopped
by the test session (or by a test that needs the server gone).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.servers.dovecot import free_port
from support.servers.process import ChildServer

CONFIG = """\
[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {root}/users
htpasswd_encryption = plain
[storage]
filesystem_folder = {root}/collections
[logging]
level = warning
"""

POOL = ("first", "changes", "recurring", "zones", "token", "down", "etag", "contract", "spare")


@dataclass
class Radicale(ChildServer):
    log_file = "radicale.log"

    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Radicale:
        for name in POOL:
            self.users.setdefault(f"{name}@ourco.example", f"pw-{name}")
        if not self.port:
            self.port = free_port()
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        (self.root / "users").write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        (self.root / "radicale.conf").write_text(CONFIG.format(root=self.root, port=self.port))
        log = open(self.root / "radicale.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(self.root / "radicale.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_listening()
        return self

    def client(self, user: str):  # type: ignore[no-untyped-def]
        import caldav

        return caldav.DAVClient(url=self.url, username=user, password=self.users[user])

    def calendar(self, user: str, name: str):  # type: ignore[no-untyped-def]
        """The user's calendar of that name, made on first use."""
        principal = self.client(user).principal()
        for calendar in principal.calendars():
            if calendar.get_display_name() == name:
                return calendar
        return principal.make_calendar(name=name)
