"""A first start killed at any point leaves a store the next start opens (SQLite and PostgreSQL).

A child process creates the store and is killed with SIGKILL right before its N-th SQL
statement (an SQLAlchemy event on every engine: nothing of syncd is patched); then the
store is opened again and must work. On SQLite this used to leave tables without a
schema version that never opened again ("table activities already exists").
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.store import Store, StoreError
from syncd.store.schema import Base

KILLING_CHILD = textwrap.dedent("""
    import os, signal, sys
    import sqlalchemy
    from sqlalchemy import event

    limit, count = int(sys.argv[2]), [0]

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def kill(*_args):
        count[0] += 1
        if count[0] == limit:
            os.kill(os.getpid(), signal.SIGKILL)

    from syncd.store import Store
    Store.open(sys.argv[1]).close()
    print(count[0])
""")


def _first_start(url: str, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", KILLING_CHILD, url, str(kill_at)], capture_output=True, text=True, timeout=120
    )


def _head(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(sa.text("select version_num from alembic_version")).scalar_one())
    finally:
        engine.dispose()


def test_a_first_start_killed_before_any_statement_opens_next_time(store_url: str) -> None:
    total = int(_first_start(store_url, 0).stdout.strip())  # never killed: counts the statements
    assert total > 20
    newest = _head(store_url)
    assert newest >= "0007"


@pytest.mark.slow
def test_a_first_start_killed_at_every_statement_opens_next_time(store_url: str, tmp_path: Path) -> None:
    sqlite = store_url.startswith("sqlite")
    total = int(_first_start(store_url, 0).stdout.strip())  # a whole first start: its statements counted
    newest = _head(store_url)
    points = range(1, total + 1) if sqlite else range(1, total + 1, max(1, total // 8))
    for kill_at in points:
        if sqlite:
            for leftover in tmp_path.glob("store.db*"):
                leftover.unlink()
        else:
            _drop_everything(store_url)
        killed = _first_start(store_url, kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        opened = Store.open(store_url)  # the next start: a working store every time
        try:
            assert opened.reads.status().activities == 0
            assert opened.sources.source_id("alice", "maildir") > 0
        finally:
            opened.close()
        assert _head(store_url) == newest, f"killed before statement {kill_at}"


def _drop_everything(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            Base.metadata.drop_all(connection)
            connection.execute(sa.text("drop table if exists alembic_version"))
    finally:
        engine.dispose()


def _half_made(url: str, with_data: bool) -> None:
    """What an older syncd left when killed during its first start: tables, no version."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
            if with_data:
                connection.execute(sa.text("insert into sources (name, kind) values ('alice', 'maildir')"))
    finally:
        engine.dispose()


def test_an_empty_half_made_store_is_made_again(store_url: str) -> None:
    _half_made(store_url, with_data=False)
    opened = Store.open(store_url)
    try:
        assert opened.reads.status().sources == ()
    finally:
        opened.close()


def test_a_half_made_store_holding_data_is_explained_not_touched(store_url: str) -> None:
    _half_made(store_url, with_data=True)
    with pytest.raises(StoreError, match="half-made by an interrupted start.*Move the store aside"):
        Store.open(store_url)
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("select name from sources")).scalar_one() == "alice"
    finally:
        engine.dispose()
