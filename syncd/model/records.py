"""Normalized records: the one vocabulary connectors, mapping and the store share.

Connectors turn protocol items (a MIME message, a sheet row, an event) into these
frozen dataclasses; nothing downstream of a connector sees protocol objects. Every
record carries ``key``: the item's identity inside its source (a Maildir key, an IMAP
``UIDVALIDITY/UID``, a row key). ``(source name, key)`` is what makes ingestion
idempotent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


class ActivityKind(str, enum.Enum):
    EMAIL = "email"
    MEETING = "meeting"
    CALL = "call"
    ORDER = "order"
    NOTE = "note"


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class Role(str, enum.Enum):
    FROM = "from"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    ORGANIZER = "organizer"
    ATTENDEE = "attendee"


class CustomerKind(str, enum.Enum):
    COMPANY = "company"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class Participant:
    """One address on an item. ``email`` is already lower-cased and stripped."""

    email: str
    name: str = ""
    role: Role = Role.TO


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One email, meeting, call, order or note, as a connector read it.

    ``occurred_at`` is timezone-aware UTC. ``message_id`` (without angle brackets) is
    the cross-mailbox identity of an email: the same message in two staff mailboxes
    becomes one activity. ``hints`` carries raw header values mapping needs to decide
    whether mail is automated (Auto-Submitted, Precedence, List-Id...), keyed in lower
    case; connectors pass them through without judging them.
    """

    key: str
    kind: ActivityKind
    occurred_at: datetime
    direction: Direction = Direction.UNKNOWN
    subject: str = ""
    snippet: str = ""
    participants: tuple[Participant, ...] = ()
    message_id: str | None = None
    thread_key: str | None = None
    mailbox: str = ""
    folder: str = ""
    link: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    body: str | None = None
    version: str = ""
    hints: tuple[tuple[str, str], ...] = ()

    def hint(self, name: str) -> str | None:
        for key, value in self.hints:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class CustomerDetails:
    """What a customer list may say about a customer beyond its name and identities.

    Compared to find duplicate customers (two rows with one address and birth date are
    one person however their names are spelt). Text as the sheet holds it; mapping
    normalizes for comparing. ``tax_id`` is a VAT number, a company registration or a
    personal tax id, whichever the sheet keeps.
    """

    street: str = ""
    postcode: str = ""
    city: str = ""
    country: str = ""
    birth_date: date | None = None
    tax_id: str = ""
    website: str = ""

    def is_empty(self) -> bool:
        return self == _NO_DETAILS

    def filled_from(self, other: CustomerDetails) -> CustomerDetails:
        """These details, with what is empty here taken from ``other`` (a merged duplicate)."""
        return CustomerDetails(
            street=self.street or other.street,
            postcode=self.postcode or other.postcode,
            city=self.city or other.city,
            country=self.country or other.country,
            birth_date=self.birth_date or other.birth_date,
            tax_id=self.tax_id or other.tax_id,
            website=self.website or other.website,
        )


_NO_DETAILS = CustomerDetails()


@dataclass(frozen=True, slots=True)
class ConsentStatement:
    """A customer's legal basis for being kept (GDPR Art. 6), as a customer list states it.

    ``basis``: consent, contract, legitimate_interest or none; ``scope``: what it covers
    ("marketing", "history"; empty: everything); ``withdrawn_on`` ends it.
    """

    basis: str
    scope: str = ""
    given_on: date | None = None
    withdrawn_on: date | None = None

    def allows(self, purpose: str) -> bool:
        """Whether this statement covers ``purpose`` today."""
        if self.withdrawn_on is not None or self.basis == "none":
            return False
        scopes = {s.strip().lower() for s in self.scope.replace(";", ",").split(",") if s.strip()}
        return not scopes or purpose in scopes


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A company or a person from a customer source (a sheet row, a contact).

    ``company_key`` ties a person to the company record with that key in the same
    source; ``company_id`` to a stored company of any source. Identities (emails, phones,
    domains) are normalized by the connector only as far as the protocol requires;
    mapping normalizes them for matching.
    """

    key: str
    kind: CustomerKind
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    company_key: str | None = None
    owner: str = ""
    version: str = ""
    where: str = ""
    company_id: int | None = None  # a company held elsewhere in the store (auto-created contacts)
    details: CustomerDetails = _NO_DETAILS
    consent: ConsentStatement | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """An item that could not become a record. It goes to the quarantine with ``reason``."""

    key: str
    reason: str
    where: str = ""
    version: str = ""


Record = ActivityRecord | CustomerRecord


@dataclass(frozen=True, slots=True)
class Batch:
    """What a connector yields: records, problems and removals that commit together.

    ``pending`` is how many items the connector knows are still to read after this batch
    (shown as the source's backlog), when it knows.
    ``cursor`` is the connector's opaque position *after* this batch (per ``folder``);
    the store commits it in the same transaction as the records, so a crash can neither
    skip nor repeat work. ``listing_complete`` says ``removed`` comes from a full listing
    of the source (``listed`` items present), which the pipeline's empty-source guard
    inspects before applying removals. ``outside_window`` counts items the source lists
    but leaves unread because they are older than the backfill window, so that every
    listed item is accounted for: ingested, skipped, quarantined or outside the window.
    """

    records: tuple[Record, ...] = ()
    problems: tuple[Problem, ...] = ()
    removed: tuple[str, ...] = ()
    folder: str = ""
    cursor: str | None = None
    listing_complete: bool = False
    listed: int = 0
    pending: int | None = None
    outside_window: int = 0


@dataclass(frozen=True, slots=True)
class LabelChange:
    """What write-back does to one item's labels (IMAP keywords, Exchange categories): put
    ``add`` on, take ``remove`` off. ``remove`` holds only labels syncd itself wrote there
    earlier (a customer merged away, renamed or erased); a label the user set is never in it."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerNote:
    """A customer's recent timeline as text, for a contact written back into a mailbox."""

    name: str
    text: str
    emails: tuple[str, ...] = ()
    company: str | None = None


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A decided link between an activity and a customer, with the rule that made it."""

    customer_id: int
    rule: str
    confidence: float
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store knows of a source, handed to its connector at the start of a pass.

    ``cursors`` maps folder to the cursor last committed for it; ``known`` maps every item
    key the store holds for the source (stored, skipped or quarantined) to its version, so
    a listing connector reads only what is new or changed and reports what disappeared.
    """

    cursors: dict[str, str]
    known: dict[str, str]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What a connector should fetch, set from the store config."""

    snippet_chars: int = 240
    keep_bodies: bool = False
    batch_size: int = 200
