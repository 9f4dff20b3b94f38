"""Microsoft Graph REST calls with the token, throttling and error mapping syncd needs; nothing else.

Throttling (https://learn.microsoft.com/graph/throttling): 429 and 503 honour Retry-After
up to ``throttle_max_wait_seconds``; a longer wait ends this source's pass with
``SourceUnavailable`` carrying the wait, so the other mailboxes, synced in parallel, go
on. Without Retry-After, and for other 5xx and network errors, the wait grows
exponentially with full jitter (tenacity), as the throttling guidance asks. Every request
of a mailbox also passes its ``MailboxBudget`` (Outlook's limits: 10,000 requests per 10
minutes and 4 concurrent per app and mailbox), shared by every folder, calendar and
write-back of that mailbox.

401 (https://learn.microsoft.com/entra/identity-platform/access-tokens, "token revocation"):
the token used is dropped from msal's cache and a new one acquired, once; 401/403 after
that is an authentication error (consent revoked, application access policy), never
retried fast.

Delta tokens that Graph no longer knows come as 410 or as "a 40X-series error with error
codes such as syncStateNotFound" (https://learn.microsoft.com/graph/delta-query-overview,
"Token duration"): both raise ``DeltaExpired``, and the folder is read afresh.

A 200 whose body is not a JSON object is a ``MalformedResponse``: nothing on that page can
be trusted, so the pass fails with a clear error and the cursor stays where it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from typing import Any

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from syncd.connectors.budget import MailboxBudget
from syncd.connectors.graph.auth import GraphTokens
from syncd.connectors.tls import security_error
from syncd.model.errors import SourceAuthError, SourceConfigError, SourceUnavailable

log = logging.getLogger(__name__)


class DeltaExpired(SourceUnavailable):
    """Graph no longer knows the delta token: the folder must be read afresh."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NotFound(SourceUnavailable):
    """404 from Graph: the item or folder is gone (where not handled, fails the source's pass)."""


class PreconditionFailed(SourceUnavailable):
    """412 from Graph: the item changed since its change key was read (If-Match)."""


class Conflict(SourceUnavailable):
    """409 from Graph: e.g. ``nameAlreadyExists`` when creating a file with conflictBehavior fail."""


class Locked(SourceUnavailable):
    """423 from Graph: the file is checked out, or locked while someone edits it."""


