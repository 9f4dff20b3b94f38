"""What the servers the tests run as a child process share: waiting for the port, stopping, the log."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


class ChildServer:
    """A server run as ``self.process``, listening on ``self.host:self.port``, logging to ``log_file``."""

    root: Path
    host: str
    port: int
    process: subprocess.Popen[bytes] | None
    log_file = "server.log"

    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{type(self).__name__} did not start; log: {self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        self.process = None

    def log(self) -> str:
        try:
            return (self.root / self.log_file).read_text()[-3000:]
        except OSError:
            return ""
