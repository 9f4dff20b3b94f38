"""One pass: every source read incrementally, matched, committed, and the timeline written.

Flow per source: connector batches -> mapping decides what is logged and to whom it
links -> the store commits each batch with its cursor. Customer sources run first, so
mail read in the same pass matches customers added in it; when customers changed, all
activities are re-matched from the store (no mailbox is read again).

A source that fails is recorded with its error and the pass goes on with the others.
A listing that would remove most of a source's items (or reads as empty) is held: the
removals are not applied and the source is marked suspect until an admin confirms.
"""

from __future__ import annotations

import logging
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syncd.connectors.base import Connector, SourceAuthError, SourceError
from syncd.connectors.caldav_calendar import CaldavAccount, CaldavConnector
from syncd.connectors.excel_activities import ExcelActivitiesConnector, activity_sheet
from syncd.connectors.excel_customers import ExcelCustomersConnector
from syncd.connectors.excel_timeline import ReviewUnreadable, TimelineWriteError, read_review_entries, write_timeline
from syncd.connectors.ews import EwsAccount, EwsConnector, EwsContactsConnector, exchange_online_host
from syncd.connectors.graph import GraphClient, GraphConnector, GraphContactsConnector, GraphMailbox
from syncd.connectors.graph_auth import GraphSignIn, GraphTokens, cache_file
from syncd.connectors.imap import ImapAccount, ImapConnector
from syncd.connectors.maildir import MaildirConnector, MboxConnector
from syncd.mapping.freemail import packaged_free_mail_domains
from syncd.mapping.matcher import CustomerIndex, MatchPolicy, link_activity, skip_reason, suggest_customers
from syncd.mapping.contacts import POLICY_THRESHOLDS, correspondent_counts, new_contacts
from syncd.mapping.duplicates import duplicate_suggestions, parse_merge_ref
from syncd.mapping.review import config_rules, resolve_customer, rule_keys
from syncd.mapping.normalize import normalize_domain, normalize_email, normalize_phone
from syncd.config import (
    CaldavSourceConfig,
    Config,
    ExcelActivitiesSourceConfig,
    EwsAccountFields,
    EwsContactsSourceConfig,
    EwsSourceConfig,
    ExcelCustomersSourceConfig,
    GraphAccountFields,
    GraphContactsSourceConfig,
    GraphSourceConfig,
    ImapSourceConfig,
    MaildirSourceConfig,
    MboxSourceConfig,
)
from syncd.readahead import read_ahead
from syncd.secrets import read_secret
from syncd.contactnotes import note_hash, render_note
from syncd.records import (
    ActivityRecord,
    CustomerNote,
    CustomerRecord,
    LinkSpec,
    Participant,
    ReadOptions,
    Role,
)
from syncd.scheduler import retry_at
from syncd.store import Ingest, Skip, Store, StoreError
from syncd.timeline import TimelineView, build_view

log = logging.getLogger("syncd.pipeline")

CUSTOMER_KINDS = {"excel_customers", "graph_contacts", "ews_contacts"}
WORKBOOK_KINDS = {"excel_customers", "excel_activities"}
CORRESPONDENTS_COUNTED = "state:correspondents-counted"  # a flag in the outputs table
AUTO_CONTACTS_SOURCE = "auto-contacts"  # where auto-created people are kept (matching.auto_create_contacts)


@dataclass
class SourceResult:
    name: str
    kind: str
    ok: bool = True
    error: str | None = None
    new: int = 0
    updated: int = 0
    removed: int = 0
    quarantined: int = 0
    skipped: int = 0
    customers_changed: int = 0
    suspect: str | None = None
    seconds: float = 0.0
    interrupted: bool = False
    written_back: int = 0


@dataclass
class PassResult:
    sources: list[SourceResult] = field(default_factory=list)
    timeline_written: bool = False
    timeline_path: str = ""
    rematched: int = 0
    timeline_retry_in: float | None = None  # a write was held back by timeline.min_interval_seconds
    learned: int = 0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sources)


