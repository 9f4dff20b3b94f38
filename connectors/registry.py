"""The registry: the one place that lists the kinds of source syncd knows.

Each entry names the module attribute where a kind declares itself (``SourceKind``:
settings model, factory, capabilities); the config file's ``kind = "..."`` is the key.
Config validation, check-config, the docs generator, the pipeline and the service read the
kinds from here, so a new kind is one module, one line below and its tests (see
docs/architecture.md). A ``Registry`` is a value: tests and embedders add kinds with
``with_kind`` without touching the built-in table.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cache

from syncd.connectors.base import SourceKind

BUILTIN_KINDS: tuple[tuple[str, str], ...] = (
    ("maildir", "syncd.connectors.maildir:MAILDIR"),
    ("mbox", "syncd.connectors.maildir:MBOX"),
    ("imap", "syncd.connectors.imap.kind:KIND"),
    ("caldav", "syncd.connectors.caldav_calendar:KIND"),
    ("graph", "syncd.connectors.graph.kind:GRAPH"),
    ("graph_contacts", "syncd.connectors.graph.kind:GRAPH_CONTACTS"),
    ("ews", "syncd.connectors.ews.kind:EWS"),
    ("ews_contacts", "syncd.connectors.ews.kind:EWS_CONTACTS"),
    ("excel_customers", "syncd.connectors.excel_customers:KIND"),
    ("excel_activities", "syncd.connectors.excel_activities:KIND"),
    ("drive_customers", "syncd.connectors.graph.workbooks:DRIVE_CUSTOMERS"),
    ("drive_activities", "syncd.connectors.graph.workbooks:DRIVE_ACTIVITIES"),
)


class UnknownKind(KeyError):
    """No kind of that name is registered."""


def _load(path: str) -> SourceKind:
    module, _, attribute = path.partition(":")
    kind = getattr(importlib.import_module(module), attribute)
    if not isinstance(kind, SourceKind):
        raise TypeError(f"{path} is not a SourceKind")
    return kind


class Registry:
    """An ordered, immutable set of source kinds, looked up by name."""

    def __init__(self, kinds: tuple[SourceKind, ...]):
        names = [k.name for k in kinds]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"source kind(s) registered twice: {', '.join(duplicated)}")
        self._kinds = {k.name: k for k in kinds}

    @staticmethod
    def builtin() -> Registry:
        """The kinds syncd ships (their modules imported on first use, once)."""
        return _builtin()

    def with_kind(self, kind: SourceKind) -> Registry:
        return Registry((*self._kinds.values(), kind))

    def __iter__(self) -> Iterator[SourceKind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def get(self, name: str) -> SourceKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(name) from None


@cache
def _builtin() -> Registry:
    kinds = []
    for name, path in BUILTIN_KINDS:
        kind = _load(path)
        if kind.name != name:
            raise ValueError(f"{path} declares kind {kind.name!r}, registered as {name!r}")
        kinds.append(kind)
    return Registry(tuple(kinds))
