"""Mail folders of a Microsoft 365 mailbox, read by delta query (one cursor per folder).

The first round of a folder is a delta query without ``$filter``: "applying $filter in a
delta query returns only up to 5,000 messages" (https://learn.microsoft.com/graph/api/message-delta,
"Remarks"), so a folder with more mail in the window would silently stop at 5,000.
Messages received before the backfill window's first day are skipped here instead, and
counted as outside the window. Only the fields the timeline needs are asked for
(``$select``; the body only with ``store.keep_bodies``); later rounds follow the delta link.
The activity identity of a message is its internetMessageId, shared with IMAP and other
mailboxes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from syncd.connectors.graph.client import DeltaExpired, GraphClient, NotFound, odata_quote
from syncd.connectors.graph.delta import DeltaCursor, delta_round
from syncd.connectors.graph.records import message_record
from syncd.model.errors import SourceConfigError
from syncd.model.records import ActivityRecord, Batch, Problem, SourceState

log = logging.getLogger(__name__)

#: Outlook's Sensitivity (Normal, Personal, Private, Confidential) is not a message property
#: in Graph v1.0; it is MAPI's PidTagSensitivity (0x0036, an integer), read as a
#: single-value extended property ("Get singleValueLegacyExtendedProperty": $expand with a
#: $filter on its id), which message delta accepts like $select.
SENSITIVITY_EXPAND = "singleValueExtendedProperties($filter=id eq 'Integer 0x0036')"

MESSAGE_FIELDS = (
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "subject",
    "bodyPreview",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageId",
    "conversationId",
    "webLink",
    "categories",
    "changeKey",
    "isDraft",
)
WELL_KNOWN_FOLDERS = {
    "inbox",
    "sentitems",
    "archive",
    "drafts",
    "deleteditems",
    "junkemail",
    "outbox",
    "clutter",
    "conversationhistory",
    "scheduled",
}


def folder_path(client: GraphClient, user: str, mailbox: str, label: str) -> str:
    """The Graph path of a configured folder: a well-known name, or display names down from the top."""
    parts = [p for p in label.split("/") if p]
    first = parts[0]
    if first.lower() in WELL_KNOWN_FOLDERS:
        folder_id = first.lower()
    else:
        folder_id = _child_id(client, f"{user}/mailFolders", first, label, mailbox)
    for part in parts[1:]:
        folder_id = _child_id(client, f"{user}/mailFolders/{folder_id}/childFolders", part, label, mailbox)
    return f"{user}/mailFolders/{folder_id}"


def _child_id(client: GraphClient, collection: str, name: str, label: str, mailbox: str) -> str:
    try:
        found = client.get(
            collection,
            params={"$filter": f"displayName eq '{odata_quote(name)}'", "$select": "id,displayName"},
            prefer=('IdType="ImmutableId"',),
        )
    except NotFound:
        found = {"value": []}
    values = found.get("value") or []
    if not values:
        raise SourceConfigError(f"mailbox {mailbox}: no mail folder {label!r} ({name!r} not found)")
    return str(values[0]["id"])


def sync_mail_folder(
    client: GraphClient,
    *,
    source: str,
    user: str,
    mailbox: str,
    owners: frozenset[str],
    label: str,
    state: SourceState,
    today: date,
    backfill_days: int,
    snippet_chars: int,
    prefer: tuple[str, ...],
    keep_bodies: bool = False,
) -> Iterator[Batch]:
    cursor = DeltaCursor.load(state.cursors.get(label))
    held = {k for k in state.known if k.startswith(f"{label}/")}
    since = cursor.since if cursor and cursor.since else (today - timedelta(days=backfill_days)).isoformat()
    fields = (*MESSAGE_FIELDS, "body") if keep_bodies else MESSAGE_FIELDS
    if keep_bodies:
        prefer = (*prefer, 'outlook.body-content-type="text"')

    def first_round() -> tuple[str, dict[str, str]]:
        path = f"{folder_path(client, user, mailbox, label)}/messages/delta"
        return path, {"$select": ",".join(fields), "$expand": SENSITIVITY_EXPAND}

    def parse(item: dict[str, Any]) -> ActivityRecord | Problem | None:
        received = str(item.get("receivedDateTime") or "")
        if received and received[:10] < since:
            return None  # before the backfill window: counted, not read
        return message_record(
            item, folder=label, mailbox=mailbox, owners=owners, snippet_chars=snippet_chars, keep_body=keep_bodies
        )

    try:
        if cursor is None:
            path, params = first_round()
            # A lost cursor with items held is a resync: the round decides what is gone.
            yield from delta_round(client, label, path, params, since, parse, held if held else None, prefer)
        else:
            yield from delta_round(client, label, cursor.link, None, since, parse, None, prefer)
    except DeltaExpired as expired:
        log.warning(
            "source=%s folder=%s delta token expired (%d): reading the folder afresh", source, label, expired.status
        )
        path, params = first_round()
        yield from delta_round(client, label, path, params, since, parse, held, prefer)