def imap_account(source: ImapSourceConfig) -> ImapAccount:
    """The connector's view of an IMAP source; secrets are read when a login needs them."""
    password = None
    token = None
    if source.password_secret is not None:
        secret = source.password_secret

        def password() -> str:
            return read_secret(secret, f"source {source.name} password_secret")
    else:
        command = list(source.oauth2_token_command or [])

        def token() -> str:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if done.returncode != 0 or not done.stdout.strip():
                raise SourceError(f"oauth2_token_command exited {done.returncode} without a token")
            return done.stdout.strip()
    return ImapAccount(
        host=source.host, port=source.effective_port, tls=source.tls, verify_tls=source.verify_tls,
        username=source.username, owner=source.owner, owner_addresses=frozenset(source.owner_addresses),
        password=password, oauth2_token=token, include=tuple(source.folders_include),
        exclude=tuple(source.folders_exclude), backfill_days=source.backfill_days, timeout=source.timeout_seconds,
        keyword_prefix=source.keyword_prefix, server_preview=source.server_preview,
    )


def warn_insecure(config: Config) -> None:
    """Said at every start: an unverified TLS connection can be intercepted."""
    for source in config.sources:
        if isinstance(source, ImapSourceConfig) and source.enabled and not source.verify_tls and source.tls != "none":
            log.warning("source=%s TLS certificate verification is OFF for %s: the connection and password "
                        "can be intercepted; set verify_tls = true", source.name, source.host)
        if isinstance(source, CaldavSourceConfig) and source.enabled and not source.verify_tls:
            log.warning("source=%s TLS certificate verification is OFF for %s: the connection and password "
                        "can be intercepted; set verify_tls = true", source.name, source.url)
        if isinstance(source, EwsAccountFields) and source.enabled:
            warn_ews(source)


def warn_ews(source: EwsAccountFields) -> None:
    """Unverified TLS, and EWS pointed at Exchange Online, which Microsoft is switching off."""
    name = getattr(source, "name", "?")
    if not source.verify_tls:
        log.warning("source=%s TLS certificate verification is OFF for %s: the connection and password "
                    "can be intercepted; set verify_tls = true", name, source.service_endpoint)
    if source.service_endpoint and exchange_online_host(source.service_endpoint):
        log.warning("source=%s EWS to Exchange Online is blocked by default since 1 Oct 2026 and switched off on "
                    "1 Apr 2027; use kind = \"graph\" for Microsoft 365 mailboxes (docs/microsoft-365.md)", name)


