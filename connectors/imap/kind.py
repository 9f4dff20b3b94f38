"""The ``imap`` source kind: its settings, and how a connector and its IDLE watcher are made from them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Literal

from pydantic import Field, model_validator

from syncd.connectors.base import Capabilities, ConnectorContext, SourceKind
from syncd.connectors.imap.connector import ImapAccount, ImapConnector
from syncd.connectors.imap.idle import ImapIdleWatcher
from syncd.model.errors import SourceAuthError
from syncd.model.settings import LabelWriting, MailSourceSettings, SecretSource, is_loopback, tls_warning


class ImapSettings(MailSourceSettings):
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
        default="$crm_",
        pattern=r"^[$A-Za-z][A-Za-z0-9_$-]{0,15}$",
        description="Prefix of the keywords written, so they never collide with the user's own.",
    )

    @model_validator(mode="after")
    def _auth_and_tls(self) -> ImapSettings:
        if (self.password_secret is None) == (self.oauth2_token_command is None):
            raise ValueError("give exactly one of password_secret or oauth2_token_command")
        if self.tls == "none" and not is_loopback(self.host):
            raise ValueError('tls = "none" is allowed only for a server on loopback; use implicit or starttls')
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "implicit" else 143)

    def security_warnings(self) -> tuple[str, ...]:
        if self.verify_tls or self.tls == "none":
            return ()
        return (tls_warning(self.name, self.host),)

    def label_writing(self) -> LabelWriting | None:
        return LabelWriting("keyword", self.keyword_prefix) if self.write_keywords else None

    def live(self) -> bool:
        return self.idle


def imap_account(settings: ImapSettings, context: ConnectorContext) -> ImapAccount:
    """The connector's view of an IMAP source; secrets are read when a login needs them."""
    password = None
    token = None
    if settings.password_secret is not None:
        secret = settings.password_secret

        def password() -> str:
            return context.read_secret(secret, f"source {settings.name} password_secret")
    else:
        command = list(settings.oauth2_token_command or [])

        def token() -> str:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if done.returncode != 0 or not done.stdout.strip():
                raise SourceAuthError(
                    f"oauth2_token_command exited {done.returncode} without a token", source=settings.name
                )
            return done.stdout.strip()

    return ImapAccount(
        host=settings.host,
        port=settings.effective_port,
        tls=settings.tls,
        verify_tls=settings.verify_tls,
        username=settings.username,
        owner=settings.owner,
        owner_addresses=frozenset(settings.owner_addresses),
        password=password,
        oauth2_token=token,
        include=tuple(settings.folders_include),
        exclude=tuple(settings.folders_exclude),
        backfill_days=settings.backfill_days,
        timeout=settings.timeout_seconds,
        server_preview=settings.server_preview,
    )


def _build(settings: ImapSettings, context: ConnectorContext) -> ImapConnector:
    return ImapConnector(settings.name, context.options, imap_account(settings, context))


def _watcher(
    settings: ImapSettings,
    context: ConnectorContext,
    on_change: Callable[[], None],
    on_notice: Callable[[str | None], None],
) -> ImapIdleWatcher:
    return ImapIdleWatcher(_build(settings, context), on_change=on_change, on_notice=on_notice)


KIND = SourceKind(
    name="imap",
    settings=ImapSettings,
    build=_build,
    watcher=_watcher,
    summary="A mailbox over IMAP: backfill, then incremental sync and IDLE; optional keyword write-back.",
    capabilities=Capabilities(mail=True, live=True, labels="keyword"),
)
