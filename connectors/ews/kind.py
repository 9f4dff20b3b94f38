"""The ``ews`` and ``ews_contacts`` source kinds: settings, and the connectors made from them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, ConnectorContext, SourceKind
from syncd.connectors.ews.connector import EwsConnector
from syncd.connectors.ews.contacts import EwsContactsConnector
from syncd.connectors.ews.session import EwsAccount, exchange_online_host
from syncd.connectors.exchange import ExchangeMailboxFields
from syncd.model.settings import HttpsUrl, SecretSource, SourceSettings, StrictModel, tls_warning


class EwsAccountFields(StrictModel):
    """How syncd reaches an Exchange Server over EWS (shared by the ews and ews_contacts kinds)."""

    service_endpoint: HttpsUrl | None = Field(
        default=None, description="The EWS URL, e.g. https://mail.example.com/EWS/Exchange.asmx."
    )
    autodiscover: bool = Field(
        default=False, description="Find the endpoint by Autodiscover instead (service_endpoint left out)."
    )
    username: str = Field(description="Service account login (DOMAIN\\user or user@domain).")
    auth_type: Literal["ntlm", "basic", "oauth"] = Field(
        default="ntlm",
        description="ntlm or basic with password_secret; oauth with client_id/tenant_id/"
        "client_secret_secret (hybrid modern auth).",
    )
    password_secret: SecretSource | None = Field(default=None, description="Password (ntlm/basic), from a secret.")
    client_id: str | None = Field(default=None, description='auth_type = "oauth": application (client) ID.')
    tenant_id: str | None = Field(default=None, description='auth_type = "oauth": tenant ID.')
    client_secret_secret: SecretSource | None = Field(
        default=None, description='auth_type = "oauth": the client secret, from a secret.'
    )
    verify_tls: bool = Field(
        default=True, description="Check the server certificate. false logs a warning at every start."
    )
    impersonation: bool = Field(
        default=False,
        description="Act as the mailbox user through the ApplicationImpersonation role (else the service account "
        "needs delegate/full access to the mailbox).",
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Network timeout per request.")
    throttle_max_wait_seconds: float = Field(
        default=60,
        ge=0,
        le=600,
        description="Longest back-off (ErrorServerBusy's BackOffMilliseconds) waited for inside a pass; a longer "
        "one ends this source's pass and it is retried after it.",
    )

    @model_validator(mode="after")
    def _endpoint_and_auth(self) -> EwsAccountFields:
        if not self.autodiscover and not self.service_endpoint:
            raise ValueError("give service_endpoint (or autodiscover = true)")
        if self.auth_type == "oauth":
            if not (self.client_id and self.tenant_id and self.client_secret_secret):
                raise ValueError('auth_type = "oauth" needs client_id, tenant_id and client_secret_secret')
        elif self.password_secret is None:
            raise ValueError(f'auth_type = "{self.auth_type}" needs password_secret')
        if self.autodiscover and not self.verify_tls:
            raise ValueError(
                "verify_tls = false needs an explicit service_endpoint: Autodiscover always verifies "
                "certificates (it decides where the password is sent)"
            )
        return self

    def ews_warnings(self, name: str) -> tuple[str, ...]:
        """Unverified TLS, and EWS pointed at Exchange Online, which Microsoft is switching off."""
        warnings = []
        if not self.verify_tls:
            warnings.append(tls_warning(name, str(self.service_endpoint)))
        if self.service_endpoint and exchange_online_host(self.service_endpoint):
            warnings.append(
                f"source={name} EWS to Exchange Online is blocked by default since 1 Oct 2026 and "
                'switched off on 1 Apr 2027; use kind = "graph" for Microsoft 365 mailboxes '
                "(docs/microsoft-365.md)"
            )
        return tuple(warnings)


class EwsSettings(EwsAccountFields, ExchangeMailboxFields):
    """A mailbox on Exchange Server (on-premises) through EWS: mail folders and calendar, optional write-back."""

    kind: Literal["ews"]

    def security_warnings(self) -> tuple[str, ...]:
        return self.ews_warnings(self.name)


class EwsContactsSettings(EwsAccountFields, SourceSettings):
    """Customers from a contact folder of an Exchange Server mailbox (read-only)."""

    kind: Literal["ews_contacts"]
    mailbox: str = Field(description="Primary SMTP address of the mailbox holding the contacts.")
    contacts_folder: str = Field(
        default="contacts", description='Contact folder: "contacts" (the default folder) or a display name.'
    )
    enabled: bool = True

    def security_warnings(self) -> tuple[str, ...]:
        return self.ews_warnings(self.name)


def ews_account(settings: EwsAccountFields, name: str, mailbox: str, context: ConnectorContext) -> EwsAccount:
    oauth = settings.auth_type == "oauth"
    secret = settings.client_secret_secret if oauth else settings.password_secret
    key = "client_secret_secret" if oauth else "password_secret"
    if secret is None:  # the settings' validator makes this impossible
        raise ValueError(f"source {name}: no {key}")
    chosen: SecretSource = secret

    def password() -> str:
        return context.read_secret(chosen, f"source {name} {key}")

    return EwsAccount(
        mailbox=mailbox,
        username=settings.username,
        password=password,
        auth_type=settings.auth_type,
        service_endpoint=settings.service_endpoint,
        autodiscover=settings.autodiscover,
        verify_tls=settings.verify_tls,
        impersonation=settings.impersonation,
        client_id=settings.client_id,
        tenant_id=settings.tenant_id,
        timeout=settings.timeout_seconds,
        max_wait=settings.throttle_max_wait_seconds,
    )


def _build(settings: EwsSettings, context: ConnectorContext) -> EwsConnector:
    return EwsConnector(
        settings.name,
        context.options,
        ews_account(settings, settings.name, settings.effective_mailbox, context),
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses),
        folders=tuple(settings.folders),
        calendar=settings.calendar,
        backfill_days=settings.backfill_days,
        past_days=settings.past_days,
        future_days=settings.future_days,
        contacts_folder=settings.contacts_folder,
    )


def _build_contacts(settings: EwsContactsSettings, context: ConnectorContext) -> EwsContactsConnector:
    return EwsContactsConnector(
        settings.name,
        context.options,
        ews_account(settings, settings.name, settings.mailbox, context),
        settings.contacts_folder,
    )


EWS = SourceKind(
    name="ews",
    settings=EwsSettings,
    build=_build,
    summary="A mailbox on Exchange Server (on-premises) through EWS: SyncFolderItems per folder, the calendar, "
    "optional write-back. See docs/exchange-server.md.",
    capabilities=Capabilities(mail=True, calendar=True, labels="category", contacts=True),
)
EWS_CONTACTS = SourceKind(
    name="ews_contacts",
    settings=EwsContactsSettings,
    build=_build_contacts,
    summary="Customers from a contact folder of an Exchange Server mailbox, read-only.",
    capabilities=Capabilities(customers=True),
)
