"""Faults of mail servers under `syncd run`: a restart under IDLE, a server that never answers.

Real Dovecot, loopback only. The figures the closing note quotes come from these tests'
measurements (printed with ``-s``): how late the mail arrived, and the daemon's CPU.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.daemon import Daemon
from support.helpers import make_message, wait_for, write_config
from support.servers.dovecot import free_port

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _imap(dovecot, name: str, user: str, root: Path, idle: bool = True, **extra: object) -> str:  # type: ignore[no-untyped-def]
    secret = root / f"{name}.pw"
    secret.write_text(dovecot.users.get(user, "x"))
    secret.chmod(0o600)
    lines = [
        f'name = "{name}"',
        'kind = "imap"',
        f'host = "{extra.pop("host", dovecot.host)}"',
        f"port = {extra.pop('port', dovecot.port)}",
        'tls = "none"',
        f'username = "{user}"',
        f'owner = "{user}"',
        f"idle = {str(idle).lower()}",
        f'password_secret = {{ file = "{secret}" }}',
    ]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "[[sources]]\n" + "\n".join(lines) + "\n"


def _config(root: Path, *sources: str) -> Path:
    return write_config(
        root / "syncd.toml",
        '[service]\nstate_dir = "state"\ninterval_seconds = 3600\n'
        'timezone = "UTC"\n[matching]\ninternal_domains = ["ourco.example"]\n'
        '[timeline]\npath = "timeline.xlsx"\nmin_interval_seconds = 0\n' + "".join(sources),
    )


def _stored(root: Path) -> set[str]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text("select subject from activities where gone_at is null")).scalars())
    except sa.exc.OperationalError:
        return set()
    finally:
        engine.dispose()


def _in_workbook(root: Path) -> set[str]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(root / "timeline.xlsx", read_only=True)
    except Exception:  # noqa: BLE001 - not written yet, or being replaced
        return set()
    try:
        return {str(row[4]) for row in book["Timeline"].iter_rows(min_row=2, values_only=True) if len(row) > 4}
    finally:
        book.close()


def _mail(n: int, user: str, subject: str) -> bytes:
    return make_message(
        n, sender=f"buyer@customer{n}.example", to=user, subject=subject, msgid=f"{subject}.{user}", when=NOW
    )


@pytest.mark.slow
def test_idle_comes_back_after_a_dovecot_restart_and_the_daemon_stays_idle(dovecot, tmp_path: Path) -> None:
    user, _ = dovecot.new_user("survivor")
    client = dovecot.client(user)
    client.append("INBOX", _mail(1, user, "Before the restart"), msg_time=NOW)
    client.logout()
    daemon = Daemon(tmp_path, _config(tmp_path, _imap(dovecot, "mail", user, tmp_path)))
    try:
        wait_for(lambda: "Before the restart" in _stored(tmp_path), timeout=60, what="first pass")
        wait_for(lambda: "idle established" in daemon.log(), timeout=30, what="IDLE")
        cpu_before, wall_before = daemon.cpu_seconds(), time.monotonic()
        dovecot.stop()
        wait_for(lambda: "idle connection lost" in daemon.log(), timeout=30, what="the watcher noticing")
        time.sleep(10)  # the outage itself: the server stays down while the watcher retries
        dovecot.start()
        client = dovecot.client(user)
        appended = time.monotonic()
        client.append("INBOX", _mail(2, user, "After the restart"), msg_time=NOW)
        client.logout()
        wait_for(
            lambda: "After the restart" in _stored(tmp_path),
            timeout=15,
            interval=0.1,
            what="mail appended after the restart in the store",
        )
        late = time.monotonic() - appended
        cpu = (daemon.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        print(f"idle_restart: mail_in_store_after_s={late:.1f} daemon_cpu_share={cpu:.3f}")
        assert cpu < 0.05, f"the daemon used {cpu:.0%} of a core through the restart (a watcher spinning?)"
        assert "idle re-established" in daemon.log()
        assert daemon.alive()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()[-3000:]


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="black-hole").start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(connection)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    server = BlackHole()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_server_that_never_answers_never_delays_the_healthy_mailbox(
    dovecot, black_hole: BlackHole, tmp_path: Path
) -> None:
    user, _ = dovecot.new_user("steady")
    client = dovecot.client(user)
    client.append("INBOX", _mail(1, user, "Hello 1"), msg_time=NOW)
    config = _config(
        tmp_path,
        _imap(dovecot, "silent", "nobody@ourco.example", tmp_path, idle=False, host="127.0.0.1", port=black_hole.port),
        _imap(dovecot, "mail", user, tmp_path),
    )
    daemon = Daemon(tmp_path, config)
    lateness = []
    try:
        wait_for(lambda: "Hello 1" in _in_workbook(tmp_path), timeout=30, what="first mail in the workbook")
        wait_for(lambda: "idle established" in daemon.log(), timeout=30, what="IDLE")
        for n in range(2, 6):  # new mail throughout, while the silent server holds its connections
            appended = time.monotonic()
            client.append("INBOX", _mail(n, user, f"Hello {n}"), msg_time=NOW)
            wait_for(
                lambda n=n: f"Hello {n}" in _in_workbook(tmp_path),
                timeout=10,
                interval=0.1,
                what=f"mail {n} in the timeline workbook",
            )
            lateness.append(time.monotonic() - appended)
            time.sleep(2)  # spread the mail over the silent server's whole connect-and-retry cycle
        assert black_hole.held, "the silent source never even connected"
        print(f"black_hole: worst_s={max(lateness):.1f} lateness_s={','.join(f'{x:.1f}' for x in lateness)}")
        assert daemon.alive()
    finally:
        client.logout()
        code = daemon.stop()
    assert code == 0, daemon.log()[-3000:]
