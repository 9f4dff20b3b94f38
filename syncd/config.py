"""The one config file: a TOML document validated by pydantic models.

The models here are the single source of truth for validation, for
``docs/configuration.md`` and for ``config/syncd.example.toml``. Every error names the
file, the key path and what is wrong, and all errors are reported at once, because an
admin fixing a config one error per restart gives up. Unknown keys are errors (a typo'd
key silently ignored is a feature silently off). Relative paths resolve against the
folder of the config file, so a config and its workbooks can move together.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path("/etc/syncd/syncd.toml")


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(Exception):
    """A config that cannot be used; carries every problem found, with its location."""

    def __init__(self, path: Path | str, problems: list[ConfigProblem]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.path}: {len(self.problems)} problem(s)"]
        lines += [f"  {self.path}: {p}" for p in self.problems]
        return "\n".join(lines)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


def _domain_list(values: list[str]) -> list[str]:
    cleaned = []
    for value in values:
        domain = value.strip().lower().lstrip("@").rstrip(".")
        if not domain or " " in domain or "." not in domain:
            raise ValueError(f"{value!r} is not a domain name")
        cleaned.append(domain)
    return cleaned


DomainList = Annotated[list[str], AfterValidator(_domain_list)]


def _phone_region(value: str | None) -> str | None:
    if value is None:
        return None
    import phonenumbers

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region phone numbers know (use an ISO code such as HR or SE)")
    return region


class StrictModel(BaseModel):
    # validate_default: default paths resolve against the config folder like given ones.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ServiceConfig(StrictModel):
    """How the daemon runs."""

    state_dir: ConfigPath = Field(
        default=Path("/var/lib/syncd"),
        description="Folder for the SQLite store and service state.",
    )
    interval_seconds: int = Field(
        default=300, ge=5, description="Seconds between passes over sources that are polled."
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Items committed together with their cursor."
    )
    max_parallel_sources: int = Field(
        default=4, ge=1, le=64, description="Mail sources synced at once (threads), and the cap on IDLE watchers' "
        "share of work."
    )
    removal_guard_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A pass that would remove more than this share of a source's items is "
        "held as suspect until confirmed with `syncd sync --confirm-removals SOURCE`.",
    )
    timezone: str = Field(default="UTC", description="Time zone for dates written to workbooks.")
    alert_after_minutes: int = Field(
        default=60, ge=0, description="`syncd status` exits 1 when a source has been failing longer than this."
    )
    metrics_address: str | None = Field(
        default=None,
        description="Serve Prometheus metrics on this loopback HOST:PORT (e.g. \"127.0.0.1:9464\"); off by default.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log level written (`--debug` overrides)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="One line per event to stderr: key=value text, or JSON objects."
    )

    @field_validator("metrics_address")
    @classmethod
    def _loopback_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT")
        if host not in ("localhost", "::1") and not host.startswith("127."):
            raise ValueError("metrics are served on loopback only (127.0.0.1 or ::1); put a proxy in front to expose them")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Zagreb)") from None
        return value


class SecretSource(StrictModel):
    """Where a secret comes from. Secrets are never written in the config itself."""

    file: ConfigPath | None = Field(default=None, description="A file holding the secret (mode 0600 or 0400).")
    env: str | None = Field(default=None, description="An environment variable holding the secret.")
    credential: str | None = Field(
        default=None, description="A systemd credential name, read from $CREDENTIALS_DIRECTORY."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretSource":
        given = [n for n in ("file", "env", "credential") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or credential")
        return self


class StoreConfig(StrictModel):
    """Where syncd keeps what it has read."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite at STATE_DIR/syncd.db. A URL with a "
        "password belongs in `url_secret`, not here.",
    )
    url_secret: SecretSource | None = Field(default=None, description="Read the URL from a secret.")
    keep_bodies: bool = Field(default=False, description="Store whole message bodies (off: metadata and snippet only).")
    snippet_chars: int = Field(default=240, ge=0, le=2000, description="Length of the stored text snippet.")

    @field_validator("url")
    @classmethod
    def _no_inline_password(cls, value: str | None) -> str | None:
        if value and "://" in value:
            netloc = value.split("://", 1)[1].split("/", 1)[0]
            if "@" in netloc and ":" in netloc.split("@", 1)[0]:
                raise ValueError("the URL holds a password: move it to url_secret")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> "StoreConfig":
        if self.url and self.url_secret:
            raise ValueError("give url or url_secret, not both")
        return self


class MailSourceBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Unique source name.")
    owner: str = Field(description="The staff member whose mailbox this is (an email address).")
    owner_addresses: list[str] = Field(
        default_factory=list, description="Further addresses of the owner (aliases), for direction."
    )
    enabled: bool = True

    @field_validator("owner", "owner_addresses")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower()
        return [v.strip().lower() for v in value]


class MaildirSourceConfig(MailSourceBase):
    """A Maildir (or Maildir++ tree with subfolders) read from disk."""

    kind: Literal["maildir"]
    path: ConfigPath = Field(description="The Maildir folder (holding cur/ new/ tmp/).")
    include_subfolders: bool = Field(default=True, description="Read Maildir++ subfolders (.Sent, .Archive...).")


class ImapSourceConfig(MailSourceBase):
    """A mailbox reached over IMAP (Dovecot, Cyrus, Exchange/Microsoft 365 IMAP, Gmail...)."""

    kind: Literal["imap"]
    host: str = Field(description="IMAP server host name.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: 993 (implicit TLS), else 143.")
    tls: Literal["implicit", "starttls", "none"] = Field(
        default="implicit", description="implicit (IMAPS), starttls, or none (loopback only)."
    )
    verify_tls: bool = Field(
        default=True, description="Check the server certificate. Turning it off logs a warning at every start."
    )
    username: str = Field(description="Login name.")
    password_secret: SecretSource | None = Field(default=None, description="Password, from a secret.")
    oauth2_token_command: list[str] | None = Field(
        default=None,
        description="XOAUTH2: a command (argv list) printing an access token, e.g. a helper using msal.",
    )
    folders_include: list[str] = Field(
        default_factory=list, description="More folders to read, as glob patterns (INBOX and Sent always)."
    )
    folders_exclude: list[str] = Field(
        default_factory=lambda: ["Trash", "Junk", "Spam", "Drafts", "*/Trash", "*/Junk"],
        description="Folders never read, as glob patterns.",
    )
    backfill_days: int = Field(default=365, ge=1, le=3650, description="How far back the first sync reads.")
    idle: bool = Field(default=True, description="Wait in IDLE on INBOX so new mail arrives within seconds.")
    server_preview: bool = Field(
        default=True,
        description="Take snippets from the server's PREVIEW (RFC 8970) where it offers it; servers cache "
        "previews, so re-reads are cheap. false: read the first KB of the body and make the snippet here.",
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Network timeout per command.")
    write_keywords: bool = Field(
        default=False, description="Add a keyword per matched customer to each message (nothing else is changed)."
    )
    keyword_prefix: str = Field(
        default="$crm_", pattern=r"^[$A-Za-z][A-Za-z0-9_$-]{0,15}$",
        description="Prefix of the keywords written, so they never collide with the user's own.",
    )

    @model_validator(mode="after")
    def _auth_and_tls(self) -> "ImapSourceConfig":
        if (self.password_secret is None) == (self.oauth2_token_command is None):
            raise ValueError("give exactly one of password_secret or oauth2_token_command")
        if self.tls == "none" and self.host not in ("localhost", "::1") and not self.host.startswith("127."):
            raise ValueError("tls = \"none\" is allowed only for a server on loopback; use implicit or starttls")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "implicit" else 143)


class CaldavSourceConfig(MailSourceBase):
    """Calendars on a CalDAV server (Nextcloud, SOGo, Fastmail, iCloud, Radicale): meetings."""

    kind: Literal["caldav"]
    url: str = Field(description="The server's CalDAV URL (principal discovery starts here).")
    username: str = Field(description="Login name.")
    password_secret: SecretSource = Field(description="Password (or app password), from a secret.")
    verify_tls: bool = Field(
        default=True, description="Check the server certificate. false logs a warning at every start."
    )
    calendars: list[str] = Field(
        default_factory=list,
        description="Calendars to read, by display name, last URL segment or full URL. Empty: every calendar "
        "of the account.",
    )
    past_days: int = Field(default=365, ge=0, le=3650, description="How far back meetings are read.")
    future_days: int = Field(default=180, ge=0, le=3650, description="How far ahead meetings are read.")
    sync_method: Literal["auto", "etag"] = Field(
        default="auto",
        description="auto: RFC 6578 sync-token where the server offers it, else ETag comparison. "
        "etag: always compare ETags (for servers whose sync-collection is broken).",
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Network timeout per request.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a server on this machine)")
        host = value.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if value.startswith("http://") and host not in ("localhost", "::1") and not host.startswith("127."):
            raise ValueError("plain http:// is only allowed for a server on this machine (127.0.0.1, localhost); "
                             "use https://")
        return value


