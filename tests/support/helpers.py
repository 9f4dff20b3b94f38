"""Small builders shared by tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)


def make_message(
    n: int,
    sender: str = "ivana@adriaticfoods.hr",
    to: str = "alice@ourco.example",
    subject: str | None = None,
    msgid: str | None = None,
    cc: str | None = None,
    when: datetime | None = None,
    body: str = "Hello there.",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject or f"Message {n}"
    msg["Date"] = format_datetime(when or BASE_TIME + timedelta(minutes=n))
    msg["Message-ID"] = f"<{msgid or f'm{n}@test.example'}>"
    msg.set_content(body)
    return bytes(msg)


def write_maildir(root: Path, messages: dict[str, bytes], folder: str | None = None) -> Path:
    base = root if folder is None else root / f".{folder}"
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, raw in messages.items():
        (base / "new" / name).write_bytes(raw)
    return root


def run_syncd(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the installed `syncd` in a child process.

    The child runs outside the source tree, so it uses the installed package (and its
    package data, such as the demo sample), as a user's would.
    """
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        cwd=cwd or tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load_bench(name: str) -> Any:
    """A bench script (bench/NAME.py) as a module: its generators serve tests too. The bench
    folder is not on the import path (neither is the repository root, see pyproject.toml)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
