"""Customers from a contact folder of a Microsoft 365 mailbox (read-only)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from syncd.connectors.base import Connector
from syncd.connectors.exchange import ContactFields, contact_records, listing_batches
from syncd.connectors.graph.client import GraphClient, odata_quote
from syncd.connectors.graph.records import clean_text, graph_address
from syncd.model.errors import SourceConfigError
from syncd.model.markers import NOTE_MARKER
from syncd.model.records import Batch, ReadOptions, SourceState

CONTACT_FIELDS = (
    "displayName",
    "emailAddresses",
    "businessPhones",
    "mobilePhone",
    "homePhones",
    "companyName",
    "businessHomePage",
    "changeKey",
    "personalNotes",
)


class GraphContactsConnector(Connector):
    """Customers from a contact folder: each contact a person, each company name a company.

    A listing connector: contact folders are small next to mailboxes, and a company is
    derived from all its people, so the folder is listed in full every pass (a page per
    500 contacts) and only new or changed records are handed on. Contacts syncd itself
    writes (write_contacts) are recognised by their notes and never read back as customers.
    """

    kind = "graph_contacts"

    def __init__(self, name: str, options: ReadOptions, mailbox: str, folder: str, client: GraphClient):
        super().__init__(name, options)
        self.mailbox = mailbox
        self.folder = folder
        self.client = client

    def close(self) -> None:
        self.client.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        user = f"users/{quote(self.mailbox, safe='@')}"
        if self.folder.casefold() == "contacts":
            path = f"{user}/contacts"
        else:
            folders = self.client.get(
                f"{user}/contactFolders", params={"$filter": f"displayName eq '{odata_quote(self.folder)}'"}
            )
            values = folders.get("value") or []
            if not values:
                raise SourceConfigError(f"mailbox {self.mailbox}: no contact folder {self.folder!r}")
            path = f"{user}/contactFolders/{values[0]['id']}/contacts"
        found: list[ContactFields] = []
        for page in self.client.pages(
            path, params={"$select": ",".join(CONTACT_FIELDS), "$top": "500"}, prefer=('IdType="ImmutableId"',)
        ):
            for contact in page.get("value") or []:
                if str(contact.get("personalNotes") or "").startswith(NOTE_MARKER):
                    continue  # our own write-back
                emails = [
                    a[0] for a in (graph_address({"emailAddress": e}) for e in contact.get("emailAddresses") or []) if a
                ]
                phones = [
                    *(contact.get("businessPhones") or []),
                    contact.get("mobilePhone"),
                    *(contact.get("homePhones") or []),
                ]
                found.append(
                    ContactFields(
                        f"contact/{contact['id']}",
                        clean_text(contact.get("displayName"), 500),
                        tuple(emails),
                        tuple(str(p) for p in phones if p),
                        clean_text(contact.get("companyName"), 500),
                        str(contact.get("businessHomePage") or "").strip(),
                    )
                )
        yield from listing_batches(
            contact_records(found, f"{self.mailbox} contacts {self.folder}"), state, self.options.batch_size
        )
