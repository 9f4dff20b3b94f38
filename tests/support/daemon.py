"""Running `syncd run` as a child process in tests: started, watched, measured, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Daemon:
    """`syncd run -c CONFIG` in ``root``, its log in ``root/log``."""

    def __init__(self, root: Path, config: Path):
        self.root = root
        self.log_path = root / "log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "-c", str(config)],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon (all its threads) has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode
