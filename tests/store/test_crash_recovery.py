"""A sync killed with SIGKILL mid-way, then run again, ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir

MESSAGES = 3000
CONFIG = """
[service]
state_dir = "state"
batch_size = 50
[matching]
internal_domains = ["ourco.example"]
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "alice-mail"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
"""


def snapshot(root: Path) -> dict[str, object]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
    with engine.connect() as c:
        result = {
            "activities": sorted(c.execute(sa.text("select message_id, subject, occurred_at from activities")).all()),
            "occurrences": sorted(c.execute(sa.text("select item_key, folder from occurrences")).all()),
            "quarantine": sorted(c.execute(sa.text("select item_key, reason from quarantine")).all()),
        }
    engine.dispose()
    return result


def committed(root: Path) -> int:
    try:
        engine = sa.create_engine(f"sqlite:///{root / 'state' / 'syncd.db'}")
        with engine.connect() as c:
            return c.execute(sa.text("select count(*) from occurrences")).scalar_one()
    except sa.exc.OperationalError:
        return 0  # not created yet
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigkill_mid_sync_then_rerun_equals_uninterrupted_run(tmp_path: Path) -> None:
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    messages = {
        f"{1700000000 + n}.M{n}.host": make_message(n, sender=f"c{n % 40}@customer{n % 40}.example")
        for n in range(MESSAGES)
    }
    messages["1800000000.Mbad.host"] = b"\x00 garbage, no headers\r\n"
    for root in (clean, crashed):
        write_maildir(root / "mail", messages)
        write_config(root / "syncd.toml", CONFIG)

    assert run_syncd("sync", "--once", "-c", str(clean / "syncd.toml"), timeout=600).returncode == 0

    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sync", "--once", "-c", str(crashed / "syncd.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        seen = wait_for(lambda: (n := committed(crashed)) >= 300 and n, timeout=120, what="first batches")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    at_kill = committed(crashed)
    assert seen <= at_kill < MESSAGES, "the sync finished before it could be killed; raise MESSAGES"
    assert at_kill % 50 == 0 or at_kill < MESSAGES  # whole batches only

    result = run_syncd("sync", "--once", "-c", str(crashed / "syncd.toml"), timeout=600)
    assert result.returncode == 0, result.stderr
    after, expected = snapshot(crashed), snapshot(clean)
    assert after == expected
    assert len(after["activities"]) == MESSAGES and len(after["quarantine"]) == 1
    shutil.rmtree(tmp_path)
