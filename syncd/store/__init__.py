"""The store: SQLAlchemy tables, Alembic migrations and idempotent batch ingestion."""

from syncd.store.store import CommitResult, Ingest, LinkFunction, Skip, Store, StoreError

__all__ = ["CommitResult", "Ingest", "LinkFunction", "Skip", "Store", "StoreError"]