def _https_or_loopback(value: str) -> str:
    """An https URL, or plain http to this machine only (a test double, a local proxy)."""
    value = value.rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a server on this machine)")
    host = value.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if value.startswith("http://") and host not in ("localhost", "::1") and not host.startswith("127."):
        raise ValueError("plain http:// is only allowed for a server on this machine (127.0.0.1, localhost); "
                         "use https://")
    return value


HttpsUrl = Annotated[str, AfterValidator(_https_or_loopback)]


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
        default=None, description="auth = \"app\": the client secret, from a secret (never inline)."
    )
    certificate_secret: SecretSource | None = Field(
        default=None,
        description="auth = \"app\": a PEM file (or credential) holding the certificate's private key and the "
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
        default=60, ge=0, le=600,
        description="Longest Retry-After syncd waits for inside a pass when Graph throttles (429/503); a longer "
        "one ends this source's pass (retried next pass) so other mailboxes are not held up.",
    )

    @model_validator(mode="after")
    def _credentials(self) -> "GraphAccountFields":
        given = [n for n in ("client_secret_secret", "certificate_secret") if getattr(self, n) is not None]
        if self.auth == "app" and len(given) != 1:
            raise ValueError("auth = \"app\" needs exactly one of client_secret_secret or certificate_secret")
        if self.auth == "device_code" and given:
            raise ValueError("auth = \"device_code\" signs in as a user: remove client_secret_secret/certificate_secret")
        return self


