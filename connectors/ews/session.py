"""One exchangelib Account per source, with exchangelib's errors mapped to the connector contract's.

Throttling (https://learn.microsoft.com/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange):
Exchange answers a busy server with an ``ErrorServerBusy`` SOAP fault whose
``BackOffMilliseconds`` says how long to wait. exchangelib's per-configuration retry
policy (``FaultTolerance(max_wait)``) waits that long and sends the request again; a
longer wish than ``max_wait`` ends the pass with that wait as its retry time. The API
version is pinned to Exchange2013 for an explicit endpoint (every supported Exchange
Server speaks it), so a SOAP fault on the first request is reported by its response
code, not as exchangelib's "no valid version headers" from version guessing.

exchangelib keeps its HTTP settings on the protocol *class* (``BaseProtocol.TIMEOUT``,
``HTTP_ADAPTER_CLS``) and caches protocols per endpoint and credentials for the whole
process. Setting those class attributes for one source would set them for every EWS source
(one ``verify_tls = false`` turning certificate checks off for all, and staying off after
a reload). So each source gets its own protocol instance (``source_protocol``): not
cached, with its own timeout and, only where that source asks for it, an adapter that does
not verify certificates. Nothing process-wide is changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from syncd.connectors.tls import security_error
from syncd.model.errors import SourceAuthError, SourceConfigError, SourceUnavailable

log = logging.getLogger(__name__)

EXCHANGE_ONLINE_HOSTS = ("outlook.office365.com", "outlook.office.com")


def exchange_online_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in EXCHANGE_ONLINE_HOSTS or host.endswith(".office365.com")


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
    max_wait: float = 60  # longest ErrorServerBusy back-off waited for within a pass


class ResyncNeeded(Exception):
    """The server rejected our sync state."""


def errors_module() -> Any:
    from exchangelib import errors

    return errors


class EwsSession:
    """One exchangelib Account, made on first use, with exchangelib's errors mapped to ours."""

    def __init__(self, account: EwsAccount, source: str):
        self.settings = account
        self.source = source
        self._account: Any = None

    def account(self) -> Any:
        if self._account is not None:
            return self._account
        from exchangelib import (
            BASIC,
            DELEGATE,
            IMPERSONATION,
            NTLM,
            OAUTH2,
            Account,
            Build,
            Configuration,
            Credentials,
            FaultTolerance,
            Version,
        )

        # exchangelib's debug log holds request headers (the Basic/NTLM Authorization) and
        # whole SOAP bodies (mail content): never let it through, even under --debug.
        logging.getLogger("exchangelib").setLevel(logging.WARNING)
        s = self.settings
        if s.auth_type == "oauth":
            from exchangelib import Identity, OAuth2Credentials

            credentials: Any = OAuth2Credentials(
                client_id=s.client_id,
                client_secret=s.password(),
                tenant_id=s.tenant_id,
                identity=Identity(primary_smtp_address=s.mailbox),
            )
        else:
            credentials = Credentials(s.username, s.password())
        auth = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}[s.auth_type]
        access = IMPERSONATION if s.impersonation else DELEGATE
        retry_policy = _back_off_policy(FaultTolerance)(max_wait=s.max_wait)
        with self.mapped("connect"):
            if s.autodiscover:
                account = Account(
                    primary_smtp_address=s.mailbox,
                    config=Configuration(credentials=credentials, retry_policy=retry_policy),
                    autodiscover=True,
                    access_type=access,
                )
                account.protocol = source_protocol(account.protocol.config, verify_tls=True, timeout=s.timeout)
                self._account = account
            else:
                config = Configuration(
                    service_endpoint=s.service_endpoint,
                    credentials=credentials,
                    auth_type=auth,
                    max_connections=2,
                    retry_policy=retry_policy,
                    version=Version(build=Build(15, 0)),  # Exchange2013: see the module docstring
                )
                account = Account(primary_smtp_address=s.mailbox, config=config, autodiscover=False, access_type=access)
                # This source's own protocol: its TLS verification and timeout, not exchangelib's
                # process-wide defaults (see source_protocol).
                account.protocol = source_protocol(config, verify_tls=s.verify_tls, timeout=s.timeout)
                self._account = account
        return self._account

    def close(self) -> None:
        if self._account is not None:
            try:
                self._account.protocol.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
            self._account = None

    def mapped(self, what: str) -> _Mapped:
        return _Mapped(self, what)


