"""`syncd run` under a notify socket the test owns: READY, WATCHDOG, reloads, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from support.helpers import make_message, wait_for, write_config, write_maildir

BASE = """
[service]
state_dir = "state"
interval_seconds = 3600
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "alice"
kind = "maildir"
path = "alice"
owner = "alice@ourco.example"
"""
WITH_BOB = (
    BASE
    + """
[[sources]]
name = "bob"
kind = "maildir"
path = "bob"
owner = "bob@ourco.example"
"""
)
BROKEN = BASE.replace("interval_seconds = 3600", "interval_secondz = 3600")


class NotifyListener:
    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def count(self, line: str) -> int:
        return sum(line in m.splitlines() for m in list(self.messages))

    def close(self) -> None:
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()


def stored(root: Path, source: str) -> int:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    try:
        with engine.connect() as c:
            return c.execute(
                sa.text("select count(*) from occurrences o join sources s on s.id = o.source_id where s.name = :n"),
                {"n": source},
            ).scalar_one()
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def test_service_lifecycle_under_systemd_notify(tmp_path: Path) -> None:
    write_maildir(tmp_path / "alice", {f"{1000 + n}.M{n}.a": make_message(n) for n in range(3)})
    write_maildir(
        tmp_path / "bob", {f"{2000 + n}.M{n}.b": make_message(100 + n, to="bob@ourco.example") for n in range(2)}
    )
    config = write_config(tmp_path / "syncd.toml", BASE)
    listener = NotifyListener(tmp_path / "notify.sock")
    log_path = tmp_path / "service.log"
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="1000000")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "-c", str(config)], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:
        wait_for(lambda: listener.count("READY=1"), timeout=60, what="READY=1")
        wait_for(lambda: stored(tmp_path, "alice") == 3, timeout=60, what="first pass")
        wait_for(
            lambda: any(m.startswith("STATUS=3 activities") for m in listener.messages),
            timeout=30,
            what="STATUS after the pass",
        )
        wait_for(lambda: listener.count("WATCHDOG=1") >= 2, timeout=10, what="watchdog keep-alives")

        # A broken config: rejected with its error logged; the old one keeps running.
        config.write_text(BROKEN)
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reload rejected" in log_path.read_text(), timeout=30, what="rejection logged")
        assert "service.interval_secondz: unknown key" in log_path.read_text()
        pings = listener.count("WATCHDOG=1")
        wait_for(lambda: listener.count("WATCHDOG=1") > pings + 1, timeout=10, what="still alive after rejection")
        assert process.poll() is None

        # A good config with a new source: picked up without a restart.
        config.write_text(WITH_BOB)
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: stored(tmp_path, "bob") == 2, timeout=60, what="new source synced")
        assert "config reloaded sources=2" in log_path.read_text()

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
        listener.close()
    assert process.returncode == 0, log_path.read_text()
    assert listener.count("STOPPING=1") == 1
    assert (stored(tmp_path, "alice"), stored(tmp_path, "bob")) == (3, 2)
    assert "level=info logger=syncd.service stopped" in log_path.read_text()


def test_config_file_change_is_noticed_without_sighup(tmp_path: Path) -> None:
    write_maildir(tmp_path / "alice", {"1000.M1.a": make_message(1)})
    write_maildir(tmp_path / "bob", {"2000.M1.b": make_message(2, to="bob@ourco.example")})
    config = write_config(tmp_path / "syncd.toml", BASE)
    log_path = tmp_path / "service.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "-c", str(config)], cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        wait_for(lambda: stored(tmp_path, "alice") == 1, timeout=60, what="first pass")
        # Replace the file the way editors do: write a new one and rename it over the old.
        (tmp_path / "syncd.toml.new").write_text(WITH_BOB)
        os.replace(tmp_path / "syncd.toml.new", config)
        wait_for(lambda: stored(tmp_path, "bob") == 1, timeout=60, what="reload on file change")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0