#: Error codes of an expired or unknown delta token (any 40X status).
DELTA_EXPIRED_CODES = {"syncStateNotFound", "resyncRequired", "syncStateInvalid"}


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class GraphClient:
    """Graph REST calls with the token, throttling and error mapping syncd needs; nothing else."""

    def __init__(
        self,
        base_url: str,
        tokens: GraphTokens,
        *,
        source: str,
        timeout: float = 60,
        max_wait: float = 60,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        budget: MailboxBudget | None = None,
        backoff_cap: float = 30,
    ):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.source = source
        self.timeout = timeout
        self.max_wait = max_wait
        self.attempts = attempts
        self.sleep = sleep
        self.budget = budget
        self.backoff_cap = backoff_cap
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("https://", "http://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        # Full jitter: 0..2^n seconds (capped), so many throttled mailboxes do not retry in step.
        ceiling = float(wait_exponential(multiplier=1, max=self.backoff_cap)(state))
        return float(wait_random(0, ceiling)(state)) + 0.1

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        prefer: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        return dict(self._retrying_call(method, path, params, body, prefer))

    def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: Any,
        prefer: tuple[str, ...],
        refreshed: bool = False,
        if_match: str | None = None,
        data: bytes | None = None,
        raw: bool = False,
    ) -> Any:
        token = self.tokens.token()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if prefer:
            headers["Prefer"] = ", ".join(prefer)
        if if_match:
            headers["If-Match"] = if_match
        sent: dict[str, Any] = {"json": body} if data is None else {"data": data}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            with self.budget.slot() if self.budget is not None else nullcontext():
                response = self.session.request(
                    method, self.url(path), params=params, headers=headers, timeout=self.timeout, **sent
                )
        except requests.RequestException as exc:
            refused = security_error(exc, self.base_url, self.source)
            if refused is not None:
                raise refused from None
            raise _Transient(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        status = response.status_code
        if status < 300:
            if raw:
                return response.content
            try:
                return _json_object(response, method, path) if response.content else {}
            except MalformedResponse as exc:
                # A proxy's error page with 200 is usually passing: retried with backoff first.
                raise _Transient(str(exc)) from None
        code, message = _error(response)
        what = f"{method} {_path_only(path)}: {status} {code}: {message}"
        if status == 401 and not refreshed:
            # A revoked token stays in msal's cache until it expires (up to an hour), and msal
            # refuses force_refresh for client credentials: drop it, then ask for a new one.
            self.tokens.discard(token)
            return self._once(method, path, params, body, prefer, True, if_match, data, raw)
        if status in (401, 403):
            raise SourceAuthError(
                f"Graph refused access ({what}); check the app's permissions, admin consent and "
                f"application access policy for this mailbox"
            )
        if status == 404:
            raise NotFound(what)
        if status == 412:
            raise PreconditionFailed(what)
        if status == 409:
            raise Conflict(what)
        if status == 423:
            raise Locked(what)
        if status == 410 or (400 <= status < 500 and code in DELTA_EXPIRED_CODES):
            raise DeltaExpired(what, status)
        if status in (429, 503) or status >= 500:
            retry_after = _retry_after(response)
            if retry_after is not None and retry_after > self.max_wait:
                raise SourceUnavailable(
                    f"Graph throttled this mailbox: Retry-After {retry_after:.0f}s exceeds "
                    f"throttle_max_wait_seconds; retried after it",
                    source=self.source,
                    retry_after=retry_after,
                )
            if status == 429:
                log.warning("source=%s graph throttled retry_after=%s", self.source, retry_after)
            raise _Transient(what, retry_after)
        if status == 400 and code in ("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ErrorMailboxNotFound"):
            raise SourceConfigError(what)
        raise SourceUnavailable(what)

    def get(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.request("GET", path, **kwargs)

    def _retrying_call(self, *args: Any) -> Any:
        """``_once(*args)``, transient faults retried (Retry-After, else full jitter)."""
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=self._wait,
            stop=stop_after_attempt(self.attempts),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda s: log.warning(
                "source=%s graph transient error, retrying attempt=%d error=%r",
                self.source,
                s.attempt_number,
                str(s.outcome.exception()) if s.outcome else "",
            ),
        )
        try:
            return retrying(self._once, *args)
        except _Transient as exc:
            raise SourceUnavailable(f"Graph: {exc} (gave up after {self.attempts} attempts)") from None

    def download(self, path: str) -> bytes:
        """A file's bytes (Graph answers 302 to a pre-authenticated URL, which requests follows)."""
        return bytes(self._retrying_call("GET", path, None, None, (), False, None, None, True))

    def put_bytes(self, path: str, data: bytes, params: dict[str, str] | None = None) -> dict[str, Any]:
        return dict(self._retrying_call("PUT", path, params, None, (), False, None, data, False))

    def patch_if_match(self, path: str, body: Any, change_key: str, prefer: tuple[str, ...] = ()) -> dict[str, Any]:
        """PATCH only if the item is still at ``change_key``; ``PreconditionFailed`` if not."""
        return dict(self._retrying_call("PATCH", path, None, body, prefer, False, f'W/"{change_key}"', None, False))

    def pages(
        self, path: str, params: dict[str, str] | None = None, prefer: tuple[str, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink."""
        page = self.get(path, params=params, prefer=prefer)
        while True:
            yield page
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get(link, prefer=prefer)


class MalformedResponse(SourceUnavailable):
    """Graph answered 200 with something that is not a JSON object."""


def _json_object(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        raise MalformedResponse(
            f"{method} {_path_only(path)}: 200 but the body is not JSON "
            f"({response.headers.get('Content-Type', 'no content type')}, {len(response.content)} bytes)"
        ) from None
    if not isinstance(payload, dict):
        raise MalformedResponse(f"{method} {_path_only(path)}: 200 but the body is a JSON {type(payload).__name__}")
    return payload


def _path_only(path: str) -> str:
    """A URL without its query (delta and skip tokens are state, not for logs)."""
    return path.split("?", 1)[0]


def _error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", response.text[:200]
    if isinstance(error, str):  # the token endpoint's shape
        return error, ""
    return str(error.get("code", "")), str(error.get("message", ""))[:300]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: Graph sends seconds; back off exponentially instead


def odata_quote(value: str) -> str:
    return value.replace("'", "''")
