"""Faults of the store and the disk under `syncd run`: PostgreSQL refusing connections, a full disk.

PostgreSQL is the machine's server, reached through a TCP relay on 127.0.0.1 that the test
closes for the outage (every open connection dropped, new ones refused), as a server
restart or a network cut does. The full disk is a small tmpfs (root only; skipped with a
message elsewhere, a failure under CI). Afterwards: exactly the expected activities, no
duplicates, the old workbook intact while it could not be replaced, the same daemon.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.daemon import Daemon
from support.environment import PG_URL, pg_problem
from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir


class Relay:
    """127.0.0.1:PORT -> the PostgreSQL server; ``cut()`` drops and refuses, ``mend()`` listens again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.mend()

    def mend(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="pg-relay").start()

    def cut(self) -> None:
        """Idempotent. ``shutdown`` first: on Linux a bare ``close`` does not wake a thread
        blocked in ``accept``, which then keeps accepting on the closed listener."""
        with self.lock:
            listener, self.listener = self.listener, None
            if listener is not None:
                try:
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                if self.listener is not listener:  # cut while this one was being accepted
                    client.close()
                    return
                server = socket.create_connection(self.target)
                self.connections += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.close()
                except OSError:
                    pass


def _activities(url: str) -> tuple[int, int, int]:
    """(live activities, distinct Message-IDs, occurrences)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(
                connection.execute(
                    sa.text(
                        "select (select count(*) from activities where gone_at is null), "
                        "(select count(distinct message_id) from activities), (select count(*) from occurrences)"
                    )
                ).one()
            )
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return (0, 0, 0)  # not created yet
    finally:
        engine.dispose()


def _deliver(maildir: Path, numbers: range) -> None:
    write_maildir(
        maildir,
        {
            f"{1700000000 + n}.M{n}.host": make_message(
                n, sender=f"buyer{n}@customer.example", to="alice@ourco.example", msgid=f"m{n}@customer.example"
            )
            for n in numbers
        },
    )


def _config(root: Path, store: str | None = None, state: str = "state", timeline: str = "timeline.xlsx") -> Path:
    store_line = f'[store]\nurl = "{store}"\n' if store else ""
    return write_config(
        root / "syncd.toml",
        f'[service]\nstate_dir = "{state}"\ninterval_seconds = 5\n{store_line}'
        f'[timeline]\npath = "{timeline}"\nmin_interval_seconds = 0\n[[sources]]\nname = "mail"\n'
        'kind = "maildir"\npath = "mail"\nowner = "alice@ourco.example"\n',
    )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    problem = pg_problem()
    if problem:
        message = f"PostgreSQL not reachable at {PG_URL} ({problem})"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    schema = f"outage_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_the_daemon_outlives_postgresql_refusing_connections_for_30_seconds(pg_schema: str, tmp_path: Path) -> None:
    url = sa.engine.make_url(PG_URL)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    store = f"{relayed}{'&' if '?' in relayed else '?'}options=-csearch_path%3D{pg_schema}"
    direct = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{pg_schema}"
    _deliver(tmp_path / "mail", range(0, 5))
    daemon = Daemon(tmp_path, _config(tmp_path, store=store))
    try:
        wait_for(lambda: _activities(direct)[0] == 5, timeout=60, what="first pass")
        wait_for(lambda: (tmp_path / "timeline.xlsx").exists(), timeout=30, what="first workbook")
        relay.cut()
        _deliver(tmp_path / "mail", range(5, 10))  # mail arriving during the outage
        status = run_syncd("status", "-c", str(tmp_path / "syncd.toml"))
        assert status.returncode == 3 and "store" in status.stderr, status.stdout + status.stderr
        wait_for(lambda: "store unavailable" in daemon.log(), timeout=30, what="the outage noticed")
        time.sleep(30)  # the outage itself
        assert daemon.alive(), daemon.log()[-3000:]
        assert _activities(direct)[0] == 5
        relay.mend()
        wait_for(lambda: _activities(direct)[0] == 10, timeout=60, what="the mail of the outage stored")
        wait_for(lambda: "store available again" in daemon.log(), timeout=30, what="the recovery logged")
        live, distinct, occurrences = _activities(direct)
        assert (live, distinct, occurrences) == (10, 10, 10)
        assert daemon.alive()
        assert run_syncd("status", "-c", str(tmp_path / "syncd.toml")).returncode == 0
    finally:
        code = daemon.stop()
        relay.cut()
    assert code == 0, daemon.log()[-3000:]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of our own (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        message = "the full-disk test mounts a tmpfs and needs root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs here: {done.stderr.strip()}"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_a_full_disk_under_the_timeline_and_the_store_is_outlived(small_disk: Path, tmp_path: Path) -> None:
    _deliver(tmp_path / "mail", range(0, 3))
    config = _config(tmp_path, state=str(small_disk / "state"), timeline=str(small_disk / "timeline.xlsx"))
    daemon = Daemon(tmp_path, config)
    url = f"sqlite:///{small_disk / 'state' / 'syncd.db'}"
    workbook = small_disk / "timeline.xlsx"
    try:
        wait_for(lambda: _activities(url)[0] == 3 and workbook.exists(), timeout=60, what="first pass")
        before = _digest(workbook)
        filler = _fill(small_disk)
        _deliver(tmp_path / "mail", range(3, 8))  # the mail reaches a full disk
        wait_for(
            lambda: "disk is full" in daemon.log() or "No space left" in daemon.log(),
            timeout=60,
            what="the full disk noticed",
        )
        assert _digest(workbook) == before  # the old workbook, intact
        assert not list(small_disk.glob(".timeline.xlsx.*"))  # no half-written temporary left behind
        once = run_syncd("sync", "--once", "-c", str(config))
        assert once.returncode != 0, once.stdout + once.stderr  # sync --once says so
        assert daemon.alive()
        filler.unlink()  # space again
        wait_for(lambda: _activities(url)[0] == 8, timeout=60, what="the mail stored once there is space")
        wait_for(lambda: _digest(workbook) != before, timeout=60, what="the workbook written again")
        assert _activities(url) == (8, 8, 8)
        assert daemon.alive()
        status = run_syncd("status", "-c", str(config))
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()[-3000:]


@pytest.mark.slow
def test_a_full_disk_under_the_timeline_only_is_shown_by_status_and_sync_once(small_disk: Path, tmp_path: Path) -> None:
    _deliver(tmp_path / "mail", range(0, 3))
    config = _config(tmp_path, timeline=str(small_disk / "timeline.xlsx"))
    first = run_syncd("sync", "--once", "-c", str(config))
    assert first.returncode == 0, first.stdout + first.stderr
    before = _digest(small_disk / "timeline.xlsx")
    filler = _fill(small_disk)
    _deliver(tmp_path / "mail", range(3, 6))
    failed = run_syncd("sync", "--once", "-c", str(config))
    assert failed.returncode == 1 and "timeline: NOT WRITTEN" in failed.stdout, failed.stdout + failed.stderr
    assert _digest(small_disk / "timeline.xlsx") == before
    status = run_syncd("status", "-c", str(config))
    assert status.returncode == 1 and "ATTENTION" in status.stdout and "not written since" in status.stdout
    filler.unlink()
    again = run_syncd("sync", "--once", "-c", str(config))
    assert again.returncode == 0 and "(written)" in again.stdout, again.stdout + again.stderr
    assert run_syncd("status", "-c", str(config)).returncode == 0
