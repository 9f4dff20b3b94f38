"""An in-memory source kind, registered through the registry like any other.

The pipeline's state-machine test drives it instead of patching syncd's modules: the test
holds the mailboxes (``MemoryMailboxes``), delivers mail into them and tells a mailbox to
forget what the store knows (a lost cursor: everything is delivered again). It is also the
smallest complete example of a kind: settings, connector, factory, capabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from syncd.connectors.base import Capabilities, Connector, ConnectorContext, SourceKind
from syncd.model.records import ActivityRecord, Batch, ReadOptions, SourceState
from syncd.model.settings import MailSourceSettings


@dataclass
class MemoryMailboxes:
    """Mailbox name -> its messages by item key; ``forgetful`` mailboxes ignore the store's state."""

    boxes: dict[str, dict[str, ActivityRecord]] = field(default_factory=dict)
    forgetful: set[str] = field(default_factory=set)
    reads: int = 0


class MemorySettings(MailSourceSettings):
    """A mailbox held in memory by a test."""

    kind: Literal["memory"]
    mailbox: str = Field(description="The name of the mailbox in the test's MemoryMailboxes.")


class MemoryConnector(Connector):
    """A listing connector over one in-memory mailbox."""

    kind = "memory"

    def __init__(self, name: str, options: ReadOptions, mailboxes: MemoryMailboxes, mailbox: str):
        super().__init__(name, options)
        self.mailboxes = mailboxes
        self.mailbox = mailbox

    def read(self, state: SourceState) -> Iterator[Batch]:
        self.mailboxes.reads += 1
        if self.mailbox in self.mailboxes.forgetful:
            state = SourceState(cursors={}, known={})
        items = dict(self.mailboxes.boxes.get(self.mailbox, {}))
        fresh = [record for key, record in sorted(items.items()) if key not in state.known]
        size = self.options.batch_size
        for start in range(0, len(fresh), size):
            yield Batch(records=tuple(fresh[start : start + size]))
        gone = tuple(sorted(k for k in state.known if k not in items))
        yield Batch(removed=gone, listing_complete=True, listed=len(items))


def memory_kind(mailboxes: MemoryMailboxes) -> SourceKind:
    def build(settings: MemorySettings, context: ConnectorContext) -> MemoryConnector:
        return MemoryConnector(settings.name, context.options, mailboxes, settings.mailbox)

    return SourceKind(
        name="memory",
        settings=MemorySettings,
        build=build,
        summary="A mailbox held in memory (tests).",
        capabilities=Capabilities(mail=True),
    )
