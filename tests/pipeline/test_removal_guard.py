"""A source that suddenly reads empty or shrinks a lot is suspect: removals wait for an admin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.helpers import make_message, run_syncd, write_config, write_maildir
from support.servers.imap_standin import ImapStandin, Quirks, StandinMailbox, message, utc

CONFIG = """
[service]
state_dir = "state"
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "alice-mail"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
"""


def status(root: Path) -> dict:
    return json.loads(run_syncd("status", "--json", "-c", str(root / "syncd.toml")).stdout)


def test_small_deletions_apply_but_an_emptied_mailbox_is_held_until_confirmed(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n) for n in range(20)})
    config = str(write_config(tmp_path / "syncd.toml", CONFIG))
    assert run_syncd("sync", "--once", "-c", config).returncode == 0
    assert status(tmp_path)["activities"] == 20

    for n in (0, 1):
        (tmp_path / "mail" / "new" / f"{1000 + n}.M{n}.h").unlink()
    assert run_syncd("sync", "--once", "-c", config).returncode == 0
    assert status(tmp_path)["activities"] == 18

    shutil.rmtree(tmp_path / "mail")
    write_maildir(tmp_path / "mail", {})  # e.g. a wrong mount: the folder is there, the mail is not
    result = run_syncd("sync", "--once", "-c", config)
    assert "SUSPECT: source reads as empty but 18 items are stored" in result.stdout
    current = status(tmp_path)
    assert current["activities"] == 18
    assert "reads as empty" in current["sources"][0]["suspect"]
    suspect_status = run_syncd("status", "-c", config)
    assert "SUSPECT" in suspect_status.stdout and suspect_status.returncode == 1

    result = run_syncd("sync", "--once", "--confirm-removals", "alice-mail", "-c", config)
    assert result.returncode == 0, result.stderr
    current = status(tmp_path)
    assert current["activities"] == 0 and current["sources"][0]["suspect"] is None


def test_missing_maildir_fails_the_source_and_keeps_its_activities(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n) for n in range(3)})
    config = str(write_config(tmp_path / "syncd.toml", CONFIG))
    assert run_syncd("sync", "--once", "-c", config).returncode == 0
    shutil.rmtree(tmp_path / "mail")
    result = run_syncd("sync", "--once", "-c", config)
    assert result.returncode == 1 and "FAILED" in result.stdout
    current = status(tmp_path)
    assert current["activities"] == 3
    assert "not a Maildir" in current["sources"][0]["error"]
    assert current["sources"][0]["next_retry"] and current["sources"][0]["consecutive_failures"] == 1
    # A fresh failure is not yet an alert; one older than the threshold is.
    assert run_syncd("status", "-c", config).returncode == 0
    alerting = run_syncd("status", "--alert-after", "0", "-c", config)
    assert alerting.returncode == 1 and "ATTENTION alice-mail: failing for 0 min" in alerting.stdout


@pytest.mark.parametrize("old_mail", [0, 5])
def test_uidvalidity_change_with_a_misbehaving_search_is_held_not_applied(tmp_path: Path, old_mail: int) -> None:
    """Captured on a real server: after UIDVALIDITY changed, its UID SEARCH returned only part of
    the folder and a pass removed 65 of 170 activities; the connector called its listing
    incomplete and the guard let it through. Now the guard weighs what the store would lose,
    and no cursor moves past a held listing (old mail before the window included)."""
    box = StandinMailbox()
    inbox = box.folder("INBOX")
    for n in range(1000, 1000 + old_mail):
        inbox.append(message(n, date_header=utc(2024, 1, 5)), utc(2024, 1, 5))
    for n in range(170):
        inbox.append(message(n, date_header=utc(2026, 11, 1)), utc(2026, 11, 1))
    password = tmp_path / "password"
    password.write_text("pw")
    password.chmod(0o600)
    with ImapStandin(box) as server:
        config = str(
            write_config(
                tmp_path / "syncd.toml",
                f"""
[service]
state_dir = "state"
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "alice-imap"
kind = "imap"
host = "127.0.0.1"
port = {server.port}
tls = "none"
username = "alice"
owner = "alice@ourco.example"
idle = false
password_secret = {{ file = "{password}" }}
""",
            )
        )
        first = run_syncd("sync", "--once", "-c", config)
        assert first.returncode == 0, first.stdout + first.stderr
        assert status(tmp_path)["activities"] == 170

        inbox.recreate()
        box.quirks = Quirks(search_returns_at_most=105)
        second = run_syncd("sync", "--once", "-c", config)
        lost = 65 + old_mail
        assert f"SUSPECT: {lost} of 170 items ({lost / 170:.0%}) would be removed; removals held" in second.stdout, (
            second.stdout
        )
        current = status(tmp_path)
        assert current["activities"] == 170
        assert f"{lost} of 170" in current["sources"][0]["suspect"]

        box.quirks = Quirks()  # the server behaves again: everything is re-read, nothing is lost
        third = run_syncd("sync", "--once", "-c", config)
        assert third.returncode == 0, third.stdout
        current = status(tmp_path)
        assert current["activities"] == 170 and current["sources"][0]["suspect"] is None


def test_a_source_notice_shows_in_status_without_failing_it(tmp_path: Path) -> None:
    """What a live watcher says (IDLE notifications arrive late) is advice: shown, exit code 0."""
    from syncd.store import Store

    write_maildir(tmp_path / "mail", {"1.M1.h": make_message(1)})
    config = str(write_config(tmp_path / "syncd.toml", CONFIG))
    assert run_syncd("sync", "--once", "-c", config).returncode == 0
    store = Store.open(f"sqlite:///{tmp_path / 'state' / 'syncd.db'}")
    try:
        store.sources.set_notice("alice-mail", "IDLE notifications arrive about 61 s after delivery")
    finally:
        store.close()
    shown = run_syncd("status", "-c", config)
    assert shown.returncode == 0, shown.stdout
    assert "NOTICE: IDLE notifications arrive about 61 s after delivery" in shown.stdout
    assert status(tmp_path)["sources"][0]["notice"].startswith("IDLE notifications arrive")
