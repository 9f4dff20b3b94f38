"""The store: one engine, its jobs as parts.

* ``batches`` (``ingest``): commit a batch and its cursor atomically, idempotently;
* ``sources`` (``sources``): each source's row, cursors, health and write-back state;
* ``links`` (``links``): re-matching stored activities when customers or rules change;
* ``review`` (``review``): what admins decided (learned rules, pending answers, merges);
* ``outputs`` (``outputs``): what the outputs last wrote, and one-time store flags;
* ``reads`` (``reads``): the typed read models for outputs, matcher, status and CLI;
* ``privacy`` (``privacy``): erasure, retention, suppression digests and the audit log.

The schema comes only from the Alembic migrations (``engine``), run at open.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.store.engine import StoreError, migrate, open_engine, redact_url
from syncd.store.ingest import Batches
from syncd.store.links import Links
from syncd.store.outputs import OutputState
from syncd.store.privacy import Privacy
from syncd.store.reads import Reads
from syncd.store.review import ReviewState
from syncd.store.sources import SourceStates


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.batches = Batches(engine)
        self.sources = SourceStates(engine)
        self.links = Links(engine)
        self.review = ReviewState(engine)
        self.outputs = OutputState(engine)
        self.reads = Reads(engine)
        self.privacy = Privacy(engine)

    @classmethod
    def open(cls, url: str, migrate_schema: bool = True) -> Store:
        """Open (creating the SQLite folder if needed) and bring the schema to the newest migration."""
        engine = open_engine(url)
        if migrate_schema:
            try:
                migrate(engine)
            except StoreError:
                engine.dispose()
                raise
            except Exception as exc:  # any failure here means the store is unusable
                engine.dispose()
                raise StoreError(f"cannot open store {redact_url(url)}: {exc}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)
