"""What the Graph and EWS kinds share and neither owns: mailbox settings, contact folders as customers, categories.

Both read the same Exchange mailbox model (folders, a calendar, contacts, categories)
through different APIs; the parts that do not depend on the API live here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import Field, field_validator

from syncd.model.records import Batch, CustomerKind, CustomerRecord, SourceState
from syncd.model.settings import LabelWriting, MailSourceSettings


class ExchangeMailboxFields(MailSourceSettings):
    """What is read from and written back to an Exchange mailbox (shared by the graph and ews kinds)."""

    mailbox: str | None = Field(
        default=None, description="The mailbox (user principal name or primary SMTP address). Default: owner."
    )
    folders: list[str] = Field(
        default_factory=lambda: ["inbox", "sentitems"],
        description="Mail folders read, by well-known name (inbox, sentitems, archive...) or display name "
        '(a subfolder as "Inbox/Customers").',
    )
    backfill_days: int = Field(default=365, ge=1, le=3650, description="How far back the first sync reads mail.")
    calendar: bool = Field(default=True, description="Read the mailbox's default calendar (meetings).")
    past_days: int = Field(default=365, ge=0, le=3650, description="How far back meetings are read.")
    future_days: int = Field(default=180, ge=0, le=3650, description="How far ahead meetings are read.")
    write_categories: bool = Field(
        default=False,
        description="Add a category per matched customer to each message and meeting; the user's own categories "
        "are kept. Graph also adds missing ones to the master category list (needs Mail.ReadWrite, "
        "Calendars.ReadWrite, MailboxSettings.ReadWrite).",
    )
    write_contacts: bool = Field(
        default=False,
        description="Keep a contact per customer in the contact folder `contacts_folder`, its notes holding the "
        "customer's recent timeline (Graph needs Contacts.ReadWrite).",
    )
    category_people: bool = Field(
        default=False,
        description="With write_categories: a category for each matched person too. Off: companies only (a "
        "category per person soon fills Outlook's category list).",
    )
    contacts_folder: str = Field(default="Customers", description="Contact folder written by write_contacts.")
    contact_history: int = Field(
        default=20, ge=1, le=200, description="How many recent activities a customer contact's notes show."
    )

    @field_validator("mailbox")
    @classmethod
    def _lower_mailbox(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else value

    @property
    def effective_mailbox(self) -> str:
        return self.mailbox or self.owner

    def own_addresses(self) -> frozenset[str]:
        return frozenset({self.owner, self.effective_mailbox, *self.owner_addresses})

    def label_writing(self) -> LabelWriting | None:
        return LabelWriting("category", people=self.category_people) if self.write_categories else None

    def contact_notes(self) -> int | None:
        return self.contact_history if self.write_contacts else None


def with_categories(existing: list[str], names: tuple[str, ...], remove: tuple[str, ...] = ()) -> list[str]:
    """The user's categories, in their order, without those syncd takes back (``remove``),
    then the customers' missing ones (case-insensitive)."""
    gone = {c.casefold() for c in remove} - {n.casefold() for n in names}
    kept = [c for c in existing if c.casefold() not in gone]
    folded = {c.casefold() for c in kept}
    return kept + [n for n in dict.fromkeys(names) if n.casefold() not in folded]


@dataclass(frozen=True)
class ContactFields:
    """What a customer source needs of one Exchange contact, whichever API read it."""

    key: str
    name: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    company: str
    homepage: str


def contact_records(contacts: list[ContactFields], where: str) -> list[CustomerRecord]:
    """Each contact a person; each company name a company (its domains from the contacts' home pages)."""
    companies: dict[str, CustomerRecord] = {}
    people: list[CustomerRecord] = []
    for contact in contacts:
        company_key = None
        if contact.company:
            company_key = "company:" + contact.company.casefold()
            homepage = (contact.homepage,) if contact.homepage else ()
            existing = companies.get(company_key)
            domains = homepage if existing is None else tuple(dict.fromkeys(existing.domains + homepage))
            companies[company_key] = _versioned(
                CustomerRecord(
                    key=company_key, kind=CustomerKind.COMPANY, name=contact.company, domains=domains, where=where
                )
            )
        emails = tuple(dict.fromkeys(e.strip().lower() for e in contact.emails if e.count("@") == 1))
        name = contact.name or (emails[0] if emails else "")
        if name:
            people.append(
                _versioned(
                    CustomerRecord(
                        key=contact.key,
                        kind=CustomerKind.PERSON,
                        name=name,
                        emails=emails,
                        phones=tuple(dict.fromkeys(contact.phones)),
                        company_key=company_key,
                        where=where,
                    )
                )
            )
    return list(companies.values()) + people


def listing_batches(records: list[CustomerRecord], state: SourceState, batch_size: int) -> Iterator[Batch]:
    """New or changed records in batches, then the removals of a full listing."""
    changed = [r for r in records if state.known.get(r.key) != r.version]
    size = max(1, batch_size)
    for start in range(0, len(changed), size):
        yield Batch(records=tuple(changed[start : start + size]))
    listed = {r.key for r in records}
    yield Batch(
        removed=tuple(sorted(k for k in state.known if k not in listed)), listing_complete=True, listed=len(listed)
    )


def _versioned(record: CustomerRecord) -> CustomerRecord:
    digest = hashlib.sha256(
        json.dumps(
            [record.kind.value, record.name, record.emails, record.phones, record.domains, record.company_key]
        ).encode()
    ).hexdigest()[:32]
    return CustomerRecord(
        key=record.key,
        kind=record.kind,
        name=record.name,
        emails=record.emails,
        phones=record.phones,
        domains=record.domains,
        company_key=record.company_key,
        owner=record.owner,
        version=digest,
        where=record.where,
    )
