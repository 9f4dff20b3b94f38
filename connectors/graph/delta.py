"""One Graph delta round: pages of changes from a delta or calendarView/delta URL, as batches.

A folder's cursor, JSON::

    {"link": the @odata.deltaLink of the last finished round, or the @odata.nextLink
             of a first round in progress ("partial": true),
     "since": first day of the mail window / first day of the calendar window}

States per folder::

    (no cursor) --first round, page by page (nextLink committed with each page)--> DELTA
    DELTA --deltaLink: only changes, "@removed" entries are removals--> DELTA
    DELTA --token expired--> RESYNC
    RESYNC --full round of the same window, no cursor until its end; then everything we
             hold from the folder that the round did not list is removed--> DELTA

Item keys are ``<folder>/<immutable id>`` (``Prefer: IdType="ImmutableId"``), so a resync
finds the same keys and nothing doubles.

Pages are checked, not trusted: an entry that is not an object or has no id is quarantined
with the reason; a page with neither ``@odata.nextLink`` nor ``@odata.deltaLink`` ends the
round as an error (the delta query overview says every page has one or the other), so the
cursor stays where it was instead of the folder reading as done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from syncd.connectors.cursor import JsonCursor
from syncd.connectors.graph.client import GraphClient, MalformedResponse
from syncd.model.records import ActivityRecord, Batch, Problem

#: An item as a record, a quarantine entry, or None for one outside the window (counted).
Parser = Callable[[dict[str, Any]], ActivityRecord | Problem | None]


@dataclass
class DeltaCursor(JsonCursor):
    link: str
    since: str = ""
    partial: bool = False


def url_marker(url: str | None) -> str:
    """A short stable tag of a page URL, so quarantine keys of malformed entries differ by page."""
    import hashlib

    return hashlib.sha256(str(url).encode()).hexdigest()[:10]


def delta_round(
    client: GraphClient,
    label: str,
    path: str,
    params: dict[str, str] | None,
    since: str,
    parse: Parser,
    resync: set[str] | None,
    prefer: tuple[str, ...],
    keep: Callable[[str], bool] = lambda key: False,
    removal_wanted: Callable[[dict[str, Any]], bool] = lambda entry: True,
) -> Iterator[Batch]:
    """One delta round from ``path``. With ``resync`` (the keys held for this folder), the
    round is a full listing: no cursor until its end, then the unlisted keys are removed,
    except those ``keep`` says to keep."""
    seen: set[str] = set()
    url: str | None = path
    first = True
    while url:
        page = client.get(url, params=params if first else None, prefer=prefer)
        first = False
        records: list[ActivityRecord] = []
        problems: list[Problem] = []
        removed: list[str] = []
        outside = 0
        entries = page.get("value")
        if entries is not None and not isinstance(entries, list):
            raise MalformedResponse(f"{label}: a delta page whose value is a JSON {type(entries).__name__}")
        for position, item in enumerate(entries or []):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                problems.append(
                    Problem(
                        key=f"{label}/malformed:{url_marker(url)}:{position}",
                        reason=f"Graph sent an entry without an id ({type(item).__name__}); skipped",
                        where=f"{label} delta page entry {position}",
                    )
                )
                continue
            key = f"{label}/{item['id']}"
            if "@removed" in item:
                if removal_wanted(item):
                    removed.append(key)
                continue
            if item.get("isDraft"):
                continue
            parsed = parse(item)
            if parsed is None:
                outside += 1
                continue
            if isinstance(parsed, ActivityRecord):
                records.append(parsed)
            else:
                problems.append(parsed)
            seen.add(key)
        next_link = page.get("@odata.nextLink")
        delta_link = page.get("@odata.deltaLink")
        if not isinstance(next_link, (str, type(None))) or not isinstance(delta_link, (str, type(None))):
            raise MalformedResponse(f"{label}: a delta page whose links are not text")
        if not next_link and not delta_link:
            raise MalformedResponse(
                f"{label}: a delta page with neither @odata.nextLink nor @odata.deltaLink; the round is not "
                "finished and is read again next pass"
            )
        cursor: str | None
        complete = False
        if resync is not None:
            cursor = None
            if not next_link and delta_link:
                removed += sorted(k for k in resync if k not in seen and not keep(k))
                cursor = DeltaCursor(delta_link, since).dump()
                complete = True
        elif next_link:
            cursor = DeltaCursor(next_link, since, partial=True).dump()
        else:
            cursor = DeltaCursor(delta_link, since).dump() if delta_link else None
        yield Batch(
            records=tuple(records),
            problems=tuple(problems),
            removed=tuple(removed),
            folder=label,
            cursor=cursor,
            listing_complete=complete,
            listed=len(seen),
            pending=None if next_link else 0,
            outside_window=outside,
        )
        url = next_link
