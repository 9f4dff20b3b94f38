"""New mail within seconds: one IDLE connection per mailbox, waking the service when INBOX changes.

States of a watcher::

    CONNECTING --login, EXAMINE INBOX--> IDLE --EXISTS/RECENT--> on_change, IDLE
         ^                                 |
         |                                 +--25 min--> DONE, IDLE again (RFC 2177 servers drop
         |                                 |            IDLE after 29 minutes)
         +---- wait 0.5, 1, 2, 4, 8 s -----+--BYE, EOF, timeout, error--> RECONNECT
               (a refused login: 5 min and more)

After a reconnect the watcher calls ``on_change`` once: mail that arrived while the
connection was down is read at once, not at the next polling pass.

imapclient's ``idle_check`` returns an empty list, immediately, when the server has closed
the connection (it swallows the EOF), so a watcher trusting it would spin on a dead
socket at full CPU and never come back (seen: 53% CPU, new mail 194-254 s late after a
Dovecot restart). An empty answer that came back long before its timeout, a few times
in a row, is therefore taken for what it is: a closed connection.

Some servers do not push: Courier's IDLE, by default, looks at the mailbox every 60 s, so
"new mail within seconds" becomes "within a minute". After each wake-up the watcher reads
the newest message's INTERNALDATE (when the server took the mail) and, when the median
delay of the last few wake-ups is far above what pushing servers show (about 1 s here),
reports it with ``on_notice`` for `syncd status` and the log, with the server's setting
from the quirk table. The notice clears once notifications are prompt again.
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone

from syncd.connectors.imap import wire as imapwire
from syncd.connectors.imap.connector import ImapConnector
from syncd.model.errors import SourceAuthError, SourceSecurityError

log = logging.getLogger(__name__)

IDLE_REISSUE_SECONDS = 25 * 60
CHECK_SECONDS = 1.0  # how long one idle_check waits for the server
#: An empty idle_check shorter than this fraction of its timeout is not a wait but a closed socket.
EARLY_FRACTION = 0.5
EARLY_EMPTIES = 3  # that many in a row: the connection is gone
RECONNECT_CAP_SECONDS = 8.0  # a dead server is retried at least this often (one connection per try)
REFUSED_LOGIN_SECONDS = 300.0
#: Notifications whose median delay after delivery exceeds this are reported as slow.
SLOW_NOTIFICATION_SECONDS = 20.0
LAG_SAMPLES = 5  # wake-ups the median is taken over (at least 3 before anything is said)
#: A delay beyond this is mail delivered with an old INTERNALDATE (a migration), not lag.
LAG_IGNORED_ABOVE_SECONDS = 3600.0


class ConnectionClosed(ConnectionError):
    """The server ended the IDLE connection (BYE, or the socket reached its end)."""


def reconnect_delay(failures: int, refused: bool, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next connection attempt: 0.5, 1, 2, 4, 8, 8... with +-20% jitter;
    a refused login or certificate waits 5, 10, 15... minutes up to an hour (hammering a bad
    password locks the account)."""
    if refused:
        return min(3600.0, REFUSED_LOGIN_SECONDS * failures)
    return min(RECONNECT_CAP_SECONDS, 0.5 * 2.0 ** max(0, failures - 1)) * (0.8 + 0.4 * rng())


