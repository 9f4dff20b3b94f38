"""The connector contract every source kind implements.

A connector knows one protocol and nothing of matching or storage. Given what the
store knows of its source (``SourceState``), it yields ``Batch``es: normalized records,
items it could not read (``Problem``s, which go to the quarantine), keys that have
disappeared, and its cursor after the batch. The pipeline commits each batch with its
cursor atomically, so a connector may be stopped after any ``yield`` and resumed from the
stored state without loss or duplication.

Two styles fit the same method:

* listing connectors (Maildir, mbox, workbooks) list every key, read the ones ``known``
  lacks (or whose version changed), and end with a batch carrying ``listing_complete``
  and the keys that vanished;
* cursor connectors (IMAP, Graph, EWS, CalDAV) read from ``cursors[folder]`` and put the
  new cursor on each batch.

Errors: raise ``SourceUnavailable`` when the source cannot be read this pass (missing
file, locked workbook, server down) and ``SourceConfigError`` when the config does not
fit what is there (a mapped column is missing). Never raise for one bad item: make it a
``Problem``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from syncd.records import Batch, CustomerNote, ReadOptions, SourceState


class SourceError(Exception):
    """A source failed this pass; the message is shown in `syncd status`."""


class SourceUnavailable(SourceError):
    """The source cannot be read now (missing, locked, mid-write, unreachable); retried next pass."""


class SourceConfigError(SourceError):
    """The source does not fit its config (wrong sheet, missing column); needs an admin."""


class SourceAuthError(SourceError):
    """The server refused the credentials. Never retried quickly: that locks accounts."""


class Connector(ABC):
    kind: str = ""

    def __init__(self, name: str, options: ReadOptions):
        self.name = name
        self.options = options

    @abstractmethod
    def read(self, state: SourceState) -> Iterator[Batch]:
        """Yield batches of changes since ``state``; see the module docstring."""

    def close(self) -> None:
        """Release connections and file handles. Called once, also after errors."""

    def write_back(self, labels: dict[str, tuple[str, ...]]) -> set[str]:
        """Mark items with their customers' names where the system supports it (keywords,
        categories). ``labels`` maps item key to customer names; returns the keys written.
        Only called when the source's config enables write-back. Must be idempotent."""
        return set()

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        """Create or update one contact per customer whose notes hold its recent timeline
        (Outlook contacts). ``notes`` maps a stable customer key to the note; returns the
        keys written. Only called when the source's config enables it, and only with notes
        that changed since they were last written. Must be idempotent."""
        return set()
