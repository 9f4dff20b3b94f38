"""Microsoft 365 mailboxes through Microsoft Graph: mail folders, the calendar, write-back.

A thin layer over Graph's REST API (``client``, with ``requests``) and msal (``auth``).
Every folder (``inbox``, ``sentitems``, configured ones, and ``calendar``) has its own
cursor; how a folder is read is in ``delta`` (the state machine), ``mail`` and
``calendar``; records come from ``records``; what syncd writes back is ``writeback``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import quote

from syncd.connectors.base import Connector
from syncd.connectors.graph.calendar import LABEL, named_calendars, sync_calendar
from syncd.connectors.graph.client import DeltaExpired, GraphClient, NotFound
from syncd.connectors.graph.mail import sync_mail_folder
from syncd.connectors.graph.writeback import GraphWriter
from syncd.model.errors import SourceUnavailable
from syncd.model.records import Batch, CustomerNote, LabelChange, ReadOptions, SourceState

MAX_PAGE = 500


@dataclass(frozen=True)
class GraphMailbox:
    """One mailbox's settings, resolved from the config."""

    mailbox: str
    owner: str
    owner_addresses: frozenset[str] = frozenset()
    folders: tuple[str, ...] = ("inbox", "sentitems")
    backfill_days: int = 365
    calendar: bool = True
    past_days: int = 365
    future_days: int = 180
    contacts_folder: str = "Customers"
    calendars: tuple[str, ...] = ()  # more calendars by name, or ("*",) for all


class GraphConnector(Connector):
    """Mail folders and the calendar of one Microsoft 365 mailbox."""

    kind = "graph"

    def __init__(
        self,
        name: str,
        options: ReadOptions,
        account: GraphMailbox,
        client: GraphClient,
        *,
        today: Callable[[], date] = lambda: datetime.now(timezone.utc).date(),
    ):
        super().__init__(name, options)
        self.account = account
        self.client = client
        self.today = today
        self.writer = GraphWriter(client, self.user, account.mailbox, self.prefer)

    @property
    def user(self) -> str:
        return f"users/{quote(self.account.mailbox, safe='@')}"

    @property
    def prefer(self) -> tuple[str, ...]:
        return ('IdType="ImmutableId"', f"odata.maxpagesize={min(MAX_PAGE, max(1, self.options.batch_size))}")

    @property
    def owners(self) -> frozenset[str]:
        return self.account.owner_addresses | {self.account.owner}

    def close(self) -> None:
        self.client.close()

    def read(self, state: SourceState) -> Iterator[Batch]:
        account = self.account
        try:
            for label in account.folders:
                yield from sync_mail_folder(
                    self.client,
                    source=self.name,
                    user=self.user,
                    mailbox=account.mailbox,
                    owners=self.owners,
                    label=label,
                    state=state,
                    today=self.today(),
                    backfill_days=account.backfill_days,
                    snippet_chars=self.options.snippet_chars,
                    prefer=self.prefer,
                    keep_bodies=self.options.keep_bodies,
                )
            calendars: list[tuple[str, str | None]] = [(LABEL, None)] if account.calendar else []
            if account.calendars:
                calendars += named_calendars(self.client, self.user, account.mailbox, account.calendars)
            for label, calendar_id in calendars:
                yield from sync_calendar(
                    self.client,
                    source=self.name,
                    user=self.user,
                    mailbox=account.mailbox,
                    owners=self.owners,
                    state=state,
                    today=self.today(),
                    past_days=account.past_days,
                    future_days=account.future_days,
                    snippet_chars=self.options.snippet_chars,
                    prefer=self.prefer,
                    label=label,
                    calendar_id=calendar_id,
                )
        except (DeltaExpired, NotFound) as exc:
            raise SourceUnavailable(f"mailbox {account.mailbox}: {exc}", source=self.name) from None

    def write_back(self, labels: dict[str, LabelChange]) -> set[str]:
        return self.writer.categories(labels)

    def delete_contacts(self, names: dict[str, str]) -> set[str]:
        return self.writer.delete_contacts(self.account.contacts_folder, names)

    def write_contacts(self, notes: dict[str, CustomerNote]) -> set[str]:
        return self.writer.contacts(self.account.contacts_folder, notes)
