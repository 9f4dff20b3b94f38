"""Normalizers for the values customers are matched on. Pure functions, no I/O.

A normalizer returns ``None`` for a value that cannot be an identity at all, so callers
never match on garbage such as ``"n/a"`` or ``"@"``.
"""

from __future__ import annotations

import re
import unicodedata
from email.utils import getaddresses

_LOCAL_OK = re.compile(r"^[^\s@<>()\[\],;:\"]+$")


def normalize_domain(raw: str) -> str | None:
    """Lower-case ASCII (IDNA/punycode) form of a domain, or None when it is not one."""
    domain = unicodedata.normalize("NFC", raw.strip().strip(".").lower())
    if domain.startswith("www."):
        domain = domain[4:]
    if not domain or "." not in domain or any(c.isspace() for c in domain):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    return ascii_domain


def normalize_email(raw: str) -> str | None:
    """``'Ana <ANA@Firma.HR> '`` -> ``'ana@firma.hr'``; None when it is not an address."""
    candidate = raw.strip()
    if "<" in candidate or '"' in candidate:
        parsed = getaddresses([candidate])
        candidate = parsed[0][1] if parsed else ""
    candidate = candidate.strip().strip("<>").strip()
    if candidate.lower().startswith("mailto:"):
        candidate = candidate[7:]
    if candidate.count("@") != 1:
        return None
    local, domain = candidate.rsplit("@", 1)
    if not local or not _LOCAL_OK.match(local):
        return None
    normalized_domain = normalize_domain(domain)
    if normalized_domain is None:
        return None
    return f"{local.lower()}@{normalized_domain}"


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1]


def parent_domains(domain: str) -> list[str]:
    """``'eu.mail.acme.com'`` -> ``['eu.mail.acme.com', 'mail.acme.com', 'acme.com']`` (never a bare TLD)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


_SPLIT = re.compile(r"[,;\s]+")


def split_emails(cell: str) -> list[str]:
    """Every address in a free-text cell such as ``'a@x.com; b@y.com'``, normalized, in order."""
    found: list[str] = []
    for part in _SPLIT.split(cell.replace("<", " ").replace(">", " ")):
        email = normalize_email(part) if part else None
        if email and email not in found:
            found.append(email)
    return found


def normalize_phone(raw: str) -> str | None:
    """Digits with a leading ``+`` kept; None for fewer than 6 digits. (Full E.164 comes with phonenumbers.)"""
    text = raw.strip()
    if text.endswith(".0"):
        text = text[:-2]  # a phone number that went through a float in a sheet
    digits = re.sub(r"\D", "", text)
    if len(digits) < 6:
        return None
    if text.startswith("+"):
        return "+" + digits
    if text.startswith("00"):
        return "+" + digits[2:]
    return digits
