"""The store: SQLAlchemy tables, Alembic migrations, idempotent batches, typed reads."""

from syncd.store.engine import StoreError, StoreUnavailable
from syncd.store.ingest import CommitResult, Ingest, Skip
from syncd.store.links import LinkFunction
from syncd.store.store import Store

__all__ = ["CommitResult", "Ingest", "LinkFunction", "Skip", "Store", "StoreError", "StoreUnavailable"]