class ExchangeMailboxFields(StrictModel):
    """What is read from and written back to an Exchange mailbox (shared by the graph and ews kinds)."""

    mailbox: str | None = Field(
        default=None, description="The mailbox (user principal name or primary SMTP address). Default: owner."
    )
    folders: list[str] = Field(
        default_factory=lambda: ["inbox", "sentitems"],
        description="Mail folders read, by well-known name (inbox, sentitems, archive...) or display name "
        "(a subfolder as \"Inbox/Customers\").",
    )
    backfill_days: int = Field(default=365, ge=1, le=3650, description="How far back the first sync reads mail.")
    calendar: bool = Field(default=True, description="Read the mailbox's default calendar (meetings).")
    past_days: int = Field(default=365, ge=0, le=3650, description="How far back meetings are read.")
    future_days: int = Field(default=180, ge=0, le=3650, description="How far ahead meetings are read.")
    write_categories: bool = Field(
        default=False,
        description="Add a category per matched customer to each message and meeting; the user's own categories "
        "are kept. Graph also adds missing ones to the master category list (needs Mail.ReadWrite, "
        "Calendars.ReadWrite, MailboxSettings.ReadWrite).",
    )
    write_contacts: bool = Field(
        default=False,
        description="Keep a contact per customer in the contact folder `contacts_folder`, its notes holding the "
        "customer's recent timeline (Graph needs Contacts.ReadWrite).",
    )
    contacts_folder: str = Field(default="Customers", description="Contact folder written by write_contacts.")
    contact_history: int = Field(
        default=20, ge=1, le=200, description="How many recent activities a customer contact's notes show."
    )

    @field_validator("mailbox")
    @classmethod
    def _lower_mailbox(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else value

    @property
    def effective_mailbox(self) -> str:
        return self.mailbox or str(getattr(self, "owner"))


class GraphSourceConfig(GraphAccountFields, ExchangeMailboxFields, MailSourceBase):
    """A Microsoft 365 mailbox through Microsoft Graph: mail folders and calendar, optional write-back."""

    kind: Literal["graph"]


class GraphContactsSourceConfig(GraphAccountFields):
    """Customers from a contact folder of a Microsoft 365 mailbox (read-only)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Unique source name.")
    kind: Literal["graph_contacts"]
    mailbox: str = Field(description="User principal name or SMTP address of the mailbox holding the contacts.")
    contacts_folder: str = Field(
        default="Contacts", description="Contact folder by display name; \"Contacts\" is the default folder."
    )
    enabled: bool = True


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
        default="ntlm", description="ntlm or basic with password_secret; oauth with client_id/tenant_id/"
        "client_secret_secret (hybrid modern auth)."
    )
    password_secret: SecretSource | None = Field(default=None, description="Password (ntlm/basic), from a secret.")
    client_id: str | None = Field(default=None, description="auth_type = \"oauth\": application (client) ID.")
    tenant_id: str | None = Field(default=None, description="auth_type = \"oauth\": tenant ID.")
    client_secret_secret: SecretSource | None = Field(
        default=None, description="auth_type = \"oauth\": the client secret, from a secret."
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

    @model_validator(mode="after")
    def _endpoint_and_auth(self) -> "EwsAccountFields":
        if not self.autodiscover and not self.service_endpoint:
            raise ValueError("give service_endpoint (or autodiscover = true)")
        if self.auth_type == "oauth":
            if not (self.client_id and self.tenant_id and self.client_secret_secret):
                raise ValueError("auth_type = \"oauth\" needs client_id, tenant_id and client_secret_secret")
        elif self.password_secret is None:
            raise ValueError(f"auth_type = \"{self.auth_type}\" needs password_secret")
        return self


class EwsSourceConfig(EwsAccountFields, ExchangeMailboxFields, MailSourceBase):
    """A mailbox on Exchange Server (on-premises) through EWS: mail folders and calendar, optional write-back."""

    kind: Literal["ews"]


class EwsContactsSourceConfig(EwsAccountFields):
    """Customers from a contact folder of an Exchange Server mailbox (read-only)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Unique source name.")
    kind: Literal["ews_contacts"]
    mailbox: str = Field(description="Primary SMTP address of the mailbox holding the contacts.")
    contacts_folder: str = Field(
        default="contacts", description="Contact folder: \"contacts\" (the default folder) or a display name."
    )
    enabled: bool = True


class MboxSourceConfig(MailSourceBase):
    """An mbox file, such as a mail export."""

    kind: Literal["mbox"]
    path: ConfigPath = Field(description="The mbox file.")


class CustomerColumns(StrictModel):
    """Which header names hold which customer fields. Unmapped fields are left empty."""

    company: str | None = Field(default=None, description="Company name.")
    person: str | None = Field(default=None, description="Contact person's full name.")
    email: str | None = Field(default=None, description="Email address(es); several separated by , ; or space.")
    phone: str | None = Field(default=None, description="Phone number(s).")
    domain: str | None = Field(default=None, description="Company web or mail domain.")
    owner: str | None = Field(default=None, description="Staff member who owns the customer.")

    @model_validator(mode="after")
    def _needs_name(self) -> "CustomerColumns":
        if not self.company and not self.person:
            raise ValueError("map at least one of company or person")
        return self


class SheetSourceBase(StrictModel):
    """What every mapped sheet says: which workbook and sheet, where the header is, how its
    cells are written. Staff workbooks are read-only to syncd: it never writes to them."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Unique source name.")
    path: ConfigPath = Field(description="The workbook (.xlsx, .xlsm, .xlsb, .xls or .ods).")
    sheet: str | None = Field(default=None, description="Sheet name (hidden sheets too). Default: the first sheet.")
    header_row: int | Literal["auto"] = Field(
        default="auto",
        description="Row number of the header, or \"auto\": the first of the top 50 rows that holds every "
        "mapped header.",
    )
    key_columns: list[str] = Field(
        default_factory=list,
        description="Headers whose values identify a row, so an edited row updates its record. Default: the "
        "email column for people; otherwise a hash of the row (an edited row then replaces the old one).",
    )
    date_formats: list[str] = Field(
        default_factory=list,
        description="strptime formats for dates written as text, tried in order (e.g. \"%m/%d/%Y\" for US "
        "sheets). Default: ISO, then day-first formats (31.12.2026, 31/12/2026...). Date cells and Excel "
        "serial numbers are always understood.",
    )
    decimal_separator: Literal["auto", ".", ","] = Field(
        default="auto", description="Decimal mark of amounts written as text (1.234,56 or 1,234.56)."
    )
    phone_region: str | None = Field(
        default=None,
        description="Country (ISO code) for phone numbers in this sheet written without a country code. "
        "Default: matching.default_phone_region.",
    )
    enabled: bool = True

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return _phone_region(value)

    @field_validator("date_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        from datetime import datetime as _dt

        for pattern in value:
            if "%" not in pattern:
                raise ValueError(f"{pattern!r} is not a strptime format (e.g. \"%d.%m.%Y\")")
            try:
                _dt(2026, 1, 2, 3, 4).strftime(pattern)
            except ValueError as exc:
                raise ValueError(f"{pattern!r} is not a valid format: {exc}") from None
        return value

    @property
    def header_row_number(self) -> int | None:
        return None if self.header_row == "auto" else self.header_row


class ExcelCustomersSourceConfig(SheetSourceBase):
    """A customer list kept in a staff workbook: companies and people."""

    kind: Literal["excel_customers"]
    columns: CustomerColumns


class ActivityColumns(StrictModel):
    """Which header names hold which activity fields. ``date`` and one of ``customer``,
    ``email`` or ``phone`` are required."""

    date: str = Field(description="When it happened (a date cell, an Excel serial number or text).")
    customer: str | None = Field(
        default=None, description="The customer's name (company or person) as the customer list writes it."
    )
    email: str | None = Field(default=None, description="The customer's email address.")
    phone: str | None = Field(default=None, description="The customer's phone number (calls).")
    subject: str | None = Field(default=None, description="Short title (order number, call topic).")
    details: str | None = Field(default=None, description="Longer text, shown as the snippet.")
    amount: str | None = Field(default=None, description="Amount (orders).")
    currency: str | None = Field(default=None, description="Currency code of the amount.")
    staff: str | None = Field(default=None, description="The staff member who did it.")

    @model_validator(mode="after")
    def _needs_customer(self) -> "ActivityColumns":
        if not (self.customer or self.email or self.phone):
            raise ValueError("map at least one of customer, email or phone, so rows can find their customer")
        return self


class ExcelActivitiesSourceConfig(SheetSourceBase):
    """Orders, calls, notes or anything else with a date and a customer, kept in a staff workbook."""

    kind: Literal["excel_activities"]
    activity: Literal["order", "call", "note", "meeting"] = Field(
        default="order", description="What each row is: order, call, note or meeting."
    )
    currency: str | None = Field(default=None, description="Currency of amounts when no currency column is mapped.")
    columns: ActivityColumns


SourceConfig = Annotated[
    Union[
        MaildirSourceConfig, MboxSourceConfig, ImapSourceConfig, CaldavSourceConfig, ExcelCustomersSourceConfig,
        ExcelActivitiesSourceConfig, GraphSourceConfig, GraphContactsSourceConfig, EwsSourceConfig,
        EwsContactsSourceConfig,
    ],
    Field(discriminator="kind"),
]


class ManualRule(StrictModel):
    """An admin's assignment: items with this address, domain, phone or customer name belong
    to ``customer``. Manual rules win over every automatic rule."""

    email: str | None = Field(default=None, description="An address (ana@example.com).")
    domain: str | None = Field(default=None, description="A domain (example.com), with its subdomains.")
    phone: str | None = Field(default=None, description="A phone number (+385 91 234 5678).")
    name: str | None = Field(default=None, description="A customer name as sheets write it (\"Acme\").")
    customer: str = Field(description="The customer's name as the customer list has it.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ManualRule":
        given = [n for n in ("email", "domain", "phone", "name") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of email, domain, phone or name, and customer")
        return self


class MatchingConfig(StrictModel):
    """How records are matched to customers."""

    rules: list[ManualRule] = Field(
        default_factory=list,
        description="Manual assignments; they win over every other rule. Assignments typed into the "
        "timeline's Review sheet are learned as rules too (`syncd rules` lists them).",
    )
    fuzzy_auto_link: float = Field(
        default=0.92, ge=0.5, le=1.0,
        description="A customer name in a sheet row that matches no customer exactly is linked to the "
        "closest name scoring at least this (0..1), when no other name comes close; lower scores are "
        "suggestions on Review.",
    )
    auto_create_contacts: Literal["none", "inbound", "both-ways"] = Field(
        default="none",
        description="Add outside correspondents to the customer list as people: none; inbound (anyone who "
        "writes to us, automated senders aside); both-ways (only people we exchanged mail with in both "
        "directions). New people join the company of their mail domain when there is one.",
    )
    fuzzy_suggest: float = Field(
        default=0.75, ge=0.3, le=1.0, description="Least score for a name to be suggested on Review."
    )

    internal_domains: DomainList = Field(
        default_factory=list,
        description="Our own mail domains. Mail only between these is not logged; they never identify a customer.",
    )
    extra_free_mail_domains: DomainList = Field(
        default_factory=list,
        description="Free-mail domains in addition to the packaged list; they never identify a company.",
    )
    exclude_automated: bool = Field(
        default=True, description="Skip mail from automated senders (no-reply, bulk, auto-replies)."
    )
    blocklist: list[str] = Field(
        default_factory=list,
        description="Addresses (ana@example.com) or domains (@example.com, which covers its subdomains) that are "
        "never logged or linked. Our own addresses are never blocked.",
    )
    blocklist_drops: Literal["item", "party"] = Field(
        default="item",
        description="item: an email or meeting with a blocked participant is not logged at all (counted as "
        "'blocked'). party: only the blocked participant is ignored.",
    )
    fold_plus_addresses: bool = Field(
        default=False, description="Match ana+offers@example.com to the customer with ana@example.com."
    )
    default_phone_region: str | None = Field(
        default=None,
        description="ISO country code (HR, PL, SE...) for phone numbers written without a country code. "
        "Unset: such numbers are not used for matching.",
    )

    @field_validator("blocklist")
    @classmethod
    def _blocklist_entries(cls, value: list[str]) -> list[str]:
        from syncd.mapping.normalize import normalize_domain, normalize_email

        cleaned: list[str] = []
        for entry in value:
            text = entry.strip().lower()
            if text.startswith("@") or "@" not in text:
                domain = normalize_domain(text.lstrip("@"))
                if domain is None:
                    raise ValueError(f"{entry!r} is neither an address nor a domain")
                cleaned.append("@" + domain)
            else:
                email = normalize_email(text)
                if email is None:
                    raise ValueError(f"{entry!r} is not a valid address")
                cleaned.append(email)
        return cleaned

    @field_validator("default_phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return _phone_region(value)


class StatusRule(StrictModel):
    """A label the Customers sheet shows once a customer has had no contact for a while."""

    after_days: int = Field(ge=1, le=3650, description="Days without contact after which the label applies.")
    label: str = Field(min_length=1, max_length=80, description="The label, e.g. \"no contact in 60 days\".")


class TimelineConfig(StrictModel):
    """The timeline workbook syncd writes (its own file, never a staff workbook)."""

    path: ConfigPath = Field(default=Path("timeline.xlsx"), description="Where the timeline workbook is written.")
    max_rows: int = Field(default=100_000, ge=100, le=1_000_000, description="Newest activities kept on Timeline.")
    min_interval_seconds: int = Field(
        default=5, ge=0, le=3600,
        description="At most one write every this many seconds; changes in between are written together "
        "(staff with the file open in Excel are not interrupted by every new mail).",
    )
    status: list[StatusRule] = Field(
        default_factory=lambda: [
            StatusRule(after_days=60, label="no contact in 60 days"),
            StatusRule(after_days=120, label="no contact in 120 days"),
        ],
        description="Customers sheet Status labels by days since last contact; the largest matching "
        "after_days wins. Customers in contact more recently show \"active\", never contacted \"no contact yet\".",
    )
    reports: bool = Field(default=True, description="Add the Reports sheet with charts.")
    per_owner: bool = Field(
        default=False,
        description="Also write one workbook per customer owner (the owner column of the customer sheet), "
        "holding only that owner's customers and their activities.",
    )
    per_owner_dir: ConfigPath = Field(
        default=Path("timelines"), description="Folder for the per-owner workbooks (timeline-OWNER.xlsx)."
    )
    review_max_rows: int = Field(
        default=2000, ge=10, le=1_000_000,
        description="Newest unmatched activities listed on Review (a first sync without a customer list would "
        "otherwise list every mail; nobody reviews 20,000 rows). syncd status counts them all.",
    )
    review_suggestions: int = Field(
        default=3, ge=0, le=10, description="Suggested customers shown per unmatched activity on Review."
    )

    @field_validator("status")
    @classmethod
    def _distinct_days(cls, value: list[StatusRule]) -> list[StatusRule]:
        days = [r.after_days for r in value]
        if len(days) != len(set(days)):
            raise ValueError("two status labels have the same after_days")
        return sorted(value, key=lambda r: r.after_days)


class Config(StrictModel):
    # Absent tables are validated from {} so their defaults see the config folder too.
    service: ServiceConfig = Field(default_factory=dict)  # type: ignore[arg-type]
    store: StoreConfig = Field(default_factory=dict)  # type: ignore[arg-type]
    matching: MatchingConfig = Field(default_factory=dict)  # type: ignore[arg-type]
    timeline: TimelineConfig = Field(default_factory=dict)  # type: ignore[arg-type]
    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for source in sources:
            if source.name == "auto-contacts":
                raise ValueError("the source name 'auto-contacts' is reserved for auto-created contacts")
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice")
            seen.add(source.name)
        return sources

    def source(self, name: str) -> Any:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        if self.store.url_secret:
            from syncd.secrets import read_secret

            return read_secret(self.store.url_secret, "store.url_secret")
        return f"sqlite:///{self.service.state_dir / 'syncd.db'}"


def _all_field_names() -> set[str]:
    names: set[str] = set()
    for model in (
        Config, ServiceConfig, StoreConfig, SecretSource, MaildirSourceConfig, MboxSourceConfig, ImapSourceConfig,
        CaldavSourceConfig, ExcelCustomersSourceConfig, CustomerColumns, MatchingConfig, TimelineConfig,
        ExcelActivitiesSourceConfig, ActivityColumns, SheetSourceBase, StatusRule, ManualRule,
        GraphSourceConfig, GraphContactsSourceConfig, EwsSourceConfig, EwsContactsSourceConfig,
    ):
        names.update(model.model_fields)
    return names


def _key_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """``('sources', 1, 'maildir', 'path')`` -> ``'sources[1] (alice-mail).path'``."""
    parts: list[str] = []
    items = list(loc)
    raw_sources = data.get("sources") if isinstance(data.get("sources"), list) else []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, int):
            is_source = parts == ["sources"]
            parts[-1] += f"[{item}]"
            if is_source and item < len(raw_sources) and isinstance(raw_sources[item], dict):
                source = raw_sources[item]
                if i + 1 < len(items) and items[i + 1] == source.get("kind"):
                    i += 1  # pydantic puts the discriminator value in the path; the name says more
                if source.get("name"):
                    parts[-1] += f" ({source['name']})"
        elif not (isinstance(item, str) and item.startswith(("function-", "literal["))):
            parts.append(str(item))
        i += 1
    return ".".join(parts)


def _problem(error: dict[str, Any], data: dict[str, Any]) -> ConfigProblem:
    key = _key_path(tuple(error["loc"]), data)
    kind = error["type"]
    if kind == "extra_forbidden":
        leaf = str(error["loc"][-1])
        close = difflib.get_close_matches(leaf, _all_field_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ConfigProblem(key, f"unknown key{hint}")
    if kind == "missing":
        return ConfigProblem(key, "required key is missing")
    if kind == "union_tag_invalid":
        return ConfigProblem(key + ".kind", f"unknown source kind; expected one of {error['ctx']['expected_tags']}")
    if kind == "union_tag_not_found":
        return ConfigProblem(key, "the source needs a `kind`")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    got = error.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {got!r})"
    return ConfigProblem(key, message)


def parse_config(text: str, path: Path, check_files: bool = False) -> Config:
    """Validate TOML text as if it were the file ``path``; raise ConfigError with every problem.

    With ``check_files`` the files and folders sources point at are checked too, even when
    the schema has errors, so `check-config` lists everything in one go.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        problems = [_problem(e, data) for e in exc.errors()]  # type: ignore[arg-type]
        if check_files:
            problems += _raw_path_problems(data, path.parent)
        raise ConfigError(path, problems) from None
    if check_files:
        problems = check_references(config)
        if problems:
            raise ConfigError(path, problems)
    return config


def _raw_path_problems(data: dict[str, Any], base: Path) -> list[ConfigProblem]:
    """Missing files of sources in a config that did not validate (best effort on raw data)."""
    problems: list[ConfigProblem] = []
    sources = data.get("sources") if isinstance(data.get("sources"), list) else []
    for index, source in enumerate(sources):
        if not isinstance(source, dict) or not isinstance(source.get("path"), str):
            continue
        path = Path(source["path"]).expanduser()
        path = path if path.is_absolute() else base / path
        label = f"sources[{index}] ({source.get('name', '?')}).path"
        if source.get("kind") == "maildir" and not path.is_dir():
            problems.append(ConfigProblem(label, f"no such folder: {path}"))
        elif source.get("kind") in ("mbox", "excel_customers", "excel_activities") and not path.is_file():
            problems.append(ConfigProblem(label, f"no such file: {path}"))
    return problems


def load_config(path: Path | str, check_files: bool = False) -> Config:
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read the config file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"the config file is not UTF-8: {exc.reason}")]) from None
    return parse_config(text, path, check_files)