def peak_rss_mb() -> int:
    """This program's peak resident memory, for the logs.

    Linux's VmHWM starts afresh at exec; ru_maxrss does not (a child forked from a large
    parent would report the parent's size), so it is only the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def caldav_account(source: CaldavSourceConfig, floating_zone: str) -> CaldavAccount:
    secret = source.password_secret

    def password() -> str:
        return read_secret(secret, f"source {source.name} password_secret")

    return CaldavAccount(
        url=source.url, username=source.username, password=password, owner=source.owner,
        owner_addresses=frozenset(source.owner_addresses), verify_tls=source.verify_tls,
        calendars=tuple(source.calendars), past_days=source.past_days, future_days=source.future_days,
        sync_method=source.sync_method, floating_zone=floating_zone, timeout=source.timeout_seconds,
    )


def graph_client(source: GraphAccountFields, state_dir: Path | None) -> GraphClient:
    name = getattr(source, "name", "graph")
    client_secret = certificate = None
    if source.client_secret_secret is not None:
        secret = source.client_secret_secret

        def client_secret() -> str:
            return read_secret(secret, f"source {name} client_secret_secret")
    if source.certificate_secret is not None:
        cert = source.certificate_secret

        def certificate() -> str:
            return read_secret(cert, f"source {name} certificate_secret")
    sign_in = GraphSignIn(tenant_id=source.tenant_id, client_id=source.client_id, mode=source.auth,
                          authority_host=source.authority_host, client_secret=client_secret, certificate=certificate,
                          cache_path=cache_file(state_dir, name) if state_dir is not None else None,
                          timeout=source.timeout_seconds)
    return GraphClient(source.graph_url, GraphTokens(sign_in, name), source=name, timeout=source.timeout_seconds,
                       max_wait=source.throttle_max_wait_seconds)


def ews_account(source: EwsAccountFields, mailbox: str) -> EwsAccount:
    name = getattr(source, "name", "ews")
    secret = source.password_secret if source.auth_type != "oauth" else source.client_secret_secret
    assert secret is not None

    def password() -> str:
        return read_secret(secret, f"source {name} {'password_secret' if source.auth_type != 'oauth' else 'client_secret_secret'}")

    return EwsAccount(
        mailbox=mailbox, username=source.username, password=password, auth_type=source.auth_type,
        service_endpoint=source.service_endpoint, autodiscover=source.autodiscover, verify_tls=source.verify_tls,
        impersonation=source.impersonation, client_id=source.client_id, tenant_id=source.tenant_id,
        timeout=source.timeout_seconds,
    )


def make_connector(source: object, options: ReadOptions, floating_zone: str = "UTC",
                   state_dir: Path | None = None) -> Connector:
    if isinstance(source, GraphSourceConfig):
        mailbox = GraphMailbox(
            mailbox=source.effective_mailbox, owner=source.owner,
            owner_addresses=frozenset(source.owner_addresses) | {source.effective_mailbox},
            folders=tuple(source.folders), backfill_days=source.backfill_days, calendar=source.calendar,
            past_days=source.past_days, future_days=source.future_days, contacts_folder=source.contacts_folder,
        )
        return GraphConnector(source.name, options, mailbox, graph_client(source, state_dir))
    if isinstance(source, GraphContactsSourceConfig):
        return GraphContactsConnector(source.name, options, source.mailbox, source.contacts_folder,
                                      graph_client(source, state_dir))
    if isinstance(source, EwsSourceConfig):
        return EwsConnector(source.name, options, ews_account(source, source.effective_mailbox),
                            owner=source.owner, owner_addresses=frozenset(source.owner_addresses),
                            folders=tuple(source.folders), calendar=source.calendar, backfill_days=source.backfill_days,
                            past_days=source.past_days, future_days=source.future_days, contacts_folder=source.contacts_folder)
    if isinstance(source, EwsContactsSourceConfig):
        return EwsContactsConnector(source.name, options, ews_account(source, source.mailbox), source.contacts_folder)
    if isinstance(source, ImapSourceConfig):
        return ImapConnector(source.name, options, imap_account(source))
    if isinstance(source, CaldavSourceConfig):
        return CaldavConnector(source.name, options, caldav_account(source, floating_zone))
    if isinstance(source, MaildirSourceConfig):
        return MaildirConnector(
            source.name, options, path=source.path, owner=source.owner,
            owner_addresses=frozenset(source.owner_addresses), include_subfolders=source.include_subfolders,
        )
    if isinstance(source, MboxSourceConfig):
        return MboxConnector(source.name, options, path=source.path, owner=source.owner,
                             owner_addresses=frozenset(source.owner_addresses))
    if isinstance(source, ExcelCustomersSourceConfig):
        return ExcelCustomersConnector(
            source.name, options, path=source.path, sheet=source.sheet, header_row=source.header_row_number,
            columns=source.columns.model_dump(), key_columns=source.key_columns,
        )
    if isinstance(source, ExcelActivitiesSourceConfig):
        return ExcelActivitiesConnector(source.name, options, activity_sheet(source, floating_zone))
    raise ValueError(f"no connector for source kind {getattr(source, 'kind', source)!r}")


def match_policy(config: Config) -> MatchPolicy:
    own: set[str] = set()
    for source in config.sources:
        if isinstance(source, (MaildirSourceConfig, MboxSourceConfig, ImapSourceConfig, CaldavSourceConfig)):
            own.add(source.owner)
            own.update(source.owner_addresses)
        if isinstance(source, (GraphSourceConfig, EwsSourceConfig)):
            own.update({source.owner, source.effective_mailbox, *source.owner_addresses})
    return MatchPolicy(
        internal_domains=frozenset(config.matching.internal_domains),
        own_addresses=frozenset(own),
        free_mail_domains=packaged_free_mail_domains() | frozenset(config.matching.extra_free_mail_domains),
        exclude_automated=config.matching.exclude_automated,
        blocked_addresses=frozenset(e for e in config.matching.blocklist if not e.startswith("@")),
        blocked_domains=frozenset(e[1:] for e in config.matching.blocklist if e.startswith("@")),
        block_whole_item=config.matching.blocklist_drops == "item",
        fold_plus_addresses=config.matching.fold_plus_addresses,
        default_phone_region=config.matching.default_phone_region,
        fuzzy_auto_link=config.matching.fuzzy_auto_link,
        fuzzy_suggest=config.matching.fuzzy_suggest,
    )


def normalize_customer(record: CustomerRecord, phone_region: str | None = None) -> CustomerRecord:
    emails = tuple(dict.fromkeys(e for e in (normalize_email(x) for x in record.emails) if e))
    phones = tuple(dict.fromkeys(p for p in (normalize_phone(x, phone_region) for x in record.phones) if p))
    domains = tuple(dict.fromkeys(d for d in (normalize_domain(x.split("://")[-1].split("/")[0])
                                              for x in record.domains) if d))
    return replace(record, emails=emails, phones=phones, domains=domains)


@dataclass
class IndexCache:
    """The matcher index kept between passes of the service, with the store signature it
    was built from: a pass in which no customer, identity or rule changed reuses it
    instead of rebuilding it (seconds at 100,000 customers)."""

    signature: tuple[Any, ...] | None = None
    index: CustomerIndex | None = None
    rule_problems: list[str] = field(default_factory=list)
    merge_signature: tuple[Any, ...] | None = None  # the same, for the duplicate suggestions
    merge_rows: list[tuple[str, str, str, str]] = field(default_factory=list)


class PassInterrupted(Exception):
    """Raised inside a source's loop when a stop was requested; committed batches stay."""


