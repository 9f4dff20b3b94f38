"""Where the test servers are, and what to do when a tool is missing (skip, except under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("SYNCD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def pg_problem() -> str | None:
    if "problem" not in _pg_state:
        try:
            engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(sa.text("select 1"))
            engine.dispose()
            _pg_state["problem"] = None
        except Exception as exc:  # noqa: BLE001
            _pg_state["problem"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _pg_state["problem"]


def require_tool(path: str | None, message: str) -> str:
    """The tool's path; skip without it, except under CI (CI=true), where that is a failure."""
    if path and Path(path).exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