class _Mapped:
    """``with session.mapped("sync inbox"):`` turns exchangelib's errors into the connector contract's."""

    def __init__(self, session: EwsSession, what: str):
        self.session = session
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, (SourceAuthError, SourceConfigError, SourceUnavailable, ResyncNeeded)):
            return False
        errors = errors_module()
        where = f"{self.session.settings.service_endpoint or 'autodiscover'} {self.session.settings.mailbox}"
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        refused = security_error(exc, where, self.session.source)
        if refused is not None:
            self.session.close()
            raise refused from None
        if isinstance(exc, (errors.ErrorInvalidSyncStateData, errors.ErrorSyncFolderNotFound)):
            raise ResyncNeeded(text) from None
        if isinstance(
            exc,
            (
                errors.UnauthorizedError,
                errors.ErrorAccessDenied,
                errors.ErrorImpersonateUserDenied,
                errors.ErrorImpersonationDenied,
            ),
        ):
            raise SourceAuthError(f"{where}: {self.what} refused ({text})") from None
        if isinstance(exc, errors.ErrorNonExistentMailbox):
            raise SourceConfigError(f"{where}: {self.what}: no such mailbox ({text})") from None
        if isinstance(exc, (errors.TransportError, errors.ErrorServerBusy, errors.EWSError, OSError)) or type(
            exc
        ).__module__.split(".")[0] in ("requests", "urllib3"):
            self.session.close()
            # ErrorServerBusy carries the server's wish; RateLimitError the one longer than max_wait.
            back_off = getattr(exc, "back_off", None) or getattr(exc, "wait", None)
            if isinstance(exc, errors.RateLimitError):
                text = (
                    f"ErrorServerBusy: the server asked to back off {exc.wait:.0f} s (over throttle_max_wait_seconds)"
                )
            raise SourceUnavailable(
                f"{where}: {self.what} failed ({text})",
                source=self.session.source,
                retry_after=float(back_off) if isinstance(back_off, int | float) else None,
            ) from None
        return False


@lru_cache(maxsize=1)
def _back_off_policy(fault_tolerance: Any) -> Any:
    """exchangelib's FaultTolerance, but a 401 is a refused login, never "throttling".

    FaultTolerance takes every 401 for Exchange asking to slow down and retries it with
    growing waits (10, 20, 40 s...); a wrong password would then be sent again and again,
    which locks accounts. Only ErrorServerBusy and transient 5xx are waited for.
    """
    from exchangelib.errors import UnauthorizedError

    class BackOffOnBusy(fault_tolerance):  # type: ignore[misc]
        def raise_response_errors(self, response: Any) -> Any:
            if response.status_code == 401:
                raise UnauthorizedError(f"Invalid credentials for {response.url}")
            return super().raise_response_errors(response)

    return BackOffOnBusy


@lru_cache(maxsize=1)
def _protocol_class() -> Any:
    """exchangelib's Protocol without its process-wide cache, taking its HTTP settings per instance."""
    from exchangelib.protocol import CachingProtocol, NoVerifyHTTPAdapter, Protocol

    class _Uncached(CachingProtocol):  # type: ignore[misc]
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            return type.__call__(cls, *args, **kwargs)

    class SourceProtocol(Protocol, metaclass=_Uncached):  # type: ignore[misc]
        def __init__(self, *args: Any, verify_tls: bool = True, timeout: float = 60, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.verify_tls = verify_tls
            self.TIMEOUT = timeout  # read as protocol.TIMEOUT by every request exchangelib makes

        def raw_session(
            self,
            prefix: str,
            oauth2_client: Any = None,
            oauth2_session_params: Any = None,
            oauth2_token_endpoint: Any = None,
        ) -> Any:
            session = super().raw_session(prefix, oauth2_client, oauth2_session_params, oauth2_token_endpoint)
            if not self.verify_tls:
                # requests' Session.verify = False loses to REQUESTS_CA_BUNDLE; an adapter does not.
                adapter = NoVerifyHTTPAdapter(
                    pool_block=True,
                    pool_connections=self.CONNECTIONS_PER_SESSION,
                    pool_maxsize=self.CONNECTIONS_PER_SESSION,
                    max_retries=0,
                )
                session.mount(prefix, adapter=adapter)
            return session

    return SourceProtocol


def source_protocol(config: Any, *, verify_tls: bool, timeout: float) -> Any:
    return _protocol_class()(config=config, verify_tls=verify_tls, timeout=timeout)
