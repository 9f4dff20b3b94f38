"""The command line: exit codes, one broken source among good ones, the service loop, body policy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir

TWO_SOURCES = """
[service]
state_dir = "state"
interval_seconds = 5
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
email = "Email"
person = "Name"
[[sources]]
name = "alice-mail"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
"""


def test_help_documents_exit_codes() -> None:
    result = run_syncd("--help")
    assert result.returncode == 0
    for line in (
        "0    success",
        "1    a source or an output failed",
        "2    the config is invalid",
        "3    the store cannot be opened or is unavailable",
        "4    nothing found",
        "70   an unexpected error",
        "141  the output pipe was closed early",
    ):
        assert line in result.stdout


def test_a_broken_source_fails_alone_and_the_others_still_sync(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n) for n in range(4)})
    (tmp_path / "customers.xlsx").write_bytes(b"PK\x03\x04 a workbook cut off mid-copy")
    config = str(write_config(tmp_path / "syncd.toml", TWO_SOURCES))
    result = run_syncd("sync", "--once", "-c", config)
    assert result.returncode == 1
    status = json.loads(run_syncd("status", "--json", "-c", config).stdout)
    by_name = {s["name"]: s for s in status["sources"]}
    assert "not a complete workbook" in by_name["customers"]["error"]
    assert by_name["alice-mail"]["error"] is None and by_name["alice-mail"]["ingested"] == 4
    assert (tmp_path / "timeline.xlsx").exists()


def test_unknown_source_name_and_unreachable_store_have_their_exit_codes(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {})
    config = write_config(tmp_path / "syncd.toml", TWO_SOURCES)
    assert run_syncd("sync", "--once", "--source", "nope", "-c", str(config)).returncode == 2
    bad_store = write_config(
        tmp_path / "bad.toml",
        TWO_SOURCES.replace("[timeline]", '[store]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n[timeline]'),
    )
    result = run_syncd("status", "-c", str(bad_store))
    assert result.returncode == 3 and "cannot open store" in result.stderr


def test_run_syncs_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n) for n in range(3)})
    config = write_config(
        tmp_path / "syncd.toml",
        TWO_SOURCES.replace(
            """[[sources]]
name = "customers"
kind = "excel_customers"
path = "customers.xlsx"
[sources.columns]
email = "Email"
person = "Name"
""",
            "",
        ),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (tmp_path / "timeline.xlsx").exists(), timeout=60, what="first pass")
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "level=info logger=syncd.service stopped" in err


def test_bodies_are_kept_only_when_the_config_asks(tmp_path: Path) -> None:
    body = "The whole body of the message, which is private by default."
    write_maildir(tmp_path / "mail", {"1000.M1.h": make_message(1, body=body)})
    plain = TWO_SOURCES.split("[[sources]]")[0] + "[[sources]]" + TWO_SOURCES.split("[[sources]]")[2]
    for keep, expected in ((False, None), (True, body)):
        state = "keep" if keep else "default"
        text = plain.replace('state_dir = "state"', f'state_dir = "{state}"').replace(
            "[timeline]", f"[store]\nkeep_bodies = {str(keep).lower()}\n[timeline]"
        )
        config = write_config(tmp_path / f"{state}.toml", text)
        assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
        with sa.create_engine(f"sqlite:///{tmp_path / state / 'syncd.db'}").connect() as c:
            stored_body, snippet = c.execute(sa.text("select body, snippet from activities")).one()
        assert (stored_body.strip() if stored_body else None) == expected
        assert snippet.startswith("The whole body")


def test_explain_names_the_rule_and_evidence_of_each_link_and_the_rules_that_failed(tmp_path: Path) -> None:
    import openpyxl

    from support.views import activity as made_activity
    from syncd.outputs.view import activity_ref

    book = openpyxl.Workbook()
    book.active.append(["Name", "Email"])
    book.active.append(["Ivana Horvat", "ivana@adriaticfoods.hr"])
    book.save(tmp_path / "customers.xlsx")
    write_maildir(
        tmp_path / "mail",
        {
            "1.M1.h": make_message(1, sender="ivana@adriaticfoods.hr", cc="someone@gmail.com", msgid="linked@x"),
            "2.M2.h": make_message(2, sender="nobody@unknown-firm.example", msgid="unlinked@x"),
        },
    )
    config = str(
        write_config(tmp_path / "syncd.toml", TWO_SOURCES + '[matching]\ninternal_domains = ["ourco.example"]\n')
    )
    assert run_syncd("sync", "--once", "-c", config).returncode == 0
    ref = activity_ref(made_activity("x", [], message_id="linked@x"))
    explained = run_syncd("explain", ref, "-c", config)
    assert explained.returncode == 0, explained.stderr
    assert "Ivana Horvat: rule email (1.00)" in explained.stdout
    assert "ivana@adriaticfoods.hr: rule email matched" in explained.stdout
    assert "someone@gmail.com: rule domain skipped: gmail.com is a free-mail" in explained.stdout
    assert "alice@ourco.example: internal" in explained.stdout
    unlinked = run_syncd("explain", "<unlinked@x>", "-c", config)
    assert "linked: none" in unlinked.stdout
    assert "rule domain failed: no company has unknown-firm.example" in unlinked.stdout
    missing = run_syncd("explain", "A000000000", "-c", config)
    assert missing.returncode == 4 and "no activity" in missing.stderr


def test_help_lists_the_privacy_commands_and_their_exit_codes() -> None:
    from support.helpers import run_syncd

    shown = run_syncd("--help").stdout
    for command in ("export", "forget", "audit"):
        assert f"\n    {command} " in shown, command
    assert "4    nothing found (timeline: no such customer; export, forget: no such person, or several)" in shown
    assert "without --yes only shows what would go" in " ".join(shown.split())
