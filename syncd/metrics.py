"""Prometheus metrics on loopback: the same counters `syncd status` shows, read at scrape time.

A collector that reads the store on each scrape keeps one source of truth: the numbers a
dashboard shows are the numbers `syncd status --json` prints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from syncd.model.views import StoreStatus

log = logging.getLogger("syncd.metrics")


class StoreCollector(Collector):
    def __init__(self, status: Any):
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        data: StoreStatus = self.status()
        for key in ("customers", "activities", "unmatched", "quarantined"):
            yield GaugeMetricFamily(f"syncd_{key}", f"Live {key} in the store.", value=getattr(data, key))
        families = {
            "ingested": GaugeMetricFamily("syncd_source_ingested", "Items stored per source.", labels=["source"]),
            "quarantined": GaugeMetricFamily("syncd_source_quarantined", "Items quarantined.", labels=["source"]),
            "backlog": GaugeMetricFamily("syncd_source_backlog", "Items waiting to be read.", labels=["source"]),
            "failing": GaugeMetricFamily("syncd_source_failing", "1 while the source fails.", labels=["source"]),
            "consecutive_failures": GaugeMetricFamily(
                "syncd_source_consecutive_failures", "Failed passes in a row.", labels=["source"]
            ),
            "suspect": GaugeMetricFamily("syncd_source_suspect", "1 while removals are held.", labels=["source"]),
            "last_sync": GaugeMetricFamily(
                "syncd_source_last_success_timestamp_seconds", "Last successful pass.", labels=["source"]
            ),
        }
        skipped = GaugeMetricFamily("syncd_source_skipped", "Items not logged, by reason.", labels=["source", "reason"])
        for source in data.sources:
            name = [source.name]
            families["ingested"].add_metric(name, source.ingested)
            families["quarantined"].add_metric(name, source.quarantined)
            families["backlog"].add_metric(name, source.backlog)
            families["failing"].add_metric(name, 1 if source.error else 0)
            families["consecutive_failures"].add_metric(name, source.consecutive_failures)
            families["suspect"].add_metric(name, 1 if source.suspect else 0)
            if source.last_sync:
                families["last_sync"].add_metric(name, source.last_sync.timestamp())
            for reason, count in source.skipped.items():
                skipped.add_metric([source.name, reason], count)
        yield from families.values()
        yield skipped


def serve_metrics(address: str, status: Any) -> Any:
    """Start the endpoint; returns the server (call ``.shutdown()`` to stop it)."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(StoreCollector(status))
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    log.info("metrics listening address=%s", address)
    return server
