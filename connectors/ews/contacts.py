"""Customers from a contact folder of an Exchange Server mailbox (read-only)."""

from __future__ import annotations

from collections.abc import Iterator

from syncd.connectors.base import Connector
from syncd.connectors.ews.folders import folder_by_path
from syncd.connectors.ews.records import clean_text
from syncd.connectors.ews.session import EwsAccount, EwsSession
from syncd.connectors.exchange import ContactFields, contact_records, listing_batches
from syncd.model.markers import SYNCD_CATEGORY
from syncd.model.records import Batch, ReadOptions, SourceState

CONTACT_FIELDS = ("display_name", "email_addresses", "phone_numbers", "company_name", "business_homepage", "categories")


class EwsContactsConnector(Connector):
    """Customers from a contact folder (default: the mailbox's Contacts), listed in full each pass."""

    kind = "ews_contacts"

    def __init__(self, name: str, options: ReadOptions, account: EwsAccount, folder: str):
        super().__init__(name, options)
        self.session = EwsSession(account, name)
        self.folder = folder

    def close(self) -> None:
        self.session.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        account = self.session.account()
        with self.session.mapped(f"read contacts {self.folder}"):
            label = self.folder if self.folder.casefold() == "contacts" else f"contacts/{self.folder}"
            folder = folder_by_path(account, label)
            ids = [(c.id, c.changekey) for c in folder.all().only("display_name") if not isinstance(c, Exception)]
            contacts = (
                [c for c in account.fetch(ids=ids, only_fields=list(CONTACT_FIELDS)) if not isinstance(c, Exception)]
                if ids
                else []
            )
        found: list[ContactFields] = []
        for contact in contacts:
            if SYNCD_CATEGORY in (contact.categories or []):
                continue  # our own write-back
            found.append(
                ContactFields(
                    f"contact/{contact.id}",
                    clean_text(contact.display_name, 500),
                    tuple(str(e.email) for e in contact.email_addresses or [] if e.email),
                    tuple(str(p.phone_number) for p in contact.phone_numbers or [] if p.phone_number),
                    clean_text(contact.company_name, 500),
                    str(contact.business_homepage or "").strip(),
                )
            )
        yield from listing_batches(
            contact_records(found, f"{account.primary_smtp_address} contacts {self.folder}"),
            state,
            self.options.batch_size,
        )
