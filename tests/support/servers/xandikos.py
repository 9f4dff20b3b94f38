"""A throwaway Xandikos (CalDAV, PyPI ``xandikos``) for the calendar tests: own folder, port.

Runs the ``xandikos`` script of this environment on 127.0.0.1 and a free high port with
``--defaults --autocreate``: one principal at ``/user/`` with a calendar at
``/user/calendars/calendar/``. Xandikos does no authentication of its own (it is meant to
sit behind a proxy), so any user name and password are accepted. Stopped by the session.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.servers.dovecot import free_port
from support.servers.process import ChildServer

PRINCIPAL = "/user/"
CALENDAR = "/user/calendars/calendar/"


@dataclass
class Xandikos(ChildServer):
    log_file = "xandikos.log"

    root: Path
    port: int = 0
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Xandikos:
        if not self.port:
            self.port = free_port()
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        log = open(self.root / "xandikos.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "xandikos"),
                "--defaults",
                "--autocreate",
                "-d",
                str(self.root / "data"),
                "-l",
                self.host,
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_listening()
        return self

    def calendar(self):  # type: ignore[no-untyped-def]
        import caldav

        client = caldav.DAVClient(url=self.url + CALENDAR.lstrip("/"), username="user", password="any")
        return client.calendar(url=self.url + CALENDAR.lstrip("/"))
