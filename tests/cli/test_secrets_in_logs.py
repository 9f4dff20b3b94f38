"""Secrets and message bodies never reach the logs, even at debug level."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.environment import PG_URL
from support.environment import pg_problem as _pg_problem
from support.helpers import make_message, run_syncd, write_config, write_maildir

PASSWORD = "Pw-LEAKCHECK-7f3a9c"
BODY = "BODY-LEAKCHECK-51e2 confidential pricing for the customer"


def test_full_run_logs_contain_no_secret_and_no_body(tmp_path: Path) -> None:
    if _pg_problem():
        message = f"PostgreSQL not reachable at {PG_URL}; set SYNCD_TEST_PG_URL"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    schema = f"leak_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(PG_URL).set(password=PASSWORD).render_as_string(hide_password=False)
    url += f"{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    secret = tmp_path / "db-url"
    secret.write_text(url)
    os.chmod(secret, 0o600)
    write_maildir(tmp_path / "mail", {f"{1000 + n}.M{n}.h": make_message(n, body=BODY) for n in range(5)})
    write_maildir(tmp_path / "bad", {"1.M1.h": b"\x00 not mail " + BODY.encode()})
    config = write_config(
        tmp_path / "syncd.toml",
        """
[service]
state_dir = "state"
[store.url_secret]
file = "db-url"
[timeline]
path = "timeline.xlsx"
[[sources]]
name = "alice"
kind = "maildir"
path = "mail"
owner = "alice@ourco.example"
[[sources]]
name = "broken"
kind = "maildir"
path = "bad"
owner = "alice@ourco.example"
[[sources]]
name = "missing"
kind = "maildir"
path = "no-such-maildir"
owner = "alice@ourco.example"
""",
    )
    outputs = []
    try:
        for fmt in ("text", "json"):
            env_args = ("--debug",)
            os.environ["SYNCD_LOG_FORMAT"] = fmt
            try:
                for command in (("sync", "--once"), ("status",), ("quarantine",), ("check-config",)):
                    result = run_syncd(*env_args, *command, "-c", str(config))
                    outputs.append(result.stdout + result.stderr)
            finally:
                del os.environ["SYNCD_LOG_FORMAT"]
        # A store that cannot be reached must not print its password either.
        unreachable = tmp_path / "unreachable-url"
        unreachable.write_text(f"postgresql+psycopg://syncd:{PASSWORD}@127.0.0.1:1/none")
        os.chmod(unreachable, 0o600)
        bad = write_config(
            tmp_path / "bad.toml", config.read_text().replace('file = "db-url"', 'file = "unreachable-url"')
        )
        result = run_syncd("--debug", "status", "-c", str(bad))
        assert result.returncode == 3
        outputs.append(result.stdout + result.stderr)
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    logs = "\n".join(outputs)
    assert "level=debug" in logs or '"level": "debug"' in logs or "level=info" in logs
    assert "source=alice" in logs and "new=5" in logs  # the run did happen and was logged
    assert PASSWORD not in logs
    assert "BODY-LEAKCHECK" not in logs
