"""Building blocks of the config schema, shared by the config file and every source kind.

A source kind declares its settings as a subclass of ``SourceSettings`` (next to its
connector), built from the types here; ``syncd.config`` assembles the kinds the registry
knows into the one config model. The methods of ``SourceSettings`` are what the pipeline
and the service ask of any source, so they never test for a kind: which addresses are the
owner's, which local files it reads, which secrets it needs, what it writes back.

Validation rules that hold everywhere: unknown keys are errors, relative paths resolve
against the config file's folder (``ConfigPath``), secrets are never inline
(``SecretSource``), plain http only to this machine (``HttpsUrl``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LOOPBACK_HOSTS = ("localhost", "::1")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


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


def phone_region(value: str | None) -> str | None:
    """An ISO region phonenumbers knows (``hr`` -> ``HR``), for numbers written without a country code."""
    if value is None:
        return None
    import phonenumbers

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region phone numbers know (use an ISO code such as HR or SE)")
    return region


def _https_or_loopback(value: str) -> str:
    """An https URL, or plain http to this machine only (a test double, a local proxy)."""
    value = value.rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a server on this machine)")
    host = value.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    if value.startswith("http://") and not is_loopback(host):
        raise ValueError(
            "plain http:// is only allowed for a server on this machine (127.0.0.1, localhost); use https://"
        )
    return value


HttpsUrl = Annotated[str, AfterValidator(_https_or_loopback)]


class StrictModel(BaseModel):
    # validate_default: default paths resolve against the config folder like given ones.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SecretSource(StrictModel):
    """Where a secret comes from. Secrets are never written in the config itself."""

    file: ConfigPath | None = Field(default=None, description="A file holding the secret (mode 0600 or 0400).")
    env: str | None = Field(default=None, description="An environment variable holding the secret.")
    credential: str | None = Field(
        default=None, description="A systemd credential name, read from $CREDENTIALS_DIRECTORY."
    )

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            # Never echo the value back: it is a password someone just typed into a config.
            raise ValueError(
                'a secret is never written inline; give a table: { file = "..." }, { env = "..." } '
                'or { credential = "..." }'
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        given = [n for n in ("file", "env", "credential") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or credential")
        return self


@dataclass(frozen=True)
class InputPath:
    """A local file or folder a source reads: checked by check-config, never an output."""

    key: str
    path: Path
    folder: bool = False


@dataclass(frozen=True)
class LabelWriting:
    """How a source writes customer names back onto items: IMAP keywords (with a prefix)
    or Exchange categories."""

    style: Literal["keyword", "category"]
    prefix: str = ""
    people: bool = True  # people's names too, not only companies'


class SourceSettings(StrictModel):
    """What every source says, and what the pipeline may ask of any source."""

    name: str = Field(pattern=SOURCE_NAME_PATTERN, description="Unique source name.")
    kind: str
    enabled: bool = True

    def own_addresses(self) -> frozenset[str]:
        """Addresses of the staff member whose items these are (direction, internal mail)."""
        return frozenset()

    def input_paths(self) -> tuple[InputPath, ...]:
        """Local files and folders read (checked by check-config; never an output path)."""
        return ()

    def watched_files(self) -> tuple[Path, ...]:
        """Files followed live: a change syncs this source within seconds."""
        return ()

    def secrets(self) -> tuple[tuple[str, SecretSource], ...]:
        """(key, secret) of every secret the source is configured with."""
        found = []
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if isinstance(value, SecretSource):
                found.append((field_name, value))
        return tuple(found)

    def security_warnings(self) -> tuple[str, ...]:
        """Said at every start (an unverified TLS connection, a service being switched off)."""
        return ()

    def label_writing(self) -> LabelWriting | None:
        """How customer names are written back onto this source's items, or None (off)."""
        return None

    def contact_notes(self) -> int | None:
        """How many recent activities each customer contact written back shows, or None (off)."""
        return None

    def live(self) -> bool:
        """Whether the kind's live watcher (IMAP IDLE) runs for this source."""
        return False


class MailSourceSettings(SourceSettings):
    """A staff member's mailbox or calendar: the owner decides direction."""

    owner: str = Field(description="The staff member whose mailbox this is (an email address).")
    owner_addresses: list[str] = Field(
        default_factory=list, description="Further addresses of the owner (aliases), for direction."
    )

    @field_validator("owner", "owner_addresses")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower()
        return [v.strip().lower() for v in value]

    def own_addresses(self) -> frozenset[str]:
        return frozenset({self.owner, *self.owner_addresses})


def tls_warning(name: str, where: str) -> str:
    return (
        f"source={name} TLS certificate verification is OFF for {where}: the connection and password "
        "can be intercepted; set verify_tls = true"
    )
