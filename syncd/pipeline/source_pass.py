"""One source's share of a pass: read its batches, decide what is logged, commit, write back.

Flow per batch: connector -> mapping decides what is logged (``skip_reason``) -> the store
commits the batch with its cursor. A listing that would remove most of a source's items
(or reads as empty) is held: the removals are not applied and the source is marked suspect
until an admin confirms. Errors follow the ladder of ``syncd.model.errors``: a
``SourceError`` fails this source only (retried with backoff, slowly after a refused
login); anything else is a bug, logged with its traceback, and still fails only this source.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from syncd.config import Config
from syncd.connectors.base import Connector
from syncd.connectors.budget import RequestBudgets
from syncd.mapping.contacts import correspondent_counts
from syncd.mapping.matcher import MatchPolicy, skip_reason
from syncd.model.errors import SourceAuthError, SourceError, SourceSecurityError
from syncd.model.records import ActivityRecord, CustomerNote, CustomerRecord, LabelChange, Problem
from syncd.model.settings import SourceSettings
from syncd.model.views import LabelState
from syncd.outputs.contact_notes import note_hash, render_note
from syncd.outputs.labels import assign_keywords, render_labels
from syncd.pipeline.results import SourceResult
from syncd.pipeline.wiring import make_connector, normalize_customer, peak_rss_mb
from syncd.readahead import read_ahead
from syncd.scheduler import retry_at
from syncd.store import Ingest, LinkFunction, Skip, Store, StoreUnavailable
from syncd.store.engine import fault_reason, store_unavailable
from syncd.store.sources import RemovalImpact

log = logging.getLogger("syncd.pipeline")

#: A refused login or a certificate that does not verify is retried no sooner than this
#: (seconds): hammering a bad password locks the account, and neither fixes itself.
SLOW_RETRY_SECONDS = 600


class PassInterrupted(Exception):
    """Raised inside a source's loop when a stop was requested; committed batches stay."""


@dataclass(frozen=True)
class PassContext:
    """What every source of one pass shares."""

    config: Config
    store: Store
    policy: MatchPolicy
    link: LinkFunction
    stop_requested: Callable[[], bool]
    heartbeat: Callable[[], None]
    customers_changed: Callable[[], None]  # rebuild the matcher's index
    budgets: RequestBudgets = field(default_factory=RequestBudgets)  # per-mailbox request limits


def removal_guard(listed: int, complete: bool, impact: RemovalImpact, ratio_limit: float) -> str | None:
    """Why these removals look like a glitch rather than real deletions, or None.

    Judged on what the store would lose (``impact``), whatever the connector says of its
    listing: an incomplete listing (an IMAP folder re-read after UIDVALIDITY changed, a
    delta round that restarted) is held like a complete one. ``listed`` is what a complete
    listing found in its scope.
    """
    if not impact.lost:
        return None
    if complete and listed == 0:
        return f"source reads as empty but {impact.lost} items are stored; removals held"
    ratio = impact.lost / max(impact.held, 1)
    if impact.held >= 10 and ratio > ratio_limit:
        return f"{impact.lost} of {impact.held} items ({ratio:.0%}) would be removed; removals held"
    return None


def _not_collected(run: PassContext, record: ActivityRecord) -> str | None:
    """``[privacy] collect = "customers_only"``: an item no known customer takes part in is
    not stored at all, only counted."""
    if run.config.privacy.collect == "customers_only" and not run.link(record.participants, dict(record.hints)):
        return "no-customer"
    return None


def _without_text(record: ActivityRecord) -> ActivityRecord:
    return replace(record, snippet="", body=None)


def suppressed_row(record: CustomerRecord, salt: bytes) -> Problem:
    """A customer-list row naming someone syncd must not collect: quarantined by its place
    in the sheet, under a key (keyed with the store's salt, so it cannot be tested against
    guessed addresses) and a reason that do not say who it is."""
    key = "suppressed:" + hashlib.blake2b(record.key.encode(), key=salt[:64], digest_size=10).hexdigest()
    return Problem(
        key=key,
        reason="this row lists a person syncd must not collect (suppressed, or erased with syncd forget); "
        "it is not imported: remove the row from the workbook",
        where=record.where,
        version=record.version,
    )


