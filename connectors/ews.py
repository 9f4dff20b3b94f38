"""Exchange Server (on-premises) through EWS with exchangelib. (Work in progress.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.base import Connector
from syncd.records import Batch, ReadOptions, SourceState

EXCHANGE_ONLINE_HOSTS = ("outlook.office365.com", "outlook.office.com")


def exchange_online_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in EXCHANGE_ONLINE_HOSTS or host.endswith(".office365.com") or host.endswith(".outlook.com")


@dataclass(frozen=True)
class EwsAccount:
    mailbox: str
    username: str
    password: Callable[[], str]
    auth_type: str = "ntlm"
    service_endpoint: str | None = None
    autodiscover: bool = False
    verify_tls: bool = True
    impersonation: bool = False
    client_id: str | None = None
    tenant_id: str | None = None
    timeout: float = 60


class EwsConnector(Connector):
    kind = "ews"

    def __init__(self, name: str, options: ReadOptions, account: EwsAccount, **kwargs: object):
        super().__init__(name, options)
        self.account = account

    def read(self, state: SourceState) -> Iterator[Batch]:
        raise NotImplementedError


class EwsContactsConnector(Connector):
    kind = "ews_contacts"

    def __init__(self, name: str, options: ReadOptions, account: EwsAccount, folder: str):
        super().__init__(name, options)

    def read(self, state: SourceState) -> Iterator[Batch]:
        raise NotImplementedError
