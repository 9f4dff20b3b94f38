"""Scheduling the timeline workbook(s): what they show, when they are written, and the merge rows.

A workbook is written only when its content hash changed (or its file is gone), and, in
the service, at most every ``timeline.min_interval_seconds``: staff with the file open in
Excel are not interrupted by every new mail. A write that fails (full disk, a folder that
went away) leaves the old workbook as it was and is retried.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config import Config
from syncd.mapping.duplicates import duplicate_clusters
from syncd.mapping.matcher import CustomerIndex, MatchPolicy, suggest_customers
from syncd.outputs.view import TimelineView, build_view
from syncd.outputs.workbook import ForeignFileError, TimelineWriteError, write_timeline
from syncd.pipeline.wiring import peak_rss_mb
from syncd.store import Store

log = logging.getLogger("syncd.pipeline")

FOREIGN_RETRY_SECONDS = 300.0
MergeRow = tuple[str, str, str, str]  # (ref, title, reason, proposal)


@dataclass
class IndexCache:
    """The matcher index kept between passes of the service, with the store signature it
    was built from: a pass in which no customer, identity or rule changed reuses it
    instead of rebuilding it (seconds at 100,000 customers)."""

    signature: tuple[Any, ...] | None = None
    index: CustomerIndex | None = None
    rule_problems: list[str] = field(default_factory=list)
    merge_signature: tuple[Any, ...] | None = None  # the same, for the duplicate suggestions
    merge_rows: list[MergeRow] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)  # the service syncs sources in parallel


def merge_rows(store: Store, index: CustomerIndex, cache: IndexCache) -> list[MergeRow]:
    """Probable duplicates as Review rows. Worked out again only when customers, identities
    or rules (dismissals too) changed."""
    signature = store.reads.customers_signature()
    if cache.merge_signature != signature:
        cache.merge_rows, cache.merge_signature = _find_merge_rows(store, index), signature
    return cache.merge_rows


def _find_merge_rows(store: Store, index: CustomerIndex) -> list[MergeRow]:
    profiles = store.reads.customer_profiles()
    names = {p.id: p.name for p in profiles}
    rows = []
    for cluster in duplicate_clusters(
        profiles, store.review.identity_conflicts(), index, store.review.dismissed_suggestions()
    ):
        keep, others = cluster.keep_id, cluster.members[1:]
        members = ", ".join(f"{names[cid]} (#{cid})" for cid in cluster.members)
        merged = ", ".join(f"#{cid} {names[cid]}" for cid in others)
        rows.append(
            (
                cluster.ref,
                f"Possible duplicate customers: {members}",
                cluster.reason,
                f"merge {merged} into #{keep} {names[keep]}",
            )
        )
    return rows


def timeline_views(
    config: Config, store: Store, index: CustomerIndex, policy: MatchPolicy, cache: IndexCache
) -> list[tuple[Path, TimelineView]]:
    """The main timeline view and, with timeline.per_owner, one per customer owner."""
    cfg = config.timeline
    zone = ZoneInfo(config.service.timezone)
    today = datetime.now(timezone.utc).astimezone(zone).date()
    day_start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    activities = store.reads.activities(limit=cfg.max_rows)
    customers = store.reads.customer_summaries(day_start)
    suggestions: dict[int, list[str]] = {}
    if cfg.review_suggestions:
        # Customers of each conversation: evidence for a display-name suggestion in it.
        by_thread: dict[str, set[int]] = {}
        for a in activities:
            if a.thread_key and a.customers:
                by_thread.setdefault(a.thread_key, set()).update(link.customer_id for link in a.customers)
        unmatched = [a for a in activities if not a.customers]
        unmatched.sort(key=lambda a: a.occurred_at, reverse=True)
        for a in unmatched[: cfg.review_max_rows]:  # only the rows Review shows
            related = frozenset(by_thread.get(a.thread_key or "", ()))
            found = suggest_customers(
                a.participants, dict(a.hints), index, policy, cfg.review_suggestions, related=related
            )
            suggestions[a.id] = [f"{index.names[cid]} ({score:.0%})" for cid, score in found]
    rules = [(r.after_days, r.label) for r in cfg.status]
    pending = store.review.pending_assignments()
    views = [
        (
            cfg.path,
            build_view(
                activities,
                customers,
                today,
                zone,
                status_rules=rules,
                suggestions=suggestions,
                pending=pending,
                reports=cfg.reports,
                merges=merge_rows(store, index, cache),
                review_max_rows=cfg.review_max_rows,
            ),
        )
    ]
    if cfg.per_owner:
        owners = sorted({c.owner for c in customers if c.owner})
        for owner in owners:
            mine = [c for c in customers if c.owner == owner]
            ids = {c.id for c in mine}
            their = [a for a in activities if any(link.customer_id in ids for link in a.customers)]
            views.append(
                (
                    cfg.per_owner_dir / f"timeline-{owner_file_name(owner)}.xlsx",
                    build_view(their, mine, today, zone, status_rules=rules, reports=cfg.reports),
                )
            )
    return views


@dataclass
class TimelineWrite:
    """What one write of the timeline outputs did."""

    written: bool = False
    retry_in: float | None = None  # come back in this many seconds (held back, or failed)
    errors: list[str] = field(default_factory=list)


def write_timelines(
    config: Config, store: Store, views: list[tuple[Path, TimelineView]], debounce: bool = False
) -> TimelineWrite:
    """Write the timeline workbook(s) whose content changed (or whose file is gone).

    With ``debounce`` (the service), a workbook written less than
    ``timeline.min_interval_seconds`` ago is held back; the seconds to wait are returned
    so the service comes back for it.
    """
    outcome = TimelineWrite()

    def retry(seconds: float) -> None:
        outcome.retry_in = seconds if outcome.retry_in is None else min(outcome.retry_in, seconds)

    for path, view in views:
        digest = view.content_hash()
        if path.exists() and store.outputs.hash(str(path)) == digest:
            continue
        if debounce and path.exists():
            last = store.outputs.written_at(str(path))
            wait = config.timeline.min_interval_seconds - (
                (datetime.now(timezone.utc) - last).total_seconds() if last else 1e9
            )
            if wait > 0:
                retry(wait)
                continue
        try:
            write_timeline(path, view)
        except TimelineWriteError as exc:
            log.error("timeline write failed: %s", exc)
            outcome.errors.append(str(exc))
            # A foreign file needs an admin: looked at again now and then, not every few seconds.
            retry(
                FOREIGN_RETRY_SECONDS
                if isinstance(exc, ForeignFileError)
                else float(max(5, config.timeline.min_interval_seconds))
            )
            try:
                store.outputs.record_failure(str(path), str(exc))
            except Exception as record_error:  # noqa: BLE001 - on a full disk the store may refuse it too
                log.warning("output failure not recorded in the store: %s", record_error)
            continue
        store.outputs.set_hash(str(path), digest)
        outcome.written = True
        log.info(
            "timeline written path=%s activities=%d customers=%d review=%d peak_rss_mb=%d",
            path,
            len(view.timeline),
            len(view.customers),
            len(view.review),
            peak_rss_mb(),
        )
    return outcome


def owner_file_name(owner: str) -> str:
    """A file-name-safe form of an owner (an address or a name)."""
    text = unicodedata.normalize("NFKD", owner).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9@._-]+", "-", text).strip("-.") or "owner"