class ImapIdleWatcher:
    """Waits in IDLE on INBOX and calls ``on_change`` when the server reports new mail.

    One thread per mailbox, one connection each. Faults reconnect with growing pauses and
    never stop other mailboxes' watchers.
    """

    def __init__(
        self,
        connector: ImapConnector,
        on_change: Callable[[], None],
        folder: str = "INBOX",
        clock: Callable[[], float] = time.monotonic,
        on_notice: Callable[[str | None], None] = lambda _notice: None,
        slow_seconds: float = SLOW_NOTIFICATION_SECONDS,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.connector = connector
        self.on_change = on_change
        self.on_notice = on_notice
        self.folder = folder
        self.clock = clock
        self.wall_clock = wall_clock
        self.slow_seconds = slow_seconds
        self.reconnects = 0  # established again after a fault (for tests and the logs)
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)  # seconds from delivery to notification
        self.noticed: str | None = None
        self.idling = threading.Event()  # set while the server holds our IDLE (health, tests)

    def run(self, stop: threading.Event) -> None:
        failures = 0
        established_before = False
        while not stop.is_set():
            try:
                session = self.connector.connect()
                client = session.client
                client.select_folder(self.folder, readonly=True)
                if established_before:
                    self.reconnects += 1
                    log.info(
                        "source=%s idle re-established folder=%s after failures=%d",
                        self.connector.name,
                        self.folder,
                        failures,
                    )
                    self.on_change()  # catch up on what arrived while the connection was down
                else:
                    log.info("source=%s idle established folder=%s", self.connector.name, self.folder)
                established_before = True
                failures = 0
                self._idle(client, stop)
            except (SourceAuthError, SourceSecurityError) as exc:
                failures += 1
                log.error("source=%s idle connection refused: %s", self.connector.name, exc)
                stop.wait(reconnect_delay(failures, refused=True))
            except Exception as exc:  # noqa: BLE001 - any fault: reconnect after a pause
                failures += 1
                delay = reconnect_delay(failures, refused=False)
                log.warning(
                    "source=%s idle connection lost error=%r; reconnecting in %.1fs",
                    self.connector.name,
                    str(exc),
                    delay,
                )
                stop.wait(delay)
            finally:
                self.connector.close()

    def _idle(self, client: object, stop: threading.Event) -> None:
        """IDLE until stopped; raises ``ConnectionClosed`` when the server goes away."""
        from imapclient import IMAPClient

        assert isinstance(client, IMAPClient)
        while not stop.is_set():
            client.idle()
            self.idling.set()
            started = self.clock()
            early_empties = 0
            try:
                while not stop.is_set() and self.clock() - started < IDLE_REISSUE_SECONDS:
                    asked = self.clock()
                    responses = client.idle_check(timeout=CHECK_SECONDS)
                    if any(len(r) > 0 and r[0] == b"BYE" for r in responses):
                        raise ConnectionClosed(f"{self.connector.account.host} said BYE")
                    exists = [r[0] for r in responses if len(r) > 1 and r[1] == b"EXISTS" and isinstance(r[0], int)]
                    if exists or any(len(r) > 1 and r[1] == b"RECENT" for r in responses):
                        self.on_change()
                    if exists:
                        notified = self.wall_clock()
                        client.idle_done()
                        try:
                            self._measure_lag(client, max(exists), notified)
                        finally:
                            client.idle()
                    if responses or self.clock() - asked >= CHECK_SECONDS * EARLY_FRACTION:
                        early_empties = 0
                        continue
                    early_empties += 1
                    if early_empties >= EARLY_EMPTIES:
                        raise ConnectionClosed(f"{self.connector.account.host} closed the connection")
            finally:
                self.idling.clear()
                try:
                    client.idle_done()
                except Exception:  # noqa: BLE001 - the connection may be gone already
                    pass

    def _measure_lag(self, client: object, sequence: int, notified: datetime) -> None:
        """How long after delivery the server told us, from the newest message's INTERNALDATE."""
        from imapclient import IMAPClient

        assert isinstance(client, IMAPClient)
        client.use_uid = False
        try:
            answer = client.fetch([sequence], ["INTERNALDATE"])
        finally:
            client.use_uid = True
        value = None
        for data in answer.values():
            value = data.get(b"INTERNALDATE")
        delivered = imapwire.internal_date(value) if isinstance(value, (bytes, datetime)) else None
        if delivered is None:
            return
        lag = (notified - delivered).total_seconds()
        if not 0 <= lag <= LAG_IGNORED_ABOVE_SECONDS:
            return
        self.lags.append(lag)
        if len(self.lags) < 3:
            return
        median = statistics.median(self.lags)
        if median > self.slow_seconds:
            session = self.connector.session
            advice = session.quirks.advice if session is not None else ""
            notice = f"IDLE notifications arrive about {median:.0f} s after delivery (the server polls its mailbox)" + (
                f"; {advice}" if advice else ""
            )
            if notice != self.noticed:
                log.warning("source=%s %s", self.connector.name, notice)
                self.noticed = notice
                self.on_notice(notice)
        elif self.noticed is not None:
            log.info("source=%s IDLE notifications are prompt again (median %.1f s)", self.connector.name, median)
            self.noticed = None
            self.on_notice(None)
