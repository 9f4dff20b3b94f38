"""A throwaway Cyrus IMAP 3.6 for the IMAP tests: own config, users and mail under a temp folder.

Listens on 127.0.0.1 on a free high port, plain text (loopback only), and is stopped by the
test session. Debian's cyrus-imapd conflicts with dovecot-imapd, so it is not installed:
scripts/cyrus-setup installs the parts that do not conflict (cyrus-common: ``master`` and the
tools; sasl2-bin: ``saslpasswd2``) and unpacks the cyrus-imapd package (``imapd``, ``idled``)
into .cache/cyrus/ in the repo. Needs root, because master drops privileges to the cyrus user.

Users are plain names (``alice``, no domain: ``virtdomains: off``), checked against a sasldb
file of the server's own (no saslauthd). Each user's INBOX, Sent and Trash are created (and
subscribed) by the server at the user's first login; Sent and Trash are listed with the
special-use flags spelled ``\\sent`` and ``\\trash`` (lower case; flags are case-insensitive).
``start()`` logs every POOL user in once, so their folders exist before any test. Folders are
named as a client sees them with ``altnamespace: yes`` and ``unixhierarchysep: yes``:
``INBOX``, ``Sent``, ``Trash``, separator ``/``. Cyrus logs only to syslog (there is none
here): when it fails, look at ``log()``, master's own output.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.servers.dovecot import POOL, free_port

REPO = Path(__file__).resolve().parents[3]
# cyrus-common's master (and the tools master starts by relative name, such as ctl_cyrusdb).
MASTER = "/usr/lib/cyrus/bin/master"
SASLPASSWD2 = shutil.which("saslpasswd2") or "/usr/sbin/saslpasswd2"
CYRUS_USER = "cyrus"
CYRUS_GROUP = "mail"
SERVERNAME = "cyrus.test"  # also the SASL realm that the users are stored under
ADMIN = ("cyrusadmin", "pw-cyrusadmin")


def unpacked_bin() -> Path | None:
    """The unpacked cyrus-imapd's binary folder (scripts/cyrus-setup keeps only the build that
    matches the installed cyrus-common)."""
    trees = sorted((REPO / ".cache" / "cyrus").glob("cyrus-imapd_*/.unpacked"), reverse=True)
    for marker in trees:
        folder = marker.parent / "usr" / "lib" / "cyrus" / "bin"
        if (folder / "imapd").exists():
            return folder
    return None


IMAPD_CONF = """\
configdirectory: {root}/conf
defaultpartition: default
partition-default: {root}/spool
proc_path: {root}/run/proc
mboxname_lockpath: {root}/run/lock
idlesocket: {root}/conf/socket/idle
notifysocket: {root}/conf/socket/notify
lmtpsocket: {root}/conf/socket/lmtp
servername: {servername}
admins: {admin}
virtdomains: off
altnamespace: yes
unixhierarchysep: yes
allowplaintext: yes
allowanonymouslogin: no
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
sasl_mech_list: PLAIN LOGIN
sasl_auto_transition: no
autocreate_quota: 0
autocreate_inbox_folders: Sent | Trash
autocreate_subscribe_folders: Sent | Trash
xlist-sent: Sent
xlist-trash: Trash
specialusealways: yes
hashimapspool: no
imapidlepoll: 1
umask: 077
syslog_prefix: syncd-test-cyrus
"""

# No TLS, no POP3, no LMTP (the tests put mail in with APPEND). idled wakes IDLE at once;
# without it imapd polls every imapidlepoll.
# master does not hand its -C to the processes it starts: each gets it here, or it would
# use the system's /etc/imapd.conf.
CYRUS_CONF = """\
START {{
  recover cmd="ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap cmd="{bin}/imapd -C {conf}" listen="127.0.0.1:{port}" prefork=0 maxchild=200
}}
DAEMON {{
  idled cmd="{bin}/idled -C {conf}"
}}
EVENTS {{
}}
"""


# The same mailboxes as Dovecot's, one per test, created with the server.


@dataclass
class Cyrus:
    root: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Cyrus:
        unpacked = unpacked_bin()
        if unpacked is None:
            raise RuntimeError("cyrus-imapd is not unpacked; run scripts/cyrus-setup")
        for name in POOL:
            self.users.setdefault(name, f"pw-{name}")
        if not self.port:
            self.port = free_port()
        # conf/socket: idled listens there, and each imapd binds its own idle.PID beside it
        # (whatever idlesocket says); without the folder IDLE falls back to polling.
        for sub in ("conf/socket", "spool", "run/proc", "run/lock", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # master runs as the cyrus user and must reach all of this (pytest's tmp folders are
        # 0700 under a 0700 parent, so use a folder made for it).
        self.root.chmod(0o755)
        # The cyrus user runs imapd and idled: copies here do not depend on the checkout's
        # folders being open to it (they are small).
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        for program in ("imapd", "idled"):
            shutil.copy2(unpacked / program, bin_dir / program)
        (self.root / "imapd.conf").write_text(IMAPD_CONF.format(root=self.root, servername=SERVERNAME, admin=ADMIN[0]))
        (self.root / "cyrus.conf").write_text(
            CYRUS_CONF.format(bin=bin_dir, port=self.port, conf=self.root / "imapd.conf")
        )
        first_start = not (self.root / "sasldb2").exists()
        self._saslpasswd(*ADMIN)
        for user, password in self.users.items():
            self._saslpasswd(user, password)
        subprocess.run(["chown", "-R", f"{CYRUS_USER}:{CYRUS_GROUP}", str(self.root)], check=True)
        log = open(self.root / "log" / "master.log", "ab")  # noqa: SIM115 - owned by the process
        # Foreground master in a session of its own: stop() ends the whole group, so no imapd
        # outlives it. Its output goes to the log file (Cyrus itself logs to syslog only).
        self.process = subprocess.Popen(
            [
                MASTER,
                "-C",
                str(self.root / "imapd.conf"),
                "-M",
                str(self.root / "cyrus.conf"),
                "-p",
                str(self.root / "run" / "master.pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_listening()
        if first_start:
            # The first login makes INBOX, Sent and Trash; do it now rather than in a test.
            for user in self.users:
                self.client(user).logout()
        return self

    def _saslpasswd(self, user: str, password: str) -> None:
        path = self.root / "sasldb2"
        subprocess.run(
            [SASLPASSWD2, "-p", "-c", "-f", str(path), "-u", SERVERNAME, user],
            input=password.encode(),
            check=True,
            capture_output=True,
        )
        # saslpasswd2 leaves a new file root-owned and 0640: the cyrus user must read it.
        if os.geteuid() == 0:
            shutil.chown(path, CYRUS_USER, CYRUS_GROUP)

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"cyrus did not start; master's output: {self.log()}")

    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def stop(self, timeout: float = 20) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        # master "kills itself and all child processes when it receives a SIGTERM"; what is
        # left of its process group after that (or after the timeout) is killed outright.
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._group_alive(process.pid):
            time.sleep(0.05)
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def restart(self) -> None:
        self.stop()
        self.start()

    def add_user(self, user: str, password: str) -> None:
        """A new login; Cyrus reads the sasldb at every login, so it works at once."""
        self.users[user] = password
        self._saslpasswd(user, password)

    def log(self) -> str:
        try:
            return (self.root / "log" / "master.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def client(self, user: str):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def admin_client(self):  # type: ignore[no-untyped-def]
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(*ADMIN)
        return client

    def new_user(self, name: str) -> tuple[str, str]:
        """A fresh mailbox for one test: a POOL user (INBOX, Sent and Trash made at start),
        or, for another name, a login added now whose folders Cyrus makes at its first login."""
        if name not in self.users:
            self.add_user(name, f"pw-{name}")
        return name, self.users[name]