class Pipeline:
    def __init__(self, config: Config, store: Store, *, stop_requested: Callable[[], bool] = lambda: False,
                 heartbeat: Callable[[], None] = lambda: None, index_cache: IndexCache | None = None):
        self.config = config
        self.store = store
        self.stop_requested = stop_requested
        self.heartbeat = heartbeat
        self.policy = match_policy(config)
        self.index = CustomerIndex()
        self.rule_problems: list[str] = []
        self.index_cache = index_cache if index_cache is not None else IndexCache()
        self.options = ReadOptions(
            snippet_chars=config.store.snippet_chars,
            keep_bodies=config.store.keep_bodies,
            batch_size=config.service.batch_size,
        )

    def refresh_index(self) -> None:
        signature = (self.store.customers_signature(), self.config.matching.rules, self.policy)
        cache = self.index_cache
        if cache.index is not None and cache.signature == signature:
            self.index, self.rule_problems = cache.index, cache.rule_problems
            return
        self._build_index()
        cache.signature, cache.index, cache.rule_problems = signature, self.index, self.rule_problems

    def _build_index(self) -> None:
        customers = self.store.customer_tuples()
        identities = self.store.identity_rows()
        learned = self.store.manual_rule_rows()
        self.index = CustomerIndex.build(identities, customers, self.policy, learned)
        if self.config.matching.rules:
            # Config rules name customers; resolve them against the customers as they are
            # now. They come last, so they win over rules learned on Review.
            from_config, problems = config_rules(self.config.matching.rules, self.index,
                                                 self.config.matching.default_phone_region)
            for problem in problems:
                log.warning("%s", problem)
            self.rule_problems = problems
            self.index = CustomerIndex.build(identities, customers, self.policy, [*learned, *from_config])

    def link(self, participants: tuple[Participant, ...], hints: dict[str, str], ref: str | None) -> list[LinkSpec]:
        return link_activity(participants, hints, self.index, self.policy)

    def run_pass(self, only: Iterable[str] | None = None, confirm_removals: Iterable[str] = (),
                 debounce: bool = False, rematch_all: bool = False) -> PassResult:
        """Sync the enabled sources (only those named, when given), then write the timeline.
        ``rematch_all``: match every stored activity again (the matching config changed).

        Stops between batches when ``stop_requested`` says so; the timeline is then still
        written from what was committed, so a stop never leaves it behind the store.
        """
        wanted = set(only) if only else None
        confirmed = set(confirm_removals)
        sources = [s for s in self.config.sources if s.enabled and (wanted is None or s.name in wanted)]
        sources.sort(key=lambda s: s.kind not in CUSTOMER_KINDS)
        result = PassResult()
        started_at = datetime.now(timezone.utc)
        self.refresh_index()
        customers_changed = 0
        # Customer sources first, one at a time (mail read next matches what they add);
        # then mail sources in parallel threads, bounded by max_parallel_sources.
        customer_sources = [s for s in sources if s.kind in CUSTOMER_KINDS]
        mail_sources = [s for s in sources if s.kind not in CUSTOMER_KINDS]
        for source in customer_sources:
            if self.stop_requested():
                break
            source_result = self.sync_source(source, source.name in confirmed)
            customers_changed += source_result.customers_changed
            result.sources.append(source_result)
        if mail_sources and not self.stop_requested():
            workers = min(self.config.service.max_parallel_sources, len(mail_sources))
            if workers == 1:
                results = [self.sync_source(s, s.name in confirmed) for s in mail_sources]
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
                    results = list(pool.map(lambda s: self.sync_source(s, s.name in confirmed), mail_sources))
            for source_result in results:
                customers_changed += source_result.customers_changed
                result.sources.append(source_result)
        if self.config.matching.auto_create_contacts != "none" and not self.stop_requested():
            created = self.auto_create_contacts()
            if created:
                customers_changed += created
                self.refresh_index()
        if rematch_all:
            # The matching config changed (a reload): every stored activity may link differently.
            result.rematched = self.store.rematch(self.link)
            log.info("rematched activities=%d after the matching config changed", result.rematched)
        elif customers_changed:
            result.rematched = self.store.rematch(self.link, since=started_at)
            log.info("rematched activities=%d after customers_changed=%d", result.rematched, customers_changed)
        self.write_outputs(result, debounce)
        return result

    def auto_create_contacts(self) -> int:
        """People for outside correspondents the policy admits; returns how many were added."""
        min_in, min_out = POLICY_THRESHOLDS[self.config.matching.auto_create_contacts]
        if self.store.output_hash(CORRESPONDENTS_COUNTED) is None:
            # Mail read before the policy was on was never counted: count what the store holds,
            # once (mail of this pass may count twice; the thresholds are "at least one").
            counts = correspondent_counts(self.store.stored_mail(), self.policy)
            if counts:
                self.store.count_correspondents(counts)
            self.store.set_output_hash(CORRESPONDENTS_COUNTED, "done")
            log.info("auto-create: counted correspondents=%d from stored mail", len(counts))
        records = new_contacts(self.store.correspondents(min_in, min_out), self.index, self.policy)
        if not records:
            return 0
        source_id = self.store.source_id(AUTO_CONTACTS_SOURCE, "auto_contacts")
        committed = self.store.commit(source_id, Ingest(customers=records), self.link)
        self.store.mark_success(source_id)
        log.info("auto-created contacts=%d policy=%s", committed.customers_changed,
                 self.config.matching.auto_create_contacts)
        return committed.customers_changed

    def write_outputs(self, result: PassResult, debounce: bool = False) -> None:
        """Learn what admins typed on Review, then write the timeline workbook(s)."""
        result.timeline_path = str(self.config.timeline.path)
        try:
            result.learned = self.learn_review()
        except ReviewUnreadable as exc:
            log.warning("timeline not written this pass: %s (retried next pass, so nothing typed on Review "
                        "is lost)", exc)
            result.timeline_retry_in = float(max(5, self.config.timeline.min_interval_seconds))
            return
        if result.learned:
            self.refresh_index()
            # Rules learned on Review are about unmatched activities; merges moved links already.
            result.rematched += self.store.rematch(self.link, since=datetime.now(timezone.utc))
            log.info("review: learned assignments=%d rematched=%d", result.learned, result.rematched)
        written, retry_in = self.write_timeline(debounce)
        result.timeline_written, result.timeline_retry_in = written, retry_in

    def sync_source(self, source: object, confirm_removals: bool = False) -> SourceResult:
        name, kind = source.name, source.kind  # type: ignore[attr-defined]
        result = SourceResult(name=name, kind=kind)
        started = time.monotonic()
        source_id = self.store.source_id(name, kind)
        self.store.mark_attempt(source_id)
        connector: Connector | None = None
        try:
            connector = make_connector(source, self.options, self.config.service.timezone,
                                       self.config.service.state_dir)
            state = self.store.sync_state(source_id)
            for batch in read_ahead(connector.read(state), name=f"read-{name}"):
                ingest = Ingest(folder=batch.folder, cursor=batch.cursor, problems=list(batch.problems),
                                backlog=batch.pending)
                for record in batch.records:
                    if isinstance(record, ActivityRecord):
                        reason = skip_reason(record, self.policy)
                        if reason:
                            ingest.skipped.append(Skip(record.key, reason, record.version))
                        else:
                            ingest.activities.append(record)
                    else:
                        ingest.customers.append(normalize_customer(record, self.config.matching.default_phone_region))
                if self.config.matching.auto_create_contacts != "none" and ingest.activities:
                    ingest.correspondents = correspondent_counts(ingest.activities, self.policy)
                if batch.removed:
                    held = self._removal_guard(batch.listed, len(batch.removed), batch.listing_complete)
                    if held and not confirm_removals:
                        result.suspect = held
                        log.warning("source=%s removals held: %s", name, held)
                    else:
                        ingest.removed = list(batch.removed)
                committed = self.store.commit(source_id, ingest, self.link)
                result.new += committed.activities_new
                result.updated += committed.activities_updated
                result.removed += committed.removed
                result.quarantined += committed.quarantined
                result.skipped += committed.skipped
                if committed.customers_changed:
                    result.customers_changed += committed.customers_changed
                self.heartbeat()
                if self.stop_requested():
                    raise PassInterrupted()
            if result.customers_changed:
                self.refresh_index()  # once per source: rebuilding per batch would be quadratic
            if getattr(source, "write_keywords", False) or getattr(source, "write_categories", False):
                pending = self.store.pending_labels(source_id)
                written = connector.write_back(pending)
                self.store.mark_labels_written(source_id, {k: pending[k] for k in written})
                result.written_back = len(written)
            if getattr(source, "write_contacts", False):
                result.written_back += self.write_contacts(connector, source, source_id)
            self.store.mark_success(source_id, suspect_reason=result.suspect)
        except PassInterrupted:
            result.interrupted = True
            log.info("source=%s stop requested: committed batches kept, the rest is read next time", name)
        except SourceError as exc:
            result.ok, result.error = False, str(exc)
            # A refused login is retried slowly: hammering a bad password locks the account.
            base = max(600, self.config.service.interval_seconds) if isinstance(exc, SourceAuthError) \
                else self.config.service.interval_seconds
            failures = self.store.mark_failure(source_id, str(exc), retry_at(base))
            log.error("source=%s kind=%s failures=%d error=%r", name, kind, failures, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
            result.ok, result.error = False, f"unexpected error: {type(exc).__name__}: {exc}"
            self.store.mark_failure(source_id, result.error, retry_at(self.config.service.interval_seconds))
            log.exception("source=%s kind=%s unexpected error", name, kind)
        finally:
            if connector is not None:
                connector.close()
        result.seconds = time.monotonic() - started
        log.info(
            "source=%s kind=%s ok=%s new=%d updated=%d removed=%d skipped=%d quarantined=%d seconds=%.2f "
            "peak_rss_mb=%d", name, kind, result.ok, result.new, result.updated, result.removed, result.skipped,
            result.quarantined, result.seconds, peak_rss_mb(),
        )
        return result

    def write_contacts(self, connector: Connector, source: object, source_id: int) -> int:
        """Contacts whose rendered timeline changed since last written (hash kept in outputs)."""
        zone = ZoneInfo(self.config.service.timezone)
        name = getattr(source, "name", "")
        notes: dict[str, CustomerNote] = {}
        hashes: dict[str, str] = {}
        for customer in self.store.customer_timelines(source_id, getattr(source, "contact_history", 20)):
            key = str(customer["id"])
            note = render_note(customer, zone)
            digest = note_hash(note)
            if self.store.output_hash(f"contact:{name}:{key}") != digest:
                notes[key], hashes[key] = note, digest
        written = connector.write_contacts(notes) if notes else set()
        for key in written:
            self.store.set_output_hash(f"contact:{name}:{key}", hashes[key])
        if written:
            log.info("source=%s customer contacts written=%d", name, len(written))
        return len(written)

    def _removal_guard(self, listed: int, removing: int, complete: bool) -> str | None:
        """Why these removals look like a glitch rather than real deletions, or None.

        ``listed`` is what the listing found in its scope (a source, or one folder) and
        ``removing`` what it would remove from that scope.
        """
        if not complete or not removing:
            return None
        if listed == 0:
            return f"source reads as empty but {removing} items are stored; removals held"
        held = listed + removing
        ratio = removing / held
        if held >= 10 and ratio > self.config.service.removal_guard_ratio:
            return f"{removing} of {held} items ({ratio:.0%}) would be removed; removals held"
        return None

    def learn_review(self) -> int:
        """Turn Customer cells an admin filled on the Review sheet into manual rules.
        Returns how many assignments were learned (pending ones show their note on Review)."""
        entries = read_review_entries(self.config.timeline.path)
        pending = self.store.pending_assignments()
        for entry in entries:
            if not entry.customer_text and entry.ref in pending:
                self.store.drop_pending(entry.ref)  # the admin cleared the cell: forget it
        typed = [e for e in entries if e.customer_text]
        if not typed:
            return 0
        learned = 0
        merge_entries = [e for e in typed if parse_merge_ref(e.ref)]
        for entry in merge_entries:
            learned += self._answer_merge(entry)
        typed = [e for e in typed if not parse_merge_ref(e.ref)]
        if not typed:
            return learned
        from syncd.timeline import activity_ref

        by_ref = {activity_ref(a): a for a in self.store.activities(limit=self.config.timeline.max_rows,
                                                                    unmatched_only=True)}
        for entry in typed:
            activity = by_ref.get(entry.ref)
            if activity is None:
                self.store.drop_pending(entry.ref)
                continue
            if activity["customers"]:
                continue  # matched meanwhile (e.g. the customer was added to the customer sheet)
            resolution = resolve_customer(entry.customer_text, self.index)
            if resolution.customer_id is None:
                if pending.get(entry.ref) != (entry.customer_text, resolution.note or ""):
                    self.store.save_assignment(entry.ref, [], None, entry.customer_text, resolution.note)
                    log.warning("review row %d (%s): %s", entry.row, entry.ref, resolution.note)
                continue
            keys = rule_keys(activity, self.policy)
            if not keys:
                note = "this activity has no outside address, phone or customer name to learn from"
                self.store.save_assignment(entry.ref, [], None, entry.customer_text, note)
                continue
            self.store.save_assignment(entry.ref, keys, resolution.customer_id, entry.customer_text)
            log.info("review row %d (%s): learned %s -> customer #%d %s", entry.row, entry.ref,
                     ", ".join(f"{k}={v}" for k, v in keys), resolution.customer_id,
                     self.index.names.get(resolution.customer_id, ""))
            learned += 1
        return learned

    def _answer_merge(self, entry: Any) -> int:
        """An admin's answer to a merge suggestion on Review: merge, keep a named one, or no."""
        merge_id, keep_id = parse_merge_ref(entry.ref) or (0, 0)
        answer = entry.customer_text.strip().lower().lstrip("#")
        if answer in ("no", "n", "ignore", "keep both", "ne", "nie", "nej", "nein"):
            self.store.dismiss_suggestion(entry.ref, entry.customer_text)
            return 0
        if answer == str(merge_id):
            merge_id, keep_id = keep_id, merge_id  # the admin keeps the other one
        elif answer not in ("merge", "yes", "y", "ok", "da", "tak", "ja", str(keep_id)):
            note = f"type merge (or {keep_id} or {merge_id}: the ID to keep), or no"
            if self.store.pending_assignments().get(entry.ref) != (entry.customer_text, note):
                self.store.save_assignment(entry.ref, [], None, entry.customer_text, note)
            return 0
        try:
            moved = self.store.merge_customers(merge_id, keep_id)
        except StoreError as exc:
            self.store.save_assignment(entry.ref, [], None, entry.customer_text, str(exc))
            return 0
        self.store.drop_pending(entry.ref)
        log.info("review row %d: merged customer #%d into #%d (%s)", entry.row, merge_id, keep_id, moved)
        return 1

    def merge_rows(self) -> list[tuple[str, str, str, str]]:
        """Probable duplicates as Review rows: (ref, title, reason, proposal). Worked out
        again only when customers, identities or rules (dismissals too) changed."""
        signature = self.store.customers_signature()
        cache = self.index_cache
        if cache.merge_signature != signature:
            cache.merge_rows, cache.merge_signature = self._find_merge_rows(), signature
        return cache.merge_rows

    def _find_merge_rows(self) -> list[tuple[str, str, str, str]]:
        customers = [(cid, kind, name) for cid, kind, name, _company in self.store.customer_tuples()]
        names = {cid: name for cid, _kind, name in customers}
        rows = []
        for suggestion in duplicate_suggestions(customers, self.store.identity_conflicts(), self.index,
                                                self.store.dismissed_suggestions()):
            m, k = suggestion.merge_id, suggestion.keep_id
            rows.append((suggestion.ref, f"Possible duplicate customers: {names[m]} (#{m}) and {names[k]} (#{k})",
                         suggestion.reason, f"merge #{m} {names[m]} into #{k} {names[k]}"))
        return rows

    def _views(self) -> list[tuple[Path, TimelineView]]:
        """The main timeline view and, with timeline.per_owner, one per customer owner."""
        cfg = self.config.timeline
        zone = ZoneInfo(self.config.service.timezone)
        today = datetime.now(timezone.utc).astimezone(zone).date()
        day_start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        activities = self.store.activities(limit=cfg.max_rows)
        customers = self.store.customer_summaries(day_start)
        suggestions: dict[int, list[str]] = {}
        if cfg.review_suggestions:
            unmatched = [a for a in activities if not a["customers"]]
            unmatched.sort(key=lambda a: a["occurred_at"], reverse=True)
            for a in unmatched[: cfg.review_max_rows]:  # only the rows Review shows
                found = suggest_customers(
                    tuple(Participant(p["email"], p.get("name", ""), Role(p["role"])) for p in a["participants"]),
                    a.get("hints") or {}, self.index, self.policy, cfg.review_suggestions)
                suggestions[a["id"]] = [f"{self.index.names[cid]} ({score:.0%})" for cid, score in found]
        rules = [(r.after_days, r.label) for r in cfg.status]
        pending = self.store.pending_assignments()
        views = [(cfg.path, build_view(activities, customers, today, zone, status_rules=rules,
                                       suggestions=suggestions, pending=pending, reports=cfg.reports,
                                       merges=self.merge_rows(), review_max_rows=cfg.review_max_rows))]
        if cfg.per_owner:
            owners = sorted({c["owner"] for c in customers if c["owner"]})
            for owner in owners:
                mine = [c for c in customers if c["owner"] == owner]
                ids = {c["id"] for c in mine}
                their = [a for a in activities if any(link["customer_id"] in ids for link in a["customers"])]
                views.append((cfg.per_owner_dir / f"timeline-{owner_file_name(owner)}.xlsx",
                              build_view(their, mine, today, zone, status_rules=rules, reports=cfg.reports)))
        return views

    def write_timeline(self, debounce: bool = False) -> tuple[bool, float | None]:
        """Write the timeline workbook(s) whose content changed (or whose file is gone).

        With ``debounce`` (the service), a workbook written less than
        ``timeline.min_interval_seconds`` ago is held back; the seconds to wait are returned
        so the service comes back for it.
        """
        written = False
        retry_in: float | None = None
        for path, view in self._views():
            digest = view.content_hash()
            if path.exists() and self.store.output_hash(str(path)) == digest:
                continue
            if debounce and path.exists():
                last = self.store.output_written_at(str(path))
                wait = self.config.timeline.min_interval_seconds - (
                    (datetime.now(timezone.utc) - last).total_seconds() if last else 1e9)
                if wait > 0:
                    retry_in = wait if retry_in is None else min(retry_in, wait)
                    continue
            try:
                write_timeline(path, view)
            except TimelineWriteError as exc:
                log.error("timeline write failed: %s", exc)
                retry_in = float(max(5, self.config.timeline.min_interval_seconds))
                continue
            self.store.set_output_hash(str(path), digest)
            written = True
            log.info("timeline written path=%s activities=%d customers=%d review=%d peak_rss_mb=%d", path,
                     len(view.timeline), len(view.customers), len(view.review), peak_rss_mb())
        return written, retry_in


def owner_file_name(owner: str) -> str:
    """A file-name-safe form of an owner (an address or a name)."""
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", owner).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9@._-]+", "-", text).strip("-.") or "owner"
