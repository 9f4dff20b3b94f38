"""The shipped unit file passes `systemd-analyze verify` with no complaint at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support.environment import require_tool

UNIT = Path(__file__).parents[2] / "systemd" / "syncd.service"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def test_unit_verifies_without_any_output(tmp_path: Path) -> None:
    analyze = require_tool(ANALYZE, "systemd-analyze is missing (scripts/test-setup installs systemd)")
    # verify insists that ExecStart exists; point it at this environment's syncd.
    syncd = Path(sys.executable).parent / "syncd"
    if not syncd.exists():
        syncd = Path(shutil.which("syncd") or "/bin/true")
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text().replace("/opt/syncd/venv/bin/syncd", str(syncd)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify exits 0 even for unknown keys; any output at all is a finding.
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr + result.stdout


def test_unit_has_the_service_contract() -> None:
    text = UNIT.read_text()
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=syncd",
        "StateDirectory=syncd",
        "ConfigurationDirectory=syncd",
        "LoadCredential=",
        "ProtectSystem=strict",
        "ProtectHome=",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "ExecReload=",
    ):
        assert directive in text, directive
