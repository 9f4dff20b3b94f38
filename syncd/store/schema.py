"""The store's tables, as SQLAlchemy 2.x typed ORM classes.

Invariants the constraints enforce (on SQLite and PostgreSQL alike):

* an item of a source is stored once: ``occurrences`` is unique on (source, item key);
* an email is one activity however many mailboxes hold it: ``activities.message_id`` is
  unique, and each mailbox copy is an ``occurrence`` of it;
* an identity (normalized email, domain, phone) belongs to one customer;
* a link between an activity and a customer carries the rule and confidence that made it.

The schema is created and changed only by Alembic migrations (``migrations/``); a test
checks the migrations produce exactly these tables.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL's would differ."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; connectors must give UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suspect_reason: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(Text)  # advice that is not an error (slow IDLE)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    backlog: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CursorRow(Base):
    __tablename__ = "cursors"
    __table_args__ = (UniqueConstraint("source_id", "folder", name="uq_cursors_source_folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerRow(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("source_id", "source_key", name="uq_customers_source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(500))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    owner: Mapped[str] = mapped_column(String(255), default="")
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    source_key: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Details from the customer list, compared to find duplicates (migration 0010).
    street: Mapped[str | None] = mapped_column(String(500))
    postcode: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(500))
    country: Mapped[str | None] = mapped_column(String(500))
    birth_date: Mapped[date | None] = mapped_column(Date())
    tax_id: Mapped[str | None] = mapped_column(String(500))
    website: Mapped[str | None] = mapped_column(String(500))


class IdentityRow(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identities_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))


class ActivityRow(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    direction: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str | None] = mapped_column(Text)
    participants: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    hints: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    thread_key: Mapped[str | None] = mapped_column(String(998))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OccurrenceRow(Base):
    """One place an activity was seen: a message in a mailbox folder, a row in a sheet."""

    __tablename__ = "occurrences"
    __table_args__ = (UniqueConstraint("source_id", "item_key", name="uq_occurrences_source_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(512))
    folder: Mapped[str] = mapped_column(String(255), default="")
    mailbox: Mapped[str] = mapped_column(String(320), default="")
    link: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(128), default="")
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    labels_written: Mapped[str | None] = mapped_column(Text)


class LinkRow(Base):
    __tablename__ = "links"

    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    rule: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[str] = mapped_column(Text, default="")


class QuarantineRow(Base):
    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("source_id", "item_key", name="uq_quarantine_source_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[str] = mapped_column(String(128), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SkippedRow(Base):
    """An item read and deliberately not logged (internal-only, automated...), with why.

    Recording it keeps the source's progress honest: "synced, 40 skipped as automated"
    instead of a silent gap.
    """

    __tablename__ = "skipped"
    __table_args__ = (UniqueConstraint("source_id", "item_key", name="uq_skipped_source_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(128), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class StoreFlagRow(Base):
    """A one-time fact of the store ("stored mail was counted once"), set when it became true."""

    __tablename__ = "store_flags"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutputRow(Base):
    """What was last written to an output, so an unchanged timeline is not rewritten."""

    __tablename__ = "outputs"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ManualRuleRow(Base):
    """An assignment an admin made on the Review sheet: items with this address, phone or
    customer name belong to that customer. ``customer_id`` is empty while the typed name
    matches no customer; ``note`` then says why, and Review shows it."""

    __tablename__ = "manual_rules"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_manual_rules_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(512))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    customer_text: Mapped[str] = mapped_column(String(500))
    origin: Mapped[str] = mapped_column(String(255), default="")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CorrespondentRow(Base):
    """Outside addresses mail was exchanged with, by direction: what the contact
    auto-creation policy ("people who write to us", "both directions") decides on."""

    __tablename__ = "correspondents"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    inbound: Mapped[int] = mapped_column(Integer, default=0)
    outbound: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerMergeRow(Base):
    """A customer record merged into another (approved on Review or by `syncd merge`).

    Keyed by the merged record's source and key, so when its sheet row is read again its
    identities go to the customer it was merged into instead of bringing it back."""

    __tablename__ = "customer_merges"
    __table_args__ = (UniqueConstraint("source_id", "source_key", name="uq_customer_merges_source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(255))
    into_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    merged_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


Index("ix_activities_thread_key", ActivityRow.thread_key)


class SuppressionRow(Base):
    """A salted digest of an erased person's address or name (``syncd forget``): re-syncs and
    workbooks do not bring them back, and the store does not say who they were."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("kind", "digest", name="uq_suppressions_kind_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    """One statement of a customer's legal basis, as a customer list said it; a change is a
    new row, never an update, so the history is kept."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    basis: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(255))
    given_on: Mapped[date | None] = mapped_column(Date())
    withdrawn_on: Mapped[date | None] = mapped_column(Date())
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """What an erasure or a retention purge did: when, who, how many; no personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class StoreSecretRow(Base):
    """Values the store makes for itself once (the suppression salt)."""

    __tablename__ = "store_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LabelCleanupRow(Base):
    """Labels syncd wrote on an item whose activity was deleted (an erased person's mail):
    taken off by the source's next write-back, then this row goes too."""

    __tablename__ = "label_cleanups"
    __table_args__ = (UniqueConstraint("source_id", "item_key", name="uq_label_cleanups_source_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(String(512))
    labels: Mapped[str] = mapped_column(Text)
