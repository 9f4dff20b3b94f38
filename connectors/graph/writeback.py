"""What syncd writes into a Microsoft 365 mailbox: categories on items, customer contacts.

Categories: the customer's category is added to each message and event, the user's own
categories kept in their order; missing ones are added to the mailbox's master category
list first (so Outlook shows them with a colour). The PATCH carries the item's etag
(``If-Match``): a category the user added between our read and our write makes Graph
answer 412, and the item is read again and merged, up to ``CONFLICT_RETRIES`` times,
so nothing the user did is overwritten. Contacts: one per customer in a contact
folder, its notes holding the rendered timeline (``syncd.outputs.contact_notes``); a
contact whose notes already say the same is not written again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from syncd.connectors.exchange import with_categories
from syncd.connectors.graph.client import GraphClient, NotFound, PreconditionFailed, odata_quote
from syncd.model.errors import SourceConfigError
from syncd.model.records import CustomerNote, LabelChange

CONFLICT_RETRIES = 3


class GraphWriter:
    """Write-back into one mailbox (``user`` is its ``users/{id}`` path)."""

    def __init__(self, client: GraphClient, user: str, mailbox: str, prefer: tuple[str, ...]):
        self.client = client
        self.user = user
        self.mailbox = mailbox
        self.prefer = prefer
        self._categories: set[str] | None = None

    def _master_categories(self) -> set[str]:
        if self._categories is None:
            found = self.client.get(f"{self.user}/outlook/masterCategories")
            self._categories = {str(c.get("displayName", "")).casefold() for c in found.get("value") or []}
        return self._categories

    def categories(self, labels: dict[str, LabelChange]) -> set[str]:
        """A category per customer on each message and event; the user's own categories stay."""
        written: set[str] = set()
        if not labels:
            return written
        master = self._master_categories()
        for name in sorted({n for change in labels.values() for n in change.add}):
            if name.casefold() not in master:
                self.client.request(
                    "POST", f"{self.user}/outlook/masterCategories", body={"displayName": name, "color": "preset7"}
                )
                master.add(name.casefold())
        for key, change in sorted(labels.items()):
            folder, _, item_id = key.partition("/")
            collection = "events" if folder.startswith("calendar") else "messages"
            path = f"{self.user}/{collection}/{quote(item_id, safe='')}"
            if self._merge_categories(path, change):
                written.add(key)
        return written

    def _merge_categories(self, path: str, change: LabelChange) -> bool:
        """Apply ``change`` to the item's categories without losing a concurrent change. False: item gone."""
        for _attempt in range(CONFLICT_RETRIES):
            try:
                current = self.client.get(path, params={"$select": "categories,changeKey"}, prefer=self.prefer[:1])
            except NotFound:
                return False  # deleted since it was read; the next pass removes it
            existing = [str(c) for c in current.get("categories") or []]
            merged = with_categories(existing, change.add, change.remove)
            if merged == existing:
                return True
            etag = str(current.get("@odata.etag") or "")
            change_key = etag[3:-1] if etag.startswith('W/"') else str(current.get("changeKey") or "")
            try:
                if change_key:
                    self.client.patch_if_match(path, {"categories": merged}, change_key, prefer=self.prefer[:1])
                else:
                    self.client.request("PATCH", path, body={"categories": merged}, prefer=self.prefer[:1])
                return True
            except NotFound:
                return False
            except PreconditionFailed:
                continue  # the user changed it meanwhile: read it again and merge
        return False  # changed under us every time: tried again next pass

    def contacts(self, folder: str, notes: dict[str, CustomerNote]) -> set[str]:
        """One contact per customer in ``folder``, its notes holding the timeline."""
        written: set[str] = set()
        if not notes:
            return written
        folder_id = self._contact_folder(folder, create=True)
        existing: dict[str, dict[str, Any]] = {}
        for page in self.client.pages(
            f"{self.user}/contactFolders/{folder_id}/contacts",
            params={"$select": "displayName,personalNotes", "$top": "500"},
        ):
            for contact in page.get("value") or []:
                existing.setdefault(str(contact.get("displayName", "")).casefold(), contact)
        for key, note in sorted(notes.items()):
            body: dict[str, Any] = {
                "displayName": note.name,
                "personalNotes": note.text,
                "emailAddresses": [{"address": e, "name": note.name} for e in note.emails[:3]],
            }
            if note.company:
                body["companyName"] = note.company
            found = existing.get(note.name.casefold())
            if found is None:
                self.client.request("POST", f"{self.user}/contactFolders/{folder_id}/contacts", body=body)
            elif found.get("personalNotes") != note.text:
                self.client.request("PATCH", f"{self.user}/contacts/{quote(str(found['id']), safe='')}", body=body)
            written.add(key)
        return written

    def delete_contacts(self, folder: str, names: dict[str, str]) -> set[str]:
        """Delete syncd's contacts of erased customers from its own ``folder`` (found by
        display name, as ``contacts`` writes them); Outlook keeps them in Deleted Items."""
        if not names:
            return set()
        folder_id = self._contact_folder(folder, create=True)
        existing: dict[str, list[str]] = {}
        for page in self.client.pages(
            f"{self.user}/contactFolders/{folder_id}/contacts", params={"$select": "displayName", "$top": "500"}
        ):
            for contact in page.get("value") or []:
                existing.setdefault(str(contact.get("displayName", "")).casefold(), []).append(str(contact["id"]))
        for name in names.values():
            for contact_id in existing.get(name.casefold(), []):
                try:
                    self.client.request("DELETE", f"{self.user}/contacts/{quote(contact_id, safe='')}")
                except NotFound:
                    pass  # deleted meanwhile
        return set(names)

    def _contact_folder(self, name: str, create: bool) -> str:
        found = self.client.get(
            f"{self.user}/contactFolders", params={"$filter": f"displayName eq '{odata_quote(name)}'"}
        )
        values = found.get("value") or []
        if values:
            return str(values[0]["id"])
        if not create:
            raise SourceConfigError(f"mailbox {self.mailbox}: no contact folder {name!r}")
        created = self.client.request("POST", f"{self.user}/contactFolders", body={"displayName": name})
        return str(created["id"])
