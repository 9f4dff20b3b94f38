"""The long-running service behind `syncd run`.

Life cycle: load the config, open (and migrate) the store, tell systemd READY, then loop:
sync the sources that are due, write the timeline, report STATUS, sleep until the next
pass while pinging the watchdog. Signal handlers only set events (nothing else is safe in
a handler); the loop acts on them:

* SIGTERM / SIGINT: stop between batches (committed batches are durable; the rest of the
  pass is re-read next start), close connections and the store, exit 0.
* SIGHUP, or the config file changing on disk: re-read the config. An invalid config is
  rejected with its errors logged and the running one kept.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from syncd.config import Config, ConfigError, load_config
from syncd.notify import SystemdNotifier
from syncd.pipeline import IndexCache, PassResult, Pipeline, warn_insecure
from syncd.pipeline.wiring import connector_context
from syncd.scheduler import due
from syncd.store import Store
from syncd.watch import TIMELINE_MARK, WorkbookWatcher

log = logging.getLogger("syncd.service")


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


def _summary(store: Store) -> str:
    status = store.reads.status()
    failing = [s.name for s in status.sources if s.error]
    text = (
        f"{status.activities} activities, {status.customers} customers, "
        f"{status.unmatched} unmatched, {status.quarantined} quarantined"
    )
    if failing:
        text += f"; failing: {', '.join(failing)}"
    return text


class Service:
    def __init__(self, config_path: Path, notifier: SystemdNotifier | None = None):
        self.config_path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.wake = threading.Event()
        self.urgent: set[str] = set()
        self.urgent_lock = threading.Lock()
        self.watchers_stop = threading.Event()
        self.watcher_threads: list[threading.Thread] = []
        self.workbook_watcher: WorkbookWatcher | None = None

    def mark_urgent(self, source_name: str) -> None:
        """Called from an IDLE thread: sync this source now, not at the next interval."""
        with self.urgent_lock:
            self.urgent.add(source_name)
        self.wake.set()

    def take_urgent(self) -> set[str]:
        with self.urgent_lock:
            names, self.urgent = self.urgent, set()
        return names

    def start_watchers(self, config: Config) -> None:
        """A live watcher per source whose kind has one (IMAP IDLE), and the workbook watcher."""
        self.watchers_stop = threading.Event()
        self.watcher_threads = []
        context = connector_context(config)
        for source in config.sources:
            kind = config.kinds.get(source.kind)
            if not (source.enabled and source.live() and kind.watcher is not None):
                continue
            watcher = kind.watcher(source, context, functools.partial(self.mark_urgent, source.name))
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

    def _reload(self, config: Config) -> Config:
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc.render().replace("\n", " | "))
            self.notifier.ready(f"config reload rejected ({len(exc.problems)} problems); running the old config")
            return config
        if new.store_url != config.store_url:
            log.warning("config reload: a new store URL takes effect at the next restart; keeping the open store")
        log.info("config reloaded sources=%d", len(new.sources))
        self.notifier.ready("config reloaded")
        return new

    def _sleep_until(self, deadline: float) -> None:
        """Wait for the next pass, a signal, new mail or a config change, pinging the watchdog."""
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
        self.install_signal_handlers()
        store = Store.open(config.store_url)
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
        self.notifier.ready(f"ready; sources: {names or 'none'}")
        next_full_pass = time.monotonic()
        timeline_due: float | None = None  # a timeline write held back by min_interval_seconds
        index_cache = IndexCache()  # the matcher index, reused by passes in which no customer changed
        rematch_all = False  # set when a reload changed [matching]: the next pass re-matches everything
        try:
            while not self.stop.is_set():
                if self.reload.is_set():
                    self.reload.clear()
                    new_config = self._reload(config)
                    if new_config is not config:
                        rematch_all = rematch_all or new_config.matching != config.matching
                        config = new_config
                        self.stop_watchers()
                        warn_insecure(config)
                        self.start_watchers(config)
                        next_full_pass = time.monotonic()
                enabled = [s.name for s in config.sources if s.enabled]
                urgent = self.take_urgent()
                outputs_due = TIMELINE_MARK in urgent or (timeline_due is not None and time.monotonic() >= timeline_due)
                urgent &= set(enabled)
                if time.monotonic() >= next_full_pass:
                    wanted = due(enabled, store.sources.next_attempts(), datetime.now(timezone.utc))
                    next_full_pass = time.monotonic() + config.service.interval_seconds
                else:
                    wanted = []
                wanted = sorted(set(wanted) | urgent)
                result: PassResult | None = None
                pipeline = Pipeline(
                    config,
                    store,
                    stop_requested=self.stop.is_set,
                    heartbeat=self.notifier.watchdog,
                    index_cache=index_cache,
                )
                if wanted:
                    result = pipeline.run_pass(only=wanted, debounce=True, rematch_all=rematch_all)
                    rematch_all = False
                elif outputs_due or rematch_all:
                    # Only the timeline (a held-back write, an admin saved the Review sheet), or
                    # a re-match after the matching config changed.
                    result = PassResult()
                    pipeline.refresh_index()
                    if rematch_all:
                        result.rematched, rematch_all = store.links.rematch(pipeline.link), False
                    pipeline.write_outputs(result, debounce=True)
                if result is not None:
                    timeline_due = (
                        time.monotonic() + result.timeline_retry_in if result.timeline_retry_in is not None else None
                    )
                    self.notifier.status(_summary(store))
                self.notifier.watchdog()
                if not self.stop.is_set():
                    self._sleep_until(min(next_full_pass, timeline_due) if timeline_due else next_full_pass)
        finally:
            self.notifier.stopping()
            self.stop_watchers()
            watcher.stop()
            if metrics is not None:
                metrics.shutdown()
            store.close()
            log.info("stopped")
        return 0


def run_service(config_path: Path) -> int:
    return Service(config_path).run()
