"""A throwaway Dovecot for the IMAP tests: own config, users and mail under a temp folder.

Listens on 127.0.0.1 on a free high port, plain text (loopback only), and is stopped by
the test session. Needs the Debian package dovecot-imapd (scripts/test-setup installs it)
and root, because Dovecot drops privileges to its own user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
protocols = imap
first_valid_uid = 100
first_valid_gid = 100
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_plugins = $mail_plugins
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
"""


# Mailboxes the tests use, one per test, created with the server.
POOL = (
    "backfill",
    "writeback",
    "forgetkw",
    "uidvalidity",
    "goodpw",
    "badpw",
    "restart",
    "sigkill",
    "live",
    "bench",
    "contract",
    "wire",
    "survivor",
    "steady",
    "spare1",
    "spare2",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Dovecot:
    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    host: str = "127.0.0.1"

    def start(self) -> Dovecot:
        for name in POOL:
            self.users.setdefault(f"{name}@ourco.example", f"pw-{name}")
        if not self.port:
            self.port = free_port()
        for sub in ("run", "state", "log", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Dovecot's auth and mail processes run as the dovecot user and must reach these files
        # (pytest's own tmp folders are 0700 under a 0700 parent, so use a folder made for it).
        self.root.chmod(0o755)
        (self.root / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        (self.root / "dovecot.conf").write_text(CONFIG.format(root=self.root, port=self.port))
        subprocess.run(["chown", "-R", "dovecot:dovecot", str(self.root / "mail")], check=True)
        # Dovecot daemonizes; its children would hold captured pipes open forever.
        subprocess.run(
            [DOVECOT, "-c", str(self.root / "dovecot.conf")],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_listening()
        return self

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start; log: {self.log()}")

    def pid(self) -> int | None:
        try:
            return int((self.root / "run" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 20) -> None:
        pid = self.pid()
        if pid is None:
            return
        listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        children = [int(c) for c in listed if c.isdigit()]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # Session processes can outlive the master; a real restart (systemd) kills them all.
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password
        path = self.root / "users"
        path.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        # Dovecot re-reads passwd-file when its mtime changes; two writes within one second
        # would look unchanged, so give every version its own whole-second mtime.
        self._users_version = getattr(self, "_users_version", int(time.time())) + 1
        os.utime(path, (self._users_version, self._users_version))

    def log(self) -> str:
        try:
            return (self.root / "log" / "dovecot.log").read_text()[-3000:]
        except OSError:
            return ""

    def client(self, user: str):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def new_user(self, name: str) -> tuple[str, str]:
        """A fresh mailbox for one test, from users created before the server started
        (Dovecot does not reliably notice a passwd-file rewritten within a second)."""
        user = f"{name}@ourco.example"
        if user not in self.users:
            raise KeyError(f"{user}: add {name!r} to POOL in tests/support/servers/dovecot.py")
        return user, self.users[user]

    def deliver_files(self, user: str, folder: str, messages: dict[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        """Drop messages straight into the user's Maildir (much faster than APPEND for bulk).
        ``messages`` may be a generator, so a large set never sits in memory at once."""
        base = self.root / "mail" / user / "Maildir"
        target = base if folder == "INBOX" else base / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
        for name, raw in messages.items() if isinstance(messages, dict) else messages:
            (target / "cur" / f"{name}:2,").write_bytes(raw)
        subprocess.run(["chown", "-R", "dovecot:dovecot", str(self.root / "mail")], check=True)
