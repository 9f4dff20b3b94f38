"""One pass: every due source read incrementally, matched, committed, and the outputs written.

Customer sources run first, one at a time, so mail read in the same pass matches customers
added in it; then activity sources in parallel threads (``max_parallel_sources``). When
customers changed, the activities they can affect are re-matched from the store (no
mailbox is read again). A source that fails is recorded with its error and the pass goes
on with the others. The outputs are written from what was committed, also after a stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from syncd.config import Config
from syncd.connectors.budget import RequestBudgets
from syncd.mapping.contacts import POLICY_THRESHOLDS, correspondent_counts, new_contacts
from syncd.mapping.matcher import CustomerIndex, link_activity
from syncd.mapping.review import config_rules
from syncd.model.records import LinkSpec, Participant
from syncd.model.settings import SourceSettings
from syncd.outputs.review_sheet import ReviewUnreadable
from syncd.pipeline.results import PassResult, SourceResult
from syncd.pipeline.review_learning import learn_review
from syncd.pipeline.source_pass import PassContext, sync_source
from syncd.pipeline.timeline_output import IndexCache, timeline_views, write_timelines
from syncd.pipeline.wiring import is_customer_source, match_policy
from syncd.store import Ingest, Store

log = logging.getLogger("syncd.pipeline")

AUTO_CONTACTS_SOURCE = "auto-contacts"  # where auto-created people are kept (matching.auto_create_contacts)
CORRESPONDENTS_COUNTED = "correspondents-counted"  # a store flag: stored mail was counted once


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        stop_requested: Callable[[], bool] = lambda: False,
        heartbeat: Callable[[], None] = lambda: None,
        index_cache: IndexCache | None = None,
        budgets: RequestBudgets | None = None,
    ):
        self.config = config
        self.budgets = budgets if budgets is not None else RequestBudgets()
        self.store = store
        self.stop_requested = stop_requested
        self.heartbeat = heartbeat
        self.policy = match_policy(config)
        self.index = CustomerIndex()
        self.rule_problems: list[str] = []
        self.index_cache = index_cache if index_cache is not None else IndexCache()

    # ---- the matcher's index ----------------------------------------------------------

    def refresh_privacy(self) -> None:
        """Erasures made since (``syncd forget``, maybe from another process) apply from now on."""
        digests = self.store.privacy.suppression_digests()
        if digests != self.policy.suppression.digests:
            salt = self.store.privacy.salt() if digests else b""
            self.policy = replace(self.policy, suppression=replace(self.policy.suppression, digests=digests, salt=salt))

    def refresh_index(self) -> None:
        self.refresh_privacy()
        cache = self.index_cache
        with cache.lock:  # one build at a time; the others take its result
            signature = (self.store.reads.customers_signature(), self.config.matching.rules, self.policy)
            if cache.index is not None and cache.signature == signature:
                self.index, self.rule_problems = cache.index, cache.rule_problems
                return
            self._build_index()
            cache.signature, cache.index, cache.rule_problems = signature, self.index, self.rule_problems

    def _build_index(self) -> None:
        customers = self.store.reads.customer_tuples()
        identities = self.store.reads.identity_rows()
        learned = self.store.review.manual_rule_rows()
        self.index = CustomerIndex.build(identities, customers, self.policy, learned)
        self.rule_problems = []
        if self.config.matching.rules:
            # Config rules name customers; resolve them against the customers as they are
            # now. They come last, so they win over rules learned on Review.
            from_config, problems = config_rules(
                self.config.matching.rules, self.index, self.config.matching.default_phone_region
            )
            for problem in problems:
                log.warning("%s", problem)
            self.rule_problems = problems
            self.index = CustomerIndex.build(identities, customers, self.policy, [*learned, *from_config])

    def link(self, participants: tuple[Participant, ...], hints: dict[str, str]) -> list[LinkSpec]:
        return link_activity(participants, hints, self.index, self.policy)

    # ---- a pass -----------------------------------------------------------------------

    def context(self) -> PassContext:
        return PassContext(
            config=self.config,
            store=self.store,
            policy=self.policy,
            link=self.link,
            stop_requested=self.stop_requested,
            heartbeat=self.heartbeat,
            customers_changed=self.refresh_index,
            budgets=self.budgets,
        )

    def sync_source(self, source: object, confirm_removals: bool = False) -> SourceResult:
        return sync_source(self.context(), source, confirm_removals)  # type: ignore[arg-type]

    def sync_one(self, source: SourceSettings) -> SourceResult:
        """One source on its own (the service's schedule): read, commit, and re-match what
        the customers it changed can affect. The outputs are the caller's to write."""
        started_at = datetime.now(timezone.utc)
        self.refresh_index()
        result = sync_source(self.context(), source)
        if result.customers_changed:
            rematched = self.store.links.rematch(self.link, since=started_at)
            log.info(
                "source=%s rematched activities=%d after customers_changed=%d",
                source.name,
                rematched,
                result.customers_changed,
            )
        return result

    def run_pass(
        self,
        only: Iterable[str] | None = None,
        confirm_removals: Iterable[str] = (),
        debounce: bool = False,
        rematch_all: bool = False,
    ) -> PassResult:
        """Sync the enabled sources (only those named, when given), then write the outputs.
        ``rematch_all``: match every stored activity again (the matching config changed).

        Stops between batches when ``stop_requested`` says so; the timeline is then still
        written from what was committed, so a stop never leaves it behind the store.
        """
        wanted = set(only) if only else None
        confirmed = set(confirm_removals)
        sources = [s for s in self.config.sources if s.enabled and (wanted is None or s.name in wanted)]
        result = PassResult()
        started_at = datetime.now(timezone.utc)
        self.refresh_index()
        customers_changed = 0
        context = self.context()
        customer_sources = [s for s in sources if is_customer_source(self.config, s)]
        activity_sources = [s for s in sources if not is_customer_source(self.config, s)]
        for source in customer_sources:
            if self.stop_requested():
                break
            source_result = sync_source(context, source, source.name in confirmed)
            customers_changed += source_result.customers_changed
            result.sources.append(source_result)
        if activity_sources and not self.stop_requested():
            workers = min(self.config.service.max_parallel_sources, len(activity_sources))
            if workers == 1:
                results = [sync_source(context, s, s.name in confirmed) for s in activity_sources]
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") as pool:
                    results = list(pool.map(lambda s: sync_source(context, s, s.name in confirmed), activity_sources))
            for source_result in results:
                customers_changed += source_result.customers_changed
                result.sources.append(source_result)
        if self.config.matching.auto_create_contacts != "none" and not self.stop_requested():
            created = self.auto_create_contacts()
            if created:
                customers_changed += created
                self.refresh_index()
        self.apply_retention()
        if rematch_all:
            # The matching config changed (a reload): every stored activity may link differently.
            result.rematched = self.store.links.rematch(self.link)
            log.info("rematched activities=%d after the matching config changed", result.rematched)
        elif customers_changed:
            result.rematched = self.store.links.rematch(self.link, since=started_at)
            log.info("rematched activities=%d after customers_changed=%d", result.rematched, customers_changed)
        self.write_outputs(result, debounce)
        return result

    def apply_retention(self) -> dict[str, int]:
        """``[privacy]`` retention: history, unmatched activities and quarantine past their limits."""
        privacy = self.config.privacy
        now = datetime.now(timezone.utc)

        def cutoff(days: int) -> datetime | None:
            return now - timedelta(days=days) if days else None

        limits = (privacy.retention_days, privacy.review_retention_days, privacy.quarantine_retention_days)
        if not any(limits):
            return {}
        purged = self.store.privacy.purge(*(cutoff(days) for days in limits))
        if any(purged.values()):
            log.info("retention purged %s", " ".join(f"{k}={v}" for k, v in purged.items()))
        return purged

    def auto_create_contacts(self) -> int:
        """People for outside correspondents the policy admits; returns how many were added."""
        min_in, min_out = POLICY_THRESHOLDS[self.config.matching.auto_create_contacts]
        if not self.store.outputs.flag(CORRESPONDENTS_COUNTED):
            # Mail read before the policy was on was never counted: count what the store holds,
            # once (mail of this pass may count twice; the thresholds are "at least one").
            counts = correspondent_counts(self.store.reads.stored_mail(), self.policy)
            if counts:
                self.store.batches.count_correspondents(counts)
            self.store.outputs.set_flag(CORRESPONDENTS_COUNTED)
            log.info("auto-create: counted correspondents=%d from stored mail", len(counts))
        records = new_contacts(self.store.reads.correspondents(min_in, min_out), self.index, self.policy)
        if not records:
            return 0
        source_id = self.store.sources.source_id(AUTO_CONTACTS_SOURCE, "auto_contacts")
        committed = self.store.batches.commit(source_id, Ingest(customers=records), self.link)
        self.store.sources.mark_success(source_id)
        log.info(
            "auto-created contacts=%d policy=%s", committed.customers_changed, self.config.matching.auto_create_contacts
        )
        return committed.customers_changed

    # ---- outputs ----------------------------------------------------------------------

    def write_outputs(self, result: PassResult, debounce: bool = False) -> None:
        """Learn what admins typed on Review, then write the timeline workbook(s)."""
        result.timeline_path = str(self.config.timeline.path)
        try:
            result.learned = learn_review(
                self.store, self.index, self.policy, self.config.timeline.path, self.config.timeline.max_rows
            )
        except ReviewUnreadable as exc:
            log.warning(
                "timeline not written this pass: %s (retried next pass, so nothing typed on Review is lost)", exc
            )
            result.timeline_retry_in = float(max(5, self.config.timeline.min_interval_seconds))
            return
        if result.learned:
            self.refresh_index()
            # Rules learned on Review are about unmatched activities; merges moved links already.
            result.rematched += self.store.links.rematch(self.link, since=datetime.now(timezone.utc))
            log.info("review: learned assignments=%d rematched=%d", result.learned, result.rematched)
        views = timeline_views(self.config, self.store, self.index, self.policy, self.index_cache)
        outcome = write_timelines(self.config, self.store, views, debounce)
        result.timeline_written, result.timeline_retry_in = outcome.written, outcome.retry_in
        result.output_errors += outcome.errors
        if self.config.timeline.publish is not None:
            from syncd.pipeline.publish import publish_timelines

            published = publish_timelines(self.config, self.store, [path for path, _view in views], self.budgets)
            result.output_errors += published.errors