def sync_source(run: PassContext, source: SourceSettings, confirm_removals: bool = False) -> SourceResult:
    config, store = run.config, run.store
    name, kind = source.name, source.kind
    result = SourceResult(name=name, kind=kind)
    started = time.monotonic()
    source_id = store.sources.source_id(name, kind)
    store.sources.mark_attempt(source_id)
    connector: Connector | None = None
    try:
        connector = make_connector(config, source, run.budgets)
        state = store.sources.sync_state(source_id)
        lost_before: dict[str, int] = {}
        # Rows held back as suppressed are quarantined by the pipeline, not listed by the
        # connector: the listing's removals must not clear the ones read again this pass.
        suppressed_now: set[str] = set()
        holding = False  # once a removal is held, no cursor of this source moves this pass
        for batch in read_ahead(connector.read(state), name=f"read-{name}"):
            ingest = Ingest(
                folder=batch.folder, cursor=batch.cursor, problems=list(batch.problems), backlog=batch.pending
            )
            for record in batch.records:
                if isinstance(record, ActivityRecord):
                    reason = skip_reason(record, run.policy) or _not_collected(run, record)
                    if reason:
                        ingest.skipped.append(Skip(record.key, reason, record.version))
                    else:
                        ingest.activities.append(record if config.privacy.keep_snippets else _without_text(record))
                else:
                    customer = normalize_customer(record, config.matching.default_phone_region)
                    if run.policy.suppression and run.policy.suppression.customer(customer):
                        problem = suppressed_row(customer, run.policy.suppression.salt)
                        suppressed_now.add(problem.key)
                        ingest.problems.append(problem)
                    else:
                        ingest.customers.append(customer)
            if config.matching.auto_create_contacts != "none" and ingest.activities:
                ingest.correspondents = correspondent_counts(ingest.activities, run.policy)
            if suppressed_now and batch.removed:
                batch = replace(batch, removed=tuple(k for k in batch.removed if k not in suppressed_now))
            if batch.removed:
                # Removals split over several batches of one folder add up: ten pages of 10% are all of it.
                impact = store.sources.removal_impact(source_id, batch.folder, batch.removed)
                earlier = lost_before.get(batch.folder, 0)
                impact = RemovalImpact(lost=impact.lost + earlier, held=impact.held + earlier)
                held = removal_guard(batch.listed, batch.listing_complete, impact, config.service.removal_guard_ratio)
                if held and not confirm_removals:
                    result.suspect = held
                    # Nor does the position move past a listing we do not trust, this batch's
                    # or a later one's (a delta page after it, a drive's delta link): the next
                    # pass reads it again, finds what this one missed, and still has the
                    # removals to show or to apply once confirmed.
                    holding = True
                    log.warning("source=%s removals held: %s", name, held)
                else:
                    ingest.removed = list(batch.removed)
                    lost_before[batch.folder] = impact.lost
            if holding:
                ingest.cursor = None
            committed = store.batches.commit(source_id, ingest, run.link)
            result.new += committed.activities_new
            result.updated += committed.activities_updated
            result.removed += committed.removed
            result.quarantined += committed.quarantined
            result.skipped += committed.skipped
            result.outside_window += batch.outside_window
            result.customers_changed += committed.customers_changed
            run.heartbeat()
            if run.stop_requested():
                raise PassInterrupted()
        if result.customers_changed:
            run.customers_changed()  # once per source: rebuilding per batch would be quadratic
        result.written_back = _write_back(run, connector, source, source_id)
        store.sources.mark_success(source_id, suspect_reason=result.suspect)
    except PassInterrupted:
        result.interrupted = True
        log.info("source=%s stop requested: committed batches kept, the rest is read next time", name)
    except SourceError as exc:
        result.ok, result.error = False, str(exc)
        slow = isinstance(exc, (SourceAuthError, SourceSecurityError))
        base = float(
            max(SLOW_RETRY_SECONDS, config.service.interval_seconds) if slow else config.service.interval_seconds
        )
        if exc.retry_after:
            base = max(base, exc.retry_after)
        failures = store.sources.mark_failure(source_id, str(exc), retry_at(base))
        log.error("source=%s kind=%s failures=%d error=%r", name, kind, failures, str(exc))
    except Exception as exc:  # one broken source must not stop the others
        if store_unavailable(exc):
            # Not this source's fault: the store cannot take the batch now. Nothing was
            # committed; the service waits for the store and reads the source again.
            raise StoreUnavailable(f"the store is unavailable: {fault_reason(exc)}") from exc
        result.ok, result.error = False, f"unexpected error: {type(exc).__name__}: {exc}"
        store.sources.mark_failure(source_id, result.error, retry_at(config.service.interval_seconds))
        log.exception("source=%s kind=%s unexpected error", name, kind)
    finally:
        if connector is not None:
            connector.close()
    result.seconds = time.monotonic() - started
    log.info(
        "source=%s kind=%s ok=%s new=%d updated=%d removed=%d skipped=%d quarantined=%d outside_window=%d "
        "seconds=%.2f peak_rss_mb=%d",
        name,
        kind,
        result.ok,
        result.new,
        result.updated,
        result.removed,
        result.skipped,
        result.quarantined,
        result.outside_window,
        result.seconds,
        peak_rss_mb(),
    )
    return result


