"""The store's engine: opening SQLite or PostgreSQL, bringing the schema up to date, sessions.

Migrations run in one transaction on both back ends. PostgreSQL does that by itself;
SQLite does too, but Python's driver commits every CREATE TABLE on its own unless the
transaction is begun explicitly, so a first start killed halfway used to leave a store
with some tables and no version that never opened again. Here the migration connection
begins the transaction itself (``BEGIN IMMEDIATE``), so a killed first start leaves an
empty file, and the next start simply creates the schema. A half-made store left by an
older syncd is repaired when it holds nothing, and explained otherwise.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from syncd.store.schema import Base

log = logging.getLogger("syncd.store")

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(Exception):
    """The store cannot be opened or migrated; the message names the URL (without secrets)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (PostgreSQL down, a locked or full disk); retried."""


#: What SQLite says when its disk or file cannot take a write; retried like a server outage.
_SQLITE_TRANSIENT = (
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "database is locked",
    "attempt to write a readonly database",
)


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the store cannot be used *now* (PostgreSQL down or restarting,
    a full disk, a locked file) rather than a bug: the service waits and tries again."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    if isinstance(exc, StoreUnavailable | DisconnectionError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig if exc.orig is not None else exc).lower()
        return (
            exc.orig is None
            or not hasattr(exc.orig, "sqlite_errorcode")
            or any(marker in text for marker in _SQLITE_TRANSIENT)
        )
    return isinstance(exc, OSError) and exc.errno is not None and exc.errno in (28, 122)  # ENOSPC, EDQUOT


def fault_reason(exc: BaseException) -> str:
    """The first line of what the database driver said (not SQLAlchemy's wrapping), for logs and status."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as its scheme only
        return url.split("://", 1)[0] + "://…"


def json_text(value: Any) -> str:
    """JSON columns (participants, hints) as text, through orjson: json.dumps was a fifth
    of the store's time in a backfill. orjson writes dataclasses and str enums itself, so
    ``Participant`` tuples go in as they are: ``{"email", "name", "role"}`` objects."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def create_private(database: Path) -> None:
    """The store holds personal data: a folder syncd creates is 0700 and a new store file
    0600 (SQLite gives its -wal and -shm files the file's mode), whatever the umask of the
    shell it was run from. Existing folders and files keep the mode an admin gave them."""
    folder = database.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.chmod(database, 0o600)


def open_engine(url: str) -> Engine:
    """An engine for ``url`` (creating the SQLite folder if needed); nothing is migrated."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001
        raise StoreError(f"store URL {redact_url(url)!r} is not valid: {exc}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                create_private(Path(parsed.database))
            except OSError as exc:
                raise StoreError(f"cannot create the folder of store {redact_url(url)}: {exc.strerror}") from None
        kwargs["connect_args"] = {"timeout": 15}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, json_serializer=json_text, json_deserializer=orjson.loads, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _transactional_sqlite(engine: Engine) -> Engine:
    """A second engine on the same SQLite file whose transactions begin explicitly, so DDL
    is inside them (SQLAlchemy's documented recipe for pysqlite)."""
    migrating = create_engine(engine.url, connect_args={"timeout": 15})

    @event.listens_for(migrating, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        dbapi_connection.isolation_level = None  # the driver never begins or commits on its own

    @event.listens_for(migrating, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return migrating


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration, all of it or nothing."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    target = _transactional_sqlite(engine) if engine.dialect.name == "sqlite" else engine
    try:
        with target.begin() as connection:
            _repair_half_made(connection)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        if target is not engine:
            target.dispose()


def _repair_half_made(connection: Any) -> None:
    """A store with syncd's tables but no schema version (an older syncd killed during its
    first start): emptied and made again when it holds no rows; else explained."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    ours = tables & set(Base.metadata.tables)
    if not ours:
        return
    version = None
    if "alembic_version" in tables:
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if version is not None:
        return
    filled = [name for name in sorted(ours) if connection.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1')).first()]
    if filled:
        raise StoreError(
            f"the store has syncd's tables ({', '.join(filled)} hold data) but no schema version: it "
            "was left half-made by an interrupted start of an older syncd. Move the store aside and "
            "start again (the sources are read afresh), or restore it from a backup"
        )
    log.warning(
        "store left half-made by an interrupted first start (tables without a schema version, no data): "
        "creating it again"
    )
    for table in reversed(Base.metadata.sorted_tables):  # children before the tables they point at
        if table.name in tables:
            connection.execute(text(f'DROP TABLE "{table.name}"'))
    if "alembic_version" in tables:
        connection.execute(text("DROP TABLE alembic_version"))


def one_snapshot(s: Session) -> None:
    """Make the session's reads see one state of the store: a read transaction on SQLite
    (its driver runs plain SELECTs outside one), REPEATABLE READ on PostgreSQL (where READ
    COMMITTED lets each statement see batches committed meanwhile). Must come first."""
    connection = s.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


class StorePart:
    """One job of the store, on the engine it shares with the others."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)
