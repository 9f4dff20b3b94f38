"""The long-running service behind `syncd run`.

Life cycle: load the config, open (and migrate) the store, tell systemd READY, then loop:
hand each source that is due (its interval, an IDLE wakeup, a saved workbook) to a worker
of its own (``syncd.workers``), write the timeline when what it shows changed, report
STATUS, and sleep until the next event while pinging the watchdog. Signal handlers only
set events (nothing else is safe in a handler); the loop acts on them:

* SIGTERM / SIGINT: stop between batches (committed batches are durable; the rest of the
  pass is re-read next start), close connections and the store, exit 0.
* SIGHUP, or the config file changing on disk: re-read the config. An invalid config is
  rejected with its errors logged and the running one kept.

Faults the service outlives without exiting (docs/operations.md): a source failing or
hanging (its own worker; retried with backoff), the store unreachable or its disk full
(``StoreOutage``: every store call of the loop is guarded; sources wait; all resumes when
the store answers again), an output that cannot be written (the old file stays; retried).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from syncd.config import Config, ConfigError, load_config
from syncd.connectors.budget import RequestBudgets
from syncd.notify import SystemdNotifier
from syncd.pipeline import IndexCache, PassResult, Pipeline, SourceResult, warn_insecure
from syncd.pipeline.wiring import connector_context, is_customer_source
from syncd.scheduler import due
from syncd.store import Store, StoreError
from syncd.store.engine import fault_reason, redact_url, store_unavailable
from syncd.watch import TIMELINE_MARK, WorkbookWatcher
from syncd.workers import SourceWorkers

log = logging.getLogger("syncd.service")

STORE_RETRY_CAP_SECONDS = 30.0
FIRST_ROUND_SECONDS = 30.0


class ConfigWatcher:
    """Sets an event when the config file is written or replaced (editors often rename over it)."""

    def __init__(self, path: Path, changed: threading.Event, wake: threading.Event):
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        target = str(path.resolve())

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("modified", "created", "moved", "closed"):
                    return
                paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
                if target in paths:
                    changed.set()
                    wake.set()

        self.observer = Observer()
        self.observer.schedule(Handler(), str(path.resolve().parent), recursive=False)
        self.observer.daemon = True

    def start(self) -> None:
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


class StoreOutage:
    """Whether the store answers, since when not, and when to try it again (thread-safe).

    Logged once when it starts and once when it ends, not at every retry; the retry backs
    off 1, 2, 4... up to 30 s with jitter, so a PostgreSQL restart is noticed within seconds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.reason = ""
        self.failures = 0
        self.retry_at = 0.0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            delay = min(STORE_RETRY_CAP_SECONDS, 2.0 ** (self.failures - 1)) * (0.8 + 0.4 * random.random())
            self.retry_at = time.monotonic() + delay
            self.reason = fault_reason(exc)
            if self.since is None:
                self.since = time.monotonic()
                log.error("store unavailable: %s; syncing waits for it, retried every few seconds", self.reason)

    def recovered(self) -> None:
        with self._lock:
            if self.since is not None:
                log.warning("store available again after %.0fs", time.monotonic() - self.since)
            self.since, self.failures, self.retry_at = None, 0, 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def status(self) -> str:
        return f"store unavailable since {time.monotonic() - (self.since or 0):.0f}s: {self.reason}"


def _summary(store: Store) -> str:
    status = store.reads.status()
    failing = [s.name for s in status.sources if s.error]
    failing += [o.path for o in status.outputs if o.error]
    text = (
        f"{status.activities} activities, {status.customers} customers, "
        f"{status.unmatched} unmatched, {status.quarantined} quarantined"
    )
    if failing:
        text += f"; failing: {', '.join(failing)}"
    return text