def _write_back(run: PassContext, connector: Connector, source: SourceSettings, source_id: int) -> int:
    """Labels on items and customer contacts, where the source's settings ask for them."""
    written = 0
    writing = source.label_writing()
    if writing is not None:
        states = run.store.sources.label_states(source_id, people=writing.people)
        book = (
            assign_keywords(run.store.sources.customer_names(), writing.prefix)
            if writing.style == "keyword" and states
            else {}
        )
        rendered = {key: render_labels(state.names, writing, book) for key, state in states.items()}
        changes, settled = label_changes(states, rendered)
        done = connector.write_back(changes) if changes else set()
        run.store.sources.mark_labels_written(source_id, {k: rendered[k] for k in (*done, *settled)})
        written += len(done)
    history = source.contact_notes()
    if history is not None:
        written += _write_contacts(run, connector, source.name, source_id, history)
    return written


def label_changes(
    states: dict[str, LabelState], rendered: dict[str, tuple[str, ...]]
) -> tuple[dict[str, LabelChange], list[str]]:
    """What write-back must change per item, and the items already right (only recorded).

    Labels syncd wrote and no longer wants are taken off (a customer merged, renamed or
    erased). Items written by an older syncd record names, not labels: the same names mean
    the labels are on already; other names get the new labels added, nothing taken off."""
    changes: dict[str, LabelChange] = {}
    settled: list[str] = []
    for key, state in states.items():
        labels = rendered[key]
        if state.legacy:
            if tuple(sorted(set(state.names))) == tuple(sorted(set(state.written))):
                settled.append(key)
            else:
                changes[key] = LabelChange(add=labels)
        elif set(labels) != set(state.written):
            changes[key] = LabelChange(add=labels, remove=tuple(sorted(set(state.written) - set(labels))))
    return changes, settled


def _write_contacts(run: PassContext, connector: Connector, name: str, source_id: int, history: int) -> int:
    """Contacts whose rendered timeline changed since last written (hash kept in outputs)."""
    zone = ZoneInfo(run.config.service.timezone)
    erased = run.store.sources.contacts_to_delete(source_id)
    if erased:
        run.store.sources.contacts_deleted(source_id, sorted(connector.delete_contacts(erased)))
    notes: dict[str, CustomerNote] = {}
    hashes: dict[str, str] = {}
    for customer in run.store.reads.customer_timelines(source_id, history):
        key = str(customer.id)
        note = render_note(customer, zone)
        digest = note_hash(note)
        if run.store.outputs.hash(f"contact:{name}:{key}") != digest:
            notes[key], hashes[key] = note, digest
    written = connector.write_contacts(notes) if notes else set()
    for key in written:
        run.store.outputs.set_hash(f"contact:{name}:{key}", hashes[key])
    if written:
        log.info("source=%s customer contacts written=%d", name, len(written))
    return len(written)
