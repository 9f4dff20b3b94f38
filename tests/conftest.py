"""Shared fixtures. Store tests run on SQLite and on PostgreSQL.

PostgreSQL: set SYNCD_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Each test gets its own schema, dropped afterwards. When the server cannot be reached the
PostgreSQL variants are skipped with a message saying how to point the suite at one,
except under CI (CI=true), where that is a failure: CI must test both back ends.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from support.environment import PG_URL, require_tool
from support.environment import pg_problem as _pg_problem


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL on each back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    problem = _pg_problem()
    if problem:
        message = (
            f"PostgreSQL not reachable at {PG_URL} ({problem}); "
            "set SYNCD_TEST_PG_URL=postgresql+psycopg://USER@HOST:PORT/DB to run these"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    from syncd.store import Store

    opened = Store.open(store_url)
    yield opened
    opened.close()


def _throwaway_server(make, prefix: str):  # type: ignore[no-untyped-def]
    """Start ``make(root)`` in a fresh temp folder, yield it, stop it and remove the folder."""
    import shutil as _shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = make(root).start()
    try:
        yield server
    finally:
        server.stop()
        _shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot():  # type: ignore[no-untyped-def]
    """One throwaway Dovecot for the session (tests take their own users); stopped at the end."""
    from support.servers.dovecot import DOVECOT, Dovecot

    require_tool(DOVECOT, "Dovecot is not installed (scripts/test-setup installs dovecot-imapd)")
    yield from _throwaway_server(Dovecot, "syncd-dovecot-")


@pytest.fixture(scope="session")
def cyrus():  # type: ignore[no-untyped-def]
    """One throwaway Cyrus IMAP 3.6 for the session (unpacked by scripts/cyrus-setup); stopped at the end."""
    from support.servers.cyrus import MASTER, Cyrus, unpacked_bin

    require_tool(MASTER, "Cyrus is not set up (scripts/cyrus-setup, run by scripts/test-setup)")
    unpacked = unpacked_bin()
    require_tool(str(unpacked / "imapd") if unpacked else None, "Cyrus imapd is not unpacked (scripts/cyrus-setup)")
    yield from _throwaway_server(Cyrus, "syncd-cyrus-")


@pytest.fixture(scope="session")
def xandikos():  # type: ignore[no-untyped-def]
    """One throwaway Xandikos (CalDAV) for the session; stopped at the end."""
    import shutil as _shutil

    from support.servers.xandikos import Xandikos

    require_tool(_shutil.which("xandikos", path=str(Path(sys.executable).parent)), "Xandikos is not installed")
    yield from _throwaway_server(Xandikos, "syncd-xandikos-")


@pytest.fixture(scope="session")
def radicale():  # type: ignore[no-untyped-def]
    """One throwaway Radicale (CalDAV) for the session; tests take their own users."""
    import importlib.util

    from support.servers.radicale import Radicale

    spec = importlib.util.find_spec("radicale")
    require_tool(spec.origin if spec else None, "Radicale is not installed (pip install '.[test]')")
    yield from _throwaway_server(Radicale, "syncd-radicale-")


@pytest.fixture
def graph_double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A Microsoft Graph TEST DOUBLE on https://127.0.0.1 (tests/support/doubles/graph_double.py), its CA trusted
    through REQUESTS_CA_BUNDLE (inherited by `syncd` child processes); stopped afterwards."""
    from support.doubles.graph_double import GraphDouble

    double = GraphDouble(tmp_path / "graph-double").start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(double.ca_bundle))
    yield double
    double.stop()


@pytest.fixture
def ews_double():  # type: ignore[no-untyped-def]
    """An Exchange EWS TEST DOUBLE on http://127.0.0.1 (tests/support/doubles/ews_double.py); stopped afterwards."""
    from support.doubles.ews_double import EwsDouble

    double = EwsDouble().start()
    yield double
    double.stop()
