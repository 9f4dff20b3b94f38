"""The general tables of the config file: [service], [store], [matching], [timeline].

Source tables are declared by their kinds (``syncd.connectors``); ``syncd.config``
assembles both into the one config model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from syncd.model.settings import ConfigPath, DomainList, SecretSource, StrictModel, is_loopback, phone_region


class ServiceConfig(StrictModel):
    """How the daemon runs."""

    state_dir: ConfigPath = Field(
        default=Path("/var/lib/syncd"),
        description="Folder for the SQLite store and service state.",
    )
    interval_seconds: int = Field(default=300, ge=5, description="Seconds between passes over sources that are polled.")
    batch_size: int = Field(default=200, ge=1, le=10_000, description="Items committed together with their cursor.")
    max_parallel_sources: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Sources synced at once, each on its own schedule (threads): a server that hangs holds one "
        "of them, never the others. `sync --once` syncs customer sources first, then this many at once.",
    )
    removal_guard_ratio: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="A pass that would take more than this share of a source's (or folder's) activities "
        "and customers out of the store is held as suspect until confirmed with "
        "`syncd sync --confirm-removals SOURCE`, whatever the source says of its listing.",
    )
    timezone: str = Field(default="UTC", description="Time zone for dates written to workbooks.")
    alert_after_minutes: int = Field(
        default=60, ge=0, description="`syncd status` exits 1 when a source has been failing longer than this."
    )
    metrics_address: str | None = Field(
        default=None,
        description='Serve Prometheus metrics on this loopback HOST:PORT (e.g. "127.0.0.1:9464"); off by default.',
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
        if not is_loopback(host):
            raise ValueError(
                "metrics are served on loopback only (127.0.0.1 or ::1); put a proxy in front to expose them"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Zagreb)") from None
        return value


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
    def _one_url(self) -> StoreConfig:
        if self.url and self.url_secret:
            raise ValueError("give url or url_secret, not both")
        return self


class ManualRule(StrictModel):
    """An admin's assignment: items with this address, domain, phone or customer name belong
    to ``customer``. Manual rules win over every automatic rule."""

    email: str | None = Field(default=None, description="An address (ana@example.com).")
    domain: str | None = Field(default=None, description="A domain (example.com), with its subdomains.")
    phone: str | None = Field(default=None, description="A phone number (+385 91 234 5678).")
    name: str | None = Field(default=None, description='A customer name as sheets write it ("Acme").')
    customer: str = Field(description="The customer's name as the customer list has it.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ManualRule:
        given = [n for n in ("email", "domain", "phone", "name") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of email, domain, phone or name, and customer")
        return self


def _address_or_domain_list(value: list[str]) -> list[str]:
    """``ana@example.com`` and ``@example.com`` (a domain, covering its subdomains), normalized."""
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


class MatchingConfig(StrictModel):
    """How records are matched to customers."""

    rules: list[ManualRule] = Field(
        default_factory=list,
        description="Manual assignments; they win over every other rule. Assignments typed into the "
        "timeline's Review sheet are learned as rules too (`syncd rules` lists them).",
    )
    fuzzy_auto_link: float = Field(
        default=0.92,
        ge=0.5,
        le=1.0,
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
    fold_plus_addresses: Literal["known", "all", "none"] = Field(
        default="known",
        description="Sub-addresses (ana+offers@gmail.com) match the customer with the plain address, and a list "
        'address with one matches mail from the plain one. "known": on providers documented to deliver '
        '+tag mail (Gmail, Outlook.com, iCloud, Fastmail, Proton...); "all": on every domain; "none": never. '
        "true/false are read as all/none.",
    )

    @field_validator("fold_plus_addresses", mode="before")
    @classmethod
    def _plus_from_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            return "all" if value else "none"
        return value

    default_phone_region: str | None = Field(
        default=None,
        description="ISO country code (HR, PL, SE...) for phone numbers written without a country code. "
        "Unset: such numbers are not used for matching.",
    )

    @field_validator("blocklist")
    @classmethod
    def _blocklist_entries(cls, value: list[str]) -> list[str]:
        return _address_or_domain_list(value)

    @field_validator("default_phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return phone_region(value)


class PrivacyConfig(StrictModel):
    """What syncd collects and keeps about people (see docs/privacy.md)."""

    collect: Literal["all", "customers_only"] = Field(
        default="all",
        description="all: every outside item is stored, and those matching no customer are listed on Review. "
        "customers_only: an item matching no known customer is not stored at all, only counted (as 'no-customer').",
    )
    keep_snippets: bool = Field(default=True, description="Keep the first lines of each mail; false stores none.")
    suppress: list[str] = Field(
        default_factory=list,
        description="Addresses (ana@example.com) and domains (@example.com, subdomains too) whose people are never "
        "collected: their mail is not stored or linked, they are never auto-created as contacts, and customer-list "
        "rows listing them are not imported. syncd forget adds erased people here as salted digests.",
    )
    private_categories: list[str] = Field(
        default_factory=lambda: ["Private", "Personal", "Privat", "Privatno", "Prywatne"],
        description="Outlook categories and IMAP keywords that mark an item as not for the CRM (case does not "
        "matter); such items are skipped as 'private', and read again once the mark is removed.",
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        description="Activities older than this many days are deleted from the store and every output on each "
        "pass; 0 keeps them.",
    )
    quarantine_retention_days: int = Field(
        default=90, ge=0, description="Quarantine entries not seen again for this many days are deleted; 0 keeps them."
    )
    review_retention_days: int = Field(
        default=0,
        ge=0,
        description="Activities that match no customer are deleted once this old (they leave Review); 0 keeps them.",
    )

    @field_validator("suppress")
    @classmethod
    def _suppress_entries(cls, value: list[str]) -> list[str]:
        return _address_or_domain_list(value)


class StatusRule(StrictModel):
    """A label the Customers sheet shows once a customer has had no contact for a while."""

    after_days: int = Field(ge=1, le=3650, description="Days without contact after which the label applies.")
    label: str = Field(min_length=1, max_length=80, description='The label, e.g. "no contact in 60 days".')


class PublishConfig(StrictModel):
    """The timeline workbook(s) also uploaded to OneDrive or SharePoint (the local copy stays, for SMB shares)."""

    via: str = Field(
        description="Name of a graph source whose sign-in (tenant, app, secret) is used to upload. The app "
        "needs Files.ReadWrite.All, or Sites.Selected with write access to the one site."
    )
    user: str | None = Field(default=None, description="Upload into this user's OneDrive (UPN or address).")
    site: str | None = Field(
        default=None,
        description='Or into a SharePoint site, as "host:/sites/Name" (e.g. contoso.sharepoint.com:/sites/Sales).',
    )
    library: str | None = Field(default=None, description="The site's document library by name (default: Documents).")
    folder: str = Field(default="CRM", description="Folder in the drive the workbook goes to (made if missing).")
    owners_onedrive: bool = Field(
        default=False,
        description="With timeline.per_owner: each owner's workbook goes into that owner's own OneDrive (the "
        "owner column must hold their address); off: into a subfolder `owners` of `folder`.",
    )

    @model_validator(mode="after")
    def _one_drive(self) -> PublishConfig:
        if bool(self.user) == bool(self.site):
            raise ValueError("give exactly one of user (a OneDrive) or site (a SharePoint site)")
        if self.library and not self.site:
            raise ValueError("library needs site")
        return self


class TimelineConfig(StrictModel):
    """The timeline workbook syncd writes (its own file, never a staff workbook)."""

    path: ConfigPath = Field(default=Path("timeline.xlsx"), description="Where the timeline workbook is written.")
    max_rows: int = Field(default=100_000, ge=100, le=1_000_000, description="Newest activities kept on Timeline.")
    min_interval_seconds: int = Field(
        default=5,
        ge=0,
        le=3600,
        description="At most one write every this many seconds; changes in between are written together "
        "(staff with the file open in Excel are not interrupted by every new mail).",
    )
    status: list[StatusRule] = Field(
        default_factory=lambda: [
            StatusRule(after_days=60, label="no contact in 60 days"),
            StatusRule(after_days=120, label="no contact in 120 days"),
        ],
        description="Customers sheet Status labels by days since last contact; the largest matching "
        'after_days wins. Customers in contact more recently show "active", never contacted "no contact yet".',
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
    publish: PublishConfig | None = Field(
        default=None,
        description="Also upload the workbook(s) to OneDrive or SharePoint, where Microsoft 365 staff open "
        "them (docs/microsoft-365.md). Uploaded only when the content changed.",
    )
    review_max_rows: int = Field(
        default=2000,
        ge=10,
        le=1_000_000,
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
