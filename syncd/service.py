"""The long-running loop behind `syncd run`.

Signal handlers only set events; the loop does the work. SIGTERM/SIGINT stop after the
batch in flight (every committed batch is durable, an interrupted one is re-read), and
SIGHUP re-reads the config, keeping the old one when the new one is invalid.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from syncd.config import ConfigError, load_config
from syncd.pipeline import Pipeline
from syncd.store import Store

log = logging.getLogger("syncd.service")


def run_service(config_path: Path) -> int:
    config = load_config(config_path)
    stop, reload = threading.Event(), threading.Event()
    wake = threading.Event()

    def on_stop(signum: int, _frame: object) -> None:
        stop.set()
        wake.set()

    def on_hup(_signum: int, _frame: object) -> None:
        reload.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    store = Store.open(config.store_url)
    log.info("started config=%s sources=%d interval=%ds", config_path, len(config.sources),
             config.service.interval_seconds)
    try:
        while not stop.is_set():
            if reload.is_set():
                reload.clear()
                try:
                    config = load_config(config_path)
                    log.info("config reloaded sources=%d", len(config.sources))
                except ConfigError as exc:
                    log.error("config reload rejected, keeping the running config: %s", exc.render())
            Pipeline(config, store).run_pass()
            wake.wait(config.service.interval_seconds)
            wake.clear()
    finally:
        store.close()
        log.info("stopped")
    return 0
