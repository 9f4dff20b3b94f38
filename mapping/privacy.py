"""Who syncd must not collect: the suppression list, and the salted digests erasure leaves.

Admins list addresses and domains in ``[privacy] suppress`` (plain, they typed them).
``syncd forget`` adds a digest of each erased address and name instead, keyed with a salt
kept in the store: a re-sync or a workbook row that still lists the person is recognised
without syncd keeping who they were. A stolen store without its salt does not reveal them
by trying addresses; with it, each guess costs one hash, as with any such list. Pure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from syncd.mapping.normalize import email_domain, normalize_company_name, parent_domains
from syncd.model.records import ActivityRecord, CustomerKind, CustomerRecord


def digest(salt: bytes, kind: str, value: str) -> str:
    """The suppression digest of an ``email`` or a person's ``name`` (normalized first)."""
    text = value.strip().lower() if kind == "email" else (normalize_company_name(value) or "")
    return hashlib.blake2b(f"{kind}:{text}".encode(), key=salt[:64], digest_size=20).hexdigest()


@dataclass(frozen=True)
class Suppression:
    """The addresses, domains and digests whose people are never collected."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()  # a domain covers its subdomains
    digests: frozenset[str] = frozenset()
    salt: bytes = b""

    def __bool__(self) -> bool:
        return bool(self.addresses or self.domains or self.digests)

    def email(self, address: str) -> bool:
        address = address.strip().lower()
        if not address or not self:
            return False
        if address in self.addresses:
            return True
        if self.domains and any(d in self.domains for d in parent_domains(email_domain(address))):
            return True
        return bool(self.digests) and digest(self.salt, "email", address) in self.digests

    def customer(self, record: CustomerRecord) -> bool:
        """A customer record listing a suppressed address, or, for a row without any address,
        an erased person by name (a namesake with an address of their own is not held back)."""
        if record.emails:
            return any(self.email(e) for e in record.emails)
        return (
            record.kind == CustomerKind.PERSON
            and bool(self.digests)
            and digest(self.salt, "name", record.name) in self.digests
        )


def marked_private(record: ActivityRecord, marks: frozenset[str]) -> bool:
    """An Outlook category or an IMAP keyword staff put on the item to keep it out."""
    categories = (c.strip().casefold() for c in (record.hint("categories") or "").split(";"))
    keywords = (k.strip().casefold().lstrip("$") for k in (record.hint("x-imap-keywords") or "").split())
    return any(c in marks for c in categories) or any(k in marks for k in keywords)
