"""What a source raises when a pass cannot go on, by what to do about it.

offlineimap's ladder, applied to syncd: one bad *item* is never an exception (it becomes a
``Problem`` and goes to the quarantine); one bad *source* raises one of these and the pass
goes on with the others; only the service itself may stop (a store it cannot open).

Each error carries the context the service reports and schedules with: which source and
folder, and, where the server said so, how long to wait before trying again.
"""

from __future__ import annotations


class SourceError(Exception):
    """A source failed this pass; ``str()`` is shown in `syncd status` and the journal.

    ``source`` and ``folder`` say where; ``retry_after`` (seconds) is the server's own
    back-off hint (Graph's Retry-After, EWS's ErrorServerBusy back-off), when it gave one.
    """

    #: Whether waiting and trying again can help; the scheduler retries these sooner.
    transient = False

    def __init__(
        self, message: str, *, source: str | None = None, folder: str | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.source = source
        self.folder = folder
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class SourceUnavailable(SourceError):
    """The source cannot be read now (missing, locked, mid-write, unreachable); retried next pass."""

    transient = True


class SourceConfigError(SourceError):
    """The source does not fit its config (wrong sheet, missing column); needs an admin."""


class SourceAuthError(SourceError):
    """The server refused the credentials. Never retried quickly: that locks accounts."""


class SourceSecurityError(SourceError):
    """The connection is not what it claims to be: a certificate that does not verify, a
    host name that does not match. Retrying cannot fix it and must not be hidden as a
    network blip: an admin has to look."""
