"""What the outputs last wrote (content hashes, so nothing unchanged is written again), and one-time store flags."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from syncd.store.engine import StorePart, utcnow
from syncd.store.schema import OutputRow, StoreFlagRow


class OutputState(StorePart):
    def hash(self, path: str) -> str | None:
        with self.session() as s:
            row = s.get(OutputRow, path)
            return row.content_hash if row else None

    def written_at(self, path: str) -> datetime | None:
        with self.session() as s:
            row = s.get(OutputRow, path)
            return row.written_at if row else None

    def set_hash(self, path: str, content_hash: str) -> None:
        """``path`` was written with this content: it is healthy again."""
        with self.session() as s, s.begin():
            row = s.get(OutputRow, path)
            if row is None:
                s.add(OutputRow(path=path, content_hash=content_hash, written_at=utcnow()))
            else:
                row.content_hash, row.written_at = content_hash, utcnow()
                row.last_error = row.failing_since = None

    def record_failure(self, path: str, error: str) -> None:
        """``path`` could not be written (the old file is left as it was): shown by `syncd status`."""
        with self.session() as s, s.begin():
            row = s.get(OutputRow, path)
            if row is None:
                s.add(OutputRow(path=path, last_error=error[:2000], failing_since=utcnow()))
            else:
                row.last_error = error[:2000]
                row.failing_since = row.failing_since or utcnow()

    def flag(self, name: str) -> bool:
        with self.session() as s:
            return s.get(StoreFlagRow, name) is not None

    def set_flag(self, name: str) -> None:
        with self.session() as s, s.begin():
            if s.get(StoreFlagRow, name) is None:
                s.add(StoreFlagRow(name=name, set_at=utcnow()))

    def forget_hashes(self) -> None:
        """Every output is written again on the next pass (after an erasure: timeline, published
        and per-owner workbooks and every contact note, without the erased person)."""
        with self.session() as s, s.begin():
            s.execute(update(OutputRow).values(content_hash=None))
