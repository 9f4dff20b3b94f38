"""sd_notify over a real AF_UNIX datagram socket, path and abstract."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from syncd.notify import SystemdNotifier


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = SystemdNotifier(
            {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        )
        assert notifier.watchdog_seconds == 2.0
        notifier.ready("ready; sources: a")
        notifier.watchdog()
        notifier.stopping()
        messages = [server.recv(4096).decode() for _ in range(3)]
    assert messages[0].splitlines()[:2] == ["READY=1", "STATUS=ready; sources: a"]
    assert messages[1:] == ["WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_and_silence_without_systemd() -> None:
    name = f"syncd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(5)
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        assert server.recv(4096) == b"STATUS=hello"
    quiet = SystemdNotifier({})
    assert not quiet.enabled and quiet.watchdog_seconds is None
    quiet.ready("nobody listens")  # must not raise


def test_watchdog_for_another_pid_is_ignored() -> None:
    assert (
        SystemdNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
    )
