"""Read models: what the store hands to the outputs, the CLI and the service, typed.

The store's tables never leave the store; what leaves it is these frozen dataclasses, so
a renamed field fails at the type check and in the tests instead of turning into a
silently empty column. ``as_json`` gives the plain shapes ``--json`` prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from syncd.model.records import ConsentStatement, CustomerDetails, Participant


@dataclasses.dataclass(frozen=True, slots=True)
class LinkedCustomer:
    """A customer an activity is linked to, with the rule and evidence of the link."""

    customer_id: int
    name: str
    kind: str
    rule: str
    confidence: float
    evidence: str


@dataclasses.dataclass(frozen=True, slots=True)
class Sighting:
    """Where an activity was seen: a source, its item key, and the mailbox folder or sheet."""

    source: str
    key: str
    mailbox: str
    folder: str
    link: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ActivityView:
    """A live activity with its links and sightings, as the timeline shows it."""

    id: int
    kind: str
    occurred_at: datetime
    direction: str
    subject: str
    snippet: str
    participants: tuple[Participant, ...]
    message_id: str | None
    thread_key: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    hints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    customers: tuple[LinkedCustomer, ...] = ()
    seen_in: tuple[Sighting, ...] = ()

    def hint(self, name: str) -> str | None:
        return self.hints.get(name)

    @property
    def cancelled(self) -> bool:
        return self.hints.get("status") == "cancelled"


Cell = str | int | float | datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class ExportSheet:
    """One table of a person's export: what one kind of store row says about them."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PersonExport:
    """Everything the store holds about one person (GDPR Art. 15 and 20), as tables."""

    customer_id: int
    name: str
    sheets: tuple[ExportSheet, ...]

    def as_plain(self) -> dict[str, list[dict[str, Cell]]]:
        return {
            sheet.title: [dict(zip(sheet.headers, row, strict=True)) for row in sheet.rows] for sheet in self.sheets
        }


@dataclasses.dataclass(frozen=True, slots=True)
class LabelState:
    """One item's labels: the customers it is linked to now, and what syncd last wrote on it
    (rendered labels; ``legacy``: customer names, as syncd wrote them before 2026-12)."""

    names: tuple[str, ...]
    written: tuple[str, ...] = ()
    legacy: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PrivacyStatus:
    """Erasures done, activities purged by retention, and customer-list rows that still list
    someone syncd must not collect (``syncd quarantine`` says where)."""

    erasures: int = 0
    purged: int = 0
    last_purge: datetime | None = None
    rows_listing_suppressed: int = 0

    def summary(self) -> str:
        last = self.last_purge.isoformat(timespec="seconds") if self.last_purge else "never"
        text = f"erasures={self.erasures} purged_by_retention={self.purged} last_purge={last}"
        if self.rows_listing_suppressed:
            text += (
                f" WORKBOOK ROWS STILL LIST {self.rows_listing_suppressed} suppressed or erased people "
                "(not imported; syncd quarantine shows where)"
            )
        return text


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One erasure or retention purge: when, who, how many. No personal data."""

    id: int
    at: datetime
    action: str
    actor: str
    counts: Mapping[str, int]


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerProfile:
    """Everything the store knows of one live customer that duplicate detection compares."""

    id: int
    kind: str
    name: str
    company_id: int | None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    details: CustomerDetails = CustomerDetails()


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerSummary:
    """One row of the Customers sheet, before rendering."""

    id: int
    kind: str
    name: str
    company: str | None
    owner: str
    created_at: datetime | None
    first_contact: datetime | None
    emails: tuple[str, ...]
    last_contact: datetime | None
    next_meeting: datetime | None
    count_30: int
    count_90: int
    total: int
    consent: ConsentStatement | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NoteActivity:
    """An activity as a contact note lists it."""

    occurred_at: datetime
    kind: str
    direction: str
    subject: str
    cancelled: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerTimeline:
    """A customer with its newest activities, for the contact written back to a mailbox."""

    id: int
    name: str
    kind: str
    company: str | None
    emails: tuple[str, ...]
    activities: tuple[NoteActivity, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerRef:
    """A customer found by id, identity or name; ``company_id``: a person's company."""

    id: int
    name: str
    kind: str
    company_id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source's counts and health, as `syncd status` and the metrics show them."""

    name: str
    kind: str
    last_sync: datetime | None = None
    last_attempt: datetime | None = None
    ingested: int = 0
    quarantined: int = 0
    skipped: Mapping[str, int] = dataclasses.field(default_factory=dict)
    error: str | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    next_retry: datetime | None = None
    backlog: int = 0
    suspect: str | None = None
    notice: str | None = None  # advice that is not an error, e.g. IDLE notifications arrive late


@dataclasses.dataclass(frozen=True, slots=True)
class OutputHealth:
    """An output (a workbook, a contact folder) and whether its last write failed."""

    path: str
    written_at: datetime | None
    error: str | None = None
    failing_since: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStatus:
    """The store's counts, read in one snapshot (they agree with each other)."""

    customers: int
    activities: int
    unmatched: int
    quarantined: int
    sources: tuple[SourceHealth, ...]
    outputs: tuple[OutputHealth, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class QuarantineEntry:
    source: str
    key: str
    reason: str
    where: str
    first_seen: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ManualRuleEntry:
    """A rule learned on Review, a pending answer (``kind`` "pending") or a dismissed merge ("nomerge")."""

    id: int
    kind: str
    value: str
    customer_id: int | None
    customer: str
    origin: str
    note: str | None
    created_at: datetime


def as_json(value: Any) -> Any:
    """A read model (or a list of them) as JSON-ready plain data: dates in ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums (Role)
        return value.value
    return value
