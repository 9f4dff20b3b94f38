"""systemd's notify protocol over its documented datagram socket, without libsystemd.

Does nothing when ``NOTIFY_SOCKET`` is unset (a terminal, a test, another supervisor).
Messages are ``KEY=VALUE`` lines sent as one datagram to the socket systemd names;
a name starting with ``@`` is an abstract socket.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("syncd.notify")


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        self.watchdog_seconds: float | None = None
        if watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            self.watchdog_seconds = int(watchdog_usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> None:
        if self.address is None:
            return
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:
            log.warning("notify socket unreachable error=%r", str(exc))

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def watchdog(self) -> None:
        if self.watchdog_seconds is not None:
            self.send(WATCHDOG=1)

    def reloading(self) -> None:
        self.send(RELOADING=1)

    def stopping(self) -> None:
        self.send(STOPPING=1)
