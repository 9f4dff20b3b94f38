"""New mail within seconds: one IDLE connection per mailbox, waking the service when INBOX changes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from syncd.connectors.imap.connector import ImapConnector
from syncd.model.errors import SourceAuthError

log = logging.getLogger(__name__)

IDLE_REISSUE_SECONDS = 25 * 60  # RFC 2177 servers may drop IDLE after 29 minutes


class ImapIdleWatcher:
    """Waits in IDLE on INBOX and calls ``on_change`` when the server reports new mail.

    One thread per mailbox, one connection each; IDLE is re-issued every 25 minutes.
    Faults reconnect with growing pauses (a refused login waits longest) and never stop
    other mailboxes' watchers.
    """

    def __init__(self, connector: ImapConnector, on_change: Callable[[], None], folder: str = "INBOX"):
        self.connector = connector
        self.on_change = on_change
        self.folder = folder

    def run(self, stop: Any) -> None:
        failures = 0
        while not stop.is_set():
            try:
                session = self.connector.connect()
                client = session.client
                client.select_folder(self.folder, readonly=True)
                failures = 0
                log.info("source=%s idle established folder=%s", self.connector.name, self.folder)
                while not stop.is_set():
                    client.idle()
                    started = datetime.now(timezone.utc)
                    try:
                        while not stop.is_set():
                            responses = client.idle_check(timeout=1)
                            if any(r[1] in (b"EXISTS", b"RECENT") for r in responses if len(r) > 1):
                                self.on_change()
                            if (datetime.now(timezone.utc) - started).total_seconds() > IDLE_REISSUE_SECONDS:
                                break
                    finally:
                        client.idle_done()
            except SourceAuthError as exc:
                failures += 1
                log.error("source=%s idle login refused: %s", self.connector.name, exc)
                stop.wait(min(3600, 300 * failures))
            except Exception as exc:
                failures += 1
                log.warning("source=%s idle connection lost error=%r", self.connector.name, str(exc))
                stop.wait(min(300, 2 ** min(failures, 8)))
            finally:
                self.connector.close()