class Service:
    def __init__(self, config_path: Path, notifier: SystemdNotifier | None = None, debug: bool = False):
        self.config_path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.debug = debug
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()
        self.urgent: set[str] = set()
        self.urgent_lock = threading.Lock()
        self.watchers_stop = threading.Event()
        self.watcher_threads: list[threading.Thread] = []
        self.workbook_watcher: WorkbookWatcher | None = None
        self.outage = StoreOutage()
        self.index_cache = IndexCache()  # the matcher index, shared by the source jobs
        self.budgets = RequestBudgets()  # per-mailbox request limits (Graph), shared by the jobs
        self.config: Config | None = None
        self.store: Store | None = None
        self.outputs_dirty = threading.Event()  # a job committed something the outputs may show
        self.retry_soon: dict[str, float] = {}  # source -> when to try again after a store fault
        self.first_round: set[str] = set()  # customer sources that have not had their first turn yet
        self.unstarted: set[str] = set()  # sources that have not had their first turn yet

    # ---- wakeups ------------------------------------------------------------------------

    def mark_urgent(self, source_name: str) -> None:
        """Called from an IDLE or workbook watcher: sync this source now, not at the next interval."""
        with self.urgent_lock:
            self.urgent.add(source_name)
        self.wake.set()

    def source_notice(self, source_name: str, notice: str | None) -> None:
        """Called from a live watcher: advice for `syncd status`; a store outage only loses it."""
        store = self.store
        if store is None:
            return
        try:
            store.sources.set_notice(source_name, notice)
        except Exception as exc:  # noqa: BLE001 - advice must never stop a watcher
            log.warning("source=%s notice not stored: %s", source_name, fault_reason(exc))

    def take_urgent(self) -> set[str]:
        with self.urgent_lock:
            names, self.urgent = self.urgent, set()
        return names

    def start_watchers(self, config: Config) -> None:
        """A live watcher per source whose kind has one (IMAP IDLE), and the workbook watcher."""
        self.watchers_stop = threading.Event()
        self.watcher_threads = []
        context = connector_context(config, self.budgets)
        for source in config.sources:
            kind = config.kinds.get(source.kind)
            if not (source.enabled and source.live() and kind.watcher is not None):
                continue
            watcher = kind.watcher(
                source,
                context,
                functools.partial(self.mark_urgent, source.name),
                functools.partial(self.source_notice, source.name),
            )
            thread = threading.Thread(
                target=watcher.run, args=(self.watchers_stop,), daemon=True, name=f"watch-{source.name}"
            )
            thread.start()
            self.watcher_threads.append(thread)
            log.info("source=%s live watcher started", source.name)
        files = [(s.name, path) for s in config.sources if s.enabled for path in s.watched_files()]
        files.append((TIMELINE_MARK, config.timeline.path))
        self.workbook_watcher = WorkbookWatcher(files, self.mark_urgent)
        self.workbook_watcher.start()

    def stop_watchers(self) -> None:
        if self.workbook_watcher is not None:
            self.workbook_watcher.stop()
            self.workbook_watcher = None
        self.watchers_stop.set()
        for thread in self.watcher_threads:
            thread.join(timeout=5)
        self.watcher_threads = []

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stop.set()
        self.wake.set()

    def _on_hup(self, _signum: int, _frame: Any) -> None:
        self.reload.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    # ---- config and logging -------------------------------------------------------------

    def _apply_logging(self, config: Config) -> None:
        """[service] log_level and log_format, as `sync --once` honours them (env and --debug win)."""
        from syncd.logs import setup_logging

        level = "debug" if self.debug else os.environ.get("SYNCD_LOG_LEVEL", config.service.log_level)
        setup_logging(level, os.environ.get("SYNCD_LOG_FORMAT", config.service.log_format))

    def _reload(self, config: Config) -> Config:
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc.render().replace("\n", " | "))
            self.notifier.ready(f"config reload rejected ({len(exc.problems)} problems); running the old config")
            return config
        self._apply_logging(new)
        if new.store_url != config.store_url:
            log.warning("config reload: a new store URL takes effect at the next restart; keeping the open store")
        log.info("config reloaded sources=%d", len(new.sources))
        self.notifier.ready("config reloaded")
        return new

    # ---- the store ----------------------------------------------------------------------

    def _open_store(self, config: Config) -> Store | None:
        """The store, waiting (with backoff) while it is unreachable; None when stopped meanwhile.
        A store that cannot be used at all (a bad URL, a half-made store) raises StoreError."""
        while not self.stop.is_set():
            try:
                store = Store.open(config.store_url)
            except StoreError as exc:
                if exc.__cause__ is None or not store_unavailable(exc.__cause__):
                    raise
                self.outage.failed(exc.__cause__)
                self.notifier.status(f"waiting for the store {redact_url(config.store_url)}: {self.outage.reason}")
                self._sleep_until(self.outage.retry_at)
                continue
            self.outage.recovered()
            return store
        return None

    def _guarded(self, what: str, action: Any) -> Any:
        """Run a store call of the loop; a store fault is an outage, never the end of the service."""
        try:
            result = action()
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            self.outage.failed(exc)
            log.debug("store call failed while %s: %s", what, exc)
            return None
        if self.outage.down:
            self.outage.recovered()
        return result

    # ---- source jobs (in worker threads) --------------------------------------------------

    def _sync_job(self, name: str) -> SourceResult:
        config, store = self.config, self.store
        assert config is not None and store is not None
        pipeline = Pipeline(
            config,
            store,
            stop_requested=self.stop.is_set,
            heartbeat=self.notifier.watchdog,
            index_cache=self.index_cache,
            budgets=self.budgets,
        )
        return pipeline.sync_one(config.source(name))

    def _job_done(self, name: str, result: SourceResult | None, error: BaseException | None) -> None:
        if self.first_round:
            self.first_round.discard(name)
            if not self.first_round:
                self.outputs_dirty.set()  # the customers are in: write what everything found
        if self.unstarted:
            self.unstarted.discard(name)
            if not self.unstarted:
                self.outputs_dirty.set()  # every source had its first turn: the outputs are checked once
        if error is not None:
            if store_unavailable(error):
                self.outage.failed(error.__cause__ or error)
                self.retry_soon[name] = self.outage.retry_at  # read again once the store answers
            else:
                log.error("source=%s sync job failed: %s: %s", name, type(error).__name__, error)
        elif self.outage.down:
            self.outage.recovered()
        if result is not None and (result.new or result.updated or result.removed or result.customers_changed):
            self.outputs_dirty.set()
        self.wake.set()

    # ---- the loop -------------------------------------------------------------------------

    def _sleep_until(self, deadline: float) -> None:
        """Wait for the deadline, a signal, new mail or a config change, pinging the watchdog."""
        slice_seconds = 60.0
        if self.notifier.watchdog_seconds:
            slice_seconds = max(0.05, self.notifier.watchdog_seconds / 2)
        while not self.wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.wake.wait(min(slice_seconds, remaining))
            self.notifier.watchdog()
        self.wake.clear()

    def run(self) -> int:
        config = load_config(self.config_path)
        self._apply_logging(config)
        self.install_signal_handlers()
        self.notifier.ready("starting; opening the store")
        store = self._open_store(config)
        if store is None:
            self.notifier.stopping()
            return 0
        self.config, self.store = config, store
        watcher = ConfigWatcher(self.config_path, self.reload, self.wake)
        watcher.start()
        metrics = None
        if config.service.metrics_address:
            from syncd.metrics import serve_metrics

            metrics = serve_metrics(config.service.metrics_address, store.reads.status)
        names = ", ".join(s.name for s in config.sources if s.enabled)
        log.info(
            "started config=%s sources=%d interval=%ds",
            self.config_path,
            len(config.sources),
            config.service.interval_seconds,
        )
        warn_insecure(config)
        self.start_watchers(config)
        workers: SourceWorkers[SourceResult] = SourceWorkers(
            config.service.max_parallel_sources, self._sync_job, self._job_done
        )
        self.notifier.ready(f"ready; sources: {names or 'none'}")
        next_due: dict[str, float] = {}  # source -> when its interval comes round
        # The outputs wait for the customer sources' first turn (what everything else is
        # matched against), but not for one that hangs: at most FIRST_ROUND_SECONDS.
        self.first_round = {s.name for s in config.sources if s.enabled and is_customer_source(config, s)}
        self.unstarted = {s.name for s in config.sources if s.enabled}  # written once all had a turn
        timeline_due: float | None = time.monotonic() + FIRST_ROUND_SECONDS
        rematch_all = False  # set when a reload changed [matching]: re-match everything once
        try:
            while not self.stop.is_set():
                if self.reload.is_set():
                    self.reload.clear()
                    new_config = self._reload(config)
                    if new_config is not config:
                        rematch_all = rematch_all or new_config.matching != config.matching
                        config = self.config = new_config
                        self.stop_watchers()
                        warn_insecure(config)
                        self.start_watchers(config)
                        next_due.clear()
                now = time.monotonic()
                urgent = self.take_urgent()
                if TIMELINE_MARK in urgent:
                    timeline_due = now
                if not (self.outage.down and now < self.outage.retry_at):
                    self._schedule(config, workers, next_due, urgent, now)
                if (self.outputs_dirty.is_set() and not self.first_round) or rematch_all:
                    timeline_due = min(timeline_due or now, now)
                if (
                    timeline_due is not None
                    and now >= timeline_due
                    and not (self.outage.down and now < self.outage.retry_at)
                ):
                    self.outputs_dirty.clear()
                    timeline_due, rematch_all = self._write_outputs(config, store, rematch_all)
                self.notifier.status(
                    self.outage.status()
                    if self.outage.down
                    else (self._guarded("reporting", lambda: _summary(store)) or "running")
                )
                self.notifier.watchdog()
                if not self.stop.is_set():
                    wake_at = [min(next_due.values(), default=now + config.service.interval_seconds)]
                    if timeline_due is not None:
                        wake_at.append(timeline_due)
                    if self.outage.down:
                        wake_at.append(self.outage.retry_at)
                    wake_at.extend(self.retry_soon.values())
                    self._sleep_until(max(min(wake_at), time.monotonic() + 0.05))
        finally:
            self.notifier.stopping()
            workers.stop()
            self.stop_watchers()
            watcher.stop()
            if metrics is not None:
                metrics.shutdown()
            store.close()
            log.info("stopped")
        return 0

    def _schedule(
        self,
        config: Config,
        workers: SourceWorkers[SourceResult],
        next_due: dict[str, float],
        urgent: set[str],
        now: float,
    ) -> None:
        """Hand every due source to a worker: its interval came round (and its failure backoff
        allows), a watcher woke it, or the store is back after a fault."""
        enabled = [s.name for s in config.sources if s.enabled]
        for name in list(next_due):
            if name not in enabled:
                del next_due[name]
        interval_due = [n for n in enabled if next_due.get(n, 0.0) <= now]
        wanted = set(urgent) & set(enabled)
        if interval_due:
            assert self.store is not None
            attempts = self._guarded("scheduling", self.store.sources.next_attempts)
            if attempts is None:
                return  # the store is down: nothing can be synced or recorded now
            wanted |= set(due(interval_due, attempts, datetime.now(timezone.utc)))
            for name in interval_due:
                next_due[name] = now + config.service.interval_seconds
        for name, when in list(self.retry_soon.items()):
            if when <= now:
                del self.retry_soon[name]
                wanted.add(name)
        busy = workers.busy()
        for name in sorted(wanted):
            if name in busy and name not in urgent:
                continue  # still running its last turn; its interval comes round again
            workers.submit(name)

    def _write_outputs(self, config: Config, store: Store, rematch_all: bool) -> tuple[float | None, bool]:
        """Learn Review, re-match when the matching config changed, write what changed.
        Returns (when to come back for held-back or failed writes, whether a re-match is still owed)."""
        pipeline = Pipeline(
            config,
            store,
            stop_requested=self.stop.is_set,
            heartbeat=self.notifier.watchdog,
            index_cache=self.index_cache,
            budgets=self.budgets,
        )
        result = PassResult()

        def write() -> bool:
            pipeline.refresh_index()
            if rematch_all:
                result.rematched = store.links.rematch(pipeline.link)
                log.info("rematched activities=%d after the matching config changed", result.rematched)
            if config.matching.auto_create_contacts != "none":
                created = pipeline.auto_create_contacts()
                if created:
                    pipeline.refresh_index()
                    store.links.rematch(pipeline.link, since=datetime.now(timezone.utc))
            pipeline.write_outputs(result, debounce=True)
            return True

        if self._guarded("writing the outputs", write) is None:
            return self.outage.retry_at, rematch_all
        if result.timeline_retry_in is not None:
            return time.monotonic() + result.timeline_retry_in, False
        return None, False


def run_service(config_path: Path, debug: bool = False) -> int:
    return Service(config_path, debug=debug).run()
