"""The ``graph`` and ``graph_contacts`` source kinds: settings, sign-in, and the connectors made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, ConnectorContext, SourceKind
from syncd.connectors.exchange import ExchangeMailboxFields
from syncd.connectors.graph.auth import GraphSignIn, GraphTokens, cache_file, graph_scope
from syncd.connectors.graph.client import GraphClient
from syncd.connectors.graph.connector import GraphConnector, GraphMailbox
from syncd.connectors.graph.contacts import GraphContactsConnector
from syncd.model.settings import HttpsUrl, SecretSource, SourceSettings, StrictModel


class GraphAccountFields(StrictModel):
    """How syncd signs in to Microsoft Graph (shared by the graph and graph_contacts kinds)."""

    tenant_id: str = Field(description="Directory (tenant) ID or verified domain of the Microsoft 365 tenant.")
    client_id: str = Field(description="Application (client) ID of syncd's app registration.")
    auth: Literal["app", "device_code"] = Field(
        default="app",
        description="app: application permissions with a client secret or certificate (a service reading many "
        "mailboxes). device_code: one user's delegated sign-in, done once with `syncd graph-login NAME`.",
    )
    client_secret_secret: SecretSource | None = Field(
        default=None, description='auth = "app": the client secret, from a secret (never inline).'
    )
    certificate_secret: SecretSource | None = Field(
        default=None,
        description='auth = "app": a PEM file (or credential) holding the certificate\'s private key and the '
        "certificate; preferred over a client secret.",
    )
    authority_host: HttpsUrl = Field(
        default="https://login.microsoftonline.com",
        description="The Entra ID sign-in host (national clouds: login.microsoftonline.us, login.chinacloudapi.cn).",
    )
    graph_url: HttpsUrl = Field(
        default="https://graph.microsoft.com/v1.0", description="Microsoft Graph endpoint, with the API version."
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Network timeout per request.")
    throttle_max_wait_seconds: float = Field(
        default=60,
        ge=0,
        le=600,
        description="Longest Retry-After syncd waits for inside a pass when Graph throttles (429/503); a longer "
        "one ends this source's pass (retried next pass) so other mailboxes are not held up.",
    )

    @model_validator(mode="after")
    def _credentials(self) -> GraphAccountFields:
        given = [n for n in ("client_secret_secret", "certificate_secret") if getattr(self, n) is not None]
        if self.auth == "app" and len(given) != 1:
            raise ValueError('auth = "app" needs exactly one of client_secret_secret or certificate_secret')
        if self.auth == "device_code" and given:
            raise ValueError('auth = "device_code" signs in as a user: remove client_secret_secret/certificate_secret')
        return self


class GraphSettings(GraphAccountFields, ExchangeMailboxFields):
    """A Microsoft 365 mailbox through Microsoft Graph: mail folders and calendar, optional write-back."""

    kind: Literal["graph"]
    calendars: list[str] = Field(
        default_factory=list,
        description='More calendars of the mailbox to read besides the default one (`calendar`), by name, or ["*"] '
        "for all of them (a shared team calendar, a second personal one).",
    )


class GraphContactsSettings(GraphAccountFields, SourceSettings):
    """Customers from a contact folder of a Microsoft 365 mailbox (read-only)."""

    kind: Literal["graph_contacts"]
    mailbox: str = Field(description="User principal name or SMTP address of the mailbox holding the contacts.")
    contacts_folder: str = Field(
        default="Contacts", description='Contact folder by display name; "Contacts" is the default folder.'
    )
    enabled: bool = True


def graph_client(settings: GraphAccountFields, name: str, context: ConnectorContext, mailbox: str = "") -> GraphClient:
    """A Graph client for one source, its secrets read when a token is needed, its requests
    within the app's budget for ``mailbox``."""
    client_secret = certificate = None
    if settings.client_secret_secret is not None:
        secret = settings.client_secret_secret

        def client_secret() -> str:
            return context.read_secret(secret, f"source {name} client_secret_secret")

    if settings.certificate_secret is not None:
        cert = settings.certificate_secret

        def certificate() -> str:
            return context.read_secret(cert, f"source {name} certificate_secret")

    state_dir: Path | None = context.state_dir
    sign_in = GraphSignIn(
        tenant_id=settings.tenant_id,
        client_id=settings.client_id,
        mode=settings.auth,
        authority_host=settings.authority_host,
        client_secret=client_secret,
        certificate=certificate,
        cache_path=cache_file(state_dir, name) if state_dir is not None else None,
        timeout=settings.timeout_seconds,
        scope=graph_scope(settings.graph_url),
    )
    return GraphClient(
        settings.graph_url,
        GraphTokens(sign_in, name),
        source=name,
        timeout=settings.timeout_seconds,
        max_wait=settings.throttle_max_wait_seconds,
        budget=context.budgets.for_mailbox(f"graph:{settings.client_id}", mailbox or name),
    )


def _build(settings: GraphSettings, context: ConnectorContext) -> GraphConnector:
    mailbox = GraphMailbox(
        mailbox=settings.effective_mailbox,
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses) | {settings.effective_mailbox},
        folders=tuple(settings.folders),
        backfill_days=settings.backfill_days,
        calendar=settings.calendar,
        past_days=settings.past_days,
        future_days=settings.future_days,
        contacts_folder=settings.contacts_folder,
        calendars=tuple(settings.calendars),
    )
    client = graph_client(settings, settings.name, context, settings.effective_mailbox)
    return GraphConnector(settings.name, context.options, mailbox, client)


def _build_contacts(settings: GraphContactsSettings, context: ConnectorContext) -> GraphContactsConnector:
    return GraphContactsConnector(
        settings.name,
        context.options,
        settings.mailbox,
        settings.contacts_folder,
        graph_client(settings, settings.name, context, settings.mailbox),
    )


GRAPH = SourceKind(
    name="graph",
    settings=GraphSettings,
    build=_build,
    summary="A Microsoft 365 mailbox through Microsoft Graph: mail folders by delta query, the calendar by "
    "calendarView delta, optional category and customer-contact write-back. See docs/microsoft-365.md.",
    capabilities=Capabilities(mail=True, calendar=True, labels="category", contacts=True),
)
GRAPH_CONTACTS = SourceKind(
    name="graph_contacts",
    settings=GraphContactsSettings,
    build=_build_contacts,
    summary="Customers from a contact folder of a Microsoft 365 mailbox, read-only.",
    capabilities=Capabilities(customers=True),
)
