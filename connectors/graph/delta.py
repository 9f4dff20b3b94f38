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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from syncd.connectors.cursor import JsonCursor
from syncd.connectors.graph.client import GraphClient
from syncd.model.records import ActivityRecord, Batch, Problem

Parser = Callable[[dict[str, Any]], ActivityRecord | Problem]


@dataclass
class DeltaCursor(JsonCursor):
    link: str
    since: str = ""
    partial: bool = False


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
        for item in page.get("value") or []:
            if "id" not in item:
                continue
            key = f"{label}/{item['id']}"
            if "@removed" in item:
                removed.append(key)
                continue
            if item.get("isDraft"):
                continue
            parsed = parse(item)
            if isinstance(parsed, ActivityRecord):
                records.append(parsed)
            else:
                problems.append(parsed)
            seen.add(key)
        next_link = page.get("@odata.nextLink")
        delta_link = page.get("@odata.deltaLink")
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
        )
        url = next_link
