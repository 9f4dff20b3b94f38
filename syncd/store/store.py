"""The store: idempotent ingestion of batches, and the queries the timeline needs.

Everything a batch changes (activities, customers, quarantine and skip entries,
removals) commits in one transaction together with the source's cursor. That is the
whole crash-safety story: after a crash the store holds either all of a batch and its
cursor, or none of it, and re-reading from the stored cursor repeats nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Text, cast, create_engine, delete, event, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.model.records import (
    ActivityKind,
    ActivityRecord,
    CustomerKind,
    CustomerRecord,
    Direction,
    LinkSpec,
    Participant,
    Problem,
    Role,
    SourceState,
)
from syncd.store.schema import (
    ActivityRow,
    CorrespondentRow,
    CursorRow,
    CustomerMergeRow,
    CustomerRow,
    IdentityRow,
    LinkRow,
    ManualRuleRow,
    OccurrenceRow,
    OutputRow,
    QuarantineRow,
    SkippedRow,
    SourceRow,
    StoreFlagRow,
)

log = logging.getLogger(__name__)

RESCOPE_LIMIT = 200  # customers changed in one pass above which every activity is re-matched
#: Links one activity (its participants and hints) to customers: the pipeline's matcher.
LinkFunction = Callable[[tuple[Participant, ...], dict[str, str]], list[LinkSpec]]


def _bound(s: Session, column: Any, value: Any) -> Any:
    """``value`` as the driver stores it in ``column`` (the type's bind processing, done once)."""
    return _processor(s, column)(value)


def _processor(s: Session, column: Any) -> Callable[[Any], Any]:
    """The bind processing of ``column``'s type for this dialect, as one callable."""
    processor = column.type._cached_bind_processor(s.get_bind().dialect)
    return (lambda value: value if value is None else processor(value)) if processor else (lambda value: value)


def _json_text(value: Any) -> str:
    """JSON columns (participants, hints) as text, through orjson: json.dumps was a fifth
    of the store's time in a backfill. orjson writes dataclasses and str enums itself, so
    ``Participant`` tuples go in as they are: ``{"email", "name", "role"}`` objects, the
    shape ``_participants_to_json`` gives."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _one_snapshot(s: Session) -> None:
    """Make the session's reads see one state of the store: a read transaction on SQLite
    (its driver runs plain SELECTs outside one), REPEATABLE READ on PostgreSQL (where READ
    COMMITTED lets each statement see batches committed meanwhile). Must come first."""
    connection = s.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _new_ids(s: Session, table: Any, count: int) -> list[int]:
    """``count`` unused primary keys for ``table``, reserved for this transaction.

    PostgreSQL hands them out from the column's sequence. SQLite has one writer at a time
    and assigns max(id) + 1 itself; a batch takes the write lock when it begins (``BEGIN
    IMMEDIATE`` in ``_commit_once``), so no other writer can take these ids meanwhile.
    """
    connection = s.connection()
    if connection.dialect.name == "postgresql":
        return list(connection.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, {int(count)})"
        ).scalars())
    highest = connection.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table.name}").scalar_one()
    return list(range(highest + 1, highest + 1 + count))


def _present(s: Session, query: str, values: Sequence[str], *leading: Any) -> Iterator[str]:
    """The ``values`` that ``query ... IN (...)`` finds, asked 500 at a time through the
    driver: SQLAlchemy compiles an expanding IN value by value, which cost more per batch
    than the lookups."""
    connection = s.connection()
    mark = _mark(connection)
    head = query.replace("{mark}", mark)
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield from connection.exec_driver_sql(head + "(" + ", ".join(mark for _ in chunk) + ")",
                                              (*leading, *chunk)).scalars()


def _mark(connection: Any) -> str:
    """The driver's parameter marker: ``?`` for sqlite3, ``%s`` for psycopg."""
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def _executemany(s: Session, table: Any, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many plain rows as multi-row ``INSERT ... VALUES (...), (...)`` statements sent
    straight to the driver. For bulk inserts only: values must already be in driver form
    (see ``_processor``).

    Why not SQLAlchemy or the driver's executemany: SQLAlchemy's per-value processing is
    most of the cost at 100,000 rows, and sqlite3's executemany releases and re-takes the
    GIL for every row, so while the connector's thread parses mail each row can wait a
    whole thread switch interval (5 ms). One statement per few hundred rows waits once.
    """
    if not rows:
        return
    connection = s.connection()
    mark = _mark(connection)
    group = "(" + ", ".join(mark for _ in columns) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    per_statement = max(1, min(500, 30_000 // len(columns)))  # under SQLite's 32,766 parameters
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        connection.exec_driver_sql(head + ", ".join(group for _ in chunk),
                                   tuple(value for row in chunk for value in row))


@dataclass(frozen=True)
class _InsertedCustomer:
    """A customer known by id only (inserted in bulk, or looked up for its id): enough
    to set a person's company."""

    id: int


class StoreError(Exception):
    """The store cannot be opened or migrated; the message names the URL (without secrets)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Skip:
    key: str
    reason: str
    version: str = ""


@dataclass
class Ingest:
    """One batch's worth of changes for one source, committed atomically with its cursor."""

    activities: list[ActivityRecord] = field(default_factory=list)
    customers: list[CustomerRecord] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    folder: str = ""
    cursor: str | None = None
    backlog: int | None = None
    # address -> (display name, inbound, outbound) counted in this batch (auto-creation)
    correspondents: dict[str, tuple[str, int, int]] = field(default_factory=dict)


@dataclass
class CommitResult:
    activities_new: int = 0
    activities_updated: int = 0
    customers_changed: int = 0
    removed: int = 0
    quarantined: int = 0
    skipped: int = 0


def _participants_to_json(participants: Iterable[Participant]) -> list[dict[str, str]]:
    return [{"email": p.email, "name": p.name, "role": p.role.value} for p in participants]


def _participants_from_json(rows: Iterable[dict[str, str]]) -> tuple[Participant, ...]:
    return tuple(Participant(r["email"], r.get("name", ""), Role(r.get("role", "to"))) for r in rows)


def _merge_participants(old: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    seen = {(p["email"], p["role"]) for p in old}
    merged = list(old)
    for p in new:
        if (p["email"], p["role"]) not in seen:
            merged.append(p)
            seen.add((p["email"], p["role"]))
    return merged


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as its scheme only
        return url.split("://", 1)[0] + "://…"


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> "Store":
        """Open (creating the SQLite folder if needed) and bring the schema to the newest migration."""
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"store URL {redact_url(url)!r} is not valid: {exc}") from None
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 15}
        else:
            kwargs["pool_pre_ping"] = True
        engine = create_engine(url, json_serializer=_json_text, json_deserializer=orjson.loads, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            try:
                store.migrate()
            except Exception as exc:  # noqa: BLE001 - any failure here means the store is unusable
                engine.dispose()
                raise StoreError(f"cannot open store {redact_url(url)}: {exc}") from exc
        return store

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- sources and their state -------------------------------------------------

    def source_id(self, name: str, kind: str) -> int:
        with self.session() as s, s.begin():
            row = s.scalar(select(SourceRow).where(SourceRow.name == name))
            if row is None:
                row = SourceRow(name=name, kind=kind)
                s.add(row)
                s.flush()
            elif row.kind != kind:
                row.kind = kind
            return row.id

    def sync_state(self, source_id: int) -> SourceState:
        with self.session() as s:
            cursors = dict(
                s.execute(select(CursorRow.folder, CursorRow.value).where(CursorRow.source_id == source_id)).all()
            )
            known: dict[str, str] = {}
            for model in (SkippedRow, QuarantineRow):
                known.update(s.execute(select(model.item_key, model.version).where(model.source_id == source_id)).all())
            known.update(
                s.execute(
                    select(OccurrenceRow.item_key, OccurrenceRow.version).where(
                        OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None)
                    )
                ).all()
            )
            known.update(
                s.execute(
                    select(CustomerRow.source_key, CustomerRow.version).where(
                        CustomerRow.source_id == source_id, CustomerRow.gone_at.is_(None)
                    )
                ).all()
            )
        return SourceState(cursors=cursors, known=known)

    def reset_cursors(self, source_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(CursorRow).where(CursorRow.source_id == source_id))

    def mark_attempt(self, source_id: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(SourceRow).where(SourceRow.id == source_id).values(last_attempt_at=utcnow()))

    def mark_success(self, source_id: int, suspect_reason: str | None = None, complete: bool = True) -> None:
        values: dict[str, Any] = dict(
            last_success_at=utcnow(), last_error=None, failing_since=None, suspect_reason=suspect_reason,
            consecutive_failures=0, next_attempt_at=None,
        )
        if complete:
            values["backlog"] = 0
        with self.session() as s, s.begin():
            s.execute(update(SourceRow).where(SourceRow.id == source_id).values(**values))

    def mark_failure(self, source_id: int, error: str, next_attempt: Callable[[int], datetime] | None = None) -> int:
        """Record a failed pass; ``next_attempt(failures)`` schedules the retry. Returns the failure count."""
        with self.session() as s, s.begin():
            row = s.get(SourceRow, source_id)
            assert row is not None
            row.last_error = error
            row.consecutive_failures = (row.consecutive_failures or 0) + 1
            if row.failing_since is None:
                row.failing_since = utcnow()
            row.next_attempt_at = next_attempt(row.consecutive_failures) if next_attempt else None
            return row.consecutive_failures

    def next_attempts(self) -> dict[str, datetime | None]:
        """When each known source may be tried again (None: whenever its schedule says)."""
        with self.session() as s:
            return dict(s.execute(select(SourceRow.name, SourceRow.next_attempt_at)).all())

    # ---- ingestion ---------------------------------------------------------------

    def commit(self, source_id: int, ingest: Ingest, link: LinkFunction) -> CommitResult:
        """Apply one batch and its cursor in a single transaction. Idempotent.

        Two mailboxes syncing in parallel may insert the same Message-ID at once; the loser
        gets a unique-constraint error, and simply runs its batch again: the second time it
        finds the other's activity and adds its occurrence to it.
        """
        for attempt in range(3):
            try:
                return self._commit_once(source_id, ingest, link)
            except IntegrityError:
                if attempt == 2:
                    raise
                log.info("source_id=%d batch raced another source on a unique key; retrying", source_id)
        raise AssertionError("unreachable")

    def _commit_once(self, source_id: int, ingest: Ingest, link: LinkFunction) -> CommitResult:
        result = CommitResult()
        now = utcnow()
        with self.session() as s, s.begin():
            if s.get_bind().dialect.name == "sqlite":
                # Take the write lock first (waiting on busy_timeout): the batch reads what
                # is stored, then writes, and its new ids count on no other writer between.
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            stored_keys = [r.key for r in ingest.customers] + [r.key for r in ingest.activities]
            self._clear_other_outcomes(s, source_id, stored_keys)
            customers_by_key: dict[str, Any] = {}
            ordered = sorted(ingest.customers, key=lambda r: r.kind != CustomerKind.COMPANY)
            if ordered:
                merged = self._merged_keys(s, source_id, ordered)
                for key, into_id in merged.items():
                    customers_by_key[key] = _InsertedCustomer(into_id)  # its people join the survivor
                for record in (r for r in ordered if r.key in merged):
                    self._feed_survivor(s, record, merged[record.key], ingest.problems)
                ordered = [r for r in ordered if r.key not in merged]
            inserted, ordered = self._insert_new_customers(s, source_id, ordered, customers_by_key,
                                                           ingest.problems, now)
            result.customers_changed += inserted
            for record in ordered:
                if self._upsert_customer(s, source_id, record, customers_by_key, ingest.problems, now):
                    result.customers_changed += 1
            remaining = self._insert_new_activities(s, source_id, ingest.activities, link, now)
            result.activities_new += len(ingest.activities) - len(remaining)
            for record in remaining:
                outcome = self._upsert_activity(s, source_id, record, link, now)
                if outcome == "new":
                    result.activities_new += 1
                elif outcome == "updated":
                    result.activities_updated += 1
            for skip in ingest.skipped:
                self._record_skip(s, source_id, skip, now)
                result.skipped += 1
            for problem in ingest.problems:
                self._record_problem(s, source_id, problem, now)
                result.quarantined += 1
            if ingest.removed:
                result.removed, changed = self._apply_removals(s, source_id, ingest.removed, now)
                result.customers_changed += changed
            if ingest.correspondents:
                self._count_correspondents(s, ingest.correspondents, now)
            if ingest.backlog is not None:
                # On the table, not the entity: the ORM would evaluate the WHERE in Python
                # against the session for every batch.
                s.execute(update(SourceRow.__table__).where(SourceRow.__table__.c.id == source_id)
                          .values(backlog=ingest.backlog))
            if ingest.cursor is not None:
                row = s.scalar(
                    select(CursorRow).where(CursorRow.source_id == source_id, CursorRow.folder == ingest.folder)
                )
                if row is None:
                    s.add(CursorRow(source_id=source_id, folder=ingest.folder, value=ingest.cursor, updated_at=now))
                else:
                    row.value = ingest.cursor
                    row.updated_at = now
        return result

    @staticmethod
    def _clear_other_outcomes(s: Session, source_id: int, keys: Sequence[str]) -> None:
        """An item now stored is no longer skipped or quarantined (e.g. a fixed sheet row)."""
        if not keys:
            return
        held = s.scalar(select(SkippedRow.id).where(SkippedRow.source_id == source_id).limit(1)) is not None or \
            s.scalar(select(QuarantineRow.id).where(QuarantineRow.source_id == source_id).limit(1)) is not None
        if not held:
            return  # nothing to clear (a first backfill): skip the large IN lists
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            s.execute(delete(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key.in_(chunk)))
            s.execute(
                delete(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key.in_(chunk))
            )

    @staticmethod
    def _insert_new_customers(
        s: Session, source_id: int, records: Sequence[CustomerRecord], by_key: dict[str, Any],
        problems: list[Problem], now: datetime,
    ) -> tuple[int, list[CustomerRecord]]:
        """Insert the customers the store has never held, in bulk: a first import of a large
        sheet is a few multi-row INSERTs instead of several queries per row. Identities
        are claimed the way ``_upsert_customer`` claims them (a live holder keeps its
        identity and the newcomer's is quarantined). Returns how many were inserted and
        the records left for the row-by-row path (those the store already holds)."""
        if not records:
            return 0, []
        keys = list(dict.fromkeys([r.key for r in records] + [r.company_key for r in records if r.company_key]))
        stored: set[str] = set()
        for start in range(0, len(keys), 500):
            for cid, key in s.execute(select(CustomerRow.id, CustomerRow.source_key).where(
                    CustomerRow.source_id == source_id, CustomerRow.source_key.in_(keys[start : start + 500]))):
                stored.add(key)
                by_key.setdefault(key, _InsertedCustomer(cid))
        fresh = [r for r in records if r.key not in stored]
        held = [r for r in records if r.key in stored]
        if not fresh:
            return 0, held
        seen: set[str] = set()
        unique = []
        for record in fresh:
            if record.key in seen:
                held.append(record)  # the same key twice in a batch: the row path updates it
                continue
            seen.add(record.key)
            unique.append(record)
        ids: dict[str, int] = {}
        table = CustomerRow.__table__
        stamp = _bound(s, table.c.created_at, now)
        for kind_group in (CustomerKind.COMPANY, CustomerKind.PERSON):
            group = [r for r in unique if r.kind == kind_group]
            if not group:
                continue
            _executemany(s, table, ("kind", "name", "owner", "version", "source_id", "source_key", "created_at",
                                    "updated_at", "company_id"), [
                (r.kind.value, r.name, r.owner, r.version, source_id, r.key, stamp, stamp,
                 (ids.get(r.company_key) or getattr(by_key.get(r.company_key), "id", None)) if r.company_key
                 else r.company_id)
                for r in group])
            group_keys = [r.key for r in group]
            for start in range(0, len(group_keys), 500):
                for cid, key in s.execute(select(CustomerRow.id, CustomerRow.source_key).where(
                        CustomerRow.source_id == source_id, CustomerRow.source_key.in_(group_keys[start : start + 500]))):
                    ids[key] = cid
        for key, cid in ids.items():
            by_key[key] = _InsertedCustomer(cid)
        wanted = [(r, kind, value) for r in unique for kind, values in
                  (("domain", r.domains), ("email", r.emails), ("phone", r.phones)) for value in values]
        values_by_kind: dict[str, list[str]] = defaultdict(list)
        for _r, kind, value in wanted:
            values_by_kind[kind].append(value)
        holders: dict[tuple[str, str], tuple[int, int, str, bool]] = {}  # -> (identity id, customer, name, alive)
        for kind, values in values_by_kind.items():
            values = list(dict.fromkeys(values))
            for start in range(0, len(values), 500):
                for ident_id, value, cid, name, gone in s.execute(
                    select(IdentityRow.id, IdentityRow.value, IdentityRow.customer_id, CustomerRow.name,
                           CustomerRow.gone_at)
                    .join(CustomerRow, CustomerRow.id == IdentityRow.customer_id)
                    .where(IdentityRow.kind == kind, IdentityRow.value.in_(values[start : start + 500]))
                ):
                    holders[(kind, value)] = (ident_id, cid, name, gone is None)
        stale: list[int] = []
        claimed: dict[tuple[str, str], tuple[int, str]] = {}
        new_identities: list[tuple[int, str, str]] = []
        for record, kind, value in wanted:
            cid = ids[record.key]
            holder = holders.get((kind, value))
            owner = claimed.get((kind, value)) or ((holder[1], holder[2]) if holder and holder[3] else None)
            if owner is not None:
                if owner[0] != cid:
                    problems.append(Problem(
                        key=f"{record.key}#{kind}:{value}",
                        reason=f"{kind} {value} is already on customer #{owner[0]} {owner[1]!r}; "
                               f"not added to {record.name!r}",
                        where=record.where))
                continue
            if holder is not None:
                stale.append(holder[0])  # held by a customer that is gone: the newcomer takes it
            claimed[(kind, value)] = (cid, record.name)
            new_identities.append((cid, kind, value))
        for start in range(0, len(stale), 500):
            s.execute(delete(IdentityRow).where(IdentityRow.id.in_(stale[start : start + 500])))
        if new_identities:
            _executemany(s, IdentityRow.__table__, ("customer_id", "kind", "value"), new_identities)
        return len(ids), held

    def _upsert_customer(
        self,
        s: Session,
        source_id: int,
        record: CustomerRecord,
        by_key: dict[str, CustomerRow],
        problems: list[Problem],
        now: datetime,
    ) -> bool:
        row = by_key.get(record.key)
        if not isinstance(row, CustomerRow):
            row = s.scalar(
                select(CustomerRow).where(CustomerRow.source_id == source_id, CustomerRow.source_key == record.key)
            )
        if row is not None and row.version == record.version and row.gone_at is None and record.version:
            by_key[record.key] = row
            return False
        company_id = record.company_id
        if record.company_key:
            company = by_key.get(record.company_key) or s.scalar(
                select(CustomerRow).where(
                    CustomerRow.source_id == source_id, CustomerRow.source_key == record.company_key
                )
            )
            company_id = company.id if company is not None else None
        if row is None:
            row = CustomerRow(
                source_id=source_id, source_key=record.key, created_at=now, kind=record.kind.value, name=record.name
            )
            s.add(row)
        row.kind = record.kind.value
        row.name = record.name
        row.company_id = company_id
        row.owner = record.owner
        row.version = record.version
        row.updated_at = now
        row.gone_at = None
        s.flush()
        by_key[record.key] = row
        wanted = {("email", e) for e in record.emails} | {("phone", p) for p in record.phones}
        wanted |= {("domain", d) for d in record.domains}
        current = {(i.kind, i.value): i for i in s.scalars(select(IdentityRow).where(IdentityRow.customer_id == row.id))}
        for ident_key, ident in current.items():
            if ident_key not in wanted:
                s.delete(ident)
        for kind, value in sorted(wanted - current.keys()):
            holder = s.scalar(select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.value == value))
            if holder is not None:
                owner = s.get(CustomerRow, holder.customer_id)
                if owner is not None and owner.gone_at is None:
                    problems.append(
                        Problem(
                            key=f"{record.key}#{kind}:{value}",
                            reason=f"{kind} {value} is already on customer #{owner.id} {owner.name!r}; "
                            f"not added to {record.name!r}",
                            where=record.where,
                        )
                    )
                    continue
                s.delete(holder)
                s.flush()
            s.add(IdentityRow(customer_id=row.id, kind=kind, value=value))
        s.flush()
        return True

    def _insert_new_activities(
        self, s: Session, source_id: int, records: Sequence[ActivityRecord], link: LinkFunction, now: datetime
    ) -> list[ActivityRecord]:
        """Insert, in bulk, the records that are new everywhere (the whole of a backfill).

        A record is new everywhere when its source has no item with its key and no stored
        activity has its Message-ID. Everything else (an edited sheet row, the second
        mailbox's copy of a message, a Message-ID seen twice in this batch) is returned for
        the row-by-row path, which merges. Returns those records, in order.
        """
        if not records:
            return []
        keys = [r.key for r in records]
        message_ids = [r.message_id for r in records if r.message_id]
        existing_keys = set(_present(s, "SELECT item_key FROM occurrences WHERE source_id = {mark} AND item_key IN ",
                                     keys, source_id))
        existing_ids = set(_present(s, "SELECT message_id FROM activities WHERE message_id IN ", message_ids))
        fresh: list[ActivityRecord] = []
        rest: list[ActivityRecord] = []
        claimed: set[str] = set()
        for record in records:
            if record.key in existing_keys or (record.message_id and (
                    record.message_id in existing_ids or record.message_id in claimed)):
                rest.append(record)
                continue
            if record.message_id:
                claimed.add(record.message_id)
            fresh.append(record)
        if not fresh:
            return rest
        # Straight through the driver: SQLAlchemy's per-row bookkeeping costs more than
        # the database's own insert.
        ids = self._insert_activity_rows(s, fresh, now)
        occurrences = OccurrenceRow.__table__
        stamp = _bound(s, occurrences.c.seen_at, now)
        _executemany(s, occurrences, ("activity_id", "source_id", "item_key", "folder", "mailbox", "link", "version",
                                      "seen_at"),
                     [(activity_id, source_id, r.key, r.folder, r.mailbox, r.link, r.version, stamp)
                      for activity_id, r in zip(ids, fresh)])
        links = [
            (activity_id, spec.customer_id, spec.rule, spec.confidence, spec.evidence)
            for activity_id, r in zip(ids, fresh)
            for spec in link(r.participants, dict(r.hints))
        ]
        if links:
            _executemany(s, LinkRow.__table__, ("activity_id", "customer_id", "rule", "confidence", "evidence"), links)
        return rest

    @staticmethod
    def _insert_activity_rows(s: Session, records: Sequence[ActivityRecord], now: datetime) -> list[int]:
        """Insert activity rows; their ids, in the order of ``records``.

        The ids are taken first (see ``_new_ids``) and the rows go in as multi-row INSERTs
        (``_executemany``): no row is read back, because on SQLite reading rows back also
        costs a thread switch per row while a connector thread is parsing.
        """
        table = ActivityRow.__table__
        ids = _new_ids(s, table, len(records))
        stamp = _bound(s, table.c.created_at, now)
        to_json = _processor(s, table.c.participants)
        hints_json = _processor(s, table.c.hints)
        when = _processor(s, table.c.occurred_at)
        amount = _processor(s, table.c.amount)
        _executemany(s, table, ("id", "kind", "occurred_at", "direction", "subject", "snippet", "body", "participants",
                                "hints", "message_id", "thread_key", "amount", "currency", "created_at", "updated_at"), [
            (row_id, r.kind.value, when(r.occurred_at), r.direction.value, r.subject, r.snippet, r.body,
             to_json(r.participants), hints_json(dict(r.hints)), r.message_id,
             r.thread_key, amount(r.amount), r.currency, stamp, stamp)
            for row_id, r in zip(ids, records)])
        return ids

    def _upsert_activity(
        self, s: Session, source_id: int, record: ActivityRecord, link: LinkFunction, now: datetime
    ) -> str:
        occurrence = s.scalar(
            select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == record.key)
        )
        if occurrence is not None and occurrence.version == record.version and occurrence.gone_at is None:
            return "unchanged"
        participants = _participants_to_json(record.participants)
        activity = None
        if occurrence is not None:
            activity = s.get(ActivityRow, occurrence.activity_id)
        if activity is None and record.message_id:
            activity = s.scalar(select(ActivityRow).where(ActivityRow.message_id == record.message_id))
        outcome = "updated"
        if activity is None:
            outcome = "new"
            activity = ActivityRow(
                kind=record.kind.value,
                occurred_at=record.occurred_at,
                direction=record.direction.value,
                message_id=record.message_id,
                participants=participants,
                hints=dict(record.hints),
                created_at=now,
            )
            s.add(activity)
        elif occurrence is None:
            # The same message from another mailbox: keep the first copy's fields, add what
            # this copy shows (a Bcc is only visible in the sender's copy). A message one of
            # us sent is outbound, whichever mailbox was read first (a colleague's cc'd copy
            # would say inbound).
            activity.participants = _merge_participants(activity.participants, participants)
            if record.direction == Direction.OUTBOUND:
                activity.direction = Direction.OUTBOUND.value
        else:
            activity.participants = participants
            activity.hints = dict(record.hints)
        if outcome == "new" or occurrence is not None:
            activity.kind = record.kind.value
            activity.occurred_at = record.occurred_at
            activity.direction = record.direction.value
            activity.subject = record.subject
            activity.snippet = record.snippet
            activity.body = record.body
            activity.thread_key = record.thread_key
            activity.amount = record.amount
            activity.currency = record.currency
        activity.updated_at = now
        activity.gone_at = None
        s.flush()
        if occurrence is None:
            occurrence = OccurrenceRow(activity_id=activity.id, source_id=source_id, item_key=record.key, seen_at=now)
            s.add(occurrence)
        occurrence.folder = record.folder
        occurrence.mailbox = record.mailbox
        occurrence.link = record.link
        occurrence.version = record.version
        occurrence.gone_at = None
        self._set_links(
            s, activity.id, link(_participants_from_json(activity.participants), activity.hints)
        )
        return outcome

    @staticmethod
    def _set_links(s: Session, activity_id: int, links: Sequence[LinkSpec]) -> bool:
        current = {r.customer_id: r for r in s.scalars(select(LinkRow).where(LinkRow.activity_id == activity_id))}
        wanted = {spec.customer_id: spec for spec in links}
        changed = False
        for customer_id, row in current.items():
            spec = wanted.get(customer_id)
            if spec is None:
                s.delete(row)
                changed = True
            elif (row.rule, row.confidence, row.evidence) != (spec.rule, spec.confidence, spec.evidence):
                row.rule, row.confidence, row.evidence = spec.rule, spec.confidence, spec.evidence
                changed = True
        for customer_id, spec in wanted.items():
            if customer_id not in current:
                s.add(
                    LinkRow(
                        activity_id=activity_id,
                        customer_id=customer_id,
                        rule=spec.rule,
                        confidence=spec.confidence,
                        evidence=spec.evidence,
                    )
                )
                changed = True
        return changed

    def _record_skip(self, s: Session, source_id: int, skip: Skip, now: datetime) -> None:
        row = s.scalar(select(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key == skip.key))
        if row is None:
            s.add(SkippedRow(source_id=source_id, item_key=skip.key, reason=skip.reason, version=skip.version, at=now))
        else:
            row.reason, row.version, row.at = skip.reason, skip.version, now

    def _record_problem(self, s: Session, source_id: int, problem: Problem, now: datetime) -> None:
        row = s.scalar(
            select(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key == problem.key)
        )
        if row is None:
            s.add(
                QuarantineRow(
                    source_id=source_id,
                    item_key=problem.key,
                    reason=problem.reason,
                    location=problem.where,
                    version=problem.version,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        else:
            row.reason, row.location, row.version, row.last_seen_at = (
                problem.reason, problem.where, problem.version, now
            )

    def _apply_removals(self, s: Session, source_id: int, keys: Sequence[str], now: datetime) -> tuple[int, int]:
        removed = customers = 0
        for key in keys:
            occurrence = s.scalar(
                select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == key)
            )
            if occurrence is not None and occurrence.gone_at is None:
                occurrence.gone_at = now
                s.flush()
                alive = s.scalar(
                    select(func.count())
                    .select_from(OccurrenceRow)
                    .where(OccurrenceRow.activity_id == occurrence.activity_id, OccurrenceRow.gone_at.is_(None))
                )
                if not alive:
                    s.execute(update(ActivityRow).where(ActivityRow.id == occurrence.activity_id).values(gone_at=now))
                removed += 1
            customer = s.scalar(
                select(CustomerRow).where(CustomerRow.source_id == source_id, CustomerRow.source_key == key)
            )
            if customer is not None and customer.gone_at is None:
                customer.gone_at = customer.updated_at = now
                s.execute(delete(IdentityRow).where(IdentityRow.customer_id == customer.id))
                removed += 1
                customers += 1
            s.execute(delete(SkippedRow).where(SkippedRow.source_id == source_id, SkippedRow.item_key == key))
            s.execute(delete(QuarantineRow).where(QuarantineRow.source_id == source_id, QuarantineRow.item_key == key))
        return removed, customers

    def rematch(self, link: LinkFunction, since: datetime | None = None) -> int:
        """Recompute the links of stored activities after customers or rules changed, without
        reading any source again. Returns how many activities' links changed.

        ``since``: only what the customers changed since then can affect, namely unmatched
        activities, activities linked to those customers, and activities mentioning one of
        their addresses or domains (or carrying phones, when phones changed). A large change
        (an import) re-matches everything, which is then cheaper than the search.
        """
        changed = 0
        with self.session() as s, s.begin():
            query = select(ActivityRow).where(ActivityRow.gone_at.is_(None))
            if since is not None:
                scope = self._rematch_scope(s, since)
                if scope is not None:
                    query = query.where(scope)
            for activity in s.scalars(query):
                links = link(_participants_from_json(activity.participants), activity.hints)
                if self._set_links(s, activity.id, links):
                    changed += 1
        return changed

    @staticmethod
    def _rematch_scope(s: Session, since: datetime) -> Any:
        """The activities customers changed since ``since`` can affect, as a WHERE clause, or
        None when so many changed that re-matching all is the better plan."""
        customer_ids = list(s.scalars(select(CustomerRow.id).where(CustomerRow.updated_at >= since)))
        if len(customer_ids) > RESCOPE_LIMIT:
            return None
        conditions: list[Any] = [ActivityRow.id.not_in(select(LinkRow.activity_id))]
        if customer_ids:
            conditions.append(ActivityRow.id.in_(
                select(LinkRow.activity_id).where(LinkRow.customer_id.in_(customer_ids))))
            participants = cast(ActivityRow.participants, Text)
            phones = False
            for kind, value in s.execute(select(IdentityRow.kind, IdentityRow.value).where(
                    IdentityRow.customer_id.in_(customer_ids))):
                if kind == "email":
                    conditions.append(participants.contains(f'"{value}"', autoescape=True))
                elif kind == "domain":
                    conditions.append(participants.contains(f'{value}"', autoescape=True))
                elif kind == "phone":
                    phones = True
            if phones:
                conditions.append(cast(ActivityRow.hints, Text).contains('"phones"', autoescape=True))
        return or_(*conditions)

    # ---- write-back ------------------------------------------------------------------

    def pending_labels(self, source_id: int) -> dict[str, tuple[str, ...]]:
        """Items of a source whose linked customers differ from what was last written back."""
        wanted: dict[int, list[str]] = defaultdict(list)
        with self.session() as s:
            occurrences = {
                o.id: o for o in s.scalars(
                    select(OccurrenceRow).where(OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None))
                )
            }
            for occurrence_id, name in s.execute(
                select(OccurrenceRow.id, CustomerRow.name)
                .join(LinkRow, LinkRow.activity_id == OccurrenceRow.activity_id)
                .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                .where(OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None),
                       CustomerRow.gone_at.is_(None))
            ):
                wanted[occurrence_id].append(name)
        pending: dict[str, tuple[str, ...]] = {}
        for occurrence_id, names in wanted.items():
            labels = tuple(sorted(set(names)))
            occurrence = occurrences[occurrence_id]
            if occurrence.labels_written != "\n".join(labels):
                pending[occurrence.item_key] = labels
        return pending

    def mark_labels_written(self, source_id: int, written: dict[str, tuple[str, ...]]) -> None:
        with self.session() as s, s.begin():
            for key, labels in written.items():
                s.execute(
                    update(OccurrenceRow)
                    .where(OccurrenceRow.source_id == source_id, OccurrenceRow.item_key == key)
                    .values(labels_written="\n".join(labels))
                )

    # ---- duplicates and merges ------------------------------------------------------------

    @staticmethod
    def _merged_keys(s: Session, source_id: int, records: Sequence[CustomerRecord]) -> dict[str, int]:
        """Keys of these records (and of their companies) that were merged away -> survivor."""
        keys = list({r.key for r in records} | {r.company_key for r in records if r.company_key})
        merged: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            for key, into_id in s.execute(select(CustomerMergeRow.source_key, CustomerMergeRow.into_id).where(
                    CustomerMergeRow.source_id == source_id, CustomerMergeRow.source_key.in_(keys[start : start + 500]))):
                merged[key] = into_id
        return merged

    @staticmethod
    def _feed_survivor(s: Session, record: CustomerRecord, into_id: int, problems: list[Problem]) -> None:
        """A merged record read again: its identities go to the customer it was merged into."""
        wanted = [("email", e) for e in record.emails] + [("phone", p) for p in record.phones]
        wanted += [("domain", d) for d in record.domains]
        for kind, value in wanted:
            holder = s.scalar(select(IdentityRow).where(IdentityRow.kind == kind, IdentityRow.value == value))
            if holder is None:
                s.add(IdentityRow(customer_id=into_id, kind=kind, value=value))
                s.flush()
            elif holder.customer_id != into_id:
                owner = s.get(CustomerRow, holder.customer_id)
                if owner is not None and owner.gone_at is None:
                    problems.append(Problem(
                        key=f"{record.key}#{kind}:{value}", where=record.where,
                        reason=f"{kind} {value} is already on customer #{owner.id} {owner.name!r}; not added to "
                               f"customer #{into_id}, which {record.name!r} was merged into"))
                else:
                    holder.customer_id = into_id

    def merge_customers(self, merged_id: int, into_id: int) -> dict[str, int]:
        """Merge customer ``merged_id`` into ``into_id``. Every link, identity, person of a
        merged company and manual rule moves to the survivor; the merged customer leaves
        the lists, and is remembered so that re-reading its sheet row feeds the survivor
        instead of bringing it back. Returns what moved."""
        if merged_id == into_id:
            raise StoreError("a customer cannot be merged into itself")
        now = utcnow()
        with self.session() as s, s.begin():
            merged, into = s.get(CustomerRow, merged_id), s.get(CustomerRow, into_id)
            for label, row, cid in (("merge", merged, merged_id), ("keep", into, into_id)):
                if row is None or row.gone_at is not None:
                    raise StoreError(f"no live customer #{cid} to {label}")
            assert merged is not None and into is not None
            both = select(LinkRow.activity_id).where(LinkRow.customer_id == into_id)
            dropped = s.execute(delete(LinkRow).where(LinkRow.customer_id == merged_id,
                                                      LinkRow.activity_id.in_(both))).rowcount
            links = s.execute(update(LinkRow).where(LinkRow.customer_id == merged_id).values(
                customer_id=into_id, evidence=LinkRow.evidence + f" (merged from #{merged_id} {merged.name})"
            )).rowcount
            identities = s.execute(update(IdentityRow).where(IdentityRow.customer_id == merged_id)
                                   .values(customer_id=into_id)).rowcount
            people = s.execute(update(CustomerRow).where(CustomerRow.company_id == merged_id)
                               .values(company_id=into_id)).rowcount
            s.execute(update(ManualRuleRow).where(ManualRuleRow.customer_id == merged_id).values(customer_id=into_id))
            s.execute(update(CustomerMergeRow).where(CustomerMergeRow.into_id == merged_id).values(into_id=into_id))
            if merged.source_id is not None and merged.source_key:
                s.add(CustomerMergeRow(source_id=merged.source_id, source_key=merged.source_key, into_id=into_id,
                                       merged_id=merged_id, created_at=now))
            into.owner = into.owner or merged.owner
            merged.gone_at = now
            merged.updated_at = now
        log.info("merged customer #%d into #%d links=%d identities=%d", merged_id, into_id, links + dropped, identities)
        return {"links": links + dropped, "identities": identities, "people": people}

    def identity_conflicts(self) -> list[tuple[int, int, str, str]]:
        """(customer, customer holding the identity, kind, value) for each identity a customer
        record could not get because another customer has it: the surest duplicate signal."""
        found: list[tuple[int, int, str, str]] = []
        with self.session() as s:
            rows = s.execute(select(QuarantineRow.source_id, QuarantineRow.item_key).where(
                QuarantineRow.item_key.contains("#"))).all()
            for source_id, item_key in rows:
                key, _, identity = item_key.rpartition("#")
                kind, _, value = identity.partition(":")
                if kind not in ("email", "phone", "domain") or not value:
                    continue
                customer = s.scalar(select(CustomerRow.id).where(
                    CustomerRow.source_id == source_id, CustomerRow.source_key == key, CustomerRow.gone_at.is_(None)))
                holder = s.scalar(select(IdentityRow.customer_id).where(IdentityRow.kind == kind,
                                                                         IdentityRow.value == value))
                if customer is not None and holder is not None and customer != holder:
                    found.append((customer, holder, kind, value))
        return found

    # ---- correspondents (contact auto-creation) ----------------------------------------

    @staticmethod
    def _count_correspondents(s: Session, counts: dict[str, tuple[str, int, int]], now: datetime) -> None:
        addresses = sorted(counts)
        held: dict[str, CorrespondentRow] = {}
        for start in range(0, len(addresses), 500):
            for row in s.scalars(select(CorrespondentRow).where(
                    CorrespondentRow.address.in_(addresses[start : start + 500]))):
                held[row.address] = row
        for address in addresses:
            name, inbound, outbound = counts[address]
            row = held.get(address)
            if row is None:
                s.add(CorrespondentRow(address=address, name=name[:500], inbound=inbound, outbound=outbound,
                                       last_seen_at=now))
            else:
                row.inbound += inbound
                row.outbound += outbound
                row.name = row.name or name[:500]
                row.last_seen_at = now

    def stored_mail(self) -> Iterator[ActivityRecord]:
        """Every live stored email with its direction and participants (nothing else), for
        counting correspondents when auto-creation is turned on after mail was read."""
        with self.session() as s:
            for activity_id, direction, participants in s.execute(
                    select(ActivityRow.id, ActivityRow.direction, ActivityRow.participants)
                    .where(ActivityRow.gone_at.is_(None), ActivityRow.kind == "email")).yield_per(2000):
                yield ActivityRecord(key=str(activity_id), kind=ActivityKind.EMAIL, occurred_at=utcnow(),
                                     direction=Direction(direction),
                                     participants=_participants_from_json(participants or []))

    def count_correspondents(self, counts: dict[str, tuple[str, int, int]]) -> None:
        with self.session() as s, s.begin():
            self._count_correspondents(s, counts, utcnow())

    def correspondents(self, min_inbound: int, min_outbound: int) -> list[tuple[str, str]]:
        """(address, display name) of outside correspondents with at least that much mail
        each way and no customer identity yet."""
        with self.session() as s:
            taken = select(IdentityRow.value).where(IdentityRow.kind == "email")
            return [tuple(r) for r in s.execute(  # type: ignore[misc]
                select(CorrespondentRow.address, CorrespondentRow.name)
                .where(CorrespondentRow.inbound >= min_inbound, CorrespondentRow.outbound >= min_outbound,
                       CorrespondentRow.address.not_in(taken))
                .order_by(CorrespondentRow.address))]

    # ---- manual rules (learned from the Review sheet) ---------------------------------

    def manual_rule_rows(self) -> list[tuple[str, str, int]]:
        """(kind, normalized value, customer id) of every resolved manual rule, oldest first."""
        with self.session() as s:
            return list(s.execute(
                select(ManualRuleRow.kind, ManualRuleRow.value, ManualRuleRow.customer_id)
                .where(ManualRuleRow.customer_id.is_not(None), ManualRuleRow.kind.not_in(("pending", "nomerge")))
                .order_by(ManualRuleRow.id)
            ).all())

    def manual_rules(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [
                {"id": r.id, "kind": r.kind, "value": r.value, "customer_id": r.customer_id,
                 "customer": r.customer_text, "origin": r.origin, "note": r.note, "created_at": r.created_at}
                for r in s.scalars(select(ManualRuleRow).order_by(ManualRuleRow.id))
            ]

    def pending_assignments(self) -> dict[str, tuple[str, str]]:
        """Activity ref -> (customer name as typed, why it did not resolve)."""
        with self.session() as s:
            return {r.value: (r.customer_text, r.note or "") for r in
                    s.scalars(select(ManualRuleRow).where(ManualRuleRow.kind == "pending"))}

    def save_assignment(self, ref: str, keys: Sequence[tuple[str, str]], customer_id: int | None, text: str,
                        note: str | None = None) -> None:
        """Record what an admin typed on Review for activity ``ref``: rules for ``keys`` to
        ``customer_id``, or, when it did not resolve (``customer_id`` None), a pending entry
        with ``note``. A rule for the same key made earlier is replaced."""
        now = utcnow()
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "pending", ManualRuleRow.value == ref))
            entries = [("pending", ref)] if customer_id is None else list(keys)
            for kind, value in entries:
                s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == kind, ManualRuleRow.value == value))
                s.add(ManualRuleRow(kind=kind, value=value, customer_id=customer_id, customer_text=text,
                                    origin=f"review {ref}", note=note, created_at=now))

    def dismiss_suggestion(self, ref: str, text: str) -> None:
        """An admin answered "no" to a merge suggestion: do not suggest it again."""
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "nomerge", ManualRuleRow.value == ref))
            s.add(ManualRuleRow(kind="nomerge", value=ref, customer_id=None, customer_text=text,
                                origin=f"review {ref}", note=None, created_at=utcnow()))

    def dismissed_suggestions(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(ManualRuleRow.value).where(ManualRuleRow.kind == "nomerge")))

    def drop_pending(self, ref: str) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(ManualRuleRow).where(ManualRuleRow.kind == "pending", ManualRuleRow.value == ref))

    def delete_manual_rule(self, rule_id: int) -> bool:
        with self.session() as s, s.begin():
            return s.execute(delete(ManualRuleRow).where(ManualRuleRow.id == rule_id)).rowcount > 0
    def customer_timelines(self, source_id: int, per_customer: int,
                           all_sources: bool = True) -> list[dict[str, Any]]:
        """Customers linked to this source's live items, each with its newest activities
        (from every source, or only this one), newest first: for contact write-back."""
        with self.session() as s:
            ids = sorted(set(s.scalars(
                select(LinkRow.customer_id)
                .join(OccurrenceRow, OccurrenceRow.activity_id == LinkRow.activity_id)
                .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                .where(OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None),
                       CustomerRow.gone_at.is_(None))
            )))
            found: list[dict[str, Any]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                customers = {c.id: c for c in s.scalars(select(CustomerRow).where(CustomerRow.id.in_(chunk)))}
                companies = {c.id: c.name for c in s.scalars(select(CustomerRow).where(
                    CustomerRow.id.in_({c.company_id for c in customers.values() if c.company_id})))}
                emails: dict[int, list[str]] = defaultdict(list)
                for customer_id, value in s.execute(
                    select(IdentityRow.customer_id, IdentityRow.value)
                    .where(IdentityRow.customer_id.in_(chunk), IdentityRow.kind == "email").order_by(IdentityRow.value)
                ):
                    emails[customer_id].append(value)
                query = (select(LinkRow.customer_id, ActivityRow)
                         .join(ActivityRow, ActivityRow.id == LinkRow.activity_id)
                         .where(LinkRow.customer_id.in_(chunk), ActivityRow.gone_at.is_(None))
                         .order_by(LinkRow.customer_id, ActivityRow.occurred_at.desc(), ActivityRow.id.desc()))
                if not all_sources:
                    query = query.where(ActivityRow.id.in_(select(OccurrenceRow.activity_id).where(
                        OccurrenceRow.source_id == source_id, OccurrenceRow.gone_at.is_(None))))
                recent: dict[int, list[dict[str, Any]]] = defaultdict(list)
                for customer_id, activity in s.execute(query):
                    if len(recent[customer_id]) < per_customer:
                        recent[customer_id].append({"occurred_at": activity.occurred_at, "kind": activity.kind,
                                                    "direction": activity.direction, "subject": activity.subject,
                                                    "hints": activity.hints or {}})
                for customer_id in chunk:
                    customer = customers[customer_id]
                    found.append({"id": customer_id, "name": customer.name, "kind": customer.kind,
                                  "company": companies.get(customer.company_id) if customer.company_id else None,
                                  "emails": emails.get(customer_id, []), "activities": recent.get(customer_id, [])})
        return found

    # ---- the identities matching reads --------------------------------------------

    def identity_rows(self) -> list[tuple[int, str, str]]:
        """(customer id, kind, value) of every live customer's identities."""
        with self.session() as s:
            return list(
                s.execute(
                    select(IdentityRow.customer_id, IdentityRow.kind, IdentityRow.value)
                    .join(CustomerRow, CustomerRow.id == IdentityRow.customer_id)
                    .where(CustomerRow.gone_at.is_(None))
                ).all()
            )

    def customers_signature(self) -> tuple[Any, ...]:
        """Changes whenever anything the matcher indexes changes: customers (added, edited,
        gone, merged), identities or manual rules. Cheap: a few aggregates."""
        with self.session() as s:
            customers = s.execute(select(func.count(), func.max(CustomerRow.id), func.max(CustomerRow.updated_at))
                                  .select_from(CustomerRow)).one()
            identities = s.execute(select(func.count(), func.max(IdentityRow.id)).select_from(IdentityRow)).one()
            rules = s.execute(select(func.count(), func.max(ManualRuleRow.id)).select_from(ManualRuleRow)).one()
        return (*customers, *identities, *rules)

    def customer_tuples(self) -> list[tuple[int, str, str, int | None]]:
        """(id, kind, name, company id) of every live customer: what the matcher indexes."""
        with self.session() as s:
            return [tuple(r) for r in s.execute(  # type: ignore[misc]
                select(CustomerRow.id, CustomerRow.kind, CustomerRow.name, CustomerRow.company_id)
                .where(CustomerRow.gone_at.is_(None)).order_by(CustomerRow.id))]

    def customer_rows(self) -> list[CustomerRow]:
        with self.session() as s:
            return list(s.scalars(select(CustomerRow).where(CustomerRow.gone_at.is_(None)).order_by(CustomerRow.id)))

    # ---- outputs -----------------------------------------------------------------

    def output_hash(self, path: str) -> str | None:
        with self.session() as s:
            row = s.get(OutputRow, path)
            return row.content_hash if row else None

    def output_written_at(self, path: str) -> datetime | None:
        with self.session() as s:
            row = s.get(OutputRow, path)
            return row.written_at if row else None

    def set_output_hash(self, path: str, content_hash: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(OutputRow, path)
            if row is None:
                s.add(OutputRow(path=path, content_hash=content_hash, written_at=utcnow()))
            else:
                row.content_hash, row.written_at = content_hash, utcnow()

    def flag(self, name: str) -> bool:
        with self.session() as s:
            return s.get(StoreFlagRow, name) is not None

    def set_flag(self, name: str) -> None:
        with self.session() as s, s.begin():
            if s.get(StoreFlagRow, name) is None:
                s.add(StoreFlagRow(name=name, set_at=utcnow()))

    # ---- reading for timeline, status and the CLI -----------------------------------

    def activities(self, limit: int | None = None, customer_ids: Iterable[int] | None = None,
                   unmatched_only: bool = False) -> list[dict[str, Any]]:
        """Live activities newest first, each with its linked customers and where it was seen
        (``unmatched_only``: those no customer is linked to, as the Review sheet lists them)."""
        with self.session() as s:
            query = select(ActivityRow).where(ActivityRow.gone_at.is_(None))
            if unmatched_only:
                query = query.where(ActivityRow.id.not_in(select(LinkRow.activity_id)))
            if customer_ids is not None:
                ids = list(customer_ids)
                query = query.where(
                    ActivityRow.id.in_(select(LinkRow.activity_id).where(LinkRow.customer_id.in_(ids)))
                )
            query = query.order_by(ActivityRow.occurred_at.desc(), ActivityRow.id.desc())
            if limit is not None:
                query = query.limit(limit)
            rows = list(s.scalars(query))
            ids = [r.id for r in rows]
            links: dict[int, list[dict[str, Any]]] = defaultdict(list)
            seen: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                for link_row, name, kind in s.execute(
                    select(LinkRow, CustomerRow.name, CustomerRow.kind)
                    .join(CustomerRow, CustomerRow.id == LinkRow.customer_id)
                    .where(LinkRow.activity_id.in_(chunk))
                    .order_by(CustomerRow.kind, CustomerRow.name)
                ):
                    links[link_row.activity_id].append(
                        {
                            "customer_id": link_row.customer_id,
                            "name": name,
                            "kind": kind,
                            "rule": link_row.rule,
                            "confidence": link_row.confidence,
                            "evidence": link_row.evidence,
                        }
                    )
                for occ, source_name in s.execute(
                    select(OccurrenceRow, SourceRow.name)
                    .join(SourceRow, SourceRow.id == OccurrenceRow.source_id)
                    .where(OccurrenceRow.activity_id.in_(chunk), OccurrenceRow.gone_at.is_(None))
                    .order_by(SourceRow.name, OccurrenceRow.item_key)
                ):
                    seen[occ.activity_id].append(
                        {"source": source_name, "key": occ.item_key, "mailbox": occ.mailbox,
                         "folder": occ.folder, "link": occ.link}
                    )
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "occurred_at": r.occurred_at,
                "direction": r.direction,
                "subject": r.subject,
                "snippet": r.snippet,
                "participants": r.participants,
                "message_id": r.message_id,
                "thread_key": r.thread_key,
                "amount": r.amount,
                "currency": r.currency,
                "hints": r.hints or {},
                "customers": links.get(r.id, []),
                "seen_in": seen.get(r.id, []),
            }
            for r in rows
        ]

    def find_customers(self, query: str) -> list[CustomerRow]:
        """A customer by id, exact identity (email/domain), or name (case-insensitive substring)."""
        with self.session() as s:
            live = select(CustomerRow).where(CustomerRow.gone_at.is_(None))
            if query.isdigit():
                return list(s.scalars(live.where(CustomerRow.id == int(query))))
            needle = query.strip().lower()
            by_identity = list(
                s.scalars(
                    live.join(IdentityRow, IdentityRow.customer_id == CustomerRow.id).where(IdentityRow.value == needle)
                )
            )
            if by_identity:
                return by_identity
            return list(s.scalars(live.where(func.lower(CustomerRow.name).contains(needle)).order_by(CustomerRow.name)))

    def customer_summaries(self, now: datetime) -> list[dict[str, Any]]:
        """One row per live customer: last contact and the next meeting (cancelled meetings are
        neither), 30/90-day counts of past activities, owner, company."""
        since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
        with self.session() as s:
            customers = list(s.scalars(select(CustomerRow).where(CustomerRow.gone_at.is_(None))))
            names = {c.id: c.name for c in customers}
            stats: dict[int, dict[str, Any]] = {
                c.id: {"first": None, "last": None, "next": None, "n30": 0, "n90": 0, "total": 0} for c in customers
            }
            for customer_id, occurred_at, kind, hints in s.execute(
                select(LinkRow.customer_id, ActivityRow.occurred_at, ActivityRow.kind, ActivityRow.hints)
                .join(ActivityRow, ActivityRow.id == LinkRow.activity_id)
                .where(ActivityRow.gone_at.is_(None))
            ):
                entry = stats.get(customer_id)
                if entry is None:
                    continue
                if (hints or {}).get("status") == "cancelled":
                    continue  # a meeting that did not happen is no contact
                if occurred_at > now:
                    # Only meetings lie ahead; the soonest is what staff want to see.
                    if kind == "meeting" and (entry["next"] is None or occurred_at < entry["next"]):
                        entry["next"] = occurred_at
                    continue
                entry["total"] += 1
                if entry["last"] is None or occurred_at > entry["last"]:
                    entry["last"] = occurred_at
                if entry["first"] is None or occurred_at < entry["first"]:
                    entry["first"] = occurred_at
                if occurred_at >= since_90:
                    entry["n90"] += 1
                    if occurred_at >= since_30:
                        entry["n30"] += 1
            emails: dict[int, list[str]] = defaultdict(list)
            for customer_id, value in s.execute(
                select(IdentityRow.customer_id, IdentityRow.value).where(IdentityRow.kind == "email").order_by(IdentityRow.value)
            ):
                emails[customer_id].append(value)
        return [
            {
                "id": c.id,
                "kind": c.kind,
                "name": c.name,
                "company": names.get(c.company_id) if c.company_id else None,
                "owner": c.owner,
                "created_at": c.created_at,
                "first_contact": stats[c.id]["first"],
                "emails": emails.get(c.id, []),
                "last_contact": stats[c.id]["last"],
                "next_meeting": stats[c.id]["next"],
                "count_30": stats[c.id]["n30"],
                "count_90": stats[c.id]["n90"],
                "total": stats[c.id]["total"],
            }
            for c in sorted(customers, key=lambda c: (c.name.lower(), c.id))
        ]

    def status(self) -> dict[str, Any]:
        with self.session() as s:
            _one_snapshot(s)  # the counts must agree with each other while a batch commits
            customers = s.scalar(select(func.count()).select_from(CustomerRow).where(CustomerRow.gone_at.is_(None)))
            activities = s.scalar(select(func.count()).select_from(ActivityRow).where(ActivityRow.gone_at.is_(None)))
            unmatched = s.scalar(
                select(func.count())
                .select_from(ActivityRow)
                .where(ActivityRow.gone_at.is_(None), ~ActivityRow.id.in_(select(LinkRow.activity_id)))
            )
            quarantined = s.scalar(select(func.count()).select_from(QuarantineRow))
            per_source: dict[int, dict[str, Any]] = {}
            for row in s.scalars(select(SourceRow).order_by(SourceRow.name)):
                per_source[row.id] = {
                    "name": row.name,
                    "kind": row.kind,
                    "last_sync": row.last_success_at.isoformat() if row.last_success_at else None,
                    "last_attempt": row.last_attempt_at.isoformat() if row.last_attempt_at else None,
                    "ingested": 0,
                    "quarantined": 0,
                    "skipped": {},
                    "error": row.last_error,
                    "failing_since": row.failing_since.isoformat() if row.failing_since else None,
                    "consecutive_failures": row.consecutive_failures,
                    "next_retry": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
                    "backlog": row.backlog,
                    "suspect": row.suspect_reason,
                }
            for source_id, count in s.execute(
                select(OccurrenceRow.source_id, func.count())
                .where(OccurrenceRow.gone_at.is_(None))
                .group_by(OccurrenceRow.source_id)
            ):
                per_source[source_id]["ingested"] += count
            for source_id, count in s.execute(
                select(CustomerRow.source_id, func.count())
                .where(CustomerRow.gone_at.is_(None), CustomerRow.source_id.is_not(None))
                .group_by(CustomerRow.source_id)
            ):
                per_source[source_id]["ingested"] += count
            for source_id, count in s.execute(
                select(QuarantineRow.source_id, func.count()).group_by(QuarantineRow.source_id)
            ):
                per_source[source_id]["quarantined"] = count
            for source_id, reason, count in s.execute(
                select(SkippedRow.source_id, SkippedRow.reason, func.count()).group_by(
                    SkippedRow.source_id, SkippedRow.reason
                )
            ):
                per_source[source_id]["skipped"][reason] = count
        return {
            "customers": customers,
            "activities": activities,
            "unmatched": unmatched,
            "quarantined": quarantined,
            "sources": list(per_source.values()),
        }

    def quarantine(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [
                {"source": name, "key": q.item_key, "reason": q.reason, "where": q.location,
                 "first_seen": q.first_seen_at.isoformat()}
                for q, name in s.execute(
                    select(QuarantineRow, SourceRow.name)
                    .join(SourceRow, SourceRow.id == QuarantineRow.source_id)
                    .order_by(SourceRow.name, QuarantineRow.item_key)
                )
            ]
