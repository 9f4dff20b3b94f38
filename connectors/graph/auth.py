"""Access tokens for Microsoft Graph with msal: app-only (client credentials) or a delegated device-code sign-in.

* ``app``: a confidential client signs in as itself with a certificate (preferred) or a
  client secret, both read from secrets when a token is needed, never from the config
  text. One app registration serves every mailbox the tenant admin lets it read.
* ``device_code``: a public client; a staff member signs in once with
  ``syncd graph-login SOURCE`` (a code typed at microsoft.com/devicelogin), and the
  daemon then renews the token silently with the cached refresh token.

The token cache is one file per source in the state folder, created with mode 0600 and
replaced atomically; it holds refresh tokens, so it is as sensitive as a password. msal
hands out a cached access token until shortly before it expires (and refreshes it early
when the service says so), so a pass never starts with a token about to lapse.

Tokens and secrets are never logged: this module logs no token, and msal's own logger is
kept at WARNING (its debug output includes request details).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncd.connectors.tls import security_error
from syncd.model.errors import SourceAuthError, SourceConfigError, SourceUnavailable

log = logging.getLogger("syncd.connectors.graph")

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def graph_scope(graph_url: str) -> str:
    """The app-only scope of the Graph endpoint in use: its root plus ``/.default``.

    National clouds each have their own Graph root and tokens must be asked for it
    (https://learn.microsoft.com/graph/deployments: ``https://graph.microsoft.us/.default``
    for US Government L4, ``https://microsoftgraph.chinacloudapi.cn/.default`` for China).
    """
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


_PEM_KEY = re.compile(
    r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----", re.S
)
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# Errors that mean the credentials or the consent are wrong: retrying cannot help.
_AUTH_ERRORS = {
    "invalid_client",
    "unauthorized_client",
    "invalid_grant",
    "invalid_request",
    "access_denied",
    "consent_required",
    "interaction_required",
    "invalid_scope",
    "expired_token",
}


@dataclass(frozen=True)
class GraphSignIn:
    """What msal needs, resolved from the config; secrets are callables read on use."""

    tenant_id: str
    client_id: str
    mode: str  # "app" or "device_code"
    authority_host: str = DEFAULT_AUTHORITY
    client_secret: Callable[[], str] | None = None
    certificate: Callable[[], str] | None = None
    cache_path: Path | None = None
    timeout: float = 60
    scope: str = GRAPH_SCOPE

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"


def certificate_credential(pem: str) -> dict[str, str]:
    """msal's client credential from one PEM holding a private key and its certificate.

    With ``public_certificate`` given, msal computes the SHA-256 thumbprint itself (msal
    1.35+), so no thumbprint needs configuring.
    """
    key = _PEM_KEY.search(pem)
    cert = _PEM_CERT.search(pem)
    if key is None or cert is None:
        raise SourceConfigError("certificate_secret must hold a PEM private key and its PEM certificate")
    return {"private_key": key.group(0), "public_certificate": cert.group(0)}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (a crash leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


class GraphTokens:
    """Hands out Graph access tokens for one source; thread-safe, cache persisted 0600."""

    def __init__(self, sign_in: GraphSignIn, source: str):
        import msal

        logging.getLogger("msal").setLevel(logging.WARNING)
        self.sign_in = sign_in
        self.source = source
        self._lock = threading.Lock()
        self.cache = msal.SerializableTokenCache()
        if sign_in.cache_path is not None and sign_in.cache_path.exists():
            try:
                self.cache.deserialize(sign_in.cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("source=%s token cache unreadable, starting afresh: %s", source, type(exc).__name__)
        self._app: Any = None

    def _application(self) -> Any:
        import msal

        if self._app is not None:
            return self._app
        sign_in = self.sign_in
        custom_host = sign_in.authority_host.rstrip("/") != DEFAULT_AUTHORITY
        # A sovereign cloud or a test double: msal cannot validate the host against
        # Microsoft's instance list, so it reads the host's OpenID configuration directly.
        options: dict[str, Any] = {
            "authority": sign_in.authority,
            "token_cache": self.cache,
            "timeout": sign_in.timeout,
        }
        if custom_host:
            options.update(validate_authority=False, instance_discovery=False)
        try:
            if sign_in.mode == "app":
                if sign_in.certificate is not None:
                    credential: Any = certificate_credential(sign_in.certificate())
                else:
                    assert sign_in.client_secret is not None
                    credential = sign_in.client_secret()
                self._app = msal.ConfidentialClientApplication(
                    sign_in.client_id, client_credential=credential, **options
                )
            else:
                self._app = msal.PublicClientApplication(sign_in.client_id, **options)
        except ValueError as exc:
            # msal raises ValueError for an unknown tenant (its OpenID document is a 400).
            raise SourceConfigError(f"sign-in authority {sign_in.authority} refused: {_first_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - requests' errors while msal reads the OpenID document
            refused = security_error(exc, sign_in.authority_host, self.source)
            if refused is not None:
                raise refused from None
            raise SourceUnavailable(f"cannot reach {sign_in.authority_host}: {_first_line(exc)}") from None
        return self._app

    def _save(self) -> None:
        if self.sign_in.cache_path is not None and self.cache.has_state_changed:
            _write_private(self.sign_in.cache_path, self.cache.serialize())

    def discard(self, token: str) -> None:
        """Forget a cached access token Graph refused (401): revoked before it expired.

        msal hands a cached token out until it expires and refuses ``force_refresh`` for
        client credentials ("Historically, this method does not support force_refresh
        behavior"), so the refused token is removed from the cache itself; the next
        ``token()`` then asks Entra ID for a new one (for device-code sign-ins with the
        cached refresh token).
        """
        import msal

        with self._lock:
            refused = [
                item
                for item in self.cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
                if item.get("secret") == token
            ]
            for item in refused:
                self.cache.remove_at(item)
            self._save()

    def token(self) -> str:
        """A valid access token: msal's cached one until shortly before it expires."""
        with self._lock:
            app = self._application()
            try:
                if self.sign_in.mode == "app":
                    result = app.acquire_token_for_client(scopes=[self.sign_in.scope])
                else:
                    accounts = app.get_accounts()
                    if not accounts:
                        raise SourceAuthError(
                            f"source {self.source} is not signed in: run `syncd graph-login "
                            f"{self.source}` once as the mailbox user"
                        )
                    result = app.acquire_token_silent([self.sign_in.scope], account=accounts[0])
                    if result is None:
                        raise SourceAuthError(
                            f"source {self.source}: the sign-in expired or was revoked; run "
                            f"`syncd graph-login {self.source}` again"
                        )
            except SourceAuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - network errors from requests inside msal
                refused = security_error(exc, self.sign_in.authority_host, self.source)
                if refused is not None:
                    raise refused from None
                raise SourceUnavailable(f"cannot reach {self.sign_in.authority_host}: {_first_line(exc)}") from None
            self._save()
        return self._checked(result)

    def _checked(self, result: dict[str, Any]) -> str:
        if "access_token" in result:
            return str(result["access_token"])
        error = str(result.get("error", "unknown_error"))
        # error_description starts with an AADSTS code that names the cause; keep its first line.
        description = (
            str(result.get("error_description", "")).splitlines()[0][:300] if result.get("error_description") else ""
        )
        message = f"source {self.source}: sign-in refused by {self.sign_in.authority_host} ({error}: {description})"
        if error in _AUTH_ERRORS or error.startswith("invalid"):
            raise SourceAuthError(message)
        raise SourceUnavailable(message)

    # ---- device code (interactive, from the CLI) ------------------------------------

    def device_login(self, say: Callable[[str], None]) -> str:
        """Run the device-code flow: ``say`` shows the user where to type which code."""
        app = self._application()
        flow = app.initiate_device_flow(scopes=[self.sign_in.scope])
        if "user_code" not in flow:
            raise SourceAuthError(f"device code refused: {flow.get('error')}: {flow.get('error_description', '')}")
        say(str(flow["message"]))
        result = app.acquire_token_by_device_flow(flow)
        self._checked(result)
        self._save()
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "the user")


def cache_file(state_dir: Path, source: str) -> Path:
    """Where a source's token cache lives: one file per source and sign-in identity."""
    return state_dir / "tokens" / f"{source}.msal.json"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
