"""The Prometheus endpoint shows the status counters; `syncd init` writes a valid starter config."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir
from syncd.config import ConfigError, load_config, parse_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def test_metrics_endpoint_exports_the_status_counters(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n) for n in range(4)})
    port = free_port()
    config = write_config(
        tmp_path / "syncd.toml",
        f"""
[service]
state_dir = "state"
metrics_address = "127.0.0.1:{port}"
[[sources]]
name = "alice"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
""",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        text = wait_for(
            lambda: (t := scrape(port)) and 'syncd_source_ingested{source="alice"} 4.0' in t and t,
            timeout=60,
            what="metrics after the first pass",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    status = json.loads(run_syncd("status", "--json", "-c", str(config)).stdout)
    assert f"syncd_activities {float(status['activities'])}" in text
    assert 'syncd_source_failing{source="alice"} 0.0' in text
    assert "syncd_source_last_success_timestamp_seconds" in text


def test_metrics_only_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        parse_config('[service]\nmetrics_address = "0.0.0.0:9464"\n', tmp_path / "c.toml")
    assert parse_config('[service]\nmetrics_address = "[::1]:9464"\n', tmp_path / "c.toml")


def test_init_writes_a_starter_config_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "syncd.toml"
    result = run_syncd("init", str(target))
    assert result.returncode == 0, result.stderr
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert load_config(target).sources  # parses; paths in it are the admin's to fill in
    check = run_syncd("check-config", "-c", str(target))
    assert check.returncode == 2 and "no such file" in check.stderr
    before = target.read_bytes()
    again = run_syncd("init", str(target))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    assert target.read_bytes() == before