def _sheet_problems(index: int, source: Any) -> list[ConfigProblem]:
    """Does the mapping fit the workbook: the sheet exists, every mapped header is there."""
    from syncd.connectors.base import SourceConfigError, SourceUnavailable
    from syncd.connectors.sheets import SheetMapping, read_sheet

    columns = {f: c for f, c in source.columns.model_dump().items() if c}
    mapping = SheetMapping(source.path, source.sheet, source.header_row_number, columns, tuple(source.key_columns))
    try:
        read_sheet(mapping)
    except SourceConfigError as exc:
        return [ConfigProblem(f"sources[{index}] ({source.name}).columns", str(exc))]
    except SourceUnavailable as exc:
        return [ConfigProblem(f"sources[{index}] ({source.name}).path", str(exc))]
    return []


def check_references(config: Config) -> list[ConfigProblem]:
    """Problems with what the config points at (files, folders), found without syncing."""
    problems: list[ConfigProblem] = []
    for index, source in enumerate(config.sources):
        if isinstance(source, (GraphAccountFields, EwsAccountFields)):
            problems += _secret_problems(source, index, ("client_secret_secret", "certificate_secret", "password_secret"))
            continue
        if isinstance(source, (ImapSourceConfig, CaldavSourceConfig)):
            if source.password_secret is not None:
                from syncd.secrets import SecretError, read_secret

                try:
                    read_secret(source.password_secret, f"sources[{index}] ({source.name}).password_secret")
                except SecretError as exc:
                    problems.append(ConfigProblem(f"sources[{index}] ({source.name}).password_secret", str(exc)))
            continue
        key = f"sources[{index}] ({source.name}).path"
        path = source.path
        if isinstance(source, MaildirSourceConfig):
            if not path.is_dir():
                problems.append(ConfigProblem(key, f"no such folder: {path}"))
            elif not (path / "cur").is_dir() and not (path / "new").is_dir():
                problems.append(ConfigProblem(key, f"{path} is not a Maildir (no cur/ or new/ inside)"))
        elif not path.is_file():
            problems.append(ConfigProblem(key, f"no such file: {path}"))
        elif isinstance(source, SheetSourceBase):
            problems += _sheet_problems(index, source)
    if config.store.url_secret:
        from syncd.secrets import SecretError, read_secret

        try:
            read_secret(config.store.url_secret, "store.url_secret")
        except SecretError as exc:
            problems.append(ConfigProblem("store.url_secret", str(exc)))
    return problems


def _secret_problems(source: Any, index: int, fields: tuple[str, ...]) -> list[ConfigProblem]:
    """The given ``*_secret`` fields of a source that cannot be read."""
    from syncd.secrets import SecretError, read_secret

    problems: list[ConfigProblem] = []
    for field_name in fields:
        secret = getattr(source, field_name, None)
        if secret is None:
            continue
        key = f"sources[{index}] ({source.name}).{field_name}"
        try:
            read_secret(secret, key)
        except SecretError as exc:
            problems.append(ConfigProblem(key, str(exc)))
    return problems
