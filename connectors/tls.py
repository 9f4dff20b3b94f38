"""Telling a certificate that does not verify from a network blip, whatever library raised it.

A certificate failure (untrusted issuer, expired, wrong host name) is not transient:
retrying it for a minute only hides the reason (seen: 8 attempts and 66 s before a
self-signed certificate was reported). requests, urllib3, imaplib and exchangelib wrap the
``ssl`` error differently, so the cause chain and the arguments are searched for it.
"""

from __future__ import annotations

import ssl

from syncd.model.errors import SourceSecurityError


def certificate_problem(exc: BaseException) -> str | None:
    """Why the server's certificate was refused, when ``exc`` comes from that; else None."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        if isinstance(current, ssl.CertificateError):
            return str(current)
        if isinstance(current, ssl.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(current):
            return "certificate verify failed"
        for linked in (current.__cause__, current.__context__, *current.args):
            if isinstance(linked, BaseException):
                pending.append(linked)
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException):
            pending.append(reason)
    return None


def security_error(exc: BaseException, where: str, source: str | None = None) -> SourceSecurityError | None:
    """The error to raise instead of ``exc`` when it is a refused certificate, else None."""
    refused = certificate_problem(exc)
    if refused is None:
        return None
    return SourceSecurityError(
        f"{where}: the server's TLS certificate was refused ({refused}); fix the certificate or its trust "
        "(a private CA goes into the system's trust store), or set verify_tls = false for this source only",
        source=source,
    )
