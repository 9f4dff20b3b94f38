"""Wiring: from the config to the pieces a pass runs with (connectors, the match policy).

Nothing here names a source kind: the kind's registry entry builds its connector, and the
source's settings say which addresses are the owner's and what to warn about.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import replace

from syncd.config import Config
from syncd.connectors.base import Connector, ConnectorContext
from syncd.connectors.budget import RequestBudgets
from syncd.mapping.freemail import packaged_free_mail_domains
from syncd.mapping.matcher import MatchPolicy
from syncd.mapping.normalize import normalize_domain, normalize_email, normalize_phone
from syncd.mapping.privacy import Suppression
from syncd.model.records import CustomerRecord, ReadOptions
from syncd.model.settings import SourceSettings
from syncd.secrets import read_secret

log = logging.getLogger("syncd.pipeline")


def read_options(config: Config) -> ReadOptions:
    return ReadOptions(
        snippet_chars=config.store.snippet_chars,
        keep_bodies=config.store.keep_bodies,
        batch_size=config.service.batch_size,
    )


def connector_context(config: Config, budgets: RequestBudgets | None = None) -> ConnectorContext:
    return ConnectorContext(
        options=read_options(config),
        timezone=config.service.timezone,
        state_dir=config.service.state_dir,
        secret=read_secret,
        budgets=budgets if budgets is not None else RequestBudgets(),
    )


def make_connector(config: Config, source: SourceSettings, budgets: RequestBudgets | None = None) -> Connector:
    """The connector for one configured source, made by its kind's factory."""
    return config.kinds.get(source.kind).build(source, connector_context(config, budgets))


def is_customer_source(config: Config, source: SourceSettings) -> bool:
    return config.kinds.get(source.kind).capabilities.customers


def _addresses_and_domains(entries: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """A validated address-or-@domain list (``ana@x.hr``, ``@x.hr``) as (addresses, domains)."""
    return (
        frozenset(e for e in entries if not e.startswith("@")),
        frozenset(e[1:] for e in entries if e.startswith("@")),
    )


def match_policy(config: Config) -> MatchPolicy:
    own: set[str] = set()
    for source in config.sources:
        own.update(source.own_addresses())
    blocked_addresses, blocked_domains = _addresses_and_domains(config.matching.blocklist)
    suppressed_addresses, suppressed_domains = _addresses_and_domains(config.privacy.suppress)
    return MatchPolicy(
        internal_domains=frozenset(config.matching.internal_domains),
        own_addresses=frozenset(own),
        free_mail_domains=packaged_free_mail_domains() | frozenset(config.matching.extra_free_mail_domains),
        exclude_automated=config.matching.exclude_automated,
        blocked_addresses=blocked_addresses,
        blocked_domains=blocked_domains,
        block_whole_item=config.matching.blocklist_drops == "item",
        fold_plus_addresses=config.matching.fold_plus_addresses,
        default_phone_region=config.matching.default_phone_region,
        fuzzy_auto_link=config.matching.fuzzy_auto_link,
        fuzzy_suggest=config.matching.fuzzy_suggest,
        suppression=Suppression(addresses=suppressed_addresses, domains=suppressed_domains),
        private_marks=frozenset(m.strip().casefold().lstrip("$") for m in config.privacy.private_categories),
    )


def warn_insecure(config: Config) -> None:
    """Said at every start: an unverified TLS connection can be intercepted; a service is going away."""
    for source in config.sources:
        if source.enabled:
            for warning in source.security_warnings():
                log.warning("%s", warning)


def normalize_customer(record: CustomerRecord, phone_region: str | None = None) -> CustomerRecord:
    emails = tuple(dict.fromkeys(e for e in (normalize_email(x) for x in record.emails) if e))
    phones = tuple(dict.fromkeys(p for p in (normalize_phone(x, phone_region) for x in record.phones) if p))
    domains = tuple(
        dict.fromkeys(d for d in (normalize_domain(x.split("://")[-1].split("/")[0]) for x in record.domains) if d)
    )
    return replace(record, emails=emails, phones=phones, domains=domains)


def peak_rss_mb() -> int:
    """This program's peak resident memory, for the logs.

    Linux's VmHWM starts afresh at exec; ru_maxrss does not (a child forked from a large
    parent would report the parent's size), so it is only the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
