"""EWS folders by the names admins write in the config: well-known ids or display-name paths."""

from __future__ import annotations

from typing import Any

from syncd.model.errors import SourceConfigError


def folder_by_path(account: Any, label: str) -> Any:
    """A distinguished folder (inbox, sentitems, calendar...) or display names down from the mailbox root."""
    from exchangelib.folders import Folder, FolderCollection
    from exchangelib.properties import DistinguishedFolderId, Mailbox

    parts = [p for p in label.split("/") if p]
    first = parts[0].lower()
    by_id = {cls.DISTINGUISHED_FOLDER_ID: cls for cls in _distinguished_classes()}
    if first in by_id:
        cls = by_id[first]
        folder = cls._get_distinguished(
            folder=cls(
                _distinguished_id=DistinguishedFolderId(
                    id=first, mailbox=Mailbox(email_address=account.primary_smtp_address)
                ),
                root=account.root,
            )
        )
        rest = parts[1:]
    else:
        folder, rest = account.msg_folder_root, parts
    for part in rest:
        children = list(FolderCollection(account=account, folders=[folder]).find_folders(depth="Shallow"))
        match = next((c for c in children if isinstance(c, Folder) and str(c.name).casefold() == part.casefold()), None)
        if match is None:
            raise SourceConfigError(f"mailbox {account.primary_smtp_address}: no folder {label!r} ({part!r} not found)")
        folder = match
    return folder


def _distinguished_classes() -> list[Any]:
    from exchangelib.folders import Calendar, Contacts, DeletedItems, Drafts, Inbox, JunkEmail, Outbox, SentItems

    try:
        from exchangelib.folders import ArchiveInbox  # noqa: F401
    except ImportError:
        pass
    return [Inbox, SentItems, Calendar, Contacts, DeletedItems, Drafts, JunkEmail, Outbox]
