"""The connector contract every source kind implements, and what a kind declares to the registry.

A connector knows one protocol and nothing of matching or storage. Given what the
store knows of its source (``SourceState``), it yields ``Batch``es: normalized records,
items it could not read (``Problem``s, which go to the quarantine), keys that have
disappeared, and its cursor after the batch. The pipeline commits each batch with its
cursor atomically, so a connector may be stopped after any ``yield`` and resumed from the
stored state without loss or duplication (the contract suite in ``tests/connectors``
proves it for every kind).

Two styles fit the same method:

* listing connectors (Maildir, mbox, workbooks, contact folders) list every key, read the
  ones ``known`` lacks (or whose version changed), and end with a batch carrying
  ``listing_complete`` and the keys that vanished;
* cursor connectors (IMAP, Graph, EWS, CalDAV) read from ``cursors[folder]`` and put the
  new cursor on each batch.

Errors (``syncd.model.errors``): raise ``SourceUnavailable`` when the source cannot be
read this pass (missing file, locked workbook, server down), ``SourceConfigError`` when the
config does not fit what is there (a mapped column is missing), ``SourceAuthError`` when
the server refuses the credentials. Never raise for one bad item: make it a ``Problem``.

A *kind* (``SourceKind``) is what the registry knows of a connector: its settings model,
its factory and its capabilities. Adding a kind is one module that declares these, one
line in ``syncd.connectors.registry`` and its tests (docs/architecture.md shows one).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from syncd.connectors.budget import RequestBudgets
from syncd.model.records import Batch, CustomerNote, LabelChange, ReadOptions, SourceState
from syncd.model.settings import SecretSource, SourceSettings

#: Reads a secret when a connector needs it: (where it is, what it is for) -> the value.
SecretReader = Callable[[SecretSource, str], str]


class Connector(ABC):
    kind: str = ""

    def __init__(self, name: str, options: ReadOptions):
        self.name = name
        self.options = options

    @abstractmethod
    def read(self, state: SourceState) -> Iterator[Batch]:
        """Yield batches of changes since ``state``; see the module docstring."""

    def close(self) -> None:  # noqa: B027 - most connectors hold nothing to release
        """Release connections and file handles. Called once, also after errors."""

    def write_back(self, labels: dict[str, LabelChange]) -> set[str]:
        """Change labels on items where the system supports it (IMAP keywords, Exchange
        categories). ``labels`` maps item key to the change, already rendered for this
        system (``syncd.outputs.labels``); returns the keys written. Only called when the
        source's settings enable write-back. Must be idempotent and remove nothing but
        what the change lists (labels syncd wrote)."""
        return set()

    def delete_contacts(self, names: dict[str, str]) -> set[str]:
        """Delete contacts this source wrote (``write_contacts``) for customers that were
        erased: ``names`` maps the customer key to the contact's display name; returns the
        keys done (a contact already gone counts as done). Only syncd's own contacts."""
        return set(names)

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        """Create or update one contact per customer whose notes hold its recent timeline
        (Outlook contacts). ``notes`` maps a stable customer key to the note; returns the
        keys written. Only called when the source's settings enable it, and only with notes
        that changed since they were last written. Must be idempotent."""
        return set()


class LiveWatcher(Protocol):
    """Runs until ``stop`` is set, calling its ``on_change`` when the source has news (IDLE)."""

    def run(self, stop: threading.Event) -> None: ...


@dataclass(frozen=True)
class ConnectorContext:
    """What a factory gets besides the source's own settings; nothing process-wide."""

    options: ReadOptions = field(default_factory=ReadOptions)
    timezone: str = "UTC"  # for floating times (calendars) and dates typed in sheets
    state_dir: Path | None = None  # where a connector may keep files (token caches)
    secret: SecretReader | None = None
    #: Per-mailbox request limits, shared by every source and pass of one service.
    budgets: RequestBudgets = field(default_factory=RequestBudgets)

    def read_secret(self, source: SecretSource, what: str) -> str:
        if self.secret is None:
            raise RuntimeError(f"{what}: no secret reader was given to the connector")
        return self.secret(source, what)


@dataclass(frozen=True)
class Capabilities:
    """What a kind does, for the pipeline's scheduling and for the docs."""

    customers: bool = False  # yields customers: synced before the activity sources of a pass
    mail: bool = False
    calendar: bool = False
    rows: bool = False  # sheet rows as activities (orders, calls, notes)
    watched_file: bool = False  # a local file, followed live as staff save it
    live: bool = False  # a watcher wakes the service when news arrives (IMAP IDLE)
    labels: str | None = None  # "keyword" or "category": write-back onto items
    contacts: bool = False  # writes a contact per customer holding its timeline

    def describe(self) -> str:
        said = [
            name.replace("_", " ")
            for name in ("customers", "mail", "calendar", "rows", "watched_file", "live")
            if getattr(self, name)
        ]
        if self.labels:
            said.append(f"writes {self.labels}s")
        if self.contacts:
            said.append("writes contacts")
        return ", ".join(said)


Factory = Callable[[Any, ConnectorContext], Connector]
#: (settings, context, on_change, on_notice): ``on_notice(text)`` shows advice in `syncd status`
#: (``None`` clears it), e.g. that the server's IDLE notifications arrive late.
WatcherFactory = Callable[[Any, ConnectorContext, Callable[[], None], Callable[[str | None], None]], LiveWatcher]
#: A deeper check-config for a source: (key, message) problems found without syncing.
Checker = Callable[[Any], list[tuple[str, str]]]


@dataclass(frozen=True)
class SourceKind:
    """One kind of source, as its module declares it; ``name`` is the config's ``kind``.

    ``settings`` is the pydantic model of its ``[[sources]]`` table (a ``SourceSettings``
    with ``kind: Literal[name]``); ``build`` makes a connector from validated settings;
    ``watcher`` (with ``capabilities.live``) makes its live watcher; ``check`` looks at what
    the settings point at (a mapped sheet's headers); ``tables`` are nested tables the
    docs describe (a sheet's ``columns``).
    """

    name: str
    settings: type[SourceSettings]
    build: Factory
    summary: str
    capabilities: Capabilities
    watcher: WatcherFactory | None = None
    check: Checker | None = None
    tables: tuple[tuple[str, type[BaseModel], str], ...] = ()

    def __post_init__(self) -> None:
        declared = self.settings.model_fields["kind"].annotation
        if getattr(declared, "__args__", None) != (self.name,):
            raise ValueError(f"kind {self.name!r}: its settings must declare kind: Literal[{self.name!r}]")
