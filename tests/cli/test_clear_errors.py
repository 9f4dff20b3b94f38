"""Bad input gets one clear line and a documented exit code, never a traceback or a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.daemon import Daemon
from support.helpers import make_message, run_syncd, wait_for, write_config, write_maildir

MAIL = '[[sources]]\nname = "mail"\nkind = "maildir"\npath = "mail"\nowner = "alice@ourco.example"\n'


def test_an_inline_secret_is_refused_without_being_echoed(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "syncd.toml",
        '[[sources]]\nname = "box"\nkind = "imap"\nhost = "mail.example"\n'
        'username = "u"\npassword_secret = "hunter2-LEAKCHECK"\nowner = "a@ourco.example"\n',
    )
    result = run_syncd("check-config", "-c", str(config))
    assert result.returncode == 2
    assert "password_secret" in result.stderr and "never written inline" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_a_secret_file_others_can_read_fails_the_source_with_the_reason_not_a_traceback(
    dovecot, tmp_path: Path
) -> None:
    user, _ = dovecot.new_user("spare1")
    secret = tmp_path / "pw"
    secret.write_text("s3cret-LEAKCHECK")
    os.chmod(secret, 0o644)
    config = write_config(
        tmp_path / "syncd.toml",
        '[service]\nstate_dir = "state"\n[[sources]]\nname = "box"\n'
        f'kind = "imap"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\nusername = "{user}"\n'
        f'password_secret = {{ file = "{secret}" }}\nowner = "a@ourco.example"\nidle = false\n',
    )
    result = run_syncd("sync", "--once", "-c", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "readable by group or others" in result.stdout and "chmod 600" in result.stdout
    assert "Traceback" not in output and "unexpected error" not in output and "s3cret" not in output


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {f"{n}.M{n}.h": make_message(n, sender="ivana@adriatic.hr") for n in range(40)})
    book_dir = tmp_path
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Company", "Email"])
    book.active.append(["Adriatic", "ivana@adriatic.hr"])
    book.save(book_dir / "customers.xlsx")
    config = write_config(
        tmp_path / "syncd.toml",
        '[service]\nstate_dir = "state"\n[[sources]]\nname = "customers"\n'
        'kind = "excel_customers"\npath = "customers.xlsx"\n[sources.columns]\ncompany = "Company"\n'
        'email = "Email"\n' + MAIL,
    )
    assert run_syncd("sync", "--once", "-c", str(config)).returncode == 0
    pipeline = subprocess.run(
        f"{sys.executable} -m syncd timeline Adriatic -c {config} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert pipeline.stdout.startswith("#") and pipeline.stderr == "", pipeline.stderr
    direct = subprocess.Popen(
        [sys.executable, "-m", "syncd", "timeline", "Adriatic", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert direct.stdout is not None and direct.stderr is not None
    direct.stdout.readline()
    direct.stdout.close()  # the reader goes away after one line
    code = direct.wait(timeout=60)
    errors = direct.stderr.read().decode()
    assert code in (0, 141) and "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_the_service_writes_its_log_as_the_config_says(tmp_path: Path) -> None:
    write_maildir(tmp_path / "mail", {"1.M1.h": make_message(1)})
    for level, expected in (("info", {"info"}), ("warning", set())):
        config = write_config(
            tmp_path / "syncd.toml",
            f'[service]\nstate_dir = "state"\nlog_format = "json"\nlog_level = "{level}"\n' + MAIL,
        )
        daemon = Daemon(tmp_path, config)
        try:
            wait_for(lambda: (tmp_path / "timeline.xlsx").exists(), timeout=60, what="first pass")
        finally:
            code = daemon.stop()
        assert code == 0
        levels = {json.loads(line)["level"] for line in daemon.log().splitlines() if line.strip()}  # all JSON
        assert levels == expected, daemon.log()[-2000:]
        (tmp_path / "timeline.xlsx").unlink()
